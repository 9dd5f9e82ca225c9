//! The Wasm OCI artifact and the OCI image layout: deterministic bytes, a pinned digest, a
//! self-consistent layout, and skopeo (an independent OCI client) reading it as we wrote it.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use etl::oci::layout::{self, Artifact, ArtifactInput, OciError};
use etl::util::digest::sha256;
use serde_json::Value as Json;

/// A tiny valid component: `(component)`, 8 bytes.
fn empty_component() -> Vec<u8> {
    wat::parse_str("(component)").unwrap()
}

/// Another component, with different bytes.
fn other_component() -> Vec<u8> {
    wat::parse_str("(component (core module))").unwrap()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn package(name: &str, wasm: &[u8]) -> Artifact {
    let imports = strings(&[
        "wasmcloud:messaging/consumer@0.2.0",
        "wasi:config/runtime@0.2.0-draft",
    ]);
    let exports = strings(&["wasmcloud:messaging/handler@0.2.0"]);
    layout::artifact(&ArtifactInput {
        name,
        wasm,
        imports: &imports,
        exports: &exports,
    })
    .unwrap()
}

fn json(bytes: &[u8]) -> Json {
    serde_json::from_slice(bytes).unwrap()
}

fn pretty(bytes: &[u8]) -> String {
    serde_json::to_string_pretty(&json(bytes)).unwrap()
}

/// Canonical: re-serializing with sorted keys and no whitespace gives the same bytes.
fn assert_canonical(bytes: &[u8]) {
    let again = serde_json::to_vec(&etl::util::json::sorted_keys(&json(bytes))).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&again),
        String::from_utf8_lossy(bytes)
    );
}

/// The layout of three artifacts: two share their component.
fn three() -> (Vec<Artifact>, BTreeMap<String, Vec<u8>>) {
    let (a, b) = (empty_component(), other_component());
    let artifacts = vec![
        package("sensor-ingest-parse", &a),
        package("sensor-ingest-enrich", &b),
        package("sensor-ingest-archive", &a),
    ];
    let wasm = BTreeMap::from([(sha256(&a), &a[..]), (sha256(&b), &b[..])]);
    let files = layout::layout(&artifacts, &wasm, &[]).unwrap();
    (artifacts, files)
}

#[test]
fn the_golden_artifact() {
    let wasm = empty_component();
    assert_eq!(wasm, b"\0asm\x0d\0\x01\0", "wat's `(component)` changed");
    let artifact = package("sensor-ingest-parse", &wasm);
    assert_eq!(
        artifact.manifest_digest,
        // Cross-checked once with Python: json.dumps(sort_keys=True, separators=(",", ":")) + hashlib.
        "sha256:3957060969d634b5dbe55271b3f2d1b1dec6c56b80e0694440e5db9b233c856f",
        "the manifest changed: {}",
        String::from_utf8_lossy(&artifact.manifest)
    );
    assert_eq!(artifact.manifest_digest, sha256(&artifact.manifest));
    assert_eq!(artifact.config_digest, sha256(&artifact.config));
    assert_eq!(artifact.layer_digest, sha256(&wasm));
    assert_eq!(artifact.layer_size, 8);
    insta::assert_snapshot!("manifest", pretty(&artifact.manifest));
    insta::assert_snapshot!("config", pretty(&artifact.config));
}

