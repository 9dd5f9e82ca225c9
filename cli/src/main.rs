//! The `etl` command line: a thin shell over the libraries `etl` and `etl-run`. Parses the
//! arguments and runs one command ([`commands`]), which calls the library and renders the
//! result; [`exit`] maps the outcome to the exit status (0 ok, 1 invalid input or a failed check,
//! 2 usage or internal error).

mod args;
mod commands;
mod exit;
mod render;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use args::Color;
use exit::{Error, Verdict};

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
    Validate(commands::validate::Args),
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
    Compile(commands::compile::Args),
    /// Make an ECDSA P-256 key pair for `etl compile --sign-key` and `etl verify --key`:
    /// PREFIX.key (PKCS#8 PEM, private, mode 0600) and PREFIX.pub (public, PEM, as cosign reads).
    ///
    /// The private key is encrypted with $ETL_KEY_PASSPHRASE when it is set. Existing files are
    /// never overwritten. Exit status: 0 written, 2 a file exists or cannot be written.
    Keygen(commands::keygen::Args),
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
    Verify(commands::verify::Args),
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
    Promote(commands::promote::Args),
    /// Show a component's imports and exports in WIT terms, and whether it satisfies the
    /// customer contract (world `etl:pipeline/transformer@0.1.0`) under a policy.
    ///
    /// Accepts a component or a core module with component-type metadata (a wit-bindgen build),
    /// which is componentized as `etl compile` does. Exit status: 0 satisfies the contract, 1 does
    /// not (or is not a usable component), 2 the file cannot be read.
    Inspect(commands::inspect::Args),
    /// Run records through one pipeline in-process: the composed artifacts, wired as on a
    /// lattice, with an in-memory bus for NATS and captured HTTP and S3 sinks.
    ///
    /// `etl run P Q…` runs several pipelines on one bus: records enter P, and Q receives what
    /// it reads of P's (a sub-pipeline); `--downstream` adds every sub-pipeline of those named.
    /// Alone, a sub-pipeline takes the input at its source, as records of what it reads.
    ///
    /// Reads JSON lines (`{"payload": "text"}`, `{"json": {…}}` or `{"base64": "…"}`, each with
    /// optional `key` and `headers`) and prints, as each record completes, what reached each
    /// sink, dead letters and failures; then a summary. Exit status: 0 every record was handled
    /// (delivered, filtered or dead-lettered), 1 some record failed or the repo is invalid, 2
    /// usage or internal error.
    Run(commands::run::Args),
    /// Run the repo's fixtures (`tests/*.yaml`) through their pipelines and compare what
    /// reaches each sink, the dead letters and the counts with what they expect.
    ///
    /// With pipelines named, errors in the files of other pipelines are set aside (noted).
    ///
    /// Exit status: 0 every fixture passed, 1 a fixture failed or the repo is invalid, 2 usage
    /// or internal error.
    Test(commands::test::Args),
    /// Draw a pipeline (source → steps → sinks, edges from `from:`) as a Mermaid flowchart
    /// (for Markdown and pull requests) or Graphviz DOT (`| dot -Tsvg`).
    ///
    /// Exit status: 0 drawn, 1 the repo is invalid, 2 usage error (e.g. an unknown pipeline).
    Graph(commands::graph::Args),
    /// Show what a change deploys differently: compare two compiled plans, pipeline by pipeline
    /// and environment by environment (artifacts and why they changed, new capabilities, the
    /// delivery guarantee and JetStream stream and consumer settings, scaling, configuration,
    /// links, secrets by name, providers). See docs/diff.md.
    ///
    /// BASE and HEAD are each a directory (an `etl compile` output with plan.json, or a pipeline
    /// repo, compiled in memory) or else a git ref of `--repo`, exported and compiled in memory
    /// (the work tree is never touched). Exit status: 0 no changes, 1 changes, 2 usage error, a
    /// side that does not compile, or an internal error.
    Diff(commands::diff::Args),
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
    Push(commands::push::Args),
    /// Show what an environment's etl-controller applied and how it runs: the bundle (digest,
    /// commit, signer, when), the tag's digest and whether the registry answered, and per
    /// pipeline its state (deployed, reconciling, failed with the lattice's reason, undeployed)
    /// and version, and under it each step's and sink's counts once they report (records in,
    /// out, filtered, dead-lettered, failed; retries; records in and out per second). See
    /// docs/controller.md.
    ///
    /// The controller is asked at `<URL>/status` (URL from --controller, else
    /// $ETL_CONTROLLER_URL_<ENV> with --env, else $ETL_CONTROLLER_URL), with the bearer token
    /// of --token-file or $ETL_CONTROLLER_TOKEN. With --wait, asked again until the
    /// environment runs the bundle its tag names now: the controller says `ready` and applied
    /// the digest the registry gives the tag at that moment (a HEAD by etl itself, reached as by
    /// `etl push`), so a push just before is seen; an unreachable controller counts as not ready.
    ///
    /// Exit status: 0 ready, 1 not ready (with --wait: not within --timeout; the last status is
    /// printed), 2 usage error, or the controller cannot be asked (no URL, refused token,
    /// another environment, not a controller).
    Status(commands::status::Args),
    /// Watch an environment's steps and sinks at work: per pipeline (by name), each step's and
    /// sink's records in, out, filtered, dead-lettered and failed, retries, and records in and
    /// out per second, read from its etl-controller every --interval. See docs/controller.md.
    ///
    /// The counts are the controller's, added up from every batch's report since it began
    /// counting; the rates are its own over its last window, or, when it gives none, computed
    /// from two readings (marked `*`). On a terminal the frame is redrawn in place; elsewhere
    /// frames follow one another, a blank line between. The controller is chosen as for `etl
    /// status`. After the first reading, a controller that cannot be reached is noted and asked
    /// again.
    ///
    /// Exit status: 0 after --once or Ctrl-C, 2 usage error, or the controller cannot be asked
    /// (no URL, a refused token, another environment, not a controller).
    Top(commands::top::Args),
    /// Read and replay an environment's dead letters: the records a step rejected as invalid
    /// (its transform answered `invalid` with a reason), of which its etl-controller keeps the
    /// most recent. See docs/controller.md.
    ///
    /// What the controller keeps and serves is truncated (a preview of each payload, with its
    /// size and digest) and redacted (values of secret-looking JSON keys and headers replaced
    /// by `[redacted]`): etl never sees more. A replay publishes dead letters to their step
    /// again, and the controller records who asked (--actor), with which credential, from
    /// where and when. The controller is chosen as for `etl status`.
    Dlq(commands::dlq::Args),
    /// Scaffold a pipeline repo (project, one pipeline, one environment, one fixture) that
    /// validates, tests, compiles and runs: its one step is a pass-through component, for you to
    /// replace. Never overwrites existing files.
    Init(commands::init::Args),
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!(
            "error: internal error in etl: {info}\nThis is a bug: please report it with the input that caused it."
        );
    }));
    let cli = Cli::parse();
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(result) => exit::status(result),
        Err(_) => exit::panicked(),
    }
}

/// Runs the command `cli` names.
fn run(cli: Cli) -> Result<Verdict, Error> {
    let color = cli.color;
    match cli.command {
        Command::Validate(args) => commands::validate::run(args, color),
        Command::Compile(args) => commands::compile::run(args, color),
        Command::Keygen(args) => commands::keygen::run(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Promote(args) => commands::promote::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Run(args) => commands::run::run(args, color),
        Command::Test(args) => commands::test::run(args, color),
        Command::Graph(args) => commands::graph::run(args, color),
        Command::Diff(args) => commands::diff::run(args, color),
        Command::Push(args) => commands::push::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::Top(args) => commands::top::run(args),
        Command::Dlq(args) => commands::dlq::run(args),
        Command::Init(args) => commands::init::run(args),
    }
}
