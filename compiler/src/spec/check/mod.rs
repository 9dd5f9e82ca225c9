//! Stage `validate`: the rules a schema cannot express, over the loaded repo.
//!
//! Each submodule checks one family of rules and only reports; nothing here changes the repo.

mod connectors;
mod graph;
mod paths;
pub mod providers;
mod refs;
mod secrets;
mod templates;

use crate::diag::Diagnostic;
use crate::spec::environments::Environments;
use crate::spec::load::{Loaded, Repo};
use crate::spec::model::{Pipeline, Settings};
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
    for setting in settings(repo) {
        templates::check_templates(&setting, environments.as_ref(), &mut out);
        secrets::check_secrets(&setting, environments.as_ref(), &mut out);
    }
    (out, components.verified)
}

/// One settings map in the repo (`with:` or `config:`), with where it is.
pub struct SettingsAt<'a> {
    /// File holding it.
    pub file: &'a str,
    /// The YAML tree of that file.
    pub tree: &'a crate::spec::yaml::Node,
    /// The text of that file.
    pub source: Option<&'a str>,
    /// JSON pointer of the map.
    pub pointer: String,
    /// The map.
    pub settings: &'a Settings,
    /// The pipeline it belongs to.
    pub pipeline: &'a str,
    /// `Some(env)` when it comes from an environment file and applies to that environment only.
    pub only_env: Option<&'a str>,
}

fn settings(repo: &Repo) -> Vec<SettingsAt<'_>> {
    let mut out = Vec::new();
    for Loaded {
        file, tree, spec, ..
    } in &repo.pipelines
    {
        let Pipeline { metadata, spec, .. } = spec;
        let mut push = |pointer: String, settings| {
            let source = repo.sources.get(file);
            out.push(SettingsAt {
                file,
                tree,
                source,
                pointer,
                settings,
                pipeline: &metadata.name,
                only_env: None,
            });
        };
        push("/spec/source/with".to_owned(), &spec.source.with);
        for (i, step) in spec.steps.iter().enumerate() {
            push(format!("/spec/steps/{i}/config"), &step.config);
        }
        for (i, sink) in spec.sinks.iter().enumerate() {
            push(format!("/spec/sinks/{i}/with"), &sink.with);
        }
    }
    for Loaded {
        file, tree, spec, ..
    } in &repo.environments
    {
        for (pipeline, overrides) in &spec.spec.pipelines {
            for (connector, o) in &overrides.connectors {
                out.push(SettingsAt {
                    file,
                    tree,
                    source: repo.sources.get(file),
                    pointer: format!("/spec/pipelines/{pipeline}/connectors/{connector}/with"),
                    settings: &o.with,
                    pipeline,
                    only_env: Some(&spec.metadata.name),
                });
            }
        }
    }
    out
}
