//! Signatures in a registry, checked as `cosign verify --key` checks them: the example compiled
//! and signed by the `etl` binary, pushed by `etl push` to a real registry, then verified there by
//! the sigstore crate's cosign client (tests/cosign-oracle in `registry` mode: the tag resolved to
//! a digest, the `sha256-<hex>.sig` signature image beside it fetched, a layer whose payload names
//! that digest verifying with the public key, over OpenSSL). A wrong key and a tampered manifest
//! must fail it.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::registry::TestRegistry;
use serde_json::Value as Json;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The `etl` binary, with no passphrase and an empty docker config (anonymous pushes).
fn etl(args: &[&str], docker_config: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .env_remove(etl::oci::sign::PASSPHRASE_ENV)
        .env("DOCKER_CONFIG", docker_config)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("etl runs");
    assert!(
        out.status.success(),
        "etl {args:?} failed:\n{}",
        text(&out.stderr)
    );
    out
}

/// The oracle's executable, built once per test run.
fn oracle() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::build_oracle("cosign-oracle"))
}

/// `cosign-oracle registry <image> <key>`: `Ok((digest, docker-reference))` when sigstore verifies
/// a signature of the manifest `image` names with `key`, else `Err(why)`.
fn cosign_verify(image: &str, key: &Path) -> Result<(String, String), String> {
    let out = Command::new(oracle())
        .args(["registry", image, s(key)])
        .output()
        .expect("the oracle runs");
    let stdout = text(&out.stdout);
    let line = stdout.trim_end();
    if let Some(ok) = line.strip_prefix("ok ") {
        assert!(out.status.success(), "{line}");
        let (digest, reference) = ok.split_once(' ').expect("ok <digest> <reference>");
        Ok((digest.to_owned(), reference.to_owned()))
    } else {
        assert_eq!(out.status.code(), Some(1), "{line}\n{}", text(&out.stderr));
        assert!(line.starts_with("error: "), "{line}");
        Err(line.to_owned())
    }
}

/// The example, with the project registry set to `<registry>/etl`, compiled and signed with a
/// fresh key (`k`) and pushed there by `etl push`; `other` is a second key pair.
struct Pushed {
    registry: TestRegistry,
    dir: tempfile::TempDir,
    /// Every artifact as `etl push` reported it: repository (`<host>/etl/<name>`) → (manifest
    /// digest, tags).
    artifacts: BTreeMap<String, (String, Vec<String>)>,
}

