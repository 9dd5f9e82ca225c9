//! `etl promote`: gives environment `to` exactly the artifacts environment `from` runs, by
//! moving a tag — never rebuilding, never re-serializing.
//!
//! For every artifact `from` deploys (per `DIST/plan.json`), the manifest the registry tags
//! `<from>` is fetched and its cosign signature checked with the public key
//! ([`crate::oci::sign::verify_in_registry`]); its component must import what `to`'s deployment links
//! serve. `to`'s deployments are re-pinned to exactly those digests, and `to`'s deployment
//! bundle (`bundles/<project>/<to>`, [`crate::build::bundle`]) built from them. The bundle must
//! be signed: with the signature `DIST/oci/` holds for exactly that bundle (it verifies with the
//! public key), else with [`Options::sign_key`]; without either the promotion is refused.
//!
//! Only when every artifact passes and the bundle is signed does anything change in the
//! registry: the bundle and its signature are pushed by digest, the same artifact manifest bytes
//! PUT under the tag `<to>`, then the bundle tagged `<to>` last (moving that tag deploys it),
//! each fetched back and hashed, the bundle's signature checked. `DIST` is then rewritten in one
//! rename: `to`'s manifests (`<to>/wadm/`, `<to>/k8s/`) and its deployments in `plan.json`
//! pinned to those digests, `oci/` holding the bundle and its signature, and a record in
//! `promotions/<to>.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::build::dist;
use crate::build::emit::{self, ArtifactRef, Component, EmitError};
use crate::oci::layout::{self, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::oci::manifest::{Descriptor, ImageManifest, WasmConfig};
use crate::oci::registry::{self, Credentials, Registry, Retry, Session};
use crate::oci::sign::{self, Problem, SigningKey, StoredSignature, VerifyingKey};
use crate::util::digest::sha256;
use crate::util::io::IoError;
use crate::util::out_dir::{OutputDir, OutputError};

/// Largest artifact config fetched, in bytes.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// What to promote, where, and how to reach the registry.
#[derive(Debug, Clone)]
pub struct Options {
    /// The environment whose tag names the artifacts.
    pub from: String,
    /// The environment to give them.
    pub to: String,
    /// The registry and repository prefix the artifacts were pushed to.
    pub registry: Registry,
    /// Hosts spoken to in plain HTTP besides loopback ones.
    pub insecure: Vec<String>,
    /// How to authenticate.
    pub credentials: Credentials,
    /// Retries of each request.
    pub retry: Retry,
    /// When the promotion happens, in seconds since 1970 (`SOURCE_DATE_EPOCH`).
    pub time: i64,
    /// Signs `to`'s bundle when `DIST/oci/` holds no signature of exactly it; its public half
    /// must be the key the artifacts are checked with.
    pub sign_key: Option<SigningKey>,
}

/// `promotions/<to>.json`: what was promoted, from where, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// Always `etl/v1alpha1`.
    pub api_version: &'static str,
    /// Always `Promotion`.
    pub kind: &'static str,
    /// The environment promoted from.
    pub from: String,
    /// The environment promoted to.
    pub to: String,
    /// The registry and prefix the tags moved in.
    pub registry: String,
    /// RFC 3339 UTC, from [`Options::time`].
    pub promoted_at: String,
    /// Every artifact, by repository.
    pub artifacts: Vec<Promoted>,
    /// `to`'s deployment bundle, now tagged `<to>`.
    pub bundle: PromotedBundle,
}

/// The deployment bundle a promotion tagged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotedBundle {
    /// Repository under the registry prefix: `bundles/<project>/<to>`.
    pub repository: String,
    /// Its manifest digest, now tagged `<to>`.
    pub digest: String,
    /// The `docker-reference` its signature names.
    pub signed_as: String,
}

/// One artifact promoted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Promoted {
    /// Repository under the registry prefix.
    pub repository: String,
    /// The manifest digest, now tagged `<to>`.
    pub digest: String,
    /// The tag it was found under.
    pub from_tag: String,
    /// The `docker-reference` its verified signature names.
    pub signed_as: String,
}

