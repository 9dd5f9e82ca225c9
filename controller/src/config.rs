//! The controller's configuration: flags, a YAML file (`--config FILE`, the flags' names as
//! kebab-case keys; a flag given wins over the file, a repeatable flag given replaces the
//! file's list) and two environment variables (`ETL_CONTROLLER_TOKEN`,
//! `ETL_REGISTRY_PASSWORD`), checked together into [`Settings`] before anything starts. Every
//! refusal says what to change.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use etl::build::generation::Generation;
use etl::oci::registry::{self, Credentials};
use etl::oci::sign::VerifyingKey;
use etl::ops::status::{BundleRef, Token, TokenError};
use serde::Deserialize;

/// The environment variable holding the bearer token (when `--token-file` is not given).
pub const TOKEN_ENV: &str = "ETL_CONTROLLER_TOKEN";
/// The environment variable holding the registry password of `--registry-username`.
pub const PASSWORD_ENV: &str = "ETL_REGISTRY_PASSWORD";
/// The shortest poll interval accepted.
const MIN_POLL: Duration = Duration::from_millis(100);

/// Applies the deployment bundle an environment's tag names to a wasmCloud lattice, and says
/// what runs (`docs/controller.md`).
///
/// Every flag is also a key of the `--config` file (same name, without the dashes in front);
/// a flag given wins over the file.
#[derive(Debug, Default, clap::Parser)]
#[command(name = "etl-controller", version)]
pub struct Flags {
    /// A YAML file of settings: the flags' names as keys (`bundle:`, `poll-interval:`,
    /// `insecure: [..]`, …). Relative paths in it are relative to the file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The bundle to apply, by the tag that moves: HOST[:PORT]/REPOSITORY:TAG, e.g.
    /// `registry.acme.example/etl/bundles/iot-sensors/dev:dev`. Required.
    #[arg(long, value_name = "REF")]
    pub bundle: Option<String>,
    /// The project's public key (PEM, as `etl keygen` writes it): only bundles it signed are
    /// applied. Required.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Which wasmCloud the lattice runs: `v1` (1.x, through wadm) or `v2` (the hosts' workload
    /// API). Required.
    #[arg(long, value_name = "v1|v2")]
    pub generation: Option<String>,
    /// The lattice's NATS [default: nats://127.0.0.1:4222].
    #[arg(long, value_name = "URL")]
    pub nats_url: Option<String>,
    /// A NATS credentials file (`.creds`: user JWT and nkey seed).
    #[arg(long, value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,
    /// The wasmCloud 1.x lattice [default: the bundle's]; a bundle for another one is refused.
    #[arg(long, value_name = "NAME")]
    pub lattice: Option<String>,
    /// The environment applied; a bundle for another one is refused [default: the bundle
    /// repository's `…/bundles/<project>/<env>`, else the first bundle's].
    #[arg(long, value_name = "ENV")]
    pub environment: Option<String>,
    /// How often to check the tag (and repair drift) [default: 10s].
    #[arg(long, value_name = "DURATION")]
    pub poll_interval: Option<String>,
    /// A registry host (`host` or `host:port`) spoken to in plain HTTP; repeatable. Loopback
    /// hosts always are.
    #[arg(long, value_name = "HOST")]
    pub insecure: Vec<String>,
    /// The registry user; the password is read from $ETL_REGISTRY_PASSWORD. Without it, the
    /// docker config's credentials for the host, else anonymous.
    #[arg(long, value_name = "USER")]
    pub registry_username: Option<String>,
    /// Where the HTTP status API listens [default: 127.0.0.1:9464]. Anything but a loopback
    /// address needs a bearer token.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// A file holding the bearer token every HTTP request must carry (else $ETL_CONTROLLER_TOKEN
    /// when set).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The HTTPS certificate chain (PEM); with --tls-key, the API speaks HTTPS only.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The HTTPS private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// v2: a label an administrator gives a host, HOST=KEY=VALUE (the host's id or name);
    /// repeatable. Spreads choose hosts by labels.
    #[arg(long = "host-label", value_name = "HOST=KEY=VALUE")]
    pub host_labels: Vec<String>,
    /// v2: a file of Kubernetes `Secret` documents (YAML) holding the values the bundle's
    /// manifests reference. Values are never logged.
    #[arg(long, value_name = "FILE")]
    pub secrets: Option<PathBuf>,
    /// The data plane's NATS, where steps publish reports and dead letters and listen for
    /// replays [default: the lattice's NATS, --nats-url]. Needs JetStream.
    #[arg(long, value_name = "URL")]
    pub data_nats_url: Option<String>,
    /// A credentials file (`.creds`) for --data-nats-url [default: --nats-creds when --data-nats-url
    /// is not given].
    #[arg(long, value_name = "FILE")]
    pub data_nats_creds: Option<PathBuf>,
    /// How many dead-letter messages to keep per step (the newest) [default: 100].
    #[arg(long, value_name = "N")]
    pub dead_letters_kept: Option<u64>,
    /// How long the report stream keeps reports, so that a controller down that long loses
    /// none [default: 24h].
    #[arg(long, value_name = "DURATION")]
    pub report_retention: Option<String>,
    /// An OpenTelemetry collector's OTLP/HTTP base URL (e.g. `http://127.0.0.1:4318`): metrics
    /// and one span per report are sent to `/v1/metrics` and `/v1/traces` [default: none].
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// How often to send to --otlp-endpoint [default: 10s].
    #[arg(long, value_name = "DURATION")]
    pub otlp_interval: Option<String>,
}

