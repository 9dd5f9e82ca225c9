//! The counts: every report of this environment added to its unit's [`Counters`] and to the edge
//! it came in by, what could not be counted, and rate samples for charts. No I/O: the consumer
//! ([`super::reports`]) feeds it, the API and the exporters read it, and its durable part
//! ([`Snapshot`]) is what survives a restart.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use etl::oci::bundle::Facts;
use etl::ops::telemetry::{
    Counters, NodeKind, Rates, Report, ReportHealth, Sample, saturating_sum,
};
use serde::{Deserialize, Serialize};

/// How often totals are sampled for rates.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// Rate samples kept per unit and edge: ten minutes.
pub const SAMPLES_KEPT: usize = 120;
/// The shortest interval a rate is measured over: a sample sooner after the last one is not
/// taken (the next one covers it).
pub const MIN_SAMPLE_GAP: Duration = Duration::from_secs(1);

/// Records one unit received from one upstream node (an edge of the graph).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeCount {
    /// Records in.
    pub records: u64,
    /// Of them, dead-lettered or in failed batches.
    pub errors: u64,
}

/// The durable counts: persisted as one JSON value, so the sequence and the counts it covers
/// never disagree. Every field has a default, so that a snapshot saved before a field was added
/// still loads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Snapshot {
    /// The report stream's sequence of the last report taken (counted, refused or skipped).
    pub seq: u64,
    /// When counting began, nanoseconds since the Unix epoch: the start of every cumulative
    /// count (OTLP's `start_time_unix_nano`).
    pub since: u64,
    /// Counters by pipeline, then unit.
    pub counters: BTreeMap<String, BTreeMap<String, Counters>>,
    /// Edges by pipeline, then upstream node, then unit.
    pub edges: BTreeMap<String, BTreeMap<String, BTreeMap<String, EdgeCount>>>,
    /// Reports counted, refused and missed.
    pub health: ReportHealth,
    /// When each unit's counters began, nanoseconds since the Unix epoch, by pipeline, then
    /// unit: the start of its cumulative counts (a unit dropped by a bundle and deployed again
    /// starts anew). A unit counted before this was saved began at [`Snapshot::since`].
    pub unit_since: BTreeMap<String, BTreeMap<String, u64>>,
    /// When the report stream that `seq` is a sequence of was created (RFC 3339, as the
    /// server says): a stream made anew since is read from its start.
    pub stream_created: Option<String>,
}

/// Where a report came from: its pipeline and unit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unit {
    /// The pipeline.
    pub pipeline: String,
    /// The step or sink.
    pub unit: String,
}

/// What became of one report message.
#[derive(Debug, Clone, PartialEq)]
pub enum Taken {
    /// Counted.
    Counted(Unit, Box<Report>),
    /// Refused (counted in [`ReportHealth::refused`]), and why.
    Refused(String),
    /// A sequence already taken (a redelivery): ignored.
    Again,
}

/// Which units report, and which upstream node each input subject carries: from the facts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    project: String,
    environment: String,
    /// Pipeline → unit → its inputs `(subject, upstream node)`.
    units: BTreeMap<String, BTreeMap<String, Vec<(String, String)>>>,
}

impl Graph {
    /// The reporting units (steps and sinks) of `facts`.
    pub fn of(facts: &Facts) -> Graph {
        let units = facts
            .pipelines
            .iter()
            .map(|p| {
                let units = p
                    .nodes
                    .iter()
                    .filter(|n| n.kind != NodeKind::Source)
                    .map(|n| (n.name.clone(), n.inputs.clone()))
                    .collect();
                (p.name.clone(), units)
            })
            .collect();
        Graph {
            project: facts.project.clone(),
            environment: facts.environment.clone(),
            units,
        }
    }

    fn inputs(&self, pipeline: &str, unit: &str) -> Option<&[(String, String)]> {
        self.units.get(pipeline)?.get(unit).map(Vec::as_slice)
    }
}

/// Totals at one sample: records in, out, errors.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Totals {
    input: u64,
    out: u64,
    errors: u64,
}

/// Totals sampled over time, oldest first: `t` in seconds since the epoch (what charts show),
/// `at` on the monotonic clock (what rates are measured with: the wall clock may jump).
#[derive(Debug, Clone, Default)]
struct Series(VecDeque<(u64, Instant, Totals)>);

