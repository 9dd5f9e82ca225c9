//! Issue 20 on the real lattice: 10,000 numbered readings through staging's pipeline while
//! something goes wrong, and every record counted at every sink it should reach.
//!
//! Three faults, one load each ([`Scenario`]):
//!
//! - **redeploy**: a new version of the pipeline (enrich's config changed: staging's `site`) is
//!   pushed while the readings flow, and the controller rolls it out;
//! - **host kill**: a second staging host (zone=lab) joined before the redeploy, so the new
//!   version's replicas are spread over both; it is killed (SIGKILL) while the readings flow.
//!   On 1.x wadm gives each spread share's `instances` to one host (they are that host's
//!   concurrency, not replicas), so the new version spreads staging over two shares, one per
//!   host (label `e2e-host`). There the kill waits until `alerts` on the other host has a
//!   request in flight through the killed host's http-client provider (the webhook holds the
//!   requests that come over the killed host's connections: [`AlertSink::trap`]), whose answer
//!   never comes: the request must time out and its message come again. The killed host stays
//!   dead until the scenario is counted, then comes back, and the next scenario waits until it
//!   runs its share again;
//! - **transient**: 1 % of the readings come from a `broken-` sensor, which `enrich` answers
//!   `transient` every time: they must end in enrich's dead-letter subject, with the number of
//!   deliveries tried, and nothing else may be held back with them.
//!
//! Each reading is hot (above every threshold), so it reaches both sinks: `archive` (every
//! parsed reading, a NATS subject) and `alerts` (the HTTP webhook), unless it is broken (then
//! archive and the dead-letter subject). The client does what a client of the HTTP source
//! should: a request answered other than 202 is sent again, as it is, until it is accepted.
//! Lost = expected at a sink and never seen; duplicated = seen more than once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use futures::StreamExt as _;
use serde_json::Value;

use crate::common::{
    AlertSink, Env, PIPELINE, Records, STAGING, STAGING_ARCHIVE_SUBJECT, Source, Trap, path_str,
    post_batch, reading, replace_once,
};
use crate::controller::{Controller, pipeline_state};

/// Readings per scenario.
pub const READINGS: usize = 10_000;
/// Readings per request (NDJSON lines).
const BATCH: usize = 100;
/// Wait between two requests, so that a fault lands while readings flow.
const PACE: Duration = Duration::from_millis(100);
/// The request after which the fault happens.
const FAULT_AT: usize = 20;
/// Every how many readings one is from a `broken-` sensor (the transient scenario).
const BROKEN_EVERY: usize = 100;
/// Staging's delivery settings in the e2e copy: shorter waits between deliveries than the
/// defaults (1s, 5s, 30s), so that the transient scenario's last delivery comes within a
/// minute, and more of them (24, each unanswered one costing `ack_wait`): on 1.x every host's
/// built-in messaging-nats provider subscribes to every unit's deliver subject, and drops what
/// it gets for a component it does not run ("linked component not found"), for as long as a
/// host that rejoined starts its providers before its components (about 85 s); 24 × 8 s
/// outlasts that.
pub const DELIVERY: &str = "      delivery:\n        max_deliver: 24\n        ack_wait: 8s\n        \
                            backoff: [200ms, 500ms, 1s, 2s]\n";
/// The number of deliveries a broken reading gets (`max_deliver` above).
pub const MAX_DELIVER: u32 = 24;
/// Every unit's dead-letter subject.
const DEAD_LETTERS: &str = "etl.iot-sensors.sensor-ingest.dlq.>";
/// enrich's dead-letter subject, where the broken readings belong.
const ENRICH_DLQ: &str = "etl.iot-sensors.sensor-ingest.dlq.enrich";
/// staging's data stream (`dist/staging/jetstream/sensor-ingest.json`).
const DATA_STREAM: &str = "ETL_DATA_iot-sensors_sensor-ingest";
/// How long the sinks may stay silent before the scenario counts what it has: longer than the
/// transient scenario holds its messages (every one has a broken reading, whose last delivery
/// comes within a minute, see [`DELIVERY`]).
const SETTLE_QUIET: Duration = Duration::from_secs(150);
/// The longest a scenario waits for its records after the last request.
const SETTLE_MAX: Duration = Duration::from_secs(240);

