//! `etl push`: every manifest of an `etl compile` output's OCI layout (`dist/oci/`) → a real
//! registry, as the exact bytes the layout holds (never re-serialized, so digests and
//! signatures stay valid).
//!
//! Artifact `<name>` goes to repository `<prefix>/<name>`: its blobs (skipped when a HEAD finds
//! them), its manifest PUT by digest, then tagged `sha-<12 hex of plan.json's digest>` and with
//! the name of every environment the plan deploys it to. A cosign signature entry
//! (`sha256-<hex>.sig`) goes to the repository of the artifact it signs, tagged with its name.
//! Every step is idempotent, so an interrupted push re-run finishes without re-uploading what
//! arrived. Afterwards every tag is fetched and its bytes hashed: a digest other than the local
//! one is an error.
//!
//! Async inside (oci-client), synchronous outside: [`push`] makes its own current-thread
//! runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::Value as Json;

use crate::oci::REF_NAME;
use crate::resolve::sha256;

/// Where to push: `HOST[:PORT][/PREFIX]`, e.g. `registry.acme.example/etl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// `host[:port]`, as in an image reference.
    pub host: String,
    /// Repository path under the host, without slashes at either end; may be empty.
    pub prefix: String,
}

impl Registry {
    /// The full repository name of artifact `name`: `<prefix>/<name>`.
    pub fn repository(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

impl std::fmt::Display for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            f.write_str(&self.host)
        } else {
            write!(f, "{}/{}", self.host, self.prefix)
        }
    }
}

impl std::str::FromStr for Registry {
    type Err = PushError;

    fn from_str(text: &str) -> Result<Self, PushError> {
        let bad = || PushError::BadRegistry(text.to_owned());
        if text.contains("://") || text.contains(['@', ' ']) {
            return Err(bad());
        }
        let (host, prefix) = text.split_once('/').unwrap_or((text, ""));
        let prefix = prefix.trim_end_matches('/');
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        let prefix_ok = prefix.is_empty()
            || prefix.split('/').all(|part| {
                !part.is_empty()
                    && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            });
        if !host_ok || !prefix_ok {
            return Err(bad());
        }
        Ok(Registry {
            host: host.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

/// How to authenticate.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials.
    #[default]
    Anonymous,
    /// HTTP basic authentication (also what a token-auth registry exchanges for a token).
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
        }
    }
}

/// Retries of one request after a 5xx answer or a connection error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled before each next one.
    pub base: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            base: Duration::from_millis(200),
        }
    }
}

/// What to push where, and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The registry and repository prefix.
    pub registry: Registry,
    /// Hosts (`host` or `host:port`) spoken to in plain HTTP besides loopback ones.
    pub insecure: Vec<String>,
    /// How to authenticate.
    pub credentials: Credentials,
    /// Retries of each request.
    pub retry: Retry,
}