impl Series {
    fn push(&mut self, t: u64, at: Instant, totals: Totals) {
        self.0.push_back((t, at, totals));
        while self.0.len() > SAMPLES_KEPT + 1 {
            self.0.pop_front();
        }
    }

    /// The rates between consecutive samples, oldest first.
    fn samples(&self) -> Vec<Sample> {
        self.0
            .iter()
            .zip(self.0.iter().skip(1))
            .map(|((_, at0, a), (t1, at1, b))| {
                let dt = at1
                    .saturating_duration_since(*at0)
                    .max(MIN_SAMPLE_GAP)
                    .as_secs_f64();
                let per_second = |a: u64, b: u64| b.saturating_sub(a) as f64 / dt;
                Sample {
                    t: *t1,
                    rates: Rates {
                        input: per_second(a.input, b.input),
                        out: per_second(a.out, b.out),
                        errors: per_second(a.errors, b.errors),
                    },
                }
            })
            .collect()
    }

    fn rates(&self) -> Rates {
        self.samples().last().map(|s| s.rates).unwrap_or_default()
    }
}

/// The counts of one environment, and their recent rates.
#[derive(Debug, Default)]
pub struct Store {
    graph: Graph,
    counts: Snapshot,
    /// Rate history by pipeline and unit.
    units: BTreeMap<(String, String), Series>,
    /// Rate history by pipeline, upstream node and unit (records only).
    edges: BTreeMap<(String, String, String), Series>,
    /// When the last sample was taken: seconds since the epoch, and on the monotonic clock.
    sampled: Option<(u64, Instant)>,
}

impl Store {
    /// A store resuming from `snapshot` (a fresh one has `seq` 0), counting `graph`'s units.
    pub fn new(graph: Graph, snapshot: Snapshot) -> Store {
        let mut store = Store {
            graph: Graph::default(),
            counts: snapshot,
            ..Store::default()
        };
        store.set_graph(graph);
        store
    }

    /// Counts the units of a new bundle's graph from now on; the counts of units it no longer
    /// has are dropped (so that what is exposed stays bounded by what is deployed).
    pub fn set_graph(&mut self, graph: Graph) {
        let known = |p: &str, u: &str| graph.inputs(p, u).is_some();
        for (pipeline, units) in &mut self.counts.counters {
            units.retain(|unit, _| known(pipeline, unit));
        }
        self.counts.counters.retain(|_, units| !units.is_empty());
        // A unit's start time goes with its counters.
        let counters = &self.counts.counters;
        for (pipeline, units) in &mut self.counts.unit_since {
            units.retain(|unit, _| counters.get(pipeline).is_some_and(|c| c.contains_key(unit)));
        }
        self.counts.unit_since.retain(|_, units| !units.is_empty());
        for (pipeline, froms) in &mut self.counts.edges {
            for tos in froms.values_mut() {
                tos.retain(|unit, _| known(pipeline, unit));
            }
            froms.retain(|_, tos| !tos.is_empty());
        }
        self.counts.edges.retain(|_, froms| !froms.is_empty());
        self.units.retain(|(p, u), _| known(p, u));
        self.edges.retain(|(p, _, u), _| known(p, u));
        self.graph = graph;
    }

    /// Takes the report message of stream sequence `seq` on `subject`, now.
    pub fn take(&mut self, seq: u64, subject: &str, body: &[u8]) -> Taken {
        let now = super::now().as_nanos().try_into().unwrap_or(u64::MAX);
        self.take_at(seq, subject, body, now)
    }

    /// Takes the report message of stream sequence `seq` on `subject` at `now` (nanoseconds
    /// since the epoch: when a unit counted first begins).
    pub fn take_at(&mut self, seq: u64, subject: &str, body: &[u8], now: u64) -> Taken {
        if seq <= self.counts.seq {
            return Taken::Again;
        }
        self.counts.seq = seq;
        match self.count(subject, body, now) {
            Ok((unit, report)) => {
                self.counts.health.counted = self.counts.health.counted.saturating_add(1);
                Taken::Counted(unit, Box::new(report))
            }
            Err(why) => {
                self.counts.health.refused = self.counts.health.refused.saturating_add(1);
                Taken::Refused(why)
            }
        }
    }

