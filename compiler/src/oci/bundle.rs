//! Deployment bundles: one OCI artifact per environment holding that environment's manifests
//! (wadm applications for wasmCloud 1.x, `WorkloadDeployment`s for v2) and the facts a controller
//! needs to apply them ([`Facts`]). Moving the environment's tag to a bundle is the whole
//! deployment act; `etl-controller` polls that tag, verifies the bundle's cosign signature and
//! applies it (`docs/controller.md`).
//!
//! A bundle is an image manifest ([`MANIFEST_MEDIA_TYPE`]) whose config blob is the facts
//! ([`CONFIG_MEDIA_TYPE`], canonical JSON) and whose layers are the manifest files, one layer per
//! file, each titled with its path in the bundle (`wadm/<pipeline>.yaml`,
//! `k8s/<pipeline>.yaml`, and `jetstream/<pipeline>.json` when the environment's delivery is at
//! least once), in path order. Its bytes depend only on the facts and the files:
//! no time, no host. Nothing here knows about pipelines beyond the facts' shape.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::oci::layout::{MANIFEST_MEDIA_TYPE, TITLE};
use crate::oci::manifest::{Descriptor, ImageManifest};
use crate::util::digest::sha256;
use crate::util::json::compact;

/// Media type of a bundle's config blob: the [`Facts`].
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.etl.bundle.config.v1+json";
/// Media type of a wadm application manifest in a bundle (`wadm/…`).
pub const WADM_MEDIA_TYPE: &str = "application/vnd.etl.bundle.wadm.v1+yaml";
/// Media type of a `WorkloadDeployment` manifest stream in a bundle (`k8s/…`).
pub const K8S_MEDIA_TYPE: &str = "application/vnd.etl.bundle.k8s.v1+yaml";
/// Media type of a pipeline's JetStream stream and consumers in a bundle
/// (`jetstream/<pipeline>.json`, present when the environment's delivery is at least once).
pub const JETSTREAM_MEDIA_TYPE: &str = "application/vnd.etl.bundle.jetstream.v1+json";
/// Where a pipeline's JetStream definitions are in a bundle.
pub const JETSTREAM_DIR: &str = "jetstream/";
/// `apiVersion` of the facts.
pub const API_VERSION: &str = "etl/v1alpha1";
/// `kind` of the facts.
pub const KIND: &str = "Bundle";
/// Largest file or config blob a reader accepts, in bytes.
pub const MAX_BLOB_BYTES: u64 = 4 * 1024 * 1024;

/// Where every bundle's artifact name starts: no pipeline artifact's name can (a pipeline name
/// holds no `/`).
pub const REPOSITORY_PREFIX: &str = "bundles/";

/// The artifact name of the bundle of `environment` of `project`: `bundles/<project>/<env>`, its
/// `ref.name` in `dist/oci/` and its repository under the project's registry.
pub fn name(project: &str, environment: &str) -> String {
    format!("{REPOSITORY_PREFIX}{project}/{environment}")
}

/// What a controller needs to know about a bundle besides its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// The project (`etl.yaml`'s `metadata.name`).
    pub project: String,
    /// The environment the manifests are for.
    pub environment: String,
    /// The registry and prefix the artifacts live under (`plan.json`'s `registry`).
    pub registry: String,
    /// The environment's wasmCloud 1.x lattice.
    pub lattice: String,
    /// The pipeline repo's commit, when the compile knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Where the pipeline repo lives, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Every application, in the order to deploy them: shared ones (the environment's HTTP
    /// listener) first, then the pipelines by name.
    pub applications: Vec<ApplicationFacts>,
    /// Every pipeline's graph, by name: what the controller draws, counts and replays into.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pipelines: Vec<PipelineFacts>,
}

/// One pipeline's graph, as the controller needs it (`docs/reporting.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineFacts {
    /// The pipeline.
    pub name: String,
    /// Its source, then its steps and sinks in spec order.
    pub nodes: Vec<NodeFacts>,
}

