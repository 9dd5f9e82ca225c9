//! OTLP/HTTP export (`--otlp-endpoint`): every `--otlp-interval`, the [`Points`] as cumulative
//! sums, gauges and a histogram to `<endpoint>/v1/metrics`, and one `process` span per report
//! counted since to `<endpoint>/v1/traces`, both binary protobuf. Its own task: a collector
//! that is slow or down never holds up counting or the reconcile loop. Spans wait in a bounded
//! queue; when it is full the oldest are dropped, and counted (`etl.otlp.spans.dropped`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etl::ops::telemetry::{PROCESS_BUCKETS, Report};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use prost::Message as _;
use sha2::Digest as _;
use tokio::sync::watch;

use super::Telemetry;
use super::metrics::{
    Attributes, DEAD_LETTERS_KEPT, DEAD_LETTERS_KEPT_HELP, PROCESS_DURATION, PROCESS_DURATION_HELP,
    Points, REPORTS, SPANS_DROPPED, SPANS_DROPPED_HELP, UNIT_COUNTERS,
};
use super::store::Unit;
use crate::config::Otlp;

/// Most spans waiting to be sent.
pub const SPAN_QUEUE: usize = 10_000;
/// Most spans in one request.
const SPANS_PER_REQUEST: usize = 1_000;
/// Tries of one request.
const ATTEMPTS: u32 = 3;
/// The pause after the first failed try; doubled after each.
const BACKOFF: Duration = Duration::from_millis(500);
/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// `Link.flags`: the context's remoteness is known (`SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`), and
/// it is remote (`SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`).
const REMOTE_LINK: u32 = 0x100 | 0x200;

/// A report waiting to become a span: its stream sequence, unit and report.
type Pending = (u64, Unit, Box<Report>);

/// The queue of reports to send as spans.
#[derive(Default)]
pub struct Spans {
    enabled: bool,
    queue: Mutex<VecDeque<Pending>>,
    dropped: AtomicU64,
}

impl Spans {
    /// A queue that takes reports only when `enabled` (OTLP is configured).
    pub fn new(enabled: bool) -> Spans {
        Spans {
            enabled,
            ..Spans::default()
        }
    }

    /// Queues the report of stream sequence `seq`, dropping the oldest when full.
    pub fn push(&self, seq: u64, unit: &Unit, report: &Report) {
        if self.enabled {
            self.push_all(vec![(seq, unit.clone(), Box::new(report.clone()))]);
        }
    }

    fn push_all(&self, pending: Vec<Pending>) {
        let mut queue = super::lock(&self.queue);
        queue.extend(pending);
        let over = queue.len().saturating_sub(SPAN_QUEUE);
        if over > 0 {
            queue.drain(..over);
            self.dropped.fetch_add(over as u64, Ordering::Relaxed);
        }
    }

    /// Takes up to `n` of the oldest.
    fn take(&self, n: usize) -> Vec<Pending> {
        let mut queue = super::lock(&self.queue);
        let n = n.min(queue.len());
        queue.drain(..n).collect()
    }

    /// Puts back what could not be sent, in front (the oldest are dropped when that overflows).
    fn put_back(&self, pending: Vec<Pending>) {
        let mut queue = super::lock(&self.queue);
        let rest: Vec<Pending> = queue.drain(..).collect();
        drop(queue);
        self.push_all(pending.into_iter().chain(rest).collect());
    }

    /// Counts `n` spans dropped because the collector refused them for good.
    fn discard(&self, n: usize) {
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Spans dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn value(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.to_owned())),
    })
}

fn int(v: u64) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::IntValue(
            i64::try_from(v).unwrap_or(i64::MAX),
        )),
    })
}

fn attributes(attributes: &Attributes, extra: Option<(&str, &str)>) -> Vec<KeyValue> {
    attributes
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(extra)
        .map(|(k, v)| KeyValue {
            key: k.to_owned(),
            value: value(v),
            ..Default::default()
        })
        .collect()
}

fn resource(environment: &Attributes) -> Option<Resource> {
    let mut attrs = vec![KeyValue {
        key: "service.name".to_owned(),
        value: value("etl-controller"),
        ..Default::default()
    }];
    attrs.extend(attributes(environment, None));
    Some(Resource {
        attributes: attrs,
        ..Default::default()
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "etl-controller".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Default::default()
    })
}

fn number(attributes: Vec<KeyValue>, since: u64, now: u64, n: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: since,
        time_unix_nano: now,
        value: Some(number_data_point::Value::AsInt(
            i64::try_from(n).unwrap_or(i64::MAX),
        )),
        ..Default::default()
    }
}

