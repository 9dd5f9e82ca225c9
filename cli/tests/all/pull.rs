//! `oci://…@sha256:` customer components pulled from a real registry (Debian's
//! `docker-registry`, distribution 2.8, on a loopback port), published there by skopeo as the
//! CNCF Wasm artifacts `etl::oci` makes: a pulled component compiles to the same artifacts as
//! its repo copy, the cache makes later compiles offline, and every failure (other bytes pinned,
//! a tampered blob, an unknown manifest, a registry that is down) is a diagnostic at the step's
//! `component:` that leaves the cache as it was.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use crate::registry::TestRegistry;
use etl::diag::{Code, Diagnostic};
use etl::oci::layout::MANIFEST_MEDIA_TYPE;
use etl::oci::layout::{ArtifactInput, Provenance};
use etl::oci::registry::{self, Credentials, Retry, Session};
use etl::ops::compile::{Compilation, Options};
use etl::store::{Cache, MAX_COMPONENT_BYTES};
use etl::util::digest::sha256;

const PIPELINE: &str = "pipelines/sensor-ingest.yaml";

fn provenance() -> Provenance {
    Provenance {
        created: 1_700_000_000,
        source: Some("https://example.com/iot-sensors.git".to_owned()),
        revision: Some("0123456789abcdef0123456789abcdef01234567".to_owned()),
    }
}

/// The example's `parse` component: a wit-bindgen core module.
fn parse_wasm() -> Vec<u8> {
    std::fs::read(common::example().join("components/parse.wasm")).unwrap()
}

/// A registry holding `parse_wasm()` as the artifact `customers/parse:v1`.
struct Published {
    registry: TestRegistry,
    /// `sha256:` of the component: its layer.
    layer: String,
    /// `sha256:` of the artifact's manifest.
    manifest: String,
}

impl Published {
    fn reference(&self) -> String {
        format!(
            "oci://{}/customers/parse@{}",
            self.registry.host(),
            self.manifest
        )
    }

    /// The layer's file in the registry's storage.
    fn layer_file(&self) -> std::path::PathBuf {
        self.registry.blob_file(&self.layer)
    }
}

