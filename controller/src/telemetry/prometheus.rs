//! `GET /metrics`: the [`Points`] in the Prometheus text format (version 0.0.4), written by the
//! `prometheus` crate's encoder from metric families made at each scrape.

use etl::ops::telemetry::PROCESS_BUCKETS;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder as _, TextEncoder};

use super::metrics::{
    Attributes, DEAD_LETTERS_KEPT, DEAD_LETTERS_KEPT_HELP, PROCESS_DURATION, PROCESS_DURATION_HELP,
    Points, REPORTS, SPANS_DROPPED, SPANS_DROPPED_HELP, UNIT_COUNTERS, label,
};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// The Prometheus name of a counter named `name` (OTel) in `unit`: `_` for `.`, `_bytes` for
/// `By`, then `_total`.
fn counter_name(name: &str, unit: &str) -> String {
    let mut n = label(name);
    if unit == "By" && !n.ends_with("_bytes") {
        n.push_str("_bytes");
    }
    n.push_str("_total");
    n
}

fn labels(attributes: &Attributes, extra: Option<(&str, &str)>) -> Vec<LabelPair> {
    let mut pairs: Vec<LabelPair> = attributes
        .iter()
        .map(|(k, v)| (label(k), v.as_str()))
        .chain(extra.map(|(k, v)| (k.to_owned(), v)))
        .map(|(k, v)| {
            let mut pair = LabelPair::default();
            pair.set_name(k);
            pair.set_value(v.to_owned());
            pair
        })
        .collect();
    pairs.sort_by(|a, b| a.name().cmp(b.name()));
    pairs
}

fn family(name: String, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name);
    family.set_help(help.to_owned());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

fn counter(labels: Vec<LabelPair>, value: u64) -> Metric {
    let mut c = Counter::default();
    c.set_value(value as f64);
    let mut m = Metric::from_label(labels);
    m.set_counter(c);
    m
}

fn gauge(labels: Vec<LabelPair>, value: u64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(value as f64);
    let mut m = Metric::from_label(labels);
    m.set_gauge(g);
    m
}

