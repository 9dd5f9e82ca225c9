//! The two sides of `etl diff`: a directory (an `etl compile` output, or a pipeline repo) or a
//! git ref of the pipeline repo, exported and compiled in memory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::build::dist::{self, Plan};
use crate::oci::claims::AccountKey;
use crate::store::Cache;

/// How to compile a side given as a git ref (or a pipeline repo directory).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The pipeline repo whose refs are meant (`--repo`).
    pub repo: PathBuf,
    /// Cache of componentized modules and compositions.
    pub cache: Option<Cache>,
    /// The source URL recorded in the plan's provenance, as `etl compile --source`.
    pub source: Option<String>,
    /// The value of `SOURCE_DATE_EPOCH`, if set: wins over the commit time, as for `compile`.
    pub source_date_epoch: Option<String>,
    /// The account whose claims the 1.x artifacts get, as `etl compile --claims-key`.
    pub claims: Option<AccountKey>,
}

/// Why a side could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// Neither a directory nor a git ref.
    #[error("`{arg}` is neither a directory nor a git ref of the pipeline repo `{}`{hint}", repo.display())]
    NotFound {
        /// The argument as given.
        arg: String,
        /// The repo searched for refs.
        repo: PathBuf,
        /// ` (did you mean …?)`, or empty.
        hint: String,
    },
    /// A directory that is neither an `etl compile` output nor a pipeline repo.
    #[error(
        "`{}` has neither a plan.json (an `etl compile` output) nor an etl.yaml (a pipeline repo)",
        .0.display()
    )]
    NotAPlan(PathBuf),
    /// A plan.json that cannot be read as a plan.
    #[error("`{path}` is not a plan: {message}")]
    BadPlan {
        /// Where it was read.
        path: String,
        /// Why not.
        message: String,
    },
    /// git failed.
    #[error("{0}")]
    Git(String),
    /// The repo at that side does not compile: its diagnostics say why.
    #[error("{label} does not compile: fix its errors to compare it")]
    Invalid {
        /// Which side, for people (`` `HEAD~1` of `.` ``).
        label: String,
        /// What the diagnostics' file paths are relative to, for showing them.
        root: String,
        /// The diagnostics and the sources they point into.
        validation: Box<crate::spec::Validation>,
    },
    /// Reading files or compiling failed.
    #[error(transparent)]
    Etl(#[from] crate::spec::Error),
    /// `SOURCE_DATE_EPOCH` is unusable.
    #[error(transparent)]
    Provenance(#[from] crate::build::provenance::ProvenanceError),
}

/// Loads one side: `arg` is a directory (an `etl compile` output, or a pipeline repo, compiled
/// in memory) when such a path exists, else a git ref of `options.repo`, exported and compiled
/// in memory.
pub fn load(arg: &str, options: &Options) -> Result<Snapshot, DiffError> {
    let path = Path::new(arg);
    if path.exists() {
        return load_path(arg, path, options);
    }
    if !arg.starts_with('-')
        && let Some(commit) = resolve_ref(&options.repo, arg)
    {
        return load_ref(arg, &commit, options);
    }
    Err(DiffError::NotFound {
        arg: arg.to_owned(),
        repo: options.repo.clone(),
        hint: near_misses(arg, &options.repo)
            .map(|h| format!(" ({h})"))
            .unwrap_or_default(),
    })
}

fn load_path(arg: &str, path: &Path, options: &Options) -> Result<Snapshot, DiffError> {
    let plan = if path.is_dir() {
        path.join(dist::FILE)
    } else {
        path.to_owned()
    };
    if plan.is_file() {
        let (plan, _) = dist::read_file(&plan).map_err(|e| match e {
            dist::ReadError::Io(e) => DiffError::Etl(crate::spec::Error::Io(e)),
            dist::ReadError::Invalid { path, reason } => DiffError::BadPlan {
                path: path.display().to_string(),
                message: reason.to_string(),
            },
        })?;
        return Ok(Snapshot::from_plan(arg, plan));
    }
    if path.join("etl.yaml").is_file() {
        let written: Vec<&Path> = options.cache.iter().map(Cache::dir).collect();
        let provenance = crate::build::provenance::discover(
            path,
            &written,
            options.source_date_epoch.as_deref(),
            options.source.clone(),
        )?;
        return compile(arg, path, &format!("`{arg}`"), arg, options, &provenance);
    }
    Err(DiffError::NotAPlan(path.to_owned()))
}

fn load_ref(arg: &str, commit: &str, options: &Options) -> Result<Snapshot, DiffError> {
    let repo = &options.repo;
    // As `etl compile` records a work tree's provenance: the last commit at or before `commit`
    // that changed the pipeline repo's directory.
    let line = git(repo, &["log", "-1", "--format=%H %ct", commit, "--", "."])?;
    let (hash, time) = line
        .split_once(' ')
        .ok_or_else(|| DiffError::Git(format!("git log gave `{line}` for `{arg}`")))?;
    let time: i64 = time
        .parse()
        .map_err(|_| DiffError::Git(format!("git log gave the commit time `{time}`")))?;
    // `git archive` run in a subdirectory archives only that part of the tree it is given, so
    // it runs at the top, on the subtree where `repo` is.
    let top = PathBuf::from(git(repo, &["rev-parse", "--show-toplevel"])?);
    let prefix = git(repo, &["rev-parse", "--show-prefix"])?;
    let tree = match prefix.trim_end_matches('/') {
        "" => hash.to_owned(),
        sub => format!("{hash}:{sub}"),
    };
    let tmp = tempfile::Builder::new()
        .prefix("etl-diff-")
        .tempdir()
        .map_err(|source| {
            crate::spec::Error::Io(crate::util::io::IoError::new(std::env::temp_dir(), source))
        })?;
    export(&top, &tree, tmp.path()).map_err(|e| {
        DiffError::Git(format!(
            "`{}` at `{arg}` cannot be exported: {e}",
            repo.display()
        ))
    })?;
    // `discover` semantics with the ref's commit: SOURCE_DATE_EPOCH wins, then the commit time;
    // the revision is the commit (a commit is never dirty).
    let mut provenance = crate::build::provenance::discover(
        tmp.path(),
        &[],
        options.source_date_epoch.as_deref(),
        options.source.clone(),
    )?;
    if options
        .source_date_epoch
        .as_deref()
        .is_none_or(|s| s.trim().is_empty())
    {
        provenance.created = time;
    }
    provenance.revision = Some(hash.to_owned());
    let label = format!("`{arg}` of `{}`", repo.display());
    let root = repo.display().to_string();
    compile(arg, tmp.path(), &label, &root, options, &provenance)
}

fn compile(
    arg: &str,
    root: &Path,
    label: &str,
    shown_root: &str,
    options: &Options,
    provenance: &crate::oci::layout::Provenance,
) -> Result<Snapshot, DiffError> {
    let build = crate::build::build_with(
        root,
        options.cache.as_ref(),
        provenance,
        options.claims.as_ref(),
    )?;
    match build.plan {
        Some(plan) => Ok(Snapshot::from_plan(arg, plan)),
        None => Err(DiffError::Invalid {
            label: label.to_owned(),
            root: shown_root.to_owned(),
            validation: Box::new(build.validation),
        }),
    }
}

/// `git -C repo args…`, its trimmed stdout, or its stderr as the error.
fn git(repo: &Path, args: &[&str]) -> Result<String, DiffError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|e| DiffError::Git(format!("git cannot be run: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(DiffError::Git(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The commit `rev` names in `repo`, if it names one.
fn resolve_ref(repo: &Path, rev: &str) -> Option<String> {
    git(
        repo,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .ok()
    .filter(|c| !c.is_empty())
}

/// `git archive <tree> | tar -x -C <to>`.
fn export(repo: &Path, tree: &str, to: &Path) -> Result<(), String> {
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["archive", "--format=tar", tree])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("git cannot be run: {e}"))?;
    let stdout = archive.stdout.take().expect("piped");
    let untar = Command::new("tar")
        .arg("-x")
        .arg("-f")
        .arg("-")
        .arg("-C")
        .arg(to)
        .stdin(stdout)
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("tar cannot be run: {e}"))?;
    let archived = archive.wait_with_output().map_err(|e| e.to_string())?;
    if !archived.status.success() {
        return Err(String::from_utf8_lossy(&archived.stderr).trim().to_owned());
    }
    if !untar.status.success() {
        return Err(format!(
            "tar: {}",
            String::from_utf8_lossy(&untar.stderr).trim()
        ));
    }
    Ok(())
}

/// "did you mean" over the directories next to `arg` and the branches and tags of `repo`.
fn near_misses(arg: &str, repo: &Path) -> Option<String> {
    let path = Path::new(arg);
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let name = path.file_name()?.to_string_lossy().into_owned();
    let mut candidates: Vec<String> = std::fs::read_dir(parent.unwrap_or(Path::new(".")))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    candidates.sort();
    let dir =
        crate::diag::closest(&name, candidates.iter().map(String::as_str)).map(|c| match parent {
            Some(p) => p.join(c).display().to_string(),
            None => c.to_owned(),
        });
    let refs = git(repo, &["for-each-ref", "--format=%(refname:short)"]).unwrap_or_default();
    let refs: Vec<&str> = refs.lines().collect();
    let rev = crate::diag::closest(arg, refs.iter().copied()).map(str::to_owned);
    match (dir, rev) {
        (Some(d), Some(r)) => Some(format!(
            "did you mean the directory `{d}` or the ref `{r}`?"
        )),
        (Some(d), None) => Some(format!("did you mean the directory `{d}`?")),
        (None, Some(r)) => Some(format!("did you mean the ref `{r}`?")),
        (None, None) => None,
    }
}

/// One side of a comparison: a compiled plan and where it came from.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The argument as given (`dist`, `HEAD~1`).
    pub arg: String,
    /// The commit it was compiled from, if known.
    pub revision: Option<String>,
    pub(super) plan: Plan,
}

impl Snapshot {
    /// A side read from the text of a `plan.json`; `arg` names it in the report, `path` in
    /// errors.
    pub fn from_plan_json(arg: &str, path: &str, text: &str) -> Result<Self, DiffError> {
        let plan = dist::parse(text.as_bytes()).map_err(|reason| DiffError::BadPlan {
            path: path.to_owned(),
            message: reason.to_string(),
        })?;
        Ok(Self::from_plan(arg, plan))
    }

    /// A side of a plan in memory; `arg` names it in the report.
    pub fn from_plan(arg: &str, plan: Plan) -> Self {
        Snapshot {
            arg: arg.to_owned(),
            revision: plan.provenance.revision.clone(),
            plan,
        }
    }
}
