//! The metrics both exporters serve, named once: OpenTelemetry's messaging semantic conventions
//! where they fit (`messaging.client.consumed.messages`, `messaging.client.sent.messages`,
//! `messaging.process.duration`), `etl.*` for the rest. OTLP uses these names and attribute keys
//! as they are; Prometheus the same with `_` for `.`, the unit's suffix and `_total` on counters
//! (`messaging_client_consumed_messages_total`, `messaging_process_duration_seconds`).
//!
//! Every series is labelled with its project and environment; a unit's also with its pipeline,
//! step (or sink), `messaging.system` (`nats`), `messaging.operation.name` (`process`) and
//! `messaging.destination.name`: the subject the unit consumes, or — for a unit reading several
//! — their common NATS wildcard (`etl.p.pipe.out.parse` and `etl.p.pipe.out.enrich` →
//! `etl.p.pipe.out.*`). Labels come from the bundle's facts and the bounded reason classes
//! only: never from payloads, and never a secret.

use etl::ops::telemetry::{Counters, NodeKind, ReportHealth};

use super::Telemetry;

/// A counter's values: (the extra attribute's value, count).
pub type Values = Vec<(Option<String>, u64)>;

/// A counter of a unit: its OTel name, unit and description, an extra attribute, and its
/// values from the unit's counters (one per value of the extra attribute).
pub struct UnitCounter {
    /// OTel name.
    pub name: &'static str,
    /// UCUM unit (`{record}`, `By`, …).
    pub unit: &'static str,
    /// What it counts.
    pub help: &'static str,
    /// An extra attribute: (Prometheus label, OTel attribute key).
    pub extra: Option<(&'static str, &'static str)>,
    /// Its values: (extra attribute's value, count).
    pub values: fn(&Counters) -> Values,
}

fn one(n: u64) -> Values {
    vec![(None, n)]
}

/// Every counter a unit has.
pub const UNIT_COUNTERS: &[UnitCounter] = &[
    UnitCounter {
        name: "messaging.client.consumed.messages",
        unit: "{message}",
        help: "Records the unit received.",
        extra: None,
        values: |c| one(c.input.records),
    },
    UnitCounter {
        name: "messaging.client.sent.messages",
        unit: "{message}",
        help: "Outputs the unit delivered.",
        extra: None,
        values: |c| one(c.out.records),
    },
    UnitCounter {
        name: "etl.records.produced",
        unit: "{record}",
        help: "Records that gave at least one output.",
        extra: None,
        values: |c| one(c.produced),
    },
    UnitCounter {
        name: "etl.records.filtered",
        unit: "{record}",
        help: "Records that gave no output.",
        extra: None,
        values: |c| one(c.filtered),
    },
    UnitCounter {
        name: "etl.records.dead_lettered",
        unit: "{record}",
        help: "Records the transform rejected as invalid, by reason class.",
        extra: Some(("reason_class", "etl.reason_class")),
        values: |c| {
            c.dead_lettered
                .iter()
                .map(|(class, n)| (Some(class.clone()), *n))
                .collect()
        },
    },
    UnitCounter {
        name: "etl.records.failed",
        unit: "{record}",
        help: "Records of failed batches, by why the batch failed.",
        extra: Some(("failure", "etl.failure")),
        values: |c| {
            c.failed
                .iter()
                .map(|(f, n)| (Some(f.as_str().to_owned()), *n))
                .collect()
        },
    },
    UnitCounter {
        name: "etl.transient_errors",
        unit: "{error}",
        help: "Transient answers of the transform, every attempt.",
        extra: None,
        values: |c| one(c.transient),
    },
    UnitCounter {
        name: "etl.retries",
        unit: "{retry}",
        help: "Calls of the transform again after a transient answer.",
        extra: None,
        values: |c| one(c.retries),
    },
    UnitCounter {
        name: "etl.consumed.bytes",
        unit: "By",
        help: "Payload bytes of the records received.",
        extra: None,
        values: |c| one(c.input.bytes),
    },
    UnitCounter {
        name: "etl.sent.bytes",
        unit: "By",
        help: "Payload bytes of the outputs delivered.",
        extra: None,
        values: |c| one(c.out.bytes),
    },
    UnitCounter {
        name: "etl.batches",
        unit: "{batch}",
        help: "Batches (calls) reported.",
        extra: None,
        values: |c| one(c.batches),
    },
];

/// The processing-time histogram's OTel name.
pub const PROCESS_DURATION: &str = "messaging.process.duration";
/// Its description.
pub const PROCESS_DURATION_HELP: &str =
    "The transform's time per record (each attempt an observation), in seconds.";
/// Dead letters kept, per step (a gauge).
pub const DEAD_LETTERS_KEPT: &str = "etl.dead_letters.kept";
/// Its description.
pub const DEAD_LETTERS_KEPT_HELP: &str = "Dead-lettered records kept for reading and replay.";
/// Reports counted, refused and missed (counters of the environment).
pub const REPORTS: [(&str, &str); 3] = [
    ("etl.reports.counted", "Reports counted."),
    (
        "etl.reports.refused",
        "Reports refused: unreadable, unbalanced, or of a unit the bundle does not have.",
    ),
    (
        "etl.reports.missed",
        "Reports the stream no longer held when the controller came to them.",
    ),
];
/// OTLP spans dropped (a counter of the environment).
pub const SPANS_DROPPED: &str = "etl.otlp.spans.dropped";
/// Its description.
pub const SPANS_DROPPED_HELP: &str = "Report spans dropped: the OTLP queue was full (the oldest \
    go first), or the collector refused them with an answer that trying again cannot change.";

