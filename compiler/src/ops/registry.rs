//! Which registry `etl push` and `etl promote` speak to: the one given (`--registry`), else the
//! project's, as the `etl compile` output records it in `plan.json`. That a given one is the
//! output's own is checked by [`crate::ops::push::check_registry`].

use std::path::{Path, PathBuf};

use crate::oci::registry::{self, Registry};

/// Why no registry could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// `plan.json` cannot be read.
    #[error("`{}`: {source} (or give --registry)", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `plan.json` is not JSON.
    #[error("`{}`: {source} (or give --registry)", path.display())]
    NotJson {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// `plan.json` names no registry.
    #[error("`{}` names no registry: give --registry", path.display())]
    Unnamed {
        /// The file.
        path: PathBuf,
    },
    /// The registry is not `HOST[:PORT][/PREFIX]`.
    #[error(transparent)]
    Bad(#[from] registry::Error),
}

/// `given` parsed, else the registry `dist/plan.json` records.
pub fn registry_of(given: Option<&str>, dist: &Path) -> Result<Registry, RegistryError> {
    let text = match given {
        Some(text) => text.to_owned(),
        None => compiled_for(dist)?,
    };
    Ok(text.parse()?)
}

/// The `registry` of `dist/plan.json`.
fn compiled_for(dist: &Path) -> Result<String, RegistryError> {
    let path = dist.join("plan.json");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(source) => return Err(RegistryError::Unreadable { path, source }),
    };
    let plan: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(plan) => plan,
        Err(source) => return Err(RegistryError::NotJson { path, source }),
    };
    match plan["registry"].as_str() {
        Some(registry) => Ok(registry.to_owned()),
        None => Err(RegistryError::Unnamed { path }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(plan: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plan.json"), plan).unwrap();
        dir
    }

    #[test]
    fn the_given_registry_wins() {
        let dir = dist(r#"{"registry": "registry.example/etl"}"#);
        let r = registry_of(Some("127.0.0.1:5000/other"), dir.path()).unwrap();
        assert_eq!(r.to_string(), "127.0.0.1:5000/other");
    }

    #[test]
    fn else_the_one_compiled_for() {
        let dir = dist(r#"{"registry": "registry.example/etl"}"#);
        let r = registry_of(None, dir.path()).unwrap();
        assert_eq!(
            (r.host.as_str(), r.prefix.as_str()),
            ("registry.example", "etl")
        );
    }

    #[test]
    fn a_plan_without_one_asks_for_it() {
        let dir = dist(r#"{"pipelines": []}"#);
        let e = registry_of(None, dir.path()).unwrap_err();
        assert!(matches!(e, RegistryError::Unnamed { .. }));
        assert!(
            e.to_string()
                .ends_with("` names no registry: give --registry")
        );
        let dir = dist("not json");
        let e = registry_of(None, dir.path()).unwrap_err();
        assert!(matches!(e, RegistryError::NotJson { .. }));
        assert!(e.to_string().ends_with(" (or give --registry)"));
        let e = registry_of(None, &dir.path().join("missing")).unwrap_err();
        assert!(matches!(e, RegistryError::Unreadable { .. }));
    }

    #[test]
    fn a_bad_registry_is_refused() {
        let dir = dist(r#"{"registry": "https://registry.example"}"#);
        assert!(matches!(
            registry_of(None, dir.path()),
            Err(RegistryError::Bad(_))
        ));
    }
}
