//! `etl push` against a real registry: Debian's `docker-registry` (distribution 2.8), started
//! per test on a free loopback port with its own config and storage, and skopeo as an
//! independent client reading back what was pushed.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use etl::push::{self, Credentials, Options, PushError, Registry, Report, Retry};
use etl::resolve::sha256;
use serde_json::Value as Json;

/// A `docker-registry serve` on 127.0.0.1, killed (by pid) and waited for on drop.
struct TestRegistry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts one; with `user` = (name, password), behind htpasswd basic auth.
    fn start(user: Option<(&str, &str)>) -> TestRegistry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
             delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((name, password)) = user {
            let hash = bcrypt::hash(password, 4).unwrap();
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{name}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: etl-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry runs (scripts/setup.sh installs it)");
        let registry = TestRegistry {
            child,
            port,
            _dir: dir,
        };
        registry.wait_ready();
        registry
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits until `GET /v2/` answers (200, or 401 behind auth).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: x\r\n\r\n");
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not answer on port {}", self.port);
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The example compiled once per test binary, with fixed provenance.
fn dist() -> &'static Path {
    static DIST: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIST
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("dist");
            let compilation = etl::compile::compile(
                &common::example(),
                &etl::compile::Options {
                    out: out.clone(),
                    cache: Some(etl::resolve::Cache::new(dir.path().join("cache"))),
                    provenance: etl::oci::Provenance {
                        created: 1_700_000_000,
                        source: Some("https://example.com/iot-sensors.git".to_owned()),
                        revision: None,
                    },
                },
            )
            .unwrap();
            assert!(compilation.plan.is_some(), "the example compiles");
            (dir, out)
        })
        .1
}

