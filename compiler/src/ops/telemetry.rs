//! What deployed steps report and what the controller serves from it (`docs/reporting.md`): the
//! harness's per-batch [`Report`], the cumulative [`Counters`] the controller keeps per unit, and
//! the JSON documents of the controller's API (`/api/v1/…`) that the dashboard and `etl status`,
//! `etl top` and `etl dlq` read.
//!
//! Shared by `etl-controller` (which writes the API documents) and the CLI (which reads them), as
//! [`crate::ops::status`] is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A node's kind in a pipeline's graph (defined with the bundle's facts, which carry it).
pub use crate::oci::bundle::NodeKind;
/// The subjects units report to and steps are replayed to (defined with the other derived
/// subjects).
pub use crate::spec::subjects::{replay_subject, report_subject};

/// The version of the report format the harness writes (`"v"`).
pub const REPORT_VERSION: u32 = 1;

/// Upper bounds, in seconds, of the buckets of the per-record processing time histogram
/// (`messaging.process.duration`), in increasing order. A report's `process.buckets` has one more
/// entry than this: the count above the last bound.
pub const PROCESS_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// The most distinct reason classes one report or one unit's counters keep; more are counted
/// under [`OTHER_CLASS`].
pub const MAX_CLASSES: usize = 16;

/// The class a reason is counted under when it names none, or when there are too many.
pub const OTHER_CLASS: &str = "other";

/// The most trace contexts one report carries; [`Report::parse`] keeps the first ones.
pub const MAX_TRACEPARENTS: usize = 8;

/// The longest trace context [`Report::parse`] keeps (a W3C `traceparent` of version `00` is 55
/// characters); longer ones are dropped.
pub const MAX_TRACEPARENT_LEN: usize = 128;

/// Whether `class` is a reason class: 1–32 characters of `[a-z0-9_-]` (which [`OTHER_CLASS`]
/// is too).
pub fn is_class(class: &str) -> bool {
    (1..=32).contains(&class.len())
        && class
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The class of a dead letter's or failure's reason: the text before its first `:`, lowercased,
/// spaces as `_`, when that is 1–32 characters of `[a-z0-9_-]`; else [`OTHER_CLASS`].
/// `"not JSON: expected value"` → `not_json`; `"egress denied: …"` → `egress_denied`.
pub fn reason_class(reason: &str) -> String {
    let Some((head, _)) = reason.split_once(':') else {
        return OTHER_CLASS.to_owned();
    };
    let class: String = head
        .trim()
        .chars()
        .map(|c| {
            if c == ' ' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    if is_class(&class) {
        class
    } else {
        OTHER_CLASS.to_owned()
    }
}

/// Why a whole batch failed (nothing of it was delivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failure {
    /// A record stayed `transient` after the harness's retries.
    Transient,
    /// The `out` part could not deliver the batch.
    Delivery,
}

impl Failure {
    /// The word used in reports, labels and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Transient => "transient",
            Failure::Delivery => "delivery",
        }
    }
}

/// Records and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flow {
    /// Records.
    pub records: u64,
    /// Their payloads' bytes.
    pub bytes: u64,
}

/// The per-record processing time histogram of a batch or a unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Histogram {
    /// Sum of the observations, in seconds.
    pub sum: f64,
    /// Count per bucket of [`PROCESS_BUCKETS`] (not cumulative), then the count above the last
    /// bound: `PROCESS_BUCKETS.len() + 1` entries.
    pub buckets: Vec<u64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            sum: 0.0,
            buckets: vec![0; PROCESS_BUCKETS.len() + 1],
        }
    }
}

impl Histogram {
    /// Number of observations (at most `u64::MAX`).
    pub fn count(&self) -> u64 {
        saturating_sum(self.buckets.iter().copied())
    }

