//! A `pipeline` source (a sub-pipeline) names, in plain names, a pipeline of the repo and one of
//! its steps or `nats` sinks: what another pipeline can read, by a subject. Its `with:` is the
//! same in every environment.

use super::view::At;
use crate::diag::{self, Code, Diagnostic};
use crate::spec::load::{Loaded, Repo};
use crate::spec::model::{
    Pipeline, Scalar, Setting, SinkConnector, SourceConnector, UPSTREAM_KEYS, is_name,
};
use crate::spec::schema::FileKind;
use crate::spec::templates::is_template;

pub(super) fn check_upstreams(
    repo: &Repo,
    pipelines: &[&Loaded<Pipeline>],
    out: &mut Vec<Diagnostic>,
) {
    for p in pipelines {
        let source = &p.spec.spec.source;
        if source.connector != SourceConnector::Pipeline {
            continue;
        }
        check_settings(p, out);
        check_overrides(repo, p, out);
        if let Some(upstream) = source.upstream() {
            let at = At::of(p, "/spec/source/with/pipeline");
            match pipelines
                .iter()
                .find(|q| *q.spec.metadata.name == *upstream.pipeline)
            {
                Some(q) => check_node(p, q, upstream.from, out),
                None if repo.maybe_unloaded(FileKind::Pipeline, upstream.pipeline) => {}
                None => {
                    let names: Vec<&str> = pipelines
                        .iter()
                        .map(|q| q.spec.metadata.name.as_str())
                        .collect();
                    out.push(
                        Diagnostic::new(
                            Code::UnknownPipeline,
                            format!(
                                "pipeline `{}` is not defined in `pipelines/`",
                                upstream.pipeline
                            ),
                        )
                        .at(at.file, at.span)
                        .label("unknown pipeline")
                        .expected(format!("one of {}", diag::quoted_list(&names)))
                        .maybe_help(diag::did_you_mean(upstream.pipeline, names.iter().copied())),
                    );
                }
            }
        }
    }
}

/// `with:` holds `pipeline` and `from`, each a plain name (a missing one is `E0311`).
fn check_settings(p: &Loaded<Pipeline>, out: &mut Vec<Diagnostic>) {
    for (key, setting) in &p.spec.spec.source.with {
        let pointer = format!(
            "/spec/source/with/{}",
            key.replace('~', "~0").replace('/', "~1")
        );
        let problem = if !UPSTREAM_KEYS.contains(&key.as_str()) {
            let d = Diagnostic::new(
                Code::UpstreamSetting,
                format!("a `pipeline` source has no setting `{key}`"),
            )
            .at(&p.file, p.key_span(&pointer))
            .label("unknown setting")
            .maybe_help(diag::did_you_mean(key, UPSTREAM_KEYS));
            Some(d)
        } else {
            let why = match setting {
                Setting::Secret(_) => Some("a secret reference".to_owned()),
                Setting::Value(Scalar::String(s)) if is_template(s) => Some(
                    "a template: what a pipeline reads is the same in every environment".to_owned(),
                ),
                Setting::Value(Scalar::String(s)) if !is_name(s) => {
                    Some(format!("`{s}`, not a name"))
                }
                Setting::Value(Scalar::String(_)) => None,
                Setting::Value(v) => Some(format!("`{}`, not a string: quote it", v.as_text())),
            };
            why.map(|why| {
                Diagnostic::new(
                    Code::UpstreamSetting,
                    format!("`{key}` of a `pipeline` source is {why}"),
                )
                .at(&p.file, p.span(&pointer))
                .label("not a plain name")
            })
        };
        if let Some(d) = problem {
            out.push(d.expected(
                "`with: { pipeline: <pipeline>, from: <step or nats sink> }`, both plain names",
            ));
        }
    }
}