/// What a promotion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The record written.
    pub record: Record,
    /// Tags `<to>` of the artifacts PUT (set or moved).
    pub tags_set: usize,
    /// Tags `<to>` that already named the artifact.
    pub tags_unchanged: usize,
    /// Whether the bundle's tag `<to>` moved (else it named the bundle already).
    pub bundle_tagged: bool,
    /// Whether the bundle was signed now with [`Options::sign_key`] (else its signature came
    /// from `DIST/oci/`).
    pub bundle_signed_now: bool,
    /// The files of `DIST` written, sorted.
    pub rewritten: Vec<String>,
    /// The files of `DIST` removed (blobs of the bundle and signature replaced), sorted.
    pub removed: Vec<String>,
}

/// Why a promotion failed. Nothing in the registry or in `DIST` changed unless it says so.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] crate::util::io::IoError),
    /// `DIST` is not an output etl may rewrite.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// `DIST/plan.json` is missing or not an `etl compile` plan.
    #[error("`{}` is not an `etl compile` plan: {reason}", path.display())]
    Plan {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `--from` or `--to` names no environment of the plan.
    #[error(transparent)]
    UnknownEnvironment(#[from] crate::build::dist::UnknownEnvironment),
    /// `--from` and `--to` are the same.
    #[error("`--from` and `--to` are both `{0}`: nothing to promote")]
    SameEnvironment(String),
    /// `--registry` is not the registry the output was compiled for.
    #[error(transparent)]
    OtherRegistry(#[from] crate::ops::push::OtherRegistry),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] registry::Error),
    /// The `from` tag is missing.
    #[error(
        "`{reference}` does not exist: push the compile `{from}` runs with `etl push --env {from}` \
         (or promote to `{from}` first)"
    )]
    NotTagged {
        /// `<host>/<repository>:<from>`.
        reference: String,
        /// The `from` environment.
        from: String,
    },
    /// An artifact is unsigned, signed with another key, or tampered with.
    #[error("refusing to promote `{reference}` ({digest}): {problem}")]
    Refused {
        /// `<host>/<repository>:<from>`.
        reference: String,
        /// Its manifest digest.
        digest: String,
        /// What is wrong with its signature.
        problem: Problem,
    },
    /// The artifact does not fit `to`'s deployment of it.
    #[error("refusing to promote `{reference}` ({digest}): {reason}")]
    Incompatible {
        /// `<host>/<repository>:<from>`.
        reference: String,
        /// Its manifest digest.
        digest: String,
        /// Why.
        reason: String,
    },
    /// `to` deploys an artifact `from` does not.
    #[error(
        "`{to}` deploys `{repository}`, which `{from}` does not: promote only between \
         environments that deploy the same pipelines"
    )]
    NotInSource {
        /// The repository.
        repository: String,
        /// The `from` environment.
        from: String,
        /// The `to` environment.
        to: String,
    },
    /// A re-pinned application cannot be emitted.
    #[error("`{to}`'s `{pipeline}` cannot be emitted: {source}")]
    Emit {
        /// The `to` environment.
        to: String,
        /// The pipeline.
        pipeline: String,
        /// The emitter's complaint.
        source: EmitError,
    },
    /// The promotion time is out of range.
    #[error("SOURCE_DATE_EPOCH: {0}")]
    Time(crate::oci::layout::OciError),
    /// `--sign-key` is not the private half of `--key`.
    #[error(
        "--sign-key's public key ({signer}) is not --key ({key}): controllers that trust --key \
         would refuse the bundle it signs"
    )]
    SignKeyMismatch {
        /// The id of `--sign-key`'s public half.
        signer: String,
        /// The id of `--key`.
        key: String,
    },
    /// `to`'s bundle needs a signature and no key was given to make one.
    #[error(
        "`{to}`'s deployment bundle `{repository}` ({digest}), built from the re-pinned \
         manifests, is not in `{}` with a signature that verifies with --key: pass --sign-key \
         with the project's private key to sign it (nothing was changed)",
        layout.display()
    )]
    UnsignedBundle {
        /// The `to` environment.
        to: String,
        /// `bundles/<project>/<to>`.
        repository: String,
        /// The bundle's manifest digest.
        digest: String,
        /// `DIST/oci`.
        layout: PathBuf,
    },
    /// `DIST/oci/` cannot be read.
    #[error(transparent)]
    Layout(#[from] sign::VerifyError),
    /// The bundle and its signature cannot be put into `DIST/oci/`.
    #[error("`{}` cannot take the bundle: {source}", layout.display())]
    BundleLayout {
        /// `DIST/oci`.
        layout: PathBuf,
        /// Why.
        source: crate::oci::layout::OciError,
    },
    /// The bundle, fetched back from the registry, does not verify.
    #[error(
        "registry `{registry}` serves the bundle `{reference}`, but it does not verify after the \
         promotion: {problem}"
    )]
    BundleUnverified {
        /// `host[:port]`.
        registry: String,
        /// `<repository>:<to>`.
        reference: String,
        /// What is wrong.
        problem: Problem,
    },
    /// The `to` tag, fetched back, names other bytes.
    #[error(
        "registry `{registry}` serves `{reference}` as {actual} after the promotion, not {expected}: \
         someone else moved the tag"
    )]
    Moved {
        /// `host[:port]`.
        registry: String,
        /// `<repository>:<to>`.
        reference: String,
        /// The digest promoted.
        expected: String,
        /// The digest served.
        actual: String,
    },
}

