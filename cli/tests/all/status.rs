//! `etl status` against a scripted controller (a loopback HTTP server serving status documents)
//! and, for `--wait`, a real registry holding the bundle tag: table and JSON output, the token,
//! the environment check, exit statuses, and waiting until the tag's bundle runs.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use etl::oci::layout::MANIFEST_MEDIA_TYPE;
use etl::oci::registry::{self, Credentials, Retry, Session};
use etl::ops::status::{
    API_VERSION, Applied, ArtifactStatus, ControllerStatus, EnvironmentState, KIND, PipelineState,
    PipelineStatus, TagStatus,
};

use crate::registry::TestRegistry;

const DIGEST: &str = "sha256:5e1f0a6b3c2d4e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f";

/// dev's controller status: ready, or still reconciling the pipeline.
fn document(bundle: &str, applied: &str, ready: bool) -> ControllerStatus {
    ControllerStatus {
        api_version: API_VERSION.to_owned(),
        kind: KIND.to_owned(),
        project: Some("iot-sensors".to_owned()),
        environment: Some("dev".to_owned()),
        generation: "v1".to_owned(),
        lattice: Some("acme-iot-dev".to_owned()),
        bundle: bundle.to_owned(),
        tag: TagStatus {
            digest: Some(applied.to_owned()),
            checked_at: Some("2026-12-07T14:00:10Z".to_owned()),
            stale: false,
            error: None,
        },
        applied: Some(Applied {
            digest: applied.to_owned(),
            revision: Some("0123456789abcdef0123456789abcdef01234567".to_owned()),
            signer: "sha256:0123456789abcdef".to_owned(),
            applied_at: "2026-12-07T14:00:00Z".to_owned(),
        }),
        refused: None,
        state: if ready {
            EnvironmentState::Ready
        } else {
            EnvironmentState::Reconciling
        },
        pipelines: vec![PipelineStatus {
            name: "sensor-ingest".to_owned(),
            application: "sensor-ingest".to_owned(),
            version: Some("sha-2ada642ee5de".to_owned()),
            state: if ready {
                PipelineState::Deployed
            } else {
                PipelineState::Reconciling
            },
            reason: (!ready).then(|| "deploying sha-2ada642ee5de".to_owned()),
            artifacts: vec![ArtifactStatus {
                unit: "parse".to_owned(),
                image: format!("127.0.0.1:5000/etl/sensor-ingest-parse@{DIGEST}"),
                component_digest: DIGEST.to_owned(),
            }],
            units: vec![],
        }],
    }
}

/// A controller on a free loopback port serving `documents(n)` for its n-th request (from
/// 0), to requests bearing `token` when one is set. Its URL and the request count.
fn controller(
    token: Option<&'static str>,
    documents: impl Fn(usize) -> ControllerStatus + Send + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut authorization = None;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("authorization")
                {
                    authorization = Some(value.trim().to_owned());
                }
            }
            let allowed = token.is_none_or(|t| authorization == Some(format!("Bearer {t}")));
            let (code, body) = if allowed {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                ("200 OK", serde_json::to_string(&documents(n)).unwrap())
            } else {
                ("401 Unauthorized", r#"{"error":"unauthorized"}"#.to_owned())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.flush();
        }
    });
    (url, count)
}