/// One manifest pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `<host>/<prefix>/<name>`.
    pub repository: String,
    /// `sha256:` of the manifest: the same locally and in the registry.
    pub digest: String,
    /// Its tags in the repository.
    pub tags: Vec<String>,
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every manifest, artifacts first (by name), then signatures.
    pub pushed: Vec<Pushed>,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs the registry already had.
    pub blobs_skipped: usize,
    /// HEAD requests made (blobs, manifests by digest, tags), retries included.
    pub head_requests: usize,
    /// Manifests PUT by digest.
    pub manifests_uploaded: usize,
    /// Manifests the registry already had.
    pub manifests_skipped: usize,
    /// Tags PUT (set or moved).
    pub tags_set: usize,
    /// Tags that already named the right manifest.
    pub tags_unchanged: usize,
    /// Tags fetched back and found to hold the local bytes.
    pub verified: usize,
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// `--registry` is not `HOST[:PORT][/PREFIX]`.
    #[error(
        "`{0}` is not a registry: expected HOST[:PORT][/PREFIX] without a scheme, e.g. \
         `registry.acme.example/etl` or `127.0.0.1:5000/etl` (prefix: lowercase letters, digits, \
         `.`, `_`, `-`, `/`)"
    )]
    BadRegistry(String),
    /// A file could not be read.
    #[error("`{}`: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The directory is not a consistent `etl compile` output.
    #[error("`{}` is not a usable `etl compile` output: {reason}", path.display())]
    Layout {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The docker config file is unreadable.
    #[error("docker config `{}`: {reason}", path.display())]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The registry refused the credentials (or wants some).
    #[error(
        "registry `{registry}` refused {what}: check the username and password (`--username`, \
         `--password-stdin`, or `auths.\"{registry}\"` in the docker config)"
    )]
    Unauthorized {
        /// `host[:port]`.
        registry: String,
        /// `the credentials given` or `anonymous access`.
        what: &'static str,
    },
    /// Nothing answers at the host.
    #[error(
        "cannot connect to registry `{host}` over {scheme}: {detail} — is it running and reachable? \
         (gave up after {attempts} attempts)"
    )]
    Unreachable {
        /// `host[:port]`.
        host: String,
        /// `http` or `https`.
        scheme: &'static str,
        /// The connection error.
        detail: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The registry answered with an error.
    #[error("registry `{registry}`: {operation}: {detail}")]
    Registry {
        /// `host[:port]`.
        registry: String,
        /// What was being done, e.g. `upload blob sha256:… to etl/x`.
        operation: String,
        /// The registry's answer.
        detail: String,
    },
    /// A tag fetched back does not hold the bytes pushed.
    #[error(
        "registry `{registry}` serves `{reference}` as {actual}, not the {expected} pushed: the \
         registry changed the manifest (or someone else moved the tag); refusing to report success"
    )]
    DigestMismatch {
        /// `host[:port]`.
        registry: String,
        /// `<repository>:<tag>`.
        reference: String,
        /// The local digest.
        expected: String,
        /// The digest of the bytes served.
        actual: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Whether `host` (`host[:port]`) is spoken to in plain HTTP: loopback hosts (`127.0.0.1`,
/// any `127.x`, `::1`, `localhost`) and hosts named in `insecure` (with or without the port).
/// Everything else is HTTPS.
pub fn plain_http(host: &str, insecure: &[String]) -> bool {
    let name = host_name(host);
    if name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    {
        return true;
    }
    insecure.iter().any(|i| i == host || i == name)
}

/// `host[:port]` without the port and IPv6 brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// The docker config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// What a docker config says about a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerAuth {
    /// `auths.<host>` with `auth` (base64 `user:pass`) or `username` / `password`.
    Found(Credentials),
    /// Only a credential helper (`credHelpers.<host>` or `credsStore`) knows: not supported.
    Helper(String),
    /// Nothing (or no file).
    None,
}

/// Reads the credentials for `host` from the docker config at `path` (a missing file is
/// [`DockerAuth::None`]). Keys of `auths` match with or without a scheme and a path.
pub fn docker_config_auth(path: &Path, host: &str) -> Result<DockerAuth, PushError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DockerAuth::None),
        Err(source) => {
            return Err(PushError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let bad = |reason: String| PushError::DockerConfig {
        path: path.to_owned(),
        reason,
    };
    let config: Json = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    let key_host = |key: &str| {
        let key = key.split_once("://").map_or(key, |(_, rest)| rest);
        key.split('/').next().unwrap_or(key).to_owned()
    };
    if let Some(auths) = config.get("auths").and_then(Json::as_object) {
        for (key, entry) in auths {
            if key_host(key) != host {
                continue;
            }
            if let Some(auth) = entry.get("auth").and_then(Json::as_str)
                && !auth.is_empty()
            {
                use base64::Engine as _;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "`auths.\"{key}\".auth` is not base64 of `user:password`"
                        ))
                    })?;
                let (username, password) = decoded.split_once(':').ok_or_else(|| {
                    bad(format!(
                        "`auths.\"{key}\".auth` is not base64 of `user:password`"
                    ))
                })?;
                return Ok(DockerAuth::Found(Credentials::Basic {
                    username: username.to_owned(),
                    password: password.to_owned(),
                }));
            }
            if let (Some(username), Some(password)) = (
                entry.get("username").and_then(Json::as_str),
                entry.get("password").and_then(Json::as_str),
            ) {
                return Ok(DockerAuth::Found(Credentials::Basic {
                    username: username.to_owned(),
                    password: password.to_owned(),
                }));
            }
        }
    }
    if let Some(helper) = config
        .get("credHelpers")
        .and_then(|h| h.as_object())
        .and_then(|h| h.iter().find(|(k, _)| key_host(k) == host))
        .and_then(|(_, v)| v.as_str())
        .or_else(|| config.get("credsStore").and_then(Json::as_str))
    {
        return Ok(DockerAuth::Helper(helper.to_owned()));
    }
    Ok(DockerAuth::None)
}

