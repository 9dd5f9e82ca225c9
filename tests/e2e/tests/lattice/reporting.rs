//! Issue 19 on the real lattice: every step and sink reports each batch to the environment's
//! controller, which adds the counts up exactly — per step, as its API, `/metrics` and `etl
//! status` say — keeps the dead letters (`etl dlq`) and replays one into its step; and the
//! dashboard it serves shows the same counts in a real browser.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};

use crate::common::{Env, PIPELINE, QUIET, Sinks, Source, post_batch, reading};
use crate::controller::Controller;

/// A reading `enrich` answers `transient` the first time an instance sees it (the example
/// component's simulated passing fault): retried by the harness, then enriched.
pub fn flaky_reading(temp: f64, ts: &str) -> String {
    reading("flaky-404", temp, ts)
}

/// One unit's counts as the controller reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub records_in: u64,
    pub out: u64,
    pub produced: u64,
    pub filtered: u64,
    pub dead: u64,
    pub failed: u64,
    pub transient: u64,
    pub retries: u64,
}

impl Counts {
    fn of(counters: &Value) -> Self {
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let sum = |v: &Value| {
            v.as_object()
                .map_or(0, |m| m.values().map(|x| x.as_u64().unwrap_or(0)).sum())
        };
        Counts {
            records_in: n(&counters["in"]["records"]),
            out: n(&counters["out"]["records"]),
            produced: n(&counters["produced"]),
            filtered: n(&counters["filtered"]),
            dead: sum(&counters["deadLettered"]),
            failed: sum(&counters["failed"]),
            transient: n(&counters["transient"]),
            retries: n(&counters["retries"]),
        }
    }

    fn plus(self, d: Counts) -> Counts {
        Counts {
            records_in: self.records_in + d.records_in,
            out: self.out + d.out,
            produced: self.produced + d.produced,
            filtered: self.filtered + d.filtered,
            dead: self.dead + d.dead,
            failed: self.failed + d.failed,
            transient: self.transient + d.transient,
            retries: self.retries + d.retries,
        }
    }

    fn balanced(&self) -> bool {
        self.records_in == self.produced + self.filtered + self.dead + self.failed
    }
}

/// The counts of every step and sink of `pipeline`, by name, from `GET /api/v1/pipelines/<p>`.
pub fn unit_counts(
    controller: &Controller,
    pipeline: &str,
) -> anyhow::Result<BTreeMap<String, Counts>> {
    let view: Value =
        serde_json::from_slice(&controller.get(&format!("/api/v1/pipelines/{pipeline}"))?)
            .context("the controller's pipeline view")?;
    let nodes = view["nodes"]
        .as_array()
        .with_context(|| format!("no nodes in {view}"))?;
    Ok(nodes
        .iter()
        .filter(|n| n["kind"] != "source")
        .map(|n| {
            let name = n["name"].as_str().unwrap_or_default().to_owned();
            let counts = if n["counters"].is_null() {
                Counts::default()
            } else {
                Counts::of(&n["counters"])
            };
            (name, counts)
        })
        .collect())
}