    /// Adds `other`'s observations, saturating: a count stops at `u64::MAX`, the sum at
    /// `f64::MAX` (a sum that is no finite number could not be saved as JSON). A histogram of
    /// another shape is refused.
    pub fn add(&mut self, other: &Histogram) -> Result<(), ReportError> {
        if other.buckets.len() != self.buckets.len() {
            return Err(ReportError::Buckets(other.buckets.len()));
        }
        let sum = self.sum + other.sum;
        self.sum = if sum.is_finite() { sum } else { f64::MAX };
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a = a.saturating_add(*b);
        }
        Ok(())
    }
}

/// The sum of `values`, at most `u64::MAX`.
pub fn saturating_sum(values: impl IntoIterator<Item = u64>) -> u64 {
    values.into_iter().fold(0, u64::saturating_add)
}

/// The sum of `values`, or `None` when it overflows.
fn checked_sum(values: impl IntoIterator<Item = u64>) -> Option<u64> {
    values.into_iter().try_fold(0, u64::checked_add)
}

/// What one call of a unit (one batch) did: published by its `in` part after the batch, to
/// [`report_subject`]. `in.records = produced + filtered + Σ deadLettered + failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub v: u32,
    /// Where the batch came from: the subject of its message, or `http` for a request.
    pub from: String,
    /// When the call began: nanoseconds since the Unix epoch (the host's wall clock).
    pub start: u64,
    /// How long the call took, in nanoseconds: transforms, retries and delivery.
    pub duration: u64,
    /// The batch's records.
    #[serde(rename = "in")]
    pub input: Flow,
    /// The outputs delivered (none when the batch failed).
    pub out: Flow,
    /// Records that gave at least one output.
    pub produced: u64,
    /// Records that gave none.
    pub filtered: u64,
    /// Records rejected as `invalid`, by [`reason_class`].
    #[serde(default)]
    pub dead_lettered: BTreeMap<String, u64>,
    /// Records of a failed batch: all of them, or 0.
    pub failed: u64,
    /// Why the batch failed, when it did.
    #[serde(default)]
    pub failure: Option<Failure>,
    /// `transient` answers of the transform (each attempt counts).
    pub transient: u64,
    /// Calls of the transform again after a `transient` answer.
    pub retries: u64,
    /// The transform's time per record (each attempt an observation).
    pub process: Histogram,
    /// Distinct `traceparent`s of the batch's records, at most [`MAX_TRACEPARENTS`].
    #[serde(default)]
    pub traceparents: Vec<String>,
}

/// Why a report is not taken.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReportError {
    /// Not the JSON of a report.
    #[error("not a report: {0}")]
    Json(String),
    /// A version this build does not read.
    #[error("report version {0} (this build reads {REPORT_VERSION})")]
    Version(u32),
    /// The outcomes do not add up to the records.
    #[error(
        "the outcomes do not add up: {records} record(s) in, {outcomes} produced, filtered, dead-lettered or failed"
    )]
    Unbalanced {
        /// Records in.
        records: u64,
        /// Their outcomes.
        outcomes: u64,
    },
    /// A histogram of another shape.
    #[error("a histogram of {0} buckets (expected {expected})", expected = PROCESS_BUCKETS.len() + 1)]
    Buckets(usize),
    /// A histogram's sum that is negative (or no number).
    #[error("a histogram whose sum is {0} (expected seconds, at least 0)")]
    Sum(f64),
    /// Counts whose sum does not fit in 64 bits.
    #[error("the counts overflow: their sum does not fit in 64 bits")]
    Overflow,
    /// Failed records, without why.
    #[error("{0} record(s) failed, but `failure` does not say why")]
    NoFailure(u64),
    /// A failure that is not the whole batch's.
    #[error(
        "a failed batch fails all its records: {failed} of {records} failed (`failure` is set)"
    )]
    PartialFailure {
        /// Records failed.
        failed: u64,
        /// Records in.
        records: u64,
    },
}