/// A fault and its load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Redeploy,
    HostKill,
    Transient,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Redeploy => "redeploy",
            Scenario::HostKill => "host kill",
            Scenario::Transient => "1 % transient",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Scenario::Redeploy => "rd",
            Scenario::HostKill => "hk",
            Scenario::Transient => "tr",
        }
    }
}

/// What one sink got of one scenario's readings.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub expected: usize,
    pub distinct: usize,
    pub lost: usize,
    pub duplicates: usize,
}

/// One scenario's figures.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    pub scenario: &'static str,
    pub archive: Tally,
    pub alerts: Tally,
    /// Broken readings in enrich's dead-letter subject (distinct), of those sent.
    pub dead: Tally,
    /// The `etl-deliveries` values of those dead letters, with how many had each.
    pub deliveries: BTreeMap<String, usize>,
    /// Dead letters of this scenario's readings by subject, and (a few of) their reasons.
    pub dead_letters: BTreeMap<String, (usize, BTreeSet<String>)>,
    /// Requests the source did not answer 202 (then sent again).
    pub retried_requests: usize,
    /// The data stream's consumers that still held messages when the counting stopped: where
    /// missing records wait.
    pub backlog: Vec<String>,
    /// 1.x (`delivery.nats_msg_id`): the `Nats-Msg-Id` headers of the messages at archive.
    pub msg_ids: Option<MsgIds>,
    /// From the first request to the last record counted.
    pub elapsed: Duration,
}

/// The `Nats-Msg-Id` headers of the messages a sink's subject got.
#[derive(Debug, Default, Clone)]
pub struct MsgIds {
    /// Messages with the header their records and subject call for.
    pub right: usize,
    /// Messages.
    pub all: usize,
    /// The first other header, and what it should have been.
    pub wrong: Option<(String, String)>,
}

impl Figures {
    pub fn line(&self) -> String {
        let t = |t: &Tally| {
            format!(
                "{} of {} (lost {}, duplicated {})",
                t.distinct, t.expected, t.lost, t.duplicates
            )
        };
        format!(
            "{}: archive {}; alerts {}; dead-lettered {} {:?}; dead letters {:?}; {} request(s) \
             sent again; {:.1?}{}",
            self.scenario,
            t(&self.archive),
            t(&self.alerts),
            t(&self.dead),
            self.deliveries,
            self.dead_letters,
            self.retried_requests,
            self.elapsed,
            if self.backlog.is_empty() {
                String::new()
            } else {
                format!("; still in the stream: {}", self.backlog.join(", "))
            }
        ) + &self
            .msg_ids
            .as_ref()
            .map(|MsgIds { right, all, wrong }| {
                format!(
                    "; archive messages with their Nats-Msg-Id: {right} of {all}{}",
                    wrong
                        .as_ref()
                        .map(|(h, e)| format!(" (one had `{h}`, not `{e}`)"))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_default()
    }

    /// No record lost at any sink, and every broken reading dead-lettered after the last
    /// delivery.
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(
            self.archive.lost == 0 && self.alerts.lost == 0 && self.dead.lost == 0,
            "records lost: {}",
            self.line()
        );
        let others: usize = self
            .dead_letters
            .iter()
            .filter(|(subject, _)| subject.as_str() != ENRICH_DLQ)
            .map(|(_, (n, _))| n)
            .sum();
        ensure!(
            others == 0 && self.dead.duplicates == 0,
            "readings dead-lettered that should have been delivered: {}",
            self.line()
        );
        if let Some(MsgIds { right, all, .. }) = &self.msg_ids {
            ensure!(
                right == all && *all > 0,
                "archive messages without the Nats-Msg-Id of their records: {}",
                self.line()
            );
        }
        if self.dead.expected > 0 {
            let want = MAX_DELIVER.to_string();
            ensure!(
                self.deliveries.keys().all(|d| *d == want),
                "dead letters without `etl-deliveries: {want}`: {}",
                self.line()
            );
        }
        Ok(())
    }
}

/// A host the test starts itself, for the host-kill scenario, killed by pid.
pub struct ExtraHost {
    child: Option<Child>,
    pub name: String,
    pub log: PathBuf,
    program: PathBuf,
    args: Vec<String>,
}

impl ExtraHost {
    /// Starts `program args…`, its output into `log`. `name` is what its heartbeats call it: a
    /// 1.x host's label `e2e-host`, a v2 host's `hostname`.
    pub fn start(
        name: &str,
        program: &Path,
        args: &[String],
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let mut host = Self {
            child: None,
            name: name.to_owned(),
            log,
            program: program.to_owned(),
            args: args.to_vec(),
        };
        host.spawn()?;
        Ok(host)
    }

    /// Starts it (again, after [`ExtraHost::kill`]): the killed host's log is kept beside the
    /// new one's (`<log>.killed`).
    fn spawn(&mut self) -> anyhow::Result<()> {
        if self.log.exists() {
            std::fs::rename(&self.log, self.log.with_extension("log.killed"))?;
        }
        let file =
            std::fs::File::create(&self.log).with_context(|| format!("{}", self.log.display()))?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))?;
        eprintln!("e2e: extra host {} started (pid {})", self.name, child.id());
        self.child = Some(child);
        Ok(())
    }

