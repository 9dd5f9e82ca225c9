//! Stage `layout`: a composed component → a CNCF "Wasm OCI Artifact", and a set of artifacts →
//! the files of an OCI image layout (`dist/oci/`). Computed in memory, byte-for-byte
//! deterministic: sorted keys and no insignificant whitespace in every JSON blob, sorted index.
//! Nothing is pushed or signed here.
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
        annotations: BTreeMap::from([(TITLE.to_owned(), input.name.to_owned())]),
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

/// The files of an OCI image layout (image-spec 1.1) holding `artifacts`, by path relative to the
/// layout root: `oci-layout`, `index.json` (one manifest descriptor per artifact, sorted by
/// name, selected by its `ref.name` annotation = the artifact's name) and `blobs/sha256/<hex>`
/// for every manifest, config and layer, each once. The layer bytes come from `wasm_by_digest`
/// (layer digest → component bytes) and are checked against the digest and size.
///
/// Blob paths and the index's digests are computed from the bytes themselves, so the layout is
/// consistent even if an [`Artifact`]'s digest fields were edited by hand.
pub fn layout(
    artifacts: &[Artifact],
    wasm_by_digest: &BTreeMap<String, &[u8]>,
) -> Result<BTreeMap<String, Vec<u8>>, OciError> {
    let mut by_name: BTreeMap<&str, &Artifact> = BTreeMap::new();
    for a in artifacts {
        if !valid_name(&a.name) {
            return Err(OciError::InvalidName(a.name.clone()));
        }
        if by_name.insert(&a.name, a).is_some() {
            return Err(OciError::DuplicateName(a.name.clone()));
        }
    }

    let mut files = BTreeMap::new();
    let mut manifests = Vec::with_capacity(by_name.len());
    let manifest_digests: Vec<String> = by_name.values().map(|a| sha256(&a.manifest)).collect();
    for (a, manifest_digest) in by_name.values().zip(&manifest_digests) {
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
        files.insert(blob_path(manifest_digest), a.manifest.clone());
        manifests.push(
            Descriptor::new(
                MANIFEST_MEDIA_TYPE,
                manifest_digest,
                a.manifest.len() as u64,
            )
            .annotated(REF_NAME, &a.name),
        );
    }

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

#[cfg(test)]
mod tests {
    use super::valid_name;

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