/// The families of `points`, in a fixed order.
fn families(points: &Points) -> Vec<MetricFamily> {
    let mut families = Vec::new();
    for def in UNIT_COUNTERS {
        let metrics = points
            .units
            .iter()
            .flat_map(|u| {
                (def.values)(&u.counters)
                    .into_iter()
                    .map(|(extra, n)| {
                        let extra = def.extra.zip(extra.as_deref()).map(|((l, _), v)| (l, v));
                        counter(labels(&u.attributes, extra), n)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        families.push(family(
            counter_name(def.name, def.unit),
            def.help,
            MetricType::COUNTER,
            metrics,
        ));
    }
    let histograms = points
        .units
        .iter()
        .map(|u| {
            let process = &u.counters.process;
            let mut cumulative = 0;
            let buckets = PROCESS_BUCKETS
                .iter()
                .zip(&process.buckets)
                .map(|(bound, n)| {
                    cumulative = u64::saturating_add(cumulative, *n);
                    let mut b = Bucket::default();
                    b.set_upper_bound(*bound);
                    b.set_cumulative_count(cumulative);
                    b
                })
                .collect();
            let mut h = Histogram::default();
            h.set_bucket(buckets);
            h.set_sample_count(process.count());
            h.set_sample_sum(process.sum);
            let mut m = Metric::from_label(labels(&u.attributes, None));
            m.set_histogram(h);
            m
        })
        .collect();
    families.push(family(
        format!("{}_seconds", label(PROCESS_DURATION)),
        PROCESS_DURATION_HELP,
        MetricType::HISTOGRAM,
        histograms,
    ));
    let health = [
        points.health.counted,
        points.health.refused,
        points.health.missed,
    ];
    for ((name, help), n) in REPORTS.iter().zip(health) {
        families.push(family(
            counter_name(name, ""),
            help,
            MetricType::COUNTER,
            vec![counter(labels(&points.environment, None), n)],
        ));
    }
    families.push(family(
        label(DEAD_LETTERS_KEPT),
        DEAD_LETTERS_KEPT_HELP,
        MetricType::GAUGE,
        points
            .kept
            .iter()
            .map(|(attributes, n)| gauge(labels(attributes, None), *n))
            .collect(),
    ));
    families.push(family(
        counter_name(SPANS_DROPPED, ""),
        SPANS_DROPPED_HELP,
        MetricType::COUNTER,
        vec![counter(
            labels(&points.environment, None),
            points.spans_dropped,
        )],
    ));
    // A family without series is not written (the format has no empty family).
    families.retain(|f| !f.get_metric().is_empty());
    families
}

/// The exposition of `points`; empty before the first bundle.
pub fn exposition(points: Option<&Points>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(points) = points {
        TextEncoder::new()
            .encode(&families(points), &mut out)
            .expect("metric families made here are complete, and a Vec takes every write");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use etl::ops::telemetry::{Counters, Failure, ReportHealth};

    use super::*;
    use crate::telemetry::metrics::UnitPoint;
    use crate::telemetry::store::tests::report;

    fn points() -> Points {
        let environment: Attributes = vec![
            ("etl.project", "p".to_owned()),
            ("etl.environment", "dev".to_owned()),
        ];
        let mut counters = Counters::default();
        counters.add(&report("etl.p.pipe.in", 10)).unwrap();
        let mut failed = report("etl.p.pipe.in", 4);
        failed.produced = 0;
        failed.filtered = 0;
        failed.dead_lettered = BTreeMap::new();
        failed.failed = 4;
        failed.failure = Some(Failure::Delivery);
        failed.out.records = 0;
        counters.add(&failed).unwrap();
        let mut attributes = environment.clone();
        attributes.extend([
            ("etl.pipeline", "pipe".to_owned()),
            ("etl.step", "parse".to_owned()),
            ("messaging.system", "nats".to_owned()),
            ("messaging.destination.name", "etl.p.pipe.in".to_owned()),
            ("messaging.operation.name", "process".to_owned()),
        ]);
        let mut kept = environment.clone();
        kept.extend([
            ("etl.pipeline", "pipe".to_owned()),
            ("etl.step", "parse".to_owned()),
        ]);
        Points {
            environment,
            units: vec![UnitPoint {
                attributes,
                counters,
                since: 0,
            }],
            kept: vec![(kept, 3)],
            health: ReportHealth {
                counted: 2,
                refused: 1,
                missed: 0,
            },
            spans_dropped: 0,
            since: 0,
        }
    }

    #[test]
    fn the_exposition_parses_with_its_types_and_values() {
        let text = String::from_utf8(exposition(Some(&points()))).unwrap();
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let value = |name: &str, label: Option<(&str, &str)>| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
                .map(|s| s.value.clone())
                .unwrap_or_else(|| panic!("no {name} {label:?} in\n{text}"))
        };
        use prometheus_parse::Value;
        assert_eq!(
            value("messaging_client_consumed_messages_total", None),
            Value::Counter(14.0)
        );
        assert_eq!(
            value("messaging_client_sent_messages_total", None),
            Value::Counter(8.0)
        );
        assert_eq!(
            value(
                "etl_records_dead_lettered_total",
                Some(("reason_class", "not_json"))
            ),
            Value::Counter(1.0)
        );
        assert_eq!(
            value("etl_records_failed_total", Some(("failure", "delivery"))),
            Value::Counter(4.0)
        );
        assert_eq!(
            value("etl_consumed_bytes_total", None),
            Value::Counter(140.0)
        );
        assert_eq!(
            value("etl_reports_refused_total", None),
            Value::Counter(1.0)
        );
        assert_eq!(value("etl_dead_letters_kept", None), Value::Gauge(3.0));
        match value("messaging_process_duration_seconds", None) {
            Value::Histogram(buckets) => {
                assert_eq!(buckets.len(), PROCESS_BUCKETS.len() + 1);
                assert_eq!(buckets[2].less_than, 0.000_25);
                assert_eq!(buckets[2].count, 14.0);
                assert!(buckets.last().unwrap().less_than.is_infinite());
                assert_eq!(buckets.last().unwrap().count, 14.0);
            }
            other => panic!("{other:?}"),
        }
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == "etl_batches_total")
            .unwrap();
        for (k, v) in [
            ("etl_project", "p"),
            ("etl_environment", "dev"),
            ("etl_pipeline", "pipe"),
            ("etl_step", "parse"),
            ("messaging_system", "nats"),
            ("messaging_destination_name", "etl.p.pipe.in"),
            ("messaging_operation_name", "process"),
        ] {
            assert_eq!(sample.labels.get(k), Some(v), "{k}");
        }
        assert!(exposition(None).is_empty());
    }
}
