//! Who may ask: the HTTP status API with and without the bearer token, over HTTPS with a
//! self-signed certificate, the NATS status subject, and `run` from start to a graceful stop.
//! (The dashboard's login, cookie and CSRF header: `telemetry.rs`.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use etl::ops::status::{
    self, ControllerStatus, Endpoint, EnvironmentState, Outcome, StatusError, Token, WaitOptions,
};
use etl_controller::serve;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Env;
use crate::bundles::{LISTENER_V, bundle, listener, pipeline};

/// A status document: the first one of dev's controller, with a project.
fn document(env: &Env) -> ControllerStatus {
    etl_controller::status::initial(&env.settings())
}

/// Serves `doc` over HTTP(S) on a free port; the port and the switch that stops it.
async fn serve_http(
    doc: ControllerStatus,
    token: Option<&str>,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> (u16, watch::Sender<bool>, watch::Sender<ControllerStatus>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (status_tx, status) = watch::channel(doc);
    let (stop, stopped) = watch::channel(false);
    let token = token.map(|t| Token::new(t, "test").unwrap());
    let api = serve::Api::new(status, token.as_ref());
    tokio::spawn(serve::http(listener, tls, api, stopped));
    (port, stop, status_tx)
}

/// A plain HTTP request: the status code, the `WWW-Authenticate` header and the body.
fn raw(port: u16, method: &str, path: &str, authorization: Option<&str>) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let code = head[9..12].parse().unwrap();
    let challenge = head
        .lines()
        .find_map(|l| l.strip_prefix("www-authenticate: "))
        .unwrap_or_default()
        .to_owned();
    (code, challenge, body.to_owned())
}

