//! Where a compile comes from: the time and commit `plan.json` records, found without the clock.
//! `SOURCE_DATE_EPOCH` wins, then the pipeline repo's last commit time, then 0, so the same
//! inputs give the same bytes on any machine, any day.
//!
//! What etl itself writes inside the repo (the output directory, the cache) is never a change of
//! the inputs: it neither makes the work tree dirty nor counts as the last commit, so compiling
//! into `dist/` of an unignored work tree, or committing `dist/`, changes nothing next time.

use std::path::Path;
use std::process::Command;

use crate::oci::layout::{MAX_CREATED, Provenance};

/// Why the provenance could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    /// `SOURCE_DATE_EPOCH` is not a whole number of seconds in range.
    #[error(
        "SOURCE_DATE_EPOCH is `{0}`; expected whole seconds since 1970-01-01 UTC, 0 to {MAX_CREATED}"
    )]
    SourceDateEpoch(String),
}

/// The provenance of the repo at `root`: `created` from `source_date_epoch` (the value of
/// `SOURCE_DATE_EPOCH`, if set), else the time of the last commit that changed `root`, else 0;
/// `revision` that commit, when the work tree has no uncommitted changes under `root`; `source`
/// as given. `written` are the paths etl writes (the output directory, the cache): where they
/// are inside `root`, they count neither as changes nor as commits.
pub fn discover(
    root: &Path,
    written: &[&Path],
    source_date_epoch: Option<&str>,
    source: Option<String>,
) -> Result<Provenance, ProvenanceError> {
    let excluded = exclusions(root, written);
    let commit = head(root, &excluded);
    let created = match epoch(source_date_epoch)? {
        Some(time) => time,
        None => commit.as_ref().map(|(_, time)| *time).unwrap_or(0),
    };
    Ok(Provenance {
        created,
        source,
        revision: commit
            .filter(|_| clean(root, &excluded))
            .map(|(hash, _)| hash),
    })
}

/// The time a `SOURCE_DATE_EPOCH` value gives, if it is set and not empty.
pub fn epoch(source_date_epoch: Option<&str>) -> Result<Option<i64>, ProvenanceError> {
    source_date_epoch
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|text| {
            text.parse::<i64>()
                .ok()
                .filter(|t| (0..=MAX_CREATED).contains(t))
                .ok_or_else(|| ProvenanceError::SourceDateEpoch(text.to_owned()))
        })
        .transpose()
}

/// The time an operation records when it happens (`etl promote`): `source_date_epoch` when set,
/// else the clock.
pub fn now(source_date_epoch: Option<&str>) -> Result<i64, ProvenanceError> {
    Ok(epoch(source_date_epoch)?.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }))
}

/// Whether `root` has uncommitted changes that would make the commit a lie (`written` as for
/// [`discover`]).
pub fn is_dirty(root: &Path, written: &[&Path]) -> bool {
    let excluded = exclusions(root, written);
    head(root, &excluded).is_some() && !clean(root, &excluded)
}

/// The git pathspecs (`:(exclude,literal)<path>`, relative to `root`) that leave out each of
/// `written` inside `root`. `root` itself is never left out.
fn exclusions(root: &Path, written: &[&Path]) -> Vec<String> {
    let Ok(root) = crate::util::out_dir::resolve(root) else {
        return Vec::new();
    };
    written
        .iter()
        .filter_map(|p| {
            let path = crate::util::out_dir::resolve(p).ok()?;
            path.strip_prefix(&root).ok().map(Path::to_owned)
        })
        .filter(|relative| !relative.as_os_str().is_empty())
        .map(|relative| format!(":(exclude,literal){}", relative.display()))
        .collect()
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The last commit that changed anything under `root` but the `excluded` pathspecs, and its
/// time, if `root` is in a git work tree with such commits. Path-limited, so a pipeline repo kept
/// in a subdirectory of a larger repository gets no new provenance from commits elsewhere.
fn head(root: &Path, excluded: &[String]) -> Option<(String, i64)> {
    let mut args = vec!["log", "-1", "--format=%H %ct", "--", "."];
    args.extend(excluded.iter().map(String::as_str));
    let line = git(root, &args)?;
    let (hash, time) = line.split_once(' ')?;
    Some((hash.to_owned(), time.parse().ok()?))
}

/// Whether nothing under `root` but the `excluded` pathspecs differs from the commit.
fn clean(root: &Path, excluded: &[String]) -> bool {
    let mut args = vec![
        "status",
        "--porcelain",
        "--untracked-files=normal",
        "--",
        ".",
    ];
    args.extend(excluded.iter().map(String::as_str));
    git(root, &args).is_some_and(|s| s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_date_epoch_wins_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = discover(dir.path(), &[], Some("1700000000"), None).unwrap();
        assert_eq!(p.created, 1_700_000_000);
        assert_eq!(p.revision, None);
        for bad in ["-1", "1.5", "soon", "253402300800"] {
            let e = discover(dir.path(), &[], Some(bad), None).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn outside_git_it_is_zero() {
        let dir = tempfile::tempdir().unwrap();
        let p = discover(dir.path(), &[], None, Some("https://git.example/p".into())).unwrap();
        assert_eq!(p.created, 0);
        assert_eq!(p.revision, None);
        assert_eq!(p.source.as_deref(), Some("https://git.example/p"));
    }

    #[test]
    fn a_clean_commit_gives_its_hash_and_time_and_a_change_drops_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .env("GIT_COMMITTER_DATE", "1600000000 +0000")
                .env("GIT_AUTHOR_DATE", "1600000000 +0000")
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        };
        let commit = |message: &str| {
            run(&["add", "."]);
            let identity = ["-c", "user.name=t", "-c", "user.email=t@t"];
            run(&[&identity[..], &["commit", "-q", "-m", message]].concat());
        };
        run(&["init", "-q"]);
        std::fs::write(dir.path().join("etl.yaml"), "x").unwrap();
        commit("m");
        let p = discover(dir.path(), &[], None, None).unwrap();
        assert_eq!(p.created, 1_600_000_000);
        assert_eq!(p.revision.as_ref().map(String::len), Some(40));
        // A commit outside the pipeline repo's directory does not re-stamp it.
        let repo = dir.path().join("pipelines-repo");
        std::fs::create_dir(&repo).unwrap();
        std::fs::write(repo.join("etl.yaml"), "x").unwrap();
        commit("repo");
        let inner = discover(&repo, &[], None, None).unwrap();
        std::fs::write(dir.path().join("README"), "elsewhere").unwrap();
        commit("other");
        assert_eq!(discover(&repo, &[], None, None).unwrap(), inner);
        assert_ne!(
            discover(dir.path(), &[], None, None).unwrap().revision,
            inner.revision
        );
        std::fs::write(dir.path().join("etl.yaml"), "y").unwrap();
        assert!(is_dirty(dir.path(), &[]));
        assert_eq!(
            discover(dir.path(), &[], None, None).unwrap().revision,
            None
        );
    }
}