    fn count(&mut self, subject: &str, body: &[u8], now: u64) -> Result<(Unit, Report), String> {
        let tokens: Vec<&str> = subject.split('.').collect();
        let ["etl", project, pipeline, "report", unit, environment] = tokens[..] else {
            return Err(format!("`{subject}` is not a report subject"));
        };
        if project != self.graph.project || environment != self.graph.environment {
            return Err(format!(
                "`{subject}` is another project's or environment's report"
            ));
        }
        let Some(inputs) = self.graph.inputs(pipeline, unit) else {
            return Err(format!(
                "no step or sink `{unit}` of pipeline `{pipeline}` in the bundle applied"
            ));
        };
        let report = Report::parse(body).map_err(|e| e.to_string())?;
        let upstream = upstream(inputs, &report.from);
        let counters = self
            .counts
            .counters
            .entry(pipeline.to_owned())
            .or_default()
            .entry(unit.to_owned())
            .or_insert_with(|| {
                self.counts
                    .unit_since
                    .entry(pipeline.to_owned())
                    .or_default()
                    .insert(unit.to_owned(), now);
                Counters::default()
            });
        counters.add(&report).map_err(|e| e.to_string())?;
        if let Some(upstream) = upstream {
            let edge = self
                .counts
                .edges
                .entry(pipeline.to_owned())
                .or_default()
                .entry(upstream)
                .or_default()
                .entry(unit.to_owned())
                .or_default();
            let errors = saturating_sum(report.dead_lettered.values().copied())
                .saturating_add(report.failed);
            edge.records = edge.records.saturating_add(report.input.records);
            edge.errors = edge.errors.saturating_add(errors);
        }
        Ok((
            Unit {
                pipeline: pipeline.to_owned(),
                unit: unit.to_owned(),
            },
            report,
        ))
    }

    /// Counts `n` reports the stream no longer held when they were wanted, up to stream
    /// sequence `seq`.
    pub fn missed(&mut self, n: u64, seq: u64) {
        self.counts.health.missed = self.counts.health.missed.saturating_add(n);
        self.counts.seq = self.counts.seq.max(seq);
    }

    /// Reads the stream from its start again (it was made anew): the counts stay.
    pub fn rewind(&mut self) {
        self.counts.seq = 0;
    }

    /// Whether the report stream created at `created` (RFC 3339) is another than the one the
    /// counts' sequence is of; it is the one from now on. A snapshot that names none (saved
    /// before it did) is taken to be of this one.
    pub fn stream_is_new(&mut self, created: &str) -> bool {
        let new = self
            .counts
            .stream_created
            .as_deref()
            .is_some_and(|known| known != created);
        self.counts.stream_created = Some(created.to_owned());
        new
    }

    /// When the report stream the counts' sequence is of was created (RFC 3339), once known.
    pub fn stream_created(&self) -> Option<&str> {
        self.counts.stream_created.as_deref()
    }

    /// When a unit's counters began (ns since the epoch).
    pub fn since(&self, pipeline: &str, unit: &str) -> u64 {
        self.counts
            .unit_since
            .get(pipeline)
            .and_then(|u| u.get(unit))
            .copied()
            .unwrap_or(self.counts.since)
    }

    /// The stream sequence of the last report taken.
    pub fn seq(&self) -> u64 {
        self.counts.seq
    }

    /// The durable part.
    pub fn snapshot(&self) -> &Snapshot {
        &self.counts
    }

    /// Reports counted, refused and missed.
    pub fn health(&self) -> ReportHealth {
        self.counts.health
    }

    /// A unit's counters, once it reported.
    pub fn counters(&self, pipeline: &str, unit: &str) -> Option<&Counters> {
        self.counts.counters.get(pipeline)?.get(unit)
    }

    /// A unit's rates over the last sample interval.
    pub fn rates(&self, pipeline: &str, unit: &str) -> Rates {
        self.units
            .get(&(pipeline.to_owned(), unit.to_owned()))
            .map(Series::rates)
            .unwrap_or_default()
    }

    /// A unit's recent rate samples, oldest first (at most [`SAMPLES_KEPT`]).
    pub fn series(&self, pipeline: &str, unit: &str) -> Vec<Sample> {
        self.units
            .get(&(pipeline.to_owned(), unit.to_owned()))
            .map(Series::samples)
            .unwrap_or_default()
    }

