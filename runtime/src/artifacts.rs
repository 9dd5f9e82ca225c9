//! The composed artifacts to run: from a compile in memory, or from a `dist/` that `etl
//! compile` wrote (checked against its `plan.json` and against the repo it claims to be from),
//! of one wasmCloud generation (the two behave the same: the runner serves both).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Artifact;
use etl::build::dist::{self, Plan};
use etl::build::generation::Generation;
use etl::spec::load::Repo;
use etl::util::digest::sha256;
use etl::util::io::IoError;

/// Artifacts by pipeline, then by unit (step or sink) name.
pub type Artifacts = BTreeMap<String, BTreeMap<String, Artifact>>;

/// Why a `dist/` cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// A file is missing or unreadable.
    #[error(transparent)]
    Io(#[from] etl::util::io::IoError),
    /// `plan.json` is not a plan.
    #[error("`{}` is not an etl plan: {message}", path.display())]
    BadPlan {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// An artifact's bytes do not hash to the plan's digest.
    #[error("`{}` does not hash to {expected} as `plan.json` says (it hashes to {actual}): the directory was changed after `etl compile`", path.display())]
    Tampered {
        /// The file.
        path: PathBuf,
        /// The plan's digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// The repo's specs are not the ones the plan was compiled from.
    #[error("`{}` was compiled from other specs ({}); run `etl compile` again", dist.display(), changed.join(", "))]
    Stale {
        /// The directory.
        dist: PathBuf,
        /// What changed, e.g. "`pipelines/a.yaml` changed".
        changed: Vec<String>,
    },
}

/// The `generation` artifacts of a compile done in memory ([`etl::build::build`]).
pub fn from_build(
    plan: &Plan,
    files: &BTreeMap<String, Vec<u8>>,
    generation: Generation,
) -> Artifacts {
    let mut shared: BTreeMap<&str, Arc<[u8]>> = BTreeMap::new();
    let mut out = Artifacts::new();
    for p in &plan.pipelines {
        let units = out.entry(p.name.clone()).or_default();
        for u in p.units() {
            let artifact = u
                .artifact_of(generation)
                .expect("a compile builds every generation");
            let bytes = shared
                .entry(artifact.path.as_str())
                .or_insert_with(|| Arc::from(files[&artifact.path].as_slice()))
                .clone();
            units.insert(
                u.name.clone(),
                Artifact {
                    digest: artifact.digest.clone(),
                    bytes,
                    egress: u
                        .customer
                        .as_ref()
                        .map(|c| c.egress.clone())
                        .unwrap_or_default(),
                },
            );
        }
    }
    out
}

/// The `generation` artifacts of `dist`, after checking that each hashes to its digest and
/// that `repo`'s spec files are the ones `dist` was compiled from.
pub fn from_dist(dist: &Path, repo: &Repo, generation: Generation) -> Result<Artifacts, DistError> {
    from_dist_checked(dist, &etl::build::input_digests(repo), generation)
}

/// [`from_dist`], with the digests of the repo's spec files (`current`) given.
fn from_dist_checked(
    dist: &Path,
    current: &BTreeMap<String, String>,
    generation: Generation,
) -> Result<Artifacts, DistError> {
    let plan_path = dist.join(dist::FILE);
    let plan = dist::read(dist).map_err(|e| match e {
        dist::ReadError::Io(e) => DistError::Io(e),
        dist::ReadError::Invalid { path, reason } => DistError::BadPlan {
            path,
            message: reason.to_string(),
        },
    })?;
    let mut changed = Vec::new();
    for (file, digest) in &plan.inputs {
        match current.get(file) {
            None => changed.push(format!("`{file}` is gone")),
            Some(d) if d != digest => changed.push(format!("`{file}` changed")),
            Some(_) => {}
        }
    }
    for file in current.keys() {
        if !plan.inputs.contains_key(file) {
            changed.push(format!("`{file}` is new"));
        }
    }
    if !changed.is_empty() {
        return Err(DistError::Stale {
            dist: dist.to_owned(),
            changed,
        });
    }
    let mut shared: BTreeMap<String, Arc<[u8]>> = BTreeMap::new();
    let mut out = Artifacts::new();
    for p in plan.pipelines {
        let units = out.entry(p.name).or_default();
        for u in p.steps.into_iter().chain(p.sinks) {
            let name = u.name.clone();
            let artifact =
                u.artifact_of(generation)
                    .cloned()
                    .ok_or_else(|| DistError::BadPlan {
                        path: plan_path.clone(),
                        message: format!(
                            "`{name}` has no {generation} artifact: it was compiled by an earlier \
                         etl; run `etl compile` again, or run its 1.x artifacts with \
                         `--generation v1`"
                        ),
                    })?;
            let bytes = match shared.get(&artifact.path) {
                Some(b) => b.clone(),
                None => {
                    if artifact.path.contains("..") || Path::new(&artifact.path).is_absolute() {
                        return Err(DistError::BadPlan {
                            path: plan_path,
                            message: format!(
                                "artifact path `{}` leaves the directory",
                                artifact.path
                            ),
                        });
                    }
                    let path = dist.join(&artifact.path);
                    let bytes = std::fs::read(&path).map_err(IoError::at(&path))?;
                    let actual = sha256(&bytes);
                    if actual != artifact.digest {
                        return Err(DistError::Tampered {
                            path,
                            expected: artifact.digest,
                            actual,
                        });
                    }
                    let bytes: Arc<[u8]> = Arc::from(bytes);
                    shared.insert(artifact.path.clone(), bytes.clone());
                    bytes
                }
            };
            units.insert(
                name,
                Artifact {
                    digest: artifact.digest,
                    bytes,
                    egress: u.customer.map(|c| c.egress).unwrap_or_default(),
                },
            );
        }
    }
    Ok(out)
}

/// Where `etl run` and `etl test` take the artifacts from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Compile the repo in memory (with this cache): the bytes `etl compile` would write.
    Build(Option<etl::store::Cache>),
    /// A `dist/` directory written by `etl compile` from this repo.
    Dist(PathBuf),
}

/// Why the artifacts could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The repo could not be read.
    #[error(transparent)]
    Repo(#[from] etl::spec::Error),
    /// The `dist/` is unusable.
    #[error(transparent)]
    Dist(#[from] DistError),
}

/// Validates the repo at `root` and gets the artifacts of every pipeline from `origin`; `None`
/// when the repo has errors (the validation has them).
pub fn prepare(
    root: &Path,
    origin: &Origin,
    generation: Generation,
) -> Result<(etl::spec::Validation, Option<Artifacts>), PrepareError> {
    let prepared = prepare_only(root, origin, &Selection::default(), generation)?;
    Ok((prepared.validation, prepared.artifacts))
}

/// Which pipelines to run: those named (every one when none is), and with `downstream` every
/// pipeline that reads one of them through a `connector: pipeline` source, transitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The pipelines named.
    pub named: Vec<String>,
    /// Whether their sub-pipelines come too.
    pub downstream: bool,
}

impl Selection {
    /// The pipelines named, without their sub-pipelines.
    pub fn only(named: &[String]) -> Self {
        Selection {
            named: named.to_vec(),
            downstream: false,
        }
    }
}

/// The artifacts of some pipelines, and what was found on the way.
#[derive(Debug)]
pub struct Prepared {
    /// The validation, narrowed to the pipelines asked for (see [`narrow`]).
    pub validation: etl::spec::Validation,
    /// The artifacts; `None` when the validation has errors.
    pub artifacts: Option<Artifacts>,
    /// Files of other pipelines (and their fixtures) with errors that were set aside.
    pub set_aside: Vec<String>,
    /// The pipelines selected: those named, then those `downstream` added (in repo order);
    /// every pipeline when none is named.
    pub pipelines: Vec<String>,
}

/// [`prepare`] for the pipelines `selection` names: problems in the files of other pipelines
/// and of their fixtures do not stop these (see [`narrow`]).
pub fn prepare_only(
    root: &Path,
    origin: &Origin,
    selection: &Selection,
    generation: Generation,
) -> Result<Prepared, PrepareError> {
    let cache = match origin {
        Origin::Build(cache) => cache.as_ref(),
        Origin::Dist(_) => None,
    };
    let validation = etl::spec::validate_with(root, cache)?;
    let pipelines = selected(&validation.repo, selection);
    match origin {
        Origin::Build(cache) => {
            let (validation, set_aside) = narrow(validation, &pipelines_if(selection, &pipelines));
            let build =
                etl::build::build_validated(validation, cache.as_ref(), &Default::default());
            let artifacts = build
                .plan
                .as_ref()
                .map(|p| from_build(p, &build.files, generation));
            Ok(Prepared {
                validation: build.validation,
                artifacts,
                set_aside,
                pipelines,
            })
        }
        Origin::Dist(dist) => {
            // The `dist/` must have been compiled from this very repo, every file of it.
            let whole = etl::build::input_digests(&validation.repo);
            let (validation, set_aside) = narrow(validation, &pipelines_if(selection, &pipelines));
            if validation.has_errors() {
                return Ok(Prepared {
                    validation,
                    artifacts: None,
                    set_aside,
                    pipelines,
                });
            }
            let artifacts = from_dist_checked(dist, &whole, generation)?;
            Ok(Prepared {
                validation,
                artifacts: Some(artifacts),
                set_aside,
                pipelines,
            })
        }
    }
}

/// `pipelines` when `selection` names some, else none (nothing to narrow to).
fn pipelines_if(selection: &Selection, pipelines: &[String]) -> Vec<String> {
    if selection.named.is_empty() {
        Vec::new()
    } else {
        pipelines.to_vec()
    }
}

/// The pipelines `selection` selects in `repo`: the named ones (all when none is), then, with
/// `downstream`, the pipelines that read them, transitively, in repo order.
fn selected(repo: &Repo, selection: &Selection) -> Vec<String> {
    if selection.named.is_empty() {
        return repo
            .pipelines
            .iter()
            .map(|p| p.spec.metadata.name.to_string())
            .collect();
    }
    let mut out = selection.named.clone();
    if selection.downstream {
        let mut grew = true;
        while grew {
            grew = false;
            for p in &repo.pipelines {
                let name = p.spec.metadata.name.as_str();
                let reads = p.spec.spec.source.upstream().map(|u| u.pipeline);
                if !out.iter().any(|o| o == name)
                    && reads.is_some_and(|u| out.iter().any(|o| o == u))
                {
                    out.push(name.to_owned());
                    grew = true;
                }
            }
        }
    }
    out
}

/// `names` and every pipeline they read through `connector: pipeline` sources, transitively:
/// what planning them needs.
fn with_upstream(repo: &Repo, names: &[String]) -> Vec<String> {
    let mut out = names.to_vec();
    let mut k = 0;
    while k < out.len() {
        let upstream = repo
            .pipelines
            .iter()
            .find(|p| *p.spec.metadata.name == *out[k])
            .and_then(|p| p.spec.spec.source.upstream())
            .map(|u| u.pipeline.to_owned());
        if let Some(u) = upstream
            && !out.contains(&u)
        {
            out.push(u);
        }
        k += 1;
    }
    out
}

/// `validation` narrowed to the pipelines named in `only` (unchanged when it is empty): the
/// repo keeps only those pipelines, the pipelines they read (sub-pipelines are planned with
/// what they read) and the fixtures of those named, and the diagnostics only those that
/// concern them, that is all but the ones in the files of other pipelines and of other
/// fixtures. Returns the files whose errors were set aside.
///
/// When a pipeline of `only`, or one they read, did not load, nothing is narrowed: its broken
/// file may be any of those that did not load.
pub fn narrow(
    mut validation: etl::spec::Validation,
    only: &[String],
) -> (etl::spec::Validation, Vec<String>) {
    use etl::spec::schema::FileKind;
    let repo = &validation.repo;
    let wanted = |name: &str| only.iter().any(|p| p == name);
    let loaded = |name: &String| {
        repo.pipelines
            .iter()
            .any(|l| *l.spec.metadata.name == **name)
    };
    let planned = with_upstream(repo, only);
    if only.is_empty() || !planned.iter().all(loaded) {
        return (validation, Vec::new());
    }
    let kept = |name: &str| planned.iter().any(|p| p == name);
    // The files that belong to other pipelines: theirs and their fixtures'.
    let mut elsewhere: Vec<String> = Vec::new();
    for p in &repo.pipelines {
        if !kept(&p.spec.metadata.name) {
            elsewhere.push(p.file.clone());
        }
    }
    for t in &repo.tests {
        if !wanted(&t.spec.spec.pipeline) {
            elsewhere.push(t.file.clone());
        }
    }
    for u in &repo.unloaded {
        let other = match u.kind {
            // Every pipeline kept loaded, so a pipeline file that did not is another one.
            FileKind::Pipeline => true,
            // A fixture is another pipeline's when it says so.
            FileKind::Test => repo
                .sources
                .get(&u.file)
                .and_then(|text| etl::spec::yaml::parse(&u.file, text).ok())
                .and_then(|tree| {
                    tree.pointer("/spec/pipeline")
                        .and_then(|c| c.node.as_str().map(str::to_owned))
                })
                .is_some_and(|p| !wanted(&p)),
            _ => false,
        };
        if other {
            elsewhere.push(u.file.clone());
        }
    }
    let mut set_aside: Vec<String> = Vec::new();
    validation.diagnostics.retain(|d| {
        let Some(file) = d.location.as_ref().map(|l| &l.file) else {
            return true;
        };
        if !elsewhere.contains(file) {
            return true;
        }
        if d.is_error() && !set_aside.contains(file) {
            set_aside.push(file.clone());
        }
        false
    });
    let repo = &mut validation.repo;
    repo.pipelines.retain(|p| kept(&p.spec.metadata.name));
    repo.tests.retain(|t| wanted(&t.spec.spec.pipeline));
    repo.unloaded.retain(|u| !elsewhere.contains(&u.file));
    set_aside.sort();
    (validation, set_aside)
}