/// Waits until every unit's counts are `want` (or `timeout`), then `QUIET` more, and checks
/// they still are: nothing counted twice or late.
async fn wait_counts(
    controller: &Controller,
    want: &BTreeMap<String, Counts>,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<String, Counts>> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = unit_counts(controller, PIPELINE)?;
        let reached = want.iter().all(|(unit, w)| got.get(unit) == Some(w));
        if reached {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{}'s controller: the counts did not reach the expected ones within {timeout:?}\n\
                 expected {want:#?}\ngot {got:#?}\n---- controller log ----\n{}",
                controller.environment,
                controller.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(QUIET).await;
    let got = unit_counts(controller, PIPELINE)?;
    for (unit, w) in want {
        ensure!(
            got.get(unit) == Some(w),
            "{unit}: counted {:?} after settling, expected {w:?}",
            got.get(unit)
        );
    }
    Ok(got)
}

/// A sample's value in a Prometheus text exposition: the line of `name` whose labels include
/// every `key="value"` of `labels`.
fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let (metric, rest) = l
                .split_once('{')
                .unwrap_or((l.split(' ').next().unwrap_or(""), ""));
            metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The reporting checks, on an environment whose pipeline runs and whose controller has a
/// token: one NDJSON request of four readings — one that alerts, one below the threshold
/// (filtered at threshold-alert), one that is not JSON (dead-lettered at parse) and one `enrich`
/// answers `transient` once (retried) — gives exactly the counts it should at every step and
/// sink, in the API, `/metrics` and `etl status`; the dead letter is listed and replayed into
/// parse (counted again, dead-lettered again, the replay audited); and, when `browser` names a
/// screenshot path, the dashboard shows the counts in Chromium.
pub async fn check_reporting(
    env: &Env,
    controller: &Controller,
    source: &Source,
    sinks: &mut Sinks,
    alert_temp: f64,
    filtered_temp: f64,
    browser: Option<&Path>,
) -> anyhow::Result<()> {
    let environment = controller.environment.clone();
    ensure!(
        controller.status_without_token("/api/v1/overview")? == 401,
        "{environment}'s controller answers its API without the token"
    );
    ensure!(
        controller.status_without_token("/metrics")? == 401,
        "{environment}'s controller answers /metrics without the token"
    );
    let before = unit_counts(controller, PIPELINE)?;
    let bad = "t-403;80.0;2026-11-01T12:01:10Z";
    let inputs = vec![
        reading("t-401", alert_temp, "2026-11-01T12:01:00Z"),
        reading("t-402", filtered_temp, "2026-11-01T12:01:05Z"),
        bad.to_owned(),
        flaky_reading(alert_temp + 1.0, "2026-11-01T12:01:15Z"),
    ];
    let t = Instant::now();
    let (status, answer) = post_batch(source, &inputs).await?;
    ensure!(
        status == 400 && answer.contains("record 3 of 4"),
        "{environment}: the batch with a bad record got {status} {answer:?}"
    );
    let delta = |records_in, out, produced, filtered, dead, transient, retries| Counts {
        records_in,
        out,
        produced,
        filtered,
        dead,
        failed: 0,
        transient,
        retries,
    };
    let deltas = BTreeMap::from([
        ("parse", delta(4, 3, 3, 0, 1, 0, 0)),
        ("enrich", delta(3, 3, 3, 0, 0, 1, 1)),
        ("threshold-alert", delta(3, 2, 2, 1, 0, 0, 0)),
        ("alerts", delta(2, 2, 2, 0, 0, 0, 0)),
        ("archive", delta(3, 3, 3, 0, 0, 0, 0)),
    ]);
    let want: BTreeMap<String, Counts> = deltas
        .iter()
        .map(|(unit, d)| {
            let b = before.get(*unit).copied().unwrap_or_default();
            ((*unit).to_owned(), b.plus(*d))
        })
        .collect();
    let after = wait_counts(controller, &want, Duration::from_secs(30)).await?;
    eprintln!(
        "e2e: {environment}: every step's and sink's counts exact {:.1?} after the request \
         ({deltas:?} added)",
        t.elapsed()
    );
    for (unit, c) in &after {
        ensure!(c.balanced(), "{unit}: the counts do not balance: {c:?}");
    }
    sinks.drain().await?;

    // /metrics says the same (a Prometheus text exposition).
    let metrics = String::from_utf8(controller.get("/metrics")?)?;
    for (unit, c) in &after {
        let labels = [
            ("etl_pipeline", PIPELINE),
            ("etl_step", unit.as_str()),
            ("etl_environment", environment.as_str()),
        ];
        let consumed = sample(
            &metrics,
            "messaging_client_consumed_messages_total",
            &labels,
        );
        ensure!(
            consumed == Some(c.records_in as f64),
            "/metrics: {unit} consumed {consumed:?}, the API says {}",
            c.records_in
        );
        let sent = sample(&metrics, "messaging_client_sent_messages_total", &labels);
        ensure!(
            sent == Some(c.out as f64),
            "/metrics: {unit} sent {sent:?}, the API says {}",
            c.out
        );
    }
    ensure!(
        !metrics.contains("t-403;80.0"),
        "/metrics carries a payload"
    );

    // `etl status` shows the same counters.
    let status = controller.status()?;
    let line = status["pipelines"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == PIPELINE))
        .with_context(|| format!("{PIPELINE} is not in {status}"))?;
    for (unit, c) in &after {
        let counters = line["units"]
            .as_array()
            .and_then(|u| u.iter().find(|u| u["name"] == unit.as_str()))
            .map(|u| Counts::of(&u["counters"]));
        ensure!(
            counters == Some(*c),
            "etl status: {unit} {counters:?}, the API says {c:?}"
        );
    }

    // `etl top --once`: a frame with every unit's line.
    let frame = controller_etl(env, controller, &["top", "--once"])?;
    for (unit, c) in &after {
        let line = frame
            .lines()
            .find(|l| l.split_whitespace().next() == Some(unit.as_str()))
            .with_context(|| format!("etl top shows no line for {unit}:\n{frame}"))?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        ensure!(
            fields.get(2) == Some(&c.records_in.to_string().as_str()),
            "etl top: {unit}'s line {line:?}, the API says {} in",
            c.records_in
        );
    }

    // The dead letter: listed with its reason, then replayed into parse alone.
    let list = etl_json(
        env,
        controller,
        &[
            "dlq",
            "list",
            "--pipeline",
            PIPELINE,
            "--step",
            "parse",
            "--format",
            "json",
        ],
    )?;
    let letter = list
        .as_array()
        .and_then(|l| l.iter().find(|d| d["preview"] == bad))
        .with_context(|| format!("the dead letter {bad:?} is not listed: {list}"))?
        .clone();
    ensure!(
        letter["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not JSON"))
            && letter["class"] == "payload_is_not_json",
        "the dead letter's reason: {letter}"
    );
    let id = letter["id"]
        .as_str()
        .context("a dead letter's id")?
        .to_owned();
    let replay_out = controller_etl(
        env,
        controller,
        &["dlq", "replay", &id, "--actor", "e2e@ci"],
    )?;
    eprintln!(
        "e2e: {environment}: etl dlq replay {id}: {}",
        replay_out.trim()
    );
    let mut again = after.clone();
    let parse = again.get_mut("parse").context("parse's counts")?;
    parse.records_in += 1;
    parse.dead += 1;
    let replayed = wait_counts(controller, &again, Duration::from_secs(30)).await?;
    let dead_letter = sinks
        .dlq
        .next(Duration::from_secs(10))
        .await?
        .context("the replayed record was not dead-lettered again")?;
    let (_, payload) = crate::common::dead_letter(&dead_letter)?;
    ensure!(
        payload == bad,
        "the replayed record was dead-lettered as {payload:?}"
    );
    let audit: Value = serde_json::from_slice(&controller.get("/api/v1/audit")?)?;
    let recorded = audit.as_array().is_some_and(|a| {
        a.iter().any(|r| {
            r["actor"] == "e2e@ci"
                && r["replayed"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|x| x[0] == id.as_str()))
        })
    });
    ensure!(recorded, "the replay of {id} is not in the audit: {audit}");
    eprintln!("e2e: {environment}: dead letter {id} replayed into parse, counted and audited");
    sinks.drain().await?;

    if let Some(screenshot) = browser {
        dashboard(env, controller, &replayed, screenshot)?;
    }
    Ok(())
}

