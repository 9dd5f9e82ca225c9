//! Stage `layout`: a composed component → a CNCF "Wasm OCI Artifact", and a set of artifacts
//! (and manifests packaged elsewhere: the deployment bundles, [`crate::oci::bundle`]) → the files
//! of an OCI image layout (`dist/oci/`). Computed in memory, byte-for-byte deterministic: sorted
//! keys and no insignificant whitespace in every JSON blob, sorted index. Nothing is pushed or
//! signed here; [`update`] replaces manifests of a layout already made (`etl promote`).
//!
//! An artifact is an image manifest ([`MANIFEST_MEDIA_TYPE`], `mediaType` present, no
//! `artifactType`) with a config blob of [`CONFIG_MEDIA_TYPE`] and exactly one layer of
//! [`LAYER_MEDIA_TYPE`]: the component's bytes. `docs/oci.md` shows one.
//!
//! An artifact's bytes depend only on its name and what runs (the component, hence its imports
//! and exports): no commit, no time, no source URL. An unchanged step keeps its digest across
//! commits and machines, so a docs-only commit redeploys nothing. Where a compile came from is
//! recorded in `plan.json` ([`Provenance`]).

use std::collections::BTreeMap;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::oci::manifest::{
    Descriptor, ImageIndex, ImageLayout, ImageManifest, WasmComponent, WasmConfig,
};
use crate::util::digest::sha256;
use crate::util::json::compact;

/// Media type of the image manifest of an artifact.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of the Wasm config blob.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// Media type of the one layer: the component.
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";
/// Media type of the layout's `index.json`.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// Annotation: the artifact's name (manifest) or the layer's file name (layer descriptor).
pub const TITLE: &str = "org.opencontainers.image.title";
/// Annotation on an `index.json` descriptor: the name that selects it (`oci:<dir>:<name>`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation on a step's artifact manifest: the digest of the customer component composed in
/// it, as its step's `digest:` pins it. Sinks have none. `etl promote` reads it back, so that a
/// re-pinned deployment names the customer of the artifact it now runs.
pub const CUSTOMER: &str = "dev.etl.customer.digest";

/// The latest `created` accepted: 9999-12-31T23:59:59Z, the last instant RFC 3339 can write.
pub const MAX_CREATED: i64 = 253_402_300_799;

/// The config's `created`, the same for every artifact: the Unix epoch. The field is kept
/// (rather than omitted) because readers such as `oci-wasm` (wkg, wash) require it.
pub const CONFIG_CREATED: &str = "1970-01-01T00:00:00Z";

/// Why an artifact or a layout could not be made, or a time not written. Each is a bug or a bad
/// input of the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OciError {
    /// A time is before the Unix epoch or after [`MAX_CREATED`]. Not clamped: a negative or
    /// huge `SOURCE_DATE_EPOCH` is a mistake worth hearing about.
    #[error("`created` is {0} seconds since the Unix epoch; it must be in 0..={MAX_CREATED}")]
    CreatedOutOfRange(i64),
    /// The name is not usable as both an OCI repository name and an `index.json` ref name.
    #[error(
        "`{0}` is not a valid artifact name: lowercase letters and digits, separated by single \
         `.`, `_`, `-` or `--`, in path components joined by `/`, at most 255 characters"
    )]
    InvalidName(String),
    /// Two artifacts of one layout have the same name.
    #[error("two artifacts are named `{0}`")]
    DuplicateName(String),
    /// No bytes were given for an artifact's layer.
    #[error("no wasm bytes for layer {digest} of `{name}`")]
    MissingLayer {
        /// The artifact.
        name: String,
        /// The layer digest its manifest names.
        digest: String,
    },
    /// The bytes given for a layer are not the layer the manifest names.
    #[error("the bytes given for layer {digest} of `{name}` hash to {actual}")]
    LayerMismatch {
        /// The artifact.
        name: String,
        /// The layer digest its manifest names.
        digest: String,
        /// The digest of the bytes given.
        actual: String,
    },
    /// A manifest packaged elsewhere is not an image manifest.
    #[error("the manifest of `{name}` is not an OCI image manifest: {reason}")]
    BadManifest {
        /// Its name.
        name: String,
        /// Why not.
        reason: String,
    },
    /// A manifest packaged elsewhere names a blob that was not given with it, or whose bytes
    /// are other than its descriptor says.
    #[error("blob {digest} of `{name}` is {state}")]
    Blob {
        /// The manifest's name.
        name: String,
        /// The blob its manifest names.
        digest: String,
        /// `missing`, or how the bytes given differ.
        state: String,
    },
    /// The files given are not an OCI image layout.
    #[error("`{0}` is missing or is not an OCI image index")]
    NoIndex(String),
}

