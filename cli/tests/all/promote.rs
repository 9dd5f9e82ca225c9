//! `etl compile --push`, `etl promote` and `etl verify REF` against a real registry (Debian's
//! `docker-registry`, per test on a loopback port), through the `etl` binary.
//!
//! The scenario: compile A (signed) is pushed and tagged `staging`; compile B, later, has
//! another `enrich` component (the same contract and imports), so one other manifest digest.
//! Promoting staging → prod with B's output must move `prod` to A's bytes and pin B's prod
//! manifests to A's digests — which makes them byte-identical to A's own prod manifests — and
//! tag prod's deployment bundle, built from those manifests, `prod`: signed with `--sign-key`
//! (B's own prod bundle pinned other digests), or, when DIST is the compile that was pushed,
//! with the signature DIST already holds.

use crate::common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::registry::{TestRegistry, served_digest};
use serde_json::Value as Json;

/// A registry, the example retargeted at it, and two key pairs.
struct World {
    registry: TestRegistry,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let registry = TestRegistry::start(None);
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        common::copy(&common::example(), &repo);
        let project = repo.join("etl.yaml");
        let text = std::fs::read_to_string(&project).unwrap().replace(
            "registry: registry.acme.example/etl",
            &format!("registry: {}/etl", registry.host()),
        );
        std::fs::write(&project, text).unwrap();
        let world = World { registry, dir };
        for keys in ["signer", "other"] {
            let (code, _, stderr) = world.etl(&["keygen", "--out", &world.path(keys)], &[]);
            assert_eq!(code, 0, "{stderr}");
        }
        world
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn etl(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_etl"))
            .args(args)
            .envs(env.iter().copied())
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env("ETL_CACHE_DIR", self.dir.path().join("cache"))
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Makes the `enrich` step run threshold-alert's component: another composed component
    /// with the same imports.
    fn swap_enrich_component(&self) {
        let pipeline = self.dir.path().join("repo/pipelines/sensor-ingest.yaml");
        let text = std::fs::read_to_string(&pipeline).unwrap();
        let enrich = "component: components/enrich.wasm\n      digest: \
                      sha256:581c25750c32f3a400e4f59aa60e594075c8d5f91a5791762dadc54591f3151f";
        let threshold = "component: components/threshold-alert.wasm\n      digest: \
                         sha256:5328554214e738d123c86db70ea8075bb7c7e6a15ac8528c4ddddf5c5c85fafe";
        assert!(text.contains(enrich), "the example's enrich step moved");
        std::fs::write(&pipeline, text.replacen(enrich, threshold, 1)).unwrap();
    }

    /// `etl compile` of the repo into `out` at `time`, signed unless `key` is `None`, with
    /// extra arguments (`--push`, …).
    fn compile(&self, out: &str, time: &str, key: Option<&str>, extra: &[&str]) -> PathBuf {
        let out = self.path(out);
        let repo = self.path("repo");
        let mut args = vec!["compile", "--repo", &repo, "--out", &out];
        let key = key.map(|k| format!("{}.key", self.path(k)));
        if let Some(key) = &key {
            args.extend(["--sign-key", key]);
        }
        args.extend(extra);
        let (code, _, stderr) = self.etl(&args, &[("SOURCE_DATE_EPOCH", time)]);
        assert_eq!(code, 0, "{stderr}");
        PathBuf::from(out)
    }

    fn promote(&self, dist: &Path, from: &str, to: &str, key: &str) -> (i32, String, String) {
        self.promote_signing(dist, from, to, key, None)
    }

    /// `etl promote`, with `--sign-key <sign_key>.key` when given.
    fn promote_signing(
        &self,
        dist: &Path,
        from: &str,
        to: &str,
        key: &str,
        sign_key: Option<&str>,
    ) -> (i32, String, String) {
        let public = format!("{}.pub", self.path(key));
        let dist = dist.display().to_string();
        let mut args = vec![
            "promote", "--from", from, "--to", to, "--key", &public, &dist,
        ];
        let private = sign_key.map(|k| format!("{}.key", self.path(k)));
        if let Some(private) = &private {
            args.extend(["--sign-key", private]);
        }
        self.etl(&args, &[("SOURCE_DATE_EPOCH", "1700000999")])
    }

    /// `etl verify --key <key>.pub <host>/etl/<repository>:<tag>`.
    fn verify(&self, key: &str, repository: &str, tag: &str) -> (i32, String, String) {
        let reference = format!("{}/etl/{repository}:{tag}", self.registry.host());
        let public = format!("{}.pub", self.path(key));
        self.etl(&["verify", "--key", &public, &reference], &[])
    }

    /// The digest `etl/<repository>:<tag>` names in the registry, if the tag exists.
    fn tagged(&self, repository: &str, tag: &str) -> Option<String> {
        let (status, body) = self.get(&format!("/v2/etl/{repository}/manifests/{tag}"));
        (status == 200)
            .then(|| served_digest(self.registry.port, &format!("etl/{repository}"), tag))
            .filter(|d| *d == etl::util::digest::sha256(&body))
    }

    /// A raw HTTP/1.0 GET (no client library): status and body.
    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        self.http("GET", path, "", &[])
    }

