//! The argument groups several commands share, and what the environment adds to arguments:
//! the cache directory, the key passphrase, registry credentials.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use etl::oci::registry::{self, Credentials};
use etl::ops::status::{Endpoint, Token};

use crate::exit::Error;
use crate::render;

/// When to color human output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// How diagnostics are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Source snippets with carets, for people.
    Human,
    /// A stable JSON document, for tools.
    Json,
    /// GitHub Actions workflow commands.
    Github,
}

/// How to reach a registry: transport and credentials.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Speak plain HTTP to this host (`host` or `host:port`); repeatable. Loopback hosts always
    /// are.
    #[arg(long, value_name = "HOST")]
    pub insecure: Vec<String>,
    /// User name for the registry; the password is read from stdin.
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    username: Option<String>,
    /// Read the password (or token) from stdin, up to the first newline.
    #[arg(long, requires = "username")]
    password_stdin: bool,
}

/// Why no credentials could be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Stdin could not be read.
    #[error("<stdin>: {0}")]
    Stdin(std::io::Error),
    /// The password read is empty.
    #[error("--password-stdin read an empty password")]
    EmptyPassword,
    /// The docker config cannot be read.
    #[error(transparent)]
    DockerConfig(#[from] registry::Error),
    /// `--username` credentials would go to a registry the user did not name.
    #[error(
        "the controller's bundle is in registry `{host}`, which --registry does not name: \
         --username's password goes only to the registry given (pass --registry {host})"
    )]
    UnnamedRegistry {
        /// The registry the controller names.
        host: String,
    },
}

impl RegistryArgs {
    /// Whether a password is given (`--username`, the password on stdin).
    pub fn gives_password(&self) -> bool {
        self.username.is_some()
    }

    /// The credentials for `host`: `--username` with the password from stdin, else the docker
    /// config's, else none.
    pub fn credentials(&self, host: &str) -> Result<Credentials, CredentialsError> {
        if let Some(username) = &self.username {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .map_err(CredentialsError::Stdin)?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            if password.is_empty() {
                return Err(CredentialsError::EmptyPassword);
            }
            return Ok(Credentials::Basic {
                username: username.clone(),
                password,
            });
        }
        let (credentials, helper) = registry::docker_credentials(host)?;
        if let Some((path, helper)) = helper {
            eprintln!(
                "note: `{}` leaves `{host}` to credential helper `{helper}`, which etl does not \
                 run: going anonymously (use --username and --password-stdin)",
                path.display(),
            );
        }
        Ok(credentials)
    }
}

/// Which controller `status`, `top` and `dlq` ask, and how: its URL, token and CA.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// The environment: its controller's URL is then read from $ETL_CONTROLLER_URL_<ENV> (ENV
    /// in upper case, `-` as `_`) when set, and the controller must be applying it.
    #[arg(long = "env", value_name = "ENV")]
    environment: Option<String>,
    /// The controller's URL (http://HOST:PORT or https://…) [default: $ETL_CONTROLLER_URL_<ENV>
    /// with --env, else $ETL_CONTROLLER_URL].
    #[arg(long, value_name = "URL")]
    controller: Option<String>,
    /// A file holding the controller's bearer token [default: $ETL_CONTROLLER_TOKEN].
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for an https controller, besides the system's.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

impl ControllerArgs {
    /// `--env`.
    pub fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    /// The controller to ask: `--controller`, else `$ETL_CONTROLLER_URL_<ENV>` with `--env`,
    /// else `$ETL_CONTROLLER_URL`; the token of `--token-file`, else `$ETL_CONTROLLER_TOKEN`;
    /// `--ca-cert`'s certificate.
    pub fn endpoint(&self) -> Result<Endpoint, Error> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let url = self
            .controller
            .clone()
            .or_else(|| {
                self.environment
                    .as_deref()
                    .and_then(|e| var(&controller_url_variable(e)))
            })
            .or_else(|| var("ETL_CONTROLLER_URL"))
            .ok_or_else(|| {
                Error::NoController(self.environment.as_deref().map(controller_url_variable))
            })?;
        let token = match &self.token_file {
            Some(path) => Some(Token::from_file(path)?),
            None => var("ETL_CONTROLLER_TOKEN")
                .map(|t| Token::new(&t, "ETL_CONTROLLER_TOKEN"))
                .transpose()?,
        };
        let ca_cert = self
            .ca_cert
            .as_deref()
            .map(|path| std::fs::read(path).map_err(etl::util::io::IoError::at(path)))
            .transpose()?;
        Ok(Endpoint {
            url,
            token,
            ca_cert,
        })
    }
}

/// The environment variable of the controller URL of `environment`.
fn controller_url_variable(environment: &str) -> String {
    etl::util::env_var_name("ETL_CONTROLLER_URL_", environment)
}

/// Where `run` and `test` get the composed artifacts.
#[derive(Debug, Args)]
pub struct ArtifactArgs {
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
    /// Which of each step's two artifacts to run: `v2` (the one wasmCloud v2 hosts run) or `v1`
    /// (wasmCloud 1.x). They differ only in how they read their configuration, which the
    /// runner serves both ways.
    #[arg(long, default_value = "v2", value_name = "v1|v2")]
    generation: etl::build::generation::Generation,
}