/// The config file: the flags' names as keys.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    bundle: Option<String>,
    key: Option<PathBuf>,
    generation: Option<String>,
    nats_url: Option<String>,
    nats_creds: Option<PathBuf>,
    lattice: Option<String>,
    environment: Option<String>,
    poll_interval: Option<String>,
    insecure: Vec<String>,
    registry_username: Option<String>,
    listen: Option<String>,
    token_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    host_label: Vec<String>,
    secrets: Option<PathBuf>,
    data_nats_url: Option<String>,
    data_nats_creds: Option<PathBuf>,
    dead_letters_kept: Option<u64>,
    report_retention: Option<String>,
    otlp_endpoint: Option<String>,
    otlp_interval: Option<String>,
}

/// The NATS connection.
#[derive(Debug, Clone)]
pub struct Nats {
    /// The server URL.
    pub url: String,
    /// The credentials file, if any.
    pub creds: Option<PathBuf>,
}

impl Nats {
    /// The URL as logs and errors may show it: a user and password in it (`nats://u:p@host`)
    /// replaced by `***`.
    pub fn shown_url(&self) -> String {
        match self.url.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}"),
                None => self.url.clone(),
            },
            None => self.url.clone(),
        }
    }
}

/// What the controller does with what steps report (`docs/reporting.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Telemetry {
    /// Dead-letter messages kept per step.
    pub dead_letters_kept: u64,
    /// How long the report stream keeps reports.
    pub report_retention: Duration,
    /// Where to send OTLP, when anywhere.
    pub otlp: Option<Otlp>,
}

/// The OTLP/HTTP export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Otlp {
    /// The collector's base URL, without a trailing `/`.
    pub endpoint: String,
    /// How often to send.
    pub interval: Duration,
}

/// A host label: what `--host-label HOST=KEY=VALUE` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLabel {
    /// The host's id or name.
    pub host: String,
    /// The label's key.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The bundle reference polled.
    pub bundle: BundleRef,
    /// The key bundles must be signed with.
    pub key: VerifyingKey,
    /// The generation driven.
    pub generation: Generation,
    /// The lattice's NATS.
    pub nats: Nats,
    /// The data plane's NATS, when not the lattice's.
    pub data_nats_url: Option<Nats>,
    /// Reports, dead letters, OTLP.
    pub telemetry: Telemetry,
    /// `--lattice`, when given.
    pub lattice: Option<String>,
    /// The environment required of bundles: `--environment`, else the repository's
    /// conventional name.
    pub environment: Option<String>,
    /// The project required of bundles: the repository's conventional name, when it has one.
    pub project: Option<String>,
    /// How often the tag is checked.
    pub poll_interval: Duration,
    /// Registry hosts spoken to in plain HTTP besides loopback ones.
    pub insecure: Vec<String>,
    /// The registry's credentials.
    pub credentials: Credentials,
    /// Where the status API listens.
    pub listen: SocketAddr,
    /// The bearer token of the status API.
    pub token: Option<Token>,
    /// HTTPS, when a certificate and key were given.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// v2: the hosts' labels.
    pub host_labels: Vec<HostLabel>,
    /// v2: the secrets file.
    pub secrets: Option<PathBuf>,
    /// What the operator should know about the configuration (e.g. a credential helper that is
    /// not run), for the log.
    pub notes: Vec<String>,
}

