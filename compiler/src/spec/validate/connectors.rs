//! Connectors name where records come from and go: a `nats` source needs its `subject`, a
//! `pipeline` source the `pipeline` and the node it reads ([`UPSTREAM_KEYS`]), an `http` sink its
//! `url`, and so on ([`SourceConnector::required_key`], [`SinkConnector::required_key`]), in the
//! pipeline or in every environment's override.

use crate::diag::{self, Code, Diagnostic};
use crate::spec::load::{Loaded, Repo};
use crate::spec::model::{Pipeline, Settings, SourceConnector, UPSTREAM_KEYS};

pub(super) fn check_required_settings(
    repo: &Repo,
    pipeline: &Loaded<Pipeline>,
    out: &mut Vec<Diagnostic>,
) {
    let spec = &pipeline.spec.spec;
    let name = pipeline.spec.metadata.name.as_str();
    let source = &spec.source;
    let required = source.connector.required_key();
    let keys: &[&str] = match source.connector {
        SourceConnector::Pipeline => &UPSTREAM_KEYS,
        _ => required.as_slice(),
    };
    for key in keys {
        let connector = source.connector.name();
        missing(
            repo,
            pipeline,
            name,
            &source.name,
            connector,
            "/spec/source",
            &source.with,
            key,
            out,
        );
    }
    for (i, sink) in spec.sinks.iter().enumerate() {
        let key = sink.connector.required_key();
        let connector = sink.connector.name();
        let at = format!("/spec/sinks/{i}");
        missing(
            repo, pipeline, name, &sink.name, connector, &at, &sink.with, key, out,
        );
    }
}

/// Reports `key` missing from `with` of `unit` unless every environment's override sets it.
#[allow(clippy::too_many_arguments)]
fn missing(
    repo: &Repo,
    pipeline: &Loaded<Pipeline>,
    pipeline_name: &str,
    unit: &str,
    connector: &str,
    pointer: &str,
    with: &Settings,
    key: &str,
    out: &mut Vec<Diagnostic>,
) {
    if with.contains_key(key) {
        return;
    }
    let Some(project) = &repo.project else {
        return;
    };
    let lacking: Vec<&str> = project
        .spec
        .spec
        .environments
        .keys()
        .map(|e| e.as_str())
        .filter(|env| {
            !repo.environments.iter().any(|f| {
                f.spec.metadata.name.as_str() == *env
                    && f.spec
                        .spec
                        .pipelines
                        .iter()
                        .filter(|(p, _)| p.as_str() == pipeline_name)
                        .flat_map(|(_, o)| o.connectors.iter())
                        .any(|(c, o)| c.as_str() == unit && o.with.contains_key(key))
            })
        })
        .collect();
    if lacking.is_empty() {
        return;
    }
    let with_pointer = format!("{pointer}/with");
    let span = if pipeline.tree.pointer(&with_pointer).is_some() {
        pipeline.span(&with_pointer)
    } else {
        pipeline.span(&format!("{pointer}/connector"))
    };
    let mut d = Diagnostic::new(
        Code::MissingSetting,
        format!(
            "`{unit}` does not say where its `{connector}` connector goes: `with.{key}` is missing"
        ),
    )
    .at(&pipeline.file, span)
    .label(format!("no `{key}` here"))
    .expected(format!(
        "`with: {{ {key}: … }}` on the `{connector}` connector"
    ))
    .maybe_help(
        diag::closest(key, with.keys().map(String::as_str))
            .map(|c| format!("`with` has `{c}`: did you mean `{key}`?")),
    );
    if lacking.len() < project.spec.spec.environments.len() {
        d = d.note(format!(
            "environment override files set it, except for {}",
            diag::quoted_list(&lacking)
        ));
    }
    out.push(d);
}
