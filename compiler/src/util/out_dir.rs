//! Writing into the user's file system without losing anything of theirs.
//!
//! Two rules, shared by every command that writes:
//!
//! - A whole output directory (`etl compile --out`, the DIST `etl promote` rewrites) is written
//!   beside its place and swapped in with renames ([`OutputDir::write`]), and only over what is
//!   recognisably an earlier output: a directory holding the [`MARKER`] file every output gets.
//!   An absent or empty directory may become one; a file, any other non-empty directory, the
//!   pipeline repo, an ancestor of it and the current directory (or an ancestor) never are.
//! - Single files (`etl init`, `etl keygen`) are created new ([`create_new`]): an existing file,
//!   even a dangling symbolic link, is never replaced.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use crate::util::io::IoError;

/// The file every output directory holds, so that the next write recognises it.
pub const MARKER: &str = ".etl-output";

/// The marker's content: fixed, so that outputs stay byte-identical for identical inputs.
pub const MARKER_TEXT: &str = "This directory was written by etl, which replaces it as a whole \
on the next `etl compile` with the same output directory.\nKeep nothing else here.\n";

/// Why a directory or file was not written. Nothing was changed when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The output would be the pipeline repo itself.
    #[error(
        "`{}` is the pipeline repo: writing the output there would replace the repo with it; \
         write it to a directory of its own (e.g. `dist`)",
        out.display()
    )]
    IsRepo {
        /// The output as given.
        out: PathBuf,
    },
    /// The output would contain the pipeline repo.
    #[error(
        "`{}` contains the pipeline repo `{}`: writing the output there would delete the repo; \
         write it to a directory of its own (e.g. `dist`)",
        out.display(),
        repo.display()
    )]
    ContainsRepo {
        /// The output as given.
        out: PathBuf,
        /// The repo as given.
        repo: PathBuf,
    },
    /// The output is the current directory, or contains it.
    #[error(
        "`{}` is or contains the current directory, which etl cannot replace: run etl from \
         another directory, or write the output elsewhere",
        out.display()
    )]
    ContainsCwd {
        /// The output as given.
        out: PathBuf,
    },
    /// Something that is not a directory is in the way.
    #[error(
        "`{}` exists and is not a directory: refusing to replace it with the output",
        out.display()
    )]
    NotADirectory {
        /// The output as given.
        out: PathBuf,
    },
    /// A non-empty directory that etl did not write is in the way.
    #[error(
        "`{}` is a directory that etl did not write (it has no `{MARKER}`): refusing to replace \
         it; give a new or empty directory, or remove it first (an output of an etl older than \
         the marker has none either: remove it once)",
        out.display()
    )]
    NotAnOutput {
        /// The output as given.
        out: PathBuf,
    },
    /// The cache would be inside the output, which the next compile replaces as a whole.
    #[error(
        "the cache `{}` is inside the output `{}`, which every compile replaces as a whole: put \
         the cache elsewhere (--cache-dir), or leave it at its default",
        cache.display(),
        out.display()
    )]
    HoldsCache {
        /// The output as given.
        out: PathBuf,
        /// The cache directory as given.
        cache: PathBuf,
    },
    /// The directory to rewrite is not an `etl compile` output.
    #[error(
        "`{}` is not an `etl compile` output (it has no `{MARKER}`; outputs of an etl older than \
         the marker have none either): compile the repo into it again, then retry",
        out.display()
    )]
    NotToRewrite {
        /// The directory as given.
        out: PathBuf,
    },
    /// The output to rewrite does not exist.
    #[error("`{}` does not exist: give the directory `etl compile` wrote", out.display())]
    Missing {
        /// The output as given.
        out: PathBuf,
    },
    /// Files to create exist already.
    #[error(
        "{}: refusing to overwrite {}",
        paths.iter().map(|p| format!("`{}` exists", p.display())).collect::<Vec<_>>().join(", "),
        if paths.len() == 1 { "it" } else { "them" }
    )]
    Exists {
        /// The paths in the way.
        paths: Vec<PathBuf>,
    },
    /// A file or directory could not be read or written.
    #[error(transparent)]
    Io(#[from] crate::util::io::IoError),
}

/// What is at an output's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Nothing.
    Nothing,
    /// An empty directory.
    Empty,
    /// An earlier output: a directory with [`MARKER`].
    Output,
    /// A directory with other things in it.
    Foreign,
    /// A file, a symbolic link to nothing, or anything else that is not a directory.
    NotADirectory,
}

/// What a writer may replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A new output: nothing, an empty directory or an earlier output.
    Create,
    /// A rewrite: only an earlier output.
    Rewrite,
}

