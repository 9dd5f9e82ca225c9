//! Component references: repo paths must stay inside the repo and exist; `oci://` references must
//! be well formed and pinned by manifest digest (`digest:` separately pins the component bytes).

use std::path::{Component, Path};
use std::sync::LazyLock;

use regex::Regex;

use crate::diag::{self, Code, Diagnostic};
use crate::load::Loaded;
use crate::model::Pipeline;

/// `oci://host[:port]/repository@sha256:<hex>`.
static OCI_REF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^oci://[A-Za-z0-9.-]+(?::[0-9]+)?/[a-z0-9]+(?:(?:[._/]|__|-+)[a-z0-9]+)*@sha256:[0-9a-f]{64}$").expect("valid")
});

pub(super) fn check(root: &Path, p: &Loaded<Pipeline>, out: &mut Vec<Diagnostic>) {
    for (i, step) in p.spec.spec.steps.iter().enumerate() {
        let span = p.span(&format!("/spec/steps/{i}/component"));
        let file = p.file.as_str();
        let reference = step.component.as_str();
        if reference.starts_with("oci://") {
            if !OCI_REF.is_match(reference) {
                out.push(
                    Diagnostic::new(Code::InvalidOciReference, format!("`{reference}` is not a pinned OCI reference"))
                        .at(file, span)
                        .label("malformed reference")
                        .expected("`oci://HOST[:PORT]/REPOSITORY@sha256:<64 hex>` (lower-case repository, pinned by manifest digest, no tag)"),
                );
            }
            continue;
        }
        if let Some(problem) = escapes(root, reference) {
            out.push(
                Diagnostic::new(Code::PathEscapes, format!("component path `{reference}` leaves the repo"))
                    .at(file, span)
                    .label(problem)
                    .expected("a path relative to the repo root that stays inside it, or `oci://…@sha256:…`")
                    .help("copy the component into the repo (e.g. `components/`) or publish it and use `oci://`"),
            );
            continue;
        }
        let path = root.join(reference);
        if !path.is_file() {
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