/// Why the configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("config file `{}`: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not the expected YAML.
    #[error("config file `{}`: {detail}", path.display())]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// The parser's words (with line and column).
        detail: String,
    },
    /// A required setting is missing.
    #[error("--{name} is required (or `{name}:` in the config file): {what}")]
    Missing {
        /// The flag's name.
        name: &'static str,
        /// What it is for.
        what: &'static str,
    },
    /// A setting's value is not usable.
    #[error("--{name} `{value}`: {reason}")]
    Invalid {
        /// The flag's name.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// A file a setting names cannot be read.
    #[error("--{name} `{}`: {source}", path.display())]
    File {
        /// The flag's name.
        name: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bundle reference is not one.
    #[error("--bundle: {0}")]
    Bundle(#[from] etl::ops::status::BundleRefError),
    /// The key file is not a public key.
    #[error("--key `{}`: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The token cannot be had.
    #[error("the bearer token: {0}")]
    Token(#[from] TokenError),
    /// Listening beyond loopback without a token.
    #[error(
        "--listen {0} is not a loopback address, and no bearer token is set: anyone who can \
         reach it could read what runs. Set one with --token-file FILE (or {TOKEN_ENV}), or \
         listen on 127.0.0.1"
    )]
    OpenListen(SocketAddr),
    /// The certificate or key for HTTPS is unusable.
    #[error("HTTPS: {0}")]
    Tls(String),
    /// A registry setting is incomplete or unreadable.
    #[error("registry credentials: {0}")]
    Registry(String),
    /// A v2-only setting was given for v1.
    #[error("--{0} applies to --generation v2 only (the hosts' workload API); remove it")]
    V2Only(&'static str),
    /// `--environment` contradicts the bundle repository's name.
    #[error(
        "--environment {given}, but the bundle repository `{repository}` is environment \
         `{named}`'s (…/bundles/<project>/<environment>): point --bundle at \
         …/bundles/<project>/{given}:{given}, or drop --environment"
    )]
    EnvironmentMismatch {
        /// `--environment`.
        given: String,
        /// The repository.
        repository: String,
        /// The environment its name says.
        named: String,
    },
}