    /// An edge's count and its records per second over the last sample interval.
    pub fn edge(&self, pipeline: &str, from: &str, to: &str) -> (EdgeCount, f64) {
        let count = self
            .counts
            .edges
            .get(pipeline)
            .and_then(|f| f.get(from))
            .and_then(|t| t.get(to))
            .copied()
            .unwrap_or_default();
        let rate = self
            .edges
            .get(&(pipeline.to_owned(), from.to_owned(), to.to_owned()))
            .map(|s| s.rates().input)
            .unwrap_or_default();
        (count, rate)
    }

    /// Samples every unit's and edge's totals at `t` (seconds since the epoch, what charts
    /// show) and `at` (the monotonic clock, what rates are measured with). A unit or edge
    /// first counted since the last sample starts from zero at that sample; at the first
    /// sample of all, what the snapshot holds is the baseline. A sample less than
    /// [`MIN_SAMPLE_GAP`] after the last is not taken.
    pub fn sample(&mut self, t: u64, at: Instant) {
        let previous = self.sampled;
        if previous.is_some_and(|(_, last)| at.saturating_duration_since(last) < MIN_SAMPLE_GAP) {
            return;
        }
        for (pipeline, units) in &self.counts.counters {
            for (unit, c) in units {
                let totals = Totals {
                    input: c.input.records,
                    out: c.out.records,
                    errors: c.dead_lettered_total().saturating_add(c.failed_total()),
                };
                let series = self
                    .units
                    .entry((pipeline.clone(), unit.clone()))
                    .or_insert_with(|| fresh(previous));
                series.push(t, at, totals);
            }
        }
        for (pipeline, froms) in &self.counts.edges {
            for (from, tos) in froms {
                for (to, count) in tos {
                    let totals = Totals {
                        input: count.records,
                        out: 0,
                        errors: count.errors,
                    };
                    self.edges
                        .entry((pipeline.clone(), from.clone(), to.clone()))
                        .or_insert_with(|| fresh(previous))
                        .push(t, at, totals);
                }
            }
        }
        self.sampled = Some((t, at));
    }
}

/// The upstream node of a report that came from `from`: the input whose subject it is, else
/// the first whose subject pattern (`sensors.>`) matches it.
fn upstream(inputs: &[(String, String)], from: &str) -> Option<String> {
    inputs
        .iter()
        .find(|(s, _)| s == from)
        .or_else(|| {
            inputs
                .iter()
                .find(|(s, _)| etl::spec::subjects::matches(s, from))
        })
        .map(|(_, node)| node.clone())
}

/// A new series: zero at the previous sample, if there was one.
fn fresh(previous: Option<(u64, Instant)>) -> Series {
    let mut series = Series::default();
    if let Some((t, at)) = previous {
        series.push(t, at, Totals::default());
    }
    series
}

#[cfg(test)]
pub(crate) mod tests {
    use etl::oci::bundle::{API_VERSION, KIND, NodeFacts, PipelineFacts};
    use etl::ops::telemetry::{Flow, Histogram, REPORT_VERSION};

    use super::*;

    /// A node of the test graph.
    pub fn node(name: &str, kind: NodeKind, inputs: &[(&str, &str)]) -> NodeFacts {
        NodeFacts {
            name: name.to_owned(),
            kind,
            connector: (kind != NodeKind::Step).then(|| "nats".to_owned()),
            from: inputs.iter().map(|(_, n)| (*n).to_owned()).collect(),
            inputs: inputs
                .iter()
                .map(|(s, n)| ((*s).to_owned(), (*n).to_owned()))
                .collect(),
            report: (kind != NodeKind::Source).then(|| format!("etl.p.pipe.report.{name}.dev")),
            dead_letter: (kind == NodeKind::Step).then(|| format!("etl.p.pipe.dlq.{name}")),
            replay: (kind == NodeKind::Step).then(|| format!("etl.p.pipe.replay.{name}")),
            component: (kind == NodeKind::Step).then(|| format!("sha256:{}", "c".repeat(64))),
            grants: vec![],
        }
    }