impl Report {
    /// Parses and checks a report message's body: its version; its histogram's shape and sum;
    /// that its outcomes add up to its records (without overflowing); that `failed` and
    /// `failure` agree (a failed batch fails all its records, and says why). What it
    /// normalizes rather than refuses, so that the counts stay bounded: `deadLettered` classes
    /// that are not [reason classes](is_class) count as [`OTHER_CLASS`], as do classes beyond
    /// the first [`MAX_CLASSES`]` - 1` (by name), and zero counts are dropped; of
    /// `traceparents`, ones longer than [`MAX_TRACEPARENT_LEN`] and repeats are dropped, and
    /// the first [`MAX_TRACEPARENTS`] kept.
    pub fn parse(body: &[u8]) -> Result<Report, ReportError> {
        let mut report: Report =
            serde_json::from_slice(body).map_err(|e| ReportError::Json(e.to_string()))?;
        if report.v != REPORT_VERSION {
            return Err(ReportError::Version(report.v));
        }
        if report.process.buckets.len() != PROCESS_BUCKETS.len() + 1 {
            return Err(ReportError::Buckets(report.process.buckets.len()));
        }
        if !(report.process.sum.is_finite() && report.process.sum >= 0.0) {
            return Err(ReportError::Sum(report.process.sum));
        }
        report.dead_lettered = bounded_classes(std::mem::take(&mut report.dead_lettered))?;
        let dead_lettered =
            checked_sum(report.dead_lettered.values().copied()).ok_or(ReportError::Overflow)?;
        let outcomes = checked_sum([
            report.produced,
            report.filtered,
            dead_lettered,
            report.failed,
        ])
        .ok_or(ReportError::Overflow)?;
        if outcomes != report.input.records {
            return Err(ReportError::Unbalanced {
                records: report.input.records,
                outcomes,
            });
        }
        match report.failure {
            None if report.failed > 0 => return Err(ReportError::NoFailure(report.failed)),
            Some(_) if report.failed != report.input.records => {
                return Err(ReportError::PartialFailure {
                    failed: report.failed,
                    records: report.input.records,
                });
            }
            _ => {}
        }
        let mut seen = std::collections::BTreeSet::new();
        report.traceparents.retain(|t| {
            t.len() <= MAX_TRACEPARENT_LEN
                && seen.len() < MAX_TRACEPARENTS
                && seen.insert(t.clone())
        });
        Ok(report)
    }
}

/// A report's dead-lettered counts with at most [`MAX_CLASSES`] classes, each a
/// [reason class](is_class): the rest, and names that are none, under [`OTHER_CLASS`]; no zero
/// counts.
fn bounded_classes(counts: BTreeMap<String, u64>) -> Result<BTreeMap<String, u64>, ReportError> {
    let mut kept = BTreeMap::new();
    let mut other: u64 = 0;
    for (class, n) in counts {
        if n == 0 {
            continue;
        }
        if is_class(&class) && class != OTHER_CLASS && kept.len() < MAX_CLASSES - 1 {
            kept.insert(class, n);
        } else {
            other = other.checked_add(n).ok_or(ReportError::Overflow)?;
        }
    }
    if other > 0 {
        kept.insert(OTHER_CLASS.to_owned(), other);
    }
    Ok(kept)
}

/// A unit's cumulative counts: the sum of its reports since the controller began counting
/// (`docs/reporting.md`). Every field has a default, so that counts saved before a field was
/// added still read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Counters {
    /// Batches (calls) reported.
    pub batches: u64,
    /// Records in.
    #[serde(rename = "in")]
    pub input: Flow,
    /// Outputs delivered.
    pub out: Flow,
    /// Records that gave at least one output.
    pub produced: u64,
    /// Records that gave none.
    pub filtered: u64,
    /// Records dead-lettered, by reason class.
    pub dead_lettered: BTreeMap<String, u64>,
    /// Records of failed batches, by [`Failure`].
    pub failed: BTreeMap<Failure, u64>,
    /// `transient` answers.
    pub transient: u64,
    /// Retries after them.
    pub retries: u64,
    /// Per-record processing time.
    pub process: Histogram,
}

