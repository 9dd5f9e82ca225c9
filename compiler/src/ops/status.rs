//! `etl status`: what an environment's `etl-controller` applied and how it runs, and the
//! document both sides share ([`ControllerStatus`], `docs/controller.md`).
//!
//! The controller serves the document at `GET <url>/status` (and over NATS); [`fetch`] reads it
//! with a bearer token when one is given. [`wait`] asks again until the environment runs the
//! bundle its tag names *now*: the controller says `ready` and its applied digest is the one a
//! HEAD of the bundle's tag gets from the registry at that moment, so a push just before is
//! seen. [`table`] renders the document for people.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::oci::registry::{self, Credentials, Retry, Session};
use crate::ops::telemetry::{NodeKind, Rates};
use crate::util::io::{IoError, chain};

/// The document's `apiVersion`.
pub const API_VERSION: &str = "etl/v1alpha1";
/// The document's `kind`.
pub const KIND: &str = "ControllerStatus";
/// Largest status document read, in bytes.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// What a controller says about its environment (`GET /status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerStatus {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// The project, once known (from the bundle's repository or facts).
    pub project: Option<String>,
    /// The environment, once known (`--environment`, the bundle's repository or facts).
    pub environment: Option<String>,
    /// `v1` (wasmCloud 1.x through wadm) or `v2` (the hosts' workload API).
    pub generation: String,
    /// The wasmCloud 1.x lattice applied to (v1 only), once known.
    pub lattice: Option<String>,
    /// The bundle reference polled: `host[:port]/repository:tag`.
    pub bundle: String,
    /// What the tag named at the last check.
    pub tag: TagStatus,
    /// The bundle applied, if any.
    pub applied: Option<Applied>,
    /// The last bundle refused, if any.
    pub refused: Option<Refused>,
    /// The environment as a whole.
    pub state: EnvironmentState,
    /// Every application of the applied bundle, in the order they are deployed.
    #[serde(default)]
    pub pipelines: Vec<PipelineStatus>,
}

/// The last check of the tag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagStatus {
    /// The manifest digest the tag named, when the registry answered and had it.
    pub digest: Option<String>,
    /// When the tag was last checked (RFC 3339).
    pub checked_at: Option<String>,
    /// Whether the last check failed, so that what runs may not be what the tag names.
    #[serde(default)]
    pub stale: bool,
    /// Why the last check failed.
    pub error: Option<String>,
}

/// The bundle a controller applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// Its manifest digest.
    pub digest: String,
    /// The pipeline repo's commit it was compiled from, when known.
    pub revision: Option<String>,
    /// The id of the key its signature verified with (`sha256:<16 hex>`).
    pub signer: String,
    /// When the controller took it (RFC 3339).
    pub applied_at: String,
}

/// A bundle a controller refused to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refused {
    /// Its manifest digest.
    pub digest: String,
    /// Why.
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
}

/// Where an environment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvironmentState {
    /// The bundle the tag names is applied and every application is deployed.
    Ready,
    /// The applied bundle is being brought up.
    Reconciling,
    /// The tag's bundle was refused, or an application failed.
    Failed,
    /// The registry could not be asked: the last applied bundle keeps running.
    Stale,
    /// Nothing applied yet.
    Waiting,
}

impl EnvironmentState {
    /// The word the document uses.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvironmentState::Ready => "ready",
            EnvironmentState::Reconciling => "reconciling",
            EnvironmentState::Failed => "failed",
            EnvironmentState::Stale => "stale",
            EnvironmentState::Waiting => "waiting",
        }
    }
}

/// One application of the applied bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStatus {
    /// The pipeline; a shared application's own name.
    pub name: String,
    /// The application (wadm's name, or the `WorkloadDeployment`s' prefix).
    pub application: String,
    /// The version running or being brought up.
    pub version: Option<String>,
    /// Where it stands.
    pub state: PipelineState,
    /// Why it failed or is still reconciling, in the lattice's words.
    pub reason: Option<String>,
    /// The artifacts it runs.
    #[serde(default)]
    pub artifacts: Vec<ArtifactStatus>,
    /// Its steps' and sinks' counts and rates, once they reported (`docs/reporting.md`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<UnitMetrics>,
}

/// One step's or sink's counts in the status document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitMetrics {
    /// The step or sink.
    pub name: String,
    /// `step` or `sink`.
    pub kind: NodeKind,
    /// Its cumulative counts.
    pub counters: crate::ops::telemetry::Counters,
    /// Its rates over the controller's last window (all 0 when it sent none).
    #[serde(default)]
    pub rates: Rates,
}

