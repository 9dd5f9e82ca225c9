//! `etl push`: every manifest of an `etl compile` output's OCI layout (`dist/oci/`) → a real
//! registry, as the exact bytes the layout holds (never re-serialized, so digests and
//! signatures stay valid).
//!
//! Artifact `<name>` goes to repository `<prefix>/<name>`: its blobs (skipped when a HEAD finds
//! them), its manifest PUT by digest, then tagged `sha-<12 hex of plan.json's digest>` and with
//! the name of each environment [`Options::environments`] names that deploys it. An
//! environment's deployment bundle (`bundles/<project>/<env>`, [`crate::oci::bundle`]) is
//! pushed the same way, and tagged with its environment's name when that environment is named:
//! moving that tag is what deploys it. A cosign signature entry (`sha256-<hex>.sig`) goes to the
//! repository of the artifact it signs, tagged with its name. Signatures go up first, then the
//! component artifacts, then the bundles: a tag never names an artifact whose signature is not
//! there yet, and a bundle's tag never moves before every artifact it pins is in the registry,
//! so a controller polling an environment's tag never takes a bundle it cannot run.
//! Every step is idempotent, so an interrupted push re-run finishes without re-uploading what
//! arrived. Afterwards every tag is fetched and its bytes hashed: a digest other than the local
//! one is an error.
//!
//! The registry must be the one the output was compiled for (`plan.json`'s `registry`): its
//! deployment manifests pin `<registry>/<name>@<digest>` and its signatures name
//! `<registry>/<name>`, so artifacts pushed anywhere else would be deployed from where they are
//! not, under signatures naming another place. [`PushError::OtherRegistry`] says how to compile
//! for the other registry instead.
//!
//! Transport, credentials and retries are [`crate::oci::registry`]'s.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::build::dist;
use crate::oci::layout::{MANIFEST_MEDIA_TYPE, REF_NAME};
use crate::oci::manifest::{ImageIndex, ImageManifest};
use crate::oci::registry::{self, Credentials, Registry, Retry, Session};
use crate::util::digest::sha256;
use crate::util::io::IoError;

/// What to push where, and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The registry and repository prefix.
    pub registry: Registry,
    /// Hosts (`host` or `host:port`) spoken to in plain HTTP besides loopback ones.
    pub insecure: Vec<String>,
    /// How to authenticate.
    pub credentials: Credentials,
    /// Retries of each request.
    pub retry: Retry,
    /// Environments whose name to tag the artifacts they deploy, and their bundle, with (the
    /// start of a promotion chain, e.g. `dev`); the others get their tag from `etl promote`.
    pub environments: Vec<String>,
}

