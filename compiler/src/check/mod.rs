//! Stage `validate`: the rules a schema cannot express, over the loaded repo.
//!
//! Each submodule checks one family of rules and only reports; nothing here changes the repo.

mod connectors;
mod graph;
mod paths;
pub mod providers;
mod refs;
mod secrets;
pub(crate) mod templates;

use indexmap::IndexMap;

use crate::diag::Diagnostic;
use crate::load::{Loaded, Repo};
use crate::model::{Pipeline, Settings};
use crate::resolve::{Cache, Verified};

/// Runs every semantic check and returns what they found (unsorted), and the component bytes
/// that passed their checks. `cache` is only read: a copy of an `oci://` component in it is
/// checked; nothing is pulled.
pub fn check(repo: &Repo, cache: Option<&Cache>) -> (Vec<Diagnostic>, Verified) {
    let mut out = Vec::new();
    let environments = Environments::of(repo);
    let mut components = paths::Components::new(cache);
    for pipeline in &repo.pipelines {
        graph::check(pipeline, &mut out);
        paths::check(&repo.root, pipeline, &mut components, &mut out);
        connectors::check(repo, pipeline, &mut out);
    }
    refs::check(repo, &mut out);
    providers::check(repo, &mut out);
    // Without a loaded project only the checks that need no environment run.
    for setting in settings(repo) {
        templates::check(&setting, environments.as_ref(), &mut out);
        secrets::check(&setting, environments.as_ref(), &mut out);
    }
    (out, components.verified)
}

/// An environment as templates see it: the project's definition with its override file applied.
#[derive(Debug, Clone)]
pub struct EnvView {
    /// Environment name.
    pub name: String,
    /// wasmCloud lattice.
    pub lattice: String,
    /// Variables: the project's, with the override file's merged over them.
    pub vars: IndexMap<String, String>,
    /// Whether `secret:` references can be resolved here.
    pub has_secret_backend: bool,
    /// `vars` as templates see them, built once.
    pub vars_value: minijinja::Value,
}

/// Every environment of the project, in declaration order.
pub struct Environments(Vec<EnvView>);

impl Environments {
    /// The environments of the repo's project; `None` without a loaded project.
    pub(crate) fn of(repo: &Repo) -> Option<Self> {
        let project = &repo.project.as_ref()?.spec;
        let views = project
            .spec
            .environments
            .iter()
            .map(|(name, env)| {
                let text = |(k, v): (&String, &crate::model::Scalar)| (k.clone(), v.as_text());
                let mut vars: IndexMap<String, String> = env.vars.iter().map(text).collect();
                for file in repo
                    .environments
                    .iter()
                    .filter(|f| f.spec.metadata.name == *name)
                {
                    vars.extend(file.spec.spec.vars.iter().map(text));
                }
                let vars_value =
                    minijinja::Value::from_pairs(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
                EnvView {
                    vars_value,
                    name: name.to_string(),
                    lattice: env.lattice.clone(),
                    vars,
                    has_secret_backend: env.secrets.is_some() || project.spec.secrets.is_some(),
                }
            })
            .collect();
        Some(Environments(views))
    }

    /// The environment named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&EnvView> {
        self.0.iter().find(|e| e.name == name)
    }

    /// Every environment name, in declaration order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|e| e.name.as_str())
    }

    /// The environments a setting is rendered for: all, or only the one an override file names.
    fn for_setting<'a>(&'a self, only: Option<&'a str>) -> impl Iterator<Item = &'a EnvView> + 'a {
        self.0
            .iter()
            .filter(move |e| only.is_none_or(|o| o == e.name))
    }
}

/// One settings map in the repo (`with:` or `config:`), with where it is.
pub struct SettingsAt<'a> {
    /// File holding it.
    pub file: &'a str,
    /// The YAML tree of that file.
    pub tree: &'a crate::yaml::Node,
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
