//! The OCI documents etl writes and reads, typed: content descriptors, image manifests, image
//! indexes, the Wasm artifact config, the empty image config of a cosign signature and the
//! `oci-layout` file. Written with [`crate::util::json::compact`], so the same document always
//! has the same bytes, hence the same digest.
//!
//! Read leniently, as registries and other tools write them: unknown fields are ignored and
//! missing ones read as empty, so a document that lacks something is refused by the check that
//! needs it, with that check's own words (a descriptor without a digest is "not a sha256
//! digest").

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A content descriptor: a blob (or manifest) by media type, digest and size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is.
    pub media_type: String,
    /// `sha256:<hex>` of its bytes.
    pub digest: String,
    /// Its length in bytes.
    pub size: u64,
    /// Annotations (`org.opencontainers.image.title`, `…ref.name`, a cosign signature).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor without annotations.
    pub fn new(media_type: &str, digest: &str, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_owned(),
            digest: digest.to_owned(),
            size,
            annotations: BTreeMap::new(),
        }
    }

    /// The descriptor of `bytes` as a `media_type`, without annotations.
    pub fn of(media_type: &str, bytes: &[u8]) -> Self {
        Self::new(
            media_type,
            &crate::util::digest::sha256(bytes),
            bytes.len() as u64,
        )
    }

    /// The same descriptor with the annotation `key` = `value`.
    pub fn annotated(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The value of annotation `key`.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

/// An image manifest (`application/vnd.oci.image.manifest.v1+json`, or Docker's v2 one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type, when it says it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, in order.
    pub layers: Vec<Descriptor>,
    /// Annotations of the manifest.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index (`index.json` of a layout): a list of manifests. Unlike the other documents,
/// its list of manifests is required: an index without one is no index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    #[serde(default)]
    pub schema_version: u32,
    /// The index's own media type, when it says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests, each selected by its `org.opencontainers.image.ref.name` annotation.
    pub manifests: Vec<Descriptor>,
}

/// The config blob of a CNCF Wasm OCI artifact (`application/vnd.wasm.config.v0+json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WasmConfig {
    /// Always `wasm`.
    pub architecture: String,
    /// Always `wasip2`.
    pub os: String,
    /// RFC 3339 time.
    pub created: String,
    /// The digest of each layer.
    pub layer_digests: Vec<String>,
    /// The component's world, as its interfaces.
    pub component: WasmComponent,
}

/// What a Wasm artifact's component imports and exports, each sorted and once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WasmComponent {
    /// Exported interfaces (`ns:pkg/iface@ver`).
    pub exports: BTreeSet<String>,
    /// Imported interfaces.
    pub imports: BTreeSet<String>,
}

/// An image config (`application/vnd.oci.image.config.v1+json`) with no runtime configuration:
/// what a cosign signature manifest points to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    /// CPU architecture; empty for a signature.
    pub architecture: String,
    /// The runtime configuration; empty.
    pub config: BTreeMap<String, String>,
    /// RFC 3339 time.
    pub created: String,
    /// One entry per layer.
    pub history: Vec<History>,
    /// Operating system; empty for a signature.
    pub os: String,
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
}

/// One `history` entry of an [`ImageConfig`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct History {
    /// RFC 3339 time.
    pub created: String,
}

/// The `rootfs` of an [`ImageConfig`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RootFs {
    /// The digest of each layer, uncompressed.
    pub diff_ids: Vec<String>,
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The `oci-layout` file at the root of an image layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageLayout {
    /// Always `1.0.0`.
    pub image_layout_version: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::layout::{ArtifactInput, artifact, layout};
    use crate::oci::sign::{SigningKey, signature};
    use crate::util::json::compact;

    /// `bytes` read as a `T` and written again.
    fn rewritten<T: Serialize + for<'de> Deserialize<'de>>(bytes: &[u8]) -> Vec<u8> {
        compact(&serde_json::from_slice::<T>(bytes).unwrap())
    }

    #[test]
    fn documents_read_back_write_the_same_bytes() {
        let imports = ["wasi:io/streams@0.2.0".to_owned(), "a:b/c".to_owned()];
        let a = artifact(&ArtifactInput {
            name: "p-step",
            wasm: b"\0asm\x0d\0\x01\0",
            imports: &imports,
            exports: &[],
        })
        .unwrap();
        assert_eq!(rewritten::<ImageManifest>(&a.manifest), a.manifest);
        assert_eq!(rewritten::<WasmConfig>(&a.config), a.config);
        let wasm = std::collections::BTreeMap::from([(
            a.layer_digest.clone(),
            b"\0asm\x0d\0\x01\0".as_slice(),
        )]);
        let files = layout(&[a], &wasm, &[]).unwrap();
        assert_eq!(
            rewritten::<ImageIndex>(&files["index.json"]),
            files["index.json"]
        );
        assert_eq!(
            rewritten::<ImageLayout>(&files["oci-layout"]),
            files["oci-layout"]
        );
        let key = SigningKey::from_pem(&crate::oci::sign::keygen(None).unwrap().private_pem, None)
            .unwrap();
        let s = signature(
            &key,
            "registry.example/etl/p-step",
            &format!("sha256:{}", "0".repeat(64)),
        );
        assert_eq!(rewritten::<ImageManifest>(&s.manifest), s.manifest);
        assert_eq!(rewritten::<ImageConfig>(&s.config), s.config);
    }

    #[test]
    fn missing_fields_read_as_empty_but_an_index_needs_its_manifests() {
        let m: ImageManifest = serde_json::from_slice(br#"{"layers":[{"size":3}]}"#).unwrap();
        assert_eq!(m.config, Descriptor::default());
        assert_eq!((m.layers[0].digest.as_str(), m.layers[0].size), ("", 3));
        assert!(serde_json::from_slice::<ImageIndex>(br#"{"schemaVersion":2}"#).is_err());
    }
}