    fn http(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let port = self.registry.port;
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\
             Accept: application/vnd.oci.image.manifest.v1+json\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).unwrap();
        let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let status = String::from_utf8_lossy(&answer[9..12]).parse().unwrap();
        (status, answer[split + 4..].to_vec())
    }
}

/// The artifacts of a compile output: repository → manifest digest.
fn artifacts(dist: &Path) -> BTreeMap<String, String> {
    let plan: Json =
        serde_json::from_slice(&std::fs::read(dist.join("plan.json")).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for apps in plan["deployments"].as_object().unwrap().values() {
        for app in apps.as_object().unwrap().values() {
            for c in app["components"].as_array().unwrap() {
                for a in [&c["artifact"], &c["artifactV2"]] {
                    out.insert(
                        a["repository"].as_str().unwrap().to_owned(),
                        a["manifestDigest"].as_str().unwrap().to_owned(),
                    );
                }
            }
        }
    }
    out
}

/// The manifests of environment `env` in a compile output: relative path → bytes.
fn manifests(dist: &Path, env: &str) -> BTreeMap<String, Vec<u8>> {
    common::tree(&dist.join(env))
}

/// The repository of `env`'s deployment bundle.
fn bundle(env: &str) -> String {
    format!("bundles/iot-sensors/{env}")
}

/// The index of a compile output's layout: ref name → digest.
fn refs(dist: &Path) -> BTreeMap<String, String> {
    common::layout_refs(&dist.join("oci"))
}

#[test]
fn promotion_moves_the_tag_to_the_signed_bytes_and_pins_the_manifests() {
    let w = World::new();
    // A: compiled, signed, pushed, tagged staging — one command.
    let a = w.compile(
        "a",
        "1700000000",
        Some("signer"),
        &["--push", "--env", "staging"],
    );
    let a_digests = artifacts(&a);
    let n = a_digests.len();
    assert_eq!(
        n, 10,
        "three steps and two sinks, each for wasmCloud 1.x and v2: {a_digests:?}"
    );
    for (repository, digest) in &a_digests {
        assert_eq!(w.tagged(repository, "staging").as_ref(), Some(digest));
        assert_eq!(w.tagged(repository, "prod"), None, "push tags only --env");
    }
    // B: later, and `enrich` runs another component. Only its artifact differs: nothing in an
    // artifact depends on the time.
    w.swap_enrich_component();
    let b = w.compile("b", "1700000500", Some("signer"), &[]);
    let b_digests = artifacts(&b);
    for (repository, digest) in &b_digests {
        if repository.ends_with("-enrich") {
            assert_ne!(digest, &a_digests[repository]);
        } else {
            assert_eq!(digest, &a_digests[repository], "{repository}");
        }
    }
    let b_staging = manifests(&b, "staging");
    let b_refs = refs(&b);
    assert_ne!(b_refs[&bundle("prod")], refs(&a)[&bundle("prod")]);

    // B's prod bundle must be built again from the re-pinned manifests, and signed: without a
    // key, refused before anything moves.
    let before = common::tree(&b);
    let (code, _, stderr) = w.promote(&b, "staging", "prod", "signer");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("`prod`'s deployment bundle `bundles/iot-sensors/prod` (sha256:"),
        "{stderr}"
    );
    assert!(stderr.contains("pass --sign-key"), "{stderr}");
    assert!(stderr.contains("(nothing was changed)"), "{stderr}");
    assert_eq!(common::tree(&b), before);
    for repository in a_digests.keys().cloned().chain([bundle("prod")]) {
        assert_eq!(w.tagged(&repository, "prod"), None, "{repository}");
    }
    // A signing key that is not the private half of --key: refused too.
    let (code, _, stderr) = w.promote_signing(&b, "staging", "prod", "signer", Some("other"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not --key"), "{stderr}");
    assert_eq!(common::tree(&b), before);

    let (code, stdout, stderr) = w.promote_signing(&b, "staging", "prod", "signer", Some("signer"));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("promoted {n} artifacts from `staging` to `prod`")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("tags {n} set, 0 unchanged")),
        "{stderr}"
    );
    for (repository, digest) in &a_digests {
        // The registry: prod names exactly staging's bytes (A's).
        assert_eq!(w.tagged(repository, "prod").as_ref(), Some(digest));
        let (_, staging) = w.get(&format!("/v2/etl/{repository}/manifests/staging"));
        let (_, prod) = w.get(&format!("/v2/etl/{repository}/manifests/prod"));
        assert_eq!(staging, prod);
        assert!(
            stdout.contains(&format!("/{repository}@{digest} staging -> prod")),
            "{stdout}"
        );
    }
    // DIST: prod re-pinned to A's digests, so B's prod manifests now equal A's byte for byte;
    // so does its bundle (the same facts: neither compile knew a commit), signed deterministically
    // with the same key: the same signature as A's. Staging and the rest of the layout are
    // untouched, and the bundle B compiled for prod is gone with its signature.
    assert_eq!(manifests(&b, "prod"), manifests(&a, "prod"));
    assert_eq!(manifests(&b, "staging"), b_staging);
    let prod_bundle = refs(&a)[&bundle("prod")].clone();
    let mut expected = b_refs.clone();
    expected.remove(&format!(
        "sha256-{}.sig",
        &b_refs[&bundle("prod")]["sha256:".len()..]
    ));
    expected.insert(bundle("prod"), prod_bundle.clone());
    let signature = format!("sha256-{}.sig", &prod_bundle["sha256:".len()..]);
    expected.insert(signature.clone(), refs(&a)[&signature].clone());
    assert_eq!(refs(&b), expected);
    let (code, _, verified) = w.etl(
        &[
            "verify",
            "--key",
            &format!("{}.pub", w.path("signer")),
            &b.display().to_string(),
        ],
        &[],
    );
    assert_eq!(
        code, 0,
        "DIST's layout is consistent and signed: {verified}"
    );
    // The registry: prod's bundle is tagged, and verifies.
    assert_eq!(w.tagged(&bundle("prod"), "prod"), Some(prod_bundle.clone()));
    assert!(
        stdout.contains(&format!("/{}@{prod_bundle} bundle -> prod", bundle("prod"))),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "bundle `bundles/iot-sensors/prod` {prod_bundle} tagged `prod` (signed now)"
        )),
        "{stderr}"
    );
    let (code, stdout, stderr) = w.verify("signer", &bundle("prod"), "prod");
    assert_eq!(code, 0, "{stdout}{stderr}");
    let plan: Json = serde_json::from_slice(&std::fs::read(b.join("plan.json")).unwrap()).unwrap();
    let plan_a: Json =
        serde_json::from_slice(&std::fs::read(a.join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["deployments"]["prod"], plan_a["deployments"]["prod"]);
    assert_ne!(
        plan["deployments"]["staging"],
        plan_a["deployments"]["staging"]
    );

    // The record.
    let record: Json =
        serde_json::from_slice(&std::fs::read(b.join("promotions/prod.json")).unwrap()).unwrap();
    assert_eq!(record["kind"], "Promotion");
    assert_eq!(
        (&record["from"], &record["to"]),
        (&"staging".into(), &"prod".into())
    );
    assert_eq!(record["promotedAt"], "2023-11-14T22:29:59Z");
    assert_eq!(record["registry"], format!("{}/etl", w.registry.host()));
    let recorded: BTreeMap<String, String> = record["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["fromTag"], "staging");
            assert_eq!(
                a["signedAs"],
                format!(
                    "{}/etl/{}",
                    w.registry.host(),
                    a["repository"].as_str().unwrap()
                )
            );
            (
                a["repository"].as_str().unwrap().to_owned(),
                a["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(recorded, a_digests);
    assert_eq!(
        record["bundle"],
        serde_json::json!({
            "repository": bundle("prod"),
            "digest": prod_bundle,
            "signedAs": format!("{}/etl/{}", w.registry.host(), bundle("prod")),
        })
    );

    // Again, without the key: DIST holds that bundle signed now, so nothing moves and DIST is
    // byte-identical.
    let before = common::tree(&b);
    let (code, _, stderr) = w.promote(&b, "staging", "prod", "signer");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("tags 0 set, {n} unchanged")),
        "{stderr}"
    );
    assert!(
        stderr.contains("already tagged `prod` (signature from DIST)"),
        "{stderr}"
    );
    assert_eq!(common::tree(&b), before);

    // etl verify on references: the promoted tag verifies, with the right key only.
    let some = a_digests.keys().next().unwrap();
    let reference = format!("{}/etl/{some}:prod", w.registry.host());
    let public = format!("{}.pub", w.path("signer"));
    let (code, stdout, stderr) = w.etl(&["verify", "--key", &public, &reference], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("ok: `{reference}` {}", a_digests[some])),
        "{stdout}"
    );
    let by_digest = format!("{}/etl/{some}@{}", w.registry.host(), a_digests[some]);
    let (code, _, stderr) = w.etl(&["verify", "--key", &public, &by_digest], &[]);
    assert_eq!(code, 0, "{stderr}");
    let other = format!("{}.pub", w.path("other"));
    let (code, stdout, _) = w.etl(&["verify", "--key", &other, &reference], &[]);
    assert_eq!(code, 1);
    assert!(stdout.contains("does not verify with the key"), "{stdout}");
}