impl Counters {
    /// Adds one report. Reason classes beyond [`MAX_CLASSES`] count as [`OTHER_CLASS`]. Every
    /// count saturates at `u64::MAX` rather than overflow: a count that large is wrong, but
    /// counting goes on.
    pub fn add(&mut self, report: &Report) -> Result<(), ReportError> {
        self.process.add(&report.process)?;
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.batches, 1);
        add(&mut self.input.records, report.input.records);
        add(&mut self.input.bytes, report.input.bytes);
        add(&mut self.out.records, report.out.records);
        add(&mut self.out.bytes, report.out.bytes);
        add(&mut self.produced, report.produced);
        add(&mut self.filtered, report.filtered);
        for (class, n) in &report.dead_lettered {
            let class = if self.dead_lettered.contains_key(class)
                || self.dead_lettered.len() < MAX_CLASSES - 1
            {
                class.as_str()
            } else {
                OTHER_CLASS
            };
            add(self.dead_lettered.entry(class.to_owned()).or_default(), *n);
        }
        if let Some(failure) = report.failure {
            add(self.failed.entry(failure).or_default(), report.failed);
        }
        add(&mut self.transient, report.transient);
        add(&mut self.retries, report.retries);
        Ok(())
    }

    /// Records dead-lettered, all classes (at most `u64::MAX`).
    pub fn dead_lettered_total(&self) -> u64 {
        saturating_sum(self.dead_lettered.values().copied())
    }

    /// Records of failed batches, all reasons (at most `u64::MAX`).
    pub fn failed_total(&self) -> u64 {
        saturating_sum(self.failed.values().copied())
    }

    /// Whether every record in has an outcome: `in = produced + filtered + dead-lettered +
    /// failed`.
    pub fn balanced(&self) -> bool {
        self.input.records
            == saturating_sum([
                self.produced,
                self.filtered,
                self.dead_lettered_total(),
                self.failed_total(),
            ])
    }
}

/// Per-second rates over the controller's last sampling window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rates {
    /// Records in per second.
    #[serde(rename = "in")]
    pub input: f64,
    /// Outputs per second.
    pub out: f64,
    /// Dead letters and failed records per second.
    pub errors: f64,
}

/// One sample of a unit's rates, for charts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Seconds since the Unix epoch at the end of the interval.
    pub t: u64,
    /// The rates over the interval.
    #[serde(flatten)]
    pub rates: Rates,
}

/// A node of a pipeline's graph, with its counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// The source's, step's or sink's name.
    pub name: String,
    /// What it is.
    pub kind: NodeKind,
    /// Its connector (source and sinks: `http`, `nats`, `kafka`, `s3`, `pipeline`).
    pub connector: Option<String>,
    /// The customer component's digest (steps).
    pub component: Option<String>,
    /// The composed artifact's digest (steps and sinks).
    pub artifact: Option<String>,
    /// The capabilities granted to the step's customer component beyond the contract (e.g.
    /// `wasi:http/outgoing-handler → api.example.com`).
    #[serde(default)]
    pub grants: Vec<String>,
    /// Cumulative counts (steps and sinks; none before their first report).
    pub counters: Option<Counters>,
    /// Rates over the last window.
    #[serde(default)]
    pub rates: Rates,
    /// Recent rate samples, oldest first.
    #[serde(default)]
    pub series: Vec<Sample>,
}

/// An edge of a pipeline's graph: records of `from` consumed by `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    /// Upstream node.
    pub from: String,
    /// Downstream node.
    pub to: String,
    /// Records `to` received from `from`.
    pub records: u64,
    /// Of them, records `to` dead-lettered or failed.
    pub errors: u64,
    /// Records per second over the last window.
    pub rate: f64,
}

/// `GET /api/v1/pipelines/<name>`: one pipeline's graph and counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineView {
    /// The pipeline.
    pub name: String,
    /// Its application's state, as `/status` says.
    pub state: Option<String>,
    /// Its version.
    pub version: Option<String>,
    /// Source, steps and sinks, in spec order.
    pub nodes: Vec<Node>,
    /// Every `from` of every step and sink.
    pub edges: Vec<Edge>,
}