fn endpoint(url: String, token: Option<&str>) -> Endpoint {
    Endpoint {
        url,
        token: token.map(|t| Token::new(t, "test").unwrap()),
        ca_cert: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_token_a_request_learns_nothing() {
    let env = Env::start().await;
    let doc = document(&env);
    let (port, _stop, _status) = serve_http(doc.clone(), Some("s3cret-t0ken"), None).await;
    let unauthorized = (
        401,
        "Bearer".to_owned(),
        r#"{"error":"unauthorized"}"#.to_owned(),
    );
    let answers = tokio::task::spawn_blocking(move || {
        let mut answers = vec![];
        for path in ["/status", "/metrics", "/api/v1/overview", "/nothing-here"] {
            answers.push(raw(port, "GET", path, None));
            answers.push(raw(port, "GET", path, Some("Bearer wrong")));
            answers.push(raw(port, "GET", path, Some("Basic czNjcmV0LXQwa2Vu")));
        }
        answers.push(raw(port, "POST", "/status", None));
        let ok = [
            raw(port, "GET", "/status", Some("Bearer s3cret-t0ken")),
            // Open to liveness probes.
            raw(port, "GET", "/healthz", None),
            raw(port, "GET", "/nothing-here", Some("Bearer s3cret-t0ken")),
            raw(port, "DELETE", "/status", Some("Bearer s3cret-t0ken")),
        ];
        (answers, ok)
    })
    .await
    .unwrap();
    for answer in &answers.0 {
        assert_eq!(*answer, unauthorized);
    }
    let [status_answer, health, missing, delete] = answers.1;
    assert_eq!(status_answer.0, 200);
    let served: ControllerStatus = serde_json::from_str(&status_answer.2).unwrap();
    assert_eq!(served, doc);
    assert_eq!((health.0, health.2.as_str()), (200, r#"{"ok":true}"#));
    assert_eq!(missing.0, 404);
    assert_eq!(delete.0, 405);

    // The client library: the token names the way out.
    let url = format!("http://127.0.0.1:{port}");
    let (none, wrong, right) = tokio::task::spawn_blocking(move || {
        (
            status::fetch(&endpoint(url.clone(), None), None),
            status::fetch(&endpoint(url.clone(), Some("wrong")), None),
            status::fetch(&endpoint(url.clone(), Some("s3cret-t0ken")), Some("dev")),
        )
    })
    .await
    .unwrap();
    let none = none.unwrap_err();
    assert!(
        matches!(
            none,
            StatusError::Unauthorized {
                with_token: false,
                ..
            }
        ),
        "{none}"
    );
    assert!(none.to_string().contains("--token-file"), "{none}");
    assert!(matches!(
        wrong.unwrap_err(),
        StatusError::Unauthorized {
            with_token: true,
            ..
        }
    ));
    let right = right.unwrap();
    assert_eq!(right.status, doc);
    assert_eq!(right.body, status_answer.2.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_self_signed_certificate() {
    let env = Env::start().await;
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = env.dir.path().join("cert.pem");
    let key = env.dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    // As the configuration makes it.
    let mut flags = env.flags();
    flags.tls_cert = Some(cert.clone());
    flags.tls_key = Some(key);
    flags.listen = Some("0.0.0.0:9464".to_owned());
    flags.token_file = Some(env.dir.path().join("token"));
    std::fs::write(env.dir.path().join("token"), "tls-t0ken\n").unwrap();
    let settings = etl_controller::config::Settings::resolve(flags, &|_| None).unwrap();
    let doc = document(&env);
    let (port, _stop, _status) = serve_http(doc.clone(), Some("tls-t0ken"), settings.tls).await;
    let pem = std::fs::read(&cert).unwrap();
    let (trusted, untrusted, plain) = tokio::task::spawn_blocking(move || {
        let https = format!("https://127.0.0.1:{port}");
        let mut trusted = endpoint(https.clone(), Some("tls-t0ken"));
        trusted.ca_cert = Some(pem);
        (
            status::fetch(&trusted, None),
            status::fetch(&endpoint(https, Some("tls-t0ken")), None),
            status::fetch(
                &endpoint(format!("http://127.0.0.1:{port}"), Some("tls-t0ken")),
                None,
            ),
        )
    })
    .await
    .unwrap();
    assert_eq!(trusted.unwrap().status, doc);
    let untrusted = untrusted.unwrap_err().to_string();
    assert!(
        untrusted.contains("cannot reach the controller"),
        "{untrusted}"
    );
    assert!(plain.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_is_answered_over_nats() {
    let env = Env::start().await;
    let nats = async_nats::connect(env.nats.url()).await.unwrap();
    let mut doc = document(&env);
    doc.state = EnvironmentState::Reconciling;
    let (_tx, status) = watch::channel(doc.clone());
    let answering = tokio::spawn(serve::nats(nats.clone(), status, None));
    let subject = serve::nats_subject("iot-sensors", "dev");
    assert_eq!(subject, "etl.controller.iot-sensors.dev.status");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let answer = loop {
        // The subscription is made in the background: ask until it answers.
        match nats.request(subject.clone(), "".into()).await {
            Ok(answer) => break answer,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("no answer on {subject}: {e}"),
        }
    };
    let served: ControllerStatus = serde_json::from_slice(&answer.payload).unwrap();
    assert_eq!(served, doc);
    answering.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_applies_serves_and_stops_on_request() {
    let env = Env::start().await;
    let digest = env
        .push(&bundle("dev", vec![listener(LISTENER_V), pipeline()]))
        .await;
    let port = crate::registry::free_port();
    let mut flags = env.flags();
    flags.listen = Some(format!("127.0.0.1:{port}"));
    let settings = etl_controller::config::Settings::resolve(flags, &|_| None).unwrap();
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    // `etl status --wait`, as CI runs it, beside the controller.
    let waiting = tokio::task::spawn_blocking(move || {
        let outcome = status::wait(
            &endpoint(format!("http://127.0.0.1:{port}"), None),
            Some("dev"),
            &WaitOptions {
                timeout: Duration::from_secs(30),
                interval: Duration::from_millis(100),
                insecure: vec![],
            },
            |_| Ok::<_, std::convert::Infallible>(etl::oci::registry::Credentials::Anonymous),
            |_| {},
        );
        let _ = done.send(());
        outcome
    });
    let shutdown = async {
        let _ = finished.await;
    };
    etl_controller::run(settings, shutdown).await.unwrap();
    match waiting.await.unwrap().unwrap() {
        Outcome::Ready(fetched) => {
            assert_eq!(fetched.status.applied.unwrap().digest, digest);
            assert_eq!(fetched.status.state, EnvironmentState::Ready);
        }
        Outcome::TimedOut { why, .. } => panic!("not ready: {why}"),
    }
    // Stopped: nothing listens any more.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}
