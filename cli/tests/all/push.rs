//! `etl push` against a real registry: Debian's `docker-registry` (distribution 2.8), started
//! per test on a free loopback port with its own config and storage, and skopeo as an
//! independent client reading back what was pushed.

use crate::common;

use crate::registry::{TestRegistry, free_port, served_digest};

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use etl::oci::registry::{self, Credentials, Registry, Retry};
use etl::ops::push::{self, Options, PushError, Report};
use etl::util::digest::sha256;
use serde_json::Value as Json;

/// The example compiled for the registry `registry` (`HOST[:PORT]/PREFIX`, what its etl.yaml
/// names), once per registry and test binary, with fixed provenance: an output is pushed only
/// to the registry it was compiled for.
fn dist_for(registry: &str) -> PathBuf {
    type Compiled = BTreeMap<String, (tempfile::TempDir, PathBuf)>;
    static DISTS: OnceLock<Mutex<Compiled>> = OnceLock::new();
    let mut dists = DISTS.get_or_init(Default::default).lock().unwrap();
    if let Some((_, out)) = dists.get(registry) {
        return out.clone();
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    common::copy(&common::example(), &repo);
    let project = repo.join("etl.yaml");
    let text = std::fs::read_to_string(&project).unwrap();
    assert!(
        text.contains(EXAMPLE_REGISTRY),
        "the example's registry moved"
    );
    std::fs::write(&project, text.replace(EXAMPLE_REGISTRY, registry)).unwrap();
    let out = dir.path().join("dist");
    let compilation = etl::ops::compile::compile(
        &repo,
        &etl::ops::compile::Options {
            out: out.clone(),
            cache: Some(etl::store::Cache::new(
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("push-cache"),
            )),
            provenance: etl::oci::layout::Provenance {
                created: 1_700_000_000,
                source: Some("https://example.com/iot-sensors.git".to_owned()),
                revision: None,
            },
        },
    )
    .unwrap();
    assert!(compilation.plan.is_some(), "the example compiles");
    dists.insert(registry.to_owned(), (dir, out.clone()));
    out
}

/// The example's own `spec.registry`.
const EXAMPLE_REGISTRY: &str = "registry.acme.example/etl";

/// The example compiled for its own registry.
fn dist() -> PathBuf {
    dist_for(EXAMPLE_REGISTRY)
}

/// The registry [`options`] pushes to on `host`.
fn team(host: &str) -> String {
    format!("{host}/etl/team")
}

/// The manifests of the OCI layout at `layout`: (ref name, digest), by ref name.
fn local_manifests(layout: &Path) -> Vec<(String, String)> {
    common::layout_refs(layout).into_iter().collect()
}

/// The example's ten artifacts (five units, each for wasmCloud 1.x and v2), each a config and
/// a layer, and its three deployment bundles (`bundles/iot-sensors/<env>`), each a config (the
/// facts) and [`BUNDLE_LAYERS`] layers.
const ARTIFACTS: usize = 10;
const BUNDLES: usize = 3;
/// The layers of each of the example's bundles: the listener's and the pipeline's wadm
/// manifests, the pipeline's `WorkloadDeployment`s, and, every environment delivering at least
/// once (the default), the pipeline's JetStream document `jetstream/sensor-ingest.json`.
const BUNDLE_LAYERS: usize = 4;
/// Blobs of the whole layout, each pushed to the repository of its manifest.
const BLOBS: usize = 2 * ARTIFACTS + (1 + BUNDLE_LAYERS) * BUNDLES;
/// Tags with [`options`]' three environments: `sha-…` and one per environment on every
/// artifact, `sha-…` and its own environment on every bundle.
const TAGS: usize = 4 * ARTIFACTS + 2 * BUNDLES;

/// The environment of a bundle's name, `None` for an artifact.
fn bundle_env(name: &str) -> Option<&str> {
    name.strip_prefix("bundles/iot-sensors/")
}

fn options(host: &str, credentials: Credentials) -> Options {
    Options {
        registry: team(host).parse().unwrap(),
        insecure: Vec::new(),
        credentials,
        retry: Retry {
            attempts: 3,
            base: Duration::from_millis(20),
        },
        environments: ["dev", "staging", "prod"].map(String::from).to_vec(),
    }
}

fn etl(args: &[&str], docker_config: &Path, stdin: &str) -> (i32, String, String) {
    let out = common::output_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_etl"))
            .args(args)
            .env("DOCKER_CONFIG", docker_config),
        stdin,
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn push_puts_the_exact_manifests_and_a_second_push_only_checks() {
    let registry = TestRegistry::start(None);
    let dist = &dist_for(&team(&registry.host()));
    let local = local_manifests(&dist.join("oci"));
    assert_eq!(local.len(), ARTIFACTS + BUNDLES, "{local:?}");
    let options = options(&registry.host(), Credentials::Anonymous);

    let first = push::push(dist, &options).unwrap();
    // Per manifest: its blobs, the manifest by digest, its tags.
    let n = local.len();
    assert_eq!(first.pushed.len(), n);
    assert_eq!((first.blobs_uploaded, first.blobs_skipped), (BLOBS, 0));
    assert_eq!((first.manifests_uploaded, first.manifests_skipped), (n, 0));
    assert_eq!((first.tags_set, first.tags_unchanged), (TAGS, 0));
    assert_eq!(first.verified, TAGS);
    assert_eq!(first.head_requests, BLOBS + n + TAGS);

    let plan = std::fs::read(dist.join("plan.json")).unwrap();
    let plan_tag = format!("sha-{}", &sha256(&plan)[7..19]);
    for (name, digest) in &local {
        let pushed = first
            .pushed
            .iter()
            .find(|p| p.repository == format!("{}/etl/team/{name}", registry.host()))
            .unwrap();
        assert_eq!(&pushed.digest, digest);
        match bundle_env(name) {
            // A bundle: only its own environment's tag.
            Some(env) => assert_eq!(pushed.tags, [plan_tag.as_str(), env]),
            None => assert_eq!(pushed.tags, [plan_tag.as_str(), "dev", "prod", "staging"]),
        }
        // An independent client sees the same bytes under every tag.
        for tag in &pushed.tags {
            let raw = common::skopeo(&[
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{}:{tag}", pushed.repository),
            ]);
            assert_eq!(&sha256(&raw), digest, "{name}:{tag}");
        }
    }
    // And copying one out (a bundle) keeps its digest.
    let (name, digest) = &local[0];
    assert_eq!(name, "bundles/iot-sensors/dev");
    let copy = tempfile::tempdir().unwrap();
    common::skopeo(&[
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
            blobs_skipped: BLOBS,
            head_requests: BLOBS + n + TAGS,
            manifests_uploaded: 0,
            manifests_skipped: n,
            tags_set: 0,
            tags_unchanged: TAGS,
            verified: TAGS,
        }
    );
}

#[test]
fn an_interrupted_push_completes_without_uploading_twice() {
    let registry = TestRegistry::start(None);
    let dist = &dist_for(&team(&registry.host()));
    let options = options(&registry.host(), Credentials::Anonymous);
    // A copy of the layout with only the first artifact: as if the push stopped after it.
    let partial = tempfile::tempdir().unwrap();
    common::copy(dist, partial.path());
    let index_path = partial.path().join("oci/index.json");
    let mut index: Json = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["manifests"].as_array_mut().unwrap().truncate(1);
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let before = push::push(partial.path(), &options).unwrap();
    // The first manifest is dev's bundle: its facts and its files.
    assert_eq!(before.blobs_uploaded, 1 + BUNDLE_LAYERS);

    let after = push::push(dist, &options).unwrap();
    assert_eq!(
        after.blobs_skipped,
        1 + BUNDLE_LAYERS,
        "the first manifest's blobs are not sent again"
    );
    assert_eq!(after.blobs_uploaded, BLOBS - 1 - BUNDLE_LAYERS);
    assert_eq!(after.manifests_skipped, 1);
    assert_eq!(after.manifests_uploaded, ARTIFACTS + BUNDLES - 1);
}

#[test]
fn basic_auth_from_the_docker_config_works_and_a_wrong_password_names_the_registry() {
    let registry = TestRegistry::start(Some(("ci", "s3cret")));
    let host = registry.host();
    let target = format!("{host}/etl");
    let dist = dist_for(&target).to_str().unwrap().to_owned();
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
    assert_eq!(stdout.lines().count(), ARTIFACTS + BUNDLES, "{stdout}");
    assert!(
        stderr.contains(&format!("blobs {BLOBS} uploaded")),
        "{stderr}"
    );

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
        stderr.contains(&format!("blobs 0 uploaded, {BLOBS} already there")),
        "{stderr}"
    );
}

#[test]
fn pushing_to_another_registry_than_compiled_for_is_refused() {
    let registry = TestRegistry::start(None);
    let other = format!("{}/etl", registry.host());
    // The example is compiled for its own registry: its manifests pin, and its signatures would
    // name, `registry.acme.example/etl/<name>`.
    let dist = dist();
    let plan = std::fs::read_to_string(dist.join("dev/wadm/sensor-ingest.yaml")).unwrap();
    assert!(plan.contains("image: registry.acme.example/etl/sensor-ingest-parse@sha256:"));
    let empty = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = etl(
        &["push", dist.to_str().unwrap(), "--registry", &other],
        empty.path(),
        "",
    );
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "was compiled for the registry `{EXAMPLE_REGISTRY}`: its manifests pin"
        )) && stderr.contains(&format!("set `spec.registry: {other}` in etl.yaml")),
        "{stderr}"
    );
    assert!(
        !registry
            .storage()
            .join("docker/registry/v2/repositories")
            .exists(),
        "nothing was pushed"
    );
}

