//! Signatures (`etl keygen`, `etl compile --sign-key`, `etl verify`): the binary as users call it,
//! checked against two verifiers that share no code with ours: the sigstore crate (cosign's
//! key-based check, over OpenSSL) and skopeo.

use crate::common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use etl::oci::sign::{self, SigningKey};
use serde_json::{Value as Json, json};

/// The example's artifacts, in ref-name order: its environments' deployment bundles, the
/// wasmCloud 1.x artifacts, then the v2 ones. Each is signed and verified alike.
const ARTIFACTS: [&str; 13] = [
    "bundles/iot-sensors/dev",
    "bundles/iot-sensors/prod",
    "bundles/iot-sensors/staging",
    "sensor-ingest-alerts",
    "sensor-ingest-archive",
    "sensor-ingest-enrich",
    "sensor-ingest-parse",
    "sensor-ingest-threshold-alert",
    "v2/sensor-ingest-alerts",
    "v2/sensor-ingest-archive",
    "v2/sensor-ingest-enrich",
    "v2/sensor-ingest-parse",
    "v2/sensor-ingest-threshold-alert",
];

fn etl(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_etl"));
    command.args(args).env_remove(sign::PASSPHRASE_ENV);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("etl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `etl compile` of the example into `out`, signed with `key` when given.
fn compile(out: &Path, key: Option<&Path>, env: &[(&str, &str)]) -> Output {
    let example = common::example();
    let mut args = vec!["compile", "--repo", s(&example), "--out", s(out)];
    if let Some(key) = key {
        args.extend(["--sign-key", s(key)]);
    }
    etl(
        &args,
        &[&[("SOURCE_DATE_EPOCH", "1700000000")], env].concat(),
    )
}

fn verify(key: &Path, dist: &Path) -> Output {
    etl(&["verify", "--key", s(key), s(dist)], &[])
}

/// A key pair (`k.key`, `k.pub`) and the example compiled and signed with it (`dist`), made once.
struct Signed {
    dir: tempfile::TempDir,
}

impl Signed {
    fn key(&self) -> PathBuf {
        self.dir.path().join("k.key")
    }
    fn public(&self) -> PathBuf {
        self.dir.path().join("k.pub")
    }
    fn dist(&self) -> PathBuf {
        self.dir.path().join("dist")
    }
    fn signing_key(&self) -> SigningKey {
        SigningKey::from_pem(&std::fs::read_to_string(self.key()).unwrap(), None).unwrap()
    }
    /// A copy of the signed `dist/` to spoil.
    fn copy(&self) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        common::copy(&self.dist(), dir.path());
        dir
    }
}

fn signed() -> &'static Signed {
    static SIGNED: OnceLock<Signed> = OnceLock::new();
    SIGNED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = etl(&["keygen", "--out", s(&dir.path().join("k"))], &[]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let signed = Signed { dir };
        let out = compile(&signed.dist(), Some(&signed.key()), &[]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        signed
    })
}