/// Packages the parse component with `etl::oci` into an OCI layout and copies it into a fresh
/// registry with skopeo, which must keep the manifest's bytes.
fn publish() -> Published {
    let registry = TestRegistry::start(None);
    let wasm = parse_wasm();
    let artifact = etl::oci::layout::artifact(&ArtifactInput {
        name: "parse",
        wasm: &wasm,
        imports: &[],
        exports: &["etl:pipeline/transform@0.1.0".to_owned()],
    })
    .unwrap();
    let files = etl::oci::layout::layout(
        std::slice::from_ref(&artifact),
        &BTreeMap::from([(artifact.layer_digest.clone(), wasm.as_slice())]),
        &[],
    )
    .unwrap();
    let layout = tempfile::tempdir().unwrap();
    for (path, bytes) in &files {
        let path = layout.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    common::skopeo(&[
        "copy",
        "--quiet",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:parse", layout.path().display()),
        &format!("docker://{}/customers/parse:v1", registry.host()),
    ]);
    assert_eq!(
        crate::registry::served_digest(registry.port, "customers/parse", "v1"),
        artifact.manifest_digest
    );
    Published {
        registry,
        layer: artifact.layer_digest,
        manifest: artifact.manifest_digest,
    }
}

/// A copy of the example whose `parse` step names `component` and pins `digest`.
fn repo_with(component: &str, digest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy(&common::example(), dir.path());
    let spec = dir.path().join(PIPELINE);
    let text = std::fs::read_to_string(&spec).unwrap();
    let pinned = sha256(&parse_wasm());
    assert!(text.contains("component: components/parse.wasm") && text.contains(&pinned));
    let text = text
        .replace(
            "component: components/parse.wasm",
            &format!("component: {component}"),
        )
        .replace(&pinned, digest);
    std::fs::write(&spec, text).unwrap();
    dir
}

/// `etl::ops::compile::compile` of `repo` into a fresh directory; the output, when it compiled.
fn compile(repo: &Path, cache: Option<&Path>) -> (Compilation, Option<BTreeMap<String, Vec<u8>>>) {
    let out = tempfile::tempdir().unwrap();
    let dist = out.path().join("dist");
    let compilation = etl::ops::compile::compile(
        repo,
        &Options {
            out: dist.clone(),
            cache: cache.map(Cache::new),
            provenance: provenance(),
        },
    )
    .unwrap();
    let files = compilation.plan.is_some().then(|| common::tree(&dist));
    (compilation, files)
}

/// Whether a compile reported nothing but the example's one expected warning: compiled without
/// a claims key, its `alerts` sink's secret will not reach a wasmCloud 1.x host (`W0520`).
fn clean(compilation: &Compilation) -> bool {
    compilation
        .validation
        .diagnostics
        .iter()
        .all(|d| d.code == etl::diag::Code::UnclaimedSecrets)
}

/// The one diagnostic of a failed compile, checked to be at the `parse` step's `component:`.
fn only_diagnostic(compilation: &Compilation) -> &Diagnostic {
    assert!(compilation.plan.is_none());
    let [d] = compilation.validation.diagnostics.as_slice() else {
        panic!("{:#?}", compilation.validation.diagnostics);
    };
    let at = d.location.as_ref().expect("a location");
    assert_eq!(at.file, PIPELINE);
    assert!(d.message.starts_with("step `parse`: "), "{}", d.message);
    d
}

/// A cache filled by compiling the example from its repo copies: everything but pulled
/// components, so a compile that pulls `parse` has nothing else to add to it.
fn warm_cache() -> tempfile::TempDir {
    let cache = tempfile::tempdir().unwrap();
    let (compilation, _) = compile(&common::example(), Some(cache.path()));
    assert!(compilation.plan.is_some());
    assert!(!cache.path().join("sha256").exists());
    cache
}

#[test]
fn a_pulled_component_compiles_to_the_same_artifacts_as_the_repo_copy() {
    let published = publish();
    let repo = repo_with(&published.reference(), &published.layer);
    let cache = tempfile::tempdir().unwrap();
    let (pulled, pulled_files) = compile(repo.path(), Some(cache.path()));
    assert!(clean(&pulled), "{:#?}", pulled.validation.diagnostics);
    let (_, local_files) = compile(&common::example(), None);
    let (mut pulled_files, mut local_files) = (pulled_files.unwrap(), local_files.unwrap());

    // The plan records the reference and the spec's digest; everything else is the same bytes:
    // composed components, OCI layout (so every manifest digest), deployment manifests.
    let pulled_plan = pulled_files.remove("plan.json").unwrap();
    local_files.remove("plan.json").unwrap();
    assert_eq!(
        pulled_files.keys().collect::<Vec<_>>(),
        local_files.keys().collect::<Vec<_>>()
    );
    assert!(pulled_files.keys().any(|k| k.starts_with("oci/blobs/")));
    assert!(pulled_files == local_files, "the outputs differ");
    let plan: serde_json::Value = serde_json::from_slice(&pulled_plan).unwrap();
    let parse = &plan["pipelines"][0]["steps"][0]["customer"];
    assert_eq!(parse["component"], published.reference().as_str());
    assert_eq!(parse["digest"], published.layer.as_str());

    // The component is cached by the digest of its bytes.
    let entry = format!("sha256/{}", published.layer.trim_start_matches("sha256:"));
    assert_eq!(common::tree(cache.path())[&entry], parse_wasm());
}

#[test]
fn the_cache_compiles_offline_and_without_it_the_registry_must_answer() {
    let published = publish();
    let host = published.registry.host();
    let reference = published.reference();
    let repo = repo_with(&reference, &published.layer);
    let cache = tempfile::tempdir().unwrap();
    let (online, online_files) = compile(repo.path(), Some(cache.path()));
    assert!(
        online.plan.is_some(),
        "{:#?}",
        online.validation.diagnostics
    );

    drop(published);
    let (offline, offline_files) = compile(repo.path(), Some(cache.path()));
    assert!(clean(&offline), "{:#?}", offline.validation.diagnostics);
    assert_eq!(offline.built, 0, "every composition comes from the cache");
    assert!(offline_files == online_files);

    let empty = tempfile::tempdir().unwrap();
    let (down, _) = compile(repo.path(), Some(empty.path()));
    let d = only_diagnostic(&down);
    assert_eq!(d.code, Code::ComponentUnavailable);
    for phrase in [
        format!("cannot pull `{reference}`"),
        format!("cannot connect to registry `{host}` over http"),
        "is it running".to_owned(),
    ] {
        assert!(d.message.contains(&phrase), "{phrase}: {}", d.message);
    }
    assert!(!empty.path().join("sha256").exists());
}

#[test]
fn a_digest_pinning_other_bytes_is_refused_before_downloading() {
    let published = publish();
    // Without the layer's bytes in the registry, a download could only fail otherwise.
    std::fs::remove_file(published.layer_file()).unwrap();
    let other = sha256(&std::fs::read(common::example().join("components/enrich.wasm")).unwrap());
    let repo = repo_with(&published.reference(), &other);
    let cache = warm_cache();
    let before = common::tree(cache.path());

    let (compilation, _) = compile(repo.path(), Some(cache.path()));
    let d = only_diagnostic(&compilation);
    assert_eq!(d.code, Code::DigestMismatch);
    for phrase in [
        format!("`{}`", published.reference()),
        format!("is an artifact whose layer is {}", published.layer),
        format!("`digest:` pins {other}"),
    ] {
        assert!(d.message.contains(&phrase), "{phrase}: {}", d.message);
    }
    assert!(common::tree(cache.path()) == before, "the cache changed");
}

#[test]
fn a_tampered_blob_in_the_registry_is_refused() {
    let published = publish();
    let file = published.layer_file();
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let repo = repo_with(&published.reference(), &published.layer);
    let cache = warm_cache();
    let before = common::tree(cache.path());

    let (compilation, _) = compile(repo.path(), Some(cache.path()));
    let d = only_diagnostic(&compilation);
    assert_eq!(d.code, Code::DigestMismatch, "{}", d.message);
    for phrase in [
        format!("cannot pull `{}`", published.reference()),
        format!("registry `{}` serves", published.registry.host()),
        published.layer.clone(),
        sha256(&bytes),
    ] {
        assert!(d.message.contains(&phrase), "{phrase}: {}", d.message);
    }
    assert!(common::tree(cache.path()) == before, "the cache changed");

    // Without a cache, the same refusal.
    let (uncached, _) = compile(repo.path(), None);
    assert_eq!(only_diagnostic(&uncached).code, Code::DigestMismatch);
}

#[test]
fn a_manifest_the_registry_does_not_have_is_named() {
    let published = publish();
    let host = published.registry.host();
    let missing = sha256(b"no such manifest");
    for repository in ["customers/parse", "customers/nothing"] {
        let reference = format!("oci://{host}/{repository}@{missing}");
        let repo = repo_with(&reference, &published.layer);
        let (compilation, _) = compile(repo.path(), None);
        let d = only_diagnostic(&compilation);
        assert_eq!(d.code, Code::ComponentUnavailable);
        let phrase = format!(
            "registry `{host}` has no manifest with this digest in repository `{repository}`"
        );
        assert!(d.message.contains(&phrase), "{}", d.message);
        assert!(d.message.contains(&reference), "{}", d.message);
    }
}

/// PUTs `manifest` by its digest into `customers/parse` (whose blobs `publish` uploaded) with
/// etl's client; returns the `oci://` reference to it.
fn put_manifest(published: &Published, manifest: &str) -> String {
    let host = published.registry.host();
    let session = Session::new(&host, &[], &Credentials::Anonymous, Retry::default());
    let digest = sha256(manifest.as_bytes());
    let bytes = bytes::Bytes::from(manifest.to_owned());
    registry::block_on(session.put_manifest(
        "customers/parse",
        &digest,
        &bytes,
        MANIFEST_MEDIA_TYPE,
    ))
    .unwrap();
    format!("oci://{host}/customers/parse@{digest}")
}

#[test]
fn only_a_manifest_of_one_small_wasm_layer_is_pulled() {
    let published = publish();
    let raw = common::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/customers/parse:v1", published.registry.host()),
    ]);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    // The manifest with its layers edited, PUT in the registry: its reference.
    let edited = |edit: &dyn Fn(&mut Vec<serde_json::Value>)| {
        let mut manifest = manifest.clone();
        edit(manifest["layers"].as_array_mut().unwrap());
        put_manifest(&published, &manifest.to_string())
    };

    // The older layer media types of wasm-to-oci and wasmCloud are components too.
    for media_type in &etl::store::pull::WASM_LAYER_MEDIA_TYPES[1..] {
        let older = edited(&|layers| layers[0]["mediaType"] = (*media_type).into());
        let (compilation, _) = compile(repo_with(&older, &published.layer).path(), None);
        assert!(
            compilation.plan.is_some(),
            "{media_type}: {:#?}",
            compilation.validation.diagnostics
        );
    }

    // A layer of another type, or two layers: not a Wasm artifact.
    let tar = edited(&|layers| {
        layers[0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar".into();
    });
    let two = edited(&|layers| layers.push(layers[0].clone()));
    for (reference, phrase) in [
        (tar, "its layer is `application/vnd.oci.image.layer.v1.tar`"),
        (two, "it has 2 layers"),
    ] {
        let (compilation, _) = compile(repo_with(&reference, &published.layer).path(), None);
        let d = only_diagnostic(&compilation);
        assert_eq!(d.code, Code::ComponentUnavailable);
        for phrase in ["is not a Wasm OCI artifact", phrase] {
            assert!(d.message.contains(phrase), "{phrase}: {}", d.message);
        }
    }

    // A layer larger than a component may be is refused before it is downloaded.
    let huge = edited(&|layers| layers[0]["size"] = (MAX_COMPONENT_BYTES + 1).into());
    let (compilation, _) = compile(repo_with(&huge, &published.layer).path(), None);
    let d = only_diagnostic(&compilation);
    assert_eq!(d.code, Code::ComponentTooLarge);
    let phrase = format!("is {} bytes", MAX_COMPONENT_BYTES + 1);
    assert!(d.message.contains(&phrase), "{}", d.message);
}