/// A source, step or sink of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFacts {
    /// Its name.
    pub name: String,
    /// Source, step or sink.
    pub kind: NodeKind,
    /// The connector of a source or sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// The nodes it reads (`from`), in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
    /// The subjects it consumes, with the node each one carries records of: `[subject, node]`
    /// (`http` for an HTTP source).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<(String, String)>,
    /// The subject it reports to (steps and sinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// Its dead-letter subject (steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<String>,
    /// The subject its dead letters are replayed to (steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
    /// The customer component's digest (steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// The capabilities granted to the customer beyond the contract, as `interface` or
    /// `interface → host, host` lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
}

/// A node's kind in a pipeline's graph (also `etl::ops::telemetry::NodeKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// The pipeline's source.
    Source,
    /// A step (a customer transform).
    Step,
    /// A sink.
    Sink,
}

/// One application of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationFacts {
    /// The wadm application's name: the pipeline's, or the shared application's.
    pub name: String,
    /// The pipeline it deploys; absent for a shared application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// The application's version (`sha-<12 hex>`, the wadm manifest's `version`).
    pub version: String,
    /// Whether other applications use its providers (wadm's `experimental.wasmcloud.dev/shared`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    /// Path of its wadm manifest in the bundle.
    pub wadm: String,
    /// Path of its `WorkloadDeployment`s in the bundle; absent for a shared application (v2
    /// hosts need no listener application).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s: Option<String>,
    /// The artifacts it runs, steps and sinks in spec order, wasmCloud 1.x first.
    #[serde(default)]
    pub artifacts: Vec<ArtifactFacts>,
}

/// One artifact an application runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactFacts {
    /// The step or sink.
    pub unit: String,
    /// `v1` (wasmCloud 1.x) or `v2`.
    pub generation: String,
    /// `<registry>/<repository>@<manifest digest>`, as the manifests pin it.
    pub image: String,
    /// The composed component's digest (the artifact's one layer).
    pub component_digest: String,
}

/// A bundle: its facts and its files by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The facts (the config blob).
    pub facts: Facts,
    /// The manifest files by path in the bundle (`wadm/…`, `k8s/…`, `jetstream/…`).
    pub files: BTreeMap<String, Vec<u8>>,
}

/// A bundle packaged: the exact bytes of its manifest and of every blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packaged {
    /// The image manifest, canonical JSON.
    pub manifest: Vec<u8>,
    /// `sha256:` of [`Self::manifest`]: the bundle's identity.
    pub manifest_digest: String,
    /// The config blob and every layer, by digest.
    pub blobs: BTreeMap<String, Vec<u8>>,
}

/// Why bytes are not a bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The manifest is not an image manifest.
    #[error("the manifest is not an OCI image manifest: {0}")]
    Manifest(String),
    /// The config is not a bundle's.
    #[error("not an etl bundle: its config is `{0}`, not `{CONFIG_MEDIA_TYPE}`")]
    NotABundle(String),
    /// The facts do not parse, or are not version [`API_VERSION`] [`KIND`].
    #[error("the bundle's facts are unreadable: {0}")]
    Facts(String),
    /// A blob's bytes are not the ones its descriptor names.
    #[error("blob {digest} ({what}) hashes to {actual}")]
    Corrupt {
        /// What the blob is.
        what: String,
        /// The digest named.
        digest: String,
        /// The digest of the bytes.
        actual: String,
    },
    /// A layer's title is missing, not a relative path of the bundle, or used twice.
    #[error(
        "layer {digest} has no usable title (`{title}`): expected a unique path such as `wadm/<name>.yaml`"
    )]
    Title {
        /// The layer.
        digest: String,
        /// Its title, or empty.
        title: String,
    },
    /// The facts name a file the bundle lacks.
    #[error("the facts name `{0}`, which the bundle has no layer for")]
    MissingFile(String),
    /// The bundle has a file the facts do not name.
    #[error("the bundle has `{0}`, which its facts do not name")]
    UnnamedFile(String),
}