#[test]
fn blobs_are_canonical_json() {
    let (artifacts, files) = three();
    for a in &artifacts {
        assert_canonical(&a.manifest);
        assert_canonical(&a.config);
    }
    assert_canonical(&files["index.json"]);
    assert_eq!(files["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);
}

#[test]
fn the_manifest_and_config_follow_the_wasm_artifact_format() {
    let artifact = package("sensor-ingest-parse", &empty_component());
    let m = json(&artifact.manifest);
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert!(m.get("artifactType").is_none());
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(m["config"]["digest"], artifact.config_digest.as_str());
    assert_eq!(m["config"]["size"], artifact.config.len());
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    assert_eq!(layers[0]["digest"], artifact.layer_digest.as_str());
    assert_eq!(
        layers[0]["annotations"]["org.opencontainers.image.title"],
        "sensor-ingest-parse.wasm"
    );
    // The title only: no commit, time or source, which would change the digest of an unchanged
    // step on every commit.
    assert_eq!(
        m["annotations"],
        serde_json::json!({"org.opencontainers.image.title": "sensor-ingest-parse"})
    );

    let c = json(&artifact.config);
    assert_eq!(c["architecture"], "wasm");
    assert_eq!(c["os"], "wasip2");
    assert_eq!(c["created"], layout::CONFIG_CREATED);
    assert_eq!(
        c["layerDigests"],
        serde_json::json!([artifact.layer_digest])
    );
}

#[test]
fn an_artifact_without_interfaces_has_empty_lists_and_only_its_title() {
    let wasm = empty_component();
    let artifact = layout::artifact(&ArtifactInput {
        name: "x",
        wasm: &wasm,
        imports: &[],
        exports: &[],
    })
    .unwrap();
    let m = json(&artifact.manifest);
    let keys: Vec<&str> = m["annotations"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["org.opencontainers.image.title"]);
    let c = json(&artifact.config);
    assert_eq!(
        c["component"],
        serde_json::json!({"exports": [], "imports": []})
    );
}

#[test]
fn imports_and_exports_are_sorted_and_deduplicated() {
    let wasm = empty_component();
    let imports = strings(&["b:c/d", "a:b/c", "b:c/d", "a:b/c@0.1.0"]);
    let exports = strings(&["z:z/z", "y:y/y", "z:z/z"]);
    let artifact = layout::artifact(&ArtifactInput {
        name: "x",
        wasm: &wasm,
        imports: &imports,
        exports: &exports,
    })
    .unwrap();
    assert_eq!(
        json(&artifact.config)["component"],
        serde_json::json!({"exports": ["y:y/y", "z:z/z"], "imports": ["a:b/c", "a:b/c@0.1.0", "b:c/d"]})
    );
}

#[test]
fn created_is_rfc3339_utc_and_range_checked() {
    let created = |t: i64| layout::rfc3339(t);
    assert_eq!(created(0).unwrap(), "1970-01-01T00:00:00Z");
    assert_eq!(created(1_700_000_000).unwrap(), "2023-11-14T22:13:20Z");
    assert_eq!(created(951_782_400).unwrap(), "2000-02-29T00:00:00Z");
    assert_eq!(
        created(layout::MAX_CREATED).unwrap(),
        "9999-12-31T23:59:59Z"
    );
    assert_eq!(created(-1), Err(OciError::CreatedOutOfRange(-1)));
    assert_eq!(
        created(layout::MAX_CREATED + 1),
        Err(OciError::CreatedOutOfRange(layout::MAX_CREATED + 1))
    );
    assert_eq!(
        created(i64::MIN),
        Err(OciError::CreatedOutOfRange(i64::MIN))
    );
}

#[test]
fn same_input_same_bytes_in_any_order() {
    let (artifacts, files) = three();
    let (again, files_again) = three();
    assert_eq!(artifacts, again);
    assert_eq!(files, files_again);

    let a = empty_component();
    let b = other_component();
    let wasm = BTreeMap::from([(sha256(&a), &a[..]), (sha256(&b), &b[..])]);
    let mut reversed = artifacts.clone();
    reversed.reverse();
    assert_eq!(layout::layout(&reversed, &wasm, &[]).unwrap(), files);
    reversed.rotate_left(1);
    assert_eq!(layout::layout(&reversed, &wasm, &[]).unwrap(), files);

    // Another component is another artifact.
    let other = layout::artifact(&ArtifactInput {
        name: "sensor-ingest-parse",
        wasm: &b,
        imports: &strings(&[
            "wasmcloud:messaging/consumer@0.2.0",
            "wasi:config/runtime@0.2.0-draft",
        ]),
        exports: &strings(&["wasmcloud:messaging/handler@0.2.0"]),
    })
    .unwrap();
    assert_ne!(other.manifest_digest, artifacts[0].manifest_digest);
}

#[test]
fn the_layout_is_complete_and_consistent() {
    let (artifacts, files) = three();
    let blob = |digest: &str| -> &[u8] {
        let hex = digest.strip_prefix("sha256:").unwrap();
        let bytes = files
            .get(&format!("blobs/sha256/{hex}"))
            .unwrap_or_else(|| panic!("no blob {digest}"));
        assert_eq!(sha256(bytes), digest);
        bytes
    };
    let mut referenced = BTreeSet::new();
    let mut check = |d: &Json| -> Vec<u8> {
        let digest = d["digest"].as_str().unwrap();
        let bytes = blob(digest);
        assert_eq!(d["size"], bytes.len(), "{digest}");
        referenced.insert(format!("blobs/sha256/{}", &digest[7..]));
        bytes.to_vec()
    };

    let index = json(&files["index.json"]);
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let descriptors = index["manifests"].as_array().unwrap();
    let names: Vec<&str> = descriptors
        .iter()
        .map(|d| {
            d["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        names,
        [
            "sensor-ingest-archive",
            "sensor-ingest-enrich",
            "sensor-ingest-parse"
        ],
        "sorted by name"
    );
    for d in descriptors {
        assert_eq!(d["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        let name = d["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .unwrap();
        let artifact = artifacts.iter().find(|a| a.name == name).unwrap();
        assert_eq!(d["digest"], artifact.manifest_digest.as_str());
        let manifest = check(d);
        assert_eq!(manifest, artifact.manifest);
        let manifest = json(&manifest);
        assert_eq!(check(&manifest["config"]), artifact.config);
        for layer in manifest["layers"].as_array().unwrap() {
            check(layer);
        }
    }

    let blobs: BTreeSet<String> = files
        .keys()
        .filter(|p| p.starts_with("blobs/"))
        .cloned()
        .collect();
    assert_eq!(blobs, referenced, "every blob referenced, no extra blob");
    // 3 manifests, 2 configs (the two artifacts of one component share theirs), 2 layers.
    assert_eq!(blobs.len(), 7);
    assert_eq!(files.len(), 9);
}

#[test]
fn layout_errors_are_typed() {
    let a = empty_component();
    let b = other_component();
    let parse = package("parse", &a);
    let wasm = BTreeMap::from([(sha256(&a), &a[..])]);

    assert_eq!(
        layout::layout(&[parse.clone(), package("parse", &b)], &wasm, &[]),
        Err(OciError::DuplicateName("parse".to_owned()))
    );
    assert_eq!(
        layout::layout(&[package("enrich", &b)], &wasm, &[]),
        Err(OciError::MissingLayer {
            name: "enrich".to_owned(),
            digest: sha256(&b)
        })
    );
    let wrong = BTreeMap::from([(sha256(&a), &b[..])]);
    assert_eq!(
        layout::layout(std::slice::from_ref(&parse), &wrong, &[]),
        Err(OciError::LayerMismatch {
            name: "parse".to_owned(),
            digest: sha256(&a),
            actual: sha256(&b)
        })
    );
    let mut renamed = parse;
    renamed.name = "Parse".to_owned();
    assert_eq!(
        layout::layout(&[renamed], &wasm, &[]),
        Err(OciError::InvalidName("Parse".to_owned()))
    );
    for bad in ["", "Parse", "a//b", "/a", "a/", "a:b", "-a", "a__b"] {
        let input = ArtifactInput {
            name: bad,
            wasm: &a,
            imports: &[],
            exports: &[],
        };
        assert_eq!(
            layout::artifact(&input),
            Err(OciError::InvalidName(bad.to_owned())),
            "{bad:?}"
        );
    }
    assert_eq!(
        layout::layout(&[], &BTreeMap::new(), &[])
            .unwrap()
            .into_iter()
            .map(|(path, bytes)| (path, String::from_utf8(bytes).unwrap()))
            .collect::<Vec<_>>(),
        [
            (
                "index.json".to_owned(),
                r#"{"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#
                    .to_owned()
            ),
            (
                "oci-layout".to_owned(),
                r#"{"imageLayoutVersion":"1.0.0"}"#.to_owned()
            ),
        ]
    );
}

fn write(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (path, bytes) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// skopeo addresses each artifact by its `ref.name`, returns our manifest and config byte for byte,
/// and copies the artifact without changing its digest. `--raw` throughout: skopeo's interpreted
/// views refuse a config that is not a container image's ("unsupported image-specific operation
/// on artifact with type application/vnd.wasm.config.v0+json").
#[test]
fn skopeo_reads_the_layout_as_written() {
    let (artifacts, files) = three();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, copy) = (tmp.path().join("oci"), tmp.path().join("copy"));
    write(&dir, &files);
    let dir = dir.to_str().unwrap();
    let copy = copy.to_str().unwrap();

    for a in &artifacts {
        let here = format!("oci:{dir}:{}", a.name);
        let raw = common::skopeo(&["inspect", "--raw", &here]);
        assert_eq!(
            String::from_utf8_lossy(&raw),
            String::from_utf8_lossy(&a.manifest),
            "{}",
            a.name
        );
        let config = common::skopeo(&["inspect", "--config", "--raw", &here]);
        assert_eq!(
            String::from_utf8_lossy(&config),
            String::from_utf8_lossy(&a.config),
            "{}",
            a.name
        );
        let there = format!("oci:{copy}:{}", a.name);
        common::skopeo(&["copy", "--quiet", &here, &there]);
        let copied = common::skopeo(&["inspect", "--raw", &there]);
        assert_eq!(sha256(&copied), a.manifest_digest, "{}", a.name);
        let copied_config = common::skopeo(&["inspect", "--config", "--raw", &there]);
        assert_eq!(copied_config, a.config, "{}", a.name);
    }
}