#[test]
fn a_registry_that_is_down_is_named() {
    let host = format!("127.0.0.1:{}", free_port());
    let e = push::push(
        &dist_for(&team(&host)),
        &options(&host, Credentials::Anonymous),
    )
    .unwrap_err();
    assert!(
        matches!(e, PushError::Registry(registry::Error::Unreachable { .. })),
        "{e:?}"
    );
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

/// One request the fault-injecting proxy saw: method, target, and the status it answered
/// (`500` when injected, `0` when the registry was unreachable and the connection was dropped).
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    status: u16,
}

/// What the proxy does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Forward it.
    Pass,
    /// Answer `500`.
    ServerError,
    /// Read it whole, then close the connection without an answer (logged as status `1`).
    Drop,
}

impl From<bool> for Fault {
    /// `true`: an injected `500`.
    fn from(fail: bool) -> Fault {
        if fail {
            Fault::ServerError
        } else {
            Fault::Pass
        }
    }
}

/// What the proxy does with a request (method, target).
type Decide = dyn Fn(&str, &str) -> Fault + Send + Sync;

/// A tiny HTTP/1.1 proxy in front of a registry on 127.0.0.1: one request per connection
/// (`Connection: close` both ways), bodies by `Content-Length` or chunked. It answers `500` to
/// the requests `decide` picks (or drops the connection, see [`Fault`]) and forwards the rest;
/// with the registry down it drops the connection. The accepting thread lives as long as the test binary.
struct Proxy {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    fn start<F: Into<Fault>>(
        upstream: u16,
        decide: impl Fn(&str, &str) -> F + Send + Sync + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let decide: Arc<Decide> = Arc::new(move |method, target| decide(method, target).into());
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (decide, log) = (decide.clone(), log.clone());
                std::thread::spawn(move || {
                    let _ = relay(client, upstream, &*decide, &log);
                });
            }
        });
        Proxy { port, seen }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests with `method` whose target contains `part` got `status`.
    fn count(&self, method: &str, part: &str, status: u16) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.target.contains(part) && s.status == status)
            .count()
    }

    /// The blob uploads the registry accepted (`201` to the closing PUT), each as
    /// `<repository>@<digest>`: the same bytes may be a blob of several repositories (the
    /// example's JetStream document is the same in the three environments' bundles), each
    /// uploaded once to each.
    fn uploaded(&self) -> Vec<String> {
        self.seen()
            .iter()
            .filter(|s| {
                s.method == "PUT" && s.target.contains("/blobs/uploads/") && s.status == 201
            })
            .map(|s| {
                let (path, query) = s.target.split_once('?').unwrap();
                let repository = path.split_once("/blobs/uploads/").unwrap().0;
                let digest = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("digest="))
                    .unwrap()
                    .replace("%3A", ":");
                format!("{repository}@{digest}")
            })
            .collect()
    }
}