/// A validated repo and the artifacts of its pipelines.
pub struct Prepared {
    /// The validation, narrowed to the pipelines asked for.
    pub validation: etl::spec::Validation,
    /// The artifacts.
    pub artifacts: etl_run::artifacts::Artifacts,
    /// The cache directory (compositions, compiled code).
    pub cache: PathBuf,
    /// The pipelines selected ([`etl_run::artifacts::Prepared::pipelines`]).
    pub pipelines: Vec<String>,
}

impl ArtifactArgs {
    /// Validates the repo and gets the artifacts of the pipelines `selection` names (all when
    /// none), compiled in memory or from `--dist` ([`etl_run::artifacts::prepare_only`]); renders
    /// the diagnostics that concern them, notes the files of other pipelines whose errors were
    /// set aside, and gives `None` on errors.
    pub fn prepare(
        &self,
        selection: &etl_run::artifacts::Selection,
        color: Color,
    ) -> Result<Option<Prepared>, Error> {
        use etl_run::artifacts::{self, Origin};
        let cache = cache_dir(self.cache_dir.clone());
        let origin = match &self.dist {
            Some(dist) => Origin::Dist(dist.clone()),
            None => Origin::Build(Some(etl::store::Cache::new(cache.clone()))),
        };
        let artifacts::Prepared {
            validation,
            artifacts,
            set_aside,
            pipelines,
        } = artifacts::prepare_only(&self.repo, &origin, selection, self.generation)?;
        if !validation.diagnostics.is_empty() {
            let done = artifacts.is_some().then_some("");
            render::diagnostics(&validation, &self.repo, Format::Human, color, done);
        }
        render::set_aside(&set_aside);
        Ok(artifacts.map(|artifacts| Prepared {
            validation,
            artifacts,
            cache,
            pipelines,
        }))
    }
}

/// Where `run` and `test` take secret values from (see docs/running.md).
#[derive(Debug, Args)]
pub struct SecretArgs {
    /// Values of the pipeline's secrets: a YAML or JSON map of secret key (the KEY of
    /// `{secret: KEY}`) to string value. A key it lacks is read from the environment variable
    /// ETL_SECRET_<KEY> (the key in upper case, every character but a letter or digit as `_`:
    /// `alerts-webhook-token` is ETL_SECRET_ALERTS_WEBHOOK_TOKEN). Values are never printed:
    /// output shows `<secret KEY>` in their place.
    #[arg(long, value_name = "FILE")]
    secrets: Option<PathBuf>,
}

impl SecretArgs {
    /// The values: the file's, then the environment's.
    pub fn values(&self) -> Result<etl_run::secrets::SecretValues, Error> {
        Ok(match &self.secrets {
            Some(path) => etl_run::secrets::SecretValues::from_file(path)?,
            None => etl_run::secrets::SecretValues::from_env(),
        })
    }
}

/// Limits of every call into a component (see docs/running.md).
#[derive(Debug, Args)]
pub struct LimitArgs {
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
    /// Calls (batches) one instance of a step or sink may serve in a row (1: a fresh instance
    /// per batch). More is faster but lets state a component keeps reach the next records; an
    /// instance is replaced after any failure.
    #[arg(long, default_value_t = etl_run::Limits::default().calls_per_instance, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    calls_per_instance: u32,
    /// Records the source delivers at a time, as one request or message (1: one record per
    /// call). Outputs, dead letters and counts stay per record.
    #[arg(long, default_value_t = etl_run::Limits::default().batch as u64, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch: u64,
}

impl LimitArgs {
    /// The limits these arguments give.
    pub fn limits(&self) -> etl_run::Limits {
        etl_run::Limits {
            fuel: self.fuel,
            memory: (self.memory as usize) << 20,
            max_outputs: self.max_outputs as usize,
            retries: self.retries,
            calls_per_instance: self.calls_per_instance,
            batch: self.batch as usize,
        }
    }
}

/// `--cache-dir` when given, else `$ETL_CACHE_DIR`, else `$XDG_CACHE_HOME/etl`, else
/// `~/.cache/etl`, else `.etl-cache`.
pub fn cache_dir(given: Option<PathBuf>) -> PathBuf {
    if let Some(dir) = given {
        return dir;
    }
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

/// The passphrase of private keys, from `$ETL_KEY_PASSPHRASE`.
pub fn passphrase() -> Option<String> {
    // CI sets a variable from a secret that does not exist to the empty string.
    std::env::var(etl::oci::sign::PASSPHRASE_ENV)
        .ok()
        .filter(|p| !p.is_empty())
}

/// `$SOURCE_DATE_EPOCH`, if set.
pub fn source_date_epoch() -> Option<String> {
    std::env::var("SOURCE_DATE_EPOCH").ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn controller_url_variables() {
        assert_eq!(
            super::controller_url_variable("dev"),
            "ETL_CONTROLLER_URL_DEV"
        );
        assert_eq!(
            super::controller_url_variable("eu-west.1"),
            "ETL_CONTROLLER_URL_EU_WEST_1"
        );
    }
}
