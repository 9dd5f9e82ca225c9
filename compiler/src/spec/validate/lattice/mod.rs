//! Rules across pipelines: what the pipelines of a repo may not do to each other, since every
//! pipeline is deployed to every environment's lattice, where they share one NATS, one HTTP
//! server and one namespace of names.
//!
//! In order: a sub-pipeline (`connector: pipeline`) names something it can read ([`upstream`]);
//! names derived from two pipelines differ ([`names`]); then, in each environment as it renders
//! ([`view`]), records never flow around a cycle of pipelines ([`cycles`]), a subject internal to
//! a step has that step as its only publisher and is read by name ([`subjects`]), and no two
//! pipelines are served on one HTTP path or address ([`routes`]).

mod cycles;
mod names;
mod routes;
mod subjects;
mod upstream;
mod view;

use std::collections::HashSet;

use crate::diag::Diagnostic;
use crate::spec::environments::Environments;
use crate::spec::load::{Loaded, Repo};
use crate::spec::model::Pipeline;
use crate::spec::validate::findings::Findings;

pub(super) fn check_lattice(
    repo: &Repo,
    environments: Option<&Environments>,
    out: &mut Vec<Diagnostic>,
) {
    // A pipeline defined twice is reported as such; its first definition stands for it.
    let mut seen = HashSet::new();
    let pipelines: Vec<&Loaded<Pipeline>> = repo
        .pipelines
        .iter()
        .filter(|p| seen.insert(p.spec.metadata.name.as_str()))
        .collect();
    upstream::check_upstreams(repo, &pipelines, out);
    names::check_names(&pipelines, out);
    let (Some(project), Some(environments)) = (&repo.project, environments) else {
        return;
    };
    let project = project.spec.metadata.name.as_str();
    let mut found = Findings::new();
    let mut count = 0;
    for env in environments.for_setting(None) {
        count += 1;
        let lattice = view::Lattice::of(repo, project, env, &pipelines);
        cycles::check_cycles(&lattice, &mut found);
        subjects::check_internal(&lattice, &mut found);
        subjects::check_implicit(&lattice, &mut found);
        routes::check_routes(&lattice, &mut found);
    }
    found.finish(count, out);
}

/// The steps of each pipeline that `connector: pipeline` sources of the repo read, by pipeline
/// name (their outputs are consumed, if by no step of their own).
pub(super) fn read_elsewhere(repo: &Repo) -> Vec<(&str, &str)> {
    repo.pipelines
        .iter()
        .filter_map(|p| p.spec.spec.source.upstream())
        .map(|u| (u.pipeline, u.from))
        .collect()
}