    /// Project `p`, environment `dev`, pipeline `pipe`: source `in` → `parse` → `enrich` and
    /// `store` (a sink reading both).
    pub fn facts() -> Facts {
        Facts {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            project: "p".to_owned(),
            environment: "dev".to_owned(),
            registry: "r".to_owned(),
            lattice: "l".to_owned(),
            revision: None,
            source: None,
            applications: vec![],
            pipelines: vec![PipelineFacts {
                name: "pipe".to_owned(),
                nodes: vec![
                    node("in", NodeKind::Source, &[]),
                    node("parse", NodeKind::Step, &[("etl.p.pipe.in", "in")]),
                    node(
                        "enrich",
                        NodeKind::Step,
                        &[("etl.p.pipe.out.parse", "parse")],
                    ),
                    node(
                        "store",
                        NodeKind::Sink,
                        &[
                            ("etl.p.pipe.out.parse", "parse"),
                            ("etl.p.pipe.out.enrich", "enrich"),
                        ],
                    ),
                ],
            }],
        }
    }

    /// A balanced report of `records` from `from`: one filtered, one dead-lettered as
    /// `not_json`, the rest produced.
    pub fn report(from: &str, records: u64) -> Report {
        let mut process = Histogram::default();
        process.buckets[2] = records;
        process.sum = 0.0002 * records as f64;
        Report {
            v: REPORT_VERSION,
            from: from.to_owned(),
            start: 1_796_650_000_000_000_000,
            duration: 2_000_000,
            input: Flow {
                records,
                bytes: 10 * records,
            },
            out: Flow {
                records: records - 2,
                bytes: 10 * (records - 2),
            },
            produced: records - 2,
            filtered: 1,
            dead_lettered: BTreeMap::from([("not_json".to_owned(), 1)]),
            failed: 0,
            failure: None,
            transient: 0,
            retries: 0,
            process,
            traceparents: vec![],
        }
    }

    pub fn body(report: &Report) -> Vec<u8> {
        serde_json::to_vec(report).unwrap()
    }

    fn store() -> Store {
        Store::new(Graph::of(&facts()), Snapshot::default())
    }

    #[test]
    fn reports_add_up_per_unit_and_edge() {
        let mut s = store();
        let subject = "etl.p.pipe.report.store.dev";
        let from_parse = report("etl.p.pipe.out.parse", 10);
        let from_enrich = report("etl.p.pipe.out.enrich", 4);
        assert!(matches!(
            s.take(1, subject, &body(&from_parse)),
            Taken::Counted(..)
        ));
        assert!(matches!(
            s.take(2, subject, &body(&from_enrich)),
            Taken::Counted(..)
        ));
        assert!(matches!(
            s.take(5, subject, &body(&from_parse)),
            Taken::Counted(..)
        ));
        let c = s.counters("pipe", "store").unwrap();
        assert_eq!(c.batches, 3);
        assert_eq!(c.input.records, 24);
        assert_eq!(c.dead_lettered["not_json"], 3);
        assert!(c.balanced());
        assert_eq!(c.process.count(), 24);
        assert_eq!(
            s.edge("pipe", "parse", "store").0,
            EdgeCount {
                records: 20,
                errors: 2
            }
        );
        assert_eq!(
            s.edge("pipe", "enrich", "store").0,
            EdgeCount {
                records: 4,
                errors: 1
            }
        );
        assert_eq!(s.edge("pipe", "in", "parse").0, EdgeCount::default());
        assert_eq!(s.seq(), 5);
        // A redelivery is not counted again.
        assert_eq!(s.take(5, subject, &body(&from_parse)), Taken::Again);
        assert_eq!(s.counters("pipe", "store").unwrap().batches, 3);
        assert_eq!(
            s.health(),
            ReportHealth {
                counted: 3,
                refused: 0,
                missed: 0
            }
        );
    }

