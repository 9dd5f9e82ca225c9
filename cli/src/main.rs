//! The `etl` command line: a thin shell over the library. Parses arguments, runs one command,
//! renders its result, and maps it to an exit code (0 ok, 1 invalid input, 2 usage or internal
//! error).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use etl::diag::render::{self, Paths};

/// GitOps compiler for ETL pipelines that run as WebAssembly components on wasmCloud.
///
/// A pipeline repo holds `etl.yaml` (the project: registry, environments, policy),
/// `pipelines/*.yaml` (one pipeline graph each), optional `environments/<env>.yaml` overrides and
/// `tests/*.yaml` fixtures. See docs/spec.md for the format.
#[derive(Debug, Parser)]
#[command(name = "etl", version, propagate_version = true)]
struct Cli {
    /// When to color human output.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    color: Color,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a pipeline repo against the schemas and graph rules, and every component file
    /// against its `digest:` (and that it is WebAssembly); report every problem. Never uses the
    /// network: an `oci://` component is checked only when the cache holds a copy.
    ///
    /// Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage or internal error.
    Validate {
        /// The pipeline repo (the directory holding etl.yaml).
        #[arg(long, default_value = ".", value_name = "DIR")]
        repo: PathBuf,
        /// Cache of pulled components, read only (default: as for `etl compile`).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// Output format: `human` (snippets on stderr), `json` (stable document on stdout, see
        /// docs/diagnostics.md) or `github` (workflow annotations on stdout).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Validate, resolve every component by digest, compose each step and sink into one
    /// component, package each as a Wasm OCI artifact, and write `--out` in one atomic swap:
    /// plan.json, components/sha256/…, oci/ (an OCI image layout), and per environment
    /// <env>/wadm/<pipeline>.yaml (wasmCloud 1.x) and <env>/k8s/<pipeline>.yaml (wasmCloud v2).
    ///
    /// The output is byte-identical for identical inputs. An artifact's bytes depend only on
    /// what runs (harness, customer component, connector): an unchanged step keeps its digest
    /// across commits. plan.json records where the compile came from: SOURCE_DATE_EPOCH when
    /// set, else the repo's last commit time, else 0 (never the clock), and the commit when the
    /// repo is a clean git work tree (the output directory and etl's cache do not count).
    ///
    /// Nothing is written unless everything succeeds: a failed compile leaves the previous
    /// output as it was. `--out` is replaced only when it is new, an empty directory or an
    /// earlier output (which holds `.etl-output`); the repo, a directory containing it or the
    /// current directory, a file and any other directory are refused (exit 2).
    /// Exit status: 0 compiled, 1 invalid input, 2 usage or internal error.
    Compile {
        /// The pipeline repo (the directory holding etl.yaml).
        #[arg(long, default_value = ".", value_name = "DIR")]
        repo: PathBuf,
        /// Where to write the output: a new or empty directory, or an earlier output.
        #[arg(long, default_value = "dist", value_name = "DIR")]
        out: PathBuf,
        /// Cache of pulled components, componentized modules and compositions (default:
        /// $ETL_CACHE_DIR, else $XDG_CACHE_HOME/etl, else ~/.cache/etl).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// Build everything, ignoring and not filling the cache.
        #[arg(long)]
        no_cache: bool,
        /// Output format of diagnostics, as for `etl validate`.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// URL of the pipeline repo, recorded in plan.json's provenance (e.g.
        /// https://github.com/acme/pipelines).
        #[arg(long, env = "ETL_SOURCE_URL", value_name = "URL")]
        source: Option<String>,
        /// Sign every artifact of oci/ with this private key (from `etl keygen`): a cosign
        /// signature tagged `sha256-<digest>.sig` beside each, checked by `etl verify` and
        /// `cosign verify --key`. An encrypted key's passphrase is read from
        /// $ETL_KEY_PASSPHRASE. Signatures are deterministic: the output still reproduces.
        #[arg(long, value_name = "KEY")]
        sign_key: Option<PathBuf>,
        /// Then push the artifacts to the project's registry (`spec.registry`), as `etl push`
        /// does.
        #[arg(long)]
        push: bool,
        /// With --push: also tag the artifacts this environment deploys with its name, as
        /// `etl push --env`; repeatable.
        #[arg(long = "env", value_name = "ENV", requires = "push")]
        environments: Vec<String>,
        #[command(flatten)]
        access: RegistryArgs,
    },
    /// Make an ECDSA P-256 key pair for `etl compile --sign-key` and `etl verify --key`:
    /// PREFIX.key (PKCS#8 PEM, private, mode 0600) and PREFIX.pub (public, PEM, as cosign reads).
    ///
    /// The private key is encrypted with $ETL_KEY_PASSPHRASE when it is set. Existing files are
    /// never overwritten. Exit status: 0 written, 2 a file exists or cannot be written.
    Keygen {
        /// Path prefix of the two files.
        #[arg(long, default_value = "etl", value_name = "PREFIX")]
        out: PathBuf,
    },
    /// Check the signatures of artifacts: those of an `etl compile` output (or any OCI image
    /// layout), or artifacts in a registry by reference.
    ///
    /// In a layout, every artifact must be intact (each blob matches its digest) and have a
    /// cosign signature that names exactly its manifest digest and verifies with the public key.
    /// A reference (`HOST[:PORT]/REPOSITORY:TAG` or `…@sha256:…`) is checked as `cosign verify
    /// --key` does: the manifest it names, and the signature tagged `sha256-<hex>.sig` in the
    /// same repository. Registries are reached as by `etl push`.
    ///
    /// Exit status: 0 every artifact is signed and valid, 1 some signature is missing or bad
    /// (each is named), 2 usage error, or a layout, the key or a registry cannot be read.
    Verify {
        /// The public key (PEM), from `etl keygen` or `cosign generate-key-pair`.
        #[arg(long, value_name = "PUB")]
        key: PathBuf,
        /// `etl compile` outputs (holding oci/), OCI image layouts (existing directories) or
        /// image references.
        #[arg(default_value = "dist", value_name = "DIST|REF")]
        targets: Vec<String>,
        #[command(flatten)]
        access: RegistryArgs,
    },
    /// Promote: give environment `--to` exactly the artifacts environment `--from` runs, by
    /// moving the `--to` tag in the registry — never rebuilding, never re-serializing.
    ///
    /// For every artifact `--from` deploys (per DIST/plan.json), the manifest tagged `<from>`
    /// in the registry must carry a cosign signature that verifies with `--key`, and its
    /// component must import what `<to>`'s deployment serves; only when all pass is each
    /// manifest PUT byte for byte under the tag `<to>` (then read back and hashed). DIST is then
    /// rewritten in one step: `<to>/wadm/`, `<to>/k8s/` and plan.json's `<to>` deployments
    /// pinned to exactly those digests, and `promotions/<to>.json` recording which digests came
    /// from which tag, when ($SOURCE_DATE_EPOCH, else now). DIST must be an `etl compile`
    /// output (it holds `.etl-output`), checked before the registry is asked.
    ///
    /// Exit status: 0 promoted, 1 refused (unsigned, bad signature, tampered, missing tag) or
    /// the registry failed, 2 usage error (e.g. DIST is not an etl output, or --registry is not
    /// the one it was compiled for).
    Promote {
        /// The environment whose artifacts to promote.
        #[arg(long, value_name = "ENV")]
        from: String,
        /// The environment to promote them to.
        #[arg(long, value_name = "ENV")]
        to: String,
        /// The public key (PEM) the artifacts must be signed with.
        #[arg(long, value_name = "PUB")]
        key: PathBuf,
        /// Where the artifacts are: HOST[:PORT][/PREFIX] (default: the project's
        /// `spec.registry`, as DIST/plan.json records it); another registry than that is
        /// refused (exit 2), as DIST's manifests pin images there.
        #[arg(long, value_name = "HOST[:PORT]/PREFIX")]
        registry: Option<String>,
        /// The `etl compile` output whose `<to>` manifests to re-pin.
        #[arg(default_value = "dist", value_name = "DIST")]
        dist: PathBuf,
        #[command(flatten)]
        access: RegistryArgs,
    },
    /// Show a component's imports and exports in WIT terms, and whether it satisfies the
    /// customer contract (world `etl:pipeline/transformer@0.1.0`) under a policy.
    ///
    /// Accepts a component or a core module with component-type metadata (a wit-bindgen build),
    /// which is componentized as `etl compile` does. Exit status: 0 satisfies the contract, 1 does
    /// not (or is not a usable component), 2 the file cannot be read.
    Inspect {
        /// The `.wasm` file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// An import to grant, as in `policy.allow` (e.g. `wasi:logging/logging`); repeatable.
        #[arg(long = "allow", value_name = "INTERFACE")]
        allow: Vec<String>,
    },
    /// Run records through one pipeline in-process: the composed artifacts, wired as on a
    /// lattice, with an in-memory bus for NATS and captured HTTP and S3 sinks.
    ///
    /// Reads JSON lines (`{"payload": "text"}`, `{"json": {…}}` or `{"base64": "…"}`, each with
    /// optional `key` and `headers`) and prints, as each record completes, what reached each
    /// sink, dead letters and failures; then a summary. Exit status: 0 every record was handled
    /// (delivered, filtered or dead-lettered), 1 some record failed or the repo is invalid, 2
    /// usage or internal error.
    Run {
        /// The pipeline to run.
        #[arg(value_name = "PIPELINE")]
        pipeline: String,
        /// The environment whose configuration to use (default: the project's first).
        #[arg(long, value_name = "ENV")]
        env: Option<String>,
        /// JSON lines of input records; `-` for stdin.
        #[arg(long, default_value = "-", value_name = "FILE")]
        input: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = RunFormat::Text)]
        format: RunFormat,
        #[command(flatten)]
        artifacts: ArtifactArgs,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Run the repo's fixtures (`tests/*.yaml`) through their pipelines and compare what
    /// reaches each sink, the dead letters and the counts with what they expect.
    ///
    /// With pipelines named, errors in the files of other pipelines are set aside (noted).
    ///
    /// Exit status: 0 every fixture passed, 1 a fixture failed or the repo is invalid, 2 usage
    /// or internal error.
    Test {
        /// Only the fixtures of these pipelines (default: all).
        #[arg(value_name = "PIPELINE")]
        pipelines: Vec<String>,
        #[command(flatten)]
        artifacts: ArtifactArgs,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Draw a pipeline (source → steps → sinks, edges from `from:`) as a Mermaid flowchart
    /// (for Markdown and pull requests) or Graphviz DOT (`| dot -Tsvg`).
    ///
    /// Exit status: 0 drawn, 1 the repo is invalid, 2 usage error (e.g. an unknown pipeline).
    Graph {
        /// The pipeline to draw.
        #[arg(value_name = "PIPELINE")]
        pipeline: String,
        /// The pipeline repo (the directory holding etl.yaml).
        #[arg(long, default_value = ".", value_name = "DIR")]
        repo: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// Show what a change deploys differently: compare two compiled plans, pipeline by pipeline
    /// and environment by environment (artifacts and why they changed, new capabilities,
    /// scaling, configuration, links, secrets by name, providers). See docs/diff.md.
    ///
    /// BASE and HEAD are each a directory (an `etl compile` output with plan.json, or a pipeline
    /// repo, compiled in memory) or else a git ref of `--repo`, exported and compiled in memory
    /// (the work tree is never touched). Exit status: 0 no changes, 1 changes, 2 usage error, a
    /// side that does not compile, or an internal error.
    Diff {
        /// The old side: a directory or a git ref.
        #[arg(value_name = "BASE")]
        base: String,
        /// The new side: a directory or a git ref.
        #[arg(value_name = "HEAD")]
        head: String,
        /// The pipeline repo whose git refs are meant.
        #[arg(long, default_value = ".", value_name = "DIR")]
        repo: PathBuf,
        /// Output format: `markdown` (a pull-request comment, under 60,000 characters),
        /// `text` (everything, for a terminal) or `json` (stable, see docs/diff.md).
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
        /// Cache of pulled components, componentized modules and compositions (default as for
        /// `etl compile`).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// URL of the pipeline repo recorded in the plans of sides compiled here, as for
        /// `etl compile --source`.
        #[arg(long, env = "ETL_SOURCE_URL", value_name = "URL")]
        source: Option<String>,
    },
    /// Push the artifacts of an `etl compile` output (`DIST/oci/`, signatures included) to a
    /// registry, byte for byte: the digests the manifests name stay valid.
    ///
    /// Artifact `<name>` goes to `<registry>/<name>`: blobs the registry lacks (a HEAD checks
    /// each), the manifest by digest, then tag `sha-<12 hex of plan.json's sha256>` and, with
    /// `--env`, that environment's name. A cosign signature `sha256-<hex>.sig` is tagged in
    /// the repository of the artifact it signs. Re-running after an interruption uploads only
    /// what is missing. Every tag is then fetched back and must hash to the local digest.
    ///
    /// Loopback registries (127.0.0.1, ::1, localhost) are spoken to in plain HTTP, others in
    /// HTTPS unless named by `--insecure`. Credentials: `--username` with `--password-stdin`,
    /// else `auths.<host>` of the docker config ($DOCKER_CONFIG/config.json, else
    /// ~/.docker/config.json; credential helpers are not supported), else anonymous. Requests
    /// that fail with a 5xx or no connection are tried 4 times, backing off from 200 ms.
    ///
    /// Exit status: 0 pushed and verified, 1 a push or verification failed, 2 usage error.
    Push {
        /// The `etl compile` output.
        #[arg(value_name = "DIST")]
        dist: PathBuf,
        /// Where to push: HOST[:PORT][/PREFIX] (default: the project's `spec.registry`, as
        /// DIST/plan.json records it). Anything else is refused: DIST's manifests and
        /// signatures name the registry it was compiled for.
        #[arg(long, value_name = "HOST[:PORT]/PREFIX")]
        registry: Option<String>,
        /// Also tag the artifacts this environment deploys with its name (the start of the
        /// promotion chain, e.g. `dev`); repeatable. Later environments get their tag from
        /// `etl promote`.
        #[arg(long = "env", value_name = "ENV")]
        environments: Vec<String>,
        #[command(flatten)]
        access: RegistryArgs,
    },
    /// Scaffold a pipeline repo (project, one pipeline, one environment, one fixture) that
    /// validates, tests, compiles and runs: its one step is a pass-through component, for you to
    /// replace. Never overwrites existing files.
    Init {
        /// Where to create it (created if missing).
        #[arg(default_value = ".", value_name = "DIR")]
        dir: PathBuf,
        /// Project name; defaults to the directory's name, transliterated to a valid name.
        #[arg(long)]
        name: Option<String>,
    },
}

/// How to reach a registry: transport and credentials.
#[derive(Debug, Args)]
struct RegistryArgs {
    /// Speak plain HTTP to this host (`host` or `host:port`); repeatable. Loopback hosts always
    /// are.
    #[arg(long, value_name = "HOST")]
    insecure: Vec<String>,
    /// User name for the registry; the password is read from stdin.
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    username: Option<String>,
    /// Read the password (or token) from stdin, up to the first newline.
    #[arg(long, requires = "username")]
    password_stdin: bool,
}

/// Where `run` and `test` get the composed artifacts.
#[derive(Debug, Args)]
struct ArtifactArgs {
    /// The pipeline repo (the directory holding etl.yaml).
    #[arg(long, default_value = ".", value_name = "DIR")]
    repo: PathBuf,
    /// Run the artifacts of this `etl compile` output (checked against the repo) instead of
    /// compiling in memory.
    #[arg(long, value_name = "DIR")]
    dist: Option<PathBuf>,
    /// Cache of compositions and compiled code (default as for `etl compile`).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

/// Limits of every call into a component (see docs/running.md).
#[derive(Debug, Args)]
struct LimitArgs {
    /// Fuel per call (about one unit per instruction); running out fails the record as a
    /// timeout.
    #[arg(long, default_value_t = etl_run::Limits::default().fuel, value_name = "UNITS",
          value_parser = clap::value_parser!(u64).range(1..))]
    fuel: u64,
    /// Largest linear memory of a component, in MiB (at most 4096, the wasm32 maximum).
    #[arg(long, default_value_t = (etl_run::Limits::default().memory >> 20) as u64,
          value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=4096))]
    memory: u64,
    /// Most outputs one record may produce at one step or sink.
    #[arg(long, default_value_t = etl_run::Limits::default().max_outputs as u64,
          value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    max_outputs: u64,
    /// Extra attempts after a `transient` error.
    #[arg(long, default_value_t = etl_run::Limits::default().retries, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=100))]
    retries: u32,
    /// Records one instance of a step or sink may serve in a row (1: a fresh instance per
    /// record). More is faster but lets state a component keeps reach the next records; an
    /// instance is replaced after any failure.
    #[arg(long, default_value_t = etl_run::Limits::default().calls_per_instance, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    calls_per_instance: u32,
}

