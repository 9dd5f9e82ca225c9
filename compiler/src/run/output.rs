//! How `etl run` prints a [`Report`]: JSON lines for tools, text for people.
//!
//! Both list, input record by input record, what reached each sink, what was dead-lettered and
//! what failed, then a summary. The JSON lines format is documented in `docs/running.md`.

use std::fmt::Write;

use serde_json::{Value as Json, json};

use super::input::to_json;
use super::{Record, Report};

/// One JSON object per line: `sink`, `dead-letter`, `failure` and `log` events in input order,
/// then one `summary`.
pub fn jsonl(report: &Report) -> String {
    let mut out = String::new();
    let mut line = |value: Json| {
        out.push_str(&serde_json::to_string(&value).expect("JSON values serialize"));
        out.push('\n');
    };
    for input in 0..report.inputs {
        for s in report.sinks.iter().filter(|s| s.input == input) {
            line(
                json!({"type": "sink", "input": input, "sink": s.sink, "target": s.target, "record": to_json(&s.record)}),
            );
        }
        for d in report.dead_letters.iter().filter(|d| d.input == input) {
            line(
                json!({"type": "dead-letter", "input": input, "step": d.step, "error": d.reason, "record": to_json(&d.record)}),
            );
        }
        for f in report.failures.iter().filter(|f| f.input == input) {
            line(
                json!({"type": "failure", "input": input, "unit": f.unit, "kind": f.kind.name(), "attempts": f.attempts, "message": f.message}),
            );
        }
        for (unit, _, l) in report.logs.iter().filter(|(_, i, _)| *i == input) {
            line(
                json!({"type": "log", "input": input, "unit": unit, "level": l.level, "context": l.context, "message": l.message}),
            );
        }
    }
    let units: serde_json::Map<String, Json> = report
        .counts
        .iter()
        .map(|(name, c)| {
            (
                name.clone(),
                json!({"in": c.received, "out": c.emitted, "filtered": c.filtered, "deadLettered": c.dead_lettered, "failed": c.failed, "retries": c.retries}),
            )
        })
        .collect();
    let failures: serde_json::Map<String, Json> = report
        .failures_by_kind()
        .into_iter()
        .map(|(k, n)| (k.name().to_owned(), Json::from(n)))
        .collect();
    line(json!({
        "type": "summary",
        "inputs": report.inputs,
        "delivered": report.sinks.len(),
        "deadLetters": report.dead_letters.len(),
        "failures": failures,
        "unconsumed": report.unconsumed,
        "units": units,
        "elapsedMs": report.elapsed.as_secs_f64() * 1e3,
    }));
    out
}

/// Events for people (`record 0 → alerts …`), then a table of counts and a summary line.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    for input in 0..report.inputs {
        for s in report.sinks.iter().filter(|s| s.input == input) {
            let _ = writeln!(
                out,
                "record {input} → {} ({}): {}",
                s.sink,
                s.target,
                show(&s.record)
            );
        }
        for d in report.dead_letters.iter().filter(|d| d.input == input) {
            let _ = writeln!(
                out,
                "record {input} ✗ dead letter at {}: {}\n    record: {}",
                d.step,
                d.reason,
                show(&d.record)
            );
        }
        for f in report.failures.iter().filter(|f| f.input == input) {
            let _ = writeln!(
                out,
                "record {input} ✗ failed at {} ({}, {} attempt{}): {}",
                f.unit,
                f.kind,
                f.attempts,
                if f.attempts == 1 { "" } else { "s" },
                indent(&f.message)
            );
        }
        for (unit, _, l) in report.logs.iter().filter(|(_, i, _)| *i == input) {
            let _ = writeln!(
                out,
                "record {input} · {unit} log {} {}: {}",
                l.level, l.context, l.message
            );
        }
    }
    let width = report
        .counts
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let _ = writeln!(
        out,
        "\n{:width$}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}",
        "unit", "in", "out", "filtered", "dead", "failed", "retries"
    );
    for (name, c) in &report.counts {
        let _ = writeln!(
            out,
            "{name:width$}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}",
            c.received, c.emitted, c.filtered, c.dead_lettered, c.failed, c.retries
        );
    }
    let failures: Vec<String> = report
        .failures_by_kind()
        .into_iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    let _ = writeln!(
        out,
        "\n{} record{} in: {} delivered to sinks, {} dead-lettered, {} failed{} in {:.1} ms",
        report.inputs,
        if report.inputs == 1 { "" } else { "s" },
        report.sinks.len(),
        report.dead_letters.len(),
        report.failures.len(),
        if failures.is_empty() {
            String::new()
        } else {
            format!(" ({})", failures.join(", "))
        },
        report.elapsed.as_secs_f64() * 1e3
    );
    if report.unconsumed > 0 {
        let _ = writeln!(
            out,
            "{} output{} went to subjects nothing in the pipeline consumes",
            report.unconsumed,
            if report.unconsumed == 1 { "" } else { "s" }
        );
    }
    out
}

/// A record on one line: the payload as text (or `base64:…`), then key and headers.
fn show(record: &Record) -> String {
    let mut out = match std::str::from_utf8(&record.payload) {
        Ok(text) => text.to_owned(),
        Err(_) => format!(
            "base64:{}",
            to_json(record)["base64"].as_str().unwrap_or_default()
        ),
    };
    if let Some(key) = &record.key {
        let _ = write!(out, "  key={}", String::from_utf8_lossy(key));
    }
    for (k, v) in &record.headers {
        let _ = write!(out, "  {k}: {v}");
    }
    out
}

fn indent(text: &str) -> String {
    text.replace('\n', "\n    ")
}