#[test]
fn the_compile_that_was_pushed_promotes_with_the_bundle_it_signed() {
    // The usual flow: one signed compile, pushed and tagged dev, then promoted dev → staging
    // with the same DIST and the public key alone: staging's re-pinned manifests are DIST's own,
    // so its bundle is the one DIST signed at compile time.
    let w = World::new();
    let dist = w.compile(
        "dist",
        "1700000000",
        Some("signer"),
        &["--push", "--env", "dev"],
    );
    let compiled = refs(&dist);
    // `--env dev` tags dev's bundle dev, and no other bundle.
    assert_eq!(
        w.tagged(&bundle("dev"), "dev").as_ref(),
        Some(&compiled[&bundle("dev")])
    );
    assert_eq!(w.tagged(&bundle("staging"), "dev"), None);
    assert_eq!(w.tagged(&bundle("staging"), "staging"), None);
    let (code, stdout, stderr) = w.verify("signer", &bundle("dev"), "dev");
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "signed as {}/etl/{}",
            w.registry.host(),
            bundle("dev")
        )),
        "{stdout}"
    );

    let oci = common::tree(&dist.join("oci"));
    let (code, stdout, stderr) = w.promote(&dist, "dev", "staging", "signer");
    assert_eq!(code, 0, "{stderr}");
    let staging = &compiled[&bundle("staging")];
    assert!(
        stderr.contains(&format!(
            "bundle `bundles/iot-sensors/staging` {staging} tagged `staging` (signature from DIST)"
        )),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!(
            "/{}@{staging} bundle -> staging",
            bundle("staging")
        )),
        "{stdout}"
    );
    assert_eq!(
        w.tagged(&bundle("staging"), "staging").as_ref(),
        Some(staging)
    );
    let (code, stdout, stderr) = w.verify("signer", &bundle("staging"), "staging");
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "ok: `{}/etl/{}:staging` {staging}",
            w.registry.host(),
            bundle("staging")
        )),
        "{stdout}"
    );
    // DIST: the layout is as compiled.
    assert_eq!(common::tree(&dist.join("oci")), oci);
    let record: Json =
        serde_json::from_slice(&std::fs::read(dist.join("promotions/staging.json")).unwrap())
            .unwrap();
    assert_eq!(record["bundle"]["digest"], staging.as_str());
    // Dev's bundle stays where it was.
    assert_eq!(
        w.tagged(&bundle("dev"), "dev").as_ref(),
        Some(&compiled[&bundle("dev")])
    );
}

