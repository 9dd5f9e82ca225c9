//! Stage `validate`: the rules a schema cannot express, over the loaded repo.
//!
//! Each submodule checks one family of rules and only reports; nothing here changes the repo.

mod connectors;
mod graph;
mod paths;
pub mod providers;
mod refs;
mod secrets;
mod settings;
mod templates;

use crate::diag::Diagnostic;
use crate::spec::environments::Environments;
use crate::spec::load::Repo;
use crate::store::{Cache, Verified};

/// Runs every semantic check and returns what they found (unsorted), and the component bytes
/// that passed their checks. `cache` is only read: a copy of an `oci://` component in it is
/// checked; nothing is pulled.
pub fn check_repo(repo: &Repo, cache: Option<&Cache>) -> (Vec<Diagnostic>, Verified) {
    let mut out = Vec::new();
    let environments = Environments::of(repo);
    let mut components = paths::Components::new(cache);
    for pipeline in &repo.pipelines {
        graph::check_graph(pipeline, &mut out);
        paths::check_paths(&repo.root, pipeline, &mut components, &mut out);
        connectors::check_required_settings(repo, pipeline, &mut out);
    }
    refs::check_references(repo, &mut out);
    providers::check_providers(repo, &mut out);
    // Without a loaded project only the checks that need no environment run.
    for setting in settings::settings(repo) {
        templates::check_templates(&setting, environments.as_ref(), &mut out);
        secrets::check_secrets(&setting, environments.as_ref(), &mut out);
    }
    (out, components.verified)
}