/// A checked place for a whole output directory: see the module docs.
#[derive(Debug, Clone)]
pub struct OutputDir {
    /// As given, for messages.
    given: PathBuf,
    /// Absolute, without symbolic links, `.` or `..`.
    resolved: PathBuf,
    mode: Mode,
}

impl OutputDir {
    /// The output directory of compiling `repo`: refused when it is the repo, an ancestor of
    /// it, the current directory or an ancestor of that, a file, or a non-empty directory that
    /// is not an earlier output.
    pub fn for_compile(out: &Path, repo: &Path) -> Result<Self, OutputError> {
        let dir = Self::new(out, Mode::Create)?;
        let repo_resolved = resolve(repo).map_err(IoError::at(repo))?;
        if repo_resolved == dir.resolved {
            return Err(OutputError::IsRepo {
                out: out.to_owned(),
            });
        }
        if repo_resolved.starts_with(&dir.resolved) {
            return Err(OutputError::ContainsRepo {
                out: out.to_owned(),
                repo: repo.to_owned(),
            });
        }
        dir.check_cwd()?;
        dir.check_replaceable()?;
        Ok(dir)
    }

    /// Refuses a `cache` directory inside (or at) the output: its files would make the output a
    /// directory etl did not write, and the next compile would replace them.
    pub fn check_cache(&self, cache: &Path) -> Result<(), OutputError> {
        if resolve(cache)
            .map_err(IoError::at(cache))?
            .starts_with(&self.resolved)
        {
            return Err(OutputError::HoldsCache {
                out: self.given.clone(),
                cache: cache.to_owned(),
            });
        }
        Ok(())
    }

    /// An earlier output, to rewrite: refused unless `dist` is a directory etl wrote (and not
    /// the current directory or an ancestor of it).
    pub fn for_rewrite(dist: &Path) -> Result<Self, OutputError> {
        let dir = Self::new(dist, Mode::Rewrite)?;
        dir.check_cwd()?;
        dir.check_replaceable()?;
        Ok(dir)
    }

    fn new(given: &Path, mode: Mode) -> Result<Self, OutputError> {
        Ok(Self {
            given: given.to_owned(),
            resolved: resolve(given).map_err(IoError::at(given))?,
            mode,
        })
    }

    /// Refuses the current directory and its ancestors (the root among them), which cannot be
    /// renamed away from under the process.
    fn check_cwd(&self) -> Result<(), OutputError> {
        let cwd = std::env::current_dir().map_err(IoError::at(Path::new(".")))?;
        let cwd = fs::canonicalize(&cwd).map_err(IoError::at(&cwd))?;
        if self.resolved.parent().is_none() || cwd.starts_with(&self.resolved) {
            return Err(OutputError::ContainsCwd {
                out: self.given.clone(),
            });
        }
        Ok(())
    }

    /// The directory as given.
    pub fn path(&self) -> &Path {
        &self.given
    }

    /// Whether what is there now may be replaced.
    fn check_replaceable(&self) -> Result<(), OutputError> {
        let out = self.given.clone();
        match (
            found(&self.resolved).map_err(IoError::at(&self.given))?,
            self.mode,
        ) {
            (Found::Output, _) | (Found::Nothing | Found::Empty, Mode::Create) => Ok(()),
            (Found::NotADirectory, _) => Err(OutputError::NotADirectory { out }),
            (Found::Nothing, Mode::Rewrite) => Err(OutputError::Missing { out }),
            (Found::Foreign, Mode::Create) => Err(OutputError::NotAnOutput { out }),
            (Found::Foreign | Found::Empty, Mode::Rewrite) => {
                Err(OutputError::NotToRewrite { out })
            }
        }
    }

