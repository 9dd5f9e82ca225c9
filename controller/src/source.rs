//! Where bundles come from: the tag in the registry, checked cheaply (a HEAD for its manifest
//! digest), and a bundle fetched by that digest only when it is new — its signature verified
//! with the project's key before anything else is read, then every blob checked against its
//! digest and the files against the facts ([`Bundle::read`]). What is wrong with a bundle is a
//! [`Refusal`] (reported, never applied); a registry that cannot be asked is an error (the
//! controller tries again at the next poll).

use std::collections::BTreeMap;
use std::time::Duration;

use etl::oci::bundle::{self, Bundle, BundleError, Facts};
use etl::oci::manifest::ImageManifest;
use etl::oci::registry::{self, Retry, Session};
use etl::oci::sign::{self, Problem, VerifyingKey};
use etl::ops::status::BundleRef;

use crate::config::Settings;

/// Most layers (files) a bundle may have.
const MAX_LAYERS: usize = 4096;

/// A bundle verified and read.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its manifest digest.
    pub digest: String,
    /// What it holds.
    pub bundle: Bundle,
    /// The id of the key its signature verified with.
    pub signer: String,
}

/// Why a bundle is not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Its signature is missing, of another image, or not the key's.
    #[error("signature: {0}")]
    Signature(Problem),
    /// A blob is not the bytes its digest names.
    #[error("tampered: {0}")]
    Tampered(String),
    /// A blob is larger than a bundle's may be.
    #[error("{0}")]
    TooLarge(String),
    /// It is not a bundle, or its files and facts disagree.
    #[error("not a deployment bundle: {0}")]
    NotABundle(BundleError),
    /// It is for another project, environment or lattice than this controller's.
    #[error("{0}")]
    Elsewhere(String),
}

impl Refusal {
    /// Whether the same bundle may be accepted later, so that it is fetched again at the next
    /// poll: an unsigned one, whose signature may be pushed after its tag by another tool, and
    /// a signed one a blob of which came corrupt (a flaky proxy or registry node may serve it
    /// whole next time). The others are verdicts on the bundle's signed bytes.
    pub fn may_pass_later(&self) -> bool {
        matches!(
            self,
            Refusal::Signature(Problem::Unsigned { .. }) | Refusal::Tampered(_)
        )
    }
}

/// What a controller requires of a bundle's facts; `None` takes whatever comes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// The project.
    pub project: Option<String>,
    /// The environment.
    pub environment: Option<String>,
    /// The wasmCloud 1.x lattice (v1 only).
    pub lattice: Option<String>,
}

impl Expected {
    /// Refuses `facts` for another project, environment or lattice.
    pub fn check(&self, facts: &Facts) -> Result<(), Refusal> {
        let pairs = [
            ("project", &self.project, &facts.project),
            ("environment", &self.environment, &facts.environment),
            ("lattice", &self.lattice, &facts.lattice),
        ];
        for (what, expected, found) in pairs {
            if let Some(expected) = expected
                && expected != found
            {
                return Err(Refusal::Elsewhere(format!(
                    "the bundle is for {what} `{found}`; this controller applies {what} \
                     `{expected}`"
                )));
            }
        }
        Ok(())
    }
}

/// The tag a controller polls, and the key its bundles must be signed with.
pub struct Source {
    session: Session,
    reference: BundleRef,
    key: VerifyingKey,
}

impl Source {
    /// A source of `settings.bundle`. Each request is tried twice (the next poll tries again).
    pub fn new(settings: &Settings) -> Source {
        let retry = Retry {
            attempts: 2,
            base: Duration::from_millis(500),
        };
        Source {
            session: Session::new(
                &settings.bundle.host,
                &settings.insecure,
                &settings.credentials,
                retry,
            ),
            reference: settings.bundle.clone(),
            key: settings.key.clone(),
        }
    }

    /// The reference polled.
    pub fn reference(&self) -> &BundleRef {
        &self.reference
    }

    /// The manifest digest the tag names now (one HEAD), or `None` when there is no such tag.
    pub async fn tag(&self) -> Result<Option<String>, registry::Error> {
        self.session
            .manifest_digest(&self.reference.repository, &self.reference.tag)
            .await
    }

