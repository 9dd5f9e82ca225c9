//! `etl verify`: the signatures of artifacts, in `etl compile` outputs (OCI image layouts on
//! disk) or in registries by image reference, checked with one public key; one verdict per
//! artifact.
//!
//! A target that is an existing directory is a layout ([`crate::oci::sign::verify_layout`]);
//! anything else must be an image reference naming its tag or digest explicitly
//! (`HOST[:PORT]/REPOSITORY:TAG` or `…@sha256:<hex>`: no implied `latest`), checked in its
//! registry as `cosign verify --key` does ([`crate::oci::sign::verify_in_registry`]). Each
//! registry is asked for credentials once, when the first of its references comes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::oci::registry::{self, Credentials, Session};
use crate::oci::sign::{self, Checked, VerifyingKey};

/// What one `etl verify` argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An `etl compile` output or an OCI image layout: an existing directory.
    Layout(PathBuf),
    /// An artifact in a registry.
    Image(Image),
}

/// An image reference with an explicit tag or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `host[:port]` of the registry.
    pub host: String,
    /// The repository in it.
    pub repository: String,
    /// The digest (`sha256:…`) when the reference has one, else the tag.
    pub pinned: String,
}

/// Why an argument names no target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// It is neither an existing directory nor an image reference.
    #[error(
        "`{0}` is neither a directory nor an image reference (HOST[:PORT]/REPOSITORY:TAG or \
         …@sha256:<hex>)"
    )]
    NotATarget(String),
    /// An image reference names no tag or digest.
    #[error(
        "`{0}` names no tag or digest: give HOST[:PORT]/REPOSITORY:TAG or …@sha256:<hex> (no \
         implied `latest`)"
    )]
    Unpinned(String),
}

/// Why the signatures could not be judged (a missing or bad signature is a verdict in the
/// [`Report`], not an error). `E` is the error of the credentials source.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError<E> {
    /// A target is not one.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A layout cannot be read.
    #[error(transparent)]
    Layout(#[from] sign::VerifyError),
    /// The credentials for a registry could not be had.
    #[error(transparent)]
    Credentials(E),
    /// A registry could not be asked: nothing was checked, no verdict on the signatures.
    #[error("`{target}` cannot be checked: {source}")]
    Registry {
        /// The target as given.
        target: String,
        /// Why.
        source: registry::Error,
    },
}

/// The verdicts, one per artifact, in the order of the targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every artifact checked.
    pub checked: Vec<Checked>,
}

impl Report {
    /// How many artifacts are not signed and valid.
    pub fn bad(&self) -> usize {
        self.checked.iter().filter(|a| a.outcome.is_err()).count()
    }
}

impl Target {
    /// What `text` names: an existing directory, else an image reference.
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        let path = Path::new(text);
        if path.is_dir() {
            return Ok(Target::Layout(path.to_owned()));
        }
        let reference: oci_client::Reference = text
            .parse()
            .map_err(|_| TargetError::NotATarget(text.to_owned()))?;
        // The parser implies `latest` when no tag is given: only an explicit one counts.
        let explicit = text.contains('@')
            || text
                .rsplit_once('/')
                .is_some_and(|(_, last)| last.contains(':'));
        let pinned = reference
            .digest()
            .or(reference.tag())
            .filter(|_| explicit)
            .ok_or_else(|| TargetError::Unpinned(text.to_owned()))?;
        Ok(Target::Image(Image {
            host: reference.resolve_registry().to_owned(),
            repository: reference.repository().to_owned(),
            pinned: pinned.to_owned(),
        }))
    }
}

/// Checks every artifact of `targets` with `key`, in order. Registries are reached as by
/// `etl push` (plain HTTP for loopback and `insecure` hosts), with the credentials
/// `credentials` gives for each host, asked once per host when its first reference comes.
pub fn verify<E>(
    targets: &[String],
    key: &VerifyingKey,
    insecure: &[String],
    mut credentials: impl FnMut(&str) -> Result<Credentials, E>,
) -> Result<Report, VerifyError<E>> {
    let mut report = Report::default();
    let mut sessions: BTreeMap<String, Session> = BTreeMap::new();
    for text in targets {
        let image = match Target::parse(text)? {
            Target::Layout(path) => {
                report
                    .checked
                    .extend(sign::verify_layout(&path, key)?.artifacts);
                continue;
            }
            Target::Image(image) => image,
        };
        if !sessions.contains_key(&image.host) {
            let credentials = credentials(&image.host).map_err(VerifyError::Credentials)?;
            let session = Session::new(&image.host, insecure, &credentials, Default::default());
            sessions.insert(image.host.clone(), session);
        }
        let found = registry::block_on(sign::verify_in_registry(
            &sessions[&image.host],
            &image.repository,
            &image.pinned,
            key,
        ))
        .map_err(|source| VerifyError::Registry {
            target: text.clone(),
            source,
        })?;
        report.checked.push(found.checked);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Target, TargetError> {
        Target::parse(text)
    }

    fn image(host: &str, repository: &str, pinned: &str) -> Target {
        Target::Image(Image {
            host: host.to_owned(),
            repository: repository.to_owned(),
            pinned: pinned.to_owned(),
        })
    }

    #[test]
    fn a_directory_is_a_layout() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().to_str().unwrap();
        assert_eq!(parse(text).unwrap(), Target::Layout(dir.path().to_owned()));
    }

    #[test]
    fn a_reference_names_host_repository_and_tag() {
        assert_eq!(
            parse("127.0.0.1:5000/etl/parse:dev").unwrap(),
            image("127.0.0.1:5000", "etl/parse", "dev")
        );
    }

    #[test]
    fn a_digest_wins_over_a_tag() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse(&format!("localhost:5000/parse:dev@{digest}")).unwrap(),
            image("localhost:5000", "parse", &digest)
        );
        assert_eq!(
            parse(&format!("localhost:5000/parse@{digest}")).unwrap(),
            image("localhost:5000", "parse", &digest)
        );
    }

    #[test]
    fn no_implied_latest() {
        for text in ["localhost:5000/parse", "parse:dev", "registry.example/a/b"] {
            assert!(
                matches!(parse(text), Err(TargetError::Unpinned(t)) if t == text),
                "{text}"
            );
        }
    }

    #[test]
    fn neither_directory_nor_reference() {
        let text = "Not A Reference!";
        assert!(matches!(parse(text), Err(TargetError::NotATarget(t)) if t == text));
        assert_eq!(
            parse(text).unwrap_err().to_string(),
            "`Not A Reference!` is neither a directory nor an image reference \
             (HOST[:PORT]/REPOSITORY:TAG or …@sha256:<hex>)"
        );
    }
}
