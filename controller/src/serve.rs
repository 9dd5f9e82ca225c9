//! Who may ask what runs, and how: the HTTP API — `GET /status`, `GET /healthz`, `GET /metrics`
//! (Prometheus), `/api/v1/…` ([`crate::api`]), the dashboard (`/`, `/assets/…`) and its
//! `/login` and `/logout`; HTTPS when given a certificate and key; with a token set, every
//! request but `/healthz` needs it or the dashboard's session cookie ([`crate::auth`]), and one
//! without gets `401 {"error":"unauthorized"}` whatever it asked for (a browser asking for a
//! page: the login form) — and the NATS subject `etl.controller.<project>.<environment>.status`,
//! answered with the status document (NATS's own credentials decide who may ask there).
//!
//! Without a token (which the configuration allows on loopback only), a request must name a
//! loopback host (`Host: localhost`, `127.0.0.1`, `[::1]`): a web page whose name an attacker
//! re-points at 127.0.0.1 (DNS rebinding) reaches the port, but names the attacker's host. The
//! dashboard's pages and files carry a Content Security Policy that allows the controller's own
//! origin only. Request bodies are bounded in size and in time.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use etl::ops::status::{ControllerStatus, Token};
use futures::StreamExt as _;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::{self, Access, Auth};
use crate::deadletters::Caller;
use crate::telemetry::Telemetry;
use crate::{api, dashboard};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's body.
const BODY_TIME: Duration = Duration::from_secs(10);
/// The most bytes an API request's body may have (a replay of 10 000 ids takes a few hundred KB
/// at most).
pub const MAX_API_BODY: usize = 1024 * 1024;
/// The most bytes the login form's body may have.
pub const MAX_LOGIN_BODY: usize = 4 * 1024;

/// The dashboard's Content Security Policy: its own origin only, no inline script or style.
pub const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// The login page's: the dashboard's, its inline style allowed by its hash.
static LOGIN_CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    use base64::Engine as _;
    use sha2::Digest as _;
    let hash = base64::engine::general_purpose::STANDARD
        .encode(sha2::Sha256::digest(auth::LOGIN_STYLE.as_bytes()));
    let csp = DASHBOARD_CSP.replacen(
        "style-src 'self'",
        &format!("style-src 'self' 'sha256-{hash}'"),
        1,
    );
    HeaderValue::from_str(&csp).expect("a header value of ASCII")
});

/// Why HTTPS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("`{}`: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate file holds no certificate.
    #[error("`{}` holds no PEM certificate (-----BEGIN CERTIFICATE-----)", .0.display())]
    NoCertificate(std::path::PathBuf),
    /// The key file holds no private key.
    #[error("`{}` holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}", path.display())]
    NoKey {
        /// The file.
        path: std::path::PathBuf,
        /// The parser's words.
        reason: String,
    },
    /// The certificate and key do not make a server configuration.
    #[error("the certificate and key do not go together: {0}")]
    Mismatch(String),
}

/// The TLS server configuration of a PEM certificate chain and private key (ring provider).
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert)?)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_owned()));
    }
    let private = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| TlsError::NoKey {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    Ok(Arc::new(config))
}

/// What every request is answered from.
#[derive(Clone)]
pub struct Api {
    status: watch::Receiver<ControllerStatus>,
    auth: Arc<Auth>,
    telemetry: Option<Arc<Telemetry>>,
    tls: bool,
}

impl Api {
    /// The status API of `status`, behind `token` when given.
    pub fn new(status: watch::Receiver<ControllerStatus>, token: Option<&Token>) -> Api {
        Api {
            status,
            auth: Arc::new(Auth::new(token)),
            telemetry: None,
            tls: false,
        }
    }

    /// With the telemetry: `/metrics`, `/api/v1/…` and the units in `/status`.
    pub fn with_telemetry(mut self, telemetry: Arc<Telemetry>) -> Api {
        self.telemetry = Some(telemetry);
        self
    }

    /// The status document, with the units' counts when there is telemetry.
    fn status(&self) -> ControllerStatus {
        let doc = self.status.borrow().clone();
        match &self.telemetry {
            Some(t) => api::with_units(doc, t),
            None => doc,
        }
    }
}

