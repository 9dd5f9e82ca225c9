//! Component references: repo paths must stay inside the repo and name a file whose bytes hash
//! to `digest:` and are WebAssembly; `oci://` references must be well formed and pinned by
//! manifest digest (`digest:` separately pins the component bytes), and a copy in the cache is
//! checked like a file. Nothing here uses the network.

use std::collections::HashMap;
use std::path::{Component, Path};
use std::sync::LazyLock;

use regex::Regex;

use crate::diag::{self, Code, Diagnostic};
use crate::spec::load::Loaded;
use crate::spec::model::Pipeline;
use crate::store::{self, Cache, MAX_COMPONENT_BYTES, ResolveError, Verified};

/// The component bytes read so far: each file is read and hashed once, however many steps name it.
pub(super) struct Components<'a> {
    /// Where pulled `oci://` components are kept, if anywhere.
    pub cache: Option<&'a Cache>,
    /// Bytes that passed every check, for `compile`.
    pub verified: Verified,
    /// Per reference: what its bytes are, or why they could not be read.
    read: HashMap<String, Result<FileBytes, ResolveError>>,
}

/// What a component file's bytes are.
struct FileBytes {
    /// `sha256:` of the bytes.
    digest: String,
    /// Whether they start with a Wasm header.
    header: Result<(), ResolveError>,
}

impl<'a> Components<'a> {
    pub(super) fn new(cache: Option<&'a Cache>) -> Self {
        Components {
            cache,
            verified: Verified::default(),
            read: HashMap::new(),
        }
    }

    /// Checks the bytes of a repo file against the digest a step pins: `problem` makes the
    /// diagnostic of each error.
    fn check_file(
        &mut self,
        path: &Path,
        reference: &str,
        expected: &str,
        problem: impl Fn(&ResolveError) -> Diagnostic,
    ) -> Vec<Diagnostic> {
        let verified = &mut self.verified;
        let read = self.read.entry(reference.to_owned()).or_insert_with(|| {
            let bytes = store::read_limited(path, reference, MAX_COMPONENT_BYTES)?;
            if bytes.len() as u64 > MAX_COMPONENT_BYTES {
                return Err(ResolveError::TooLarge {
                    reference: reference.to_owned(),
                    size: std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len()),
                });
            }
            let digest = crate::util::digest::sha256(&bytes);
            let header = store::check_header(reference, &bytes);
            if header.is_ok() {
                verified.insert(reference, &digest, bytes);
            }
            Ok(FileBytes { digest, header })
        });
        let FileBytes {
            digest: actual,
            header,
        } = match read {
            Ok(r) => r,
            Err(e) => return vec![problem(e)],
        };
        let mut problems = Vec::new();
        if actual != expected {
            problems.push(problem(&ResolveError::DigestMismatch {
                reference: reference.to_owned(),
                expected: expected.to_owned(),
                actual: actual.clone(),
                layer: false,
            }));
        }
        if let Err(e) = header {
            problems.push(problem(e));
        }
        problems
    }

    /// Checks the cached copy of an `oci://` component, if the cache holds one; pulling it is
    /// left to `compile`.
    fn check_cached(&mut self, reference: &str, expected: &str) -> Option<ResolveError> {
        if self.verified.contains(reference, expected) {
            return None;
        }
        let bytes = self.cache?.pulled(expected)?;
        match store::check_header(reference, &bytes) {
            Ok(()) => {
                self.verified.insert(reference, expected, bytes);
                None
            }
            Err(e) => Some(e),
        }
    }
}

/// `oci://host[:port]/repository@sha256:<hex>`.
static OCI_REF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^oci://[A-Za-z0-9.-]+(?::[0-9]+)?/[a-z0-9]+(?:(?:[._/]|__|-+)[a-z0-9]+)*@sha256:[0-9a-f]{64}$").expect("valid")
});