/// Where a compile came from: recorded in `plan.json`'s `provenance`, never in an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Provenance {
    /// Seconds since the Unix epoch, in 0..=[`MAX_CREATED`]. The caller takes
    /// `SOURCE_DATE_EPOCH`, else the commit time, else 0 — never the clock.
    pub created: i64,
    /// Where the pipeline repo lives (e.g. its URL), when given.
    pub source: Option<String>,
    /// The pipeline repo's commit, when known and the work tree is clean.
    pub revision: Option<String>,
}

/// One composed component to package.
#[derive(Debug, Clone, Copy)]
pub struct ArtifactInput<'a> {
    /// The repository name and title, e.g. `sensor-ingest-parse`.
    pub name: &'a str,
    /// The component's bytes: the one layer.
    pub wasm: &'a [u8],
    /// The component's imports (`ns:pkg/iface@ver`), any order, duplicates allowed.
    pub imports: &'a [String],
    /// The component's exports, likewise.
    pub exports: &'a [String],
}

/// A packaged artifact: the exact bytes of its manifest and config, and its layer's descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The repository name and title.
    pub name: String,
    /// The image manifest, canonical JSON.
    pub manifest: Vec<u8>,
    /// `sha256:<hex>` of [`Self::manifest`]: the artifact's identity.
    pub manifest_digest: String,
    /// The config blob, canonical JSON.
    pub config: Vec<u8>,
    /// `sha256:<hex>` of [`Self::config`].
    pub config_digest: String,
    /// `sha256:<hex>` of the component's bytes.
    pub layer_digest: String,
    /// Size of the component in bytes.
    pub layer_size: u64,
}

/// A manifest packaged elsewhere (a deployment bundle, a signature), stored in a layout exactly
/// as it is, with every blob it names.
#[derive(Debug, Clone, Copy)]
pub struct Prepackaged<'a> {
    /// Its name in the index (`ref.name`), e.g. `bundles/<project>/<env>`.
    pub name: &'a str,
    /// The image manifest's bytes.
    pub manifest: &'a [u8],
    /// Its config and layers (at least), by digest; others are ignored.
    pub blobs: &'a BTreeMap<String, Vec<u8>>,
}

/// `created` as RFC 3339 in UTC, whole seconds: `1970-01-01T00:00:00Z`.
pub fn rfc3339(created: i64) -> Result<String, OciError> {
    if !(0..=MAX_CREATED).contains(&created) {
        return Err(OciError::CreatedOutOfRange(created));
    }
    OffsetDateTime::from_unix_timestamp(created)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .ok_or(OciError::CreatedOutOfRange(created))
}

/// Whether `name` is a path of an OCI repository name (components joined by `/`) that is also a
/// valid `org.opencontainers.image.ref.name` (the intersection of the two grammars).
fn valid_name(name: &str) -> bool {
    name.len() <= 255 && name.split('/').all(valid_component)
}

/// Whether `name` is one path component of an OCI repository name: lowercase letters and digits,
/// separated by single `.`, `_`, `-` or by `--`.
fn valid_component(name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut rest = name;
    loop {
        let end = rest.find(|c| !alnum(c)).unwrap_or(rest.len());
        if end == 0 {
            return false;
        }
        rest = &rest[end..];
        if rest.is_empty() {
            return true;
        }
        let separator = if rest.starts_with("--") {
            2
        } else if rest.starts_with(['.', '_', '-']) {
            1
        } else {
            return false;
        };
        rest = &rest[separator..];
    }
}

/// Packages one composed component: its config and manifest, exactly as they will be stored.
/// The bytes depend on `input` alone.
pub fn artifact(input: &ArtifactInput) -> Result<Artifact, OciError> {
    artifact_of_digest(input, sha256(input.wasm))
}

