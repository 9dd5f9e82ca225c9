//! What the `in` parts (`in-messaging`, `in-http`) share to report their batches
//! (docs/reporting.md): a [`Batch`] counts one call, from its start to its report, which it
//! encodes as the JSON of `etl::ops::telemetry::Report`; [`Retry`] is how often and after how
//! long a record whose transform answered `transient` is called again; time comes from a
//! [`Clock`], in a part the host's `wasi:clocks` ([`wasi_clock!`]); [`publish_report!`] sends
//! the report.
//!
//! The field names, the reason classes ([`reason_class`]), the histogram's bounds
//! ([`PROCESS_BUCKETS`]) and the limits ([`MAX_CLASSES`], [`MAX_TRACEPARENTS`]) are the
//! controller's (`compiler/src/ops/telemetry.rs`): keep them in step.

pub mod ack;

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::Duration;

/// Config key: the subject a unit publishes its reports to. Unset: no report.
pub const REPORT_SUBJECT: &str = "etl.report.subject";
/// Config key: how many times a record whose transform answered `transient` is called again.
pub const RETRIES: &str = "etl.in.retries";
/// Config key: milliseconds before the first retry, doubled for each one after it.
pub const RETRY_BACKOFF: &str = "etl.in.retry-backoff";
/// [`RETRIES`] when unset.
pub const DEFAULT_RETRIES: u32 = 2;
/// [`RETRY_BACKOFF`] when unset, in milliseconds.
pub const DEFAULT_RETRY_BACKOFF_MS: u64 = 10;
/// The longest wait before one retry, however large the backoff and its doublings: the call
/// (and the broker message or HTTP request it serves) is held while it waits.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);

/// The report format's version (`"v"`).
pub const VERSION: u32 = 1;
/// Upper bounds (inclusive), in nanoseconds, of the buckets of the transform's time per call:
/// `etl::ops::telemetry::PROCESS_BUCKETS` (50 µs … 10 s). A report has one bucket more, the
/// count above the last bound.
pub const PROCESS_BUCKETS: [u64; 16] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];
/// The most distinct reason classes a report keeps; more are counted under [`OTHER_CLASS`].
pub const MAX_CLASSES: usize = 16;
/// The class of a reason that names none, and of classes beyond [`MAX_CLASSES`].
pub const OTHER_CLASS: &str = "other";
/// The most distinct trace contexts a report carries.
pub const MAX_TRACEPARENTS: usize = 8;

/// Why a whole batch failed (nothing of it was delivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A record stayed `transient` after the retries.
    Transient,
    /// The `out` part's `deliver` failed.
    Delivery,
}

impl Failure {
    fn as_str(self) -> &'static str {
        match self {
            Failure::Transient => "transient",
            Failure::Delivery => "delivery",
        }
    }
}

/// A retry setting that is not a whole number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingError {
    /// [`RETRIES`], as it is set.
    Retries(String),
    /// [`RETRY_BACKOFF`], as it is set.
    Backoff(String),
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingError::Retries(v) => {
                write!(
                    f,
                    "config `{RETRIES}` is not a whole number of retries: `{v}`"
                )
            }
            SettingError::Backoff(v) => write!(
                f,
                "config `{RETRY_BACKOFF}` is not a whole number of milliseconds: `{v}`"
            ),
        }
    }
}

/// Where a [`Batch`] takes its time from. `std::time` would do, but on `wasm32-wasip2` it added
/// some 20 KB to each `in` part (measured); [`wasi_clock!`] calls `wasi:clocks` directly.
pub trait Clock {
    /// Nanoseconds since the Unix epoch.
    fn wall(&self) -> u64;
    /// Nanoseconds on a monotonic clock.
    fn now(&self) -> u64;
    /// Waits `duration`.
    fn sleep(&self, duration: Duration);
}

/// Defines `WasiClock` in the calling part: a [`Clock`] on the `wasi:clocks@0.2.12` bindings
/// `etl_harness_bindings::generate!` made there (its world imports `monotonic-clock` and
/// `wall-clock`).
#[macro_export]
macro_rules! wasi_clock {
    () => {
        /// The host's `wasi:clocks`.
        struct WasiClock;

        impl $crate::Clock for WasiClock {
            fn wall(&self) -> u64 {
                let t = wasi::clocks::wall_clock::now();
                t.seconds
                    .saturating_mul(1_000_000_000)
                    .saturating_add(u64::from(t.nanoseconds))
            }

            fn now(&self) -> u64 {
                wasi::clocks::monotonic_clock::now()
            }

            fn sleep(&self, duration: ::std::time::Duration) {
                let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
                wasi::clocks::monotonic_clock::subscribe_duration(nanos).block();
            }
        }
    };
}