/// One manifest of the layout to push.
struct Entry {
    /// Artifact name (`ref.name`), or for a signature the name of the artifact it signs.
    repository: String,
    digest: String,
    media_type: String,
    manifest: Vec<u8>,
    /// `sha256:` digests of its config and layers.
    blobs: Vec<String>,
    tags: Vec<String>,
}

/// Reads `dist/plan.json` and `dist/oci/`: what to push, artifacts first.
fn read_dist(dist: &Path) -> Result<Vec<Entry>, PushError> {
    let read = |path: PathBuf| {
        std::fs::read(&path).map_err(|source| PushError::Io {
            path: path.clone(),
            source,
        })
    };
    let plan_path = dist.join("plan.json");
    let plan_bytes = read(plan_path.clone())?;
    let plan_tag = format!("sha-{}", &sha256(&plan_bytes)["sha256:".len()..][..12]);
    let plan: Json = serde_json::from_slice(&plan_bytes).map_err(|e| PushError::Layout {
        path: plan_path.clone(),
        reason: e.to_string(),
    })?;
    // Environments deploying each repository, from `deployments.<env>.<pipeline>.components`.
    let mut environments: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (env, apps) in plan["deployments"].as_object().into_iter().flatten() {
        for app in apps.as_object().into_iter().flatten().map(|(_, a)| a) {
            for c in app["components"].as_array().into_iter().flatten() {
                if let Some(repo) = c["artifact"]["repository"].as_str() {
                    environments
                        .entry(repo.to_owned())
                        .or_default()
                        .insert(env.clone());
                }
            }
        }
    }

    let oci = dist.join("oci");
    let index_path = oci.join("index.json");
    let layout = |reason: String| PushError::Layout {
        path: index_path.clone(),
        reason,
    };
    let index: Json =
        serde_json::from_slice(&read(index_path.clone())?).map_err(|e| layout(e.to_string()))?;
    let blob = |digest: &str| -> Result<Vec<u8>, PushError> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
            .ok_or_else(|| layout(format!("`{digest}` is not a sha256 digest")))?;
        let path = oci.join("blobs/sha256").join(hex);
        let bytes = read(path.clone())?;
        if sha256(&bytes) != digest {
            return Err(PushError::Layout {
                path,
                reason: format!("the blob does not hash to {digest}"),
            });
        }
        Ok(bytes)
    };

    let mut artifacts = Vec::new();
    let mut signatures = Vec::new();
    for d in index["manifests"].as_array().into_iter().flatten() {
        let name = d["annotations"][REF_NAME].as_str().ok_or_else(|| {
            layout("a manifest has no `org.opencontainers.image.ref.name`".into())
        })?;
        let digest = d["digest"]
            .as_str()
            .ok_or_else(|| layout(format!("`{name}` has no digest")))?;
        let manifest = blob(digest)?;
        let parsed: Json = serde_json::from_slice(&manifest)
            .map_err(|e| layout(format!("the manifest of `{name}`: {e}")))?;
        let media_type = d["mediaType"]
            .as_str()
            .or(parsed["mediaType"].as_str())
            .unwrap_or(crate::oci::MANIFEST_MEDIA_TYPE)
            .to_owned();
        let mut blobs = Vec::new();
        for b in std::iter::once(&parsed["config"])
            .chain(parsed["layers"].as_array().into_iter().flatten())
        {
            let digest = b["digest"].as_str().ok_or_else(|| {
                layout(format!(
                    "the manifest of `{name}` names a blob without digest"
                ))
            })?;
            blob(digest)?; // present and intact
            blobs.push(digest.to_owned());
        }
        let entry = Entry {
            repository: name.to_owned(),
            digest: digest.to_owned(),
            media_type,
            manifest,
            blobs,
            tags: vec![name.to_owned()],
        };
        if name.starts_with("sha256-") && name.ends_with(".sig") {
            signatures.push(entry);
        } else {
            artifacts.push(entry);
        }
    }
    for a in &mut artifacts {
        let mut tags = vec![plan_tag.clone()];
        tags.extend(environments.remove(&a.repository).into_iter().flatten());
        a.tags = tags;
    }
    for s in &mut signatures {
        let signed = format!(
            "sha256:{}",
            &s.repository["sha256-".len()..s.repository.len() - 4]
        );
        let artifact = artifacts
            .iter()
            .find(|a| a.digest == signed)
            .ok_or_else(|| {
                layout(format!(
                    "signature `{}` signs {signed}, which is no artifact of the layout",
                    s.repository
                ))
            })?;
        s.repository = artifact.repository.clone();
    }
    artifacts.sort_by(|a, b| a.repository.cmp(&b.repository));
    artifacts.extend(signatures);
    Ok(artifacts)
}