fn relay(
    client: TcpStream,
    upstream: u16,
    decide: &Decide,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = match (parts.next(), parts.next()) {
        (Some(m), Some(t)) => (m.to_owned(), t.to_owned()),
        _ => return Ok(()),
    };
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    let (mut length, mut chunked) = (0usize, false);
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "connection" | "keep-alive" | "proxy-connection" => continue,
            "content-length" => length = value.parse().unwrap_or(0),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            _ => {}
        }
        head.push_str(&line);
    }
    head.push_str("Connection: close\r\n\r\n");
    // The body, forwarded as it came (chunk framing included).
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            body.extend_from_slice(line.as_bytes());
            let size = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16).map_err(std::io::Error::other)?;
            if size == 0 {
                loop {
                    line.clear();
                    reader.read_line(&mut line)?;
                    body.extend_from_slice(line.as_bytes());
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    }
    let mut client = client;
    let log = |status| {
        seen.lock().unwrap().push(Seen {
            method: method.clone(),
            target: target.clone(),
            status,
        })
    };
    let fault = decide(&method, &target);
    if fault == Fault::Drop {
        log(1);
        return Ok(());
    }
    // Each request is logged before its answer is written, so that a client holding the answer
    // finds it logged.
    if fault == Fault::ServerError {
        log(500);
        let error = br#"{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}"#;
        write!(
            client,
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            error.len()
        )?;
        client.write_all(error)?;
        return Ok(());
    }
    let Ok(mut registry) = TcpStream::connect(("127.0.0.1", upstream)) else {
        log(0);
        return Ok(()); // dropped: the client sees the connection close
    };
    registry.write_all(head.as_bytes())?;
    registry.write_all(&body)?;
    // One request per connection: the answer is everything until the registry closes.
    let mut answer = Vec::new();
    registry.read_to_end(&mut answer)?;
    let status = std::str::from_utf8(&answer[..answer.len().min(12)])
        .ok()
        .and_then(|s| s.get(9..12))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    log(status);
    client.write_all(&answer)?;
    Ok(())
}