/// One bundle the controller applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// The bundle's manifest digest.
    pub digest: String,
    /// The commit it was compiled from.
    pub revision: Option<String>,
    /// The source repository.
    pub source: Option<String>,
    /// The key id that signed it.
    pub signer: String,
    /// When it was applied (RFC 3339).
    pub applied_at: String,
}

/// `GET /api/v1/overview`: the environment, its bundle and its pipelines' totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    /// The project.
    pub project: Option<String>,
    /// The environment.
    pub environment: Option<String>,
    /// `v1` or `v2`.
    pub generation: String,
    /// The environment's state, as `/status` says.
    pub state: String,
    /// The bundle running.
    pub deployed: Option<Deployment>,
    /// Bundles applied before, newest first.
    #[serde(default)]
    pub history: Vec<Deployment>,
    /// Per pipeline: its totals over its steps and sinks.
    pub pipelines: Vec<PipelineSummary>,
    /// Reports that could not be read, and reports lost before they were counted.
    pub reports: ReportHealth,
}

/// A pipeline's line in the overview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSummary {
    /// The pipeline.
    pub name: String,
    /// Its application's state.
    pub state: Option<String>,
    /// Records its first units received (from the source).
    pub records_in: u64,
    /// Records its sinks delivered.
    pub records_out: u64,
    /// Records dead-lettered at any step.
    pub dead_lettered: u64,
    /// Records of failed batches at any unit.
    pub failed: u64,
    /// Rates: `in` at the first units, `out` at the sinks, errors anywhere.
    pub rates: Rates,
    /// Dead letters kept for it.
    pub dead_letters_kept: u64,
}

/// How complete the counts are. Every field has a default, so that a document (or a saved
/// snapshot) written before a field was added still reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReportHealth {
    /// Reports counted.
    pub counted: u64,
    /// Reports refused (unreadable, unbalanced, unknown unit).
    pub refused: u64,
    /// Reports the stream no longer held when the controller came to them.
    pub missed: u64,
}

/// A dead letter as the API shows it: truncated and redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// Its id, `<seq>-<index>`: the dead-letter stream's sequence number of the message it came
    /// in, and its index in that message's batch.
    pub id: String,
    /// The pipeline.
    pub pipeline: String,
    /// The step that rejected it.
    pub step: String,
    /// The transform's reason.
    pub reason: String,
    /// [`reason_class`] of it.
    pub class: String,
    /// When it was dead-lettered (RFC 3339).
    pub at: String,
    /// `sha256:` of the input's payload.
    pub input_digest: String,
    /// The payload's size in bytes.
    pub size: u64,
    /// The payload, at most the controller's preview length, values of secret-looking JSON
    /// keys and headers replaced by `"[redacted]"`; lossy UTF-8.
    pub preview: String,
    /// Whether `preview` is cut short.
    pub truncated: bool,
    /// The record's headers (values of secret-looking ones redacted), in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The record's key, lossy UTF-8.
    pub key: Option<String>,
}

/// `POST /api/v1/dead-letters/replay`: which dead letters to publish to their step's replay
/// subject again. `ids`, or every one kept of `pipeline`/`step`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayRequest {
    /// These dead letters.
    #[serde(default)]
    pub ids: Vec<String>,
    /// Or all of this pipeline's …
    pub pipeline: Option<String>,
    /// … step's.
    pub step: Option<String>,
    /// Who asks (recorded; `etl dlq replay` sends `user@host`).
    pub actor: String,
}