    #[test]
    fn what_cannot_be_counted_is_refused_and_counted() {
        let mut s = store();
        let good = body(&report("etl.p.pipe.in", 3));
        let mut unbalanced = report("etl.p.pipe.in", 3);
        unbalanced.filtered = 2;
        let cases: [(&str, Vec<u8>, &str); 5] = [
            (
                "etl.p.pipe.report.parse.dev",
                b"{not json".to_vec(),
                "not a report",
            ),
            (
                "etl.p.pipe.report.parse.dev",
                body(&unbalanced),
                "do not add up",
            ),
            (
                "etl.p.pipe.report.nope.dev",
                good.clone(),
                "no step or sink",
            ),
            (
                "etl.p.other.report.parse.dev",
                good.clone(),
                "no step or sink",
            ),
            ("etl.p.pipe.report.in.dev", good.clone(), "no step or sink"),
        ];
        for (i, (subject, body, why)) in cases.iter().enumerate() {
            match s.take(i as u64 + 1, subject, body) {
                Taken::Refused(r) => assert!(r.contains(why), "{subject}: {r}"),
                other => panic!("{subject}: {other:?}"),
            }
        }
        assert_eq!(s.health().refused, 5);
        assert!(s.snapshot().counters.is_empty());
        s.missed(3, 9);
        assert_eq!(s.health().missed, 3);
        assert_eq!(s.seq(), 9);
    }

    #[test]
    fn the_snapshot_resumes_exactly() {
        let mut s = store();
        for seq in 1..=4 {
            s.take(
                seq,
                "etl.p.pipe.report.parse.dev",
                &body(&report("etl.p.pipe.in", 5)),
            );
        }
        let mut failed = report("etl.p.pipe.in", 5);
        failed.produced = 0;
        failed.filtered = 0;
        failed.dead_lettered.clear();
        failed.failed = 5;
        failed.failure = Some(etl::ops::telemetry::Failure::Transient);
        assert!(matches!(
            s.take(5, "etl.p.pipe.report.enrich.dev", &body(&failed)),
            Taken::Counted(..)
        ));
        let json = serde_json::to_vec(s.snapshot()).unwrap();
        let snapshot: Snapshot = serde_json::from_slice(&json).unwrap();
        assert_eq!(&snapshot, s.snapshot());
        let mut resumed = Store::new(Graph::of(&facts()), snapshot);
        resumed.take(
            6,
            "etl.p.pipe.report.parse.dev",
            &body(&report("etl.p.pipe.in", 5)),
        );
        assert_eq!(resumed.counters("pipe", "parse").unwrap().input.records, 25);
        assert_eq!(
            resumed.counters("pipe", "enrich").unwrap().failed_total(),
            5
        );
        assert_eq!(resumed.edge("pipe", "in", "parse").0.records, 25);
    }

    #[test]
    fn a_new_graph_drops_units_it_no_longer_has() {
        let mut s = store();
        s.take(
            1,
            "etl.p.pipe.report.enrich.dev",
            &body(&report("etl.p.pipe.out.parse", 3)),
        );
        s.take(
            2,
            "etl.p.pipe.report.parse.dev",
            &body(&report("etl.p.pipe.in", 3)),
        );
        let mut facts = facts();
        facts.pipelines[0].nodes.retain(|n| n.name != "enrich");
        s.set_graph(Graph::of(&facts));
        assert!(s.counters("pipe", "enrich").is_none());
        assert_eq!(s.edge("pipe", "parse", "enrich").0, EdgeCount::default());
        assert!(s.counters("pipe", "parse").is_some());
    }

    #[test]
    fn a_report_from_a_subject_an_input_pattern_matches_is_of_that_edge() {
        let mut facts = facts();
        facts.pipelines[0].nodes[1] = node(
            "parse",
            NodeKind::Step,
            &[("sensors.>", "in"), ("etl.p.pipe.in", "in")],
        );
        facts.pipelines[0].nodes[2] = node(
            "enrich",
            NodeKind::Step,
            &[("etl.p.pipe.out.*", "parse"), ("etl.p.pipe.out.x", "store")],
        );
        let mut s = Store::new(Graph::of(&facts), Snapshot::default());
        s.take(
            1,
            "etl.p.pipe.report.parse.dev",
            &body(&report("sensors.site-7.temperature", 4)),
        );
        s.take(
            2,
            "etl.p.pipe.report.enrich.dev",
            &body(&report("etl.p.pipe.out.parse", 3)),
        );
        // The exact subject first, then patterns.
        s.take(
            3,
            "etl.p.pipe.report.enrich.dev",
            &body(&report("etl.p.pipe.out.x", 5)),
        );
        assert_eq!(s.edge("pipe", "in", "parse").0.records, 4);
        assert_eq!(s.edge("pipe", "parse", "enrich").0.records, 3);
        assert_eq!(s.edge("pipe", "store", "enrich").0.records, 5);
        // `sensors.>` does not match `sensors` alone: a unit's count, no edge's.
        s.take(
            4,
            "etl.p.pipe.report.parse.dev",
            &body(&report("sensors", 3)),
        );
        assert_eq!(s.counters("pipe", "parse").unwrap().input.records, 7);
        assert_eq!(s.edge("pipe", "in", "parse").0.records, 4);
    }