/// Every manifest of `dist`'s layout is what the registry at `port` serves under each of its
/// tags.
fn assert_registry_holds(port: u16, dist: &Path, report: &Report) {
    let local = local_manifests(&dist.join("oci"));
    assert_eq!(report.pushed.len(), local.len());
    for (name, digest) in &local {
        let pushed = report
            .pushed
            .iter()
            .find(|p| p.repository.ends_with(&format!("/etl/team/{name}")))
            .unwrap();
        assert_eq!(&pushed.digest, digest);
        for tag in &pushed.tags {
            let served = served_digest(port, &format!("etl/team/{name}"), tag);
            assert_eq!(&served, digest, "{name}:{tag}");
        }
    }
}

/// Answers true to the first `n` calls.
fn first(n: usize) -> impl FnMut() -> bool {
    let mut left = n;
    move || {
        let hit = left > 0;
        left = left.saturating_sub(1);
        hit
    }
}

#[test]
fn server_errors_on_blobs_are_retried_and_the_push_completes() {
    let registry = TestRegistry::start(None);
    // The first blob HEAD and the first two closing blob PUTs fail with 500.
    let (head, put) = (Mutex::new(first(1)), Mutex::new(first(2)));
    let proxy = Proxy::start(registry.port, move |method, target| match method {
        "HEAD" if target.contains("/blobs/sha256:") => (head.lock().unwrap())(),
        "PUT" if target.contains("/blobs/uploads/") => (put.lock().unwrap())(),
        _ => false,
    });
    // Three attempts: the first blob's upload succeeds on the last one.
    let dist = dist_for(&team(&proxy.host()));
    let report = push::push(&dist, &options(&proxy.host(), Credentials::Anonymous)).unwrap();

    assert_eq!(proxy.count("HEAD", "/blobs/sha256:", 500), 1);
    assert_eq!(proxy.count("PUT", "/blobs/uploads/", 500), 2);
    // Each failed upload started over: a new upload session, its chunk, its closing PUT.
    assert_eq!(proxy.count("POST", "/blobs/uploads/", 202), BLOBS + 2);
    assert_eq!(proxy.count("PATCH", "/blobs/uploads/", 202), BLOBS + 2);
    let uploaded = proxy.uploaded();
    assert_eq!(
        uploaded.len(),
        BLOBS,
        "each blob accepted once: {uploaded:?}"
    );
    assert_eq!(uploaded.iter().collect::<BTreeSet<_>>().len(), BLOBS);
    assert_eq!((report.blobs_uploaded, report.blobs_skipped), (BLOBS, 0));
    // The report counts every HEAD sent, the retried one included.
    let heads = proxy.seen().iter().filter(|s| s.method == "HEAD").count();
    assert_eq!(report.head_requests, heads);
    let n = ARTIFACTS + BUNDLES;
    assert_eq!(report.head_requests, BLOBS + n + TAGS + 1);
    assert_eq!(report.verified, TAGS);
    assert_registry_holds(registry.port, &dist, &report);
}

