//! Claims of the wasmCloud 1.x artifacts: which identity each unit's claims name, and the
//! warning for secrets that 1.x hosts will not fetch.
//!
//! A 1.x host fetches a component's secrets only with the wascap claims embedded in it, and a
//! secrets backend answers only for a subject mapped to the secrets ([`crate::oci::claims`]).
//! Given an account key (`etl compile --claims-key`), every 1.x artifact gets claims, not only
//! those of units with secrets: one rule, every unit's subject is in `plan.json` before a secret
//! is added to it, and adding one later changes no artifact. The subject of a unit is derived
//! from the account seed and [`identity`], so it stays the same across builds and code changes
//! and the platform maps secrets to it once. v2 artifacts get none: v2 hosts need no claims.

use crate::build::dist::Plan;
use crate::diag::{Code, Diagnostic};
use crate::spec::load::Repo;
use crate::spec::model::{Setting, Settings};

/// The identity a unit's claims subject is derived from: `<project>/<pipeline>/<unit>`. Names
/// never hold a `/`, so two units never share one, in one project or across projects signed
/// with the same account.
pub fn identity(project: &str, pipeline: &str, unit: &str) -> String {
    format!("{project}/{pipeline}/{unit}")
}

/// One warning ([`Code::UnclaimedSecrets`]) for each unit of `plan` that some environment gives
/// secrets while its 1.x artifact carries no claims, at its first secret setting in its pipeline
/// file (or at its name, when an environment file adds the secret).
pub fn unclaimed_secrets(repo: &Repo, plan: &Plan) -> Vec<Diagnostic> {
    let mut warnings = Vec::new();
    for p in &plan.pipelines {
        let Ok(loaded) = crate::build::deployment::find_pipeline(repo, &p.name) else {
            continue;
        };
        for unit in p.units().filter(|u| u.artifact.claims.is_none()) {
            let mut environments = Vec::new();
            for (env, apps) in &plan.deployments {
                let secret = apps
                    .get(&p.name)
                    .and_then(|app| app.components.iter().find(|c| c.name == unit.name))
                    .is_some_and(|c| !c.secrets.is_empty());
                if secret {
                    environments.push(env.as_str());
                }
            }
            if environments.is_empty() {
                continue;
            }
            let spec = &loaded.spec.spec;
            let (pointer, settings) = match spec.steps.iter().position(|s| *s.name == unit.name) {
                Some(i) => (format!("/spec/steps/{i}"), &spec.steps[i].config),
                None => match spec.sinks.iter().position(|s| *s.name == unit.name) {
                    Some(i) => (format!("/spec/sinks/{i}"), &spec.sinks[i].with),
                    None => continue,
                },
            };
            let settings_key = if unit.customer.is_some() {
                "config"
            } else {
                "with"
            };
            let (at, label) = match first_secret(settings) {
                Some(key) => (
                    loaded.key_span(&format!(
                        "{pointer}/{settings_key}/{}",
                        key.replace('~', "~0").replace('/', "~1")
                    )),
                    "a secret",
                ),
                None => (
                    loaded.span(&format!("{pointer}/name")),
                    "an environment gives it secrets",
                ),
            };
            warnings.push(
                Diagnostic::new(
                    Code::UnclaimedSecrets,
                    format!(
                        "wasmCloud 1.x hosts will not fetch the secrets of `{}`: its component \
                         carries no claims ({} {})",
                        unit.name,
                        if environments.len() == 1 {
                            "environment"
                        } else {
                            "environments"
                        },
                        crate::diag::quoted_list(&environments)
                    ),
                )
                .at(&loaded.file, at)
                .label(label)
                .note(
                    "a 1.x host fetches a component's secrets only with the signed claims \
                     embedded in it, and the secrets backend answers only for a claims subject \
                     mapped to them; wasmCloud v2 hosts need no claims",
                )
                .help(
                    "compile with `--claims-key FILE` (an account seed: `etl keygen --claims` \
                     makes one), then map the unit's claims subject (plan.json, its \
                     `artifact.claims.subject`) to its secrets in the backend (docs/oci.md, \
                     \"Claims\")",
                ),
            );
        }
    }
    warnings
}

/// The key of the first `{secret: …}` setting, if any.
fn first_secret(settings: &Settings) -> Option<&str> {
    settings
        .iter()
        .find(|(_, s)| matches!(s, Setting::Secret(_)))
        .map(|(k, _)| k.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_join_names_with_slashes() {
        assert_eq!(
            identity("acme", "sensor-ingest", "alerts"),
            "acme/sensor-ingest/alerts"
        );
        assert_ne!(identity("a", "b-c", "d"), identity("a", "b", "c-d"));
    }
}