impl LimitArgs {
    fn limits(&self) -> etl_run::Limits {
        etl_run::Limits {
            fuel: self.fuel,
            memory: (self.memory as usize) << 20,
            max_outputs: self.max_outputs as usize,
            retries: self.retries,
            calls_per_instance: self.calls_per_instance,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GraphFormat {
    /// A Mermaid flowchart.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DiffFormat {
    /// Markdown for a pull-request comment.
    Markdown,
    /// Lines for a terminal.
    Text,
    /// A stable JSON document.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RunFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line (docs/running.md).
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Source snippets with carets, for people.
    Human,
    /// A stable JSON document, for tools.
    Json,
    /// GitHub Actions workflow commands.
    Github,
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!(
            "error: internal error in etl: {info}\nThis is a bug: please report it with the input that caused it."
        );
    }));
    let cli = Cli::parse();
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(_) => ExitCode::from(2),
    }
}

fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match cli.command {
        Command::Validate {
            repo,
            cache_dir,
            format,
        } => {
            let cache = etl::store::Cache::new(cache_dir.unwrap_or_else(default_cache_dir));
            let validation = etl::spec::validate_with(&repo, Some(&cache))?;
            report(&validation, &repo, format, cli.color, None);
            Ok(if validation.has_errors() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Compile {
            repo,
            out,
            cache_dir,
            no_cache,
            format,
            source,
            sign_key,
            push: and_push,
            environments,
            access,
        } => {
            let key = match &sign_key {
                Some(path) => Some(read_signing_key(path)?),
                None => None,
            };
            let cache = (!no_cache)
                .then(|| etl::store::Cache::new(cache_dir.unwrap_or_else(default_cache_dir)));
            // What etl writes is never a change of the inputs.
            let written: Vec<&std::path::Path> = std::iter::once(out.as_path())
                .chain(cache.as_ref().map(etl::store::Cache::dir))
                .collect();
            let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
            let provenance =
                etl::build::provenance::discover(&repo, &written, epoch.as_deref(), source)?;
            if provenance.revision.is_none() && etl::build::provenance::is_dirty(&repo, &written) {
                eprintln!(
                    "note: `{}` has uncommitted changes: plan.json records no revision",
                    repo.display()
                );
            }
            let options = etl::ops::compile::Options {
                out: out.clone(),
                cache,
                provenance,
            };
            let compilation = etl::ops::compile::compile_signed(&repo, &options, key.as_ref())?;
            warn_cache(options.cache.as_ref());
            let done = compilation.plan.as_ref().map(|plan| {
                let units: usize = plan
                    .pipelines
                    .iter()
                    .map(|p| p.steps.len() + p.sinks.len())
                    .sum();
                let (built, cached) = (compilation.built, compilation.from_cache);
                let shared = units.saturating_sub(built + cached);
                let mut how = vec![format!("{built} built")];
                if options.cache.is_some() {
                    how.push(format!("{cached} from cache"));
                }
                if shared > 0 {
                    how.push(format!("{shared} shared with an identical one"));
                }
                format!(
                    "compiled {} pipeline{} ({units} components: {}) into `{}`",
                    plan.pipelines.len(),
                    if plan.pipelines.len() == 1 { "" } else { "s" },
                    how.join(", "),
                    out.display()
                )
            });
            report(
                &compilation.validation,
                &repo,
                format,
                cli.color,
                done.as_deref(),
            );
            match compilation.plan {
                Some(_) if and_push => push(&out, None, environments, &access),
                Some(_) => Ok(ExitCode::SUCCESS),
                None => Ok(ExitCode::from(1)),
            }
        }
        Command::Keygen { out } => keygen(&out),
        Command::Verify {
            key,
            targets,
            access,
        } => verify(&key, &targets, &access),
        Command::Promote {
            from,
            to,
            key,
            registry,
            dist,
            access,
        } => promote(&dist, &key, registry.as_deref(), from, to, &access),
        Command::Inspect { file, allow } => {
            let mut grants = Vec::new();
            for text in allow {
                match etl::spec::model::Grant::try_from(text) {
                    Ok(g) => grants.push(g),
                    Err(e) => {
                        eprintln!(
                            "error: {e}: expected `namespace:package/interface[@version]` or `namespace:package/*`"
                        );
                        return Ok(ExitCode::from(2));
                    }
                }
            }
            let bytes = std::fs::read(&file).map_err(|source| {
                etl::spec::Error::Io(etl::util::io::IoError::new(file.clone(), source))
            })?;
            let name = file.display().to_string();
            match etl::build::resolve::prepare(&name, bytes, None) {
                Ok(resolved) => {
                    print(&etl::ops::inspect::describe(&name, &resolved, &grants));
                    Ok(if etl::ops::inspect::satisfies(&resolved, &grants) {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    })
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Run {
            pipeline,
            env,
            input,
            format,
            artifacts,
            limits,
        } => {
            let Some(mut prepared) =
                prepare(&artifacts, std::slice::from_ref(&pipeline), cli.color)?
            else {
                return Ok(ExitCode::from(1));
            };
            let repo = &prepared.validation.repo;
            let env = env
                .or_else(|| etl::build::deployment::default_environment(repo))
                .unwrap_or_default();
            let deployment = etl::build::deployment::plan(repo, &env, &pipeline)?;
            let runtime = etl_run::Runtime::new(Some(&prepared.cache))?;
            let units = prepared.artifacts.remove(&pipeline).unwrap_or_default();
            let loaded = runtime.load(&deployment, &units)?;
            let summary = run_streaming(&loaded, &input, format, &limits.limits())?;
            Ok(if summary.failed() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Test {
            pipelines,
            artifacts,
            limits,
        } => {
            let Some(prepared) = prepare(&artifacts, &pipelines, cli.color)? else {
                return Ok(ExitCode::from(1));
            };
            test(&prepared, &pipelines, &limits.limits())
        }
        Command::Graph {
            pipeline,
            repo,
            format,
        } => {
            let validation = etl::spec::validate(&repo)?;
            if !validation.diagnostics.is_empty() {
                let done = (!validation.has_errors()).then_some("");
                report(&validation, &repo, Format::Human, cli.color, done);
            }
            if validation.has_errors() {
                return Ok(ExitCode::from(1));
            }
            let p = etl::build::deployment::find_pipeline(&validation.repo, &pipeline)?;
            print(&match format {
                GraphFormat::Mermaid => etl::ops::graph::mermaid(&p.spec),
                GraphFormat::Dot => etl::ops::graph::dot(&p.spec),
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff {
            base,
            head,
            repo,
            format,
            cache_dir,
            source,
        } => {
            let options = etl::ops::diff::Options {
                repo: repo.clone(),
                cache: Some(etl::store::Cache::new(
                    cache_dir.unwrap_or_else(default_cache_dir),
                )),
                source,
                source_date_epoch: std::env::var("SOURCE_DATE_EPOCH").ok(),
            };
            // A side that does not compile: its diagnostics, then the error.
            let load = |arg: &str| {
                etl::ops::diff::load(arg, &options).inspect_err(|e| {
                    if let etl::ops::diff::DiffError::Invalid {
                        root, validation, ..
                    } = e
                    {
                        report(
                            validation,
                            root.as_ref(),
                            Format::Human,
                            cli.color,
                            Some(""),
                        );
                    }
                })
            };
            let (base, head) = (load(&base)?, load(&head)?);
            warn_cache(options.cache.as_ref());
            let diff = etl::ops::diff::diff(&base, &head);
            print(&match format {
                DiffFormat::Markdown => diff.markdown(),
                DiffFormat::Text => diff.text(),
                DiffFormat::Json => diff.json(),
            });
            Ok(ExitCode::from(u8::from(diff.changed)))
        }
        Command::Push {
            dist,
            registry,
            environments,
            access,
        } => push(&dist, registry.as_deref(), environments, &access),
        Command::Init { dir, name } => {
            let files = etl::ops::init::init(&dir, name.as_deref())?;
            println!("created a pipeline repo in `{}`:", dir.display());
            for f in files {
                println!("  {f}");
            }
            println!("next: `etl test --repo {}`", dir.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `etl push`: usage problems exit 2, a failed push 1.
fn push(
    dist: &std::path::Path,
    registry: Option<&str>,
    environments: Vec<String>,
    access: &RegistryArgs,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    use etl::ops::push::PushError;
    let registry = match registry_of(registry, dist) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let Some(credentials) = access.credentials(&registry.host)? else {
        return Ok(ExitCode::from(2));
    };
    let options = etl::ops::push::Options {
        registry,
        insecure: access.insecure.clone(),
        credentials,
        retry: Default::default(),
        environments,
    };
    let report = match etl::ops::push::push(dist, &options) {
        Ok(report) => report,
        Err(e @ (PushError::Io(_) | PushError::Layout { .. })) => return Err(e.into()),
        Err(e @ (PushError::UnknownEnvironment(_) | PushError::OtherRegistry(_))) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    print_push(&report, &options.registry);
    Ok(ExitCode::SUCCESS)
}

/// Says, once, that the cache could not be written (the compile went on without it).
fn warn_cache(cache: Option<&etl::store::Cache>) {
    if let Some((path, error)) = cache.and_then(etl::store::Cache::write_failure) {
        eprintln!(
            "warning: the cache `{}` cannot be written (`{}`: {error}): compositions are not kept \
             for the next run; fix its permissions or give --cache-dir",
            cache
                .map(|c| c.dir().display().to_string())
                .unwrap_or_default(),
            path.display()
        );
    }
}

/// What a push did: a line per manifest on stdout, the counts on stderr.
fn print_push(report: &etl::ops::push::Report, registry: &etl::oci::registry::Registry) {
    for p in &report.pushed {
        println!("{}@{} {}", p.repository, p.digest, p.tags.join(","));
    }
    eprintln!(
        "pushed {} manifests to `{registry}`: blobs {} uploaded, {} already there ({} HEAD \
         requests); manifests {} uploaded, {} already there; tags {} set, {} unchanged; {} verified",
        report.pushed.len(),
        report.blobs_uploaded,
        report.blobs_skipped,
        report.head_requests,
        report.manifests_uploaded,
        report.manifests_skipped,
        report.tags_set,
        report.tags_unchanged,
        report.verified,
    );
}

/// `--registry` parsed, else the project's registry as `DIST/plan.json` records it.
fn registry_of(
    given: Option<&str>,
    dist: &std::path::Path,
) -> Result<etl::oci::registry::Registry, Box<dyn std::error::Error>> {
    let text = match given {
        Some(text) => text.to_owned(),
        None => {
            let path = dist.join("plan.json");
            let plan: serde_json::Value = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                .map_err(|e| format!("`{}`: {e} (or give --registry)", path.display()))?;
            plan["registry"]
                .as_str()
                .ok_or_else(|| format!("`{}` names no registry: give --registry", path.display()))?
                .to_owned()
        }
    };
    Ok(text.parse()?)
}

impl RegistryArgs {
    /// The credentials for `host`: `--username` with the password from stdin, else the docker
    /// config's, else none. `None` when the password read is empty (a usage error, said).
    fn credentials(
        &self,
        host: &str,
    ) -> Result<Option<etl::oci::registry::Credentials>, Box<dyn std::error::Error>> {
        use etl::oci::registry::Credentials;
        if let Some(username) = &self.username {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| format!("<stdin>: {e}"))?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            if password.is_empty() {
                eprintln!("error: --password-stdin read an empty password");
                return Ok(None);
            }
            return Ok(Some(Credentials::Basic {
                username: username.clone(),
                password,
            }));
        }
        let (credentials, helper) = etl::oci::registry::docker_credentials(host)?;
        if let Some((path, helper)) = helper {
            eprintln!(
                "note: `{}` leaves `{host}` to credential helper `{helper}`, which etl does not \
                 run: going anonymously (use --username and --password-stdin)",
                path.display(),
            );
        }
        Ok(Some(credentials))
    }
}

/// Renders the diagnostics of a run in `format`; `done` replaces the summary line on success.
fn report(
    validation: &etl::spec::Validation,
    repo: &std::path::Path,
    format: Format,
    color: Color,
    done: Option<&str>,
) {
    let paths = Paths::new(&repo.to_string_lossy());
    let diagnostics = &validation.diagnostics;
    match format {
        Format::Human => {
            let color = match color {
                Color::Auto => std::io::stderr().is_terminal(),
                Color::Always => true,
                Color::Never => false,
            };
            let mut text = render::human(diagnostics, validation.sources(), &paths, color);
            match done {
                Some(done) => text.push_str(done),
                None => text.push_str(&render::summary(
                    diagnostics,
                    &format!("`{}`", repo.display()),
                )),
            }
            let _ = writeln!(std::io::stderr(), "{text}");
        }
        Format::Json => print(&render::json(diagnostics)),
        Format::Github => print(&render::github(diagnostics, &paths)),
    }
}

/// A validated repo and the artifacts of its pipelines.
struct Prepared {
    validation: etl::spec::Validation,
    artifacts: etl_run::artifacts::Artifacts,
    /// The cache directory (compositions, compiled code).
    cache: PathBuf,
}

/// Validates the repo and gets the artifacts of the pipelines in `only` (all when empty),
/// compiled in memory or from `--dist`; prints the diagnostics that concern them, notes the
/// files of other pipelines whose errors were set aside, and gives `None` on errors.
fn prepare(
    args: &ArtifactArgs,
    only: &[String],
    color: Color,
) -> Result<Option<Prepared>, Box<dyn std::error::Error>> {
    use etl_run::artifacts::{self, Origin};
    let cache = args.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let origin = match &args.dist {
        Some(dist) => Origin::Dist(dist.clone()),
        None => Origin::Build(Some(etl::store::Cache::new(cache.clone()))),
    };
    let artifacts::Prepared {
        validation,
        artifacts,
        set_aside,
    } = artifacts::prepare_only(&args.repo, &origin, only)?;
    if !validation.diagnostics.is_empty() {
        let done = artifacts.is_some().then_some("");
        report(&validation, &args.repo, Format::Human, color, done);
    }
    if !set_aside.is_empty() {
        let files: Vec<String> = set_aside.iter().map(|f| format!("`{f}`")).collect();
        eprintln!(
            "note: set aside the errors in {}, which belong to other pipelines (`etl validate` shows them)",
            files.join(", "),
        );
    }
    Ok(artifacts.map(|artifacts| Prepared {
        validation,
        artifacts,
        cache,
    }))
}

/// Runs the JSON lines of `path` (`-`: stdin) through `pipeline`, printing each record's
/// outcome in `format` as soon as it is known, then the summary. Lines are read one at a time,
/// so records from stdin run as they arrive. A file is read twice: every line is checked before
/// the first record runs. Progress goes to stderr when it is a terminal and stdout is not.
fn run_streaming(
    pipeline: &etl_run::Pipeline,
    path: &std::path::Path,
    format: RunFormat,
    limits: &etl_run::Limits,
) -> Result<etl_run::Summary, Box<dyn std::error::Error>> {
    use etl_run::input::read_lines;
    let open = || {
        std::fs::File::open(path)
            .map(std::io::BufReader::new)
            .map_err(|source| {
                etl::spec::Error::Io(etl::util::io::IoError::new(path.to_owned(), source))
            })
    };
    let origin = path.display().to_string();
    type Records<'a> =
        Box<dyn Iterator<Item = Result<etl_run::Record, etl_run::input::InputError>> + 'a>;
    let (records, total): (Records<'_>, Option<usize>) = if path.as_os_str() == "-" {
        if std::io::stdin().is_terminal() {
            eprintln!("reading records from stdin, one JSON object a line; end with Ctrl-D");
        }
        (
            Box::new(read_lines("<stdin>", std::io::stdin().lock())),
            None,
        )
    } else if std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        // A regular file is checked whole before anything runs; a pipe or FIFO can be read only
        // once, so it runs as it arrives, like stdin.
        let mut total = 0;
        for record in read_lines(&origin, open()?) {
            pipeline.check_input(total, &record?)?;
            total += 1;
        }
        (Box::new(read_lines(&origin, open()?)), Some(total))
    } else {
        (Box::new(read_lines(&origin, open()?)), None)
    };
    let show = std::io::stderr().is_terminal() && !std::io::stdout().is_terminal();
    let mut last = std::time::Instant::now();
    let mut out = std::io::stdout().lock();
    let mut session = pipeline.session(limits);
    for record in records {
        let outcome = session.feed(&record?)?;
        let text = match format {
            RunFormat::Text => etl_run::output::text_outcome(&outcome),
            RunFormat::Jsonl => etl_run::output::jsonl_outcome(&outcome),
        };
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => {}
            // The reader is gone (`| head`): nothing more can be shown.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(format!("stdout: {e}").into()),
        }
        let done = outcome.input + 1;
        if show && (last.elapsed().as_millis() >= 100 || Some(done) == total) {
            last = std::time::Instant::now();
            match total {
                Some(total) => eprint!("\r{done}/{total} records"),
                None => eprint!("\r{done} records"),
            }
        }
    }
    let summary = session.summary();
    if show && summary.inputs > 0 {
        eprintln!();
    }
    let _ = out.write_all(
        match format {
            RunFormat::Text => etl_run::output::text_summary(&summary),
            RunFormat::Jsonl => etl_run::output::jsonl_summary(&summary),
        }
        .as_bytes(),
    );
    let _ = out.flush();
    Ok(summary)
}

/// Runs every fixture (of `only` pipelines, if any) and reports like a test runner.
fn test(
    prepared: &Prepared,
    only: &[String],
    limits: &etl_run::Limits,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let started = std::time::Instant::now();
    let runtime = etl_run::Runtime::new(Some(&prepared.cache))?;
    let outcomes = etl_run::test::run_fixtures(
        &runtime,
        &prepared.validation.repo,
        &prepared.artifacts,
        only,
        limits,
    )?;
    print(&etl_run::test::render(&outcomes, started.elapsed()));
    Ok(if outcomes.iter().all(|o| o.mismatches.is_empty()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The passphrase of private keys, from the environment.
fn passphrase() -> Option<String> {
    // CI sets a variable from a secret that does not exist to the empty string.
    std::env::var(etl::oci::sign::PASSPHRASE_ENV)
        .ok()
        .filter(|p| !p.is_empty())
}

/// Reads the private key at `path`, naming the file in any error.
fn read_signing_key(path: &std::path::Path) -> Result<etl::oci::sign::SigningKey, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("`{}`: {e}", path.display()))?;
    etl::oci::sign::SigningKey::from_pem(&pem, passphrase().as_deref())
        .map_err(|e| format!("`{}`: {e}", path.display()))
}

/// `etl keygen`: PREFIX.key (created exclusively, 0600) and PREFIX.pub.
fn keygen(prefix: &std::path::Path) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let with = |ext: &str| {
        let mut path = prefix.as_os_str().to_owned();
        path.push(ext);
        PathBuf::from(path)
    };
    let (private, public) = (with(".key"), with(".pub"));
    let pair = etl::oci::sign::keygen(passphrase().as_deref())?;
    etl::util::out_dir::create_new(&[
        etl::util::out_dir::NewFile {
            path: &private,
            bytes: pair.private_pem.as_bytes(),
            mode: 0o600,
        },
        etl::util::out_dir::NewFile {
            path: &public,
            bytes: pair.public_pem.as_bytes(),
            mode: 0o644,
        },
    ])?;
    println!(
        "wrote `{}` (private{}) and `{}` (public)",
        private.display(),
        if passphrase().is_some() {
            ", encrypted with $ETL_KEY_PASSPHRASE"
        } else {
            ", not encrypted"
        },
        public.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads a public key file.
fn read_public_key(path: &std::path::Path) -> Result<etl::oci::sign::VerifyingKey, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("`{}`: {e}", path.display()))?;
    etl::oci::sign::VerifyingKey::from_pem(&pem).map_err(|e| format!("`{}`: {e}", path.display()))
}

/// `etl verify`: one line per artifact; 1 when any is unsigned or bad.
fn verify(
    key: &std::path::Path,
    targets: &[String],
    access: &RegistryArgs,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let key = read_public_key(key)?;
    let mut checked = Vec::new();
    let mut sessions: BTreeMap<String, etl::oci::registry::Session> = BTreeMap::new();
    for target in targets {
        let path = std::path::Path::new(target);
        if path.is_dir() {
            checked.extend(etl::oci::sign::verify_layout(path, &key)?.artifacts);
            continue;
        }
        let Ok(reference) = target.parse::<oci_client::Reference>() else {
            eprintln!(
                "error: `{target}` is neither a directory nor an image reference \
                 (HOST[:PORT]/REPOSITORY:TAG or …@sha256:<hex>)"
            );
            return Ok(ExitCode::from(2));
        };
        let host = reference.resolve_registry().to_owned();
        let explicit = target.contains('@')
            || target
                .rsplit_once('/')
                .is_some_and(|(_, last)| last.contains(':'));
        let Some(pinned) = reference.digest().or(reference.tag()).filter(|_| explicit) else {
            eprintln!(
                "error: `{target}` names no tag or digest: give HOST[:PORT]/REPOSITORY:TAG or \
                 …@sha256:<hex> (no implied `latest`)"
            );
            return Ok(ExitCode::from(2));
        };
        if !sessions.contains_key(&host) {
            let Some(credentials) = access.credentials(&host)? else {
                return Ok(ExitCode::from(2));
            };
            let session = etl::oci::registry::Session::new(
                &host,
                &access.insecure,
                &credentials,
                Default::default(),
            );
            sessions.insert(host.clone(), session);
        }
        let session = &sessions[&host];
        let found = etl::oci::registry::block_on(etl::oci::sign::verify_in_registry(
            session,
            reference.repository(),
            pinned,
            &key,
        ));
        match found {
            Ok(found) => checked.push(found.checked),
            Err(e) => {
                // Nothing was checked: that is no verdict on the signatures.
                eprintln!("error: `{target}` cannot be checked: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let mut bad = 0;
    for a in &checked {
        match &a.outcome {
            Ok(reference) => println!("ok: `{}` {} signed as {reference}", a.name, a.digest),
            Err(problem) => {
                bad += 1;
                let digest = if a.digest.is_empty() {
                    String::new()
                } else {
                    format!(" {}", a.digest)
                };
                println!("error: `{}`{digest}: {problem}", a.name);
            }
        }
    }
    let n = checked.len();
    let noun = if n == 1 { "artifact" } else { "artifacts" };
    if bad == 0 {
        eprintln!("verified {n} {noun}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{bad} of {n} {noun} not signed and valid");
        Ok(ExitCode::from(1))
    }
}

/// `etl promote`: usage problems exit 2, a refusal or registry failure 1.
fn promote(
    dist: &std::path::Path,
    key: &std::path::Path,
    registry: Option<&str>,
    from: String,
    to: String,
    access: &RegistryArgs,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    use etl::ops::promote::PromoteError;
    let key = read_public_key(key)?;
    let registry = match registry_of(registry, dist) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
    let time = match etl::build::provenance::epoch(epoch.as_deref())? {
        Some(time) => time,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    };
    let Some(credentials) = access.credentials(&registry.host)? else {
        return Ok(ExitCode::from(2));
    };
    let options = etl::ops::promote::Options {
        from,
        to,
        registry,
        insecure: access.insecure.clone(),
        credentials,
        retry: Default::default(),
        time,
    };
    let report = match etl::ops::promote::promote(dist, &key, &options) {
        Ok(report) => report,
        Err(e @ (PromoteError::Io(_) | PromoteError::Plan { .. } | PromoteError::Output(_))) => {
            return Err(e.into());
        }
        Err(
            e @ (PromoteError::UnknownEnvironment(_)
            | PromoteError::SameEnvironment(_)
            | PromoteError::OtherRegistry(_)
            | PromoteError::Time(_)),
        ) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    for a in &report.record.artifacts {
        println!(
            "{}/{}@{} {} -> {}",
            options.registry, a.repository, a.digest, options.from, options.to
        );
    }
    eprintln!(
        "promoted {} artifacts from `{}` to `{}` in `{}` (tags {} set, {} unchanged); rewrote {} \
         files of `{}`",
        report.record.artifacts.len(),
        options.from,
        options.to,
        options.registry,
        report.tags_set,
        report.tags_unchanged,
        report.rewritten.len(),
        dist.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `$ETL_CACHE_DIR`, else `$XDG_CACHE_HOME/etl`, else `~/.cache/etl`, else `.etl-cache`.
fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ETL_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("etl");
    }
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from(".etl-cache"),
        |h| PathBuf::from(h).join(".cache/etl"),
    )
}

/// Writes to stdout, ignoring a closed pipe (`etl validate --format json | head`).
fn print(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}