impl Bundle {
    /// Packages the bundle: the config blob, one layer per file (in path order, media type by
    /// its directory), the manifest titled `name`.
    pub fn package(&self, name: &str) -> Packaged {
        let config = compact(&self.facts);
        let mut blobs = BTreeMap::new();
        let mut layers = Vec::with_capacity(self.files.len());
        for (path, bytes) in &self.files {
            let media_type = if path.starts_with("k8s/") {
                K8S_MEDIA_TYPE
            } else if path.starts_with(JETSTREAM_DIR) {
                JETSTREAM_MEDIA_TYPE
            } else {
                WADM_MEDIA_TYPE
            };
            let descriptor = Descriptor::of(media_type, bytes).annotated(TITLE, path);
            blobs.insert(descriptor.digest.clone(), bytes.clone());
            layers.push(descriptor);
        }
        let config_descriptor = Descriptor::of(CONFIG_MEDIA_TYPE, &config);
        blobs.insert(config_descriptor.digest.clone(), config);
        let manifest = compact(&ImageManifest {
            schema_version: 2,
            media_type: Some(MANIFEST_MEDIA_TYPE.to_owned()),
            config: config_descriptor,
            layers,
            annotations: BTreeMap::from([(TITLE.to_owned(), name.to_owned())]),
        });
        Packaged {
            manifest_digest: sha256(&manifest),
            manifest,
            blobs,
        }
    }

    /// Reads a bundle from its manifest's bytes, fetching each blob with `blob` (config first,
    /// then the layers in order) and checking every blob against its digest and the files
    /// against the facts.
    pub fn read<E>(
        manifest: &[u8],
        mut blob: impl FnMut(&Descriptor) -> Result<Vec<u8>, E>,
    ) -> Result<Result<Bundle, BundleError>, E> {
        let parsed: ImageManifest = match serde_json::from_slice(manifest) {
            Ok(m) => m,
            Err(e) => return Ok(Err(BundleError::Manifest(e.to_string()))),
        };
        if parsed.config.media_type != CONFIG_MEDIA_TYPE {
            return Ok(Err(BundleError::NotABundle(parsed.config.media_type)));
        }
        let config = blob(&parsed.config)?;
        if let Err(e) = check(&parsed.config, &config, "config") {
            return Ok(Err(e));
        }
        let facts: Facts = match serde_json::from_slice(&config) {
            Ok(f) => f,
            Err(e) => return Ok(Err(BundleError::Facts(e.to_string()))),
        };
        if facts.api_version != API_VERSION || facts.kind != KIND {
            return Ok(Err(BundleError::Facts(format!(
                "`{} {}`, expected `{API_VERSION} {KIND}`",
                facts.api_version, facts.kind
            ))));
        }
        let mut files = BTreeMap::new();
        for layer in &parsed.layers {
            let title = layer.annotation(TITLE).unwrap_or_default();
            if !relative_path(title) || files.contains_key(title) {
                return Ok(Err(BundleError::Title {
                    digest: layer.digest.clone(),
                    title: title.to_owned(),
                }));
            }
            let bytes = blob(layer)?;
            if let Err(e) = check(layer, &bytes, title) {
                return Ok(Err(e));
            }
            files.insert(title.to_owned(), bytes);
        }
        let named: Vec<&str> = facts
            .applications
            .iter()
            .flat_map(|a| std::iter::once(a.wadm.as_str()).chain(a.k8s.as_deref()))
            .collect();
        if let Some(missing) = named.iter().find(|n| !files.contains_key(**n)) {
            return Ok(Err(BundleError::MissingFile((*missing).to_owned())));
        }
        // A pipeline's JetStream definitions, when it has them, are at a path its name gives.
        let jetstream: Vec<String> = facts
            .applications
            .iter()
            .filter_map(|a| Some(jetstream_path(a.pipeline.as_deref()?)))
            .collect();
        if let Some(extra) = files
            .keys()
            .find(|f| !named.contains(&f.as_str()) && !jetstream.contains(f))
        {
            return Ok(Err(BundleError::UnnamedFile(extra.clone())));
        }
        Ok(Ok(Bundle { facts, files }))
    }
}

