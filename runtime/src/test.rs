//! `etl test`: a fixture (`tests/*.yaml`) run through its pipeline and checked against what it
//! expects.
//!
//! Strict by default: a sink the fixture does not name must receive nothing, dead letters the
//! fixture does not list fail it, and so does any failed record. Headers are compared only for
//! expected records that list `headers`, and a record's id (`etl-id`, an `http` sink's
//! `idempotency-key`) only when they list it.
//!
//! Secret values come from the fixture's `secrets:`, then from the run's own
//! ([`SecretValues`]: `--secrets FILE`, the environment). A secret none gives is not there: a
//! record that needs it fails, saying which key to give. What a failing fixture's report
//! shows has every secret value taken out.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use similar::TextDiff;

use super::artifacts::Artifacts;
use super::input::{self, matches};
use super::secrets::SecretValues;
use super::{Limits, LoadedPipeline, Record, Report, RunError, Runtime};
use etl::build::deployment::{self, DeploymentError, UnitKind};
use etl::spec::load::Repo;
use etl::spec::model::{self, TestSpec};

/// Why fixtures could not be run (a failing fixture is an [`Outcome`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// A pipeline or environment is unknown.
    #[error(transparent)]
    Plan(#[from] DeploymentError),
    /// A pipeline could not be loaded or run.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A fixture record cannot be decoded (validation reports it first).
    #[error("{file}: {message}")]
    Record {
        /// The fixture file.
        file: String,
        /// Why.
        message: String,
    },
}

/// One fixture's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Fixture name.
    pub name: String,
    /// Its file.
    pub file: String,
    /// Its pipeline.
    pub pipeline: String,
    /// The environment it ran in.
    pub environment: String,
    /// How the run differed from the fixture; empty when it passed.
    pub mismatches: Vec<Mismatch>,
    /// Time of the run.
    pub elapsed: Duration,
}

/// Runs every fixture of `repo` (only those of `only` pipelines, if any), each pipeline and
/// environment loaded once, with the secret values of each fixture's `secrets:` and then of
/// `secrets`.
pub fn run_fixtures(
    runtime: &Runtime,
    repo: &Repo,
    artifacts: &Artifacts,
    only: &[String],
    limits: &Limits,
    secrets: &SecretValues,
) -> Result<Vec<Outcome>, TestError> {
    for p in only {
        deployment::find_pipeline(repo, p)?;
    }
    let mut loaded: BTreeMap<(String, String), LoadedPipeline> = BTreeMap::new();
    let mut out = Vec::new();
    for fixture in &repo.tests {
        let spec = &fixture.spec.spec;
        if !only.is_empty() && !only.iter().any(|p| *p == *spec.pipeline) {
            continue;
        }
        let environment = spec
            .environment
            .as_ref()
            .map(|e| e.to_string())
            .or_else(|| deployment::default_environment(repo))
            .unwrap_or_default();
        let key = (spec.pipeline.to_string(), environment.clone());
        if !loaded.contains_key(&key) {
            let deployment = deployment::deploy(repo, &environment, &spec.pipeline)?;
            let units = artifacts
                .get(spec.pipeline.as_str())
                .cloned()
                .unwrap_or_default();
            loaded.insert(key.clone(), runtime.load(&deployment, &units)?);
        }
        let pipeline = loaded.get_mut(&key).expect("loaded above");
        pipeline.set_secrets(|k| spec.secrets.get(k).cloned().or_else(|| secrets.get(k)));
        let pipeline = &*pipeline;
        let inputs = spec
            .input
            .iter()
            .map(input::from_model)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| TestError::Record {
                file: fixture.file.clone(),
                message,
            })?;
        let started = Instant::now();
        let report = pipeline.run(&inputs, limits, &mut |_| {})?;
        out.push(Outcome {
            name: fixture.spec.metadata.name.to_string(),
            file: fixture.file.clone(),
            pipeline: spec.pipeline.to_string(),
            environment,
            mismatches: mismatches(spec, pipeline, &report)
                .into_iter()
                .map(|m| Mismatch {
                    summary: pipeline.redactor().text(&m.summary),
                    detail: pipeline.redactor().text(&m.detail),
                })
                .collect(),
            elapsed: started.elapsed(),
        });
    }
    Ok(out)
}

/// A test runner's report: a line per fixture, each failure with what differs, a summary line.
pub fn render(outcomes: &[Outcome], elapsed: Duration) -> String {
    let mut out = format!(
        "running {} fixture{}\n",
        outcomes.len(),
        if outcomes.len() == 1 { "" } else { "s" }
    );
    for o in outcomes {
        let _ = writeln!(
            out,
            "test {} ({} @ {}) ... {} ({:.1} ms)",
            o.name,
            o.pipeline,
            o.environment,
            if o.mismatches.is_empty() {
                "ok"
            } else {
                "FAILED"
            },
            o.elapsed.as_secs_f64() * 1e3
        );
    }
    let failed: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| !o.mismatches.is_empty())
        .collect();
    if !failed.is_empty() {
        out.push_str("\nfailures:\n");
        for o in &failed {
            let _ = writeln!(out, "\n---- {} ({}) ----", o.name, o.file);
            for m in &o.mismatches {
                let _ = writeln!(out, "{}", m.summary);
                for line in m.detail.lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "\ntest result: {}. {} passed; {} failed; finished in {:.2}s",
        if failed.is_empty() { "ok" } else { "FAILED" },
        outcomes.len() - failed.len(),
        failed.len(),
        elapsed.as_secs_f64()
    );
    out
}

/// One way a run differs from its fixture, ready to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// One line saying what differs.
    pub summary: String,
    /// A unified diff (expected `-`, actual `+`) or details; may be empty.
    pub detail: String,
}