/// Environment files leave a `pipeline` source alone.
fn check_overrides(repo: &Repo, p: &Loaded<Pipeline>, out: &mut Vec<Diagnostic>) {
    let name = p.spec.metadata.name.as_str();
    let source = p.spec.spec.source.name.as_str();
    for env in &repo.environments {
        let overridden = env
            .spec
            .spec
            .pipelines
            .iter()
            .filter(|(q, _)| q.as_str() == name)
            .any(|(_, o)| o.connectors.keys().any(|c| c.as_str() == source));
        if !overridden {
            continue;
        }
        let pointer = format!("/spec/pipelines/{name}/connectors/{source}");
        out.push(
            Diagnostic::new(
                Code::UpstreamOverride,
                format!(
                    "`{}` overrides source `{source}` of `{name}`, which reads another pipeline",
                    env.file
                ),
            )
            .at(&env.file, env.key_span(&pointer))
            .label("a `pipeline` source")
            .related(
                &p.file,
                p.span("/spec/source/connector"),
                "it reads another pipeline",
            )
            .expected("no override: what a pipeline reads is the same in every environment")
            .help("remove this override; to read another subject in one environment, override what the upstream pipeline publishes"),
        );
    }
}

/// `from` names a step or `nats` sink of `q`.
fn check_node(p: &Loaded<Pipeline>, q: &Loaded<Pipeline>, from: &str, out: &mut Vec<Diagnostic>) {
    let upstream = q.spec.metadata.name.as_str();
    let spec = &q.spec.spec;
    let at = At::of(p, "/spec/source/with/from");
    if spec.steps.iter().any(|s| *s.name == *from) {
        return;
    }
    let readable: Vec<&str> = spec
        .steps
        .iter()
        .map(|s| s.name.as_str())
        .chain(
            spec.sinks
                .iter()
                .filter(|s| s.connector == SinkConnector::Nats)
                .map(|s| s.name.as_str()),
        )
        .collect();
    let expected = format!(
        "a step or `nats` sink of `{upstream}`: {}",
        diag::quoted_list(&readable)
    );
    let sink = spec
        .sinks
        .iter()
        .enumerate()
        .find(|(_, s)| *s.name == *from);
    if let Some((i, sink)) = sink {
        if sink.connector == SinkConnector::Nats {
            return;
        }
        out.push(
            Diagnostic::new(
                Code::UpstreamUnreadable,
                format!(
                    "`{from}` is {} `{}` sink of `{upstream}`: no pipeline can read what it sends",
                    if sink.connector == SinkConnector::Kafka {
                        "a"
                    } else {
                        "an"
                    },
                    sink.connector.name()
                ),
            )
            .at(at.file, at.span)
            .label("not readable")
            .related(
                &q.file,
                q.span(&format!("/spec/sinks/{i}/connector")),
                format!("`{from}` sends over `{}`", sink.connector.name()),
            )
            .expected(expected)
            .help(format!(
                "read what `{from}` reads: `from: {}`",
                sink.from.first().map_or("…", String::as_str)
            )),
        );
        return;
    }
    if *spec.source.name == *from {
        out.push(
            Diagnostic::new(
                Code::UpstreamUnreadable,
                format!("`{from}` is the source of `{upstream}`: it publishes nothing"),
            )
            .at(at.file, at.span)
            .label("a source")
            .related(
                &q.file,
                q.span("/spec/source/name"),
                format!("`{from}` is the source"),
            )
            .expected(expected)
            .help(match spec.steps.first() {
                Some(step) => format!(
                    "read a step of `{upstream}` (`from: {}`), or what `{from}` reads with a \
                     source of the same kind",
                    step.name
                ),
                None => format!("read what `{from}` reads with a source of the same kind"),
            }),
        );
        return;
    }
    // A step or sink the schema rejected may be the one meant.
    if q.holes
        .iter()
        .any(|h| h.name.as_ref().is_none_or(|(n, _)| n == from))
    {
        return;
    }
    out.push(
        Diagnostic::new(
            Code::UnknownConnector,
            format!("pipeline `{upstream}` has no step or `nats` sink `{from}`"),
        )
        .at(at.file, at.span)
        .label("unknown name")
        .related(
            &q.file,
            q.span("/metadata/name"),
            format!("`{upstream}` is defined here"),
        )
        .expected(expected)
        .maybe_help(diag::did_you_mean(from, readable.iter().copied())),
    );
}