/// Where one application stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PipelineState {
    /// Runs the bundle's version.
    Deployed,
    /// Being brought to it.
    Reconciling,
    /// Refused or failed by the lattice.
    Failed,
    /// Not running.
    Undeployed,
}

impl PipelineState {
    /// The word the document uses.
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineState::Deployed => "deployed",
            PipelineState::Reconciling => "reconciling",
            PipelineState::Failed => "failed",
            PipelineState::Undeployed => "undeployed",
        }
    }
}

/// One artifact an application runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactStatus {
    /// The step or sink.
    pub unit: String,
    /// `<registry>/<repository>@<digest>`.
    pub image: String,
    /// The composed component's digest.
    pub component_digest: String,
}

/// A bearer token. Never shown: its `Debug` is `Token(***)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Why a token cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file cannot be read.
    #[error(transparent)]
    Io(#[from] IoError),
    /// It holds nothing but white space.
    #[error("{0} holds no token (it is empty)")]
    Empty(String),
    /// It holds characters a header cannot carry.
    #[error("{0} holds characters an HTTP header cannot carry: expected printable ASCII")]
    NotPrintable(String),
}

impl Token {
    /// A token from `text` (surrounding white space trimmed); `origin` names where it came from
    /// in errors (e.g. `` `token.txt` `` or `ETL_CONTROLLER_TOKEN`).
    pub fn new(text: &str, origin: &str) -> Result<Token, TokenError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TokenError::Empty(origin.to_owned()));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::NotPrintable(origin.to_owned()));
        }
        Ok(Token(text.to_owned()))
    }

    /// The token in the file at `path`.
    pub fn from_file(path: &std::path::Path) -> Result<Token, TokenError> {
        let text = std::fs::read_to_string(path).map_err(IoError::at(path))?;
        Token::new(&text, &format!("`{}`", path.display()))
    }

    /// The token itself, to send.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A controller to ask.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its base URL (`http://…` or `https://…`); the document is at `<url>/status`.
    pub url: String,
    /// The bearer token it wants, if any.
    pub token: Option<Token>,
    /// A CA certificate (PEM) to trust besides the system's, for a controller whose
    /// certificate a private CA signed (or that signed it itself).
    pub ca_cert: Option<Vec<u8>>,
}

/// A status document as read: the exact bytes served and their meaning.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    /// The body, as served (what `--format json` prints).
    pub body: Vec<u8>,
    /// The document.
    pub status: ControllerStatus,
}