pub(super) fn check_paths(
    root: &Path,
    p: &Loaded<Pipeline>,
    components: &mut Components<'_>,
    out: &mut Vec<Diagnostic>,
) {
    for (i, step) in p.spec.spec.steps.iter().enumerate() {
        let span = p.span(&format!("/spec/steps/{i}/component"));
        let digest_span = p.span(&format!("/spec/steps/{i}/digest"));
        let file = p.file.as_str();
        let reference = step.component.as_str();
        let problem = |e: &ResolveError| store::diagnostic(file, span, digest_span, &step.name, e);
        if reference.starts_with("oci://") {
            if !OCI_REF.is_match(reference) {
                out.push(
                    Diagnostic::new(Code::InvalidOciReference, format!("`{reference}` is not a pinned OCI reference"))
                        .at(file, span)
                        .label("malformed reference")
                        .expected("`oci://HOST[:PORT]/REPOSITORY@sha256:<64 hex>` (lower-case repository, pinned by manifest digest, no tag)"),
                );
            } else if let Some(e) = components.check_cached(reference, &step.digest) {
                out.push(problem(&e));
            }
            continue;
        }
        if let Some(reason) = escapes(root, reference) {
            out.push(
                Diagnostic::new(Code::PathEscapes, format!("component path `{reference}` leaves the repo"))
                    .at(file, span)
                    .label(reason)
                    .expected("a path relative to the repo root that stays inside it, or `oci://…@sha256:…`")
                    .help("copy the component into the repo (e.g. `components/`) or publish it and use `oci://`"),
            );
            continue;
        }
        let path = root.join(reference);
        if path.is_dir() {
            out.push(
                Diagnostic::new(
                    Code::MissingComponent,
                    format!("component `{reference}` is a directory, not a file"),
                )
                .at(file, span)
                .label("a directory")
                .expected("the path of a `.wasm` file, relative to the repo root"),
            );
            continue;
        }
        if path.is_file() {
            out.extend(components.check_file(&path, reference, &step.digest, problem));
        } else {
            let dir = path.parent().unwrap_or(root);
            let siblings: Vec<String> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let help = diag::closest(name, siblings.iter().map(String::as_str)).map(|c| {
                let fixed = Path::new(reference).with_file_name(c);
                format!("did you mean `{}`?", fixed.to_string_lossy())
            });
            out.push(
                Diagnostic::new(
                    Code::MissingComponent,
                    format!("component file `{reference}` does not exist"),
                )
                .at(file, span)
                .label("no such file")
                .expected("the path of a `.wasm` file, relative to the repo root")
                .maybe_help(help),
            );
        }
    }
}

/// Why `reference` leaves the repo at `root`, if it does.
fn escapes(root: &Path, reference: &str) -> Option<&'static str> {
    let path = Path::new(reference);
    if path.is_absolute() || reference.starts_with('/') || reference.starts_with('\\') {
        return Some("absolute path");
    }
    let mut depth: i32 = 0;
    for component in path.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Some("absolute path"),
        }
        if depth < 0 {
            return Some("`..` climbs out of the repo");
        }
    }
    let (Ok(root), Ok(target)) = (root.canonicalize(), root.join(path).canonicalize()) else {
        return None;
    };
    (!target.starts_with(&root)).then_some("a symbolic link points out of the repo")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_escapes() {
        let root = Path::new("/nonexistent-etl-root");
        assert_eq!(escapes(root, "/etc/passwd"), Some("absolute path"));
        assert_eq!(
            escapes(root, "../x.wasm"),
            Some("`..` climbs out of the repo")
        );
        assert_eq!(
            escapes(root, "a/../../x.wasm"),
            Some("`..` climbs out of the repo")
        );
        assert_eq!(escapes(root, "a/../x.wasm"), None);
        assert_eq!(escapes(root, "components/x.wasm"), None);
    }

    #[test]
    fn parses_oci_references() {
        let hex = "a".repeat(64);
        assert!(OCI_REF.is_match(&format!(
            "oci://registry.acme.example:5000/etl/parse@sha256:{hex}"
        )));
        assert!(!OCI_REF.is_match(&format!(
            "oci://registry.acme.example/etl/parse:v1@sha256:{hex}"
        )));
        assert!(!OCI_REF.is_match("oci://registry.acme.example/etl/parse:latest"));
    }
}