/// Pushes every manifest of `dist/oci/` (see the module docs).
pub fn push(dist: &Path, options: &Options) -> Result<Report, PushError> {
    let entries = read_dist(dist)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PushError::Runtime)?;
    runtime.block_on(Pusher::new(options).run(dist, &entries))
}

struct Pusher<'a> {
    client: Client,
    options: &'a Options,
    auth: RegistryAuth,
    scheme: &'static str,
    report: Report,
    /// HEAD requests sent, every attempt counted (the closures retried only borrow `self`).
    heads: std::cell::Cell<usize>,
}

/// Whether a failed request is worth another attempt: a 5xx answer or no connection.
fn transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ServerError { code, .. } => *code >= 500,
        OciDistributionError::RequestError(e) => {
            e.is_connect() || e.is_timeout() || e.status().is_some_and(|s| s.is_server_error())
        }
        _ => false,
    }
}

/// Whether a failed request was refused for want of (valid) credentials.
fn unauthorized(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 401 || *code == 403,
        OciDistributionError::RequestError(e) => e.status().is_some_and(|s| s == 401 || s == 403),
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)),
        _ => false,
    }
}

/// Whether a failed manifest fetch means "no such manifest".
fn not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound
            )
        }),
        OciDistributionError::RequestError(e) => e.status().is_some_and(|s| s == 404),
        _ => false,
    }
}

/// An error and its causes, each once.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let message = s.to_string();
        if !text.contains(&message) {
            text = format!("{text}: {message}");
        }
        source = s.source();
    }
    text
}