    /// The bundle `digest` of the repository: its signature verified, then read.
    pub async fn fetch(&self, digest: &str) -> Result<Result<Verified, Refusal>, registry::Error> {
        let repository = &self.reference.repository;
        let found = sign::verify_in_registry(&self.session, repository, digest, &self.key).await?;
        if let Err(problem) = found.checked.outcome {
            return Ok(Err(Refusal::Signature(problem)));
        }
        let manifest = found.manifest.unwrap_or_default();
        let parsed: ImageManifest = match serde_json::from_slice(&manifest) {
            Ok(m) => m,
            Err(e) => {
                return Ok(Err(Refusal::NotABundle(BundleError::Manifest(
                    e.to_string(),
                ))));
            }
        };
        if parsed.config.media_type != bundle::CONFIG_MEDIA_TYPE {
            return Ok(Err(Refusal::NotABundle(BundleError::NotABundle(
                parsed.config.media_type,
            ))));
        }
        if parsed.layers.len() > MAX_LAYERS {
            return Ok(Err(Refusal::TooLarge(format!(
                "the bundle has {} files, more than {MAX_LAYERS}",
                parsed.layers.len()
            ))));
        }
        let mut blobs = BTreeMap::new();
        for descriptor in std::iter::once(&parsed.config).chain(&parsed.layers) {
            let digest = &descriptor.digest;
            if blobs.contains_key(digest) {
                continue;
            }
            let bytes = match self
                .session
                .blob(repository, digest, bundle::MAX_BLOB_BYTES)
                .await
            {
                Ok(bytes) => bytes,
                Err(registry::Error::DigestMismatch { actual, .. }) => {
                    return Ok(Err(Refusal::Tampered(format!(
                        "the registry serves blob {digest} as bytes that hash to {actual}"
                    ))));
                }
                Err(registry::Error::TooLarge { limit, .. }) => {
                    return Ok(Err(Refusal::TooLarge(format!(
                        "blob {digest} is larger than a bundle's file may be ({limit} bytes)"
                    ))));
                }
                Err(e) => return Err(e),
            };
            blobs.insert(digest.clone(), bytes);
        }
        let read = Bundle::read(&manifest, |d| {
            Ok::<_, std::convert::Infallible>(blobs.get(&d.digest).cloned().unwrap_or_default())
        });
        Ok(match read {
            Ok(Ok(bundle)) => Ok(Verified {
                digest: digest.to_owned(),
                bundle,
                signer: self.key.id(),
            }),
            Ok(Err(BundleError::Corrupt {
                what,
                digest,
                actual,
            })) => Err(Refusal::Tampered(format!(
                "{what} {digest} hashes to {actual}"
            ))),
            Ok(Err(e)) => Err(Refusal::NotABundle(e)),
            Err(never) => match never {},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            api_version: bundle::API_VERSION.to_owned(),
            kind: bundle::KIND.to_owned(),
            project: "iot-sensors".to_owned(),
            environment: "dev".to_owned(),
            registry: "r/etl".to_owned(),
            lattice: "acme-iot-dev".to_owned(),
            revision: None,
            source: None,
            applications: vec![],
            pipelines: Vec::new(),
        }
    }

    #[test]
    fn bundles_for_elsewhere_are_refused() {
        let anything = Expected::default();
        assert_eq!(anything.check(&facts()), Ok(()));
        let dev = Expected {
            project: Some("iot-sensors".to_owned()),
            environment: Some("dev".to_owned()),
            lattice: Some("acme-iot-dev".to_owned()),
        };
        assert_eq!(dev.check(&facts()), Ok(()));
        let staging = Expected {
            environment: Some("staging".to_owned()),
            ..dev.clone()
        };
        assert_eq!(
            staging.check(&facts()).unwrap_err().to_string(),
            "the bundle is for environment `dev`; this controller applies environment `staging`"
        );
        let lattice = Expected {
            lattice: Some("edge-7".to_owned()),
            ..dev
        };
        assert!(matches!(
            lattice.check(&facts()),
            Err(Refusal::Elsewhere(m)) if m.contains("lattice `acme-iot-dev`")
        ));
    }

    #[test]
    fn only_an_unsigned_or_corrupt_bundle_is_looked_at_again() {
        let unsigned = Refusal::Signature(Problem::Unsigned {
            tag: "sha256-00.sig".to_owned(),
        });
        assert!(unsigned.may_pass_later());
        assert!(Refusal::Tampered("x".to_owned()).may_pass_later());
        assert!(!Refusal::Signature(Problem::BadSignature).may_pass_later());
        assert!(!Refusal::Elsewhere("staging".to_owned()).may_pass_later());
    }
}