impl Settings {
    /// Checks `flags` (with the config file they name) into settings; `env` reads environment
    /// variables (`std::env::var` in `main`).
    pub fn resolve(
        flags: Flags,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let (file, base) = match &flags.config {
            Some(path) => (read_file(path)?, path.parent().map(Path::to_owned)),
            None => (File::default(), None),
        };
        // A path from the file is relative to the file.
        let from_file = |p: Option<PathBuf>| {
            p.map(|p| match &base {
                Some(base) if p.is_relative() => base.join(p),
                _ => p,
            })
        };
        let list = |flag: Vec<String>, file: Vec<String>| if flag.is_empty() { file } else { flag };
        let bundle = flags.bundle.or(file.bundle);
        let key = flags.key.or(from_file(file.key));
        let generation = flags.generation.or(file.generation);
        let nats_url = flags.nats_url.or(file.nats_url);
        let nats_creds = flags.nats_creds.or(from_file(file.nats_creds));
        let lattice = flags.lattice.or(file.lattice);
        let environment = flags.environment.or(file.environment);
        let poll_interval = flags.poll_interval.or(file.poll_interval);
        let insecure = list(flags.insecure, file.insecure);
        let registry_username = flags.registry_username.or(file.registry_username);
        let listen = flags.listen.or(file.listen);
        let token_file = flags.token_file.or(from_file(file.token_file));
        let tls_cert = flags.tls_cert.or(from_file(file.tls_cert));
        let tls_key = flags.tls_key.or(from_file(file.tls_key));
        let host_labels = list(flags.host_labels, file.host_label);
        let secrets = flags.secrets.or(from_file(file.secrets));
        let data_nats_url = flags.data_nats_url.or(file.data_nats_url);
        let data_nats_creds = flags.data_nats_creds.or(from_file(file.data_nats_creds));
        let dead_letters_kept = flags.dead_letters_kept.or(file.dead_letters_kept);
        let report_retention = flags.report_retention.or(file.report_retention);
        let otlp_endpoint = flags.otlp_endpoint.or(file.otlp_endpoint);
        let otlp_interval = flags.otlp_interval.or(file.otlp_interval);

        let bundle: BundleRef = bundle
            .ok_or(ConfigError::Missing {
                name: "bundle",
                what: "the bundle to apply, by its tag: HOST[:PORT]/REPOSITORY:TAG",
            })?
            .parse()?;
        let key_path = key.ok_or(ConfigError::Missing {
            name: "key",
            what: "the project's public key (PEM), which bundles must be signed with",
        })?;
        let pem = std::fs::read_to_string(&key_path).map_err(|source| ConfigError::File {
            name: "key",
            path: key_path.clone(),
            source,
        })?;
        let key = VerifyingKey::from_pem(&pem).map_err(|e| ConfigError::Key {
            path: key_path.clone(),
            reason: e.to_string(),
        })?;
        let generation_text = generation.ok_or(ConfigError::Missing {
            name: "generation",
            what: "`v1` (wasmCloud 1.x, through wadm) or `v2` (the hosts' workload API)",
        })?;
        let generation: Generation =
            generation_text
                .parse()
                .map_err(
                    |e: etl::build::generation::UnknownGeneration| ConfigError::Invalid {
                        name: "generation",
                        value: generation_text.clone(),
                        reason: e.to_string(),
                    },
                )?;

        let nats_url = nats_url.unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
        nats_server("nats-url", &nats_url)?;
        if let Some(path) = &nats_creds {
            readable("nats-creds", path)?;
        }
        let data_nats_url = match (data_nats_url, data_nats_creds) {
            (Some(url), creds) => {
                nats_server("data-nats-url", &url)?;
                if let Some(path) = &creds {
                    readable("data-nats-creds", path)?;
                }
                Some(Nats { url, creds })
            }
            (None, Some(path)) => {
                return Err(ConfigError::Invalid {
                    name: "data-nats-creds",
                    value: path.display().to_string(),
                    reason: "given without --data-nats-url: without it the lattice's NATS (and \
                             --nats-creds) carries the data plane too"
                        .to_owned(),
                });
            }
            (None, None) => None,
        };
        let telemetry = Telemetry {
            dead_letters_kept: match dead_letters_kept {
                None => 100,
                Some(0) => {
                    return Err(ConfigError::Invalid {
                        name: "dead-letters-kept",
                        value: "0".to_owned(),
                        reason: "at least 1".to_owned(),
                    });
                }
                Some(n) => n,
            },
            report_retention: duration(
                "report-retention",
                report_retention,
                Duration::from_secs(24 * 3600),
                Duration::from_secs(60),
            )?,
            otlp: match otlp_endpoint {
                None => None,
                Some(endpoint) => Some(Otlp {
                    endpoint: otlp_url(&endpoint)?,
                    interval: duration(
                        "otlp-interval",
                        otlp_interval,
                        Duration::from_secs(10),
                        Duration::from_secs(1),
                    )?,
                }),
            },
        };

        if let Some(lattice) = &lattice {
            subject_token("lattice", lattice)?;
        }
        if let Some(environment) = &environment {
            subject_token("environment", environment)?;
        }
        let (project, environment) = match bundle.conventional_names() {
            Some((project, named)) => {
                if let Some(given) = &environment
                    && given != named
                {
                    return Err(ConfigError::EnvironmentMismatch {
                        given: given.clone(),
                        repository: bundle.repository.clone(),
                        named: named.to_owned(),
                    });
                }
                (Some(project.to_owned()), Some(named.to_owned()))
            }
            None => (None, environment),
        };

        let poll_interval = match poll_interval {
            None => Duration::from_secs(10),
            Some(text) => match humantime::parse_duration(&text) {
                Ok(d) if d >= MIN_POLL => d,
                Ok(_) => {
                    return Err(ConfigError::Invalid {
                        name: "poll-interval",
                        value: text,
                        reason: format!("at least {}", humantime::format_duration(MIN_POLL)),
                    });
                }
                Err(e) => {
                    return Err(ConfigError::Invalid {
                        name: "poll-interval",
                        value: text,
                        reason: format!("{e}: expected a duration such as 500ms, 10s or 1m"),
                    });
                }
            },
        };

        let mut notes = Vec::new();
        let password = env(PASSWORD_ENV).filter(|p| !p.is_empty());
        let credentials = match (registry_username, password) {
            (Some(username), Some(password)) => Credentials::Basic { username, password },
            (Some(_), None) => {
                return Err(ConfigError::Registry(format!(
                    "--registry-username is given but {PASSWORD_ENV} is not set: set it to the \
                     password (or access token)"
                )));
            }
            (None, Some(_)) => {
                return Err(ConfigError::Registry(format!(
                    "{PASSWORD_ENV} is set but --registry-username is not: give the user name \
                     too"
                )));
            }
            (None, None) => {
                let (credentials, helper) = registry::docker_credentials(&bundle.host)
                    .map_err(|e| ConfigError::Registry(e.to_string()))?;
                if let Some((path, helper)) = helper {
                    notes.push(format!(
                        "`{}` leaves `{}` to credential helper `{helper}`, which the controller \
                         does not run: going anonymously (use --registry-username and \
                         {PASSWORD_ENV})",
                        path.display(),
                        bundle.host
                    ));
                }
                credentials
            }
        };

        let listen_text = listen.unwrap_or_else(|| "127.0.0.1:9464".to_owned());
        let listen: SocketAddr = listen_text.parse().map_err(|_| ConfigError::Invalid {
            name: "listen",
            value: listen_text.clone(),
            reason: "expected IP:PORT, e.g. 127.0.0.1:9464 or 0.0.0.0:9464".to_owned(),
        })?;
        let token = match token_file {
            Some(path) => Some(Token::from_file(&path)?),
            None => match env(TOKEN_ENV) {
                Some(text) if !text.is_empty() => Some(Token::new(&text, TOKEN_ENV)?),
                _ => None,
            },
        };
        if !listen.ip().is_loopback() && token.is_none() {
            return Err(ConfigError::OpenListen(listen));
        }
        let tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some(
                crate::serve::tls_config(&cert, &key)
                    .map_err(|e| ConfigError::Tls(e.to_string()))?,
            ),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::Tls(
                    "--tls-cert is given without --tls-key: give both, or neither".to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::Tls(
                    "--tls-key is given without --tls-cert: give both, or neither".to_owned(),
                ));
            }
        };

        if !listen.ip().is_loopback() && tls.is_none() {
            notes.push(format!(
                "--listen {listen} without --tls-cert/--tls-key: the bearer token crosses the \
                 network in clear text; serve HTTPS, or listen on loopback behind a TLS proxy"
            ));
        }
        let host_labels = host_labels
            .iter()
            .map(|text| host_label(text))
            .collect::<Result<Vec<_>, _>>()?;
        if generation == Generation::V1 {
            if !host_labels.is_empty() {
                return Err(ConfigError::V2Only("host-label"));
            }
            if secrets.is_some() {
                return Err(ConfigError::V2Only("secrets"));
            }
        }
        if let Some(path) = &secrets {
            readable("secrets", path)?;
        }

        Ok(Settings {
            bundle,
            key,
            generation,
            nats: Nats {
                url: nats_url,
                creds: nats_creds,
            },
            data_nats_url,
            telemetry,
            lattice,
            environment,
            project,
            poll_interval,
            insecure,
            credentials,
            listen,
            token,
            tls,
            host_labels,
            secrets,
            notes,
        })
    }

    /// The host labels by host, as the v2 applier takes them.
    pub fn labels_by_host(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut by_host: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for label in &self.host_labels {
            by_host
                .entry(label.host.clone())
                .or_default()
                .insert(label.key.clone(), label.value.clone());
        }
        by_host
    }
}