#[test]
fn unsigned_wrongly_signed_tampered_or_missing_artifacts_are_refused_and_nothing_changes() {
    let w = World::new();
    let signed = w.compile(
        "signed",
        "1700000000",
        Some("signer"),
        &["--push", "--env", "staging"],
    );
    let digests = artifacts(&signed);
    let unchanged = |dist: &Path, before: &BTreeMap<String, Vec<u8>>| {
        assert_eq!(&common::tree(dist), before, "DIST changed");
        for repository in digests.keys() {
            assert_eq!(w.tagged(repository, "prod"), None, "prod was tagged");
        }
    };
    let before = common::tree(&signed);

    // Signed with another key.
    let (code, _, stderr) = w.promote(&signed, "staging", "prod", "other");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("refusing to promote"), "{stderr}");
    assert!(stderr.contains("does not verify with the key"), "{stderr}");
    unchanged(&signed, &before);

    // A tag that was never pushed.
    let (code, _, stderr) = w.promote(&signed, "dev", "prod", "signer");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(":dev` does not exist"), "{stderr}");
    assert!(stderr.contains("etl push --env dev"), "{stderr}");
    unchanged(&signed, &before);

    // Tampered: staging of one artifact moved to a manifest nobody signed (one annotation
    // changed; its blobs are in the registry already).
    let repository = digests.keys().next().unwrap();
    let (_, manifest) = w.get(&format!("/v2/etl/{repository}/manifests/staging"));
    let mut tampered: Json = serde_json::from_slice(&manifest).unwrap();
    tampered["annotations"]["org.opencontainers.image.title"] = "evil".into();
    let tampered = serde_json::to_vec(&tampered).unwrap();
    let (status, _) = w.http(
        "PUT",
        &format!("/v2/etl/{repository}/manifests/staging"),
        "application/vnd.oci.image.manifest.v1+json",
        &tampered,
    );
    assert_eq!(status, 201);
    let (code, _, stderr) = w.promote(&signed, "staging", "prod", "signer");
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "refusing to promote `{}/etl/{repository}:staging` ({})",
            w.registry.host(),
            etl::util::digest::sha256(&tampered)
        )),
        "{stderr}"
    );
    assert!(stderr.contains("not signed"), "{stderr}");
    unchanged(&signed, &before);
    let (code, stdout, _) = w.etl(
        &[
            "verify",
            "--key",
            &format!("{}.pub", w.path("signer")),
            &format!("{}/etl/{repository}:staging", w.registry.host()),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(stdout.contains("not signed"), "{stdout}");
}

#[test]
fn an_artifact_built_from_another_spec_than_dist_is_refused() {
    let w = World::new();
    w.compile(
        "a",
        "1700000000",
        Some("signer"),
        &["--push", "--env", "staging"],
    );
    // The `alerts` sink becomes a NATS sink: its artifact (same repository) now imports the
    // messaging consumer where staging's imports wasi:http.
    let pipeline = w.dir.path().join("repo/pipelines/sensor-ingest.yaml");
    let text = std::fs::read_to_string(&pipeline).unwrap().replace(
        "      connector: http\n      with:\n        url: \"{{ vars.alert_url }}\"\n        \
         authorization: { secret: alerts-webhook-token }   # never a literal token\n",
        "      connector: nats\n      with:\n        subject: alerts\n",
    );
    std::fs::write(&pipeline, text).unwrap();
    let b = w.compile("b", "1700000500", Some("signer"), &[]);
    let before = common::tree(&b);
    let (code, _, stderr) = w.promote(&b, "staging", "prod", "signer");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("sensor-ingest-alerts:staging"), "{stderr}");
    assert!(
        stderr.contains("it imports `wasi:http/outgoing-handler@"),
        "{stderr}"
    );
    assert!(
        stderr.contains("built from another spec than DIST's"),
        "{stderr}"
    );
    assert_eq!(common::tree(&b), before);
}