/// Compares `report` (of `pipeline`) with what `spec` expects.
pub fn mismatches(spec: &TestSpec, pipeline: &LoadedPipeline, report: &Report) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let expect = &spec.expect;
    for unit in &pipeline.deployment().units {
        let UnitKind::Sink(_) = unit.kind else {
            continue;
        };
        let expected: &[model::Record] = expect
            .sinks
            .iter()
            .find(|(n, _)| n.as_str() == unit.name)
            .map_or(&[], |(_, records)| records.as_slice());
        let actual: Vec<&Record> = report
            .sinks
            .iter()
            .filter(|s| s.sink == unit.name)
            .map(|s| &s.record)
            .collect();
        let same = expected.len() == actual.len()
            && expected.iter().zip(&actual).all(|(e, a)| matches(e, a));
        if !same {
            out.push(Mismatch {
                summary: format!(
                    "sink `{}`: expected {} record{}, got {}{}",
                    unit.name,
                    expected.len(),
                    plural(expected.len()),
                    actual.len(),
                    if expected.len() == actual.len() {
                        " that differ"
                    } else {
                        ""
                    }
                ),
                detail: diff(expected, &actual),
            });
        }
    }

    let dead = &report.dead_letters;
    let dead_same = expect.dead_letters.len() == dead.len()
        && expect.dead_letters.iter().zip(dead).all(|(e, a)| {
            *e.step == a.step
                && e.error
                    .as_ref()
                    .is_none_or(|t| a.reason.contains(t.as_str()))
                && e.record.as_ref().is_none_or(|r| matches(r, &a.record))
        });
    if !dead_same {
        let show_expected = |e: &model::DeadLetter| {
            let mut line = format!("step {}", e.step);
            if let Some(t) = &e.error {
                let _ = write!(line, ", error containing {t:?}");
            }
            if let Some(r) = &e.record {
                let _ = write!(
                    line,
                    ", record {}",
                    compact(&serde_json::to_value(r).expect("records serialize"))
                );
            }
            line
        };
        let mut detail = String::new();
        for e in &expect.dead_letters {
            let _ = writeln!(detail, "- {}", show_expected(e));
        }
        for a in dead {
            let _ = writeln!(
                detail,
                "+ step {}, error {:?}, record {}",
                a.step,
                a.reason,
                compact(&input::to_json(&a.record))
            );
        }
        out.push(Mismatch {
            summary: format!(
                "dead letters: expected {}, got {}{}",
                expect.dead_letters.len(),
                dead.len(),
                if expect.dead_letters.len() == dead.len() {
                    " that differ"
                } else {
                    ""
                }
            ),
            detail,
        });
    }

    for f in &report.failures {
        out.push(Mismatch {
            summary: format!(
                "record {} failed at `{}` ({}, {} attempt{})",
                f.input,
                f.unit,
                f.kind,
                f.attempts,
                plural(f.attempts as usize)
            ),
            detail: f.message.clone(),
        });
    }

    for (unit, counts) in &expect.counts {
        let Some(actual) = report.counts_of(unit) else {
            continue;
        };
        for (what, want, got) in [
            ("in", counts.input, actual.received),
            ("out", counts.output, actual.emitted),
        ] {
            if let Some(want) = want
                && want != got
            {
                out.push(Mismatch {
                    summary: format!("`{unit}` {what}: expected {want}, got {got}"),
                    detail: String::new(),
                });
            }
        }
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn compact(json: &Json) -> String {
    serde_json::to_string(json).expect("JSON values serialize")
}

/// A record for a diff: keys sorted, one field a line, so a diff points at the field.
fn pretty(json: &Json) -> String {
    let mut text = etl::util::json::pretty(json);
    text.pop();
    text
}

/// An expected record as the fixture wrote it.
fn expected_text(r: &model::Record) -> String {
    pretty(&serde_json::to_value(r).expect("records serialize"))
}

/// An actual record shown in the shape of `like` (`json` payloads as JSON, headers only when
/// `like` lists any), or exactly as `like` when it matches, so equal records diff as equal.
fn actual_text(actual: &Record, like: Option<&model::Record>) -> String {
    let Some(like) = like else {
        return pretty(&input::to_json(actual));
    };
    if matches(like, actual) {
        return expected_text(like);
    }
    let mut json = input::to_json(actual);
    if like.json.is_some()
        && let Ok(value) = serde_json::from_slice::<Json>(&actual.payload)
        && let Json::Object(map) = &mut json
    {
        map.remove("payload");
        map.insert("json".to_owned(), value);
    }
    if let Json::Object(map) = &mut json {
        if like.headers.is_empty() {
            map.remove("headers");
        } else {
            let shown: serde_json::Map<String, Json> = input::compared_headers(like, actual)
                .map(|(k, v)| (k.clone(), Json::from(v.as_str())))
                .collect();
            map.insert("headers".to_owned(), Json::Object(shown));
        }
    }
    pretty(&json)
}

/// A unified diff of the expected and actual records, one per line.
fn diff(expected: &[model::Record], actual: &[&Record]) -> String {
    let left: String = expected
        .iter()
        .map(|e| format!("{}\n", expected_text(e)))
        .collect();
    let right: String = actual
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let like = expected.get(i).or(expected.first());
            format!("{}\n", actual_text(a, like))
        })
        .collect();
    TextDiff::from_lines(&left, &right)
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string()
}