/// Defines `publish_report(subject: String, body: Vec<u8>)` in the calling part, whose
/// messages begin with `$part` (`"etl in-http"`): publishes a batch's report through the
/// `wasmcloud:messaging/consumer@0.2.0` bindings made there. A report is not worth failing the
/// batch for: a publish that fails is a line on stderr ([`warn`]), nothing else.
#[macro_export]
macro_rules! publish_report {
    ($part:literal) => {
        /// Publishes a batch's report to `subject`; a failure is a line on stderr.
        fn publish_report(subject: String, body: Vec<u8>) {
            let message = wasmcloud::messaging::types::BrokerMessage {
                subject,
                body,
                reply_to: None,
            };
            if let Err(e) = wasmcloud::messaging::consumer::publish(&message) {
                $crate::warn(&format!(
                    concat!($part, ": the batch's report was not published to `{}`: {}"),
                    message.subject, e
                ));
            }
        }
    };
}

/// How a record whose transform answered `transient` is called again, in the same instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Calls again after the first (0: none).
    pub retries: u32,
    /// The wait before the first of them, doubled for each one after it.
    pub backoff: Duration,
}

impl Retry {
    /// From the values of [`RETRIES`] and [`RETRY_BACKOFF`]: unset or blank is the default,
    /// anything else must be a whole number.
    pub fn from_settings(
        retries: Option<&str>,
        backoff: Option<&str>,
    ) -> Result<Retry, SettingError> {
        let retries = match retries.map(str::trim) {
            None | Some("") => DEFAULT_RETRIES,
            Some(v) => v.parse().map_err(|_| SettingError::Retries(v.to_owned()))?,
        };
        let backoff = match backoff.map(str::trim) {
            None | Some("") => DEFAULT_RETRY_BACKOFF_MS,
            Some(v) => v.parse().map_err(|_| SettingError::Backoff(v.to_owned()))?,
        };
        Ok(Retry {
            retries,
            backoff: Duration::from_millis(backoff),
        })
    }

    /// The wait before retry `n` (0 for the first): the backoff times 2ⁿ, at most
    /// [`MAX_RETRY_DELAY`].
    pub fn delay(&self, n: u32) -> Duration {
        self.backoff
            .saturating_mul(2u32.saturating_pow(n))
            .min(MAX_RETRY_DELAY)
    }
}

/// The class a dead letter's reason is counted under: the text before its first `:`, trimmed,
/// lowercased, spaces as `_`, when that is 1–32 characters of `[a-z0-9_-]`; else
/// [`OTHER_CLASS`]. `"not JSON: expected value"` → `not_json`. The same rule as
/// `etl::ops::telemetry::reason_class`.
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
    let ok = (1..=32).contains(&class.len())
        && class
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok { class } else { OTHER_CLASS.to_owned() }
}