    /// Starts the killed host again, as a machine that comes back after a power loss, and waits
    /// until it has joined.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        ensure!(self.child.is_none(), "extra host {} is running", self.name);
        self.spawn()?;
        self.wait_for_log("host started", Duration::from_secs(60))
            .await
            .map(drop)
    }

    /// Waits until its log has `line`.
    pub async fn wait_for_log(&self, line: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.contains(line) {
                return Ok(text);
            }
            ensure!(
                Instant::now() < deadline,
                "extra host {}: no `{line}` in its log within {timeout:?}:\n{text}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// What it runs by its next heartbeat on the control NATS `nats_url`: a 1.x host's
    /// components and providers (`wasmbus.evt.<lattice>.host_heartbeat`), a v2 host's workloads
    /// (`runtime.operator.heartbeat.<id>`).
    pub async fn running(&self, nats_url: &str, generation: &str) -> anyhow::Result<u64> {
        let nats = async_nats::connect(nats_url).await?;
        let subject = match generation {
            "v1" => "wasmbus.evt.acme-iot-staging.host_heartbeat",
            _ => "runtime.operator.heartbeat.>",
        };
        let mut beats = nats.subscribe(subject).await?;
        let deadline = Instant::now() + Duration::from_secs(40);
        let count = |v: &Value| match &v {
            Value::String(s) => s.parse().unwrap_or(0),
            other => other.as_u64().unwrap_or(0),
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(Some(msg)) = tokio::time::timeout(left, beats.next()).await else {
                anyhow::bail!("no heartbeat of {} within 40 s", self.name);
            };
            let Ok(beat) = serde_json::from_slice::<Value>(&msg.payload) else {
                continue;
            };
            if generation == "v1" {
                let data = &beat["data"];
                if data["labels"]["e2e-host"] == self.name.as_str() {
                    let n = |k: &str| data[k].as_array().map_or(0, |a| a.len() as u64);
                    return Ok(n("components") + n("providers"));
                }
            } else if beat["hostname"] == self.name.as_str() {
                return Ok(count(&beat["workloadCount"]));
            }
        }
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: the host dies mid-work, as a machine that loses power.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("killing the extra host")?;
            child.wait()?;
            eprintln!("e2e: extra host {} killed", self.name);
        }
        Ok(())
    }
}

