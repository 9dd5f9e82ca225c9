//! The settings maps of a repo (`with:`, `config:`, environment overrides), each with where it
//! is, for the checks of what they render to.

use crate::spec::load::{Loaded, Repo};
use crate::spec::model::{Pipeline, Settings};

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

impl SettingsAt<'_> {
    /// Whether it is a step's `config:` (whose settings the component sees as `step.<name>`)
    /// rather than a connector's `with:`.
    pub fn is_step_config(&self) -> bool {
        self.pointer.ends_with("/config")
    }
}

/// Every settings map of the repo: pipelines' `with:`/`config:` and environment overrides.
pub(super) fn settings(repo: &Repo) -> Vec<SettingsAt<'_>> {
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