/// Writes `line` and a line break to stderr. Not `eprintln!`, whose machinery (output capture,
/// formatting into a locked stream) adds some 8 KB to a part that has no other use for it.
pub fn warn(line: &str) {
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    // Nothing is left to tell if stderr fails.
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// The index of the bucket of [`PROCESS_BUCKETS`] a call of `nanos` falls in: the first whose
/// bound is at least `nanos`, or `PROCESS_BUCKETS.len()` above the last.
pub fn bucket(nanos: u64) -> usize {
    PROCESS_BUCKETS.partition_point(|&bound| bound < nanos)
}

/// What one call of an `in` part (one batch) did, counted as it goes, and its report.
///
/// `in.records = produced + filtered + Σ deadLettered + failed` holds for every report: a
/// failed batch ([`Batch::fail`]) reports all its records failed and nothing delivered, whatever
/// was counted before.
#[derive(Debug)]
pub struct Batch<C> {
    clock: C,
    /// When the call began: nanoseconds since the Unix epoch.
    start: u64,
    /// And on the monotonic clock.
    began: u64,
    records: u64,
    bytes: u64,
    outputs: u64,
    output_bytes: u64,
    produced: u64,
    filtered: u64,
    dead_lettered: Vec<(String, u64)>,
    failure: Option<Failure>,
    transient: u64,
    retries: u64,
    /// The transform's time, all calls, in nanoseconds.
    process: u64,
    buckets: [u64; PROCESS_BUCKETS.len() + 1],
    traceparents: Vec<String>,
}

impl<C: Clock> Batch<C> {
    /// A call that begins now, timed by `clock`.
    pub fn begin(clock: C) -> Batch<C> {
        Batch {
            start: clock.wall(),
            began: clock.now(),
            clock,
            records: 0,
            bytes: 0,
            outputs: 0,
            output_bytes: 0,
            produced: 0,
            filtered: 0,
            dead_lettered: Vec::new(),
            failure: None,
            transient: 0,
            retries: 0,
            process: 0,
            buckets: [0; PROCESS_BUCKETS.len() + 1],
            traceparents: Vec::new(),
        }
    }

    /// A record of the batch: its payload's bytes and its trace context, if any.
    pub fn input(&mut self, bytes: usize, traceparent: Option<&str>) {
        self.records += 1;
        self.bytes += bytes as u64;
        if let Some(t) = traceparent
            && self.traceparents.len() < MAX_TRACEPARENTS
            && !self.traceparents.iter().any(|seen| seen == t)
        {
            self.traceparents.push(t.to_owned());
        }
    }

    /// Calls the transform (`call`) for one record, timing each call, and calls it again after
    /// waiting [`Retry::delay`] while `transient` says its answer is a `transient` one and
    /// retries are left. The last answer.
    pub fn call<R>(
        &mut self,
        retry: &Retry,
        mut call: impl FnMut() -> R,
        transient: impl Fn(&R) -> bool,
    ) -> R {
        let mut n = 0;
        loop {
            let began = self.clock.now();
            let answer = call();
            self.observe(self.clock.now().saturating_sub(began));
            if !transient(&answer) {
                return answer;
            }
            self.transient += 1;
            if n == retry.retries {
                return answer;
            }
            self.clock.sleep(retry.delay(n));
            n += 1;
            self.retries += 1;
        }
    }

    /// One call of the transform that took `nanos`.
    fn observe(&mut self, nanos: u64) {
        self.process = self.process.saturating_add(nanos);
        self.buckets[bucket(nanos)] += 1;
    }

    /// A record's outputs, by their payloads' bytes: it is produced, or filtered if there are
    /// none.
    pub fn outputs(&mut self, payloads: impl IntoIterator<Item = usize>) {
        let before = self.outputs;
        for bytes in payloads {
            self.outputs += 1;
            self.output_bytes += bytes as u64;
        }
        if self.outputs > before {
            self.produced += 1;
        } else {
            self.filtered += 1;
        }
    }

    /// A record rejected as `invalid` with `reason`, counted under its [`reason_class`] (or
    /// [`OTHER_CLASS`] beyond [`MAX_CLASSES`] classes).
    pub fn dead_lettered(&mut self, reason: &str) {
        let class = reason_class(reason);
        let class = if self.dead_lettered.len() < MAX_CLASSES - 1
            || self.dead_lettered.iter().any(|(c, _)| *c == class)
        {
            class
        } else {
            OTHER_CLASS.to_owned()
        };
        match self.dead_lettered.iter_mut().find(|(c, _)| *c == class) {
            Some((_, n)) => *n += 1,
            None => self.dead_lettered.push((class, 1)),
        }
    }

    /// What was counted as delivered (outputs, produced, filtered, dead-lettered) was not after
    /// all: the last delivery's `deliver` failed, and each record is dead-lettered by the `in`
    /// part instead ([`Batch::dead_lettered`] again, with a `delivery:` reason). The inputs and
    /// the transform's calls stay counted.
    pub fn undelivered(&mut self) {
        self.outputs = 0;
        self.output_bytes = 0;
        self.produced = 0;
        self.filtered = 0;
        self.dead_lettered.clear();
    }

    /// The batch failed: none of it was delivered.
    pub fn fail(&mut self, failure: Failure) {
        self.failure = Some(failure);
    }

    /// The report of the batch that came from `from` (a subject, or `http`), as it stands
    /// now: the JSON body of the report message.
    pub fn report(&self, from: &str) -> Vec<u8> {
        let duration = self.clock.now().saturating_sub(self.began);
        self.encode(from, duration).into_bytes()
    }

    /// The report's JSON, the call having taken `duration` nanoseconds.
    fn encode(&self, from: &str, duration: u64) -> String {
        let failed = self.failure.is_some();
        // A failed batch delivered nothing: every record is failed.
        let delivered = |n: u64| if failed { 0 } else { n };
        let mut json = String::with_capacity(
            320 + from.len() + self.traceparents.iter().map(|t| t.len() + 3).sum::<usize>(),
        );
        json.push_str("{\"v\":");
        push(&mut json, VERSION);
        json.push_str(",\"from\":");
        push_string(&mut json, from);
        json.push_str(",\"start\":");
        push(&mut json, self.start);
        json.push_str(",\"duration\":");
        push(&mut json, duration);
        json.push_str(",\"in\":{\"records\":");
        push(&mut json, self.records);
        json.push_str(",\"bytes\":");
        push(&mut json, self.bytes);
        json.push_str("},\"out\":{\"records\":");
        push(&mut json, delivered(self.outputs));
        json.push_str(",\"bytes\":");
        push(&mut json, delivered(self.output_bytes));
        json.push_str("},\"produced\":");
        push(&mut json, delivered(self.produced));
        json.push_str(",\"filtered\":");
        push(&mut json, delivered(self.filtered));
        json.push_str(",\"deadLettered\":{");
        if !failed {
            for (i, (class, n)) in self.dead_lettered.iter().enumerate() {
                if i > 0 {
                    json.push(',');
                }
                push_string(&mut json, class);
                json.push(':');
                push(&mut json, *n);
            }
        }
        json.push_str("},\"failed\":");
        push(&mut json, if failed { self.records } else { 0 });
        json.push_str(",\"failure\":");
        match self.failure {
            Some(failure) => push_string(&mut json, failure.as_str()),
            None => json.push_str("null"),
        }
        json.push_str(",\"transient\":");
        push(&mut json, self.transient);
        json.push_str(",\"retries\":");
        push(&mut json, self.retries);
        json.push_str(",\"process\":{\"sum\":");
        push_seconds(&mut json, self.process);
        json.push_str(",\"buckets\":[");
        for (i, n) in self.buckets.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            push(&mut json, *n);
        }
        json.push_str("]},\"traceparents\":[");
        for (i, t) in self.traceparents.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            push_string(&mut json, t);
        }
        json.push_str("]}");
        json
    }
}