impl Drop for ExtraHost {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// What the scenarios work on: staging, as the main test left it.
pub struct Staging<'a> {
    pub env: &'a Env,
    pub repo: &'a Path,
    pub key: &'a Path,
    pub controller: &'a Controller,
    pub source: Source,
    pub nats: &'a async_nats::Client,
    pub alerts: &'a Arc<AlertSink>,
}

/// Runs the three scenarios (the host kill needs `extra`, a second staging host that is up),
/// prints their figures, and fails if any lost or misrouted a record. `extra` joins before the
/// redeploy, so the new version is spread over both.
pub async fn check_scenarios(staging: &Staging<'_>, extra: &mut ExtraHost) -> anyhow::Result<()> {
    let figures = [
        run(staging, Scenario::Redeploy, None).await?,
        run(staging, Scenario::HostKill, Some(extra)).await?,
        run(staging, Scenario::Transient, None).await?,
    ];
    // All three first, then what failed: one run gives every figure.
    for f in &figures {
        eprintln!("e2e: delivery: {}", f.line());
    }
    figures.iter().try_for_each(Figures::check)
}

/// The reading `i` of `scenario`: its sensor, and whether it is a broken one.
fn sensor(scenario: Scenario, i: usize) -> (String, bool) {
    let broken = scenario == Scenario::Transient && i % BROKEN_EVERY == BROKEN_EVERY / 2;
    let prefix = if broken { "broken" } else { "dl" };
    (format!("{prefix}-{}-{i:05}", scenario.tag()), broken)
}

