//! Names that point across files: pipeline names, environment files, fixtures.

use std::collections::HashMap;

use base64::Engine;

use crate::diag::{self, Code, Diagnostic};
use crate::spec::load::{HoleKind, Loaded, Repo};
use crate::spec::model::{Pipeline, Record};
use crate::spec::schema::FileKind;

pub(super) fn check_references(repo: &Repo, out: &mut Vec<Diagnostic>) {
    let mut pipelines: HashMap<&str, &crate::spec::load::Loaded<Pipeline>> = HashMap::new();
    for p in &repo.pipelines {
        let name = p.spec.metadata.name.as_str();
        if let Some(first) = pipelines.get(name) {
            out.push(
                Diagnostic::new(
                    Code::DuplicateName,
                    format!("pipeline `{name}` is defined twice"),
                )
                .at(&p.file, p.span("/metadata/name"))
                .label("defined again here")
                .related(
                    &first.file,
                    first.span("/metadata/name"),
                    "first defined here",
                )
                .expected("one file per pipeline, each with its own `metadata.name`"),
            );
        } else {
            pipelines.insert(name, p);
        }
    }
    let pipeline_names: Vec<&str> = repo
        .pipelines
        .iter()
        .map(|p| p.spec.metadata.name.as_str())
        .collect();
    let env_names: Vec<&str> = repo
        .project
        .as_ref()
        .map(|p| {
            p.spec
                .spec
                .environments
                .keys()
                .map(|k| k.as_str())
                .collect()
        })
        .unwrap_or_default();
    let project_loaded = repo.project.is_some();

    let unknown_env = |file: &str, span, name: &str| {
        Diagnostic::new(
            Code::UnknownEnvironment,
            format!("environment `{name}` is not defined in `etl.yaml`"),
        )
        .at(file, span)
        .label("unknown environment")
        .expected(format!("one of {}", diag::quoted_list(&env_names)))
        .maybe_help(diag::did_you_mean(name, env_names.iter().copied()))
    };
    let unknown_pipeline = |file: &str, span, name: &str| {
        Diagnostic::new(
            Code::UnknownPipeline,
            format!("pipeline `{name}` is not defined in `pipelines/`"),
        )
        .at(file, span)
        .label("unknown pipeline")
        .expected(format!("one of {}", diag::quoted_list(&pipeline_names)))
        .maybe_help(diag::did_you_mean(name, pipeline_names.iter().copied()))
    };

    for env in &repo.environments {
        let name = env.spec.metadata.name.as_str();
        let stem = env.file.rsplit('/').next().unwrap_or_default();
        let stem = stem
            .strip_suffix(".yaml")
            .or_else(|| stem.strip_suffix(".yml"))
            .unwrap_or(stem);
        if stem != name {
            out.push(
                Diagnostic::new(
                    Code::EnvironmentFileName,
                    format!("`{}` overrides environment `{name}`", env.file),
                )
                .at(&env.file, env.span("/metadata/name"))
                .label(format!("file is named `{stem}`"))
                .expected(format!(
                    "`environments/{name}.yaml` for environment `{name}`"
                ))
                .help(format!(
                    "rename the file to `environments/{name}.yaml`, or set `name: {stem}`"
                )),
            );
        }
        if project_loaded && !env_names.contains(&name) {
            out.push(unknown_env(&env.file, env.span("/metadata/name"), name));
        }
        for (pipeline, overrides) in &env.spec.spec.pipelines {
            let pointer = format!("/spec/pipelines/{pipeline}");
            let Some(p) = pipelines.get(pipeline.as_str()) else {
                if !repo.maybe_unloaded(FileKind::Pipeline, pipeline) {
                    out.push(unknown_pipeline(
                        &env.file,
                        env.key_span(&pointer),
                        pipeline,
                    ));
                }
                continue;
            };
            let spec = &p.spec.spec;
            let connectors: Vec<&str> = std::iter::once(spec.source.name.as_str())
                .chain(spec.sinks.iter().map(|s| s.name.as_str()))
                .collect();
            for connector in overrides.connectors.keys() {
                if connectors.contains(&connector.as_str())
                    || may_be_hole(p, HoleKind::Sink, connector)
                {
                    continue;
                }
                let is_step = spec.steps.iter().any(|s| s.name == *connector);
                out.push(
                    Diagnostic::new(
                        Code::UnknownConnector,
                        if is_step {
                            format!("`{connector}` is a step of `{pipeline}`, not a connector")
                        } else {
                            format!("pipeline `{pipeline}` has no source or sink `{connector}`")
                        },
                    )
                    .at(
                        &env.file,
                        env.key_span(&format!("{pointer}/connectors/{connector}")),
                    )
                    .label("not a connector")
                    .expected(format!(
                        "the source or a sink of `{pipeline}`: {}",
                        diag::quoted_list(&connectors)
                    ))
                    .maybe_help(diag::did_you_mean(connector, connectors.iter().copied())),
                );
            }
        }
    }

    for t in &repo.tests {
        let spec = &t.spec.spec;
        for (i, record) in all_records(spec).enumerate() {
            if let Some(b64) = &record.1.base64
                && let Err(e) = base64::engine::general_purpose::STANDARD.decode(b64)
            {
                out.push(
                    Diagnostic::new(
                        Code::FixturePayload,
                        format!("`base64` payload does not decode: {}", base64_problem(&e)),
                    )
                    .at(&t.file, t.span(&format!("{}/base64", record.0)))
                    .label("not base64")
                    .expected("standard base64 (RFC 4648, with padding)")
                    .note(format!("record {} of this fixture", i + 1)),
                );
            }
        }
        if let Some(env) = &spec.environment
            && project_loaded
            && !env_names.contains(&env.as_str())
        {
            out.push(unknown_env(&t.file, t.span("/spec/environment"), env));
        }
        let Some(p) = pipelines.get(spec.pipeline.as_str()) else {
            if !repo.maybe_unloaded(FileKind::Pipeline, &spec.pipeline) {
                out.push(unknown_pipeline(
                    &t.file,
                    t.span("/spec/pipeline"),
                    &spec.pipeline,
                ));
            }
            continue;
        };
        let pipeline = &p.spec.spec;
        let sinks: Vec<&str> = pipeline.sinks.iter().map(|s| s.name.as_str()).collect();
        let steps: Vec<&str> = pipeline.steps.iter().map(|s| s.name.as_str()).collect();
        let unknown = |what: &str, name: &str, span, known: &[&str]| {
            Diagnostic::new(
                Code::UnknownConnector,
                format!("pipeline `{}` has no {what} `{name}`", spec.pipeline),
            )
            .at(&t.file, span)
            .label(format!("unknown {what}"))
            .expected(format!(
                "a {what} of `{}`: {}",
                spec.pipeline,
                diag::quoted_list(known)
            ))
            .maybe_help(diag::did_you_mean(name, known.iter().copied()))
        };
        for sink in spec.expect.sinks.keys() {
            if !sinks.contains(&sink.as_str()) && !may_be_hole(p, HoleKind::Sink, sink) {
                out.push(unknown(
                    "sink",
                    sink,
                    t.key_span(&format!("/spec/expect/sinks/{sink}")),
                    &sinks,
                ));
            }
        }
        for (i, dead) in spec.expect.dead_letters.iter().enumerate() {
            if !steps.contains(&dead.step.as_str()) && !may_be_hole(p, HoleKind::Step, &dead.step) {
                out.push(unknown(
                    "step",
                    &dead.step,
                    t.span(&format!("/spec/expect/deadLetters/{i}/step")),
                    &steps,
                ));
            }
        }
        for step in spec.expect.counts.keys() {
            if !steps.contains(&step.as_str()) && !may_be_hole(p, HoleKind::Step, step) {
                out.push(unknown(
                    "step",
                    step,
                    t.key_span(&format!("/spec/expect/counts/{step}")),
                    &steps,
                ));
            }
        }
    }
}