/// Serves the status API on `listener` until `stop` turns true; connections already accepted
/// are finished.
pub async fn http(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut api: Api,
    mut stop: watch::Receiver<bool>,
) {
    api.tls = tls.is_some();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stop) => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("status API: accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let api = api.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => connection(TokioIo::new(stream), api, peer).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection(TokioIo::new(stream), api, peer).await,
                        Ok(Err(e)) => tracing::debug!(%peer, "status API: TLS handshake: {e}"),
                        Err(_) => tracing::debug!(%peer, "status API: TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Completes when `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Serves HTTP/1.1 on one connection.
async fn connection<S>(io: TokioIo<S>, api: Api, peer: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let api = api.clone();
        async move {
            let mut response = answer(&api, request, peer).await;
            // No answer is to be read as another type than it says.
            response.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            Ok::<_, Infallible>(response)
        }
    });
    // A client gets 10 s to send its request's head: a slow one cannot hold a connection open.
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(10))
        .serve_connection(io, service)
        .await
    {
        tracing::debug!(%peer, "status API: {e}");
    }
}

/// The methods `path` takes, when it is known.
fn methods(path: &str) -> Option<&'static str> {
    match path {
        "/status" | "/healthz" | "/metrics" | "/" => Some("GET, HEAD"),
        "/login" => Some("GET, HEAD, POST"),
        "/logout" => Some("POST"),
        _ if path.starts_with("/assets/") => Some("GET, HEAD"),
        _ => api::methods(path),
    }
}

/// Whether a request is a browser's for a page: a GET of `/`, or of any path that is not the
/// API's, metrics or an asset, accepting HTML.
fn wants_page(request: &Request<Incoming>) -> bool {
    let path = request.uri().path();
    let accepts_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    matches!(*request.method(), Method::GET | Method::HEAD)
        && (path == "/"
            || (accepts_html
                && !api::is_api(path)
                && !matches!(path, "/status" | "/metrics")
                && !path.starts_with("/assets/")))
}

/// The answer to one request. `/healthz` is open; everything else needs the token (or the
/// session cookie) when one is set: a request without it learns nothing (not even which paths
/// exist), but a browser asking for a page gets the login form.
async fn answer(api: &Api, request: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let allowed = methods(&path);
    let allows = |m: &Method| allowed.is_some_and(|a| a.split(", ").any(|x| x == m.as_str()));
    if path == "/healthz" {
        if !allows(&method) {
            return not_allowed(allowed);
        }
        return json(StatusCode::OK, br#"{"ok":true}"#);
    }
    if !api.auth.required() && !names_loopback(&request) {
        return json(
            StatusCode::FORBIDDEN,
            br#"{"error":"without a token this controller answers requests to a loopback host only (Host: localhost, 127.0.0.1 or [::1]); this one names another host, as a web page re-pointed at it would (DNS rebinding). Use a loopback address, or set a token"}"#,
        );
    }
    if path == "/logout" && method == Method::POST {
        return redirect(Some(auth::logout_cookie(api.tls)));
    }
    if path == "/login" {
        return login(api, request).await;
    }
    let access = api.auth.check(request.headers());
    if access == Access::Denied {
        if wants_page(&request) {
            return html(StatusCode::UNAUTHORIZED, auth::login_page(false));
        }
        let mut response = json(StatusCode::UNAUTHORIZED, br#"{"error":"unauthorized"}"#);
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    if allowed.is_some() && !allows(&method) {
        return not_allowed(allowed);
    }
    if method == Method::POST {
        // A browser's cookie rides along on any site's form: a cookie's POST also needs the
        // header no form can set. Without a token, a JSON body (which a form cannot send
        // without a CORS preflight, never granted) does too.
        let csrf = auth::csrf_header(request.headers());
        let json_body = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        let ok = match access {
            Access::Bearer => true,
            Access::Cookie => csrf,
            Access::Open => csrf || json_body,
            Access::Denied => false,
        };
        if !ok {
            return json(
                StatusCode::FORBIDDEN,
                br#"{"error":"a state-changing request from a browser session needs the header x-etl-csrf: 1"}"#,
            );
        }
    }
    match path.as_str() {
        "/status" => {
            let body = serde_json::to_vec(&api.status()).unwrap_or_default();
            json(StatusCode::OK, &body)
        }
        "/metrics" => {
            let points = api
                .telemetry
                .as_ref()
                .and_then(|t| crate::telemetry::metrics::collect(t));
            let mut response = Response::new(Full::new(Bytes::from(
                crate::telemetry::prometheus::exposition(points.as_ref()),
            )));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::telemetry::prometheus::CONTENT_TYPE),
            );
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        p if api::is_api(p) => {
            let Some(telemetry) = &api.telemetry else {
                return json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    br#"{"error":"this controller serves no telemetry"}"#,
                );
            };
            let query = request.uri().query().unwrap_or_default().to_owned();
            let body = if method == Method::POST {
                match read_body(request, MAX_API_BODY).await {
                    Ok(body) => body,
                    Err(response) => return response,
                }
            } else {
                Bytes::new()
            };
            let credential = match access {
                Access::Open => "none".to_owned(),
                _ => api.auth.credential(),
            };
            let status = api.status();
            let reply = api::answer(
                &status,
                telemetry,
                api::Request {
                    method: &method,
                    path: p,
                    query: &query,
                    body: &body,
                    caller: Caller {
                        credential,
                        remote: peer.to_string(),
                    },
                },
            )
            .await;
            json(reply.code, &reply.body)
        }
        p => match dashboard::asset(p) {
            Some(asset) => {
                let fresh = request
                    .headers()
                    .get(header::IF_NONE_MATCH)
                    .is_some_and(|v| v.as_bytes() == asset.etag.as_bytes());
                let mut response = if fresh {
                    let mut r = Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = StatusCode::NOT_MODIFIED;
                    r
                } else {
                    Response::new(Full::new(Bytes::from_static(asset.bytes)))
                };
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                );
                headers.insert(header::ETAG, HeaderValue::from_static(asset.etag));
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                page_headers(headers, HeaderValue::from_static(DASHBOARD_CSP));
                response
            }
            None => json(StatusCode::NOT_FOUND, br#"{"error":"not found"}"#),
        },
    }
}

/// Whether a request names a loopback host: `localhost`, an address of 127.0.0.0/8 or `::1`
/// (with a port or without), in its `Host` header (else its URI's authority).
fn names_loopback(request: &Request<Incoming>) -> bool {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    host.is_some_and(loopback_host)
}

/// Whether `host` (`name`, `name:port`, `[v6]:port`) is a loopback name or address.
fn loopback_host(host: &str) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || port.starts_with(':') => v6,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            Some(_) => return false,
            None => host,
        }
    };
    if name.eq_ignore_ascii_case("localhost") || name.eq_ignore_ascii_case("localhost.") {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6 == Ipv6Addr::LOCALHOST || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
enum BodyError {
    /// More than the limit.
    TooLarge,
    /// Not whole within [`BODY_TIME`].
    Slow,
    /// The connection broke off, or the body was malformed.
    Broken,
}

/// `body`, at most `limit` bytes, whole within `time`.
async fn collect_body<B>(body: B, limit: usize, time: Duration) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt as _;
    match tokio::time::timeout(time, http_body_util::Limited::new(body, limit).collect()).await {
        Err(_) => Err(BodyError::Slow),
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(_)) => Err(BodyError::Broken),
    }
}