    /// Writes `files` (by relative path, `/`-separated) and [`MARKER`] as the new content of the
    /// directory: first into a sibling `.<name>.new-…` directory, then swapped in with renames,
    /// so that a failure leaves what was there as it was, and nothing behind.
    pub fn write(&self, files: &BTreeMap<String, Vec<u8>>) -> Result<(), OutputError> {
        let out = &self.resolved;
        let (Some(parent), Some(name)) = (out.parent(), out.file_name()) else {
            unreachable!("`check_cwd` refuses the root");
        };
        let name = name.to_string_lossy();
        fs::create_dir_all(parent).map_err(IoError::at(parent))?;
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{name}.new-"))
            .tempdir_in(parent)
            .map_err(IoError::at(parent))?;
        let marker = (MARKER, MARKER_TEXT.as_bytes());
        let all = files
            .iter()
            .map(|(f, b)| (f.as_str(), b.as_slice()))
            .chain([marker]);
        for (file, bytes) in all {
            let path = staging.path().join(file);
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(IoError::at(dir))?;
            }
            fs::write(&path, bytes).map_err(IoError::at(&path))?;
        }
        // Again, right before the swap: the compile took a while.
        self.check_replaceable()?;
        if fs::symlink_metadata(out).is_err() {
            fs::rename(staging.path(), out).map_err(IoError::at(&self.given))?;
            let _ = staging.keep();
            return Ok(());
        }
        // The old output goes into a directory of its own, deleted when it goes out of scope.
        let old = tempfile::Builder::new()
            .prefix(&format!(".{name}.old-"))
            .tempdir_in(parent)
            .map_err(IoError::at(parent))?;
        let aside = old.path().join(&*name);
        fs::rename(out, &aside).map_err(IoError::at(&self.given))?;
        if let Err(source) = fs::rename(staging.path(), out) {
            if fs::rename(&aside, out).is_err() {
                // Never delete what could not be put back.
                let _ = old.keep();
            }
            return Err(OutputError::Io(IoError::new(self.given.clone(), source)));
        }
        let _ = staging.keep();
        Ok(())
    }
}

/// What is at `path` (not following a final symbolic link: [`resolve`] already has).
fn found(path: &Path) -> io::Result<Found> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return Ok(Found::NotADirectory);
    }
    if fs::symlink_metadata(path.join(MARKER)).is_ok_and(|m| m.is_file()) {
        return Ok(Found::Output);
    }
    Ok(if fs::read_dir(path)?.next().is_none() {
        Found::Empty
    } else {
        Found::Foreign
    })
}

/// `path` made absolute, with symbolic links, `.` and `..` resolved as far as it exists; the
/// part that does not exist (yet) is resolved lexically, as creating it would.
pub(crate) fn resolve(path: &Path) -> io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut resolved = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => resolved.push(component),
            Component::CurDir => {}
            // `resolved` has no symbolic links left, so its parent is the real one.
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(name) => {
                resolved.push(name);
                if let Ok(real) = fs::canonicalize(&resolved) {
                    resolved = real;
                }
            }
        }
    }
    Ok(resolved)
}

/// A file [`create_new`] creates.
#[derive(Debug, Clone, Copy)]
pub struct NewFile<'a> {
    /// Where.
    pub path: &'a Path,
    /// Its bytes.
    pub bytes: &'a [u8],
    /// Its permissions on Unix (e.g. `0o600` for a private key), before the umask.
    pub mode: u32,
}

/// Creates every file of `files` (and the directories they need), never replacing anything: when
/// any of them exists (even as a dangling symbolic link), nothing is written and the error names
/// each. When a write fails, the files created before it are removed.
pub fn create_new(files: &[NewFile<'_>]) -> Result<(), OutputError> {
    let existing: Vec<PathBuf> = files
        .iter()
        .filter(|f| fs::symlink_metadata(f.path).is_ok())
        .map(|f| f.path.to_owned())
        .collect();
    if !existing.is_empty() {
        return Err(OutputError::Exists { paths: existing });
    }
    let mut created: Vec<&Path> = Vec::new();
    for file in files {
        if let Err(e) = create_one(file) {
            for path in created {
                let _ = fs::remove_file(path);
            }
            return Err(match e.kind() {
                io::ErrorKind::AlreadyExists => OutputError::Exists {
                    paths: vec![file.path.to_owned()],
                },
                _ => OutputError::Io(IoError::new(file.path.to_owned(), e)),
            });
        }
        created.push(file.path);
    }
    Ok(())
}

fn create_one(file: &NewFile<'_>) -> io::Result<()> {
    if let Some(dir) = file.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, file.mode);
    let mut handle = options.open(file.path)?;
    let written = handle
        .write_all(file.bytes)
        .and_then(|()| handle.sync_all());
    if written.is_err() {
        let _ = fs::remove_file(file.path);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_dots_and_symlinks_as_far_as_the_path_exists() {
        let dir = tempfile::tempdir().unwrap();
        let real = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir(real.join("a")).unwrap();
        assert_eq!(
            resolve(&real.join("a/../b/./c/../d")).unwrap(),
            real.join("b/d")
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(real.join("a"), real.join("link")).unwrap();
            assert_eq!(resolve(&real.join("link/x")).unwrap(), real.join("a/x"));
            assert_eq!(resolve(&real.join("link/..")).unwrap(), real);
        }
    }
}
