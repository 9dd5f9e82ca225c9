//! Deployment bundles for the tests: the recorded wadm manifests (`tests/fixtures/wadm/`, the
//! dev manifests of examples/iot-sensors as etl emitted them) with their facts, packaged as
//! `etl push` packages them, pushed to a registry and signed as etl signs.

use std::collections::BTreeMap;

use etl::oci::bundle::{API_VERSION, ApplicationFacts, ArtifactFacts, Bundle, Facts, KIND};
use etl::oci::layout::MANIFEST_MEDIA_TYPE;
use etl::oci::registry::{Credentials, Retry, Session};
use etl::oci::sign::{self, SigningKey};

pub const PROJECT: &str = "iot-sensors";
pub const LATTICE: &str = "acme-iot-dev";
pub const LISTENER: &str = "iot-sensors-http-listener";
pub const PIPELINE: &str = "sensor-ingest";
/// The versions of the recorded manifests.
pub const LISTENER_V: &str = "sha-e075533a862a";
pub const PIPELINE_V: &str = "sha-2ada642ee5de";
/// The repository of dev's bundle.
pub const REPOSITORY: &str = "etl/bundles/iot-sensors/dev";

/// A recorded manifest.
pub fn manifest(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/wadm/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The listener's manifest at another version.
pub fn listener_at(version: &str) -> Vec<u8> {
    String::from_utf8(manifest(LISTENER))
        .unwrap()
        .replace(
            &format!("version: {LISTENER_V}"),
            &format!("version: {version}"),
        )
        .into_bytes()
}

/// One application of a bundle and its manifest.
pub struct App {
    pub name: &'static str,
    pub version: String,
    pub shared: bool,
    pub manifest: Vec<u8>,
}

/// The shared listener at `version`.
pub fn listener(version: &str) -> App {
    App {
        name: LISTENER,
        version: version.to_owned(),
        shared: true,
        manifest: listener_at(version),
    }
}

/// The pipeline, as recorded.
pub fn pipeline() -> App {
    App {
        name: PIPELINE,
        version: PIPELINE_V.to_owned(),
        shared: false,
        manifest: manifest(PIPELINE),
    }
}

/// A bundle of `apps` for `environment`.
pub fn bundle(environment: &str, apps: Vec<App>) -> Bundle {
    let mut files = BTreeMap::new();
    let applications = apps
        .into_iter()
        .map(|app| {
            let wadm = format!("wadm/{}.yaml", app.name);
            files.insert(wadm.clone(), app.manifest);
            ApplicationFacts {
                name: app.name.to_owned(),
                pipeline: (!app.shared).then(|| app.name.to_owned()),
                version: app.version,
                shared: app.shared,
                wadm,
                k8s: None,
                artifacts: if app.shared {
                    vec![]
                } else {
                    ["v1", "v2"]
                        .into_iter()
                        .map(|generation| ArtifactFacts {
                            unit: "parse".to_owned(),
                            generation: generation.to_owned(),
                            image: format!(
                                "registry.acme.example/etl/{generation}/parse@sha256:{}",
                                "0".repeat(64)
                            ),
                            component_digest: format!("sha256:{}", "1".repeat(64)),
                        })
                        .collect()
                },
            }
        })
        .collect();
    Bundle {
        facts: Facts {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            project: PROJECT.to_owned(),
            environment: environment.to_owned(),
            registry: "registry.acme.example/etl".to_owned(),
            lattice: LATTICE.to_owned(),
            revision: Some("0123456789abcdef0123456789abcdef01234567".to_owned()),
            source: None,
            applications,
            pipelines: Vec::new(),
        },
        files,
    }
}

/// A client of the test registry.
pub fn session(host: &str) -> Session {
    Session::new(host, &[], &Credentials::Anonymous, Retry::default())
}

/// Pushes `bundle` to `repository` of the registry at `host`, tags it `tag`, and signs it with
/// `key` when given; its digest.
pub async fn push(
    host: &str,
    repository: &str,
    tag: &str,
    bundle: &Bundle,
    key: Option<&SigningKey>,
) -> String {
    let session = session(host);
    let packaged = bundle.package(&format!("bundles/{PROJECT}/{}", bundle.facts.environment));
    for (digest, bytes) in &packaged.blobs {
        session
            .push_blob(repository, bytes.clone().into(), digest)
            .await
            .unwrap();
    }
    let manifest = bytes::Bytes::from(packaged.manifest.clone());
    let digest = packaged.manifest_digest.clone();
    session
        .put_manifest(repository, &digest, &manifest, MANIFEST_MEDIA_TYPE)
        .await
        .unwrap();
    if let Some(key) = key {
        sign_in(host, repository, &digest, key).await;
    }
    session
        .put_manifest(repository, tag, &manifest, MANIFEST_MEDIA_TYPE)
        .await
        .unwrap();
    digest
}

/// Signs the manifest `digest` of `repository`, as `etl push` pushes a signature.
pub async fn sign_in(host: &str, repository: &str, digest: &str, key: &SigningKey) {
    let session = session(host);
    let signature = sign::signature(key, &format!("{host}/{repository}"), digest);
    for blob in [&signature.config, &signature.payload] {
        session
            .push_blob(
                repository,
                blob.clone().into(),
                &etl::util::digest::sha256(blob),
            )
            .await
            .unwrap();
    }
    session
        .put_manifest(
            repository,
            &sign::signature_tag(digest),
            &bytes::Bytes::from(signature.manifest),
            MANIFEST_MEDIA_TYPE,
        )
        .await
        .unwrap();
}

/// Moves `tag` of `repository` to the manifest `digest` already there.
pub async fn retag(host: &str, repository: &str, tag: &str, digest: &str) {
    let session = session(host);
    let manifest = session
        .manifest(repository, digest, &[MANIFEST_MEDIA_TYPE])
        .await
        .unwrap()
        .unwrap();
    session
        .put_manifest(
            repository,
            tag,
            &bytes::Bytes::from(manifest),
            MANIFEST_MEDIA_TYPE,
        )
        .await
        .unwrap();
}