fn index(layout: &Path) -> Json {
    serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

/// ref name → digest, for every entry of the index.
fn refs(layout: &Path) -> BTreeMap<String, String> {
    common::layout_refs(layout)
}

/// The signature of `artifact` in `layout`: (its manifest, the payload, the base64 signature).
fn signature_of(layout: &Path, artifact: &str) -> (Json, Vec<u8>, String) {
    let refs = refs(layout);
    let digest = &refs[artifact];
    let tag = format!("sha256-{}.sig", digest.trim_start_matches("sha256:"));
    let manifest: Json = serde_json::from_slice(&blob(layout, &refs[&tag])).unwrap();
    let layer = &manifest["layers"][0];
    let payload = blob(layout, layer["digest"].as_str().unwrap());
    let signature = layer["annotations"]["dev.cosignproject.cosign/signature"]
        .as_str()
        .unwrap()
        .to_owned();
    (manifest, payload, signature)
}

/// Stores `manifest` as the signature manifest of `artifact` (a new blob, the index pointing at
/// it): what someone who can write the layout but has not the key can do.
fn replace_signature(layout: &Path, artifact: &str, manifest: &Json, blobs: &[&[u8]]) {
    let bytes = serde_json::to_vec(manifest).unwrap();
    for b in blobs.iter().copied().chain([bytes.as_slice()]) {
        let digest = etl::util::digest::sha256(b);
        std::fs::write(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
            b,
        )
        .unwrap();
    }
    let digest = &refs(layout)[artifact];
    let tag = format!("sha256-{}.sig", digest.trim_start_matches("sha256:"));
    let mut index = index(layout);
    for m in index["manifests"].as_array_mut().unwrap() {
        if m["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str() {
            m["digest"] = etl::util::digest::sha256(&bytes).into();
            m["size"] = bytes.len().into();
        }
    }
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

/// The `error:` lines of `etl verify`, by artifact named.
fn errors(out: &Output) -> BTreeMap<String, String> {
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("error: `"))
        .map(|l| {
            let (name, rest) = l.split_once('`').unwrap();
            (name.to_owned(), rest.to_owned())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Keys

#[test]
fn keygen_writes_an_owner_only_private_key_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("release");
    let out = etl(&["keygen", "--out", s(&prefix)], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let private = std::fs::read_to_string(dir.path().join("release.key")).unwrap();
    let public = std::fs::read_to_string(dir.path().join("release.pub")).unwrap();
    assert!(
        private.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "{private}"
    );
    assert!(
        public.starts_with("-----BEGIN PUBLIC KEY-----\n"),
        "{public}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("release.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // The halves belong together.
    let key = SigningKey::from_pem(&private, None).unwrap();
    assert_eq!(key.public_pem(), public);

    // A second keygen refuses, and leaves both files as they were.
    let again = etl(&["keygen", "--out", s(&prefix)], &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("release.key` exists"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("release.key")).unwrap(),
        private
    );
    // Even when only the public half is in the way.
    std::fs::remove_file(dir.path().join("release.key")).unwrap();
    let again = etl(&["keygen", "--out", s(&prefix)], &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(!dir.path().join("release.key").exists());
}

#[test]
fn a_passphrase_protected_key_signs_and_a_wrong_passphrase_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let pass = [(sign::PASSPHRASE_ENV, "correct horse")];
    let out = etl(&["keygen", "--out", s(&dir.path().join("e"))], &pass);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = dir.path().join("e.key");
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(
        pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
        "{pem}"
    );

    let dist = dir.path().join("dist");
    for (env, says) in [
        (&[(sign::PASSPHRASE_ENV, "wrong")][..], "does not decrypt"),
        (&[][..], "is encrypted: set ETL_KEY_PASSPHRASE"),
    ] {
        let out = compile(&dist, Some(&key), env);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(s(&key)) && stderr.contains(says),
            "{stderr}"
        );
        assert!(
            !dist.exists(),
            "nothing is written with a key that cannot be read"
        );
    }

    let out = compile(&dist, Some(&key), &pass);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = verify(&dir.path().join("e.pub"), &dist);
    assert!(out.status.success(), "{}", text(&out.stdout));
}

// ---------------------------------------------------------------------------------------------
// Sign and verify

#[test]
fn a_signed_compile_verifies_and_reproduces_byte_for_byte() {
    let signed = signed();
    let out = verify(&signed.public(), &signed.dist());
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    for name in ARTIFACTS {
        assert!(
            stdout.contains(&format!(
                "ok: `{name}` sha256:{}",
                refs(&signed.dist().join("oci"))[name].trim_start_matches("sha256:")
            )),
            "{stdout}"
        );
        // docker-reference is the repository the artifact is pushed to.
        assert!(
            stdout.contains(&format!("signed as registry.acme.example/etl/{name}\n")),
            "{stdout}"
        );
    }
    // The layout itself can be named too.
    let out = verify(&signed.public(), &signed.dist().join("oci"));
    assert!(out.status.success());

    // Deterministic signatures: a second signed compile is the same, file for file.
    let again = tempfile::tempdir().unwrap();
    let out = compile(&again.path().join("dist"), Some(&signed.key()), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (a, b) = (
        common::tree(&signed.dist()),
        common::tree(&again.path().join("dist")),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (path, bytes) in &a {
        assert!(
            bytes == &b[path],
            "{path} differs between two signed compiles"
        );
    }
}

#[test]
fn signatures_are_cosign_simple_signing_and_the_index_stays_sorted() {
    let signed = signed();
    let layout = signed.dist().join("oci");
    let refs = refs(&layout);
    let names: Vec<&String> = refs.keys().collect();
    let index = index(&layout);
    let order: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(order, names, "the index is sorted by ref name");
    assert_eq!(refs.len(), 2 * ARTIFACTS.len());
    for name in ARTIFACTS {
        let digest = &refs[name];
        let (manifest, payload, signature) = signature_of(&layout, name);
        assert_eq!(
            payload,
            format!(
                "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"registry.acme.example/etl/{name}\"}},\
                 \"image\":{{\"docker-manifest-digest\":\"{digest}\"}},\
                 \"type\":\"cosign container image signature\"}},\"optional\":null}}"
            )
            .into_bytes()
        );
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(
            layers[0]["mediaType"],
            "application/vnd.dev.cosign.simplesigning.v1+json"
        );
        assert_eq!(layers[0]["size"], payload.len());
        let config: Json = serde_json::from_slice(&blob(
            &layout,
            manifest["config"]["digest"].as_str().unwrap(),
        ))
        .unwrap();
        assert_eq!(config["rootfs"]["diff_ids"], json!([layers[0]["digest"]]));
        // DER ECDSA: a SEQUENCE of two INTEGERs.
        let der = BASE64.decode(&signature).unwrap();
        assert_eq!(der[0], 0x30, "{signature}");
    }
}

#[test]
fn an_unsigned_output_fails_naming_every_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    let out = compile(&dist, None, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = verify(&signed().public(), &dist);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let errors = errors(&out);
    assert_eq!(
        errors.keys().collect::<Vec<_>>(),
        ARTIFACTS.iter().collect::<Vec<_>>()
    );
    for why in errors.values() {
        assert!(why.contains("not signed (no sha256-"), "{why}");
    }
    assert!(
        text(&out.stderr).contains("13 of 13 artifacts"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn tampering_and_wrong_keys_fail_naming_the_artifact() {
    let signed = signed();

    // An artifact's manifest edited in place.
    let copy = signed.copy();
    let layout = copy.path().join("oci");
    let digest = &refs(&layout)["sensor-ingest-parse"];
    let path = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let edited =
        text(&std::fs::read(&path).unwrap()).replace("\"schemaVersion\":2", "\"schemaVersion\":3");
    std::fs::write(&path, edited).unwrap();
    let out = verify(&signed.public(), copy.path());
    assert_eq!(out.status.code(), Some(1));
    let errors_found = errors(&out);
    assert_eq!(
        errors_found.keys().collect::<Vec<_>>(),
        ["sensor-ingest-parse"]
    );
    assert!(
        errors_found["sensor-ingest-parse"].contains("manifest"),
        "{errors_found:?}"
    );
    assert!(
        errors_found["sensor-ingest-parse"].contains("corrupt"),
        "{errors_found:?}"
    );

    // A layer (the component) edited in place.
    let copy = signed.copy();
    let layout = copy.path().join("oci");
    let manifest: Json =
        serde_json::from_slice(&blob(&layout, &refs(&layout)["sensor-ingest-enrich"])).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let path = layout
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut wasm = std::fs::read(&path).unwrap();
    *wasm.last_mut().unwrap() ^= 1;
    std::fs::write(&path, wasm).unwrap();
    let out = verify(&signed.public(), copy.path());
    assert_eq!(out.status.code(), Some(1));
    let found = errors(&out);
    assert_eq!(found.keys().collect::<Vec<_>>(), ["sensor-ingest-enrich"]);
    assert!(
        found["sensor-ingest-enrich"].contains("the layer"),
        "{found:?}"
    );

    // A file of a deployment bundle edited in place: its Kubernetes manifests, or its JetStream
    // document (the first layer, at least once being the default), whose bytes are the same in
    // every environment: one blob of the layout, so every bundle holding it fails.
    let every_bundle = &[
        "bundles/iot-sensors/dev",
        "bundles/iot-sensors/prod",
        "bundles/iot-sensors/staging",
    ][..];
    for (index, title, failing) in [
        (
            1,
            "k8s/sensor-ingest.yaml",
            &["bundles/iot-sensors/prod"][..],
        ),
        (0, "jetstream/sensor-ingest.json", every_bundle),
    ] {
        let copy = signed.copy();
        let layout = copy.path().join("oci");
        let manifest: Json =
            serde_json::from_slice(&blob(&layout, &refs(&layout)["bundles/iot-sensors/prod"]))
                .unwrap();
        let layer = manifest["layers"][index]["digest"].as_str().unwrap();
        assert_eq!(
            manifest["layers"][index]["annotations"]["org.opencontainers.image.title"],
            title
        );
        let path = layout
            .join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:"));
        let mut edited = std::fs::read(&path).unwrap();
        edited.extend_from_slice(b"# one more line\n");
        std::fs::write(&path, edited).unwrap();
        let out = verify(&signed.public(), copy.path());
        assert_eq!(out.status.code(), Some(1), "{title}");
        let found = errors(&out);
        assert_eq!(found.keys().collect::<Vec<_>>(), failing, "{title}");
        for bundle in failing {
            assert!(
                found[*bundle].contains(&format!("the layer {layer} is corrupt")),
                "{title}: {found:?}"
            );
        }
    }

    // A signature made invalid: another artifact's signature on this one's payload.
    let copy = signed.copy();
    let layout = copy.path().join("oci");
    let (mut manifest, payload, _) = signature_of(&layout, "sensor-ingest-archive");
    let (_, _, other) = signature_of(&layout, "sensor-ingest-alerts");
    manifest["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"] = other.into();
    replace_signature(&layout, "sensor-ingest-archive", &manifest, &[&payload]);
    let out = verify(&signed.public(), copy.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let found = errors(&out);
    assert_eq!(found.keys().collect::<Vec<_>>(), ["sensor-ingest-archive"]);
    assert!(
        found["sensor-ingest-archive"].contains("does not verify"),
        "{found:?}"
    );

    // A valid signature, by the right key, of another digest (replayed under this tag).
    let copy = signed.copy();
    let layout = copy.path().join("oci");
    let other = &refs(&layout)["sensor-ingest-alerts"];
    let blobs = sign::signature(
        &signed.signing_key(),
        "registry.acme.example/etl/sensor-ingest-threshold-alert",
        other,
    );
    let manifest: Json = serde_json::from_slice(&blobs.manifest).unwrap();
    replace_signature(
        &layout,
        "sensor-ingest-threshold-alert",
        &manifest,
        &[&blobs.config, &blobs.payload],
    );
    let out = verify(&signed.public(), copy.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let found = errors(&out);
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["sensor-ingest-threshold-alert"]
    );
    assert!(
        found["sensor-ingest-threshold-alert"].contains(other.as_str()),
        "{found:?}"
    );

    // Another key: every signature is bad.
    let dir = tempfile::tempdir().unwrap();
    let out = etl(&["keygen", "--out", s(&dir.path().join("other"))], &[]);
    assert!(out.status.success());
    let out = verify(&dir.path().join("other.pub"), &signed.dist());
    assert_eq!(out.status.code(), Some(1));
    let found = errors(&out);
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ARTIFACTS.iter().collect::<Vec<_>>()
    );
    assert!(
        found.values().all(|w| w.contains("does not verify")),
        "{found:?}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let signed = signed();
    // A private key where the public one belongs.
    let out = verify(&signed.key(), &signed.dist());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("k.key"), "{}", text(&out.stderr));
    // Not a compile output.
    let dir = tempfile::tempdir().unwrap();
    let out = verify(&signed.public(), dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not an `etl compile` output"),
        "{}",
        text(&out.stderr)
    );
    // No --key.
    let out = etl(&["verify", s(&signed.dist())], &[]);
    assert_eq!(out.status.code(), Some(2));
}

// ---------------------------------------------------------------------------------------------
// Independent verifiers

/// The sigstore oracle's executable, built once per test run into its own target directory
/// beside this test's (as compiler/tests/all/wadm.rs builds its oracle).
fn oracle() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::build_oracle("cosign-oracle"))
}

/// What the sigstore crate says of each (public key PEM, payload, base64 signature).
fn sigstore_verdicts(cases: &[(String, Vec<u8>, String)]) -> Vec<String> {
    let mut child = Command::new(oracle())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for (key, payload, signature) in cases {
        let line = json!({"key": key, "payload": BASE64.encode(payload), "signature": signature});
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    text(&out.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn sigstore_verifies_our_signatures_and_rejects_wrong_keys_and_payloads() {
    let signed = signed();
    let layout = signed.dist().join("oci");
    let public = std::fs::read_to_string(signed.public()).unwrap();
    let other = sign::keygen(None).unwrap().public_pem;

    let mut cases = Vec::new();
    for name in ARTIFACTS {
        let (_, payload, signature) = signature_of(&layout, name);
        cases.push((public.clone(), payload, signature));
    }
    let (_, payload, signature) = signature_of(&layout, "sensor-ingest-parse");
    // The wrong key.
    cases.push((other, payload.clone(), signature.clone()));
    // A payload naming another digest.
    let mut forged = payload.clone();
    let at = 7 + forged.windows(7).position(|w| w == b"sha256:").unwrap();
    forged[at] = if forged[at] == b'0' { b'1' } else { b'0' };
    cases.push((public.clone(), forged, signature.clone()));
    // One flipped bit of the signature.
    let mut der = BASE64.decode(&signature).unwrap();
    *der.last_mut().unwrap() ^= 1;
    cases.push((public, payload, BASE64.encode(der)));

    let verdicts = sigstore_verdicts(&cases);
    assert_eq!(verdicts.len(), cases.len(), "{verdicts:?}");
    assert!(
        verdicts[..ARTIFACTS.len()].iter().all(|v| v == "ok"),
        "{verdicts:?}"
    );
    for v in &verdicts[ARTIFACTS.len()..] {
        assert!(v.starts_with("error: signature"), "{verdicts:?}");
    }
}

#[test]
fn skopeo_reads_each_signature_by_its_cosign_tag() {
    let signed = signed();
    let layout = signed.dist().join("oci");
    let refs = refs(&layout);
    for name in ARTIFACTS {
        let tag = format!("sha256-{}.sig", refs[name].trim_start_matches("sha256:"));
        let raw = common::skopeo(&["inspect", "--raw", &format!("oci:{}:{tag}", s(&layout))]);
        assert_eq!(raw, blob(&layout, &refs[&tag]), "{tag}");
    }
}

// ---------------------------------------------------------------------------------------------
// The library on an in-memory layout

#[test]
fn signing_an_in_memory_layout_is_stable_and_idempotent() {
    let key = signed().signing_key();
    let wasm = wat::parse_str("(component)").unwrap();
    let artifacts: Vec<_> = ["b-two", "a-one", "zz-three"]
        .iter()
        .map(|name| {
            etl::oci::layout::artifact(&etl::oci::layout::ArtifactInput {
                name,
                wasm: &wasm,
                imports: &[],
                exports: &[],
            })
            .unwrap()
        })
        .collect();
    let by_digest = BTreeMap::from([(etl::util::digest::sha256(&wasm), wasm.as_slice())]);
    let unsigned = etl::oci::layout::layout(&artifacts, &by_digest, &[]).unwrap();

    let mut once = unsigned.clone();
    sign::sign_layout(&mut once, "", &key, "example.com/acme/").unwrap();
    let mut twice = once.clone();
    sign::sign_layout(&mut twice, "", &key, "example.com/acme").unwrap();
    assert_eq!(once, twice, "signing again replaces, byte for byte");
    // Unsigned blobs untouched; three signatures of three blobs each added.
    for (path, bytes) in &unsigned {
        if path != "index.json" {
            assert_eq!(&once[path], bytes, "{path}");
        }
    }
    assert_eq!(once.len(), unsigned.len() + 9);

    let index: Json = serde_json::from_slice(&once["index.json"]).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names.len(), 6);

    // Written out, it verifies; with a different registry, the signatures differ.
    let dir = tempfile::tempdir().unwrap();
    for (path, bytes) in &once {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let public = sign::VerifyingKey::from_pem(&key.public_pem()).unwrap();
    let report = sign::verify_layout(dir.path(), &public).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(
        report.artifacts[0].outcome,
        Ok("example.com/acme/a-one".to_owned())
    );
    let mut elsewhere = unsigned;
    sign::sign_layout(&mut elsewhere, "", &key, "example.com/other").unwrap();
    assert_ne!(elsewhere["index.json"], once["index.json"]);
}