/// Why a controller's status could not be had.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The URL is not an http(s) URL.
    #[error("`{0}` is not a controller URL: expected http://HOST:PORT or https://HOST:PORT")]
    BadUrl(String),
    /// The CA certificate is not a PEM certificate.
    #[error("the CA certificate is not a PEM certificate: {0}")]
    CaCert(String),
    /// The HTTP client cannot be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// Nothing answers at the URL.
    #[error("cannot reach the controller at {url}: {detail}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// The connection error.
        detail: String,
    },
    /// The controller wants a (different) token.
    #[error(
        "the controller at {url} refused the request (401): {}",
        if *.with_token { "the token given is not its token" } else {
            "it wants a bearer token (--token-file FILE or ETL_CONTROLLER_TOKEN)"
        }
    )]
    Unauthorized {
        /// The URL asked.
        url: String,
        /// Whether a token was sent.
        with_token: bool,
    },
    /// The controller answered with another error.
    #[error("the controller at {url} answered {code}: {body}")]
    Http {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        code: u16,
        /// The controller's `error` text, else the start of the body.
        body: String,
    },
    /// The answer is larger than any document the controller serves.
    #[error("the answer of {url} is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge {
        /// The URL asked.
        url: String,
    },
    /// The answer is not a controller status.
    #[error("{url} did not answer with a controller status ({API_VERSION} {KIND}): {detail}")]
    NotAStatus {
        /// The URL asked.
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// The controller applies another environment.
    #[error(
        "the controller at {url} applies environment `{found}`, not `{expected}`: check \
         --controller (or ETL_CONTROLLER_URL_<ENV>, ETL_CONTROLLER_URL)"
    )]
    OtherEnvironment {
        /// The URL asked.
        url: String,
        /// `--env`.
        expected: String,
        /// What it applies (`?` when it does not know yet).
        found: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl From<registry::Error> for StatusError {
    fn from(e: registry::Error) -> Self {
        match e {
            registry::Error::Runtime(e) => StatusError::Runtime(e),
            other => StatusError::Client(other.to_string()),
        }
    }
}

impl StatusError {
    /// Whether asking again later may help (the controller is down or restarting).
    pub(crate) fn transient(&self) -> bool {
        match self {
            StatusError::Unreachable { .. } => true,
            StatusError::Http { code, .. } => *code >= 500,
            _ => false,
        }
    }
}

/// A client of one controller: `etl status`, `etl top` and `etl dlq` ask through it.
pub(crate) struct Client {
    http: reqwest::Client,
    /// The base URL, without a trailing `/`.
    base: String,
    token: Option<Token>,
}

/// A controller's answer to one request.
pub(crate) struct Answer {
    /// The URL asked.
    pub url: String,
    /// The HTTP status.
    pub code: u16,
    /// The body, at most [`MAX_BODY_BYTES`].
    pub body: Vec<u8>,
}

impl Answer {
    /// The controller's `error` text (its errors are `{"error": "…"}`), else the start of the
    /// body.
    pub fn error_text(&self) -> String {
        #[derive(Deserialize)]
        struct ErrorDocument {
            error: String,
        }
        match serde_json::from_slice::<ErrorDocument>(&self.body) {
            Ok(doc) => doc.error,
            Err(_) => {
                let text = String::from_utf8_lossy(&self.body);
                text.trim().chars().take(200).collect()
            }
        }
    }

    /// [`StatusError::Http`] for this answer.
    pub fn into_error(self) -> StatusError {
        StatusError::Http {
            body: self.error_text(),
            url: self.url,
            code: self.code,
        }
    }
}

impl Client {
    pub(crate) fn new(endpoint: &Endpoint) -> Result<Client, StatusError> {
        let base = endpoint.url.trim_end_matches('/');
        let parsed = reqwest::Url::parse(base).map_err(|_| StatusError::BadUrl(base.to_owned()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(StatusError::BadUrl(base.to_owned()));
        }
        // reqwest is built without a default crypto provider (ring, not aws-lc-rs).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15));
        if let Some(pem) = &endpoint.ca_cert {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| StatusError::CaCert(e.to_string()))?;
            if certs.is_empty() {
                return Err(StatusError::CaCert("no CERTIFICATE block".to_owned()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| StatusError::Client(e.to_string()))?;
        Ok(Client {
            http,
            base: base.to_owned(),
            token: endpoint.token.clone(),
        })
    }

    /// The URL of `path` (which starts with `/`, and may have a query).
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The base URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// Sends one request for `url` ([`Client::url`]), with `json` as its body when given, and
    /// reads the answer. No connection, an answer too large, and a 401 are errors; any other
    /// status is the caller's to judge.
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        url: String,
        json: Option<Vec<u8>>,
    ) -> Result<Answer, StatusError> {
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        if let Some(body) = json {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let unreachable = |e: reqwest::Error| StatusError::Unreachable {
            url: url.clone(),
            detail: chain(&e),
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let code = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY_BYTES {
                return Err(StatusError::TooLarge { url });
            }
        }
        if code == 401 {
            return Err(StatusError::Unauthorized {
                url,
                with_token: self.token.is_some(),
            });
        }
        Ok(Answer { url, code, body })
    }

    async fn get(&self) -> Result<Fetched, StatusError> {
        let answer = self
            .send(reqwest::Method::GET, self.url("/status"), None)
            .await?;
        if answer.code != 200 {
            return Err(answer.into_error());
        }
        let Answer { url, body, .. } = answer;
        let status: ControllerStatus =
            serde_json::from_slice(&body).map_err(|e| StatusError::NotAStatus {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        if status.api_version != API_VERSION || status.kind != KIND {
            return Err(StatusError::NotAStatus {
                url,
                detail: format!("it is `{} {}`", status.api_version, status.kind),
            });
        }
        Ok(Fetched { body, status })
    }

    /// [`Client::get`], and the environment checked against `environment`.
    pub(crate) async fn get_for(&self, environment: Option<&str>) -> Result<Fetched, StatusError> {
        let fetched = self.get().await?;
        if let Some(expected) = environment
            && fetched.status.environment.as_deref() != Some(expected)
        {
            return Err(StatusError::OtherEnvironment {
                url: self.url("/status"),
                expected: expected.to_owned(),
                found: fetched
                    .status
                    .environment
                    .clone()
                    .unwrap_or_else(|| "?".to_owned()),
            });
        }
        Ok(fetched)
    }
}

/// The status of the controller at `endpoint`; with `environment`, it must apply that one.
pub fn fetch(endpoint: &Endpoint, environment: Option<&str>) -> Result<Fetched, StatusError> {
    let client = Client::new(endpoint)?;
    registry::block_on(async { client.get_for(environment).await })
}

/// A bundle reference: `host[:port]/repository:tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleRef {
    /// `host[:port]` of the registry.
    pub host: String,
    /// The repository in it (e.g. `etl/bundles/iot-sensors/dev`).
    pub repository: String,
    /// The tag (e.g. `dev`).
    pub tag: String,
}

/// Why text is not a bundle reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a bundle reference: expected HOST[:PORT]/REPOSITORY:TAG, e.g. \
     `127.0.0.1:5000/etl/bundles/iot-sensors/dev:dev` (a tag, not a digest: the tag is what \
     moves)"
)]
pub struct BundleRefError(pub String);

impl std::str::FromStr for BundleRef {
    type Err = BundleRefError;

    fn from_str(text: &str) -> Result<BundleRef, BundleRefError> {
        let bad = || BundleRefError(text.to_owned());
        if text.contains('@') || text.contains("://") {
            return Err(bad());
        }
        let (host, rest) = text.split_once('/').ok_or_else(bad)?;
        let (repository, tag) = rest.rsplit_once(':').ok_or_else(bad)?;
        let reference: oci_client::Reference = text.parse().map_err(|_| bad())?;
        if reference.registry() != host
            || reference.repository() != repository
            || reference.tag() != Some(tag)
        {
            return Err(bad());
        }
        Ok(BundleRef {
            host: host.to_owned(),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

impl std::fmt::Display for BundleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.host, self.repository, self.tag)
    }
}

impl BundleRef {
    /// The project and environment the repository is named for by etl's convention
    /// (`…/bundles/<project>/<environment>`), if it follows it.
    pub fn conventional_names(&self) -> Option<(&str, &str)> {
        let mut parts = self.repository.rsplit('/');
        let environment = parts.next()?;
        let project = parts.next()?;
        (parts.next()? == "bundles").then_some((project, environment))
    }
}

/// How [`wait`] asks.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// How long to wait in all.
    pub timeout: Duration,
    /// Pause between two questions.
    pub interval: Duration,
    /// Registry hosts spoken to in plain HTTP besides loopback ones (for the HEAD of the tag).
    pub insecure: Vec<String>,
}

/// How a wait ended.
#[derive(Debug)]
pub enum Outcome {
    /// The environment runs the bundle its tag names now.
    Ready(Fetched),
    /// The time ran out.
    TimedOut {
        /// The last status read, if any was.
        last: Option<Fetched>,
        /// Why it is not ready.
        why: String,
    },
}

/// Why waiting stopped early. `E` is the error of the credentials source.
#[derive(Debug, thiserror::Error)]
pub enum WaitError<E> {
    /// The controller cannot be asked in a way that waiting would mend.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// The bundle reference the controller serves is not one.
    #[error("the controller's bundle reference: {0}")]
    BundleRef(#[from] BundleRefError),
    /// The registry's credentials cannot be had.
    #[error(transparent)]
    Credentials(E),
}

/// Whether `fetched` says the environment runs the bundle whose digest the tag names now
/// (`tag_now`): `None` when it does, else why not.
pub fn not_ready(status: &ControllerStatus, tag_now: Option<&str>) -> Option<String> {
    if status.state != EnvironmentState::Ready {
        let mut why = format!("the controller says `{}`", status.state.as_str());
        let pending: Vec<String> = status
            .pipelines
            .iter()
            .filter(|p| p.state != PipelineState::Deployed)
            .map(|p| format!("{} {}", p.name, p.state.as_str()))
            .collect();
        if !pending.is_empty() {
            why.push_str(&format!(" ({})", pending.join(", ")));
        }
        if let Some(error) = &status.tag.error {
            why.push_str(&format!(": {error}"));
        } else if let Some(refused) = &status.refused
            && status.tag.digest.as_deref() == Some(refused.digest.as_str())
        {
            why.push_str(&format!(
                ": it refused {}: {}",
                refused.digest, refused.reason
            ));
        }
        return Some(why);
    }
    let applied = status.applied.as_ref().map(|a| a.digest.as_str());
    match (tag_now, applied) {
        (None, _) => Some(format!("the registry has no tag `{}`", status.bundle)),
        (Some(now), Some(applied)) if now == applied => None,
        (Some(now), applied) => Some(format!(
            "the tag names {now}, the controller applied {}",
            applied.unwrap_or("nothing")
        )),
    }
}

/// Asks the controller at `endpoint` until the environment runs the bundle its tag names now
/// ([`not_ready`]), at most `options.timeout`. An unreachable controller (or a 5xx answer)
/// counts as not ready; a refused token, another environment or an answer that is not a
/// status stop the wait. `credentials` gives the registry's credentials (asked once);
/// `progress` hears each new reason to wait.
pub fn wait<E>(
    endpoint: &Endpoint,
    environment: Option<&str>,
    options: &WaitOptions,
    mut credentials: impl FnMut(&str) -> Result<Credentials, E>,
    mut progress: impl FnMut(&str),
) -> Result<Outcome, WaitError<E>> {
    let client = Client::new(endpoint)?;
    let deadline = Instant::now() + options.timeout;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StatusError::Runtime)?;
    let mut session: Option<(String, Session)> = None;
    let mut last: Option<Fetched> = None;
    let mut said = String::new();
    loop {
        let why = match runtime.block_on(client.get_for(environment)) {
            Err(e) if e.transient() => e.to_string(),
            Err(e) => return Err(e.into()),
            Ok(fetched) => {
                let bundle: BundleRef = fetched.status.bundle.parse()?;
                if session
                    .as_ref()
                    .is_none_or(|(host, _)| *host != bundle.host)
                {
                    let credentials = credentials(&bundle.host).map_err(WaitError::Credentials)?;
                    let retry = Retry {
                        attempts: 1,
                        base: Duration::ZERO,
                    };
                    let s = Session::new(&bundle.host, &options.insecure, &credentials, retry);
                    session = Some((bundle.host.clone(), s));
                }
                let (_, s) = session.as_ref().expect("made above");
                let head = runtime.block_on(s.manifest_digest(&bundle.repository, &bundle.tag));
                let why = match head {
                    Ok(now) => not_ready(&fetched.status, now.as_deref()),
                    Err(e) => Some(format!("the registry: {e}")),
                };
                match why {
                    None => return Ok(Outcome::Ready(fetched)),
                    Some(why) => {
                        last = Some(fetched);
                        why
                    }
                }
            }
        };
        if why != said {
            progress(&why);
            said = why.clone();
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Outcome::TimedOut { last, why });
        }
        let pause = options.interval.min(deadline - now);
        runtime.block_on(async { tokio::time::sleep(pause).await });
    }
}

/// The longest reason a table shows; the JSON has all of it.
const REASON_CHARS: usize = 160;

/// The document for people: header lines, then one line per application.
pub fn table(status: &ControllerStatus) -> String {
    let mut out = String::new();
    let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".to_owned());
    let mut env = format!(
        "environment: {} (project {}, generation {}",
        or_unknown(&status.environment),
        or_unknown(&status.project),
        status.generation
    );
    if let Some(lattice) = &status.lattice {
        env.push_str(&format!(", lattice {lattice}"));
    }
    out.push_str(&env);
    out.push_str(")\n");
    out.push_str(&format!("state:       {}\n", status.state.as_str()));
    out.push_str(&format!("bundle:      {}\n", status.bundle));
    let tag = &status.tag;
    let mut line = format!("tag:         {}", tag.digest.as_deref().unwrap_or("(none)"));
    if let Some(at) = &tag.checked_at {
        line.push_str(&format!(" (checked {at})"));
    }
    if tag.stale {
        line.push_str(", stale");
    }
    out.push_str(&line);
    out.push('\n');
    if let Some(error) = &tag.error {
        out.push_str(&format!("             {}\n", shorten(error)));
    }
    match &status.applied {
        Some(a) => {
            out.push_str(&format!("applied:     {} at {}\n", a.digest, a.applied_at));
            out.push_str(&format!(
                "             revision {}, signed by {}\n",
                a.revision.as_deref().unwrap_or("(unknown)"),
                a.signer
            ));
        }
        None => out.push_str("applied:     (nothing)\n"),
    }
    if let Some(r) = &status.refused {
        out.push_str(&format!("refused:     {} at {}\n", r.digest, r.at));
        out.push_str(&format!("             {}\n", shorten(&r.reason)));
    }
    if status.pipelines.is_empty() {
        return out;
    }
    out.push('\n');
    let header = ["PIPELINE", "STATE", "VERSION", "REASON"];
    let rows: Vec<[String; 4]> = status
        .pipelines
        .iter()
        .map(|p| {
            let name = if p.name == p.application {
                p.name.clone()
            } else {
                format!("{} ({})", p.name, p.application)
            };
            [
                name,
                p.state.as_str().to_owned(),
                p.version.clone().unwrap_or_else(|| "-".to_owned()),
                p.reason.as_deref().map_or_else(|| "-".to_owned(), shorten),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let row = |cells: [&str; 4]| {
        let mut line = String::new();
        for (i, cell) in cells.iter().take(3).enumerate() {
            line.push_str(cell);
            line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
        }
        line.push_str(cells[3]);
        format!("{}\n", line.trim_end())
    };
    let units: Vec<Vec<UnitLine>> = status
        .pipelines
        .iter()
        .map(|p| graph_order(p.units.iter().map(UnitLine::from).collect()))
        .collect();
    let units = UnitTable::new(&units, "  ");
    out.push_str(&row(header));
    for (i, r) in rows.iter().enumerate() {
        out.push_str(&row([&r[0], &r[1], &r[2], &r[3]]));
        out.push_str(&units.render(i));
    }
    out
}

/// A step's or sink's line in a table of counts (`etl status`, `etl top`).
#[derive(Debug, Clone, PartialEq)]
pub struct UnitLine {
    /// The step or sink.
    pub name: String,
    /// Which it is.
    pub kind: NodeKind,
    /// Records in.
    pub input: u64,
    /// Outputs delivered.
    pub out: u64,
    /// Records that gave no output.
    pub filtered: u64,
    /// Records dead-lettered.
    pub dead: u64,
    /// Records of failed batches.
    pub failed: u64,
    /// Retries after `transient` answers.
    pub retries: u64,
    /// Records in and out per second.
    pub rates: Rates,
    /// Whether the rates were computed by the client from two readings (shown with a `*`),
    /// not given by the controller.
    pub computed: bool,
}

impl From<&UnitMetrics> for UnitLine {
    fn from(unit: &UnitMetrics) -> UnitLine {
        let c = &unit.counters;
        UnitLine {
            name: unit.name.clone(),
            kind: unit.kind,
            input: c.input.records,
            out: c.out.records,
            filtered: c.filtered,
            dead: c.dead_lettered_total(),
            failed: c.failed_total(),
            retries: c.retries,
            rates: unit.rates,
            computed: false,
        }
    }
}

/// `units` in graph order: the source, the steps, then the sinks, each in the order given (the
/// controller's, which is the spec's).
pub fn graph_order(mut units: Vec<UnitLine>) -> Vec<UnitLine> {
    let rank = |kind: NodeKind| match kind {
        NodeKind::Source => 0,
        NodeKind::Step => 1,
        NodeKind::Sink => 2,
    };
    units.sort_by_key(|u| rank(u.kind));
    units
}

/// Groups of [`UnitLine`]s (one per pipeline) as text, aligned across groups: each a header and
/// one line per unit, indented.
pub(crate) struct UnitTable {
    /// Per group, its rows of cells (header first); empty for a group without units.
    groups: Vec<Vec<[String; UNIT_COLUMNS]>>,
    widths: [usize; UNIT_COLUMNS],
    indent: String,
}

const UNIT_COLUMNS: usize = 10;
const UNIT_HEADER: [&str; UNIT_COLUMNS] = [
    "UNIT", "KIND", "IN", "OUT", "FILTERED", "DEAD", "FAILED", "RETRIES", "IN/S", "OUT/S",
];

impl UnitTable {
    pub(crate) fn new(groups: &[Vec<UnitLine>], indent: &str) -> UnitTable {
        let computed = groups.iter().flatten().any(|u| u.computed);
        let rate = |r: f64, computed_here: bool| match (computed, computed_here) {
            (false, _) => format!("{r:.1}"),
            (true, true) => format!("{r:.1}*"),
            (true, false) => format!("{r:.1} "),
        };
        let groups: Vec<Vec<[String; UNIT_COLUMNS]>> = groups
            .iter()
            .map(|units| {
                if units.is_empty() {
                    return Vec::new();
                }
                let header = UNIT_HEADER.map(str::to_owned);
                let rows = units.iter().map(|u| {
                    [
                        u.name.clone(),
                        kind_word(u.kind).to_owned(),
                        u.input.to_string(),
                        u.out.to_string(),
                        u.filtered.to_string(),
                        u.dead.to_string(),
                        u.failed.to_string(),
                        u.retries.to_string(),
                        rate(u.rates.input, u.computed),
                        rate(u.rates.out, u.computed),
                    ]
                });
                std::iter::once(header).chain(rows).collect()
            })
            .collect();
        let mut widths = [0; UNIT_COLUMNS];
        for row in groups.iter().flatten() {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        UnitTable {
            groups,
            widths,
            indent: indent.to_owned(),
        }
    }

    /// Group `i`'s lines (nothing for a group without units).
    pub(crate) fn render(&self, i: usize) -> String {
        let mut out = String::new();
        for row in self.groups.get(i).into_iter().flatten() {
            let mut line = self.indent.clone();
            for (c, cell) in row.iter().enumerate() {
                let pad = " ".repeat(self.widths[c] - cell.chars().count());
                if c < 2 {
                    line.push_str(cell);
                    line.push_str(&pad);
                } else {
                    line.push_str(&pad);
                    line.push_str(cell);
                }
                line.push_str("  ");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// The word for a node's kind.
fn kind_word(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Source => "source",
        NodeKind::Step => "step",
        NodeKind::Sink => "sink",
    }
}

/// `text` on one line, at most [`REASON_CHARS`] characters.
fn shorten(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= REASON_CHARS {
        return one_line;
    }
    let cut: String = one_line.chars().take(REASON_CHARS - 1).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> ControllerStatus {
        ControllerStatus {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            project: Some("iot-sensors".to_owned()),
            environment: Some("dev".to_owned()),
            generation: "v1".to_owned(),
            lattice: Some("acme-iot-dev".to_owned()),
            bundle: "127.0.0.1:5000/etl/bundles/iot-sensors/dev:dev".to_owned(),
            tag: TagStatus {
                digest: Some(format!("sha256:{}", "a".repeat(64))),
                checked_at: Some("2026-12-07T14:00:10Z".to_owned()),
                stale: false,
                error: None,
            },
            applied: Some(Applied {
                digest: format!("sha256:{}", "a".repeat(64)),
                revision: Some("0123456789abcdef0123456789abcdef01234567".to_owned()),
                signer: "sha256:0123456789abcdef".to_owned(),
                applied_at: "2026-12-07T14:00:00Z".to_owned(),
            }),
            refused: None,
            state: EnvironmentState::Ready,
            pipelines: vec![
                PipelineStatus {
                    name: "iot-sensors-http-listener".to_owned(),
                    application: "iot-sensors-http-listener".to_owned(),
                    version: Some("sha-e075533a862a".to_owned()),
                    state: PipelineState::Deployed,
                    reason: None,
                    artifacts: vec![],
                    units: vec![],
                },
                PipelineStatus {
                    name: "sensor-ingest".to_owned(),
                    application: "sensor-ingest".to_owned(),
                    version: Some("sha-2ada642ee5de".to_owned()),
                    state: PipelineState::Deployed,
                    reason: None,
                    artifacts: vec![ArtifactStatus {
                        unit: "parse".to_owned(),
                        image: format!(
                            "127.0.0.1:5000/etl/sensor-ingest-parse@sha256:{}",
                            "b".repeat(64)
                        ),
                        component_digest: format!("sha256:{}", "c".repeat(64)),
                    }],
                    units: vec![],
                },
            ],
        }
    }

    #[test]
    fn the_document_has_the_spec_shape() {
        let mut doc = document();
        doc.pipelines.truncate(0);
        doc.applied = None;
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "apiVersion": "etl/v1alpha1", "kind": "ControllerStatus",
                "project": "iot-sensors", "environment": "dev", "generation": "v1",
                "lattice": "acme-iot-dev",
                "bundle": "127.0.0.1:5000/etl/bundles/iot-sensors/dev:dev",
                "tag": {"digest": format!("sha256:{}", "a".repeat(64)),
                        "checkedAt": "2026-12-07T14:00:10Z", "stale": false, "error": null},
                "applied": null, "refused": null, "state": "ready", "pipelines": []
            })
        );
        let full = document();
        let text = serde_json::to_string(&full).unwrap();
        assert!(text.contains(r#""componentDigest":"sha256:ccc"#), "{text}");
        assert!(
            text.contains(r#""appliedAt":"2026-12-07T14:00:00Z""#),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<ControllerStatus>(&text).unwrap(),
            full
        );
    }

    #[test]
    fn tables() {
        insta::assert_snapshot!("ready", table(&document()));
        let mut doc = document();
        doc.state = EnvironmentState::Failed;
        doc.tag.digest = Some(format!("sha256:{}", "d".repeat(64)));
        doc.refused = Some(Refused {
            digest: format!("sha256:{}", "d".repeat(64)),
            reason: "the signature does not verify with the key".to_owned(),
            at: "2026-12-07T14:01:00Z".to_owned(),
        });
        doc.pipelines[1].state = PipelineState::Failed;
        doc.pipelines[1].reason = Some(format!(
            "failed to fetch component: failed to fetch component under OCI reference `{}`: dns \
             error",
            doc.pipelines[1].artifacts[0].image
        ));
        insta::assert_snapshot!("refused_and_failed", table(&doc));
        let mut stale = document();
        stale.state = EnvironmentState::Stale;
        stale.tag.stale = true;
        stale.tag.error = Some(
            "cannot connect to registry `127.0.0.1:5000` over http: connection refused".to_owned(),
        );
        stale.applied = None;
        stale.pipelines.clear();
        stale.project = None;
        insta::assert_snapshot!("stale_nothing_applied", table(&stale));
    }

    #[test]
    fn tables_with_units() {
        use crate::ops::telemetry::{Counters, Failure, Flow};
        use std::collections::BTreeMap;
        let unit = |name: &str, kind, input: u64, rates: Rates| UnitMetrics {
            name: name.to_owned(),
            kind,
            counters: Counters {
                batches: 12,
                input: Flow {
                    records: input,
                    bytes: 100 * input,
                },
                out: Flow {
                    records: input - 20,
                    bytes: 100 * (input - 20),
                },
                produced: input - 20,
                filtered: 12,
                dead_lettered: BTreeMap::from([
                    ("not_json".to_owned(), 5),
                    ("other".to_owned(), 1),
                ]),
                failed: BTreeMap::from([(Failure::Transient, 2)]),
                transient: 4,
                retries: 3,
                ..Counters::default()
            },
            rates,
        };
        let mut doc = document();
        // Sinks after steps, whatever the order served.
        doc.pipelines[1].units = vec![
            unit("warehouse", NodeKind::Sink, 1180, Rates::default()),
            unit(
                "parse",
                NodeKind::Step,
                12000,
                Rates {
                    input: 20.04,
                    out: 19.66,
                    errors: 0.1,
                },
            ),
        ];
        insta::assert_snapshot!("units", table(&doc));
        // A document without rates reads as rates of 0.
        let mut json = serde_json::to_value(&doc).unwrap();
        json["pipelines"][1]["units"][0]
            .as_object_mut()
            .unwrap()
            .remove("rates");
        let read: ControllerStatus = serde_json::from_value(json).unwrap();
        assert_eq!(read.pipelines[1].units[0].rates, Rates::default());
    }

    #[test]
    fn readiness_needs_the_tag_of_now() {
        let doc = document();
        let digest = doc.applied.as_ref().unwrap().digest.clone();
        assert_eq!(not_ready(&doc, Some(&digest)), None);
        let other = format!("sha256:{}", "e".repeat(64));
        assert_eq!(
            not_ready(&doc, Some(&other)),
            Some(format!(
                "the tag names {other}, the controller applied {digest}"
            ))
        );
        assert!(not_ready(&doc, None).unwrap().contains("no tag"));
        let mut reconciling = document();
        reconciling.state = EnvironmentState::Reconciling;
        reconciling.pipelines[1].state = PipelineState::Reconciling;
        assert_eq!(
            not_ready(&reconciling, Some(&digest)).unwrap(),
            "the controller says `reconciling` (sensor-ingest reconciling)"
        );
    }

    #[test]
    fn bundle_references() {
        let r: BundleRef = "127.0.0.1:5000/etl/bundles/iot-sensors/dev:dev"
            .parse()
            .unwrap();
        assert_eq!(
            (r.host.as_str(), r.repository.as_str(), r.tag.as_str()),
            ("127.0.0.1:5000", "etl/bundles/iot-sensors/dev", "dev")
        );
        assert_eq!(r.conventional_names(), Some(("iot-sensors", "dev")));
        assert_eq!(
            r.to_string(),
            "127.0.0.1:5000/etl/bundles/iot-sensors/dev:dev"
        );
        let r: BundleRef = "registry.acme.example/x/y:staging".parse().unwrap();
        assert_eq!(r.conventional_names(), None);
        for bad in [
            "127.0.0.1:5000/etl/bundles/p/dev",
            "127.0.0.1:5000/etl/bundles/p/dev@sha256:00",
            "https://r.example/x:dev",
            "r.example",
            "r.example/X:dev",
            "r.example/x:",
        ] {
            assert!(bad.parse::<BundleRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_are_never_shown() {
        let t = Token::new("  s3cret\n", "ETL_CONTROLLER_TOKEN").unwrap();
        assert_eq!(t.expose(), "s3cret");
        assert_eq!(format!("{t:?}"), "Token(***)");
        assert!(matches!(Token::new(" \n", "x"), Err(TokenError::Empty(_))));
        assert!(matches!(
            Token::new("a b", "x"),
            Err(TokenError::NotPrintable(_))
        ));
    }
}