/// One manifest pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `<host>/<prefix>/<name>`.
    pub repository: String,
    /// `sha256:` of the manifest: the same locally and in the registry.
    pub digest: String,
    /// Its tags in the repository.
    pub tags: Vec<String>,
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every manifest, artifacts first (by name), then signatures.
    pub pushed: Vec<Pushed>,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs the registry already had.
    pub blobs_skipped: usize,
    /// HEAD requests made (blobs, manifests by digest, tags), retries included.
    pub head_requests: usize,
    /// Manifests PUT by digest.
    pub manifests_uploaded: usize,
    /// Manifests the registry already had.
    pub manifests_skipped: usize,
    /// Tags PUT (set or moved).
    pub tags_set: usize,
    /// Tags that already named the right manifest.
    pub tags_unchanged: usize,
    /// Tags fetched back and found to hold the local bytes.
    pub verified: usize,
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// A file could not be read.
    #[error(transparent)]
    Io(#[from] crate::util::io::IoError),
    /// The directory is not a consistent `etl compile` output.
    #[error("`{}` is not a usable `etl compile` output: {reason}", path.display())]
    Layout {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `--env` names no environment of the plan.
    #[error(transparent)]
    UnknownEnvironment(#[from] crate::build::dist::UnknownEnvironment),
    /// The registry is not the one the output was compiled for.
    #[error(transparent)]
    OtherRegistry(#[from] OtherRegistry),
    /// Talking to the registry failed.
    #[error(transparent)]
    Registry(#[from] registry::Error),
    /// A tag fetched back does not hold the bytes pushed.
    #[error(
        "registry `{registry}` serves `{reference}` as {actual}, not the {expected} pushed: the \
         registry changed the manifest (or someone else moved the tag); refusing to report success"
    )]
    DigestMismatch {
        /// `host[:port]`.
        registry: String,
        /// `<repository>:<tag>`.
        reference: String,
        /// The local digest.
        expected: String,
        /// The digest of the bytes served.
        actual: String,
    },
}

/// One manifest of the layout to push.
struct Entry {
    /// Artifact name (`ref.name`), or for a signature the name of the artifact it signs.
    repository: String,
    digest: String,
    media_type: String,
    manifest: Vec<u8>,
    /// `sha256:` digests of its config and layers.
    blobs: Vec<String>,
    tags: Vec<String>,
}

/// Reads `dist/plan.json` and `dist/oci/`: what to push to `registry`, artifacts first.
fn read_dist(
    dist: &Path,
    registry: &Registry,
    tag_environments: &[String],
) -> Result<Vec<Entry>, PushError> {
    let read = |path: PathBuf| -> Result<Vec<u8>, PushError> {
        Ok(std::fs::read(&path).map_err(IoError::at(&path))?)
    };
    let (plan, plan_bytes) = dist::read_file(&dist.join(dist::FILE)).map_err(|e| match e {
        dist::ReadError::Io(e) => PushError::Io(e),
        dist::ReadError::Invalid { path, reason } => PushError::Layout {
            path,
            reason: reason.to_string(),
        },
    })?;
    let plan_tag = format!("sha-{}", &sha256(&plan_bytes)["sha256:".len()..][..12]);
    check_registry(dist, registry, &plan.registry)?;
    // The environments to tag, with the repositories each deploys (from
    // `deployments.<env>.<pipeline>.components`) and its own bundle.
    let mut environments: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for env in tag_environments {
        for app in plan.deployments_of(env)?.values() {
            for a in app.components.iter().flat_map(|c| c.artifacts()) {
                environments
                    .entry(a.repository.clone())
                    .or_default()
                    .insert(env.clone());
            }
        }
        environments
            .entry(crate::oci::bundle::name(&plan.project, env))
            .or_default()
            .insert(env.clone());
    }

    let oci = dist.join("oci");
    let index_path = oci.join("index.json");
    let layout = |reason: String| PushError::Layout {
        path: index_path.clone(),
        reason,
    };
    let index: ImageIndex =
        serde_json::from_slice(&read(index_path.clone())?).map_err(|e| layout(e.to_string()))?;
    let blob = |digest: &str| -> Result<Vec<u8>, PushError> {
        crate::util::digest::hex(digest)
            .ok_or_else(|| layout(format!("`{digest}` is not a sha256 digest")))?;
        let path = oci.join(crate::oci::layout::blob_path(digest));
        let bytes = read(path.clone())?;
        if sha256(&bytes) != digest {
            return Err(PushError::Layout {
                path,
                reason: format!("the blob does not hash to {digest}"),
            });
        }
        Ok(bytes)
    };

    let mut artifacts = Vec::new();
    let mut signatures = Vec::new();
    for d in &index.manifests {
        let name = d.annotation(REF_NAME).ok_or_else(|| {
            layout("a manifest has no `org.opencontainers.image.ref.name`".into())
        })?;
        let digest = Some(d.digest.as_str())
            .filter(|d| !d.is_empty())
            .ok_or_else(|| layout(format!("`{name}` has no digest")))?;
        let manifest = blob(digest)?;
        let parsed: ImageManifest = serde_json::from_slice(&manifest)
            .map_err(|e| layout(format!("the manifest of `{name}`: {e}")))?;
        let media_type = Some(d.media_type.as_str())
            .filter(|t| !t.is_empty())
            .or(parsed.media_type.as_deref())
            .unwrap_or(MANIFEST_MEDIA_TYPE)
            .to_owned();
        let mut blobs = Vec::new();
        for b in std::iter::once(&parsed.config).chain(&parsed.layers) {
            if b.digest.is_empty() {
                return Err(layout(format!(
                    "the manifest of `{name}` names a blob without digest"
                )));
            }
            blob(&b.digest)?; // present and intact
            blobs.push(b.digest.clone());
        }
        let entry = Entry {
            repository: name.to_owned(),
            digest: digest.to_owned(),
            media_type,
            manifest,
            blobs,
            tags: vec![name.to_owned()],
        };
        if name.starts_with("sha256-") && name.ends_with(".sig") {
            signatures.push(entry);
        } else {
            artifacts.push(entry);
        }
    }
    for a in &mut artifacts {
        let mut tags = vec![plan_tag.clone()];
        tags.extend(environments.remove(&a.repository).into_iter().flatten());
        a.tags = tags;
    }
    for s in &mut signatures {
        let signed = format!(
            "sha256:{}",
            &s.repository["sha256-".len()..s.repository.len() - 4]
        );
        let artifact = artifacts
            .iter()
            .find(|a| a.digest == signed)
            .ok_or_else(|| {
                layout(format!(
                    "signature `{}` signs {signed}, which is no artifact of the layout",
                    s.repository
                ))
            })?;
        s.repository = artifact.repository.clone();
    }
    artifacts.sort_by(|a, b| a.repository.cmp(&b.repository));
    artifacts.extend(signatures);
    Ok(artifacts)
}

/// Whether `registry` is the registry `compiled` (as `plan.json` writes it) names: the same
/// host, in any case, and the same prefix.
/// An output's artifacts would be pushed or promoted in another registry than the one it was
/// compiled for.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{}` was compiled for the registry `{compiled}`: its manifests pin \
     `{compiled}/<name>@<digest>` and its signatures name `{compiled}/<name>`, so using \
     `{given}` would leave them pointing where the artifacts are not. To publish to \
     `{given}`, set `spec.registry: {given}` in etl.yaml and compile again; to use this \
     output, leave out --registry (it defaults to `{compiled}`)",
    dist.display()
)]
pub struct OtherRegistry {
    /// The output directory.
    pub dist: PathBuf,
    /// The registry asked for.
    pub given: String,
    /// The registry `plan.json` names.
    pub compiled: String,
}