fn read_file(path: &Path) -> Result<File, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    if text.trim().is_empty() {
        return Ok(File::default());
    }
    serde_saphyr::from_str(&text).map_err(|e| ConfigError::ParseFile {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

/// Fails unless `url` is a NATS server URL (shown without its password when refused).
fn nats_server(name: &'static str, url: &str) -> Result<(), ConfigError> {
    if url.parse::<async_nats::ServerAddr>().is_ok() {
        return Ok(());
    }
    let shown = Nats {
        url: url.to_owned(),
        creds: None,
    }
    .shown_url();
    Err(ConfigError::Invalid {
        name,
        value: shown,
        reason: "expected nats://HOST:PORT (or tls://, ws://, wss://)".to_owned(),
    })
}

/// A duration setting: `default` when not given, at least `min`.
fn duration(
    name: &'static str,
    text: Option<String>,
    default: Duration,
    min: Duration,
) -> Result<Duration, ConfigError> {
    let Some(text) = text else {
        return Ok(default);
    };
    match humantime::parse_duration(&text) {
        Ok(d) if d >= min => Ok(d),
        Ok(_) => Err(ConfigError::Invalid {
            name,
            value: text,
            reason: format!("at least {}", humantime::format_duration(min)),
        }),
        Err(e) => Err(ConfigError::Invalid {
            name,
            value: text,
            reason: format!("{e}: expected a duration such as 30s, 10m or 24h"),
        }),
    }
}

/// An OTLP/HTTP base URL: `http(s)://HOST[:PORT][/PATH]`, without a trailing `/`, and without
/// credentials or a query (they would end up in logs).
fn otlp_url(text: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        name: "otlp-endpoint",
        value: text.to_owned(),
        reason: reason.to_owned(),
    };
    let url = reqwest::Url::parse(text)
        .map_err(|_| invalid("expected http://HOST:PORT or https://HOST:PORT"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid("expected http://HOST:PORT or https://HOST:PORT"));
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err(invalid(
            "a base URL without a user, password or query (`/v1/metrics` and `/v1/traces` are \
             appended)",
        ));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// Fails unless the file at `path` can be opened for reading.
fn readable(name: &'static str, path: &Path) -> Result<(), ConfigError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|source| ConfigError::File {
            name,
            path: path.to_owned(),
            source,
        })
}

/// Fails unless `value` can be one token of a NATS subject (it becomes part of subjects).
fn subject_token(name: &'static str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            name,
            value: value.to_owned(),
            reason: "expected letters, digits, `-` and `_` only (it is part of NATS subjects)"
                .to_owned(),
        })
    }
}