    #[test]
    fn no_report_panics_and_counts_saturate() {
        let mut s = store();
        let subject = "etl.p.pipe.report.parse.dev";
        let mut huge = report("etl.p.pipe.in", 3);
        huge.input = Flow {
            records: u64::MAX,
            bytes: u64::MAX,
        };
        huge.produced = u64::MAX - 2;
        huge.out = Flow {
            records: u64::MAX,
            bytes: u64::MAX,
        };
        huge.transient = u64::MAX;
        huge.retries = u64::MAX;
        huge.process.buckets = vec![u64::MAX; huge.process.buckets.len()];
        huge.process.sum = f64::MAX;
        for seq in 1..=3 {
            assert!(matches!(
                s.take(seq, subject, &body(&huge)),
                Taken::Counted(..)
            ));
        }
        let c = s.counters("pipe", "parse").unwrap();
        assert_eq!(
            (c.input.records, c.transient, c.batches),
            (u64::MAX, u64::MAX, 3)
        );
        assert_eq!(c.process.count(), u64::MAX);
        assert_eq!(s.edge("pipe", "in", "parse").0.records, u64::MAX);
        s.sample(1, Instant::now());
        // What overflows is refused, not counted.
        let mut over = huge.clone();
        over.filtered = 5;
        match s.take(4, subject, &body(&over)) {
            Taken::Refused(why) => assert!(why.contains("overflow"), "{why}"),
            other => panic!("{other:?}"),
        }
        for (seq, junk) in [
            b"null".to_vec(),
            b"[]".to_vec(),
            br#"{"v":1}"#.to_vec(),
            format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            vec![0xff; 64],
        ]
        .into_iter()
        .enumerate()
        {
            assert!(matches!(
                s.take(5 + seq as u64, subject, &junk),
                Taken::Refused(_)
            ));
        }
        // The snapshot saves and loads: its histogram sum is still a number.
        let json = serde_json::to_vec(s.snapshot()).unwrap();
        assert_eq!(
            &serde_json::from_slice::<Snapshot>(&json).unwrap(),
            s.snapshot()
        );
    }

    #[test]
    fn each_unit_counts_from_when_it_first_reported() {
        let mut s = Store::new(
            Graph::of(&facts()),
            Snapshot {
                since: 100,
                ..Snapshot::default()
            },
        );
        let parse = body(&report("etl.p.pipe.in", 3));
        s.take_at(1, "etl.p.pipe.report.parse.dev", &parse, 1_000);
        s.take_at(2, "etl.p.pipe.report.parse.dev", &parse, 2_000);
        s.take_at(
            3,
            "etl.p.pipe.report.enrich.dev",
            &body(&report("etl.p.pipe.out.parse", 3)),
            3_000,
        );
        assert_eq!(s.since("pipe", "parse"), 1_000);
        assert_eq!(s.since("pipe", "enrich"), 3_000);
        // Before it reported, or saved before units had their own: the environment's.
        assert_eq!(s.since("pipe", "store"), 100);
        let json = serde_json::to_vec(s.snapshot()).unwrap();
        let mut resumed = Store::new(Graph::of(&facts()), serde_json::from_slice(&json).unwrap());
        assert_eq!(resumed.since("pipe", "enrich"), 3_000);
        // Dropped by a bundle and deployed again: counted anew, from then.
        let mut without = facts();
        without.pipelines[0].nodes.retain(|n| n.name != "enrich");
        resumed.set_graph(Graph::of(&without));
        assert!(!resumed.snapshot().unit_since["pipe"].contains_key("enrich"));
        resumed.set_graph(Graph::of(&facts()));
        resumed.take_at(
            4,
            "etl.p.pipe.report.enrich.dev",
            &body(&report("etl.p.pipe.out.parse", 3)),
            9_000,
        );
        assert_eq!(resumed.since("pipe", "enrich"), 9_000);
        assert_eq!(resumed.counters("pipe", "enrich").unwrap().batches, 1);
    }