/// [`artifact`] of a component whose digest the caller already knows (`layer_digest`, the
/// sha256 of `input.wasm`), so that one composed component packaged under many names is hashed
/// once. [`layout`] checks every layer against its bytes.
pub fn artifact_of_digest(
    input: &ArtifactInput,
    layer_digest: String,
) -> Result<Artifact, OciError> {
    artifact_of_step(input, layer_digest, None)
}

/// [`artifact_of_digest`] of a step's composition, whose customer component's digest is
/// `customer` (the manifest's [`CUSTOMER`] annotation).
pub fn artifact_of_step(
    input: &ArtifactInput,
    layer_digest: String,
    customer: Option<&str>,
) -> Result<Artifact, OciError> {
    if !valid_name(input.name) {
        return Err(OciError::InvalidName(input.name.to_owned()));
    }
    let layer_size = input.wasm.len() as u64;

    let config = compact(&WasmConfig {
        architecture: "wasm".to_owned(),
        os: "wasip2".to_owned(),
        created: CONFIG_CREATED.to_owned(),
        layer_digests: vec![layer_digest.clone()],
        component: WasmComponent {
            exports: input.exports.iter().cloned().collect(),
            imports: input.imports.iter().cloned().collect(),
        },
    });
    let config_digest = sha256(&config);

    // A file name: the last path component.
    let title = format!(
        "{}.wasm",
        input.name.rsplit('/').next().unwrap_or(input.name)
    );
    let manifest = compact(&ImageManifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.to_owned()),
        config: Descriptor::new(CONFIG_MEDIA_TYPE, &config_digest, config.len() as u64),
        layers: vec![
            Descriptor::new(LAYER_MEDIA_TYPE, &layer_digest, layer_size).annotated(TITLE, &title),
        ],
        annotations: std::iter::once((TITLE.to_owned(), input.name.to_owned()))
            .chain(customer.map(|c| (CUSTOMER.to_owned(), c.to_owned())))
            .collect(),
    });
    let manifest_digest = sha256(&manifest);

    Ok(Artifact {
        name: input.name.to_owned(),
        manifest,
        manifest_digest,
        config,
        config_digest,
        layer_digest,
        layer_size,
    })
}

