//! Pulling customer components: `oci://HOST[:PORT]/REPOSITORY@sha256:<manifest digest>` → the
//! verified bytes of the component, kept in the [`Cache`] by their digest.
//!
//! The artifact is a CNCF Wasm OCI artifact (what [`crate::oci::layout::artifact`] makes): an image
//! manifest with exactly one layer of a media type of [`WASM_LAYER_MEDIA_TYPES`]. That layer's digest
//! must be the step's `digest:` and its size at most the limit, both checked before it is
//! downloaded; the manifest must hash to the reference's digest and the layer to `digest:`. A
//! cached copy whose bytes hash to `digest:` is used without any network; a pulled one is stored
//! only once verified, so a failed pull leaves the cache as it was.
//!
//! Transport and retries are [`crate::oci::registry`]'s: plain HTTP for loopback hosts and hosts
//! listed in [`INSECURE_ENV`], credentials from the docker config (`auths.<host>`; a credential
//! helper is not run, so such hosts are pulled anonymously).

use crate::oci::layout::{LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::oci::manifest::{Descriptor, ImageManifest};
use crate::oci::registry::{self, Retry, Session};
use crate::store::{Cache, ResolveError};

/// Environment variable: comma-separated hosts (`host` or `host:port`) pulled from over plain
/// HTTP besides loopback ones, as wasmCloud's `WASMCLOUD_OCI_ALLOWED_INSECURE`.
pub const INSECURE_ENV: &str = "ETL_OCI_ALLOWED_INSECURE";

/// Layer media types of a Wasm component: the CNCF one, and the older ones of wasm-to-oci
/// (also Spin's) and of wasmCloud 0.x.
pub const WASM_LAYER_MEDIA_TYPES: [&str; 3] = [
    LAYER_MEDIA_TYPE,
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.module.wasm.content.layer.v1+wasm",
];

/// The hosts named in [`INSECURE_ENV`].
pub fn insecure_hosts() -> Vec<String> {
    std::env::var(INSECURE_ENV)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The component `reference` names, whose bytes must hash to `expected` and be at most `limit`
/// long: from `cache` when it holds them, else pulled (and then stored there).
pub fn pull(
    reference: &str,
    expected: &str,
    limit: u64,
    cache: Option<&Cache>,
) -> Result<Vec<u8>, ResolveError> {
    if let Some(bytes) = cache.and_then(|c| c.pulled(expected)) {
        return Ok(bytes);
    }
    let unavailable = |reason: String| ResolveError::Unavailable {
        reference: reference.to_owned(),
        reason,
    };
    let registry_error = |source| ResolveError::Registry {
        reference: reference.to_owned(),
        source,
    };
    let (host, repository, digest) = split(reference).ok_or_else(|| {
        unavailable("expected `oci://HOST[:PORT]/REPOSITORY@sha256:<64 hex>`".to_owned())
    })?;
    let (credentials, _helper) = registry::docker_credentials(host).map_err(registry_error)?;
    let session = Session::new(host, &insecure_hosts(), &credentials, Retry::default());

    let manifest = registry::block_on(session.manifest(repository, digest, &[MANIFEST_MEDIA_TYPE]))
        .map_err(registry_error)?
        .ok_or_else(|| {
            unavailable(format!(
                "registry `{host}` has no manifest with this digest in repository `{repository}`"
            ))
        })?;
    let layer = wasm_layer(&manifest).map_err(|reason| {
        unavailable(format!(
            "the manifest is not a Wasm OCI artifact (one layer of `{LAYER_MEDIA_TYPE}`): {reason}"
        ))
    })?;
    if layer.digest != expected {
        return Err(ResolveError::DigestMismatch {
            reference: reference.to_owned(),
            expected: expected.to_owned(),
            actual: layer.digest,
            layer: true,
        });
    }
    if layer.size > limit {
        return Err(ResolveError::TooLarge {
            reference: reference.to_owned(),
            size: layer.size,
        });
    }
    // `blob` refuses bytes that do not hash to the digest asked for: `expected`.
    let bytes =
        registry::block_on(session.blob(repository, expected, limit)).map_err(registry_error)?;
    if let Some(cache) = cache {
        // A cache that cannot be written only costs a pull next time.
        let _ = cache.store_pulled(expected, &bytes);
    }
    Ok(bytes)
}

/// `oci://HOST[:PORT]/REPOSITORY@sha256:<hex>` → (host, repository, manifest digest).
fn split(reference: &str) -> Option<(&str, &str, &str)> {
    let (name, digest) = reference.strip_prefix("oci://")?.split_once('@')?;
    let (host, repository) = name.split_once('/')?;
    let valid =
        !host.is_empty() && !repository.is_empty() && crate::util::digest::hex(digest).is_some();
    valid.then_some((host, repository, digest))
}

/// The one Wasm layer of an artifact's manifest.
fn wasm_layer(manifest: &[u8]) -> Result<Descriptor, String> {
    let mut manifest: ImageManifest =
        serde_json::from_slice(manifest).map_err(|e| e.to_string())?;
    match manifest.layers.len() {
        1 => {
            let layer = manifest.layers.remove(0);
            if WASM_LAYER_MEDIA_TYPES.contains(&layer.media_type.as_str()) {
                Ok(layer)
            } else {
                Err(format!("its layer is `{}`", layer.media_type))
            }
        }
        n => Err(format!("it has {n} layers")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            split(&format!("oci://127.0.0.1:5000/customers/parse@{digest}")),
            Some(("127.0.0.1:5000", "customers/parse", digest.as_str()))
        );
        for bad in [
            format!("127.0.0.1:5000/parse@{digest}"),
            format!("oci://127.0.0.1:5000@{digest}"),
            "oci://h/parse@sha256:abc".to_owned(),
            "oci://h/parse:v1".to_owned(),
        ] {
            assert_eq!(split(&bad), None, "{bad}");
        }
    }

    #[test]
    fn only_one_wasm_layer_is_a_component() {
        let layer = |media_type: &str| {
            format!(r#"{{"mediaType":"{media_type}","digest":"sha256:x","size":8}}"#)
        };
        let manifest = |layers: &[String]| format!(r#"{{"layers":[{}]}}"#, layers.join(","));
        for media_type in WASM_LAYER_MEDIA_TYPES {
            let found = wasm_layer(manifest(&[layer(media_type)]).as_bytes()).unwrap();
            assert_eq!((found.digest.as_str(), found.size), ("sha256:x", 8));
        }
        let two = manifest(&[layer(LAYER_MEDIA_TYPE), layer(LAYER_MEDIA_TYPE)]);
        assert_eq!(wasm_layer(two.as_bytes()).unwrap_err(), "it has 2 layers");
        assert_eq!(
            wasm_layer(manifest(&[]).as_bytes()).unwrap_err(),
            "it has 0 layers"
        );
        let tar = manifest(&[layer("application/vnd.oci.image.layer.v1.tar")]);
        assert!(wasm_layer(tar.as_bytes()).unwrap_err().contains("v1.tar"));
        assert!(wasm_layer(b"not json").is_err());
    }
}
