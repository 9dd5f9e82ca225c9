//! `etl status` against a scripted controller (a loopback HTTP server serving status documents,
//! `controller.rs`) and, for `--wait`, a real registry holding the bundle tag: table and JSON
//! output, each step's counts, the token, the environment check, exit statuses, and waiting
//! until the tag's bundle runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use etl::oci::layout::MANIFEST_MEDIA_TYPE;
use etl::oci::registry::{self, Credentials, Retry, Session};
use etl::ops::status::ControllerStatus;

use crate::controller::{BUNDLE, DIGEST, document, document_with_units, etl, serve, text};
use crate::registry::TestRegistry;

/// A controller serving `documents(n)` at `/status` for its n-th request (from 0), to requests
/// bearing `token` when one is set. Its URL and the request count.
fn controller(
    token: Option<&'static str>,
    documents: impl Fn(usize) -> ControllerStatus + Send + 'static,
) -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let (url, _) = serve(token, move |_| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        (200, serde_json::to_string(&documents(n)).unwrap())
    });
    (url, count)
}

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
fn the_table_shows_each_step_s_counts_under_its_pipeline() {
    let (url, _) = controller(None, |_| document_with_units(1000, true));
    let out = etl(&["status", "--controller", &url], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!("status_table_units", text(&out.stdout));
    // The JSON is the document as served, units and all.
    let out = etl(&["status", "--controller", &url, "--format", "json"], &[]);
    let served = serde_json::to_string(&document_with_units(1000, true)).unwrap();
    assert_eq!(text(&out.stdout), format!("{served}\n"));
    assert!(served.contains(r#""units":[{"name":"warehouse","kind":"sink""#));
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