/// Where the JetStream stream and consumers of `pipeline` are in a bundle, when its
/// environment's delivery is at least once: `jetstream/<pipeline>.json`.
pub fn jetstream_path(pipeline: &str) -> String {
    format!("{JETSTREAM_DIR}{pipeline}.json")
}

/// Whether `bytes` are the blob `descriptor` names.
fn check(descriptor: &Descriptor, bytes: &[u8], what: &str) -> Result<(), BundleError> {
    let actual = sha256(bytes);
    if actual != descriptor.digest || bytes.len() as u64 != descriptor.size {
        return Err(BundleError::Corrupt {
            what: what.to_owned(),
            digest: descriptor.digest.clone(),
            actual,
        });
    }
    Ok(())
}

/// A path inside a bundle: `/`-separated, relative, no empty, `.` or `..` component.
fn relative_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'))
}

/// A bundle of one application `a` for tests: environment `environment`, registry `registry`,
/// its wadm file `wadm` (and no `k8s/` file).
#[cfg(test)]
pub(crate) fn sample(environment: &str, registry: &str, wadm: &[u8]) -> Bundle {
    Bundle {
        facts: Facts {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            project: "p".to_owned(),
            environment: environment.to_owned(),
            registry: registry.to_owned(),
            lattice: "l".to_owned(),
            revision: None,
            source: None,
            applications: vec![ApplicationFacts {
                name: "a".to_owned(),
                pipeline: Some("a".to_owned()),
                version: "sha-000000000000".to_owned(),
                shared: false,
                wadm: "wadm/a.yaml".to_owned(),
                k8s: None,
                artifacts: vec![],
            }],
            pipelines: Vec::new(),
        },
        files: BTreeMap::from([("wadm/a.yaml".to_owned(), wadm.to_vec())]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> Bundle {
        let mut b = sample("dev", "r.example/etl", b"wadm");
        b.facts.applications[0].k8s = Some("k8s/a.yaml".to_owned());
        b.files.insert("k8s/a.yaml".to_owned(), b"k8s".to_vec());
        b
    }

    fn read(p: &Packaged) -> Result<Bundle, BundleError> {
        Bundle::read(&p.manifest, |d| {
            Ok::<_, ()>(p.blobs.get(&d.digest).cloned().unwrap_or_default())
        })
        .unwrap()
    }

    #[test]
    fn round_trip_and_determinism() {
        let b = bundle();
        let p = b.package("bundles/p/dev");
        assert_eq!(p, b.package("bundles/p/dev"));
        assert_eq!(read(&p).unwrap(), b);
    }

    #[test]
    fn refuses_tampering_and_strays() {
        let b = bundle();
        let mut p = b.package("x");
        let layer = p
            .blobs
            .keys()
            .find(|d| p.blobs[*d] == b"wadm")
            .unwrap()
            .clone();
        p.blobs.insert(layer, b"evil".to_vec());
        assert!(matches!(read(&p), Err(BundleError::Corrupt { .. })));

        let mut extra = bundle();
        extra.files.insert("wadm/b.yaml".to_owned(), b"b".to_vec());
        assert_eq!(
            read(&extra.package("x")),
            Err(BundleError::UnnamedFile("wadm/b.yaml".to_owned()))
        );
        let mut missing = bundle();
        missing.files.remove("k8s/a.yaml");
        assert_eq!(
            read(&missing.package("x")),
            Err(BundleError::MissingFile("k8s/a.yaml".to_owned()))
        );
        let mut escaping = bundle();
        escaping.files.insert("../a".to_owned(), b"b".to_vec());
        assert!(matches!(
            read(&escaping.package("x")),
            Err(BundleError::Title { .. })
        ));
    }
}
