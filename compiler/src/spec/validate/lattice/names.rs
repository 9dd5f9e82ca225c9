//! `<pipeline>-<unit>` names a step's or sink's OCI repository, its Kubernetes
//! `WorkloadDeployment`, its v2 HTTP host and its wadm links: two pipelines must not both make
//! one (pipeline `a-b` with step `c`, pipeline `a` with step `b-c`).

use std::collections::HashMap;

use super::view::At;
use crate::diag::{Code, Diagnostic};
use crate::spec::load::Loaded;
use crate::spec::model::Pipeline;

pub(super) fn check_names(pipelines: &[&Loaded<Pipeline>], out: &mut Vec<Diagnostic>) {
    let mut first: HashMap<String, (&str, &str, &str, At<'_>)> = HashMap::new();
    for p in pipelines {
        let pipeline = p.spec.metadata.name.as_str();
        let spec = &p.spec.spec;
        let units = spec
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| ("step", s.name.as_str(), format!("/spec/steps/{i}/name")))
            .chain(
                spec.sinks
                    .iter()
                    .enumerate()
                    .map(|(i, s)| ("sink", s.name.as_str(), format!("/spec/sinks/{i}/name"))),
            );
        for (what, unit, pointer) in units {
            let name = format!("{pipeline}-{unit}");
            let at = At::of(p, &pointer);
            let Some(&(other, other_what, other_unit, other_at)) = first.get(&name) else {
                first.insert(name, (pipeline, what, unit, at));
                continue;
            };
            if other == pipeline {
                continue;
            }
            out.push(
                Diagnostic::new(
                    Code::NameClash,
                    format!(
                        "{what} `{unit}` of pipeline `{pipeline}` and {other_what} `{other_unit}` \
                         of pipeline `{other}` are both deployed as `{name}`"
                    ),
                )
                .at(at.file, at.span)
                .label(format!("deployed as `{name}`"))
                .related(
                    other_at.file,
                    other_at.span,
                    format!("deployed as `{name}` too"),
                )
                .expected(
                    "`<pipeline>-<step or sink>` unique in the repo: it names the unit's OCI \
                     repository, Kubernetes `WorkloadDeployment`, v2 HTTP host and wadm links",
                )
                .help("rename one of the two, or one of the pipelines"),
            );
        }
    }
}