/// Sends the scenario's readings with its fault, then counts what reached each sink.
async fn run(
    staging: &Staging<'_>,
    scenario: Scenario,
    mut extra: Option<&mut ExtraHost>,
) -> anyhow::Result<Figures> {
    let mut archive = Records::subscribe(staging.nats, STAGING_ARCHIVE_SUBJECT).await?;
    let mut dlq = Records::subscribe(staging.nats, DEAD_LETTERS).await?;
    staging.nats.flush().await?;
    // What an earlier scenario left at the webhook.
    while staging
        .alerts
        .next(Duration::from_millis(1))
        .await?
        .is_some()
    {}

    // The redeploy's new version is compiled before the load, so that the fault is the push.
    let next = match scenario {
        Scenario::Redeploy => Some(compile_new_version(staging)?),
        _ => None,
    };
    eprintln!(
        "e2e: delivery: {} — sending {READINGS} readings",
        scenario.name()
    );
    let started = Instant::now();
    let mut expected_archive = Vec::new();
    let mut expected_alerts = Vec::new();
    let mut expected_dead = Vec::new();
    let mut retried = 0;
    let mut push: Option<tokio::task::JoinHandle<anyhow::Result<()>>> = None;
    // What the killed host ran: the restarted one runs as much again before the next scenario.
    let mut killed_ran = 0;
    let v1 = staging.env.generation == "v1";
    // 1.x's host kill: the webhook's trap on the host to be killed, until the kill.
    let mut trap: Option<Arc<Trap>> = None;
    for (n, chunk) in (0..READINGS).collect::<Vec<_>>().chunks(BATCH).enumerate() {
        if n == FAULT_AT {
            match scenario {
                Scenario::Redeploy => {
                    let (etl, dist) = (staging.env.etl.clone(), next.clone().expect("compiled"));
                    push = Some(tokio::task::spawn_blocking(move || {
                        push_staging(&etl, &dist)
                    }));
                }
                Scenario::HostKill => {
                    let host = extra.as_deref_mut().expect("an extra host");
                    let env = staging.env;
                    let running = host.running(&env.nats_url, env.generation).await?;
                    killed_ran = running;
                    ensure!(
                        running > 0,
                        "{} runs nothing of staging: killing it would test nothing",
                        host.name
                    );
                    // 1.x: the kill lands while `alerts` on the other host waits for an answer
                    // through this host's http-client provider (wRPC picks any host's): the
                    // webhook holds the requests that come over this host's connections while
                    // the readings go on, and the kill comes once it holds two (see
                    // `kill_when_held`).
                    match (v1, host.pid()) {
                        (true, Some(pid)) => trap = Some(staging.alerts.trap(pid)),
                        _ => kill(host, running, false)?,
                    }
                }
                Scenario::Transient => {}
            }
        }
        let mut lines = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let (id, broken) = sensor(scenario, i);
            lines.push(reading(&id, 95.0, "2026-12-07T12:00:00Z"));
            expected_archive.push(id.clone());
            if broken {
                expected_dead.push(id);
            } else {
                expected_alerts.push(id);
            }
        }
        let mut attempt = 0;
        loop {
            let answer = post_batch(&staging.source, &lines).await;
            match answer {
                Ok((202, _)) => break,
                other => {
                    attempt += 1;
                    retried += 1;
                    ensure!(
                        attempt < 300,
                        "{}: request {n} not accepted after {attempt} attempts: {other:?}",
                        scenario.name()
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        if let Some(t) = &trap {
            let last = n + 1 == READINGS / BATCH;
            if kill_when_held(t, last).await? {
                kill(
                    extra.as_deref_mut().expect("an extra host"),
                    killed_ran,
                    true,
                )?;
                staging.alerts.untrap();
                trap = None;
            }
        }
        tokio::time::sleep(PACE).await;
    }
    if let Some(push) = push {
        push.await??;
    }
    eprintln!(
        "e2e: delivery: {} — {READINGS} readings accepted in {:.1?} ({retried} request(s) sent again)",
        scenario.name(),
        started.elapsed()
    );

    // Counted until every sink has its share, or nothing new came for a while.
    let mut seen_archive: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen_alerts: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen_dead: BTreeMap<String, usize> = BTreeMap::new();
    let mut deliveries: BTreeMap<String, usize> = BTreeMap::new();
    let mut dead_letters: BTreeMap<String, (usize, BTreeSet<String>)> = BTreeMap::new();
    // The record ids each archived reading came with: a duplicate must carry its first's.
    let mut record_ids: BTreeMap<String, BTreeSet<Option<String>>> = BTreeMap::new();
    let tag = format!("-{}-", scenario.tag());
    let settle = Instant::now();
    let mut last_new = Instant::now();
    loop {
        let mut new = false;
        while let Some(env) = archive.next(Duration::from_millis(20)).await? {
            if let Some(id) = sensor_id(&env.payload).filter(|id| id.contains(&tag)) {
                ensure!(
                    env.id.is_some(),
                    "{}: an archived reading without a record id: {id}",
                    scenario.name()
                );
                record_ids.entry(id.clone()).or_default().insert(env.id);
                *seen_archive.entry(id).or_default() += 1;
                new = true;
            }
        }
        while let Some(v) = staging.alerts.next(Duration::from_millis(20)).await? {
            if let Some(id) = v["sensor_id"].as_str().filter(|id| id.contains(&tag)) {
                *seen_alerts.entry(id.to_owned()).or_default() += 1;
                new = true;
            }
        }
        while let Some((subject, env)) = dlq.next_with_subject(Duration::from_millis(20)).await? {
            if let Some(id) = sensor_id(&env.payload).filter(|id| id.contains(&tag)) {
                let reason = env
                    .headers
                    .iter()
                    .rev()
                    .find(|(k, _)| k == "etl-error")
                    .map_or_else(String::new, |(_, v)| v.clone());
                let entry = dead_letters.entry(subject.clone()).or_default();
                entry.0 += 1;
                // A few distinct reasons, their record numbers (`of <n>`) aside.
                let reason = reason
                    .split(" of the message")
                    .next()
                    .unwrap_or("")
                    .to_owned();
                if entry.1.len() < 4 {
                    entry.1.insert(reason);
                }
                new = true;
                if subject != ENRICH_DLQ {
                    continue;
                }
                *seen_dead.entry(id).or_default() += 1;
                let d = env
                    .headers
                    .iter()
                    .rev()
                    .find(|(k, _)| k == "etl-deliveries")
                    .map_or_else(|| "none".to_owned(), |(_, v)| v.clone());
                *deliveries.entry(d).or_default() += 1;
                new = true;
            }
        }
        if new {
            last_new = Instant::now();
        }
        let complete = seen_archive.len() == expected_archive.len()
            && seen_alerts.len() == expected_alerts.len()
            && seen_dead.len() == expected_dead.len();
        if complete && last_new.elapsed() > Duration::from_secs(2) {
            break;
        }
        if last_new.elapsed() > SETTLE_QUIET || settle.elapsed() > SETTLE_MAX {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tally = |expected: &[String], seen: &BTreeMap<String, usize>| Tally {
        expected: expected.len(),
        distinct: expected.iter().filter(|id| seen.contains_key(*id)).count(),
        lost: expected.iter().filter(|id| !seen.contains_key(*id)).count(),
        duplicates: seen.values().map(|n| n - 1).sum(),
    };
    let renamed: Vec<&String> = record_ids
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(sensor, _)| sensor)
        .collect();
    ensure!(
        renamed.is_empty(),
        "{}: duplicates at archive with other record ids than the first: {renamed:?}",
        scenario.name()
    );
    let figures = Figures {
        scenario: scenario.name(),
        archive: tally(&expected_archive, &seen_archive),
        alerts: tally(&expected_alerts, &seen_alerts),
        dead: tally(&expected_dead, &seen_dead),
        deliveries,
        dead_letters,
        retried_requests: retried,
        elapsed: started.elapsed(),
        backlog: backlog(staging.nats).await?,
        // The e2e repo sets `delivery.nats_msg_id` (common.rs), which only 1.x artifacts carry.
        msg_ids: v1.then(|| {
            let (right, wrong) = archive.msg_ids();
            MsgIds {
                right,
                all: archive.messages(),
                wrong: wrong.first().cloned(),
            }
        }),
    };
    eprintln!("e2e: delivery: {}", figures.line());
    if let Some(host) = extra.filter(|_| v1) {
        // 1.x: the killed host comes back once its scenario is counted, so that wadm can fill
        // its spread share (see the module's doc) before the next. Until wadm has started its
        // components, its built-in messaging provider (which wadm starts first) takes deliveries
        // for them and drops them unanswered, each one costing a delivery; so the next scenario
        // starts once it runs what it ran before.
        host.restart().await?;
        let since = Instant::now();
        loop {
            let running = host.running(&staging.env.nats_url, "v1").await?;
            if running >= killed_ran {
                eprintln!(
                    "e2e: delivery: {} runs {running} components and providers again, {:.1?} \
                     after its restart",
                    host.name,
                    since.elapsed()
                );
                break;
            }
            ensure!(
                since.elapsed() < Duration::from_secs(240),
                "{} runs {running} of its {killed_ran} components and providers 240 s after its \
                 restart",
                host.name
            );
        }
    }
    // The rollout (or the recovery from the lost host) is over before the next scenario. Only
    // the pipeline's state counts: on 1.x both staging hosts share the test's loopback address,
    // so the shared HTTP listener wadm also places on the second host cannot bind there (the
    // first host's keeps serving), which the environment's state reports as failed.
    staging
        .controller
        .wait_for(
            &format!("{PIPELINE} deployed"),
            Duration::from_secs(180),
            |status| pipeline_state(status, PIPELINE).is_ok_and(|p| p["state"] == "deployed"),
        )
        .await?;
    Ok(figures)
}

/// Whether the 1.x host kill's moment has come: the webhook holds two requests that came over
/// the connections of the host to be killed. Each host's share runs one instance of `alerts`,
/// which sends one request at a time, so one of the two is the other host's, in flight through
/// this host's http-client provider. After the `last` request of the load, waits for it (60 s).
async fn kill_when_held(trap: &Trap, last: bool) -> anyhow::Result<bool> {
    if last {
        trap.wait_held(2, Duration::from_secs(60))
            .await
            .context("waiting for both hosts' alerts to be mid-request")?;
    }
    Ok(trap.held() >= 2)
}

/// Kills `host`, which runs `running` components, providers or workloads of staging; `trapped`:
/// while both hosts' `alerts` wait for an answer through its http-client provider.
fn kill(host: &mut ExtraHost, running: u64, trapped: bool) -> anyhow::Result<()> {
    eprintln!(
        "e2e: delivery: killing {} mid-stream (it runs {running} components, providers or \
         workloads{})",
        host.name,
        if trapped {
            "; both hosts' alerts wait for an answer through its http-client"
        } else {
            ""
        }
    );
    host.kill()
}

/// The consumers of staging's data stream that hold messages not yet acknowledged, or not yet
/// delivered, with their state: `<consumer>: <n> pending, <n> unacknowledged, <n> redelivered`
/// (and `no subscriber` when no unit listens on its deliver subject).
async fn backlog(nats: &async_nats::Client) -> anyhow::Result<Vec<String>> {
    let js = async_nats::jetstream::new(nats.clone());
    let stream = js.get_stream(DATA_STREAM).await?;
    let mut consumers = stream.consumers();
    let mut held = Vec::new();
    while let Some(info) = consumers.next().await {
        let info = info?;
        if info.num_pending > 0 || info.num_ack_pending > 0 {
            held.push(format!(
                "{}: {} pending, {} unacknowledged, {} redelivered{}",
                info.name,
                info.num_pending,
                info.num_ack_pending,
                info.num_redelivered,
                if info.push_bound {
                    ""
                } else {
                    ", no subscriber"
                }
            ));
        }
    }
    held.sort();
    Ok(held)
}

/// The `sensor_id` of a parsed reading's JSON payload.
fn sensor_id(payload: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    v["sensor_id"].as_str().map(str::to_owned)
}

/// staging's next version: enrich's `site` changed in `environments/staging.yaml`, compiled
/// (signed, not pushed) into a dist of its own. On 1.x it also spreads staging over two shares,
/// one per host (see the module's doc).
fn compile_new_version(staging: &Staging<'_>) -> anyhow::Result<PathBuf> {
    let overrides = staging.repo.join("environments").join("staging.yaml");
    replace_once(
        &overrides,
        "    threshold: \"65\"\n",
        "    threshold: \"65\"\n    site: plant-a-rollout\n",
    )?;
    if staging.env.generation == "v1" {
        replace_once(
            &staging.repo.join("etl.yaml"),
            "        - name: lab\n          requirements: { zone: lab }\n",
            "        - name: lab-1\n          requirements: { zone: lab, e2e-host: staging-1 }\n        \
             - name: lab-2\n          requirements: { zone: lab, e2e-host: staging-2 }\n",
        )?;
    }
    let dist = staging.env.work.join("dist-delivery");
    let sign_key = staging.key.with_extension("key");
    let mut args = vec![
        "compile",
        "--repo",
        path_str(staging.repo)?,
        "--out",
        path_str(&dist)?,
        "--sign-key",
        path_str(&sign_key)?,
    ];
    if let Some(claims) = &staging.env.claims_key {
        args.extend(["--claims-key", path_str(claims)?]);
    }
    staging.env.etl(&args)?;
    Ok(dist)
}

/// `etl push --env staging` of `dist`: the controller rolls the new version out.
fn push_staging(etl: &Path, dist: &Path) -> anyhow::Result<()> {
    let out = Command::new(etl)
        .args(["push", "--env", STAGING, path_str(dist)?])
        .output()
        .context("running etl push")?;
    ensure!(
        out.status.success(),
        "etl push --env staging: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("e2e: delivery: the new staging version is pushed");
    Ok(())
}
