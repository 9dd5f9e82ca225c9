//! The OCI distribution client every registry command shares: `etl push`, `etl promote`,
//! `etl verify` on references and the resolver's pulls of `oci://` components.
//!
//! A [`Session`] speaks to one registry host: plain HTTP only for loopback hosts and hosts named
//! insecure ([`plain_http`]), credentials given or read from the docker config
//! ([`docker_config_auth`]), every request retried with backoff after a 5xx answer or a refused
//! connection ([`Retry`]), every failure an [`Error`] naming the registry. Whatever it fetches by
//! digest is hashed before it is returned. Async inside (oci-client); [`block_on`] runs it from
//! synchronous code.

use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::Value as Json;

use crate::util::digest::sha256;
use crate::util::io::chain;

/// A registry and a repository prefix in it: `HOST[:PORT][/PREFIX]`, e.g. `registry.acme.example/etl`.
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
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let bad = || Error::BadRegistry(text.to_owned());
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

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not `HOST[:PORT][/PREFIX]`.
    #[error(
        "`{0}` is not a registry: expected HOST[:PORT][/PREFIX] without a scheme, e.g. \
         `registry.acme.example/etl` or `127.0.0.1:5000/etl` (prefix: lowercase letters, digits, \
         `.`, `_`, `-`, `/`)"
    )]
    BadRegistry(String),
    /// A file could not be read.
    #[error(transparent)]
    Io(#[from] crate::util::io::IoError),
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
    Request {
        /// `host[:port]`.
        registry: String,
        /// What was being done, e.g. `upload blob sha256:… to etl/x`.
        operation: String,
        /// The registry's answer.
        detail: String,
    },
    /// What the registry serves does not hash to the digest it should have.
    #[error(
        "registry `{registry}` serves `{reference}` as {actual}, not {expected}: refusing bytes \
         that are not the ones asked for"
    )]
    DigestMismatch {
        /// `host[:port]`.
        registry: String,
        /// `<repository>:<tag>` or `<repository>@<digest>`.
        reference: String,
        /// The digest expected.
        expected: String,
        /// The digest of the bytes served.
        actual: String,
    },
    /// A blob larger than the caller accepts.
    #[error("registry `{registry}`: `{reference}` is larger than {limit} bytes")]
    TooLarge {
        /// `host[:port]`.
        registry: String,
        /// `<repository>@<digest>`.
        reference: String,
        /// The limit, in bytes.
        limit: u64,
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
pub fn docker_config_auth(path: &Path, host: &str) -> Result<DockerAuth, Error> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DockerAuth::None),
        Err(source) => {
            return Err(Error::Io(crate::util::io::IoError::new(
                path.to_owned(),
                source,
            )));
        }
    };
    let bad = |reason: String| Error::DockerConfig {
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

/// The credentials the docker config ([`docker_config_path`]) holds for `host`, else anonymous;
/// beside them, the config's path and credential helper when a helper (which etl does not run)
/// is what it names for `host`.
pub fn docker_credentials(host: &str) -> Result<(Credentials, Option<(PathBuf, String)>), Error> {
    let Some(path) = docker_config_path() else {
        return Ok((Credentials::Anonymous, None));
    };
    Ok(match docker_config_auth(&path, host)? {
        DockerAuth::Found(credentials) => (credentials, None),
        DockerAuth::Helper(helper) => (Credentials::Anonymous, Some((path, helper))),
        DockerAuth::None => (Credentials::Anonymous, None),
    })
}

/// Runs `future` to completion on a current-thread runtime of its own.
pub fn block_on<T, E: From<Error>>(future: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| E::from(Error::Runtime(e)))?
        .block_on(future)
}

/// Whether a failed request is worth another attempt: a 5xx answer, no connection, or a
/// connection lost mid-request or mid-answer. Every request a [`Session`] makes may be repeated:
/// reads and manifest PUTs are idempotent, and a failed blob upload starts a new session.
fn transient(e: &OciDistributionError) -> bool {
    use std::io::ErrorKind;
    match e {
        OciDistributionError::ServerError { code, .. } => *code >= 500,
        OciDistributionError::RequestError(e) => {
            e.is_connect()
                || e.is_timeout()
                || e.is_request()
                || e.is_body()
                || e.status().is_some_and(|s| s.is_server_error())
        }
        OciDistributionError::IoError(e) => matches!(
            e.kind(),
            ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof
                | ErrorKind::TimedOut
        ),
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

/// Whether a failed request means "no such manifest, blob or repository".
fn not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::NotFound
                    | OciErrorCode::BlobUnknown
            )
        }),
        OciDistributionError::RequestError(e) => e.status().is_some_and(|s| s == 404),
        _ => false,
    }
}