/// Appends a number.
fn push(json: &mut String, n: impl fmt::Display) {
    // Writing to a `String` cannot fail.
    let _ = write!(json, "{n}");
}

/// Appends `nanos` nanoseconds as a JSON number of seconds, exactly: `0.0123`, `2`. Integers
/// only: formatting an `f64` would bring its formatting code into every `in` part.
fn push_seconds(json: &mut String, nanos: u64) {
    let (whole, fraction) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    push(json, whole);
    if fraction > 0 {
        let digits = format!("{fraction:09}");
        json.push('.');
        json.push_str(digits.trim_end_matches('0'));
    }
}

/// Appends `s` as a JSON string.
fn push_string(json: &mut String, s: &str) {
    json.push('"');
    for c in s.chars() {
        match c {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            c if c < ' ' => {
                let _ = write!(json, "\\u{:04x}", u32::from(c));
            }
            c => json.push(c),
        }
    }
    json.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::cell::{Cell, RefCell};

    const START: u64 = 1_796_650_000_123_456_789;

    /// A clock that moves only when told to, or when slept on.
    #[derive(Default)]
    struct Fake {
        now: Cell<u64>,
        slept: RefCell<Vec<Duration>>,
    }

    impl Fake {
        fn advance(&self, nanos: u64) {
            self.now.set(self.now.get() + nanos);
        }
    }

    impl Clock for &Fake {
        fn wall(&self) -> u64 {
            START
        }

        fn now(&self) -> u64 {
            self.now.get()
        }

        fn sleep(&self, duration: Duration) {
            self.slept.borrow_mut().push(duration);
            self.advance(duration.as_nanos() as u64);
        }
    }

    /// The report as JSON, after checking that its outcomes balance its records.
    fn parsed(batch: &Batch<&Fake>, from: &str) -> Value {
        let report: Value = serde_json::from_slice(&batch.report(from)).expect("a JSON report");
        let n = |v: &Value| v.as_u64().expect("a count");
        let dead: u64 = report["deadLettered"]
            .as_object()
            .expect("an object")
            .values()
            .map(n)
            .sum();
        assert_eq!(
            n(&report["in"]["records"]),
            n(&report["produced"]) + n(&report["filtered"]) + dead + n(&report["failed"]),
            "{report}"
        );
        assert_eq!(
            report["process"]["buckets"].as_array().unwrap().len(),
            PROCESS_BUCKETS.len() + 1
        );
        report
    }

    #[test]
    fn the_buckets_are_the_controllers_in_nanoseconds() {
        // etl::ops::telemetry::PROCESS_BUCKETS, in seconds.
        let seconds = [
            0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
            0.25, 0.5, 1.0, 2.5, 10.0,
        ];
        for (ns, s) in PROCESS_BUCKETS.iter().zip(seconds) {
            assert_eq!(*ns, (s * 1e9_f64).round() as u64);
        }
    }

    #[test]
    fn a_call_falls_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        assert_eq!(bucket(0), 0);
        assert_eq!(
            bucket(50_000),
            0,
            "bounds are inclusive, as Prometheus' `le`"
        );
        assert_eq!(bucket(50_001), 1);
        assert_eq!(bucket(999_999), 4);
        assert_eq!(bucket(1_000_000), 4);
        assert_eq!(bucket(10_000_000_000), 15);
        assert_eq!(bucket(10_000_000_001), 16, "above the last bound");
        assert_eq!(bucket(u64::MAX), 16);
    }

    #[test]
    fn reason_classes_follow_the_controllers_rule() {
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
    fn retries_default_to_two_after_10_ms_doubling() {
        let retry = Retry::from_settings(None, Some(" ")).unwrap();
        assert_eq!(
            retry,
            Retry {
                retries: 2,
                backoff: Duration::from_millis(10)
            }
        );
        let schedule: Vec<u128> = (0..4).map(|n| retry.delay(n).as_millis()).collect();
        assert_eq!(schedule, [10, 20, 40, 80]);
        assert_eq!(
            Retry::from_settings(Some(" 0 "), Some("0")).unwrap(),
            Retry {
                retries: 0,
                backoff: Duration::ZERO
            }
        );
        // Far out, the wait stops growing at the cap (and never wraps).
        let far: Vec<u128> = (6..9).map(|n| retry.delay(n).as_millis()).collect();
        assert_eq!(far, [640, 1000, 1000]);
        assert_eq!(retry.delay(200), MAX_RETRY_DELAY);
        // A backoff set beyond the cap waits the cap.
        let slow = Retry::from_settings(None, Some("5000")).unwrap();
        assert_eq!(slow.delay(0), MAX_RETRY_DELAY);
        assert_eq!(slow.backoff, Duration::from_secs(5));
    }

    #[test]
    fn retry_settings_must_be_whole_numbers() {
        assert_eq!(
            Retry::from_settings(Some("-1"), None),
            Err(SettingError::Retries("-1".to_owned()))
        );
        let backoff = Retry::from_settings(None, Some("1.5")).unwrap_err();
        assert_eq!(
            backoff.to_string(),
            "config `etl.in.retry-backoff` is not a whole number of milliseconds: `1.5`"
        );
        assert_eq!(
            SettingError::Retries("x".to_owned()).to_string(),
            "config `etl.in.retries` is not a whole number of retries: `x`"
        );
    }

    /// A transform that takes 1 ms on `clock` and answers `transient` (`Err`) `fails` times,
    /// then `Ok`.
    fn flaky(clock: &Fake, fails: u32) -> impl FnMut() -> Result<(), ()> {
        let mut calls = 0;
        move || {
            clock.advance(1_000_000);
            calls += 1;
            if calls > fails { Ok(()) } else { Err(()) }
        }
    }

    #[test]
    fn a_transient_answer_is_retried_after_the_backoff_until_the_retries_run_out() {
        let retry = Retry::from_settings(Some("3"), Some("5")).unwrap();
        let clock = Fake::default();
        let mut batch = Batch::begin(&clock);
        batch.input(1, None);
        let answer = batch.call(&retry, flaky(&clock, 2), Result::is_err);
        assert_eq!(answer, Ok(()));
        batch.outputs([1]);
        assert_eq!(
            *clock.slept.borrow(),
            [Duration::from_millis(5), Duration::from_millis(10)]
        );
        let report = parsed(&batch, "s");
        assert_eq!(
            (&report["transient"], &report["retries"]),
            (&json!(2), &json!(2))
        );
        // Every attempt is observed, each 1 ms; the waits are not the transform's time.
        assert_eq!(report["process"]["sum"], 0.003);
        assert_eq!(report["process"]["buckets"][4], 3);
        assert_eq!(
            report["duration"], 18_000_000,
            "3 ms of calls, 15 ms of waits"
        );

        let clock = Fake::default();
        let mut batch = Batch::begin(&clock);
        let answer = batch.call(&retry, flaky(&clock, 9), Result::is_err);
        assert_eq!(answer, Err(()));
        assert_eq!(clock.slept.borrow().len(), 3);
        assert_eq!((batch.transient, batch.retries), (4, 3));
        assert_eq!(batch.buckets.iter().sum::<u64>(), 4);

        let never = Retry::from_settings(Some("0"), None).unwrap();
        let clock = Fake::default();
        let mut batch = Batch::begin(&clock);
        let answer = batch.call(&never, flaky(&clock, 1), Result::is_err);
        assert_eq!(answer, Err(()));
        assert!(clock.slept.borrow().is_empty());
        assert_eq!((batch.transient, batch.retries), (1, 0));
    }

    #[test]
    fn a_delivered_batch_reports_each_records_outcome() {
        let clock = Fake::default();
        let mut batch = Batch::begin(&clock);
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        for (bytes, traceparent) in [(10, Some(tp)), (20, Some(tp)), (30, None), (40, None)] {
            batch.input(bytes, traceparent);
        }
        batch.outputs([12, 3]);
        batch.outputs([]);
        batch.dead_lettered("not JSON: expected value");
        batch.outputs([7]);
        batch.observe(300_000);
        batch.observe(20_000_000_000);
        clock.advance(2_100_000);
        let report = parsed(&batch, "etl.p.pipe.out.parse");
        assert_eq!(report["v"], 1);
        assert_eq!(report["from"], "etl.p.pipe.out.parse");
        assert_eq!(report["start"], START);
        assert_eq!(report["duration"], 2_100_000);
        assert_eq!(report["in"], json!({"records": 4, "bytes": 100}));
        assert_eq!(report["out"], json!({"records": 3, "bytes": 22}));
        assert_eq!(report["produced"], 2);
        assert_eq!(report["filtered"], 1);
        assert_eq!(report["deadLettered"], json!({"not_json": 1}));
        assert_eq!(report["failed"], 0);
        assert_eq!(report["failure"], Value::Null);
        assert_eq!(report["process"]["sum"], 20.0003);
        let mut buckets = vec![0; 17];
        buckets[3] = 1;
        buckets[16] = 1;
        assert_eq!(report["process"]["buckets"], json!(buckets));
        assert_eq!(report["traceparents"], json!([tp]));
    }

    #[test]
    fn a_failed_batch_reports_every_record_failed_and_nothing_delivered() {
        for failure in [Failure::Transient, Failure::Delivery] {
            let clock = Fake::default();
            let mut batch = Batch::begin(&clock);
            for _ in 0..3 {
                batch.input(5, None);
            }
            batch.outputs([5]);
            batch.dead_lettered("bad: x");
            batch.fail(failure);
            let report = parsed(&batch, "http");
            assert_eq!(report["in"], json!({"records": 3, "bytes": 15}));
            assert_eq!(report["out"], json!({"records": 0, "bytes": 0}));
            assert_eq!(
                (&report["produced"], &report["filtered"]),
                (&json!(0), &json!(0))
            );
            assert_eq!(report["deadLettered"], json!({}));
            assert_eq!(report["failed"], 3);
            assert_eq!(report["failure"], failure.as_str());
        }
    }

    #[test]
    fn an_empty_batch_reports_zeros() {
        let clock = Fake::default();
        let report = parsed(&Batch::begin(&clock), "subject");
        assert_eq!(report["in"], json!({"records": 0, "bytes": 0}));
        assert_eq!(report["process"]["sum"], 0);
        assert_eq!(report["traceparents"], json!([]));
    }

    #[test]
    fn classes_beyond_the_limit_and_trace_contexts_beyond_eight_are_not_kept() {
        let clock = Fake::default();
        let mut batch = Batch::begin(&clock);
        for i in 0..40 {
            let traceparent = format!("00-{i:032x}-{i:016x}-01");
            batch.input(1, Some(&traceparent));
            batch.dead_lettered(&format!("c{i}: x"));
        }
        batch.input(1, None);
        batch.dead_lettered("c0: again");
        let report = parsed(&batch, "s");
        let classes = report["deadLettered"].as_object().unwrap();
        assert_eq!(classes.len(), MAX_CLASSES);
        assert_eq!(classes["c0"], 2);
        assert_eq!(classes[OTHER_CLASS], 40 - (MAX_CLASSES as u64 - 1));
        let traceparents = report["traceparents"].as_array().unwrap();
        assert_eq!(traceparents.len(), MAX_TRACEPARENTS);
        assert_eq!(traceparents[7], format!("00-{:032x}-{:016x}-01", 7, 7));
    }

    #[test]
    fn seconds_are_exact_decimals() {
        let seconds = |nanos| {
            let mut json = String::new();
            push_seconds(&mut json, nanos);
            json
        };
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(12_300_000), "0.0123");
        assert_eq!(seconds(1), "0.000000001");
        assert_eq!(seconds(2_000_000_000), "2");
        assert_eq!(seconds(20_000_300_000), "20.0003");
        assert_eq!(seconds(u64::MAX), "18446744073.709551615");
    }

    #[test]
    fn strings_are_escaped() {
        let clock = Fake::default();
        let mut batch = Batch::begin(&clock);
        batch.input(0, Some("q\"b\\c\n\u{1}é"));
        batch.outputs([]);
        let report = parsed(&batch, "a\"b");
        assert_eq!(report["from"], "a\"b");
        assert_eq!(report["traceparents"], json!(["q\"b\\c\n\u{1}é"]));
    }

    #[test]
    fn the_encoding_is_the_documented_one() {
        let clock = Fake::default();
        let mut batch = Batch::begin(&clock);
        batch.input(10, None);
        batch.outputs([9]);
        batch.observe(1_000_000);
        assert_eq!(
            batch.encode("etl.p.q.out.parse", 2_100_000),
            "{\"v\":1,\"from\":\"etl.p.q.out.parse\",\"start\":1796650000123456789,\
             \"duration\":2100000,\"in\":{\"records\":1,\"bytes\":10},\
             \"out\":{\"records\":1,\"bytes\":9},\"produced\":1,\"filtered\":0,\
             \"deadLettered\":{},\"failed\":0,\"failure\":null,\"transient\":0,\"retries\":0,\
             \"process\":{\"sum\":0.001,\"buckets\":[0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0]},\
             \"traceparents\":[]}"
        );
    }

    #[test]
    fn the_last_deliverys_dead_letters_balance_the_report() {
        // Records 1 and 3 delivered, 2 still transient: dead-lettered as `transient`.
        let clock = Fake::default();
        let mut batch = Batch::begin(&clock);
        for _ in 0..3 {
            batch.input(2, None);
        }
        batch.outputs([2]);
        batch.dead_lettered(&ack::transient_reason("busy"));
        batch.outputs([]);
        let report = parsed(&batch, "s");
        assert_eq!(report["deadLettered"], json!({"transient": 1}));
        assert_eq!(
            (&report["produced"], &report["filtered"]),
            (&json!(1), &json!(1))
        );
        assert_eq!(report["out"], json!({"records": 1, "bytes": 2}));
        // Then `deliver` failed: every record is a dead letter of class `delivery`, the one
        // still transient keeps its class.
        batch.undelivered();
        batch.dead_lettered(&ack::transient_reason("busy"));
        batch.dead_lettered(&ack::delivery_reason("publishing failed"));
        batch.dead_lettered(&ack::delivery_reason("publishing failed"));
        let report = parsed(&batch, "s");
        assert_eq!(
            report["deadLettered"],
            json!({"transient": 1, "delivery": 2})
        );
        assert_eq!(
            (&report["produced"], &report["filtered"]),
            (&json!(0), &json!(0))
        );
        assert_eq!(report["out"], json!({"records": 0, "bytes": 0}));
        assert_eq!(
            (&report["failed"], &report["failure"]),
            (&json!(0), &Value::Null)
        );
    }
}