/// The manifests of the OCI layout at `layout`: (ref name, digest).
fn local_manifests(layout: &Path) -> Vec<(String, String)> {
    let index: Json =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                d["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn options(host: &str, credentials: Credentials) -> Options {
    Options {
        registry: format!("{host}/etl/team").parse().unwrap(),
        insecure: Vec::new(),
        credentials,
        retry: Retry {
            attempts: 3,
            base: Duration::from_millis(20),
        },
    }
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo runs (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn etl(args: &[&str], docker_config: &Path, stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .env("DOCKER_CONFIG", docker_config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn push_puts_the_exact_manifests_and_a_second_push_only_checks() {
    let registry = TestRegistry::start(None);
    let dist = dist();
    let local = local_manifests(&dist.join("oci"));
    assert_eq!(local.len(), 5, "the example has five artifacts");
    let options = options(&registry.host(), Credentials::Anonymous);

    let first = push::push(dist, &options).unwrap();
    // Per artifact: config + layer; the manifest by digest; tags sha-… + dev, staging, prod.
    let n = local.len();
    assert_eq!(first.pushed.len(), n);
    assert_eq!((first.blobs_uploaded, first.blobs_skipped), (2 * n, 0));
    assert_eq!((first.manifests_uploaded, first.manifests_skipped), (n, 0));
    assert_eq!((first.tags_set, first.tags_unchanged), (4 * n, 0));
    assert_eq!(first.verified, 4 * n);
    assert_eq!(first.head_requests, 2 * n + n + 4 * n);

    let plan = std::fs::read(dist.join("plan.json")).unwrap();
    let plan_tag = format!("sha-{}", &sha256(&plan)[7..19]);
    for (name, digest) in &local {
        let pushed = first
            .pushed
            .iter()
            .find(|p| p.repository == format!("{}/etl/team/{name}", registry.host()))
            .unwrap();
        assert_eq!(&pushed.digest, digest);
        assert_eq!(pushed.tags, [plan_tag.as_str(), "dev", "prod", "staging"]);
        // An independent client sees the same bytes under every tag.
        for tag in &pushed.tags {
            let raw = skopeo(&[
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{}:{tag}", pushed.repository),
            ]);
            assert_eq!(&sha256(&raw), digest, "{name}:{tag}");
        }
    }
    // And copying one out keeps its digest.
    let (name, digest) = &local[0];
    let copy = tempfile::tempdir().unwrap();
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/etl/team/{name}:dev", registry.host()),
        &format!("oci:{}:x", copy.path().display()),
    ]);
    assert_eq!(&local_manifests(copy.path())[0].1, digest);

    // Nothing new: HEAD requests only (and the reads that verify the tags).
    let second = push::push(dist, &options).unwrap();
    assert_eq!(
        second,
        Report {
            pushed: first.pushed.clone(),
            blobs_uploaded: 0,
            blobs_skipped: 2 * n,
            head_requests: 2 * n + n + 4 * n,
            manifests_uploaded: 0,
            manifests_skipped: n,
            tags_set: 0,
            tags_unchanged: 4 * n,
            verified: 4 * n,
        }
    );
}

#[test]
fn an_interrupted_push_completes_without_uploading_twice() {
    let registry = TestRegistry::start(None);
    let dist = dist();
    let options = options(&registry.host(), Credentials::Anonymous);
    // A copy of the layout with only the first artifact: as if the push stopped after it.
    let partial = tempfile::tempdir().unwrap();
    common::copy(dist, partial.path());
    let index_path = partial.path().join("oci/index.json");
    let mut index: Json = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["manifests"].as_array_mut().unwrap().truncate(1);
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let before = push::push(partial.path(), &options).unwrap();
    assert_eq!(before.blobs_uploaded, 2);

    let after = push::push(dist, &options).unwrap();
    assert_eq!(
        after.blobs_skipped, 2,
        "the first artifact's blobs are not sent again"
    );
    assert_eq!(after.blobs_uploaded, 2 * 4);
    assert_eq!(after.manifests_skipped, 1);
    assert_eq!(after.manifests_uploaded, 4);
}

#[test]
fn basic_auth_from_the_docker_config_works_and_a_wrong_password_names_the_registry() {
    let registry = TestRegistry::start(Some(("ci", "s3cret")));
    let host = registry.host();
    let dist = dist().to_str().unwrap().to_owned();
    let target = format!("{host}/etl");
    let config = tempfile::tempdir().unwrap();
    let write_config = |password: &str| {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("ci:{password}"));
        std::fs::write(
            config.path().join("config.json"),
            format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
    };

    write_config("s3cret");
    let (code, stdout, stderr) = etl(&["push", &dist, "--registry", &target], config.path(), "");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    assert!(stderr.contains("blobs 10 uploaded"), "{stderr}");

    write_config("wrong");
    let (code, _, stderr) = etl(&["push", &dist, "--registry", &target], config.path(), "");
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("registry `{host}` refused the credentials given")),
        "{stderr}"
    );

    // Without credentials: refused too, and said so.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, stderr) = etl(&["push", &dist, "--registry", &target], empty.path(), "");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("refused anonymous access"), "{stderr}");

    // --username with --password-stdin wins over the config.
    let (code, _, stderr) = etl(
        &[
            "push",
            &dist,
            "--registry",
            &target,
            "--username",
            "ci",
            "--password-stdin",
        ],
        config.path(),
        "s3cret\n",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("blobs 0 uploaded, 10 already there"),
        "{stderr}"
    );
}

#[test]
fn a_registry_that_is_down_is_named() {
    let host = format!("127.0.0.1:{}", free_port());
    let e = push::push(dist(), &options(&host, Credentials::Anonymous)).unwrap_err();
    assert!(matches!(e, PushError::Unreachable { .. }), "{e:?}");
    let message = e.to_string();
    assert!(
        message.contains(&format!("registry `{host}` over http")),
        "{message}"
    );
    assert!(message.contains("is it running"), "{message}");
}

#[test]
fn usage_errors_exit_2() {
    let empty = tempfile::tempdir().unwrap();
    let dist = dist().to_str().unwrap().to_owned();
    let (code, _, stderr) = etl(
        &["push", &dist, "--registry", "https://ghcr.io/acme"],
        empty.path(),
        "",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a registry"), "{stderr}");
    let (code, _, stderr) = etl(
        &[
            "push",
            &dist,
            "--registry",
            "ghcr.io/acme",
            "--username",
            "u",
        ],
        empty.path(),
        "",
    );
    assert_eq!(code, 2, "{stderr}");
    // Not an `etl compile` output.
    let (code, _, stderr) = etl(
        &[
            "push",
            empty.path().to_str().unwrap(),
            "--registry",
            "127.0.0.1:1/x",
        ],
        empty.path(),
        "",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("plan.json"), "{stderr}");
    let _: Registry = "ghcr.io/acme".parse().unwrap();
}