/// Whether `name` may be a step or sink of `p` that its schema check left out: one named so, or
/// one whose name cannot be read.
fn may_be_hole(p: &Loaded<Pipeline>, kind: HoleKind, name: &str) -> bool {
    p.holes
        .iter()
        .any(|h| h.kind == kind && h.name.as_ref().is_none_or(|(n, _)| n == name))
}

/// A base64 decoding error in words, naming the offending character.
fn base64_problem(e: &base64::DecodeError) -> String {
    match e {
        base64::DecodeError::InvalidByte(at, byte)
        | base64::DecodeError::InvalidLastSymbol(at, byte) => {
            format!(
                "character {:?} at position {} is not in the base64 alphabet",
                char::from(*byte),
                at + 1
            )
        }
        base64::DecodeError::InvalidLength(n) => {
            format!("{n} symbols is not a valid length (a multiple of 4, with `=` padding)")
        }
        base64::DecodeError::InvalidPadding => "the `=` padding is wrong".to_owned(),
    }
}

/// Every record of a fixture with its JSON pointer.
fn all_records(spec: &crate::spec::model::TestSpec) -> impl Iterator<Item = (String, &Record)> {
    let input = spec
        .input
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("/spec/input/{i}"), r));
    let sinks = spec.expect.sinks.iter().flat_map(|(sink, records)| {
        records
            .iter()
            .enumerate()
            .map(move |(i, r)| (format!("/spec/expect/sinks/{sink}/{i}"), r))
    });
    let dead = spec
        .expect
        .dead_letters
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            d.record
                .as_ref()
                .map(|r| (format!("/spec/expect/deadLetters/{i}/record"), r))
        });
    input.chain(sinks).chain(dead)
}