    #[test]
    fn snapshots_saved_before_a_field_was_added_load() {
        let old = r#"{"seq":7,"since":5,"counters":{"pipe":{"parse":{"batches":1,"in":{"records":3,"bytes":30},"out":{"records":1,"bytes":10},"produced":1,"filtered":1,"deadLettered":{"not_json":1},"failed":{},"transient":0,"retries":0,"process":{"sum":0.1,"buckets":[0,0,3,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}}}},"edges":{},"health":{"counted":1,"refused":0}}"#;
        let snapshot: Snapshot = serde_json::from_str(old).unwrap();
        assert_eq!(snapshot.seq, 7);
        assert_eq!(snapshot.health.missed, 0);
        assert!(snapshot.unit_since.is_empty() && snapshot.stream_created.is_none());
        let mut s = Store::new(Graph::of(&facts()), snapshot);
        assert_eq!(s.since("pipe", "parse"), 5);
        // The stream it names is the one read on (none was named), until another one is.
        assert!(!s.stream_is_new("2026-12-07T14:00:00Z"));
        assert!(!s.stream_is_new("2026-12-07T14:00:00Z"));
        assert!(s.stream_is_new("2026-12-08T09:30:00.5Z"));
        assert_eq!(
            s.snapshot().stream_created.as_deref(),
            Some("2026-12-08T09:30:00.5Z")
        );
        assert!(serde_json::from_str::<Snapshot>("{}").is_ok());
    }

    #[test]
    fn rates_are_measured_on_the_monotonic_clock() {
        let base = Instant::now();
        let mut s = store();
        let parse = body(&report("etl.p.pipe.in", 10));
        s.take(1, "etl.p.pipe.report.parse.dev", &parse);
        s.sample(1000, base);
        s.take(2, "etl.p.pipe.report.parse.dev", &parse);
        // The wall clock jumped back ten minutes; 5 s passed.
        s.sample(400, base + Duration::from_secs(5));
        assert_eq!(s.rates("pipe", "parse").input, 2.0);
        // A sample right after another is not taken: no rate over a few milliseconds.
        s.take(3, "etl.p.pipe.report.parse.dev", &parse);
        s.sample(1, base + Duration::from_millis(5_010));
        assert_eq!(s.rates("pipe", "parse").input, 2.0);
        assert_eq!(s.series("pipe", "parse").len(), 1);
        s.sample(2, base + Duration::from_secs(10));
        assert_eq!(s.rates("pipe", "parse").input, 2.0);
        assert_eq!(s.series("pipe", "parse").len(), 2);
    }

    #[test]
    fn rates_from_samples() {
        let base = Instant::now();
        let at = |t: u64| base + Duration::from_secs(t - 1000);
        let mut s = store();
        s.take(
            1,
            "etl.p.pipe.report.parse.dev",
            &body(&report("etl.p.pipe.in", 10)),
        );
        // The first sample is the baseline: what was counted before is no rate.
        s.sample(1000, at(1000));
        assert_eq!(s.rates("pipe", "parse"), Rates::default());
        s.take(
            2,
            "etl.p.pipe.report.parse.dev",
            &body(&report("etl.p.pipe.in", 50)),
        );
        s.take(
            3,
            "etl.p.pipe.report.enrich.dev",
            &body(&report("etl.p.pipe.out.parse", 20)),
        );
        s.sample(1005, at(1005));
        let r = s.rates("pipe", "parse");
        assert_eq!((r.input, r.out, r.errors), (10.0, 9.6, 0.2));
        // A unit first counted since the last sample starts from zero there.
        assert_eq!(s.rates("pipe", "enrich").input, 4.0);
        assert_eq!(s.edge("pipe", "parse", "enrich").1, 4.0);
        for i in 0..200 {
            s.sample(1010 + 5 * i, at(1010 + 5 * i));
        }
        let series = s.series("pipe", "parse");
        assert_eq!(series.len(), SAMPLES_KEPT);
        assert_eq!(series.last().unwrap().t, 1010 + 5 * 199);
        assert_eq!(s.rates("pipe", "parse"), Rates::default());
    }
}