#[test]
fn an_unsigned_compile_cannot_be_promoted() {
    let w = World::new();
    let unsigned = w.compile(
        "unsigned",
        "1700000000",
        None,
        &["--push", "--env", "staging"],
    );
    let before = common::tree(&unsigned);
    let (code, _, stderr) = w.promote(&unsigned, "staging", "prod", "signer");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not signed (no sha256-"), "{stderr}");
    assert_eq!(common::tree(&unsigned), before);
}

#[test]
fn usage_errors_exit_2() {
    let w = World::new();
    let dist = w.compile("dist", "1700000000", Some("signer"), &[]);
    let (code, _, stderr) = w.promote(&dist, "staging", "prd", "signer");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no environment `prd`"), "{stderr}");
    assert!(stderr.contains("did you mean `prod`?"), "{stderr}");
    let (code, _, stderr) = w.promote(&dist, "prod", "prod", "signer");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("nothing to promote"), "{stderr}");
    // Another registry than the output was compiled for: its manifests would pin images where
    // the tags did not move. Refused before the registry is asked, DIST untouched.
    let before = common::tree(&dist);
    let elsewhere = format!("{}/elsewhere", w.registry.host());
    let (code, _, stderr) = w.etl(
        &[
            "promote",
            "--from",
            "staging",
            "--to",
            "prod",
            "--key",
            &format!("{}.pub", w.path("signer")),
            "--registry",
            &elsewhere,
            &dist.display().to_string(),
        ],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "was compiled for the registry `{}/etl`",
            w.registry.host()
        )),
        "{stderr}"
    );
    assert_eq!(common::tree(&dist), before);
    let public = format!("{}.pub", w.path("signer"));
    let untagged = format!("{}/etl/x", w.registry.host());
    let (code, _, stderr) = w.etl(&["verify", "--key", &public, &untagged], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("names no tag or digest"), "{stderr}");
    let (code, _, stderr) = w.etl(
        &["push", &dist.display().to_string(), "--env", "stagin"],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("did you mean `staging`?"), "{stderr}");
}