/// Attributes: (OTel key, value). The Prometheus label is the key with `_` for `.`.
pub type Attributes = Vec<(&'static str, String)>;

/// One unit's counters and attributes.
pub struct UnitPoint {
    /// Its attributes.
    pub attributes: Attributes,
    /// Its counts.
    pub counters: Counters,
    /// When its counts began (ns since the epoch): when it first reported, or when counting
    /// began for counts saved before units had their own start.
    pub since: u64,
}

/// Everything exported at one moment.
pub struct Points {
    /// The environment's attributes (project, environment).
    pub environment: Attributes,
    /// Every unit of the bundle's pipelines that reported.
    pub units: Vec<UnitPoint>,
    /// Dead letters kept, per step: its attributes (environment, pipeline, step) and count.
    pub kept: Vec<(Attributes, u64)>,
    /// Reports counted, refused, missed.
    pub health: ReportHealth,
    /// Spans dropped.
    pub spans_dropped: u64,
    /// When counting began (ns since the epoch): the start of the environment's counts.
    pub since: u64,
}

/// The Prometheus label of an OTel attribute key.
pub fn label(key: &str) -> String {
    key.replace('.', "_")
}

/// `messaging.destination.name` of a unit consuming `subjects`: the subject, or the NATS
/// wildcard matching all of them (tokens that differ as `*`; `>` for a differing length).
pub fn destination(subjects: &[&str]) -> String {
    let Some((first, rest)) = subjects.split_first() else {
        return String::new();
    };
    let mut tokens: Vec<&str> = first.split('.').collect();
    let mut longer = false;
    for subject in rest {
        let other: Vec<&str> = subject.split('.').collect();
        if other.len() != tokens.len() {
            longer = true;
        }
        let common = tokens.len().min(other.len());
        tokens.truncate(common);
        for (t, o) in tokens.iter_mut().zip(&other) {
            if t != o {
                *t = "*";
            }
        }
    }
    if longer {
        if tokens.is_empty() {
            return ">".to_owned();
        }
        // `>` stands for one or more tokens: the last common token becomes it.
        tokens.pop();
        tokens.push(">");
    }
    tokens.join(".")
}

/// What to export now, once the first bundle is taken and the counts are loaded.
pub fn collect(telemetry: &Telemetry) -> Option<Points> {
    let taken = telemetry.taken()?;
    let facts = &taken.facts;
    let environment: Attributes = vec![
        ("etl.project", facts.project.clone()),
        ("etl.environment", facts.environment.clone()),
    ];
    let kept_by_step = telemetry.dead_letters.kept();
    let (units, health, since) = telemetry.with_store(|store| {
        let mut units = Vec::new();
        for pipeline in &facts.pipelines {
            for node in pipeline.nodes.iter().filter(|n| n.kind != NodeKind::Source) {
                let Some(counters) = store.counters(&pipeline.name, &node.name) else {
                    continue;
                };
                let subjects: Vec<&str> = node.inputs.iter().map(|(s, _)| s.as_str()).collect();
                let mut attributes = environment.clone();
                attributes.extend([
                    ("etl.pipeline", pipeline.name.clone()),
                    ("etl.step", node.name.clone()),
                    ("messaging.system", "nats".to_owned()),
                    ("messaging.destination.name", destination(&subjects)),
                    ("messaging.operation.name", "process".to_owned()),
                ]);
                units.push(UnitPoint {
                    attributes,
                    counters: counters.clone(),
                    since: store.since(&pipeline.name, &node.name),
                });
            }
        }
        (units, store.health(), store.snapshot().since)
    })?;
    let mut kept = Vec::new();
    for pipeline in &facts.pipelines {
        for node in pipeline.nodes.iter().filter(|n| n.kind == NodeKind::Step) {
            let n = kept_by_step
                .get(&(pipeline.name.clone(), node.name.clone()))
                .copied()
                .unwrap_or_default();
            let mut attributes = environment.clone();
            attributes.extend([
                ("etl.pipeline", pipeline.name.clone()),
                ("etl.step", node.name.clone()),
            ]);
            kept.push((attributes, n));
        }
    }
    Some(Points {
        environment,
        units,
        kept,
        health,
        spans_dropped: telemetry.spans.dropped(),
        since,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        assert_eq!(destination(&["etl.p.x.out.a"]), "etl.p.x.out.a");
        assert_eq!(
            destination(&["etl.p.x.out.a", "etl.p.x.out.b"]),
            "etl.p.x.out.*"
        );
        assert_eq!(
            destination(&["etl.p.x.out.a", "etl.p.y.out.a"]),
            "etl.p.*.out.a"
        );
        assert_eq!(destination(&["etl.p.x.out.a", "etl.p.x.a"]), "etl.p.x.>");
        assert_eq!(destination(&["http"]), "http");
        assert_eq!(destination(&["http", "etl.p.x"]), ">");
        assert_eq!(destination(&[]), "");
    }
}