/// An artifact found under the `from` tag, verified, with what `to` will pin.
struct Candidate {
    repository: String,
    manifest: Vec<u8>,
    media_type: String,
    pinned: ArtifactRef,
    signed_as: String,
}

/// Promotes `options.from`'s artifacts to `options.to` (see the module docs), checking their
/// signatures with `key`, and rewrites `dist`.
pub fn promote(dist: &Path, key: &VerifyingKey, options: &Options) -> Result<Report, PromoteError> {
    // Before any tag moves: DIST must be an output etl may rewrite, and a signing key the one
    // the artifacts are checked with.
    let out = OutputDir::for_rewrite(dist)?;
    if let Some(signer) = &options.sign_key
        && signer.verifying_key() != *key
    {
        return Err(PromoteError::SignKeyMismatch {
            signer: signer.verifying_key().id(),
            key: key.id(),
        });
    }
    let plan_path = dist.join(dist::FILE);
    let bad_plan = |reason: String| PromoteError::Plan {
        path: plan_path.clone(),
        reason,
    };
    let mut plan = dist::read(dist).map_err(|e| match e {
        dist::ReadError::Io(e) => PromoteError::Io(e),
        dist::ReadError::Invalid { reason, .. } => bad_plan(reason.to_string()),
    })?;
    if plan.registry.is_empty() {
        return Err(bad_plan("no `registry`".to_owned()));
    }
    let project_registry = plan.registry.trim_end_matches('/').to_owned();
    crate::ops::push::check_registry(dist, &options.registry, &project_registry)?;
    if options.from == options.to {
        return Err(PromoteError::SameEnvironment(options.from.clone()));
    }
    let from_apps = plan.deployments_of(&options.from)?.clone();
    let to_apps = plan.deployments_of(&options.to)?.clone();
    let repositories: BTreeSet<&str> = from_apps
        .values()
        .flat_map(|a| &a.components)
        .flat_map(Component::artifacts)
        .map(|a| a.repository.as_str())
        .collect();
    // What `to` deploys of each repository: the imports its links serve (unknown in plans of
    // earlier versions, which kept them elsewhere: then not checked).
    let mut served: BTreeMap<&str, &[String]> = BTreeMap::new();
    for a in to_apps
        .values()
        .flat_map(|a| &a.components)
        .flat_map(Component::artifacts)
    {
        if !repositories.contains(a.repository.as_str()) {
            return Err(PromoteError::NotInSource {
                repository: a.repository.clone(),
                from: options.from.clone(),
                to: options.to.clone(),
            });
        }
        if !a.imports.is_empty() {
            served.insert(&a.repository, &a.imports);
        }
    }

    let session = Session::new(
        &options.registry.host,
        &options.insecure,
        &options.credentials,
        options.retry,
    );
    registry::block_on(async {
        let Some(first) = repositories.first() else {
            return Err(bad_plan(format!("`{}` deploys nothing", options.from)));
        };
        session
            .authenticate(&options.registry.repository(first), true)
            .await?;

        // Every artifact verified and checked before any tag moves.
        let mut candidates = Vec::new();
        for repository in &repositories {
            candidates.push(
                candidate(
                    &session,
                    options,
                    &project_registry,
                    repository,
                    served.get(repository).copied(),
                    key,
                )
                .await?,
            );
        }
        let pinned: BTreeMap<String, ArtifactRef> = candidates
            .iter()
            .map(|c| (c.repository.clone(), c.pinned.clone()))
            .collect();
        let mut files = BTreeMap::new();
        let mut deployments = BTreeMap::new();
        for (pipeline, app) in &to_apps {
            let app = app.repinned(&pinned);
            emit::check_names(&app).map_err(|source| PromoteError::Emit {
                to: options.to.clone(),
                pipeline: pipeline.clone(),
                source,
            })?;
            deployments.insert(pipeline.clone(), app);
        }
        files.extend(dist::manifest_files(&options.to, &deployments));
        plan.deployments.insert(options.to.clone(), deployments);

        // `to`'s bundle, from the re-pinned plan, signed before any tag moves.
        let bundle_name = crate::oci::bundle::name(&plan.project, &options.to);
        let bundle = crate::build::bundle::bundle(&plan, &options.to)?.package(&bundle_name);
        let bundle_digest = bundle.manifest_digest.clone();
        let signed_as = format!("{project_registry}/{bundle_name}");
        let layout_dir = dist.join("oci");
        let in_dist = match sign::signature_in_layout(dist, &bundle_name, &bundle_digest, key) {
            Ok(found) => found,
            Err(sign::VerifyError::NotALayout(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let (signature, signed_now) = match (in_dist, &options.sign_key) {
            (Some(signature), _) => (signature, false),
            (None, Some(signer)) => (
                StoredSignature::from(sign::signature(signer, &signed_as, &bundle_digest)),
                true,
            ),
            (None, None) => {
                return Err(PromoteError::UnsignedBundle {
                    to: options.to.clone(),
                    repository: bundle_name,
                    digest: bundle_digest,
                    layout: layout_dir,
                });
            }
        };

        let record = Record {
            api_version: "etl/v1alpha1",
            kind: "Promotion",
            from: options.from.clone(),
            to: options.to.clone(),
            registry: options.registry.to_string(),
            promoted_at: crate::oci::layout::rfc3339(options.time).map_err(PromoteError::Time)?,
            artifacts: candidates
                .iter()
                .map(|c| Promoted {
                    repository: c.repository.clone(),
                    digest: c.pinned.manifest_digest.clone(),
                    from_tag: options.from.clone(),
                    signed_as: c.signed_as.clone(),
                })
                .collect(),
            bundle: PromotedBundle {
                repository: bundle_name.clone(),
                digest: bundle_digest.clone(),
                signed_as,
            },
        };
        files.insert(dist::FILE.to_owned(), plan.to_json().into_bytes());
        files.insert(
            format!("promotions/{}.json", options.to),
            crate::util::json::pretty(&record).into_bytes(),
        );
        // DIST as it will be: the same files overlaid, `oci/` with the bundle and its signature.
        let mut before = BTreeMap::new();
        read_tree(out.path(), out.path(), &mut before)?;
        let mut after = before.clone();
        let written: BTreeSet<String> = files.keys().cloned().collect();
        after.extend(files);
        if signed_now {
            let manifest = layout::Prepackaged {
                name: &bundle_name,
                manifest: &bundle.manifest,
                blobs: &bundle.blobs,
            };
            sign::put_signed(&mut after, "oci/", manifest, &signature).map_err(|source| {
                PromoteError::BundleLayout {
                    layout: layout_dir.clone(),
                    source,
                }
            })?;
        }

        // The bundle and its signature by digest: no tag a controller polls moves yet.
        let bundle_repository = options.registry.repository(&bundle_name);
        publish(
            &session,
            &bundle_repository,
            &bundle.manifest,
            &bundle.blobs,
            &bundle_digest,
        )
        .await?;
        publish(
            &session,
            &bundle_repository,
            &signature.manifest,
            &signature.blobs,
            &sign::signature_tag(&bundle_digest),
        )
        .await?;

        let (mut tags_set, mut tags_unchanged) = (0, 0);
        for c in &candidates {
            let repository = options.registry.repository(&c.repository);
            let digest = &c.pinned.manifest_digest;
            if session.manifest_digest(&repository, &options.to).await? == Some(digest.clone()) {
                tags_unchanged += 1;
                continue;
            }
            let bytes = bytes::Bytes::from(c.manifest.clone());
            session
                .put_manifest(&repository, &options.to, &bytes, &c.media_type)
                .await?;
            check_tag(&session, options, &repository, digest, &c.media_type).await?;
            tags_set += 1;
        }

        // Last, the bundle's tag: what deploys it.
        let bundle_tagged = publish(
            &session,
            &bundle_repository,
            &bundle.manifest,
            &BTreeMap::new(),
            &options.to,
        )
        .await?;
        check_tag(
            &session,
            options,
            &bundle_repository,
            &bundle_digest,
            MANIFEST_MEDIA_TYPE,
        )
        .await?;
        let found =
            sign::verify_in_registry(&session, &bundle_repository, &options.to, key).await?;
        if let Err(problem) = found.checked.outcome {
            return Err(PromoteError::BundleUnverified {
                registry: options.registry.host.clone(),
                reference: format!("{bundle_repository}:{}", options.to),
                problem,
            });
        }

        let rewritten = after
            .iter()
            .filter(|(path, bytes)| written.contains(*path) || before.get(*path) != Some(*bytes))
            .map(|(path, _)| path.clone())
            .collect();
        let removed = before
            .keys()
            .filter(|path| !after.contains_key(*path))
            .cloned()
            .collect();
        out.write(&after)?;
        Ok(Report {
            record,
            tags_set,
            tags_unchanged,
            bundle_tagged,
            bundle_signed_now: signed_now,
            rewritten,
            removed,
        })
    })
}

/// Puts `manifest` into `repository` as `reference` (a tag or its digest) with each of its
/// `blobs` the registry lacks, unless `reference` names it already; whether it was PUT.
async fn publish(
    session: &Session,
    repository: &str,
    manifest: &[u8],
    blobs: &BTreeMap<String, Vec<u8>>,
    reference: &str,
) -> Result<bool, registry::Error> {
    for (digest, bytes) in blobs {
        if !session.blob_exists(repository, digest).await? {
            session
                .push_blob(repository, bytes::Bytes::from(bytes.clone()), digest)
                .await?;
        }
    }
    if session.manifest_digest(repository, reference).await? == Some(sha256(manifest)) {
        return Ok(false);
    }
    let bytes = bytes::Bytes::copy_from_slice(manifest);
    session
        .put_manifest(repository, reference, &bytes, MANIFEST_MEDIA_TYPE)
        .await?;
    Ok(true)
}

/// Fetches the tag `<to>` of `repository` back: it must hold the manifest `digest`.
async fn check_tag(
    session: &Session,
    options: &Options,
    repository: &str,
    digest: &str,
    media_type: &str,
) -> Result<(), PromoteError> {
    let served = session
        .manifest(repository, &options.to, &[media_type])
        .await?;
    let actual = served
        .as_deref()
        .map_or_else(|| "nothing".to_owned(), sha256);
    if actual != digest {
        return Err(PromoteError::Moved {
            registry: options.registry.host.clone(),
            reference: format!("{repository}:{}", options.to),
            expected: digest.to_owned(),
            actual,
        });
    }
    Ok(())
}

/// The artifact tagged `from` in `repository`: verified, and fit for `to`'s deployment.
async fn candidate(
    session: &Session,
    options: &Options,
    project_registry: &str,
    repository: &str,
    served: Option<&[String]>,
    key: &VerifyingKey,
) -> Result<Candidate, PromoteError> {
    let full = options.registry.repository(repository);
    let found = sign::verify_in_registry(session, &full, &options.from, key).await?;
    let reference = found.checked.name.clone();
    let digest = found.checked.digest.clone();
    let signed_as = match found.checked.outcome {
        Ok(signed_as) => signed_as,
        Err(Problem::NoManifest) => {
            return Err(PromoteError::NotTagged {
                reference,
                from: options.from.clone(),
            });
        }
        Err(problem) => {
            return Err(PromoteError::Refused {
                reference,
                digest,
                problem,
            });
        }
    };
    let manifest = found
        .manifest
        .expect("a verified artifact has its manifest");
    let incompatible = |reason: String| PromoteError::Incompatible {
        reference: reference.clone(),
        digest: digest.clone(),
        reason,
    };
    let parsed: ImageManifest = serde_json::from_slice(&manifest)
        .map_err(|e| incompatible(format!("its manifest is not JSON: {e}")))?;
    let layers: Vec<&Descriptor> = parsed
        .layers
        .iter()
        .filter(|l| l.media_type == LAYER_MEDIA_TYPE)
        .collect();
    let [layer] = layers.as_slice() else {
        return Err(incompatible(format!(
            "a Wasm artifact has one `{LAYER_MEDIA_TYPE}` layer, this one {}",
            layers.len()
        )));
    };
    let component_digest = layer.digest.clone();
    let config = session
        .blob(&full, &parsed.config.digest, MAX_CONFIG_BYTES)
        .await?;
    let config: WasmConfig = serde_json::from_slice(&config)
        .map_err(|e| incompatible(format!("its config is not JSON: {e}")))?;
    if let Some(served) = served {
        let imports: BTreeSet<&str> = config
            .component
            .imports
            .iter()
            .map(String::as_str)
            .collect();
        let served: BTreeSet<&str> = served.iter().map(String::as_str).collect();
        let unserved: Vec<&str> = imports.difference(&served).copied().collect();
        let unused: Vec<&str> = served.difference(&imports).copied().collect();
        if !unserved.is_empty() || !unused.is_empty() {
            let mut why = Vec::new();
            if !unserved.is_empty() {
                why.push(format!(
                    "it imports {}, which `{}`'s deployment does not serve",
                    crate::diag::quoted_list(&unserved),
                    options.to
                ));
            }
            if !unused.is_empty() {
                why.push(format!(
                    "`{}`'s deployment serves it {}, which it does not import",
                    options.to,
                    crate::diag::quoted_list(&unused)
                ));
            }
            return Err(incompatible(format!(
                "{}: it was built from another spec than DIST's; promote with the DIST of the \
                 compile `{}` runs",
                why.join("; "),
                options.from
            )));
        }
    }
    Ok(Candidate {
        repository: repository.to_owned(),
        media_type: parsed
            .media_type
            .unwrap_or_else(|| MANIFEST_MEDIA_TYPE.to_owned()),
        pinned: ArtifactRef {
            image: format!("{project_registry}/{repository}@{digest}"),
            repository: repository.to_owned(),
            manifest_digest: digest.clone(),
            component_digest,
            imports: config.component.imports.into_iter().collect(),
            customer: parsed.annotations.get(layout::CUSTOMER).cloned(),
        },
        manifest,
        signed_as,
    })
}

/// Every file under `dir`, by path relative to `root` (with `/`).
fn read_tree(
    root: &Path,
    dir: &Path,
    files: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), PromoteError> {
    for entry in std::fs::read_dir(dir).map_err(IoError::at(dir))? {
        let path = entry.map_err(IoError::at(dir))?.path();
        if path.is_dir() {
            read_tree(root, &path, files)?;
        } else {
            let relative = path.strip_prefix(root).expect("under the root");
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            files.insert(name, std::fs::read(&path).map_err(IoError::at(&path))?);
        }
    }
    Ok(())
}