fn sum(name: &str, unit: &str, help: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.to_owned(),
        description: help.to_owned(),
        unit: unit.to_owned(),
        data: Some(metric::Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

/// The metrics request of `points` at `now` (ns since the epoch). A unit's sums and histogram
/// start when its counts began, the environment's when counting began.
pub fn metrics_request(points: &Points, now: u64) -> ExportMetricsServiceRequest {
    let since = points.since;
    let mut metrics = Vec::new();
    for def in UNIT_COUNTERS {
        let data_points: Vec<NumberDataPoint> = points
            .units
            .iter()
            .flat_map(|u| {
                (def.values)(&u.counters)
                    .into_iter()
                    .map(|(extra, n)| {
                        let extra = def.extra.zip(extra.as_deref()).map(|((_, k), v)| (k, v));
                        number(attributes(&u.attributes, extra), u.since, now, n)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        if !data_points.is_empty() {
            metrics.push(sum(def.name, def.unit, def.help, data_points));
        }
    }
    let histograms: Vec<HistogramDataPoint> = points
        .units
        .iter()
        .map(|u| HistogramDataPoint {
            attributes: attributes(&u.attributes, None),
            start_time_unix_nano: u.since,
            time_unix_nano: now,
            count: u.counters.process.count(),
            sum: Some(u.counters.process.sum),
            bucket_counts: u.counters.process.buckets.clone(),
            explicit_bounds: PROCESS_BUCKETS.to_vec(),
            ..Default::default()
        })
        .collect();
    if !histograms.is_empty() {
        metrics.push(Metric {
            name: PROCESS_DURATION.to_owned(),
            description: PROCESS_DURATION_HELP.to_owned(),
            unit: "s".to_owned(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: histograms,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        });
    }
    let health = [
        points.health.counted,
        points.health.refused,
        points.health.missed,
    ];
    for ((name, help), n) in REPORTS.iter().zip(health) {
        let point = number(attributes(&points.environment, None), since, now, n);
        metrics.push(sum(name, "{report}", help, vec![point]));
    }
    if !points.kept.is_empty() {
        metrics.push(Metric {
            name: DEAD_LETTERS_KEPT.to_owned(),
            description: DEAD_LETTERS_KEPT_HELP.to_owned(),
            unit: "{record}".to_owned(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: points
                    .kept
                    .iter()
                    .map(|(a, n)| number(attributes(a, None), 0, now, *n))
                    .collect(),
            })),
            ..Default::default()
        });
    }
    let dropped = number(
        attributes(&points.environment, None),
        since,
        now,
        points.spans_dropped,
    );
    metrics.push(sum(
        SPANS_DROPPED,
        "{span}",
        SPANS_DROPPED_HELP,
        vec![dropped],
    ));
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(&points.environment),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A W3C `traceparent`'s trace id, span id and flags, when it is one.
fn span_context(traceparent: &str) -> Option<(Vec<u8>, Vec<u8>, u32)> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    let trace = hex::decode(trace).ok().filter(|t| t.len() == 16)?;
    let span = hex::decode(span).ok().filter(|s| s.len() == 8)?;
    let flags = u8::from_str_radix(flags, 16)
        .ok()
        .filter(|_| flags.len() == 2)?;
    if trace.iter().all(|b| *b == 0) || span.iter().all(|b| *b == 0) {
        return None;
    }
    Some((trace, span, u32::from(flags)))
}

/// The `process` span of the report of stream sequence `seq`: kind consumer, its times from the
/// report, linked to its records' trace contexts. Its ids derive from the project, the
/// environment and the sequence, so a report sent twice is the same span.
pub fn span(environment: &Attributes, seq: u64, unit: &Unit, report: &Report) -> Span {
    let mut id = sha2::Sha256::new();
    id.update(b"etl-report\0");
    for (_, v) in environment {
        id.update(v.as_bytes());
        id.update(b"\0");
    }
    id.update(seq.to_be_bytes());
    let id = id.finalize();
    let mut attrs = environment.clone();
    attrs.extend([
        ("etl.pipeline", unit.pipeline.clone()),
        ("etl.step", unit.unit.clone()),
        ("messaging.system", "nats".to_owned()),
        ("messaging.destination.name", report.from.clone()),
        ("messaging.operation.name", "process".to_owned()),
        ("messaging.operation.type", "process".to_owned()),
    ]);
    let mut attributes = attributes(&attrs, None);
    let counts = [
        ("messaging.batch.message_count", report.input.records),
        ("etl.records.out", report.out.records),
        ("etl.records.filtered", report.filtered),
        (
            "etl.records.dead_lettered",
            etl::ops::telemetry::saturating_sum(report.dead_lettered.values().copied()),
        ),
        ("etl.records.failed", report.failed),
    ];
    attributes.extend(counts.iter().map(|(k, n)| KeyValue {
        key: (*k).to_owned(),
        value: int(*n),
        ..Default::default()
    }));
    let links = report
        .traceparents
        .iter()
        .filter_map(|t| span_context(t))
        .map(|(trace_id, span_id, flags)| span::Link {
            trace_id,
            span_id,
            flags: flags | REMOTE_LINK,
            ..Default::default()
        })
        .collect();
    let status = report.failure.map(|f| Status {
        message: format!("the batch failed: {}", f.as_str()),
        code: status::StatusCode::Error as i32,
    });
    Span {
        trace_id: id[..16].to_vec(),
        span_id: id[16..24].to_vec(),
        name: format!("process {}", report.from),
        kind: span::SpanKind::Consumer as i32,
        start_time_unix_nano: report.start,
        end_time_unix_nano: report.start.saturating_add(report.duration),
        attributes,
        links,
        status,
        ..Default::default()
    }
}

fn traces_request(environment: &Attributes, pending: &[Pending]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(environment),
            scope_spans: vec![ScopeSpans {
                scope: scope(),
                spans: pending
                    .iter()
                    .map(|(seq, unit, report)| span(environment, *seq, unit, report))
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Why a request was not taken.
#[derive(Debug, thiserror::Error)]
enum SendError {
    /// Nothing answered, or the answer broke off.
    #[error("{0}")]
    Transport(String),
    /// The collector answered with an error.
    #[error("the collector answered {code}: {body}")]
    Status {
        /// Its status.
        code: u16,
        /// The start of its body.
        body: String,
    },
}

impl SendError {
    /// Whether trying again may help: transport errors, 429, 502, 503, 504 (OTLP/HTTP's
    /// retryable answers).
    fn retryable(&self) -> bool {
        match self {
            SendError::Transport(_) => true,
            SendError::Status { code, .. } => matches!(code, 429 | 502 | 503 | 504),
        }
    }
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> Result<(), SendError> {
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
        .body(body)
        .send()
        .await
        .map_err(|e| SendError::Transport(etl::util::io::chain(&e)))?;
    let code = response.status();
    if code.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    Err(SendError::Status {
        code: code.as_u16(),
        body: body.chars().take(200).collect(),
    })
}

/// Posts `body` to `url`, trying again after a retryable failure with a growing pause.
async fn send(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), SendError> {
    let mut pause = BACKOFF;
    let mut attempt = 1;
    loop {
        let posted = tokio::select! {
            posted = post(client, url, body.clone()) => posted,
            () = super::stopped(stop) => {
                return Err(SendError::Transport("the controller is stopping".to_owned()));
            }
        };
        match posted {
            Ok(()) => return Ok(()),
            Err(e) if e.retryable() && attempt < ATTEMPTS => {
                tracing::debug!(%url, attempt, "OTLP: {e}; trying again");
                if super::pause(stop, pause).await {
                    return Err(e);
                }
                pause *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The nanoseconds since the Unix epoch now.
fn now() -> u64 {
    super::now().as_nanos().try_into().unwrap_or(u64::MAX)
}

/// Sends to `otlp` every interval until `stop`.
pub async fn export(telemetry: Arc<Telemetry>, otlp: Otlp, mut stop: watch::Receiver<bool>) {
    // reqwest is built without a default crypto provider (ring, not aws-lc-rs).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!("no OTLP export: the HTTP client: {e}");
            return;
        }
    };
    let metrics_url = format!("{}/v1/metrics", otlp.endpoint);
    let traces_url = format!("{}/v1/traces", otlp.endpoint);
    let mut failing = false;
    loop {
        if super::pause(&mut stop, otlp.interval).await {
            return;
        }
        let Some(points) = super::metrics::collect(&telemetry) else {
            continue;
        };
        let mut result = send(
            &client,
            &metrics_url,
            metrics_request(&points, now()).encode_to_vec(),
            &mut stop,
        )
        .await;
        while result.is_ok() {
            let pending = telemetry.spans.take(SPANS_PER_REQUEST);
            if pending.is_empty() {
                break;
            }
            let body = traces_request(&points.environment, &pending).encode_to_vec();
            result = send(&client, &traces_url, body, &mut stop).await;
            match &result {
                Ok(()) => {}
                Err(e) if e.retryable() => telemetry.spans.put_back(pending),
                // Refused for good (400, 413, …): sending them again would be refused again.
                Err(_) => telemetry.spans.discard(pending.len()),
            }
        }
        match result {
            Ok(()) if failing => {
                tracing::info!(endpoint = %otlp.endpoint, "OTLP: the collector takes exports again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) => {
                if !failing {
                    tracing::warn!(
                        endpoint = %otlp.endpoint,
                        "OTLP: {e}; trying again every {}",
                        humantime::format_duration(otlp.interval)
                    );
                }
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::store::tests::report;

    #[test]
    fn trace_contexts() {
        let (t, s, f) =
            span_context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(hex::encode(t), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(s), "00f067aa0ba902b7");
        assert_eq!(f, 1);
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "nonsense",
        ] {
            assert!(span_context(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_report_is_a_consumer_span_linked_to_its_records() {
        let env: Attributes = vec![
            ("etl.project", "p".to_owned()),
            ("etl.environment", "dev".to_owned()),
        ];
        let mut r = report("etl.p.pipe.in", 3);
        r.traceparents = vec![
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
            "garbage".to_owned(),
        ];
        let unit = Unit {
            pipeline: "pipe".to_owned(),
            unit: "parse".to_owned(),
        };
        let s = span(&env, 7, &unit, &r);
        assert_eq!(s.name, "process etl.p.pipe.in");
        assert_eq!(s.kind, span::SpanKind::Consumer as i32);
        assert_eq!(s.end_time_unix_nano - s.start_time_unix_nano, r.duration);
        assert_eq!(s.links.len(), 1);
        assert_eq!(s.links[0].flags, 0x301);
        assert_eq!((s.trace_id.len(), s.span_id.len()), (16, 8));
        assert_eq!(span(&env, 7, &unit, &r).trace_id, s.trace_id);
        assert_ne!(span(&env, 8, &unit, &r).trace_id, s.trace_id);
        assert!(s.status.is_none());
    }

    #[test]
    fn each_unit_s_sums_start_when_its_counts_began() {
        use crate::telemetry::metrics::UnitPoint;
        let env: Attributes = vec![("etl.project", "p".to_owned())];
        let unit = |step: &str, since: u64| {
            let mut counters = etl::ops::telemetry::Counters::default();
            counters.add(&report("etl.p.pipe.in", 3)).unwrap();
            UnitPoint {
                attributes: vec![("etl.step", step.to_owned())],
                counters,
                since,
            }
        };
        let points = Points {
            environment: env,
            units: vec![unit("parse", 1_000), unit("enrich", 5_000)],
            kept: vec![],
            health: Default::default(),
            spans_dropped: 2,
            since: 500,
        };
        let request = metrics_request(&points, 9_000);
        let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
        let starts = |name: &str| -> Vec<u64> {
            let metric = metrics.iter().find(|m| m.name == name).unwrap();
            match metric.data.as_ref().unwrap() {
                metric::Data::Sum(s) => s
                    .data_points
                    .iter()
                    .map(|p| p.start_time_unix_nano)
                    .collect(),
                metric::Data::Histogram(h) => h
                    .data_points
                    .iter()
                    .map(|p| p.start_time_unix_nano)
                    .collect(),
                _ => unreachable!(),
            }
        };
        assert_eq!(starts("messaging.client.consumed.messages"), [1_000, 5_000]);
        assert_eq!(starts(PROCESS_DURATION), [1_000, 5_000]);
        assert_eq!(starts("etl.reports.counted"), [500]);
        assert_eq!(starts(SPANS_DROPPED), [500]);
    }

    #[test]
    fn spans_refused_for_good_are_counted_as_dropped() {
        let spans = Spans::new(true);
        let unit = Unit {
            pipeline: "pipe".to_owned(),
            unit: "parse".to_owned(),
        };
        spans.push(1, &unit, &report("etl.p.pipe.in", 3));
        let taken = spans.take(10);
        spans.discard(taken.len());
        assert_eq!(spans.dropped(), 1);
        assert!(
            !SendError::Status {
                code: 400,
                body: String::new()
            }
            .retryable()
        );
    }

    #[test]
    fn the_queue_drops_the_oldest() {
        let spans = Spans::new(true);
        let unit = Unit {
            pipeline: "pipe".to_owned(),
            unit: "parse".to_owned(),
        };
        let r = report("etl.p.pipe.in", 3);
        for seq in 0..(SPAN_QUEUE as u64 + 5) {
            spans.push(seq, &unit, &r);
        }
        assert_eq!(spans.dropped(), 5);
        let first = spans.take(2);
        assert_eq!(first[0].0, 5);
        spans.push(100_000, &unit, &r);
        spans.put_back(first);
        assert_eq!(spans.dropped(), 6);
        assert_eq!(spans.take(1)[0].0, 6);
        assert!(Spans::new(false).take(1).is_empty());
    }
}
