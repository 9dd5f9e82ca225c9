//! The `etl` command line: a thin shell over the library. Parses arguments, runs one command,
//! renders its result, and maps it to an exit code (0 ok, 1 invalid input, 2 usage or internal
//! error).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use etl::render::{self, Paths};

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
    /// Check a pipeline repo against the schemas and graph rules; report every problem.
    ///
    /// Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage or internal error.
    Validate {
        /// The pipeline repo (the directory holding etl.yaml).
        #[arg(long, default_value = ".", value_name = "DIR")]
        repo: PathBuf,
        /// Output format: `human` (snippets on stderr), `json` (stable document on stdout, see
        /// docs/diagnostics.md) or `github` (workflow annotations on stdout).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Validate, resolve every component by digest, compose each step and sink into one
    /// component, and write `--out` (plan.json + components/sha256/…) in one atomic swap.
    ///
    /// Nothing is written unless everything succeeds: a failed compile leaves the previous
    /// output as it was. Exit status: 0 compiled, 1 invalid input, 2 usage or internal error.
    Compile {
        /// The pipeline repo (the directory holding etl.yaml).
        #[arg(long, default_value = ".", value_name = "DIR")]
        repo: PathBuf,
        /// Where to write the output.
        #[arg(long, default_value = "dist", value_name = "DIR")]
        out: PathBuf,
        /// Cache of componentized modules and compositions (default: $ETL_CACHE_DIR, else
        /// $XDG_CACHE_HOME/etl, else ~/.cache/etl).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// Build everything, ignoring and not filling the cache.
        #[arg(long)]
        no_cache: bool,
        /// Output format of diagnostics, as for `etl validate`.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
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
    /// Scaffold a pipeline repo (project, one pipeline, one environment, one fixture) that
    /// validates cleanly. Never overwrites existing files.
    Init {
        /// Where to create it (created if missing).
        #[arg(default_value = ".", value_name = "DIR")]
        dir: PathBuf,
        /// Project name; defaults to the directory name.
        #[arg(long)]
        name: Option<String>,
    },
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

fn run(cli: Cli) -> Result<ExitCode, etl::Error> {
    match cli.command {
        Command::Validate { repo, format } => {
            let validation = etl::validate(&repo)?;
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
        } => {
            let cache = (!no_cache)
                .then(|| etl::resolve::Cache::new(cache_dir.unwrap_or_else(default_cache_dir)));
            let compilation = etl::compile::compile(
                &repo,
                &etl::compile::Options {
                    out: out.clone(),
                    cache,
                },
            )?;
            let done = compilation.plan.as_ref().map(|plan| {
                let units: usize = plan.pipelines.iter().map(|p| p.steps.len() + p.sinks.len()).sum();
                format!(
                    "compiled {} pipeline{} ({units} components, {} built, {} from cache) into `{}`",
                    plan.pipelines.len(),
                    if plan.pipelines.len() == 1 { "" } else { "s" },
                    compilation.built,
                    units.saturating_sub(compilation.built),
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
            Ok(if compilation.plan.is_some() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Inspect { file, allow } => {
            let mut grants = Vec::new();
            for text in allow {
                match etl::model::Grant::try_from(text) {
                    Ok(g) => grants.push(g),
                    Err(e) => {
                        eprintln!(
                            "error: {e}: expected `namespace:package/interface[@version]` or `namespace:package/*`"
                        );
                        return Ok(ExitCode::from(2));
                    }
                }
            }
            let bytes = std::fs::read(&file).map_err(|source| etl::Error::Io {
                path: file.clone(),
                source,
            })?;
            let name = file.display().to_string();
            match etl::resolve::prepare(&name, bytes, None) {
                Ok(resolved) => {
                    print(&etl::inspect::describe(&name, &resolved, &grants));
                    Ok(if etl::inspect::satisfies(&resolved, &grants) {
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
        Command::Init { dir, name } => {
            let files = etl::init::init(&dir, name.as_deref())?;
            println!("created a pipeline repo in `{}`:", dir.display());
            for f in files {
                println!("  {f}");
            }
            println!("next: `etl validate --repo {}`", dir.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Renders the diagnostics of a run in `format`; `done` replaces the summary line on success.
fn report(
    validation: &etl::Validation,
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