#[test]
fn claimed_artifacts_promote_as_they_are() {
    // Claims are in the artifacts' bytes: a compile with `--claims-key` pushes and promotes as
    // any other, nothing is re-signed, and a later compile with the same account gives the
    // unchanged units the same digests (claims are deterministic).
    let w = World::new();
    let (code, _, stderr) = w.etl(&["keygen", "--claims", "--out", &w.path("acct")], &[]);
    assert_eq!(code, 0, "{stderr}");
    let seed = format!("{}.nk", w.path("acct"));
    let a = w.compile(
        "a",
        "1700000000",
        Some("signer"),
        &["--claims-key", &seed, "--push", "--env", "staging"],
    );
    let a_digests = artifacts(&a);
    w.swap_enrich_component();
    let b = w.compile("b", "1700000500", Some("signer"), &["--claims-key", &seed]);
    for (repository, digest) in &artifacts(&b) {
        assert_eq!(
            digest == &a_digests[repository],
            !repository.ends_with("-enrich"),
            "{repository}"
        );
    }
    let (code, _, stderr) = w.promote_signing(&b, "staging", "prod", "signer", Some("signer"));
    assert_eq!(code, 0, "{stderr}");
    for (repository, digest) in &a_digests {
        assert_eq!(w.tagged(repository, "prod").as_ref(), Some(digest));
    }
    assert_eq!(manifests(&b, "prod"), manifests(&a, "prod"));
    // The plan still names each unit's subject, the same in both compiles.
    let plan = |dist: &Path| -> Json {
        serde_json::from_slice(&std::fs::read(dist.join("plan.json")).unwrap()).unwrap()
    };
    let (plan_a, plan_b) = (plan(&a), plan(&b));
    for (i, u) in plan_b["pipelines"][0]["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let subject = &u["artifact"]["claims"]["subject"];
        assert!(subject.as_str().unwrap().starts_with('M'), "{u}");
        assert_eq!(
            subject,
            &plan_a["pipelines"][0]["sinks"][i]["artifact"]["claims"]["subject"]
        );
    }
}