/// What a replay did; also its audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replay {
    /// Who asked, as they said.
    pub actor: String,
    /// Which credential they used: the first 12 hex digits of the SHA-256 of the token, or
    /// `none` when the controller has no token.
    pub credential: String,
    /// Where the request came from.
    pub remote: String,
    /// When (RFC 3339).
    pub at: String,
    /// The dead letters published again, by id, with the subject each went to.
    pub replayed: Vec<(String, String)>,
    /// Asked-for ids no longer kept.
    #[serde(default)]
    pub missing: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(records: u64) -> Report {
        let mut process = Histogram::default();
        process.buckets[3] = records;
        process.sum = 0.0003 * records as f64;
        Report {
            v: REPORT_VERSION,
            from: "etl.p.pipe.out.parse".to_owned(),
            start: 1,
            duration: 2,
            input: Flow {
                records,
                bytes: 10 * records,
            },
            out: Flow {
                records: records - 1,
                bytes: 9,
            },
            produced: records - 2,
            filtered: 1,
            dead_lettered: BTreeMap::from([("not_json".to_owned(), 1)]),
            failed: 0,
            failure: None,
            transient: 1,
            retries: 1,
            process,
            traceparents: vec![],
        }
    }

    /// The same cases as the harness's own (`harness-components/report`), whose twin of
    /// [`reason_class`] must give the same classes.
    #[test]
    fn reason_classes() {
        assert_eq!(reason_class("not JSON: expected value"), "not_json");
        assert_eq!(reason_class("egress denied: nope"), "egress_denied");
        assert_eq!(reason_class("  Rate-Limit 2 : x: y"), "rate-limit_2");
        assert_eq!(reason_class("no colon"), OTHER_CLASS);
        assert_eq!(reason_class(": empty"), OTHER_CLASS);
        assert_eq!(reason_class("Ünicode: x"), OTHER_CLASS);
        assert_eq!(reason_class("a\tb: tab inside"), OTHER_CLASS);
        assert_eq!(reason_class("a.b: dot"), OTHER_CLASS);
        assert_eq!(
            reason_class(&format!("{}: long", "a".repeat(32))),
            "a".repeat(32)
        );
        assert_eq!(
            reason_class(&format!("{}: long", "a".repeat(33))),
            OTHER_CLASS
        );
    }

    #[test]
    fn a_report_round_trips_and_balances() {
        let r = report(5);
        let body = serde_json::to_vec(&r).unwrap();
        assert_eq!(Report::parse(&body).unwrap(), r);
        let mut bad = r.clone();
        bad.filtered = 3;
        let body = serde_json::to_vec(&bad).unwrap();
        assert_eq!(
            Report::parse(&body),
            Err(ReportError::Unbalanced {
                records: 5,
                outcomes: 7
            })
        );
    }

    #[test]
    fn counters_add_up_and_bound_classes() {
        let mut c = Counters {
            process: Histogram::default(),
            ..Counters::default()
        };
        for i in 0..40 {
            let mut r = report(3);
            r.dead_lettered = BTreeMap::from([(format!("c{i}"), 1)]);
            c.add(&r).unwrap();
        }
        assert_eq!(c.input.records, 120);
        assert_eq!(c.dead_lettered_total(), 40);
        assert_eq!(c.dead_lettered.len(), MAX_CLASSES);
        assert_eq!(c.dead_lettered[OTHER_CLASS], 40 - (MAX_CLASSES as u64 - 1));
        assert_eq!(c.process.count(), 120);
        assert!(c.balanced());
    }

    fn parse(r: &Report) -> Result<Report, ReportError> {
        Report::parse(&serde_json::to_vec(r).unwrap())
    }

    #[test]
    fn sums_that_overflow_are_refused() {
        let mut r = report(5);
        r.produced = u64::MAX;
        r.input.records = u64::MAX;
        assert_eq!(parse(&r), Err(ReportError::Overflow));
        let mut r = report(5);
        r.dead_lettered = BTreeMap::from([("a".to_owned(), u64::MAX), ("b".to_owned(), 2)]);
        assert_eq!(parse(&r), Err(ReportError::Overflow));
        // Classes folded into `other` overflow too.
        let mut r = report(5);
        r.dead_lettered = BTreeMap::from([("Bad".to_owned(), u64::MAX), ("W S".to_owned(), 2)]);
        assert_eq!(parse(&r), Err(ReportError::Overflow));
        let mut r = report(5);
        r.process.sum = -1.0;
        assert_eq!(parse(&r), Err(ReportError::Sum(-1.0)));
    }

    #[test]
    fn counters_saturate() {
        let mut c = Counters::default();
        let mut r = report(5);
        r.input.bytes = u64::MAX;
        r.process.buckets[0] = u64::MAX;
        r.process.sum = f64::MAX;
        c.add(&r).unwrap();
        c.add(&r).unwrap();
        assert_eq!(c.input.bytes, u64::MAX);
        assert_eq!(c.process.buckets[0], u64::MAX);
        assert_eq!(c.process.count(), u64::MAX);
        assert_eq!(c.process.sum, f64::MAX);
        assert_eq!(c.input.records, 10);
        c.dead_lettered.insert("x".to_owned(), u64::MAX);
        assert_eq!(c.dead_lettered_total(), u64::MAX);
        assert!(!c.balanced());
        // Saved and read again: the sum is still a number.
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Counters>(&json).unwrap(), c);
    }

    #[test]
    fn failed_and_failure_agree() {
        let mut r = report(5);
        r.produced = 0;
        r.filtered = 0;
        r.dead_lettered.clear();
        r.failed = 5;
        assert_eq!(parse(&r), Err(ReportError::NoFailure(5)));
        r.failure = Some(Failure::Delivery);
        assert_eq!(parse(&r).unwrap(), r);
        // A failure named for a batch that did not fail whole.
        let mut r = report(5);
        r.failure = Some(Failure::Transient);
        assert_eq!(
            parse(&r),
            Err(ReportError::PartialFailure {
                failed: 0,
                records: 5
            })
        );
        let mut r = report(5);
        r.produced = 1;
        r.failed = 2;
        r.failure = Some(Failure::Transient);
        assert!(matches!(
            parse(&r),
            Err(ReportError::PartialFailure { failed: 2, .. })
        ));
    }

    #[test]
    fn classes_and_trace_contexts_are_bounded() {
        let mut r = report(39);
        r.produced = 0;
        r.filtered = 0;
        r.dead_lettered = (0..30).map(|i| (format!("c{i:02}"), 1)).collect();
        r.dead_lettered.insert("Not A Class".to_owned(), 3);
        r.dead_lettered.insert("x".repeat(33), 2);
        r.dead_lettered.insert(OTHER_CLASS.to_owned(), 4);
        r.dead_lettered.insert("zero".to_owned(), 0);
        r.out = Flow::default();
        r.traceparents = (0..20)
            .map(|i| format!("00-{:032x}-{:016x}-01", i % 10 + 1, 1))
            .collect();
        r.traceparents
            .insert(0, "y".repeat(MAX_TRACEPARENT_LEN + 1));
        let parsed = parse(&r).unwrap();
        assert_eq!(parsed.dead_lettered.len(), MAX_CLASSES);
        assert!(parsed.dead_lettered.keys().all(|c| is_class(c)));
        assert!(!parsed.dead_lettered.contains_key("zero"));
        // The first 15 by name kept, the 15 others (1 each), the two bad names (3 + 2) and
        // `other` itself (4) under `other`.
        assert_eq!(parsed.dead_lettered["c00"], 1);
        assert_eq!(parsed.dead_lettered[OTHER_CLASS], 15 + 5 + 4);
        assert_eq!(saturating_sum(parsed.dead_lettered.values().copied()), 39);
        assert_eq!(parsed.traceparents.len(), MAX_TRACEPARENTS);
        assert_eq!(parsed.traceparents[0], r.traceparents[1]);
        let distinct: std::collections::BTreeSet<_> = parsed.traceparents.iter().collect();
        assert_eq!(distinct.len(), MAX_TRACEPARENTS);
        assert!(is_class("not_json") && is_class("a-1") && is_class(OTHER_CLASS));
        assert!(!is_class("") && !is_class("A") && !is_class("a b") && !is_class(&"a".repeat(33)));
    }
}