impl<'a> Pusher<'a> {
    fn new(options: &'a Options) -> Self {
        // reqwest is built without a default crypto provider (ring, not aws-lc-rs): install one
        // unless the process already has.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let host = &options.registry.host;
        let http = plain_http(host, &options.insecure);
        let client = Client::new(ClientConfig {
            protocol: if http {
                ClientProtocol::HttpsExcept(vec![host.clone()])
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(120)),
            ..ClientConfig::default()
        });
        let auth = match &options.credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
        };
        Pusher {
            client,
            options,
            auth,
            scheme: if http { "http" } else { "https" },
            report: Report::default(),
            heads: std::cell::Cell::new(0),
        }
    }

    fn reference(&self, repository: &str, tag: Option<&str>, digest: &str) -> Reference {
        let registry = self.options.registry.host.clone();
        let repository = self.options.registry.repository(repository);
        match tag {
            Some(tag) => Reference::with_tag(registry, repository, tag.to_owned()),
            None => Reference::with_digest(registry, repository, digest.to_owned()),
        }
    }

    /// Counts one HEAD request: an attempt, not a check (a retried check is several).
    fn head(&self) {
        self.heads.set(self.heads.get() + 1);
    }

    /// Runs `op`, again after a transient failure, with exponential backoff.
    async fn call<T, F, Fut>(&self, mut op: F) -> Result<T, OciDistributionError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, OciDistributionError>>,
    {
        let retry = self.options.retry;
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if transient(&e) && attempt < retry.attempts.max(1) => {
                    let wait = retry.base * 2u32.saturating_pow(attempt - 1);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn error(&self, operation: &str, e: OciDistributionError) -> PushError {
        let registry = self.options.registry.host.clone();
        if unauthorized(&e) {
            return PushError::Unauthorized {
                registry,
                what: match self.options.credentials {
                    Credentials::Anonymous => "anonymous access",
                    Credentials::Basic { .. } => "the credentials given",
                },
            };
        }
        if let OciDistributionError::RequestError(r) = &e
            && (r.is_connect() || r.is_timeout())
        {
            return PushError::Unreachable {
                host: registry,
                scheme: self.scheme,
                detail: chain(r),
                attempts: self.options.retry.attempts.max(1),
            };
        }
        PushError::Registry {
            registry,
            operation: operation.to_owned(),
            detail: chain(&e),
        }
    }

    async fn run(mut self, dist: &Path, entries: &[Entry]) -> Result<Report, PushError> {
        let Some(first) = entries.first() else {
            return Ok(self.report);
        };
        // Authenticate once up front, so that a wrong password is one clear error.
        let probe = self.reference(&first.repository, None, &first.digest);
        self.call(|| {
            self.client
                .auth(&probe, &self.auth, RegistryOperation::Push)
        })
        .await
        .map_err(|e| self.error("authenticate", e))?;

        let blobs = dist.join("oci/blobs/sha256");
        for entry in entries {
            let by_digest = self.reference(&entry.repository, None, &entry.digest);
            let repository = by_digest.repository().to_owned();
            for digest in &entry.blobs {
                let operation = format!("check blob {digest} in {repository}");
                let exists = self
                    .call(|| {
                        self.head();
                        self.client.blob_exists(&by_digest, digest)
                    })
                    .await
                    .map_err(|e| self.error(&operation, e))?;
                if exists {
                    self.report.blobs_skipped += 1;
                    continue;
                }
                let path = blobs.join(&digest["sha256:".len()..]);
                let bytes =
                    std::fs::read(&path).map_err(|source| PushError::Io { path, source })?;
                let bytes = bytes::Bytes::from(bytes);
                let operation = format!("upload blob {digest} to {repository}");
                self.call(|| self.client.push_blob(&by_digest, bytes.clone(), digest))
                    .await
                    .map_err(|e| self.error(&operation, e))?;
                self.report.blobs_uploaded += 1;
            }

            let content_type: http::HeaderValue =
                entry.media_type.parse().map_err(|_| PushError::Layout {
                    path: dist.join("oci/index.json"),
                    reason: format!("media type `{}` is not a header value", entry.media_type),
                })?;
            let manifest = bytes::Bytes::from(entry.manifest.clone());
            // By digest first, then each tag: a PUT only where the registry lacks it.
            let mut references = vec![(None, by_digest.clone())];
            for tag in &entry.tags {
                references.push((
                    Some(tag.as_str()),
                    self.reference(&entry.repository, Some(tag), &entry.digest),
                ));
            }
            for (tag, reference) in &references {
                let shown = format!(
                    "{repository}{}",
                    tag.map_or_else(|| format!("@{}", entry.digest), |t| format!(":{t}"))
                );
                let operation = format!("check manifest {shown}");
                let present = match self
                    .call(|| {
                        self.head();
                        self.client.fetch_manifest_digest(reference, &self.auth)
                    })
                    .await
                {
                    Ok(digest) => digest == entry.digest,
                    Err(e) if not_found(&e) => false,
                    // A digest the registry computes differently is a mismatch, not an error
                    // here: the PUT and the check after it decide.
                    Err(OciDistributionError::DigestError(_)) => false,
                    Err(e) => return Err(self.error(&operation, e)),
                };
                match (present, tag) {
                    (true, None) => self.report.manifests_skipped += 1,
                    (true, Some(_)) => self.report.tags_unchanged += 1,
                    (false, _) => {
                        let operation = format!("put manifest {shown}");
                        self.call(|| {
                            self.client.push_manifest_raw(
                                reference,
                                manifest.clone(),
                                content_type.clone(),
                            )
                        })
                        .await
                        .map_err(|e| self.error(&operation, e))?;
                        if tag.is_some() {
                            self.report.tags_set += 1;
                        } else {
                            self.report.manifests_uploaded += 1;
                        }
                    }
                }
            }

            // Fetch every tag back and hash what is served.
            for (tag, reference) in references.iter().skip(1) {
                let tag = tag.expect("tags after the digest");
                let operation = format!("fetch manifest {repository}:{tag}");
                let accepted = [entry.media_type.as_str()];
                let (bytes, _) = self
                    .call(|| {
                        self.client
                            .pull_manifest_raw(reference, &self.auth, &accepted)
                    })
                    .await
                    .map_err(|e| match e {
                        OciDistributionError::DigestError(d) => PushError::DigestMismatch {
                            registry: self.options.registry.host.clone(),
                            reference: format!("{repository}:{tag}"),
                            expected: entry.digest.clone(),
                            actual: d.to_string(),
                        },
                        e => self.error(&operation, e),
                    })?;
                let actual = sha256(&bytes);
                if actual != entry.digest {
                    return Err(PushError::DigestMismatch {
                        registry: self.options.registry.host.clone(),
                        reference: format!("{repository}:{tag}"),
                        expected: entry.digest.clone(),
                        actual,
                    });
                }
                self.report.verified += 1;
            }
            self.report.pushed.push(Pushed {
                repository: format!("{}/{repository}", self.options.registry.host),
                digest: entry.digest.clone(),
                tags: entry.tags.clone(),
            });
        }
        self.report.head_requests = self.heads.get();
        Ok(self.report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_or_insecure_hosts() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:5000",
            "localhost:5000",
            "LOCALHOST",
            "[::1]:5000",
            "::1",
        ] {
            assert!(plain_http(host, &[]), "{host}");
        }
        for host in [
            "registry.acme.example",
            "registry.acme.example:5000",
            "10.0.0.1:5000",
            "localhost.acme.example",
            "ghcr.io",
        ] {
            assert!(!plain_http(host, &[]), "{host}");
        }
        let insecure = vec!["registry.lan".to_owned(), "10.0.0.1:5000".to_owned()];
        assert!(plain_http("registry.lan:5000", &insecure));
        assert!(plain_http("10.0.0.1:5000", &insecure));
        assert!(!plain_http("10.0.0.1:6000", &insecure));
        assert!(!plain_http("registry.lan.example", &insecure));
    }

    #[test]
    fn registries_parse() {
        let r: Registry = "127.0.0.1:5000/etl/team".parse().unwrap();
        assert_eq!(
            (r.host.as_str(), r.prefix.as_str()),
            ("127.0.0.1:5000", "etl/team")
        );
        assert_eq!(r.repository("a-b"), "etl/team/a-b");
        let r: Registry = "ghcr.io".parse().unwrap();
        assert_eq!(r.repository("a"), "a");
        for bad in [
            "",
            "https://ghcr.io/x",
            "ghcr.io/Acme",
            "ghcr.io//x",
            "a b/x",
            "/x",
        ] {
            assert!(bad.parse::<Registry>().is_err(), "{bad}");
        }
    }

    #[test]
    fn docker_config_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        assert_eq!(docker_config_auth(&path, "h:1").unwrap(), DockerAuth::None);
        std::fs::write(
            &path,
            r#"{"auths":{"https://h:1/v1/":{"auth":"dTpwOnE="},"o":{"username":"a","password":"b"}},
                "credHelpers":{"gcr.io":"gcloud"}}"#,
        )
        .unwrap();
        let basic = |u: &str, p: &str| {
            DockerAuth::Found(Credentials::Basic {
                username: u.into(),
                password: p.into(),
            })
        };
        assert_eq!(docker_config_auth(&path, "h:1").unwrap(), basic("u", "p:q"));
        assert_eq!(docker_config_auth(&path, "o").unwrap(), basic("a", "b"));
        assert_eq!(
            docker_config_auth(&path, "gcr.io").unwrap(),
            DockerAuth::Helper("gcloud".into())
        );
        assert_eq!(docker_config_auth(&path, "h:2").unwrap(), DockerAuth::None);
    }
}