#[test]
fn connections_dropped_mid_request_are_retried_and_the_push_completes() {
    let registry = TestRegistry::start(None);
    // The first closing blob PUT, the first manifest PUT and the first tag read-back lose their
    // connection after the request was sent, before any answer.
    let (blob, manifest, read) = (
        Mutex::new(first(1)),
        Mutex::new(first(1)),
        Mutex::new(first(1)),
    );
    let proxy = Proxy::start(registry.port, move |method, target| {
        let drop = match method {
            "PUT" if target.contains("/blobs/uploads/") => (blob.lock().unwrap())(),
            "PUT" if target.contains("/manifests/") => (manifest.lock().unwrap())(),
            "GET" if target.contains("/manifests/") => (read.lock().unwrap())(),
            _ => false,
        };
        if drop { Fault::Drop } else { Fault::Pass }
    });
    let dist = dist_for(&team(&proxy.host()));
    let report = push::push(&dist, &options(&proxy.host(), Credentials::Anonymous)).unwrap();
    assert_eq!(proxy.count("PUT", "/blobs/uploads/", 1), 1);
    assert_eq!(proxy.count("PUT", "/manifests/", 1), 1);
    assert_eq!(proxy.count("GET", "/manifests/", 1), 1);
    assert_eq!((report.blobs_uploaded, report.blobs_skipped), (BLOBS, 0));
    assert_eq!(proxy.uploaded().len(), BLOBS, "each blob accepted once");
    assert_registry_holds(registry.port, &dist, &report);
}

#[test]
fn a_blob_that_keeps_failing_gives_up_after_the_attempts_and_names_the_registry() {
    let registry = TestRegistry::start(None);
    let proxy = Proxy::start(registry.port, |method, target| {
        method == "PUT" && target.contains("/blobs/uploads/")
    });
    let e = push::push(
        &dist_for(&team(&proxy.host())),
        &options(&proxy.host(), Credentials::Anonymous),
    )
    .unwrap_err();
    let message = e.to_string();
    assert!(
        matches!(e, PushError::Registry(registry::Error::Request { .. })),
        "{e:?}"
    );
    assert!(
        message.starts_with(&format!("registry `{}`: upload blob sha256:", proxy.host())),
        "{message}"
    );
    assert!(message.contains("500"), "{message}");
    // `Retry { attempts: 3, .. }`: three tries of the first blob, then nothing more.
    assert_eq!(proxy.count("PUT", "/blobs/uploads/", 500), 3);
    assert_eq!(proxy.count("POST", "/blobs/uploads/", 202), 3);
}