/// A failed read of a blob stream; oci-client reports bytes that fail their digest as an I/O
/// error wrapping a [`DigestError`].
fn stream_error(e: std::io::Error) -> OciDistributionError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<DigestError>())
    {
        Some(DigestError::VerificationError { expected, actual }) => {
            OciDistributionError::DigestError(DigestError::VerificationError {
                expected: expected.clone(),
                actual: actual.clone(),
            })
        }
        _ => e.into(),
    }
}

/// The digest of the bytes served, from oci-client's verification error.
fn served(e: &DigestError) -> String {
    match e {
        DigestError::VerificationError { actual, .. } => actual.clone(),
        other => other.to_string(),
    }
}

/// A manifest or tag in a repository: `sha256:<hex>` is a digest, anything else a tag.
fn shown(repository: &str, reference: &str) -> String {
    if reference.starts_with("sha256:") {
        format!("{repository}@{reference}")
    } else {
        format!("{repository}:{reference}")
    }
}

/// A client of one registry host. Repositories are full paths in the host (prefix included).
pub struct Session {
    client: Client,
    host: String,
    auth: RegistryAuth,
    anonymous: bool,
    scheme: &'static str,
    retry: Retry,
    /// HEAD requests sent, every attempt counted.
    heads: std::cell::Cell<usize>,
}