/// The path of a blob in the layout: `blobs/sha256/<hex>`.
pub(crate) fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// The files of an OCI image layout (image-spec 1.1) holding `artifacts` and `packaged`, by path
/// relative to the layout root: `oci-layout`, `index.json` (one manifest descriptor per artifact
/// or packaged manifest, sorted by name, selected by its `ref.name` annotation = the name) and
/// `blobs/sha256/<hex>` for every manifest, config and layer, each once. The artifacts' layer
/// bytes come from `wasm_by_digest` (layer digest → component bytes) and are checked against the
/// digest and size, as is every blob a packaged manifest names against its descriptor.
///
/// Blob paths and the index's digests are computed from the bytes themselves, so the layout is
/// consistent even if an [`Artifact`]'s digest fields were edited by hand.
pub fn layout(
    artifacts: &[Artifact],
    wasm_by_digest: &BTreeMap<String, &[u8]>,
    packaged: &[Prepackaged<'_>],
) -> Result<BTreeMap<String, Vec<u8>>, OciError> {
    let mut names = std::collections::BTreeSet::new();
    let all_names = artifacts
        .iter()
        .map(|a| a.name.as_str())
        .chain(packaged.iter().map(|p| p.name));
    for name in all_names {
        if !valid_name(name) {
            return Err(OciError::InvalidName(name.to_owned()));
        }
        if !names.insert(name) {
            return Err(OciError::DuplicateName(name.to_owned()));
        }
    }

    let mut files = BTreeMap::new();
    let mut manifests = Vec::with_capacity(names.len());
    for a in artifacts {
        let wasm = wasm_by_digest
            .get(&a.layer_digest)
            .ok_or_else(|| OciError::MissingLayer {
                name: a.name.clone(),
                digest: a.layer_digest.clone(),
            })?;
        // Each distinct layer is hashed and stored once, however many artifacts share it.
        if let std::collections::btree_map::Entry::Vacant(layer) =
            files.entry(blob_path(&a.layer_digest))
        {
            let actual = sha256(wasm);
            if actual != a.layer_digest {
                return Err(OciError::LayerMismatch {
                    name: a.name.clone(),
                    digest: a.layer_digest.clone(),
                    actual,
                });
            }
            layer.insert(wasm.to_vec());
        }
        if wasm.len() as u64 != a.layer_size {
            return Err(OciError::LayerMismatch {
                name: a.name.clone(),
                digest: a.layer_digest.clone(),
                actual: sha256(wasm),
            });
        }
        files.insert(blob_path(&sha256(&a.config)), a.config.clone());
        let manifest = Descriptor::of(MANIFEST_MEDIA_TYPE, &a.manifest);
        files.insert(blob_path(&manifest.digest), a.manifest.clone());
        manifests.push(manifest.annotated(REF_NAME, &a.name));
    }
    for p in packaged {
        manifests.push(store(&mut files, p)?);
    }
    manifests.sort_by(|a, b| a.annotation(REF_NAME).cmp(&b.annotation(REF_NAME)));

    files.insert(
        "index.json".to_owned(),
        compact(&ImageIndex {
            schema_version: 2,
            media_type: Some(INDEX_MEDIA_TYPE.to_owned()),
            manifests,
        }),
    );
    files.insert(
        "oci-layout".to_owned(),
        compact(&ImageLayout {
            image_layout_version: "1.0.0".to_owned(),
        }),
    );
    Ok(files)
}

/// Stores the manifest `p` and every blob it names in `files` (paths relative to the layout
/// root), each checked against its descriptor; its index entry.
fn store(
    files: &mut BTreeMap<String, Vec<u8>>,
    p: &Prepackaged<'_>,
) -> Result<Descriptor, OciError> {
    let parsed: ImageManifest =
        serde_json::from_slice(p.manifest).map_err(|e| OciError::BadManifest {
            name: p.name.to_owned(),
            reason: e.to_string(),
        })?;
    for d in std::iter::once(&parsed.config).chain(&parsed.layers) {
        if d.digest.is_empty() {
            return Err(OciError::BadManifest {
                name: p.name.to_owned(),
                reason: "it names a blob without a digest".to_owned(),
            });
        }
        let blob = |state: String| OciError::Blob {
            name: p.name.to_owned(),
            digest: d.digest.clone(),
            state,
        };
        let bytes = p
            .blobs
            .get(&d.digest)
            .ok_or_else(|| blob("missing".into()))?;
        let actual = sha256(bytes);
        if actual != d.digest || bytes.len() as u64 != d.size {
            return Err(blob(format!(
                "{actual}, {} bytes, not the {} bytes its descriptor says",
                bytes.len(),
                d.size
            )));
        }
        files.insert(blob_path(&d.digest), bytes.clone());
    }
    let media_type = parsed.media_type.as_deref().unwrap_or(MANIFEST_MEDIA_TYPE);
    let descriptor = Descriptor::of(media_type, p.manifest);
    files.insert(blob_path(&descriptor.digest), p.manifest.to_vec());
    Ok(descriptor.annotated(REF_NAME, p.name))
}

/// Changes the layout held in `files` (paths under `root`, e.g. `oci/`, as [`layout`] makes
/// them): each of `add` replaces the entry of the same name (or is added), the entries named in
/// `remove` go, and so does every blob no entry of the index references any more (through its
/// manifest's config and layers). The index stays sorted by name.
pub fn update(
    files: &mut BTreeMap<String, Vec<u8>>,
    root: &str,
    add: &[Prepackaged<'_>],
    remove: &[&str],
) -> Result<(), OciError> {
    let index_path = format!("{root}index.json");
    let mut index: ImageIndex = files
        .get(&index_path)
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .ok_or_else(|| OciError::NoIndex(index_path.clone()))?;
    let mut blobs = BTreeMap::new();
    let mut added = Vec::with_capacity(add.len());
    for p in add {
        if !valid_name(p.name) {
            return Err(OciError::InvalidName(p.name.to_owned()));
        }
        added.push(store(&mut blobs, p)?);
    }
    index.manifests.retain(|e| {
        let name = e.annotation(REF_NAME).unwrap_or_default();
        !remove.contains(&name) && !add.iter().any(|p| p.name == name)
    });
    index.manifests.extend(added);
    index
        .manifests
        .sort_by(|a, b| a.annotation(REF_NAME).cmp(&b.annotation(REF_NAME)));
    files.extend(
        blobs
            .into_iter()
            .map(|(path, bytes)| (format!("{root}{path}"), bytes)),
    );

    // What the index still reaches: each entry's manifest, its config and its layers.
    let mut reached = std::collections::BTreeSet::new();
    for entry in &index.manifests {
        let path = format!("{root}{}", blob_path(&entry.digest));
        if let Some(manifest) = files
            .get(&path)
            .and_then(|b| serde_json::from_slice::<ImageManifest>(b).ok())
        {
            for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
                reached.insert(format!("{root}{}", blob_path(&d.digest)));
            }
        }
        reached.insert(path);
    }
    let blob_root = format!("{root}blobs/");
    files.retain(|path, _| !path.starts_with(&blob_root) || reached.contains(path));
    files.insert(index_path, compact(&index));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::bundle::{self, Bundle};

    /// A bundle of environment `env` whose one application's wadm file is `wadm`.
    fn bundle(env: &str, wadm: &[u8]) -> Bundle {
        bundle::sample(env, "r.example/etl", wadm)
    }

    fn prepackaged<'a>(name: &'a str, p: &'a bundle::Packaged) -> Prepackaged<'a> {
        Prepackaged {
            name,
            manifest: &p.manifest,
            blobs: &p.blobs,
        }
    }

    /// One artifact `name` of a tiny component, and the component by digest.
    fn artifact_and_wasm(name: &str) -> (Artifact, BTreeMap<String, &'static [u8]>) {
        let wasm: &'static [u8] = b"\0asm\x0d\0\x01\0";
        let a = artifact(&ArtifactInput {
            name,
            wasm,
            imports: &[],
            exports: &[],
        })
        .unwrap();
        let by_digest = BTreeMap::from([(a.layer_digest.clone(), wasm)]);
        (a, by_digest)
    }

    fn index_names(files: &BTreeMap<String, Vec<u8>>, root: &str) -> Vec<String> {
        let index: ImageIndex =
            serde_json::from_slice(&files[&format!("{root}index.json")]).unwrap();
        index
            .manifests
            .iter()
            .map(|m| m.annotation(REF_NAME).unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_step_s_artifact_names_its_customer() {
        let input = ArtifactInput {
            name: "p-parse",
            wasm: b"\0asm\x0d\0\x01\0",
            imports: &[],
            exports: &[],
        };
        let layer = sha256(input.wasm);
        let customer = format!("sha256:{}", "c".repeat(64));
        let step = artifact_of_step(&input, layer.clone(), Some(&customer)).unwrap();
        let manifest: ImageManifest = serde_json::from_slice(&step.manifest).unwrap();
        assert_eq!(manifest.annotations.get(CUSTOMER), Some(&customer));
        assert_eq!(manifest.annotations[TITLE], "p-parse");
        // A sink's (no customer) is the artifact as it always was.
        let sink = artifact_of_step(&input, layer, None).unwrap();
        assert_eq!(sink, artifact(&input).unwrap());
        assert_ne!(sink.manifest_digest, step.manifest_digest);
        assert_eq!(sink.config, step.config);
    }

    #[test]
    fn packaged_manifests_join_the_index_sorted_with_their_blobs() {
        let (a, wasm) = artifact_and_wasm("z-step");
        let dev = bundle("dev", b"dev").package("bundles/p/dev");
        let prod = bundle("prod", b"prod").package("bundles/p/prod");
        let packaged = [
            prepackaged("bundles/p/prod", &prod),
            prepackaged("bundles/p/dev", &dev),
        ];
        let files = layout(std::slice::from_ref(&a), &wasm, &packaged).unwrap();
        assert_eq!(
            index_names(&files, ""),
            ["bundles/p/dev", "bundles/p/prod", "z-step"]
        );
        for p in [&dev, &prod] {
            assert_eq!(files[&blob_path(&p.manifest_digest)], p.manifest);
            for (digest, bytes) in &p.blobs {
                assert_eq!(&files[&blob_path(digest)], bytes);
            }
        }
        // Deterministic, whatever order the manifests come in.
        let reversed = [packaged[1], packaged[0]];
        assert_eq!(
            layout(std::slice::from_ref(&a), &wasm, &reversed).unwrap(),
            files
        );
    }

    #[test]
    fn packaged_manifests_are_checked() {
        let (a, wasm) = artifact_and_wasm("bundles/p/dev");
        let dev = bundle("dev", b"dev").package("bundles/p/dev");
        let one = [prepackaged("bundles/p/dev", &dev)];
        assert_eq!(
            layout(&[a], &wasm, &one),
            Err(OciError::DuplicateName("bundles/p/dev".to_owned()))
        );
        let bad_name = [prepackaged("Bundles/p/dev", &dev)];
        assert_eq!(
            layout(&[], &wasm, &bad_name),
            Err(OciError::InvalidName("Bundles/p/dev".to_owned()))
        );
        let mut missing = dev.clone();
        let layer = missing
            .blobs
            .iter()
            .find(|(_, b)| b.as_slice() == b"dev")
            .map(|(d, _)| d.clone())
            .unwrap();
        missing.blobs.remove(&layer);
        let e = layout(&[], &wasm, &[prepackaged("bundles/p/dev", &missing)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("blob {layer} of `bundles/p/dev` is missing")
        );
        let mut tampered = dev.clone();
        tampered.blobs.insert(layer.clone(), b"evil".to_vec());
        let e = layout(&[], &wasm, &[prepackaged("bundles/p/dev", &tampered)]).unwrap_err();
        assert!(
            matches!(&e, OciError::Blob { digest, .. } if *digest == layer),
            "{e}"
        );
        for manifest in [&b"not json"[..], b"{}"] {
            let bad = bundle::Packaged {
                manifest: manifest.to_vec(),
                ..dev.clone()
            };
            let e = layout(&[], &wasm, &[prepackaged("bundles/p/dev", &bad)]).unwrap_err();
            assert!(matches!(e, OciError::BadManifest { .. }), "{e}");
        }
    }

    #[test]
    fn update_replaces_an_entry_and_drops_what_nothing_references() {
        let (a, wasm) = artifact_and_wasm("z-step");
        let old = bundle("dev", b"old").package("bundles/p/dev");
        let other = bundle("prod", b"old").package("bundles/p/prod");
        let mut files: BTreeMap<String, Vec<u8>> = layout(
            std::slice::from_ref(&a),
            &wasm,
            &[
                prepackaged("bundles/p/dev", &old),
                prepackaged("bundles/p/prod", &other),
            ],
        )
        .unwrap()
        .into_iter()
        .map(|(path, bytes)| (format!("oci/{path}"), bytes))
        .collect();
        files.insert("plan.json".to_owned(), b"{}".to_vec());
        let new = bundle("dev", b"new").package("bundles/p/dev");
        update(
            &mut files,
            "oci/",
            &[prepackaged("bundles/p/dev", &new)],
            &["z-step"],
        )
        .unwrap();
        assert_eq!(
            index_names(&files, "oci/"),
            ["bundles/p/dev", "bundles/p/prod"]
        );
        let blob = |digest: &str| format!("oci/{}", blob_path(digest));
        assert!(files.contains_key(&blob(&new.manifest_digest)));
        assert!(!files.contains_key(&blob(&old.manifest_digest)));
        assert!(!files.contains_key(&blob(&a.manifest_digest)));
        assert!(!files.contains_key(&blob(&a.layer_digest)));
        // The `old` layer is prod's too: kept.
        let shared = sha256(b"old");
        assert!(files.contains_key(&blob(&shared)));
        assert!(files.contains_key("plan.json"));
        // The result is what a layout of the same manifests is.
        let fresh: BTreeMap<String, Vec<u8>> = layout(
            &[],
            &wasm,
            &[
                prepackaged("bundles/p/dev", &new),
                prepackaged("bundles/p/prod", &other),
            ],
        )
        .unwrap()
        .into_iter()
        .map(|(path, bytes)| (format!("oci/{path}"), bytes))
        .collect();
        files.remove("plan.json");
        assert_eq!(files, fresh);
        assert_eq!(
            update(&mut BTreeMap::new(), "oci/", &[], &[]),
            Err(OciError::NoIndex("oci/index.json".to_owned()))
        );
    }

    #[test]
    fn names() {
        for ok in [
            "a",
            "sensor-ingest-parse",
            "a.b_c--d",
            "v1",
            "0",
            "v2/sensor-ingest-parse",
            "a/b/c",
        ] {
            assert!(valid_name(ok), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "", "A", "-a", "a-", "a---b", "a__b", "a:b", "a b", "é", &long, "/a", "a/", "a//b",
            "a/-b",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
