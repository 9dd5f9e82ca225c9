//! How `etl run` prints a run: JSON lines for tools, text for people.
//!
//! Both print, input record by input record as each [`Outcome`] comes, what reached each sink,
//! what was dead-lettered and what failed, then a [`Summary`]. Nothing here depends on the
//! records before: output streams. The JSON lines format is documented in `docs/running.md`.

use std::fmt::Write;

use serde_json::{Value as Json, json};

use super::input::to_json;
use super::{Outcome, Record, Summary};

/// The JSON lines of one input record's outcome: its `sink`, `dead-letter`, `failure` and
/// `log` events, in that order, each line ending in `\n`.
pub fn jsonl_outcome(outcome: &Outcome) -> String {
    let mut out = String::new();
    let mut line = |value: Json| {
        out.push_str(&serde_json::to_string(&value).expect("JSON values serialize"));
        out.push('\n');
    };
    let input = outcome.input;
    for s in &outcome.sinks {
        line(
            json!({"type": "sink", "input": input, "sink": s.sink, "target": s.target, "record": to_json(&s.record)}),
        );
    }
    for d in &outcome.dead_letters {
        line(
            json!({"type": "dead-letter", "input": input, "step": d.step, "error": d.reason, "record": to_json(&d.record)}),
        );
    }
    for f in &outcome.failures {
        line(
            json!({"type": "failure", "input": input, "unit": f.unit, "kind": f.kind.name(), "attempts": f.attempts, "message": f.message}),
        );
    }
    for (unit, _, l) in &outcome.logs {
        line(
            json!({"type": "log", "input": input, "unit": unit, "level": l.level, "context": l.context, "message": l.message}),
        );
    }
    out
}

/// The `summary` line that ends the JSON lines.
pub fn jsonl_summary(summary: &Summary) -> String {
    let units: serde_json::Map<String, Json> = summary
        .counts
        .iter()
        .map(|(name, c)| {
            (
                name.clone(),
                json!({"in": c.received, "out": c.emitted, "filtered": c.filtered, "deadLettered": c.dead_lettered, "failed": c.failed, "retries": c.retries}),
            )
        })
        .collect();
    let failures: serde_json::Map<String, Json> = summary
        .failures
        .iter()
        .map(|(k, n)| (k.name().to_owned(), Json::from(*n)))
        .collect();
    let mut out = serde_json::to_string(&json!({
        "type": "summary",
        "inputs": summary.inputs,
        "delivered": summary.delivered,
        "deadLetters": summary.dead_letters,
        "failures": failures,
        "unconsumed": summary.unconsumed,
        "units": units,
        "elapsedMs": summary.elapsed.as_secs_f64() * 1e3,
        "recordsPerSecond": summary.records_per_second(),
    }))
    .expect("JSON values serialize");
    out.push('\n');
    out
}

/// One input record's outcome for people (`record 0 → alerts …`), a line per event.
pub fn text_outcome(outcome: &Outcome) -> String {
    let mut out = String::new();
    let input = outcome.input;
    for s in &outcome.sinks {
        let _ = writeln!(
            out,
            "record {input} → {} ({}): {}",
            s.sink,
            s.target,
            show(&s.record)
        );
    }
    for d in &outcome.dead_letters {
        let _ = writeln!(
            out,
            "record {input} ✗ dead letter at {}: {}\n    record: {}",
            d.step,
            d.reason,
            show(&d.record)
        );
    }
    for f in &outcome.failures {
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
    for (unit, _, l) in &outcome.logs {
        let _ = writeln!(
            out,
            "record {input} · {unit} log {} {}: {}",
            l.level, l.context, l.message
        );
    }
    out
}

/// The end of the text output: a table of counts per unit and a summary line.
pub fn text_summary(summary: &Summary) -> String {
    let mut out = String::new();
    let width = summary
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
    for (name, c) in &summary.counts {
        let _ = writeln!(
            out,
            "{name:width$}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}",
            c.received, c.emitted, c.filtered, c.dead_lettered, c.failed, c.retries
        );
    }
    let failures: Vec<String> = summary
        .failures
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    let _ = writeln!(
        out,
        "\n{} record{} in: {} delivered to sinks, {} dead-lettered, {} failed{} in {:.1} ms ({:.0} records/s)",
        summary.inputs,
        if summary.inputs == 1 { "" } else { "s" },
        summary.delivered,
        summary.dead_letters,
        summary.failed(),
        if failures.is_empty() {
            String::new()
        } else {
            format!(" ({})", failures.join(", "))
        },
        summary.elapsed.as_secs_f64() * 1e3,
        summary.records_per_second()
    );
    if summary.unconsumed > 0 {
        let _ = writeln!(
            out,
            "{} output{} went to subjects nothing in the pipeline consumes",
            summary.unconsumed,
            if summary.unconsumed == 1 { "" } else { "s" }
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