impl Session {
    /// A client of `host` (`host[:port]`); see the module docs for transport and retries.
    pub fn new(host: &str, insecure: &[String], credentials: &Credentials, retry: Retry) -> Self {
        // reqwest is built without a default crypto provider (ring, not aws-lc-rs): install one
        // unless the process already has.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = plain_http(host, insecure);
        let client = Client::new(ClientConfig {
            protocol: if http {
                ClientProtocol::HttpsExcept(vec![host.to_owned()])
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(120)),
            ..ClientConfig::default()
        });
        let auth = match credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
        };
        Session {
            client,
            host: host.to_owned(),
            auth,
            anonymous: matches!(credentials, Credentials::Anonymous),
            scheme: if http { "http" } else { "https" },
            retry,
            heads: std::cell::Cell::new(0),
        }
    }

    /// `host[:port]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// HEAD requests made so far, retries included.
    pub fn head_requests(&self) -> usize {
        self.heads.get()
    }

    fn reference(&self, repository: &str, reference: &str) -> Reference {
        if reference.starts_with("sha256:") {
            Reference::with_digest(
                self.host.clone(),
                repository.to_owned(),
                reference.to_owned(),
            )
        } else {
            Reference::with_tag(
                self.host.clone(),
                repository.to_owned(),
                reference.to_owned(),
            )
        }
    }

    /// Runs `op`, again after a transient failure, with exponential backoff.
    async fn call<T, F, Fut>(&self, mut op: F) -> Result<T, OciDistributionError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, OciDistributionError>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if transient(&e) && attempt < self.retry.attempts.max(1) => {
                    let wait = self.retry.base * 2u32.saturating_pow(attempt - 1);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn error(&self, operation: &str, e: OciDistributionError) -> Error {
        let registry = self.host.clone();
        if unauthorized(&e) {
            return Error::Unauthorized {
                registry,
                what: if self.anonymous {
                    "anonymous access"
                } else {
                    "the credentials given"
                },
            };
        }
        if let OciDistributionError::RequestError(r) = &e
            && (r.is_connect() || r.is_timeout())
        {
            return Error::Unreachable {
                host: registry,
                scheme: self.scheme,
                detail: chain(r),
                attempts: self.retry.attempts.max(1),
            };
        }
        Error::Request {
            registry,
            operation: operation.to_owned(),
            detail: chain(&e),
        }
    }

    /// Authenticates for pulling from (or, with `push`, pushing to) `repository`, so that wrong
    /// credentials are one clear error before any work.
    pub async fn authenticate(&self, repository: &str, push: bool) -> Result<(), Error> {
        let probe = self.reference(repository, "latest");
        let operation = if push {
            RegistryOperation::Push
        } else {
            RegistryOperation::Pull
        };
        self.call(|| self.client.auth(&probe, &self.auth, operation))
            .await
            .map(drop)
            .map_err(|e| self.error("authenticate", e))
    }

    /// Whether the blob `digest` is in `repository` (one HEAD).
    pub async fn blob_exists(&self, repository: &str, digest: &str) -> Result<bool, Error> {
        let reference = self.reference(repository, digest);
        self.call(|| {
            self.heads.set(self.heads.get() + 1);
            self.client.blob_exists(&reference, digest)
        })
        .await
        .map_err(|e| self.error(&format!("check blob {digest} in {repository}"), e))
    }

    /// Uploads the blob `digest` (its bytes) to `repository`.
    pub async fn push_blob(
        &self,
        repository: &str,
        bytes: bytes::Bytes,
        digest: &str,
    ) -> Result<(), Error> {
        let reference = self.reference(repository, digest);
        self.call(|| self.client.push_blob(&reference, bytes.clone(), digest))
            .await
            .map(drop)
            .map_err(|e| self.error(&format!("upload blob {digest} to {repository}"), e))
    }

    /// The digest the registry gives the manifest `reference` (a tag or digest) of
    /// `repository` (one HEAD), or `None` when it has none.
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<String>, Error> {
        let target = self.reference(repository, reference);
        match self
            .call(|| {
                self.heads.set(self.heads.get() + 1);
                self.client.fetch_manifest_digest(&target, &self.auth)
            })
            .await
        {
            Ok(digest) => Ok(Some(digest)),
            Err(e) if not_found(&e) => Ok(None),
            // A digest the registry computes differently is not the manifest asked for.
            Err(OciDistributionError::DigestError(_)) => Ok(None),
            Err(e) => Err(self.error(
                &format!("check manifest {}", shown(repository, reference)),
                e,
            )),
        }
    }

    /// PUTs `manifest` (exact bytes, of `media_type`) as `reference` (a tag or its digest).
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        manifest: &bytes::Bytes,
        media_type: &str,
    ) -> Result<(), Error> {
        let operation = format!("put manifest {}", shown(repository, reference));
        let content_type: http::HeaderValue = media_type.parse().map_err(|_| Error::Request {
            registry: self.host.clone(),
            operation: operation.clone(),
            detail: format!("media type `{media_type}` is not a header value"),
        })?;
        let target = self.reference(repository, reference);
        self.call(|| {
            self.client
                .push_manifest_raw(&target, manifest.clone(), content_type.clone())
        })
        .await
        .map(drop)
        .map_err(|e| self.error(&operation, e))
    }

    /// The raw manifest `reference` (a tag or digest) of `repository`, or `None` when there is
    /// none. Fetched by digest, its bytes must hash to it.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
        accepted: &[&str],
    ) -> Result<Option<Vec<u8>>, Error> {
        let target = self.reference(repository, reference);
        let mismatch = |expected: &str, actual: String| Error::DigestMismatch {
            registry: self.host.clone(),
            reference: shown(repository, reference),
            expected: expected.to_owned(),
            actual,
        };
        let bytes = match self
            .call(|| self.client.pull_manifest_raw(&target, &self.auth, accepted))
            .await
        {
            Ok((bytes, _)) => bytes.to_vec(),
            Err(e) if not_found(&e) => return Ok(None),
            Err(OciDistributionError::DigestError(d)) => {
                return Err(mismatch(reference, served(&d)));
            }
            Err(e) => {
                return Err(self.error(
                    &format!("fetch manifest {}", shown(repository, reference)),
                    e,
                ));
            }
        };
        if reference.starts_with("sha256:") {
            let actual = sha256(&bytes);
            if actual != reference {
                return Err(mismatch(reference, actual));
            }
        }
        Ok(Some(bytes))
    }

    /// The blob `digest` of `repository`, at most `limit` bytes, checked against its digest.
    pub async fn blob(&self, repository: &str, digest: &str, limit: u64) -> Result<Vec<u8>, Error> {
        let shown = shown(repository, digest);
        let target = self.reference(repository, digest);
        let too_large = || Error::TooLarge {
            registry: self.host.clone(),
            reference: shown.clone(),
            limit,
        };
        let fetch = || async {
            let mut stream = self.client.pull_blob_stream(&target, digest).await?;
            if stream.content_length.is_some_and(|n| n > limit) {
                return Ok(None);
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.next().await {
                bytes.extend_from_slice(&chunk.map_err(stream_error)?);
                if bytes.len() as u64 > limit {
                    return Ok(None);
                }
            }
            Ok(Some(bytes))
        };
        let bytes = match self.call(fetch).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err(too_large()),
            Err(OciDistributionError::DigestError(d)) => {
                return Err(Error::DigestMismatch {
                    registry: self.host.clone(),
                    reference: shown,
                    expected: digest.to_owned(),
                    actual: served(&d),
                });
            }
            Err(e) => return Err(self.error(&format!("fetch blob {shown}"), e)),
        };
        let actual = sha256(&bytes);
        if actual != digest {
            return Err(Error::DigestMismatch {
                registry: self.host.clone(),
                reference: shown,
                expected: digest.to_owned(),
                actual,
            });
        }
        Ok(bytes)
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