impl Pushed {
    fn new() -> Pushed {
        let registry = TestRegistry::start(None);
        let dir = tempfile::tempdir().unwrap();
        let example = dir.path().join("example");
        common::copy(&common::example(), &example);
        // The signature payload's docker-reference is `<project registry>/<name>`: the registry
        // the artifacts are really pushed to.
        let project = std::fs::read_to_string(example.join("etl.yaml")).unwrap();
        let moved = project.replace(
            "registry: registry.acme.example/etl\n",
            &format!("registry: {}/etl\n", registry.host()),
        );
        assert_ne!(moved, project, "the example's spec.registry moved");
        std::fs::write(example.join("etl.yaml"), moved).unwrap();

        let pushed = Pushed {
            registry,
            dir,
            artifacts: BTreeMap::new(),
        };
        for prefix in ["k", "other"] {
            etl(
                &["keygen", "--out", s(&pushed.path(prefix))],
                pushed.dir.path(),
            );
        }
        let dist = pushed.dist();
        etl(
            &[
                "compile",
                "--repo",
                s(&example),
                "--out",
                s(&dist),
                "--sign-key",
                s(&pushed.key()),
            ],
            pushed.dir.path(),
        );
        let artifacts = pushed.push("etl");
        Pushed {
            artifacts,
            ..pushed
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn key(&self) -> PathBuf {
        self.path("k.key")
    }
    fn public(&self) -> PathBuf {
        self.path("k.pub")
    }
    fn other_public(&self) -> PathBuf {
        self.path("other.pub")
    }
    fn dist(&self) -> PathBuf {
        self.path("dist")
    }
    fn host(&self) -> String {
        self.registry.host()
    }

    /// `etl push dist --registry <host>/<prefix>`: the artifacts it reports (its signatures,
    /// reported on lines of their own, left out).
    fn push(&self, prefix: &str) -> BTreeMap<String, (String, Vec<String>)> {
        let target = format!("{}/{prefix}", self.host());
        let out = etl(
            &["push", s(&self.dist()), "--registry", &target],
            self.dir.path(),
        );
        let mut artifacts = BTreeMap::new();
        for line in text(&out.stdout).lines() {
            let (reference, tags) = line.split_once(' ').expect("<repository>@<digest> <tags>");
            let (repository, digest) = reference.split_once('@').unwrap();
            let tags: Vec<String> = tags.split(',').map(str::to_owned).collect();
            if !tags.iter().any(|t| t.ends_with(".sig")) {
                artifacts.insert(repository.to_owned(), (digest.to_owned(), tags));
            }
        }
        artifacts
    }

    /// The artifact names of `dist/oci/index.json` (signatures left out).
    fn names(&self) -> BTreeSet<String> {
        common::layout_refs(&self.dist().join("oci"))
            .into_keys()
            .filter(|name| !name.ends_with(".sig"))
            .collect()
    }

    fn repository(&self, name: &str) -> String {
        format!("{}/etl/{name}", self.host())
    }

    /// Whether the registry's storage holds any repository under `prefix`.
    fn storage_has(&self, prefix: &str) -> bool {
        self.registry
            .storage()
            .join("docker/registry/v2/repositories")
            .join(prefix)
            .exists()
    }

    /// One HTTP/1.0 request to the registry, no client library: (status, body).
    fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.registry.port)).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nAccept: {MANIFEST}\r\n",
            self.host()
        );
        if method == "PUT" {
            head.push_str(&format!(
                "Content-Type: {MANIFEST}\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let status = text(&answer[9..12]).parse().unwrap();
        (status, answer[split + 4..].to_vec())
    }

    /// The manifest `name:reference` as the registry serves it.
    fn get_manifest(&self, name: &str, reference: &str) -> Vec<u8> {
        let (status, body) =
            self.http("GET", &format!("/v2/etl/{name}/manifests/{reference}"), b"");
        assert_eq!(status, 200, "{}", text(&body));
        body
    }

    /// PUTs `manifest` as `name:tag` (its blobs already there): what anyone who may push, but has
    /// not the key, can do.
    fn put_manifest(&self, name: &str, tag: &str, manifest: &[u8]) {
        let (status, body) = self.http("PUT", &format!("/v2/etl/{name}/manifests/{tag}"), manifest);
        assert_eq!(status, 201, "{}", text(&body));
    }
}

/// `manifest` with one more annotation.
fn tampered(manifest: &[u8]) -> Vec<u8> {
    let mut manifest: Json = serde_json::from_slice(manifest).unwrap();
    manifest["annotations"]["org.example.tampered"] = "yes".into();
    serde_json::to_vec(&manifest).unwrap()
}

/// The `sha256-<hex>.sig` tag cosign looks for the signature of `digest` under.
fn signature_tag(digest: &str) -> String {
    format!("sha256-{}.sig", digest.strip_prefix("sha256:").unwrap())
}

#[test]
fn every_pushed_artifact_verifies_in_the_registry_under_every_tag() {
    let pushed = Pushed::new();
    let names = pushed.names();
    // Ten artifacts and the three environments' deployment bundles: sigstore verifies them all.
    assert_eq!(names.len(), 13, "{names:?}");
    assert_eq!(
        names.iter().filter(|n| n.starts_with("bundles/")).count(),
        3,
        "{names:?}"
    );
    let repositories: BTreeSet<String> = names.iter().map(|n| pushed.repository(n)).collect();
    assert_eq!(
        pushed.artifacts.keys().cloned().collect::<BTreeSet<_>>(),
        repositories,
        "etl push reports every artifact of the index"
    );
    for (repository, (digest, tags)) in &pushed.artifacts {
        assert!(!tags.is_empty(), "{repository}");
        let by_tag = tags.iter().map(|tag| format!("{repository}:{tag}"));
        for image in by_tag.chain([format!("{repository}@{digest}")]) {
            let (verified, reference) =
                cosign_verify(&image, &pushed.public()).unwrap_or_else(|e| panic!("{image}: {e}"));
            assert_eq!(&verified, digest, "{image}");
            // sigstore does not compare the payload's docker-reference with the image (see
            // `sigstore_takes_no_account_of_the_docker_reference`): checked here.
            assert_eq!(&reference, repository, "{image}");
        }
    }

    // The images the deployment manifests pin (`<registry>/<name>@<digest>`) verify too.
    let plan: Json =
        serde_json::from_slice(&std::fs::read(pushed.dist().join("plan.json")).unwrap()).unwrap();
    let mut pinned = BTreeSet::new();
    for apps in plan["deployments"].as_object().unwrap().values() {
        for app in apps.as_object().unwrap().values() {
            for component in app["components"].as_array().unwrap() {
                if let Some(image) = component["artifact"]["image"].as_str() {
                    pinned.insert(image.to_owned());
                }
            }
        }
    }
    assert_eq!(pinned.len(), 5, "{pinned:?}");
    for image in &pinned {
        let (repository, digest) = image.split_once('@').unwrap();
        assert_eq!(
            cosign_verify(image, &pushed.public()),
            Ok((digest.to_owned(), repository.to_owned()))
        );
    }
}

#[test]
fn a_wrong_key_is_refused() {
    let pushed = Pushed::new();
    for (repository, (digest, tags)) in &pushed.artifacts {
        let image = format!("{repository}:{}", tags[0]);
        let error = cosign_verify(&image, &pushed.other_public()).unwrap_err();
        assert!(error.contains("verifies with the key"), "{image}: {error}");
        assert!(error.contains(&signature_tag(digest)), "{image}: {error}");
    }
}

#[test]
fn a_tampered_manifest_pushed_under_the_tag_is_refused() {
    let pushed = Pushed::new();
    let name = "sensor-ingest-parse";
    let repository = pushed.repository(name);
    let (digest, tags) = &pushed.artifacts[&repository];
    let tag = &tags[0];
    let image = format!("{repository}:{tag}");

    let original = pushed.get_manifest(name, tag);
    assert_eq!(&etl::util::digest::sha256(&original), digest);
    let forged = tampered(&original);
    let forged_digest = etl::util::digest::sha256(&forged);
    pushed.put_manifest(name, tag, &forged);

    // The tag now names a digest no signature names.
    let error = cosign_verify(&image, &pushed.public()).unwrap_err();
    assert!(
        error.contains(&format!("no signature of {forged_digest}")),
        "{error}"
    );

    // The genuine signature copied to the forged digest's signature tag: its payload names the
    // original digest, so no layer is kept.
    let signature = pushed.get_manifest(name, &signature_tag(digest));
    pushed.put_manifest(name, &signature_tag(&forged_digest), &signature);
    let error = cosign_verify(&image, &pushed.public()).unwrap_err();
    assert!(
        error.contains(&format!("no signature of {forged_digest}")),
        "{error}"
    );

    // The signed manifest itself still verifies.
    assert_eq!(
        cosign_verify(&format!("{repository}@{digest}"), &pushed.public()),
        Ok((digest.clone(), repository.clone()))
    );
}

#[test]
fn a_manifest_tampered_in_the_registry_storage_is_refused() {
    let pushed = Pushed::new();
    let name = "sensor-ingest-enrich";
    let repository = pushed.repository(name);
    let (digest, tags) = &pushed.artifacts[&repository];
    let data = pushed.registry.blob_file(digest);
    let forged = tampered(&std::fs::read(&data).unwrap());
    std::fs::write(&data, &forged).unwrap();

    // The registry still answers the original digest for the tag (and a HEAD, all sigstore asks
    // for, is content with that), but serves the forged bytes: the oracle's fetch by digest
    // refuses them.
    let error = cosign_verify(&format!("{repository}:{}", tags[0]), &pushed.public()).unwrap_err();
    assert!(error.contains("the manifest served as"), "{error}");
    assert!(
        error.contains(&etl::util::digest::sha256(&forged)),
        "names the digest of what is served: {error}"
    );
    // etl's own verify fetches by digest and hashes too: a verdict on the artifact (exit 1,
    // "corrupt"), not a registry it could not check (exit 2).
    let out = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["verify", "--key", s(&pushed.public())])
        .arg(format!("{repository}@{digest}"))
        .env("DOCKER_CONFIG", pushed.dir.path())
        .output()
        .unwrap();
    let stderr = text(&out.stderr) + &text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is corrupt (its bytes hash to"), "{stderr}");
}

#[test]
fn sigstore_takes_no_account_of_the_docker_reference_so_etl_push_refuses_another_registry() {
    // The same signed artifacts copied (by skopeo, byte for byte) to another repository than
    // their payloads name: sigstore checks the payload's manifest digest and signature, not its
    // docker-reference (nor does `cosign verify` by default), so the test compares the reference
    // itself. Nothing would notice the mismatch, so `etl push` refuses to make it.
    let pushed = Pushed::new();
    let target = format!("{}/elsewhere", pushed.host());
    let out = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["push", s(&pushed.dist()), "--registry", &target])
        .env("DOCKER_CONFIG", pushed.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!(
            "was compiled for the registry `{}/etl`",
            pushed.host()
        )),
        "{}",
        text(&out.stderr)
    );
    assert!(!pushed.storage_has("elsewhere"), "nothing was pushed");

    for (repository, (digest, tags)) in &pushed.artifacts {
        let name = repository
            .strip_prefix(&format!("{}/etl/", pushed.host()))
            .unwrap();
        let elsewhere = format!("{target}/{name}");
        for tag in [tags[0].clone(), etl::oci::sign::signature_tag(digest)] {
            common::skopeo(&[
                "copy",
                "--preserve-digests",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                &format!("docker://{repository}:{tag}"),
                &format!("docker://{elsewhere}:{tag}"),
            ]);
        }
        assert_eq!(
            cosign_verify(&format!("{elsewhere}:{}", tags[0]), &pushed.public()),
            Ok((digest.clone(), pushed.repository(name)))
        );
    }
}

#[test]
fn a_registry_that_cannot_be_reached_is_named_and_is_no_verdict() {
    let dir = tempfile::tempdir().unwrap();
    etl(&["keygen", "--out", s(&dir.path().join("k"))], dir.path());
    let host = format!("127.0.0.1:{}", crate::registry::free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["verify", "--key", s(&dir.path().join("k.pub"))])
        .args([format!("{host}/etl/a:dev"), format!("{host}/etl/b:dev")])
        .env("DOCKER_CONFIG", dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("cannot connect to registry `{host}`")),
        "{stderr}"
    );
    assert!(
        !format!("{stdout}{stderr}").contains("not signed"),
        "{stdout}{stderr}"
    );
}