/// A request's body, at most `limit` bytes, whole within [`BODY_TIME`]; else the answer.
async fn read_body(
    request: Request<Incoming>,
    limit: usize,
) -> Result<Bytes, Response<Full<Bytes>>> {
    collect_body(request.into_body(), limit, BODY_TIME)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => json(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(r#"{{"error":"the request body is larger than {limit} bytes"}}"#)
                    .as_bytes(),
            ),
            BodyError::Slow => json(
                StatusCode::REQUEST_TIMEOUT,
                br#"{"error":"the request body did not arrive within 10 s"}"#,
            ),
            BodyError::Broken => json(
                StatusCode::BAD_REQUEST,
                br#"{"error":"the request body broke off"}"#,
            ),
        })
}

/// `/login`: the form (GET), or the token from it (POST): a session cookie and back to `/`
/// when it is the token, the form again when not.
async fn login(api: &Api, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if !api.auth.required() {
        return redirect(None);
    }
    match *request.method() {
        Method::GET | Method::HEAD => html(StatusCode::OK, auth::login_page(false)),
        Method::POST => {
            let body = match read_body(request, MAX_LOGIN_BODY).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            let token = form_urlencoded::parse(&body)
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            if api.auth.is_token(&token) {
                redirect(api.auth.login_cookie(api.tls))
            } else {
                html(StatusCode::UNAUTHORIZED, auth::login_page(true))
            }
        }
        _ => not_allowed(Some("GET, HEAD, POST")),
    }
}

/// `303 See Other` to `/`, setting `cookie`.
fn redirect(cookie: Option<HeaderValue>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/"));
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn not_allowed(allowed: Option<&'static str>) -> Response<Full<Bytes>> {
    let mut response = json(
        StatusCode::METHOD_NOT_ALLOWED,
        br#"{"error":"method not allowed"}"#,
    );
    if let Some(allowed) = allowed {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allowed));
    }
    response
}

