//! Stage `validate`: a repo loaded ([`load`]) and checked against the rules a schema cannot
//! express, every problem found in one run ([`validate`]).
//!
//! Each submodule checks one family of rules and only reports; nothing here changes the repo.

mod batching;
mod connectors;
mod delivery;
mod environment;
mod findings;
mod graph;
mod lattice;
mod paths;
mod policy;
pub mod providers;
mod refs;
mod secrets;
mod settings;
mod templates;

use std::path::Path;

use crate::diag::{self, Diagnostic, Sources};
use crate::spec::environments::Environments;
use crate::spec::error::Error;
use crate::spec::load::{self, Repo};
use crate::store::{Cache, Verified};

/// The outcome of validating a repo: the loaded specs and every problem found, sorted.
#[derive(Debug)]
pub struct Validation {
    /// The specs that loaded.
    pub repo: Repo,
    /// Problems, in reporting order.
    pub diagnostics: Vec<Diagnostic>,
    /// Component bytes read and checked against their digests, for the `resolve` stage.
    pub components: Verified,
}

impl Validation {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The text of the files read, for rendering.
    pub fn sources(&self) -> &Sources {
        &self.repo.sources
    }
}

/// Loads and checks the repo at `root`, reporting every problem found in one run.
pub fn validate(root: &Path) -> Result<Validation, Error> {
    validate_with(root, None)
}

/// [`validate`], also checking the copies of `oci://` components that `cache` holds (read only:
/// nothing is pulled).
pub fn validate_with(root: &Path, cache: Option<&Cache>) -> Result<Validation, Error> {
    let (repo, mut diagnostics) = load::load(root)?;
    let (problems, components) = check_repo(&repo, cache);
    diagnostics.extend(problems);
    diag::sort(&mut diagnostics);
    Ok(Validation {
        repo,
        diagnostics,
        components,
    })
}

/// Runs every semantic check and returns what they found (unsorted), and the component bytes
/// that passed their checks. `cache` is only read: a copy of an `oci://` component in it is
/// checked; nothing is pulled.
pub fn check_repo(repo: &Repo, cache: Option<&Cache>) -> (Vec<Diagnostic>, Verified) {
    let mut out = Vec::new();
    let environments = Environments::of(repo);
    let mut components = paths::Components::new(cache);
    let read_elsewhere = lattice::read_elsewhere(repo);
    for pipeline in &repo.pipelines {
        let name = pipeline.spec.metadata.name.as_str();
        let read: Vec<&str> = read_elsewhere
            .iter()
            .filter(|(p, _)| *p == name)
            .map(|(_, node)| *node)
            .collect();
        graph::check_graph(pipeline, &read, &mut out);
        paths::check_paths(&repo.root, pipeline, &mut components, &mut out);
        connectors::check_required_settings(repo, pipeline, &mut out);
        connectors::check_headers(repo, pipeline, &mut out);
    }
    refs::check_references(repo, &mut out);
    secrets::check_fixture_secrets(repo, &mut out);
    providers::check_providers(repo, &mut out);
    environment::check_environments(repo, &mut out);
    delivery::check_delivery(repo, &mut out);
    lattice::check_lattice(repo, environments.as_ref(), &mut out);
    batching::check_batching(repo, environments.as_ref(), &mut out);
    connectors::check_mqtt_topics(repo, environments.as_ref(), &mut out);
    policy::check_policy(repo, &mut out);
    // Without a loaded project only the checks that need no environment run.
    for setting in settings::settings(repo) {
        templates::check_templates(&setting, environments.as_ref(), &mut out);
        secrets::check_secrets(&setting, environments.as_ref(), &mut out);
    }
    (out, components.verified)
}