#[test]
fn etl_compile_renders_a_pull_failure_at_the_component() {
    let published = publish();
    let other = sha256(&std::fs::read(common::example().join("components/enrich.wasm")).unwrap());
    let repo = repo_with(&published.reference(), &other);
    let scratch = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_etl"))
        .arg("compile")
        .arg("--repo")
        .arg(repo.path())
        .arg("--out")
        .arg(scratch.path().join("dist"))
        .arg("--cache-dir")
        .arg(scratch.path().join("cache"))
        .env("DOCKER_CONFIG", scratch.path())
        .env("SOURCE_DATE_EPOCH", "0")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");

    // `component: oci://…` is on line `line`, its value at column `column`.
    let text = std::fs::read_to_string(repo.path().join(PIPELINE)).unwrap();
    let (line, column) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("component: oci://").map(|c| (i + 1, c + 12)))
        .unwrap();
    for phrase in [
        "E0701".to_owned(),
        format!("{PIPELINE}:{line}:{column}"),
        format!("is an artifact whose layer is {}", published.layer),
        format!("set `digest: {}`", published.layer),
    ] {
        assert!(stderr.contains(&phrase), "{phrase}:\n{stderr}");
    }
    assert!(!scratch.path().join("dist").exists());
    assert!(!scratch.path().join("cache/sha256").exists());
    eprintln!("{stderr}");
}
