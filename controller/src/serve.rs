//! Who may ask what runs, and how: the HTTP status API (`GET /status`, `GET /healthz`; HTTPS
//! when given a certificate and key; a bearer token, compared in constant time, required of
//! every request when set — a request without it gets `401 {"error":"unauthorized"}` whatever
//! it asked for) and the NATS subject `etl.controller.<project>.<environment>.status`, answered
//! with the same document (NATS's own credentials decide who may ask there).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
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
use subtle::ConstantTimeEq as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

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
struct Api {
    status: watch::Receiver<ControllerStatus>,
    /// The SHA-256 of the token: compared in constant time and fixed length.
    token: Option<String>,
}

/// Serves the status API on `listener` until `stop` turns true; connections already accepted
/// are finished.
pub async fn http(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    token: Option<Token>,
    status: watch::Receiver<ControllerStatus>,
    mut stop: watch::Receiver<bool>,
) {
    let api = Api {
        status,
        token: token.map(|t| etl::util::digest::sha256(t.expose().as_bytes())),
    };
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
        async move { Ok::<_, Infallible>(answer(&api, &request)) }
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

/// The answer to one request: authorization first, so that a request without the token
/// learns nothing (not even which paths exist).
fn answer(api: &Api, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if let Some(expected) = &api.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .map(|t| etl::util::digest::sha256(t.as_bytes()))
            .unwrap_or_default();
        let matches: bool = presented.as_bytes().ct_eq(expected.as_bytes()).into();
        if !matches {
            let mut response = json(StatusCode::UNAUTHORIZED, br#"{"error":"unauthorized"}"#);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    let path = request.uri().path();
    let known = matches!(path, "/status" | "/healthz");
    if known && !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = json(
            StatusCode::METHOD_NOT_ALLOWED,
            br#"{"error":"method not allowed"}"#,
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/status" => {
            let body = serde_json::to_vec(&*api.status.borrow()).unwrap_or_default();
            json(StatusCode::OK, &body)
        }
        "/healthz" => json(StatusCode::OK, br#"{"ok":true}"#),
        _ => json(StatusCode::NOT_FOUND, br#"{"error":"not found"}"#),
    }
}

/// The token of an `Authorization: Bearer <token>` value.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn json(code: StatusCode, body: &[u8]) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(body)));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The NATS subject the status is answered on.
pub fn nats_subject(project: &str, environment: &str) -> String {
    format!("etl.controller.{project}.{environment}.status")
}

/// Answers status requests on NATS ([`nats_subject`]) once the project and environment are
/// known, until the connection closes.
pub async fn nats(client: async_nats::Client, mut status: watch::Receiver<ControllerStatus>) {
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
        let body = serde_json::to_vec(&*status.borrow()).unwrap_or_default();
        if let Err(e) = client.publish(reply, body.into()).await {
            tracing::debug!("status reply on NATS: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
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