/// `HOST=KEY=VALUE`.
fn host_label(text: &str) -> Result<HostLabel, ConfigError> {
    let mut parts = text.splitn(3, '=');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(host), Some(key), Some(value)) if !host.is_empty() && !key.is_empty() => {
            Ok(HostLabel {
                host: host.to_owned(),
                key: key.to_owned(),
                value: value.to_owned(),
            })
        }
        _ => Err(ConfigError::Invalid {
            name: "host-label",
            value: text.to_owned(),
            reason: "expected HOST=KEY=VALUE, e.g. `lab-1=zone=lab`".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory with a public key, and flags naming it.
    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let pair = etl::oci::sign::keygen(None).unwrap();
            std::fs::write(dir.path().join("cosign.pub"), pair.public_pem).unwrap();
            Fixture { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn flags(&self) -> Flags {
            Flags {
                bundle: Some("127.0.0.1:5000/etl/bundles/iot-sensors/dev:dev".to_owned()),
                key: Some(self.path("cosign.pub")),
                generation: Some("v1".to_owned()),
                ..Flags::default()
            }
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn error(flags: Flags, env: &dyn Fn(&str) -> Option<String>) -> String {
        Settings::resolve(flags, env).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let f = Fixture::new();
        let s = Settings::resolve(f.flags(), &no_env).unwrap();
        assert_eq!(s.bundle.repository, "etl/bundles/iot-sensors/dev");
        assert_eq!(s.generation, Generation::V1);
        assert_eq!(s.nats.url, "nats://127.0.0.1:4222");
        assert_eq!(s.nats.shown_url(), "nats://127.0.0.1:4222");
        let secret = Nats {
            url: "tls://etl:s3cret@nats.site:4222".to_owned(),
            creds: None,
        };
        assert_eq!(secret.shown_url(), "tls://***@nats.site:4222");
        assert_eq!(s.poll_interval, Duration::from_secs(10));
        assert_eq!(s.listen, "127.0.0.1:9464".parse().unwrap());
        assert_eq!(s.project.as_deref(), Some("iot-sensors"));
        assert_eq!(s.environment.as_deref(), Some("dev"));
        assert!(s.token.is_none() && s.tls.is_none() && s.lattice.is_none());
    }

    #[test]
    fn the_file_fills_in_and_flags_win() {
        let f = Fixture::new();
        std::fs::write(f.path("token"), "t0ken\n").unwrap();
        std::fs::write(
            f.path("controller.yaml"),
            "bundle: r.example/etl/bundles/p/staging:staging\nkey: cosign.pub\ngeneration: v1\n\
             poll-interval: 2s\nlisten: 0.0.0.0:9464\ntoken-file: token\n\
             insecure: [r.example]\nlattice: acme-staging\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(f.path("controller.yaml")),
            poll_interval: Some("500ms".to_owned()),
            ..Flags::default()
        };
        let s = Settings::resolve(flags, &no_env).unwrap();
        assert_eq!(s.bundle.host, "r.example");
        assert_eq!(s.environment.as_deref(), Some("staging"));
        assert_eq!(s.poll_interval, Duration::from_millis(500));
        assert_eq!(s.insecure, ["r.example"]);
        assert_eq!(s.lattice.as_deref(), Some("acme-staging"));
        assert_eq!(s.token.unwrap().expose(), "t0ken");

        std::fs::write(f.path("bad.yaml"), "bundle: x\npoll_interval: 2s\n").unwrap();
        let flags = Flags {
            config: Some(f.path("bad.yaml")),
            ..Flags::default()
        };
        let e = error(flags, &no_env);
        assert!(e.contains("bad.yaml") && e.contains("poll_interval"), "{e}");
    }

    #[test]
    fn required_settings_are_named() {
        let f = Fixture::new();
        let e = error(
            Flags {
                bundle: None,
                ..f.flags()
            },
            &no_env,
        );
        assert!(e.starts_with("--bundle is required"), "{e}");
        let e = error(
            Flags {
                generation: None,
                ..f.flags()
            },
            &no_env,
        );
        assert!(e.starts_with("--generation is required"), "{e}");
        let e = error(
            Flags {
                generation: Some("v3".to_owned()),
                ..f.flags()
            },
            &no_env,
        );
        assert!(e.contains("`v3` is not a wasmCloud generation"), "{e}");
        let e = error(
            Flags {
                bundle: Some("127.0.0.1:5000/etl/bundles/p/dev".to_owned()),
                ..f.flags()
            },
            &no_env,
        );
        assert!(e.contains("expected HOST[:PORT]/REPOSITORY:TAG"), "{e}");
        std::fs::write(f.path("private.pem"), "-----BEGIN PRIVATE KEY-----\n").unwrap();
        let e = error(
            Flags {
                key: Some(f.path("private.pem")),
                ..f.flags()
            },
            &no_env,
        );
        assert!(e.contains("not an ECDSA P-256 public key"), "{e}");
    }

    #[test]
    fn an_open_listener_needs_a_token() {
        let f = Fixture::new();
        let open = || Flags {
            listen: Some("0.0.0.0:9464".to_owned()),
            ..f.flags()
        };
        let e = error(open(), &no_env);
        assert!(
            e.contains("not a loopback address") && e.contains("--token-file"),
            "{e}"
        );
        let env = |name: &str| (name == TOKEN_ENV).then(|| "from-env".to_owned());
        let s = Settings::resolve(open(), &env).unwrap();
        assert!(
            s.notes.iter().any(|n| n.contains("clear text")),
            "an open listener without TLS is warned about: {:?}",
            s.notes
        );
        assert_eq!(s.token.unwrap().expose(), "from-env");
        std::fs::write(f.path("empty"), "\n").unwrap();
        let e = error(
            Flags {
                token_file: Some(f.path("empty")),
                ..open()
            },
            &no_env,
        );
        assert!(e.contains("holds no token"), "{e}");
    }

    #[test]
    fn contradictions_are_refused() {
        let f = Fixture::new();
        let e = error(
            Flags {
                environment: Some("prod".to_owned()),
                ..f.flags()
            },
            &no_env,
        );
        assert!(e.contains("environment `dev`'s"), "{e}");
        let e = error(
            Flags {
                host_labels: vec!["h=zone=lab".to_owned()],
                ..f.flags()
            },
            &no_env,
        );
        assert!(
            e.contains("--host-label applies to --generation v2 only"),
            "{e}"
        );
        let e = error(
            Flags {
                generation: Some("v2".to_owned()),
                host_labels: vec!["zone=lab".to_owned()],
                ..f.flags()
            },
            &no_env,
        );
        assert!(e.contains("expected HOST=KEY=VALUE"), "{e}");
        let e = error(
            Flags {
                registry_username: Some("ci".to_owned()),
                ..f.flags()
            },
            &no_env,
        );
        assert!(e.contains(PASSWORD_ENV), "{e}");
        let e = error(
            Flags {
                lattice: Some("a.b".to_owned()),
                ..f.flags()
            },
            &no_env,
        );
        assert!(e.contains("part of NATS subjects"), "{e}");
        let e = error(
            Flags {
                poll_interval: Some("10".to_owned()),
                ..f.flags()
            },
            &no_env,
        );
        assert!(e.contains("expected a duration"), "{e}");
    }

    #[test]
    fn telemetry_settings() {
        let f = Fixture::new();
        let s = Settings::resolve(f.flags(), &no_env).unwrap();
        assert!(s.data_nats_url.is_none());
        assert_eq!(
            s.telemetry,
            Telemetry {
                dead_letters_kept: 100,
                report_retention: Duration::from_secs(24 * 3600),
                otlp: None,
            }
        );
        std::fs::write(f.path("data.creds"), "").unwrap();
        std::fs::write(
            f.path("controller.yaml"),
            "data-nats-url: nats://data:4222\ndata-nats-creds: data.creds\ndead-letters-kept: 7\n\
             report-retention: 2h\notlp-endpoint: http://127.0.0.1:4318/\notlp-interval: 30s\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(f.path("controller.yaml")),
            dead_letters_kept: Some(9),
            ..f.flags()
        };
        let s = Settings::resolve(flags, &no_env).unwrap();
        let data = s.data_nats_url.unwrap();
        assert_eq!(data.url, "nats://data:4222");
        assert_eq!(data.creds, Some(f.path("data.creds")));
        assert_eq!(s.telemetry.dead_letters_kept, 9);
        assert_eq!(s.telemetry.report_retention, Duration::from_secs(7200));
        assert_eq!(
            s.telemetry.otlp,
            Some(Otlp {
                endpoint: "http://127.0.0.1:4318".to_owned(),
                interval: Duration::from_secs(30),
            })
        );
        for (flags, expected) in [
            (
                Flags {
                    otlp_endpoint: Some("grpc://collector:4317".to_owned()),
                    ..f.flags()
                },
                "--otlp-endpoint `grpc://collector:4317`: expected http://",
            ),
            (
                Flags {
                    otlp_endpoint: Some("http://u:p@collector:4318".to_owned()),
                    ..f.flags()
                },
                "without a user, password or query",
            ),
            (
                Flags {
                    dead_letters_kept: Some(0),
                    ..f.flags()
                },
                "--dead-letters-kept `0`: at least 1",
            ),
            (
                Flags {
                    report_retention: Some("5s".to_owned()),
                    ..f.flags()
                },
                "--report-retention `5s`: at least 1m",
            ),
            (
                Flags {
                    data_nats_url: Some("http://x".to_owned()),
                    ..f.flags()
                },
                "--data-nats-url `http://x`: expected nats://",
            ),
            (
                Flags {
                    data_nats_creds: Some(f.path("data.creds")),
                    ..f.flags()
                },
                "given without --data-nats-url",
            ),
        ] {
            let e = error(flags, &no_env);
            assert!(e.contains(expected), "{e}");
        }
    }

    #[test]
    fn v2_settings() {
        let f = Fixture::new();
        std::fs::write(f.path("secrets.yaml"), "").unwrap();
        let flags = Flags {
            generation: Some("v2".to_owned()),
            host_labels: vec!["lab-1=zone=lab".to_owned(), "lab-1=rack=a=b".to_owned()],
            secrets: Some(f.path("secrets.yaml")),
            ..f.flags()
        };
        let s = Settings::resolve(flags, &no_env).unwrap();
        let labels = s.labels_by_host();
        assert_eq!(labels["lab-1"]["zone"], "lab");
        assert_eq!(labels["lab-1"]["rack"], "a=b");
    }
}