fn etl(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_etl"));
    command
        .args(args)
        .env_remove("ETL_CONTROLLER_URL")
        .env_remove("ETL_CONTROLLER_URL_DEV")
        .env_remove("ETL_CONTROLLER_TOKEN");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const BUNDLE: &str = "127.0.0.1:5000/etl/bundles/iot-sensors/dev:dev";

#[test]
fn the_table_the_json_and_the_exit_status() {
    let (url, _) = controller(None, |_| document(BUNDLE, DIGEST, true));
    let out = etl(&["status", "--controller", &url], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        etl::ops::status::table(&document(BUNDLE, DIGEST, true))
    );
    insta::assert_snapshot!("status_table", text(&out.stdout));

    // The document as served, from the URL of the environment's variable.
    let out = etl(
        &["status", "--env", "dev", "--format", "json"],
        &[("ETL_CONTROLLER_URL_DEV", &url)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let served = serde_json::to_string(&document(BUNDLE, DIGEST, true)).unwrap();
    assert_eq!(text(&out.stdout), format!("{served}\n"));

    // Not ready: printed, exit 1.
    let (url, _) = controller(None, |_| document(BUNDLE, DIGEST, false));
    let out = etl(&["status", "--controller", &url], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("sensor-ingest  reconciling"));
    assert_eq!(
        text(&out.stderr),
        "not ready: the controller says `reconciling` (sensor-ingest reconciling)\n"
    );

    // Another environment's controller: a usage error.
    let out = etl(&["status", "--controller", &url, "--env", "staging"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("applies environment `dev`, not `staging`"),
        "{}",
        text(&out.stderr)
    );

    // No controller named.
    let out = etl(&["status", "--env", "dev"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: which controller? give --controller URL, or set ETL_CONTROLLER_URL_DEV or \
         ETL_CONTROLLER_URL\n"
    );
}

#[test]
fn the_token_is_sent_and_a_refusal_is_clear() {
    let (url, _) = controller(Some("t0ken"), |_| document(BUNDLE, DIGEST, true));
    let out = etl(&["status", "--controller", &url], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("refused the request (401): it wants a bearer token"),
        "{}",
        text(&out.stderr)
    );
    let out = etl(
        &["status", "--controller", &url],
        &[("ETL_CONTROLLER_TOKEN", "t0ken")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "wrong\n").unwrap();
    let out = etl(
        &[
            "status",
            "--controller",
            &url,
            "--token-file",
            file.to_str().unwrap(),
        ],
        &[("ETL_CONTROLLER_TOKEN", "t0ken")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("the token given is not its token"));
    // The token is never printed.
    assert!(!text(&out.stderr).contains("wrong") && !text(&out.stdout).contains("t0ken"));
}

#[test]
fn waiting_ends_when_the_tag_s_bundle_runs_or_the_time_is_up() {
    let registry = TestRegistry::start(None);
    let host = registry.host();
    let repository = "etl/bundles/iot-sensors/dev";
    // Any manifest will do as the bundle: etl status only compares digests.
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let digest: String = registry::block_on(async {
        let session = Session::new(&host, &[], &Credentials::Anonymous, Retry::default());
        session
            .push_blob(
                repository,
                bytes::Bytes::from_static(b"{}"),
                "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            )
            .await?;
        let bytes = bytes::Bytes::from_static(manifest);
        session
            .put_manifest(repository, "dev", &bytes, MANIFEST_MEDIA_TYPE)
            .await?;
        Ok::<_, registry::Error>(etl::util::digest::sha256(manifest))
    })
    .unwrap();
    let bundle = format!("{host}/{repository}:dev");

    // Reconciling twice, then ready at the old bundle, then at the tag's: exit 0 then only.
    let (url, count) = {
        let bundle = bundle.clone();
        let digest = digest.clone();
        controller(None, move |n| match n {
            0 | 1 => document(&bundle, &digest, false),
            2 => document(&bundle, DIGEST, true),
            _ => document(&bundle, &digest, true),
        })
    };
    let out = etl(
        &["status", "--controller", &url, "--wait", "--timeout", "60s"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(count.load(Ordering::SeqCst), 4);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("waiting: the controller says `reconciling`")
            && stderr.contains(&format!(
                "waiting: the tag names {digest}, the controller applied {DIGEST}"
            )),
        "{stderr}"
    );
    assert!(text(&out.stdout).contains(&format!("applied:     {digest}")));

    // A password goes only to the registry named: the controller's document names the bundle's.
    let out = etl(
        &[
            "status",
            "--controller",
            &url,
            "--wait",
            "--username",
            "ci",
            "--password-stdin",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("pass --registry {host}")),
        "{}",
        text(&out.stderr)
    );

    // Nobody answers: not ready until the time is up.
    let port = crate::registry::free_port();
    let out = etl(
        &[
            "status",
            "--controller",
            &format!("http://127.0.0.1:{port}"),
            "--wait",
            "--timeout",
            "1s",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not ready after 1s: cannot reach the controller"),
        "{stderr}"
    );
}