/// `node tests/browser/dashboard.mjs`: Chromium logs in with the token, opens the pipeline and
/// finds `counts` on its graph's nodes and in its table, takes a screenshot to `screenshot`, and
/// replays a dead letter with the page's button.
fn dashboard(
    env: &Env,
    controller: &Controller,
    counts: &BTreeMap<String, Counts>,
    screenshot: &Path,
) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("tests/browser/dashboard.mjs");
    let token_file = controller
        .token_file
        .as_ref()
        .context("the dashboard test needs a controller with a token")?;
    let token = std::fs::read_to_string(token_file)?;
    let nodes: serde_json::Map<String, Value> = counts
        .iter()
        .map(|(unit, c)| {
            (
                unit.clone(),
                json!({"in": c.records_in, "out": c.out, "filtered": c.filtered, "dead": c.dead, "failed": c.failed}),
            )
        })
        .collect();
    let expect = json!({
        "pipeline": PIPELINE,
        "nodes": nodes,
        "edges": [["ingest", "parse"], ["parse", "enrich"], ["enrich", "threshold-alert"],
                  ["threshold-alert", "alerts"], ["parse", "archive"]],
    });
    let expect_path = env.work.join("dashboard-expect.json");
    std::fs::write(&expect_path, serde_json::to_vec_pretty(&expect)?)?;
    let t = Instant::now();
    let out = Command::new("node")
        .arg(&script)
        .args(["--url", &controller.url, "--token", token.trim()])
        .arg("--expect")
        .arg(&expect_path)
        .arg("--screenshot")
        .arg(screenshot)
        .arg("--replay")
        .output()
        .context("running node tests/browser/dashboard.mjs")?;
    ensure!(
        out.status.success(),
        "the dashboard in Chromium ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "e2e: the dashboard in Chromium shows every node's counts ({:.1?}); screenshot {}",
        t.elapsed(),
        screenshot.display()
    );
    Ok(())
}

/// `etl <args> --controller <url> [--token-file F]`: its stdout.
fn controller_etl(env: &Env, controller: &Controller, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(&env.etl)
        .args(args)
        .args(["--controller", &controller.url])
        .args(controller.token_args())
        .output()
        .with_context(|| format!("running etl {}", args.join(" ")))?;
    ensure!(
        out.status.success(),
        "etl {} ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// [`controller_etl`], its output read as JSON.
fn etl_json(env: &Env, controller: &Controller, args: &[&str]) -> anyhow::Result<Value> {
    let out = controller_etl(env, controller, args)?;
    serde_json::from_str(&out).with_context(|| format!("etl {}: {out}", args.join(" ")))
}

/// The flags that give staging's controller its data plane (where the steps report and
/// dead-letter: staging's own NATS) and a token for its API and dashboard (in a file under the
/// run's work directory).
pub fn staging_flags(env: &Env) -> anyhow::Result<Vec<String>> {
    let token = env.work.join("staging-controller.token");
    std::fs::write(&token, "e2e-dashboard-token\n")?;
    Ok(vec![
        "--data-nats-url".to_owned(),
        env.staging_nats_url.clone(),
        "--token-file".to_owned(),
        token.display().to_string(),
    ])
}

/// Where the dashboard's screenshot goes: `$ETL_E2E_DASHBOARD_PNG`, else the run's work
/// directory.
pub fn screenshot_path(env: &Env) -> std::path::PathBuf {
    std::env::var_os("ETL_E2E_DASHBOARD_PNG")
        .map_or_else(|| env.work.join("dashboard.png"), std::path::PathBuf::from)
}
