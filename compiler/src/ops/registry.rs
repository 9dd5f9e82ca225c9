//! Which registry `etl push` and `etl promote` speak to: the one given (`--registry`), else the
//! project's, as the `etl compile` output records it in `plan.json`. That a given one is the
//! output's own is checked by [`crate::ops::push::check_registry`].

use std::path::Path;

use crate::build::dist::{self, NoRegistry};
use crate::oci::registry::{self, Registry};

/// Why no registry could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// `plan.json` cannot be read or names no registry.
    #[error(transparent)]
    Recorded(#[from] NoRegistry),
    /// The registry is not `HOST[:PORT][/PREFIX]`.
    #[error(transparent)]
    Bad(#[from] registry::Error),
}

/// `given` parsed, else the registry `dist/plan.json` records.
pub fn registry_of(given: Option<&str>, dist: &Path) -> Result<Registry, RegistryError> {
    let text = match given {
        Some(text) => text.to_owned(),
        None => dist::recorded_registry(dist)?,
    };
    Ok(text.parse()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output directory whose plan records `registry`.
    fn dist(registry: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let plan = serde_json::json!({
            "apiVersion": "etl/v1alpha1", "kind": "Plan", "project": "p", "registry": registry,
            "inputs": {}, "harness": {}, "pipelines": [],
        });
        std::fs::write(dir.path().join("plan.json"), plan.to_string()).unwrap();
        dir
    }

    #[test]
    fn the_given_registry_wins() {
        let dir = dist("registry.example/etl");
        let r = registry_of(Some("127.0.0.1:5000/other"), dir.path()).unwrap();
        assert_eq!(r.to_string(), "127.0.0.1:5000/other");
        let r = registry_of(Some("127.0.0.1:5000/other"), &dir.path().join("missing")).unwrap();
        assert_eq!(r.to_string(), "127.0.0.1:5000/other");
    }

    #[test]
    fn else_the_one_compiled_for() {
        let dir = dist("registry.example/etl");
        let r = registry_of(None, dir.path()).unwrap();
        assert_eq!(
            (r.host.as_str(), r.prefix.as_str()),
            ("registry.example", "etl")
        );
    }

    #[test]
    fn a_plan_without_one_asks_for_it() {
        let dir = dist("");
        let e = registry_of(None, dir.path()).unwrap_err();
        assert!(matches!(e, RegistryError::Recorded(NoRegistry::Unnamed(_))));
        assert!(
            e.to_string()
                .ends_with("` names no registry: give --registry")
        );
        std::fs::write(dir.path().join("plan.json"), "not json").unwrap();
        let e = registry_of(None, dir.path()).unwrap_err();
        assert!(matches!(
            e,
            RegistryError::Recorded(NoRegistry::Unreadable { .. })
        ));
        assert!(e.to_string().ends_with(" (or give --registry)"));
        let e = registry_of(None, &dir.path().join("missing")).unwrap_err();
        assert!(matches!(
            e,
            RegistryError::Recorded(NoRegistry::Unreadable { .. })
        ));
    }

    #[test]
    fn a_bad_registry_is_refused() {
        let dir = dist("https://registry.example");
        assert!(matches!(
            registry_of(None, dir.path()),
            Err(RegistryError::Bad(_))
        ));
    }
}