/// Checks that `registry` is the one the output at `dist` was compiled for (`compiled`, from its
/// `plan.json`; empty when it names none): hosts compare case-insensitively, prefixes exactly.
pub fn check_registry(
    dist: &Path,
    registry: &Registry,
    compiled: &str,
) -> Result<(), OtherRegistry> {
    let same = compiled
        .parse::<Registry>()
        .is_ok_and(|c| c.host.eq_ignore_ascii_case(&registry.host) && c.prefix == registry.prefix);
    if compiled.is_empty() || same {
        return Ok(());
    }
    Err(OtherRegistry {
        dist: dist.to_owned(),
        given: registry.to_string(),
        compiled: compiled.to_owned(),
    })
}

/// Pushes every manifest of `dist/oci/` (see the module docs).
pub fn push(dist: &Path, options: &Options) -> Result<Report, PushError> {
    let entries = read_dist(dist, &options.registry, &options.environments)?;
    let session = Session::new(
        &options.registry.host,
        &options.insecure,
        &options.credentials,
        options.retry,
    );
    registry::block_on(run(&session, &options.registry, dist, &entries))
}

async fn run(
    session: &Session,
    registry: &Registry,
    dist: &Path,
    entries: &[Entry],
) -> Result<Report, PushError> {
    let mut report = Report::default();
    let Some(first) = entries.first() else {
        return Ok(report);
    };
    // Authenticate once up front, so that a wrong password is one clear error.
    session
        .authenticate(&registry.repository(&first.repository), true)
        .await?;
    let oci = dist.join("oci");
    // Signatures, then artifacts, then bundles (see the module docs); the report keeps the
    // layout's order.
    let rank = |e: &Entry| {
        if e.tags.iter().any(|t| crate::oci::sign::is_signature_tag(t)) {
            0
        } else if e
            .repository
            .starts_with(crate::oci::bundle::REPOSITORY_PREFIX)
        {
            2
        } else {
            1
        }
    };
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|i| rank(&entries[*i]));
    let mut pushed = vec![None; entries.len()];
    for i in order {
        let entry = &entries[i];
        let repository = registry.repository(&entry.repository);
        for digest in &entry.blobs {
            if session.blob_exists(&repository, digest).await? {
                report.blobs_skipped += 1;
                continue;
            }
            let path = oci.join(crate::oci::layout::blob_path(digest));
            let bytes = std::fs::read(&path).map_err(IoError::at(&path))?;
            session
                .push_blob(&repository, bytes::Bytes::from(bytes), digest)
                .await?;
            report.blobs_uploaded += 1;
        }

        let manifest = bytes::Bytes::from(entry.manifest.clone());
        // By digest first, then each tag: a PUT only where the registry lacks it.
        let references = std::iter::once(&entry.digest).chain(&entry.tags);
        for (i, reference) in references.enumerate() {
            let present = session.manifest_digest(&repository, reference).await?;
            match (present.as_ref() == Some(&entry.digest), i == 0) {
                (true, true) => report.manifests_skipped += 1,
                (true, false) => report.tags_unchanged += 1,
                (false, by_digest) => {
                    session
                        .put_manifest(&repository, reference, &manifest, &entry.media_type)
                        .await?;
                    if by_digest {
                        report.manifests_uploaded += 1;
                    } else {
                        report.tags_set += 1;
                    }
                }
            }
        }

        // Fetch every tag back and hash what is served.
        for tag in &entry.tags {
            let mismatch = |actual: String| PushError::DigestMismatch {
                registry: registry.host.clone(),
                reference: format!("{repository}:{tag}"),
                expected: entry.digest.clone(),
                actual,
            };
            let served = match session
                .manifest(&repository, tag, &[entry.media_type.as_str()])
                .await
            {
                Ok(served) => served,
                Err(registry::Error::DigestMismatch { actual, .. }) => {
                    return Err(mismatch(actual));
                }
                Err(e) => return Err(e.into()),
            };
            let actual = served
                .as_deref()
                .map_or_else(|| "nothing".to_owned(), sha256);
            if actual != entry.digest {
                return Err(mismatch(actual));
            }
            report.verified += 1;
        }
        pushed[i] = Some(Pushed {
            repository: format!("{}/{repository}", registry.host),
            digest: entry.digest.clone(),
            tags: entry.tags.clone(),
        });
    }
    report.pushed = pushed.into_iter().flatten().collect();
    report.head_requests = session.head_requests();
    Ok(report)
}