/// The headers of the dashboard's pages and files: `csp`, no MIME sniffing, no referrer.
fn page_headers(headers: &mut hyper::HeaderMap, csp: HeaderValue) {
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// The login page (`body`), with `code`.
fn html(code: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    page_headers(headers, LOGIN_CSP.clone());
    response
}

fn json(code: StatusCode, body: &[u8]) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(body)));
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The NATS subject the status is answered on.
pub fn nats_subject(project: &str, environment: &str) -> String {
    format!("etl.controller.{project}.{environment}.status")
}

/// Answers status requests on NATS ([`nats_subject`]) once the project and environment are
/// known, until the connection closes.
pub async fn nats(
    client: async_nats::Client,
    mut status: watch::Receiver<ControllerStatus>,
    telemetry: Option<Arc<Telemetry>>,
) {
    let (project, environment) = match status
        .wait_for(|s| s.project.is_some() && s.environment.is_some())
        .await
    {
        Ok(doc) => (
            doc.project.clone().unwrap_or_default(),
            doc.environment.clone().unwrap_or_default(),
        ),
        Err(_) => return,
    };
    let token = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if !token(&project) || !token(&environment) {
        tracing::warn!(
            %project, %environment,
            "not answering status requests over NATS: the project or environment cannot be a \
             subject token"
        );
        return;
    }
    let subject = nats_subject(&project, &environment);
    let mut requests = match client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("not answering status requests on `{subject}`: {e}");
            return;
        }
    };
    tracing::info!("answering status requests on `{subject}`");
    while let Some(request) = requests.next().await {
        let Some(reply) = request.reply else {
            continue;
        };
        let doc = status.borrow().clone();
        let doc = match &telemetry {
            Some(t) => api::with_units(doc, t),
            None => doc,
        };
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        if let Err(e) = client.publish(reply, body.into()).await {
            tracing::debug!("status reply on NATS: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "LocalHost:9464",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:9464",
            "127.8.9.10:1",
            "[::1]",
            "[::1]:9464",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(loopback_host(host), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:9464",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.5:9464",
            "0.0.0.0:9464",
            "[::]:9464",
            "[::1]x",
            "::1",
            "localhost:port",
        ] {
            assert!(!loopback_host(host), "{host}");
        }
    }

    #[tokio::test]
    async fn bodies_are_bounded_in_size_and_time() {
        let full = |n: usize| Full::new(Bytes::from(vec![b'x'; n]));
        let second = Duration::from_secs(1);
        assert_eq!(
            collect_body(full(MAX_LOGIN_BODY), MAX_LOGIN_BODY, second)
                .await
                .unwrap()
                .len(),
            MAX_LOGIN_BODY
        );
        assert_eq!(
            collect_body(full(MAX_LOGIN_BODY + 1), MAX_LOGIN_BODY, second).await,
            Err(BodyError::TooLarge)
        );
        // A client that never finishes its body.
        let never = http_body_util::StreamBody::new(futures::stream::pending::<
            Result<hyper::body::Frame<Bytes>, Infallible>,
        >());
        assert_eq!(
            collect_body(never, MAX_LOGIN_BODY, Duration::from_millis(50)).await,
            Err(BodyError::Slow)
        );
        let broken = http_body_util::StreamBody::new(futures::stream::iter([Err::<
            hyper::body::Frame<Bytes>,
            _,
        >(
            std::io::Error::other("reset"),
        )]));
        assert_eq!(
            collect_body(broken, MAX_LOGIN_BODY, second).await,
            Err(BodyError::Broken)
        );
    }

    #[test]
    fn the_login_page_s_style_is_allowed_by_its_hash_only() {
        let csp = LOGIN_CSP.to_str().unwrap();
        assert!(
            csp.starts_with("default-src 'none'; script-src 'self'; style-src 'self' 'sha256-")
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.ends_with("frame-ancestors 'none'"));
        let page = String::from_utf8(auth::login_page(true)).unwrap();
        assert!(page.contains(&format!("<style>{}</style>", auth::LOGIN_STYLE)));
        assert_eq!(page.matches("<style").count(), 1);
        assert!(!page.contains("<script") && !page.contains(" style="));
    }

    #[test]
    fn unusable_tls_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let e = tls_config(&cert, &key).unwrap_err().to_string();
        assert!(
            e.contains("cert.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        let e = tls_config(&cert, &key).unwrap_err().to_string();
        assert!(
            e.contains("key.pem") && e.contains("no PEM private key"),
            "{e}"
        );
        let other = rcgen::generate_simple_self_signed(vec!["x".to_owned()]).unwrap();
        std::fs::write(&key, other.signing_key.serialize_pem()).unwrap();
        let e = tls_config(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("do not go together"), "{e}");
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        assert!(tls_config(&cert, &key).is_ok());
    }
}