#[test]
fn a_registry_stopped_mid_push_fails_clearly_and_the_rerun_uploads_nothing_twice() {
    let registry = TestRegistry::start(None);
    // The registry dies when the fourth blob is about to be committed (three are stored).
    let child = registry.child.clone();
    let puts = Mutex::new(0);
    let proxy = Proxy::start(registry.port, move |method, target| {
        if method == "PUT" && target.contains("/blobs/uploads/") {
            let mut puts = puts.lock().unwrap();
            *puts += 1;
            if *puts == 4 {
                let mut child = child.lock().unwrap();
                child.kill().unwrap();
                child.wait().unwrap();
            }
        }
        false
    });
    // The output pins images, and its bundles name the registry: compiled for the proxy, which
    // stays in front of the registry for the re-run.
    let dist = dist_for(&team(&proxy.host()));
    let options = options(&proxy.host(), Credentials::Anonymous);
    let e = push::push(&dist, &options).unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains(&format!("registry `{}`", proxy.host())),
        "{message}"
    );
    let before = proxy.uploaded();
    assert_eq!(before.len(), 3, "{:?}", proxy.seen());
    assert!(proxy.count("PUT", "/blobs/uploads/", 0) >= 1);
    let posts_before = proxy.count("POST", "/blobs/uploads/", 202);

    // Started again on the same port and storage: the re-run sends only what is missing.
    registry.resume();
    let report = push::push(&dist, &options).unwrap();
    let after = proxy.uploaded()[before.len()..].to_vec();
    assert_eq!(
        (report.blobs_skipped, report.blobs_uploaded),
        (3, BLOBS - 3)
    );
    assert_eq!(after.len(), BLOBS - 3);
    let all: BTreeSet<_> = before.iter().chain(&after).collect();
    assert_eq!(
        all.len(),
        BLOBS,
        "no blob uploaded twice: {before:?} {after:?}"
    );
    assert_eq!(
        proxy.count("POST", "/blobs/uploads/", 202) - posts_before,
        BLOBS - 3
    );
    assert_registry_holds(registry.port, &dist, &report);
}

/// A signed output: every signature is in the registry before any tag names what it signs, and
/// every artifact before any bundle, so a controller polling an environment's tag never finds
/// its bundle unsigned or pinning what is not there yet.
#[test]
fn signatures_then_artifacts_then_bundles() {
    let registry = TestRegistry::start(None);
    let proxy = Proxy::start(registry.port, |_: &str, _: &str| false);
    let unsigned = dist_for(&team(&proxy.host()));
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    common::copy(&unsigned, &dist);
    let mut files = BTreeMap::new();
    for entry in walk(&dist.join("oci")) {
        let name = entry
            .strip_prefix(dist.join("oci"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        files.insert(name, std::fs::read(&entry).unwrap());
    }
    let pair = etl::oci::sign::keygen(None).unwrap();
    let key = etl::oci::sign::SigningKey::from_pem(&pair.private_pem, None).unwrap();
    etl::oci::sign::sign_layout(&mut files, "", &key, &team(&proxy.host())).unwrap();
    for (name, bytes) in &files {
        let path = dist.join("oci").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    let mut options = options(&proxy.host(), Credentials::Anonymous);
    options.environments = vec!["dev".to_owned()];
    push::push(&dist, &options).unwrap();
    let puts: Vec<String> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "PUT" && s.target.contains("/manifests/"))
        .map(|s| s.target)
        .collect();
    let last_signature = puts.iter().rposition(|t| t.ends_with(".sig")).unwrap();
    let first_tag = puts
        .iter()
        .position(|t| !t.ends_with(".sig") && !t.contains("/manifests/sha256:"))
        .unwrap();
    assert!(
        last_signature < first_tag,
        "a tag moved before every signature was up: {puts:#?}"
    );
    // The bundles last: every artifact a bundle pins is there before a bundle's tag moves.
    let reference = |t: &str| t.rsplit('/').next().unwrap_or_default().to_owned();
    let first_bundle_tag = puts
        .iter()
        .position(|t| t.contains("/bundles/") && !reference(t).starts_with("sha256"))
        .unwrap();
    let last_artifact = puts.iter().rposition(|t| !t.contains("/bundles/")).unwrap();
    assert!(
        last_artifact < first_bundle_tag,
        "a bundle's tag moved before an artifact it pins was up: {puts:#?}"
    );
    assert!(
        puts.iter()
            .any(|t| t.ends_with("/bundles/iot-sensors/dev/manifests/dev")),
        "{puts:#?}"
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
