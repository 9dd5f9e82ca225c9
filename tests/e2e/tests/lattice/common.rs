//! What the two generations' tests share: the environment run.sh sets up, `etl`, the example
//! configured for the loopback registry and alert sink, and records in and out.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use async_nats::Subscriber;
use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};

pub const PIPELINE: &str = "sensor-ingest";
pub const ENV: &str = "dev";
/// The environment promoted to, and where it archives (`environments/staging.yaml`).
pub const STAGING: &str = "staging";
pub const STAGING_ARCHIVE_SUBJECT: &str = "iot.staging.sensors.archive.replay";
/// staging's shared HTTP listener on 1.x: dev's holds the default, 0.0.0.0:8000.
pub const STAGING_HTTP_ADDRESS: &str = "0.0.0.0:8001";
/// Where dev archives (`vars.archive_subject`).
pub const ARCHIVE_SUBJECT: &str = "iot.dev.sensors.archive";
/// `parse`'s dead-letter subject: `etl.<project>.<pipeline>.dlq.<step>`.
pub const DLQ_SUBJECT: &str = "etl.iot-sensors.sensor-ingest.dlq.parse";
/// Where `threshold-alert`, the last of the three steps, publishes: what the `alerts` sink
/// reads.
pub const STEPS_OUT_SUBJECT: &str = "etl.iot-sensors.sensor-ingest.out.threshold-alert";
/// The HTTP source's path.
pub const SOURCE_PATH: &str = "/sensors";
/// dev's and staging's sites (`vars.site`), and the suffix the config change adds.
pub const DEV_SITE: &str = "dev-bench";
pub const NEW_DEV_SITE: &str = "dev-bench-line-2";
pub const STAGING_SITE: &str = "plant-a-line-2";

/// Every report of the example's units, whatever the environment.
pub const REPORTS_SUBJECTS: &str = "etl.iot-sensors.sensor-ingest.report.>";
/// How long to wait for records that should not come.
pub const QUIET: Duration = Duration::from_millis(1500);
/// How long a record may take through the pipeline once it is deployed.
pub const ARRIVAL: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The environment run.sh sets up

pub struct Env {
    /// `v1` or `v2`: the wasmCloud generation under test, whose artifacts `etl run` runs.
    pub generation: &'static str,
    pub etl: PathBuf,
    pub nats_url: String,
    /// staging's data plane: the NATS its records travel over (run.sh's second nats-server).
    pub staging_nats_url: String,
    /// The `etl-controller` binary.
    pub controller: PathBuf,
    /// `127.0.0.1:<port>/etl`: the project's `spec.registry` in the e2e copy.
    pub registry: String,
    pub example: PathBuf,
    pub work: PathBuf,
    /// The wascap account seed `etl compile --claims-key` signs the 1.x artifacts with, if any.
    pub claims_key: Option<PathBuf>,
}

impl Env {
    pub fn from_env(generation: &'static str) -> anyhow::Result<Self> {
        let var = |name: &str| {
            std::env::var(name).with_context(|| {
                format!("{name} is not set: run this test through tests/e2e/run.sh")
            })
        };
        let registry_addr = var("ETL_E2E_REGISTRY")?;
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/iot-sensors");
        Ok(Self {
            generation,
            etl: PathBuf::from(var("ETL_E2E_ETL")?),
            nats_url: var("ETL_E2E_NATS_URL")?,
            staging_nats_url: var("ETL_E2E_STAGING_NATS_URL")?,
            controller: PathBuf::from(var("ETL_E2E_CONTROLLER")?),
            registry: format!("{registry_addr}/etl"),
            example: example.canonicalize().context("examples/iot-sensors")?,
            work: PathBuf::from(var("ETL_E2E_WORK")?),
            claims_key: None,
        })
    }

    /// dev's and staging's `nats: {urls: [<its NATS>]}` in `repo`'s `etl.yaml` (run.sh runs
    /// dev's NATS on 4223, not on the 1.x provider's default, and staging's data plane on a
    /// second one), and staging's HTTP listener on a port of its own: dev and staging run side
    /// by side, each applied by its own controller.
    pub fn configure_nats(&self, repo: &Path) -> anyhow::Result<()> {
        let project = repo.join("etl.yaml");
        for (environment, url, address) in [
            (ENV, &self.nats_url, None),
            (STAGING, &self.staging_nats_url, Some(STAGING_HTTP_ADDRESS)),
        ] {
            let lattice = format!("      lattice: acme-iot-{environment}\n");
            let http = address
                .map(|a| format!("      http: {{ address: \"{a}\" }}\n"))
                .unwrap_or_default();
            replace_once(
                &project,
                &lattice,
                &format!("{lattice}      nats: {{ urls: [\"{url}\"] }}\n{http}"),
            )?;
        }
        Ok(())
    }

    /// staging's `delivery:` settings in `repo`'s `etl.yaml` ([`crate::delivery::DELIVERY`]):
    /// short waits, so that a record that stays `transient` is dead-lettered within seconds; and
    /// the project's `delivery.nats_msg_id` (its 1.x artifacts publish with `Nats-Msg-Id`, which
    /// the test's hosts serve: `src/bin/host.rs` enables `wasmcloud-messaging-v3`).
    pub fn configure_delivery(&self, repo: &Path) -> anyhow::Result<()> {
        let lattice = format!("      lattice: acme-iot-{STAGING}\n");
        let project = repo.join("etl.yaml");
        replace_once(
            &project,
            &lattice,
            &format!("{lattice}{}", crate::delivery::DELIVERY),
        )?;
        replace_once(
            &project,
            "\n  policy:\n",
            "\n  delivery:\n    nats_msg_id: true\n  policy:\n",
        )
    }

    /// Runs etl; its output goes to the test's output, a failure is an error.
    pub fn etl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.etl)
            .args(args)
            .output()
            .with_context(|| format!("running {}", self.etl.display()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        ensure!(
            out.status.success(),
            "etl {} failed ({}):\n{stderr}{stdout}",
            args.join(" "),
            out.status
        );
        eprintln!("e2e: etl {}: ok", args[0]);
        Ok(stdout)
    }

    /// `etl compile --sign-key --push --env dev` of `repo` into `dist`, signed with `key`'s
    /// private half (and the 1.x artifacts' claims with [`Env::claims_key`]).
    pub fn compile_and_push(&self, repo: &Path, dist: &Path, key: &Path) -> anyhow::Result<()> {
        let sign_key = key.with_extension("key");
        let mut args = vec![
            "compile",
            "--repo",
            path_str(repo)?,
            "--out",
            path_str(dist)?,
            "--sign-key",
            path_str(&sign_key)?,
            "--push",
            "--env",
            ENV,
        ];
        if let Some(claims) = &self.claims_key {
            args.extend(["--claims-key", path_str(claims)?]);
        }
        self.etl(&args).map(drop)
    }

    /// `etl promote --from dev --to staging` of `dist`, the signatures checked with `key`'s
    /// public half.
    pub fn promote(&self, dist: &Path, key: &Path) -> anyhow::Result<()> {
        self.etl(&[
            "promote",
            "--from",
            ENV,
            "--to",
            STAGING,
            "--key",
            path_str(&key.with_extension("pub"))?,
            path_str(dist)?,
        ])
        .map(drop)
    }

    /// `etl verify` of an artifact in the registry, with `key`'s public half.
    pub fn verify(&self, reference: &str, key: &Path) -> anyhow::Result<()> {
        self.etl(&[
            "verify",
            "--key",
            path_str(&key.with_extension("pub"))?,
            reference,
        ])
        .map(drop)
    }

    /// `etl run` of the same payloads, in-process, from the same compile output and the
    /// artifacts of the generation under test: what each input should deliver.
    pub fn etl_run(
        &self,
        environment: &str,
        repo: &Path,
        dist: &Path,
        payloads: &[String],
    ) -> anyhow::Result<Vec<Outcome>> {
        let input = self.work.join("run-input.jsonl");
        let lines: Vec<String> = payloads
            .iter()
            .map(|p| json!({"payload": p}).to_string())
            .collect();
        std::fs::write(&input, lines.join("\n") + "\n")?;
        let out = Command::new(&self.etl)
            // The webhook's token: `etl run` needs a value for every secret (its sink requests
            // are captured, and it prints the header as `<secret KEY>`).
            .env("ETL_SECRET_ALERTS_WEBHOOK_TOKEN", "Bearer e2e-etl-run")
            .args([
                "run",
                PIPELINE,
                "--env",
                environment,
                "--format",
                "jsonl",
                "--generation",
                self.generation,
                "--repo",
            ])
            .arg(repo)
            .arg("--dist")
            .arg(dist)
            .arg("--input")
            .arg(&input)
            .output()?;
        ensure!(
            out.status.success(),
            "etl run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut outcomes: Vec<Outcome> = payloads.iter().map(|_| Outcome::default()).collect();
        for line in String::from_utf8(out.stdout)?.lines() {
            let v: Value =
                serde_json::from_str(line).with_context(|| format!("etl run: {line}"))?;
            let idx = |v: &Value| v["input"].as_u64().map(|i| i as usize);
            match v["type"].as_str() {
                Some("sink") => {
                    let i = idx(&v).context("sink line without input")?;
                    let payload = json_payload(&v["record"])?;
                    match v["sink"].as_str() {
                        Some("archive") => outcomes[i].archive.push(payload),
                        Some("alerts") => {
                            outcomes[i].alerts.push(payload);
                            outcomes[i].alert_types.push(
                                v["record"]["headers"]["content-type"]
                                    .as_str()
                                    .map(str::to_owned),
                            );
                        }
                        other => bail!("etl run: unknown sink {other:?}"),
                    }
                }
                Some("dead-letter") => {
                    let i = idx(&v).context("dead-letter line without input")?;
                    ensure!(
                        v["step"] == "parse",
                        "etl run: dead letter of {}",
                        v["step"]
                    );
                    outcomes[i].dead.push((
                        v["error"].as_str().unwrap_or_default().to_owned(),
                        v["record"]["payload"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    ));
                }
                Some("failure") => bail!("etl run: a failure: {line}"),
                _ => {}
            }
        }
        Ok(outcomes)
    }
}

pub fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

fn json_payload(record: &Value) -> anyhow::Result<Value> {
    let text = record["payload"]
        .as_str()
        .with_context(|| format!("record without a UTF-8 payload: {record}"))?;
    serde_json::from_str(text).with_context(|| format!("payload is not JSON: {text}"))
}

// ---------------------------------------------------------------------------------------------
// The example, configured for this lattice

pub fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

pub fn replace_once(file: &Path, from: &str, to: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)?;
    ensure!(
        text.matches(from).count() == 1,
        "{}: expected `{from}` exactly once",
        file.display()
    );
    std::fs::write(file, text.replacen(from, to, 1))?;
    Ok(())
}

/// The deployment-specific changes, and only those: the registry the hosts pull from and the URL
/// of dev's and staging's alerting webhook (the test's HTTP server).
pub fn configure_example(repo: &Path, registry: &str, alerts: SocketAddr) -> anyhow::Result<()> {
    let project = repo.join("etl.yaml");
    replace_once(
        &project,
        "registry: registry.acme.example/etl",
        &format!("registry: {registry}"),
    )?;
    replace_once(
        &project,
        "alert_url: http://alerts.dev.acme.example/hook",
        &format!("alert_url: http://{alerts}/hook"),
    )?;
    replace_once(
        &project,
        "alert_url: https://alerts.staging.acme.example/hook",
        &format!("alert_url: http://{alerts}/hook"),
    )?;
    Ok(())
}

/// The file of the example's pipeline in `repo`.
pub fn pipeline_file(repo: &Path) -> PathBuf {
    repo.join("pipelines").join(format!("{PIPELINE}.yaml"))
}

/// The config change both tests deploy as a new version: enrich's site.
pub fn change_site(repo: &Path) -> anyhow::Result<()> {
    replace_once(
        &pipeline_file(repo),
        "site: \"{{ vars.site }}\"",
        "site: \"{{ vars.site }}-line-2\"",
    )
}

/// `(metadata.name, path, text)` of every manifest in `dir`.
pub fn manifests(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf, String)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        let doc: serde_yaml::Value = serde_yaml::from_str(&text)?;
        let name = doc["metadata"]["name"]
            .as_str()
            .context("manifest without metadata.name")?
            .to_owned();
        out.push((name, path, text));
    }
    out.sort();
    Ok(out)
}

/// The `image:` lines of a manifest, in order.
pub fn images(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.trim_start().starts_with("image:"))
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Records in and out

/// Serves HTTP/1 on a fresh loopback port until the test ends, each request answered by
/// `handle`; the port.
async fn serve<F, R>(handle: F) -> anyhow::Result<SocketAddr>
where
    F: Fn(SocketAddr, hyper::Request<hyper::body::Incoming>) -> R + Clone + Send + Sync + 'static,
    R: Future<Output = hyper::Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let answer = handle(peer, req);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn respond(status: u16, body: impl Into<Bytes>) -> hyper::Response<Full<Bytes>> {
    let mut res = hyper::Response::new(Full::new(body.into()));
    *res.status_mut() = hyper::StatusCode::from_u16(status).expect("a valid status");
    res
}

/// The `alerts` sink's webhook: every POST body, in arrival order. Once told which
/// `Authorization` value to require ([`AlertSink::require_authorization`]), it answers any
/// other request 401 (counted, its body dropped), as the example's webhook behind a bearer
/// token would.
pub struct AlertSink {
    pub addr: SocketAddr,
    inbox: Mutex<Inbox>,
    webhook: Arc<Webhook>,
}

/// The POSTs the webhook took, and the records of the last ones not handed out yet.
struct Inbox {
    rx: mpsc::UnboundedReceiver<Received>,
    /// Each record's JSON, its request's `content-type`, and when the request arrived.
    pending: VecDeque<(Value, Option<String>, Instant)>,
}

/// What the webhook's connections share.
#[derive(Default)]
struct Webhook {
    requests: AtomicUsize,
    unauthorized: AtomicUsize,
    /// The `authorization` header of every request that had one.
    authorizations: std::sync::Mutex<Vec<String>>,
    /// The `Authorization` value a request must carry; any (or none) while `None`.
    required: std::sync::Mutex<Option<String>>,
    /// Holds the requests of one process unanswered while set ([`AlertSink::trap`]).
    trap: std::sync::Mutex<Option<Arc<Trap>>>,
}

/// Requests that come over a connection of one process, held unanswered (their bodies unread)
/// until [`Trap::release`]: requests in flight on that process, for as long as the test needs.
pub struct Trap {
    pid: u32,
    /// The webhook's own address: the far end of every connection it takes.
    webhook: SocketAddr,
    held: AtomicUsize,
    /// The requests taken while trapped, by the process their connection is of (or why that is
    /// not known): what a trap that holds nothing reports.
    seen: std::sync::Mutex<std::collections::BTreeMap<String, usize>>,
    changed: tokio::sync::Notify,
    released: tokio::sync::watch::Sender<bool>,
}

impl Trap {
    /// Holds the request that came over the connection from `peer` if that connection is the
    /// trapped process's, until [`Trap::release`].
    async fn hold(&self, peer: SocketAddr) {
        let owner = connection_owner(peer, self.webhook);
        let theirs = owner == Ok(self.pid);
        {
            let mut seen = self.seen.lock().unwrap();
            let key = match owner {
                Ok(pid) => format!("process {pid}"),
                Err(why) => why,
            };
            if seen.len() < 8 || seen.contains_key(&key) {
                *seen.entry(key).or_default() += 1;
            }
        }
        if !theirs {
            return;
        }
        let mut released = self.released.subscribe();
        self.held.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        let _ = released.wait_for(|r| *r).await;
    }

    /// Waits until `count` requests are held; `Err` after `within`.
    pub async fn wait_held(&self, count: usize, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let changed = self.changed.notified();
            let held = self.held.load(Ordering::SeqCst);
            if held >= count {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            ensure!(
                !left.is_zero(),
                "the webhook held {held} of {count} requests from process {} within {within:?} \
                 (the requests it took meanwhile, by connection: {:?})",
                self.pid,
                self.seen.lock().unwrap()
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), changed).await;
        }
    }

    /// How many requests it holds (or held, once released).
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Lets every held request (and any later one) go on.
    pub fn release(&self) {
        self.released.send_replace(true);
    }
}

/// The process whose socket is the TCP connection from `peer` to `local` (loopback IPv4): the
/// socket's inode, from `/proc/net/tcp`, among the processes' descriptors. `Err` says what was
/// not found.
fn connection_owner(peer: SocketAddr, local: SocketAddr) -> Result<u32, String> {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => String::new(),
    };
    let (from, to) = (hex(peer), hex(local));
    let table =
        std::fs::read_to_string("/proc/net/tcp").map_err(|e| format!("/proc/net/tcp: {e}"))?;
    let inode = table
        .lines()
        .skip(1)
        .find_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.len() > 9 && cols[1] == from && cols[2] == to).then(|| cols[9].to_owned())
        })
        .ok_or_else(|| format!("{peer}: not in /proc/net/tcp"))?;
    let socket = format!("socket:[{inode}]");
    let procs = std::fs::read_dir("/proc").map_err(|e| format!("/proc: {e}"))?;
    procs
        .flatten()
        .filter_map(|p| p.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.flatten().any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|target| target.as_os_str() == socket.as_str())
                })
            })
        })
        .ok_or_else(|| format!("{peer}: {socket} is no process's"))
}

#[derive(Debug)]
struct Received {
    method: String,
    path: String,
    content_type: Option<String>,
    body: Bytes,
    /// When the whole body had arrived.
    at: Instant,
}

impl AlertSink {
    pub async fn start() -> anyhow::Result<Arc<Self>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let webhook: Arc<Webhook> = Arc::default();
        let shared = Arc::clone(&webhook);
        let addr = serve(move |peer, req: hyper::Request<hyper::body::Incoming>| {
            let (tx, webhook) = (tx.clone(), Arc::clone(&shared));
            async move {
                webhook.requests.fetch_add(1, Ordering::SeqCst);
                let trap = webhook.trap.lock().unwrap().clone();
                if let Some(trap) = trap {
                    trap.hold(peer).await;
                }
                let authorization = req
                    .headers()
                    .get("authorization")
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                if let Some(v) = &authorization {
                    webhook.authorizations.lock().unwrap().push(v.clone());
                }
                let required = webhook.required.lock().unwrap().clone();
                if required.is_some() && authorization != required {
                    webhook.unauthorized.fetch_add(1, Ordering::SeqCst);
                    return respond(401, "no or wrong Authorization");
                }
                let method = req.method().to_string();
                let path = req.uri().path().to_owned();
                let content_type = req
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                // A request whose body never fully arrived (its sender died mid-request, as a
                // killed host's HTTP client does) delivered nothing: not a record, and no 2xx.
                let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
                    return respond(400, "the request body did not arrive whole");
                };
                let _ = tx.send(Received {
                    method,
                    path,
                    content_type,
                    body,
                    at: Instant::now(),
                });
                respond(200, Bytes::new())
            }
        })
        .await?;
        Ok(Arc::new(Self {
            addr,
            inbox: Mutex::new(Inbox {
                rx,
                pending: VecDeque::new(),
            }),
            webhook,
        }))
    }

    /// From now on, a request whose `Authorization` header is not exactly `value` (e.g.
    /// `Bearer <token>`, the secret's value as the `authorization` setting sends it) is answered
    /// 401; `None`: every request is taken.
    pub fn require_authorization(&self, value: Option<&str>) {
        *self.webhook.required.lock().unwrap() = value.map(str::to_owned);
    }

    /// From now on, holds every request that comes over a connection of process `pid`
    /// unanswered until the trap is released ([`Trap::release`], which also ends it).
    pub fn trap(&self, pid: u32) -> Arc<Trap> {
        let trap = Arc::new(Trap {
            pid,
            webhook: self.addr,
            held: AtomicUsize::new(0),
            seen: Default::default(),
            changed: tokio::sync::Notify::new(),
            released: tokio::sync::watch::channel(false).0,
        });
        *self.webhook.trap.lock().unwrap() = Some(Arc::clone(&trap));
        trap
    }

    /// Ends the trap: held requests go on ([`Trap::release`]), later ones are not held.
    pub fn untrap(&self) {
        if let Some(trap) = self.webhook.trap.lock().unwrap().take() {
            trap.release();
        }
    }

    /// How many requests were answered 401.
    pub fn unauthorized(&self) -> usize {
        self.webhook.unauthorized.load(Ordering::SeqCst)
    }

    /// How many requests arrived, and the `authorization` headers among them.
    pub fn authorizations(&self) -> (usize, Vec<String>) {
        (
            self.webhook.requests.load(Ordering::SeqCst),
            self.webhook.authorizations.lock().unwrap().clone(),
        )
    }

    /// The next record's JSON; `None` when none came within `wait`.
    pub async fn next(&self, wait: Duration) -> anyhow::Result<Option<Value>> {
        Ok(self.next_timed(wait).await?.map(|(v, _, _)| v))
    }

    /// The next record's JSON and the `content-type` of the POST that carried it.
    async fn next_with_type(
        &self,
        wait: Duration,
    ) -> anyhow::Result<Option<(Value, Option<String>)>> {
        Ok(self.next_timed(wait).await?.map(|(v, t, _)| (v, t)))
    }

    /// The next record, its POST's `content-type` and when that POST arrived. A POST is one
    /// record (its body JSON) unless it is `application/x-ndjson`: then each non-blank line is
    /// one (out-http's `etl.out.batch: ndjson`). Cancel-safe.
    async fn next_timed(
        &self,
        wait: Duration,
    ) -> anyhow::Result<Option<(Value, Option<String>, Instant)>> {
        let deadline = Instant::now() + wait;
        let mut inbox = self.inbox.lock().await;
        loop {
            if let Some(record) = inbox.pending.pop_front() {
                return Ok(Some(record));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let r = match tokio::time::timeout(left, inbox.rx.recv()).await {
                Ok(Some(r)) => r,
                Ok(None) => bail!("the alerts sink stopped"),
                Err(_) => return Ok(None),
            };
            ensure!(
                r.method == "POST" && r.path == "/hook",
                "alerts: {} {}, expected POST /hook",
                r.method,
                r.path
            );
            let json = |text: &[u8]| -> anyhow::Result<Value> {
                serde_json::from_slice(text).with_context(|| {
                    format!(
                        "alerts: a record is not JSON: {:?}",
                        String::from_utf8_lossy(text)
                    )
                })
            };
            let ndjson = r
                .content_type
                .as_deref()
                .is_some_and(|t| t.split(';').next() == Some(NDJSON));
            if ndjson {
                for line in r.body.split(|b| *b == b'\n') {
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        let v = json(line)?;
                        inbox.pending.push_back((v, r.content_type.clone(), r.at));
                    }
                }
            } else {
                let v = json(&r.body)?;
                inbox.pending.push_back((v, r.content_type, r.at));
            }
        }
    }
}

/// A loopback API for a step that calls out (the egress test): `GET /sites/<sensor>` answers
/// 200 with `{"sensor": <sensor>, "site": <site_of(sensor)>}` as JSON, anything else 404;
/// every request is counted and kept.
pub struct LoopbackApi {
    pub addr: SocketAddr,
    requests: Arc<std::sync::Mutex<Vec<ApiRequest>>>,
}

/// One request the [`LoopbackApi`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    /// The `Host` header (what a v2 `allowedHosts` entry or a 1.x link names).
    pub host: Option<String>,
    pub status: u16,
}

impl LoopbackApi {
    /// The route the API serves a sensor's site on.
    pub const SITES: &str = "/sites/";

    pub async fn start() -> anyhow::Result<Arc<Self>> {
        let requests: Arc<std::sync::Mutex<Vec<ApiRequest>>> = Arc::default();
        let log = Arc::clone(&requests);
        let addr = serve(move |_, req: hyper::Request<hyper::body::Incoming>| {
            let log = Arc::clone(&log);
            async move {
                let (method, path) = (req.method().to_string(), req.uri().path().to_owned());
                let sensor = path
                    .strip_prefix(Self::SITES)
                    .filter(|s| !s.is_empty() && !s.contains('/') && method == "GET");
                let (status, body) = match sensor {
                    Some(sensor) => (
                        200,
                        json!({"sensor": sensor, "site": Self::site_of(sensor)}).to_string(),
                    ),
                    None => (404, String::new()),
                };
                log.lock().unwrap().push(ApiRequest {
                    host: req
                        .headers()
                        .get("host")
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
                    method,
                    path,
                    status,
                });
                let mut res = respond(status, body);
                if status == 200 {
                    res.headers_mut().insert(
                        "content-type",
                        hyper::header::HeaderValue::from_static("application/json"),
                    );
                }
                res
            }
        })
        .await?;
        Ok(Arc::new(Self { addr, requests }))
    }

    /// `http://127.0.0.1:<port>`: what a grant's `hosts` and a step's config name.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The site the API answers for `sensor`.
    pub fn site_of(sensor: &str) -> String {
        format!("site-of-{sensor}")
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<ApiRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// The `content-type` of an NDJSON batch: one record a line.
pub const NDJSON: &str = "application/x-ndjson";

/// The records published to a NATS subject, one at a time, in order. Every step and sink
/// publishes one message per destination per batch, an etl envelope of version 2
/// (docs/envelope.md); each is expanded into its records (`etl_envelope::decode_batch`, which
/// reads a version-1 envelope as a batch of one).
pub struct Records {
    sub: Subscriber,
    subject: String,
    /// Records of the messages received and not handed out yet, each with when its message
    /// arrived.
    pending: VecDeque<(Instant, String, etl_envelope::Envelope)>,
    /// Messages received so far.
    messages: usize,
    /// Messages whose `Nats-Msg-Id` header named their records as documented (docs/harness.md:
    /// `<id>@<subject>`, the one record's id or `<first id>+<count>`).
    msg_ids: usize,
    /// Messages whose `Nats-Msg-Id` did not: the header and what it should have been.
    wrong_msg_ids: Vec<(String, String)>,
}

impl Records {
    /// Subscribes to `subject` (the caller flushes the connection before relying on it).
    pub async fn subscribe(nats: &async_nats::Client, subject: &str) -> anyhow::Result<Self> {
        Ok(Self {
            sub: nats.subscribe(subject.to_owned()).await?,
            subject: subject.to_owned(),
            pending: VecDeque::new(),
            messages: 0,
            msg_ids: 0,
            wrong_msg_ids: Vec::new(),
        })
    }

    /// Of the messages so far: how many carried the `Nats-Msg-Id` their records call for, and
    /// those whose header differed from it (the header, and the id expected).
    pub fn msg_ids(&self) -> (usize, &[(String, String)]) {
        (self.msg_ids, &self.wrong_msg_ids)
    }

    /// How many messages (batches) have arrived so far.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// The next record and when the message that carried it arrived; `None` when no message
    /// came within `wait`. Cancel-safe: a message is expanded as soon as it is taken.
    pub async fn next_timed(
        &mut self,
        wait: Duration,
    ) -> anyhow::Result<Option<(Instant, etl_envelope::Envelope)>> {
        Ok(self
            .next_full(wait)
            .await?
            .map(|(at, _, envelope)| (at, envelope)))
    }

    /// The next record and the subject its message came on (a wildcard subscription's).
    pub async fn next_with_subject(
        &mut self,
        wait: Duration,
    ) -> anyhow::Result<Option<(String, etl_envelope::Envelope)>> {
        Ok(self
            .next_full(wait)
            .await?
            .map(|(_, subject, envelope)| (subject, envelope)))
    }

    /// The next record, when its message arrived and the subject it came on.
    async fn next_full(
        &mut self,
        wait: Duration,
    ) -> anyhow::Result<Option<(Instant, String, etl_envelope::Envelope)>> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(record) = self.pending.pop_front() {
                return Ok(Some(record));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = match tokio::time::timeout(left, self.sub.next()).await {
                Ok(Some(msg)) => msg,
                Ok(None) => bail!("{}: subscription closed", self.subject),
                Err(_) => return Ok(None),
            };
            let at = Instant::now();
            let batch = etl_envelope::decode_batch(&msg.payload)
                .map_err(|e| anyhow::anyhow!("{}: not an etl envelope: {e}", msg.subject))?;
            self.messages += 1;
            // Compared as text: async-nats parses a received `Nats-Msg-Id` into its standard
            // header name, which `get` with a `&str` (a custom name) does not find.
            let msg_id = msg.headers.as_ref().and_then(|h| {
                h.iter()
                    .find(|(name, _)| {
                        AsRef::<str>::as_ref(name).eq_ignore_ascii_case("Nats-Msg-Id")
                    })
                    .and_then(|(_, values)| values.first())
            });
            if let Some(header) = msg_id {
                let ids: Vec<Option<&str>> =
                    batch.iter().map(|b| b.envelope.id.as_deref()).collect();
                let expected = match ids.as_slice() {
                    [Some(one)] => format!("{one}@{}", msg.subject),
                    [Some(first), rest @ ..] if rest.iter().all(Option::is_some) => {
                        format!("{first}+{}@{}", ids.len(), msg.subject)
                    }
                    _ => String::new(),
                };
                if header.as_str() == expected {
                    self.msg_ids += 1;
                } else {
                    self.wrong_msg_ids.push((header.to_string(), expected));
                }
            }
            let subject = msg.subject.to_string();
            self.pending
                .extend(batch.into_iter().map(|b| (at, subject.clone(), b.envelope)));
        }
    }

    /// The next record.
    pub async fn next(&mut self, wait: Duration) -> anyhow::Result<Option<etl_envelope::Envelope>> {
        Ok(self.next_timed(wait).await?.map(|(_, e)| e))
    }

    /// The next record's payload, which must be JSON.
    pub async fn next_json(&mut self, wait: Duration) -> anyhow::Result<Option<Value>> {
        let Some(env) = self.next(wait).await? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(&env.payload).with_context(
            || format!("{}: payload is not JSON", self.subject),
        )?))
    }

    /// Everything that has arrived, dropped.
    pub async fn clear(&mut self) -> anyhow::Result<()> {
        while self.next(Duration::from_millis(1)).await?.is_some() {}
        Ok(())
    }
}

pub async fn next_json(records: &mut Records, wait: Duration) -> anyhow::Result<Option<Value>> {
    records.next_json(wait).await
}

/// Where records go in: the HTTP listener's address and the `Host` header the source is
/// routed by.
#[derive(Debug, Clone)]
pub struct Source {
    pub addr: SocketAddr,
    pub host: String,
    /// The path records are POSTed to.
    pub path: String,
}

impl Source {
    /// The example's source reached by its address (wasmCloud 1.x's shared http-server in path
    /// mode).
    pub fn at(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: addr.to_string(),
            path: SOURCE_PATH.to_owned(),
        }
    }
}

/// One POST of one record to the HTTP source, as `application/json`: the status.
pub async fn post(source: &Source, body: &str) -> anyhow::Result<u16> {
    Ok(post_body(source, "application/json", body.to_owned())
        .await?
        .0)
}

/// One POST of `records` to the HTTP source as an NDJSON batch (`application/x-ndjson`, one
/// record a line; in-http makes each line a record): the status and the answer's body.
pub async fn post_batch(source: &Source, records: &[String]) -> anyhow::Result<(u16, String)> {
    let mut body = records.join("\n");
    body.push('\n');
    post_body(source, NDJSON, body).await
}

/// One POST to the HTTP source: the status and the answer's body.
async fn post_body(
    source: &Source,
    content_type: &str,
    body: String,
) -> anyhow::Result<(u16, String)> {
    let stream = TcpStream::connect(source.addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::post(&source.path)
        .header("host", &source.host)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))?;
    let res = sender.send_request(req).await?;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub status: Option<u16>,
    /// The source's answer (in-http: a line per rejected record).
    pub answer: String,
    pub archive: Vec<Value>,
    /// How many messages carried the records at `archive`.
    pub archive_messages: usize,
    pub alerts: Vec<Value>,
    /// The `content-type` of each POST to `alerts`.
    pub alert_types: Vec<Option<String>>,
    /// (error, payload) of each dead letter.
    pub dead: Vec<(String, String)>,
    /// How many messages carried the dead letters.
    pub dead_messages: usize,
}

impl Outcome {
    /// `outcomes` one after the other: what their inputs deliver, in order, as one batch (the
    /// oracle's view: `etl run` takes one record at a time).
    pub fn concat(outcomes: Vec<Outcome>) -> Outcome {
        let mut all = Outcome::default();
        for o in outcomes {
            all.archive.extend(o.archive);
            all.alerts.extend(o.alerts);
            all.alert_types.extend(o.alert_types);
            all.dead.extend(o.dead);
        }
        all
    }

    /// The same records as `got` at every sink and dead-letter subject (`self` from `etl run`).
    pub fn check_same(&self, got: &Outcome) -> anyhow::Result<()> {
        ensure!(
            self.archive == got.archive,
            "archive: etl run {:?}, lattice {:?}",
            self.archive,
            got.archive
        );
        ensure!(
            self.alerts == got.alerts,
            "alerts: etl run {:?}, lattice {:?}",
            self.alerts,
            got.alerts
        );
        ensure!(
            self.alert_types == got.alert_types,
            "alerts content-type: etl run {:?}, lattice {:?}",
            self.alert_types,
            got.alert_types
        );
        ensure!(
            self.dead == got.dead,
            "dead letters: etl run {:?}, lattice {:?}",
            self.dead,
            got.dead
        );
        Ok(())
    }
}

pub struct Expect {
    pub status: u16,
    pub archive: Vec<Value>,
    pub alerts: Vec<Value>,
    /// Each dead letter, in order: a substring of its error, and its payload.
    pub dead: Vec<(String, String)>,
}

impl Expect {
    /// What `cases`' inputs deliver POSTed as one batch: every case's records, in the cases'
    /// order; HTTP 400 if any is dead-lettered (in-http answers a line per rejected record),
    /// else 202.
    pub fn batch(cases: &[(String, Expect)]) -> Expect {
        let mut all = Expect {
            status: 202,
            archive: Vec::new(),
            alerts: Vec::new(),
            dead: Vec::new(),
        };
        for (_, want) in cases {
            all.archive.extend(want.archive.iter().cloned());
            all.alerts.extend(want.alerts.iter().cloned());
            all.dead.extend(want.dead.iter().cloned());
        }
        if !all.dead.is_empty() {
            all.status = 400;
        }
        all
    }

    pub fn check(&self, got: &Outcome) -> anyhow::Result<()> {
        ensure!(
            got.status == Some(self.status),
            "HTTP status {:?} ({:?}), expected {}",
            got.status,
            got.answer,
            self.status
        );
        ensure!(
            got.archive == self.archive,
            "archive got {:?}, expected {:?}",
            got.archive,
            self.archive
        );
        ensure!(
            got.alerts == self.alerts,
            "alerts got {:?}, expected {:?}",
            got.alerts,
            self.alerts
        );
        let dead_ok = got.dead.len() == self.dead.len()
            && got.dead.iter().zip(&self.dead).all(
                |((got_error, got_payload), (error, payload))| {
                    got_error.contains(error.as_str()) && got_payload == payload
                },
            );
        ensure!(
            dead_ok,
            "dead letters got {:?}, expected {:?}",
            got.dead,
            self.dead
        );
        // A step publishes one message per destination per batch it received.
        for (what, records, messages) in [
            ("archive", got.archive.len(), got.archive_messages),
            ("dead letters", got.dead.len(), got.dead_messages),
        ] {
            ensure!(
                messages == usize::from(records > 0),
                "{what}: {records} record(s) in {messages} message(s), expected one message"
            );
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        format!(
            "HTTP {}, {} at archive, {} at alerts, {} dead letter(s)",
            self.status,
            self.archive.len(),
            self.alerts.len(),
            self.dead.len()
        )
    }
}

/// POSTs `inputs` (one alone as `application/json`, several as one NDJSON batch) and collects
/// everything that arrives for them: what `want` expects, then anything else within `QUIET`.
pub async fn send_and_collect(
    source: &Source,
    inputs: &[String],
    sinks: &mut Sinks,
    want: &Expect,
) -> anyhow::Result<Outcome> {
    let before = (sinks.archive.messages(), sinks.dlq.messages());
    let (status, answer) = match inputs {
        [one] => post_body(source, "application/json", one.clone()).await?,
        _ => post_batch(source, inputs).await?,
    };
    let mut got = Outcome {
        status: Some(status),
        answer,
        ..Outcome::default()
    };
    let deadline = Instant::now() + ARRIVAL;
    let remaining = || deadline.saturating_duration_since(Instant::now());
    while got.archive.len() < want.archive.len() {
        match sinks.archive.next_json(remaining()).await? {
            Some(v) => got.archive.push(v),
            None => break,
        }
    }
    while got.alerts.len() < want.alerts.len() {
        match sinks.alerts.next_with_type(remaining()).await? {
            Some((v, content_type)) => {
                got.alerts.push(v);
                got.alert_types.push(content_type);
            }
            None => break,
        }
    }
    while got.dead.len() < want.dead.len() {
        match sinks.dlq.next(remaining()).await? {
            Some(env) => got.dead.push(dead_letter(&env)?),
            None => break,
        }
    }
    // Nothing more may come.
    tokio::time::sleep(QUIET).await;
    let now = Duration::from_millis(1);
    while let Some(v) = sinks.archive.next_json(now).await? {
        got.archive.push(v);
    }
    while let Some((v, content_type)) = sinks.alerts.next_with_type(now).await? {
        got.alerts.push(v);
        got.alert_types.push(content_type);
    }
    while let Some(env) = sinks.dlq.next(now).await? {
        got.dead.push(dead_letter(&env)?);
    }
    got.archive_messages = sinks.archive.messages() - before.0;
    got.dead_messages = sinks.dlq.messages() - before.1;
    Ok(got)
}

/// (the `etl-error` header, the payload) of a dead letter.
pub fn dead_letter(env: &etl_envelope::Envelope) -> anyhow::Result<(String, String)> {
    let error = env
        .headers
        .iter()
        .rev()
        .find(|(k, _)| k == "etl-error")
        .map(|(_, v)| v.clone())
        .with_context(|| format!("dead letter without etl-error: {env:?}"))?;
    Ok((error, String::from_utf8(env.payload.clone())?))
}

fn probe(n: usize, temp: f64) -> String {
    json!({"sensor": format!("probe-{n}"), "temp_c": temp, "ts": "2026-11-01T12:00:00Z"})
        .to_string()
}

/// Sends hot probes until one has reached both sinks; returns how many were sent.
pub async fn first_record(
    source: &Source,
    archive: &mut Records,
    alerts: &AlertSink,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut n = 0;
    let (mut at_archive, mut at_alerts) = (false, false);
    while !(at_archive && at_alerts) {
        ensure!(
            Instant::now() < deadline,
            "no record reached both sinks within 120 s of the deployment"
        );
        n += 1;
        match post(source, &probe(n, 99.0)).await {
            Ok(202) => {}
            Ok(status) => eprintln!("e2e: probe {n}: HTTP {status}"),
            Err(e) => eprintln!("e2e: probe {n}: {e}"),
        }
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now());
            tokio::select! {
                v = archive.next_json(left) => if v?.is_some() { at_archive = true },
                v = alerts.next(left) => if v?.is_some() { at_alerts = true },
            }
        }
    }
    Ok(n)
}

/// Sends probes until `alerts` shows a record for which `done` holds (its JSON, and the
/// `content-type` of the POST that carried it); returns how many were sent.
pub async fn wait_for_alert(
    source: &Source,
    archive: &mut Records,
    alerts: &AlertSink,
    what: &str,
    done: impl Fn(&Value, Option<&str>) -> bool,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut n = 0;
    loop {
        ensure!(Instant::now() < deadline, "{what}: not within 120 s");
        n += 1;
        let _ = post(source, &probe(n, 99.0)).await;
        let until = Instant::now() + Duration::from_millis(500);
        while let Some((v, content_type)) = alerts
            .next_with_type(until.saturating_duration_since(Instant::now()))
            .await?
        {
            if done(&v, content_type.as_deref()) {
                return Ok(n);
            }
        }
        archive.clear().await?;
    }
}

/// Sends probes until `alerts` shows `site`: the new config has reached `enrich`.
pub async fn wait_for_site(
    source: &Source,
    archive: &mut Records,
    alerts: &AlertSink,
    site: &str,
) -> anyhow::Result<usize> {
    wait_for_alert(
        source,
        archive,
        alerts,
        "enrich picking up its new config",
        |v, _| v["site"] == site,
    )
    .await
}

/// What a load measured at one point: records/s from the first request until the last record
/// arrived there, and each record's latency from the start of the POST that carried it to its
/// arrival (when the test took the message, or the webhook the request): median and 99th
/// percentile.
#[derive(Debug, Clone, Copy, Default)]
pub struct Arrivals {
    pub rate: f64,
    pub all_in: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

impl std::fmt::Display for Arrivals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0} records/s (all in after {:.2?}; latency p50 {:.1?}, p99 {:.1?})",
            self.rate, self.all_in, self.p50, self.p99
        )
    }
}

/// What a load measured at each point.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rates {
    /// `parse` → `archive` (NATS sink).
    pub archive: Arrivals,
    /// `parse` → `enrich` → `threshold-alert`: its output subject.
    pub three_steps: Arrivals,
    /// … → `alerts` (HTTP sink).
    pub alerts: Arrivals,
}

/// A load: `n` hot readings (70–99 °C: above dev's and staging's thresholds), sensor ids
/// `<label>-<i>`, POSTed `batch` at a time (NDJSON; one alone as JSON when `batch` is 1),
/// `in_flight` requests at a time; `site` is what enrich adds.
#[derive(Debug, Clone, Copy)]
pub struct Load<'a> {
    pub label: &'a str,
    pub n: usize,
    pub in_flight: usize,
    pub batch: usize,
    pub site: &'a str,
}

impl Load<'_> {
    /// `ETL_E2E_LOAD_RECORDS` (default 500), `ETL_E2E_LOAD_IN_FLIGHT` (default 8) and
    /// `ETL_E2E_LOAD_BATCH` (default 100).
    pub fn from_env<'a>(label: &'a str, site: &'a str) -> Load<'a> {
        let var = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        Load {
            label,
            n: var("ETL_E2E_LOAD_RECORDS", 500),
            in_flight: var("ETL_E2E_LOAD_IN_FLIGHT", 8),
            batch: var("ETL_E2E_LOAD_BATCH", 100),
            site,
        }
    }
}

/// The reading `i` of a load labelled `label`.
fn load_reading(label: &str, i: usize) -> String {
    json!({
        "sensor": format!("{label}-{i}"),
        "temp_c": 70.0 + (i % 30) as f64,
        "ts": "2026-11-01T12:00:00Z",
    })
    .to_string()
}

/// Sends `load`. Each record must arrive exactly once at `archive`, at `threshold-alert`'s
/// output subject (the three steps) and at `alerts`: none lost, none duplicated.
pub async fn throughput(
    nats: &async_nats::Client,
    source: &Source,
    archive: &mut Records,
    alerts: &Arc<AlertSink>,
    load: &Load<'_>,
) -> anyhow::Result<Rates> {
    let Load {
        label,
        n,
        in_flight,
        batch,
        site,
    } = *load;
    let mut steps = Records::subscribe(nats, STEPS_OUT_SUBJECT).await?;
    nats.flush().await?;
    let batches = n.div_ceil(batch);
    // When the POST of each batch started.
    let starts = Arc::new(std::sync::Mutex::new(vec![None::<Instant>; batches]));
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let (next, starts) = (Arc::clone(&next), Arc::clone(&starts));
        let (source, label) = (source.clone(), label.to_owned());
        senders.spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::SeqCst);
                if b >= batches {
                    return Ok::<_, anyhow::Error>(());
                }
                let records: Vec<String> = (b * batch..n.min((b + 1) * batch))
                    .map(|i| load_reading(&label, i))
                    .collect();
                starts.lock().unwrap()[b] = Some(Instant::now());
                let (status, answer) = match records.as_slice() {
                    [one] => post_body(&source, "application/json", one.clone()).await?,
                    _ => post_batch(&source, &records).await?,
                };
                ensure!(status == 202, "load batch {b}: HTTP {status}: {answer}");
            }
        });
    }
    // When each record arrived at each point.
    let mut arrived: [Vec<Option<Instant>>; 3] = Default::default();
    for a in &mut arrived {
        *a = vec![None; n];
    }
    let mut count = [0usize; 3];
    let names = ["archive", "threshold-alert's output", "alerts"];
    let limit = Duration::from_secs(120.max(n as u64 / 4));
    let deadline = Instant::now() + limit;
    // A record lost stops the arrivals: give up after `STALL` without one, not at `limit`.
    const STALL: Duration = Duration::from_secs(60);
    let mut progress = Instant::now();
    let prefix = format!("{label}-");
    while count.iter().any(|c| *c < n) {
        let left = deadline
            .min(progress + STALL)
            .saturating_duration_since(Instant::now());
        ensure!(
            !left.is_zero(),
            "load: after {:.1?} ({:?} without a record), of {n}: {} at archive, {} at \
             threshold-alert's output, {} at alerts",
            start.elapsed(),
            progress.elapsed(),
            count[0],
            count[1],
            count[2]
        );
        let (at, got) = tokio::select! {
            v = archive.next_timed(left) => (0, v?.map(|(t, e)| (t, serde_json::from_slice(&e.payload)))),
            v = steps.next_timed(left) => (1, v?.map(|(t, e)| (t, serde_json::from_slice(&e.payload)))),
            v = alerts.next_timed(left) => (2, v?.map(|(v, _, t)| (t, Ok(v)))),
        };
        let Some((t, v)) = got else { continue };
        let v: Value = v.with_context(|| format!("{}: a payload is not JSON", names[at]))?;
        if at > 0 {
            ensure!(
                v["alert"] == true && v["site"] == site,
                "{}: {v}",
                names[at]
            );
        }
        let id = v["sensor_id"].as_str().unwrap_or_default();
        let i = id
            .strip_prefix(&prefix)
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|i| *i < n)
            .with_context(|| format!("load: unexpected sensor id {id:?} at {}", names[at]))?;
        ensure!(arrived[at][i].is_none(), "{}: {id} twice", names[at]);
        arrived[at][i] = Some(t);
        count[at] += 1;
        progress = Instant::now();
    }
    while let Some(r) = senders.join_next().await {
        r??;
    }
    // None more: a record handled twice would come after the last first arrival.
    tokio::time::sleep(QUIET).await;
    let now = Duration::from_millis(1);
    if let Some(e) = archive.next(now).await? {
        bail!("load: archive got a record after all {n}: {e:?}");
    }
    if let Some(e) = steps.next(now).await? {
        bail!("load: threshold-alert's output got a record after all {n}: {e:?}");
    }
    if let Some(v) = alerts.next(now).await? {
        bail!("load: alerts got a record after all {n}: {v}");
    }
    let starts = starts.lock().unwrap().clone();
    let point = |at: usize| -> Arrivals {
        let times: Vec<Instant> = arrived[at].iter().flatten().copied().collect();
        let last = times.iter().max().copied().unwrap_or(start);
        let mut latencies: Vec<Duration> = arrived[at]
            .iter()
            .enumerate()
            .filter_map(|(i, t)| Some(t.as_ref()?.saturating_duration_since(starts[i / batch]?)))
            .collect();
        latencies.sort();
        let pct = |p: usize| {
            latencies
                .get((latencies.len().saturating_sub(1)) * p / 100)
                .copied()
                .unwrap_or_default()
        };
        let all_in = last.saturating_duration_since(start);
        Arrivals {
            rate: n as f64 / all_in.as_secs_f64(),
            all_in,
            p50: pct(50),
            p99: pct(99),
        }
    };
    let rates = Rates {
        archive: point(0),
        three_steps: point(1),
        alerts: point(2),
    };
    eprintln!(
        "e2e: load {label}: {n} hot readings in {batches} POST(s) of {batch} ({in_flight} in \
         flight), each exactly once at every sink: archive {}; parse → enrich → threshold-alert \
         {}; alerts (HTTP) {}",
        rates.archive, rates.three_steps, rates.alerts,
    );
    Ok(rates)
}

// ---------------------------------------------------------------------------------------------
// The readings both tests send

/// A reading as the gateways POST it.
pub fn reading(sensor: &str, temp: f64, ts: &str) -> String {
    json!({"sensor": sensor, "temp_c": temp, "ts": ts}).to_string()
}

/// A reading as `parse` archives it.
fn parsed(sensor: &str, temp: f64, ts: &str) -> Value {
    json!({"sensor_id": sensor, "celsius": temp, "ts": ts})
}

/// A reading as `alerts` receives it.
fn alert(sensor: &str, temp: f64, ts: &str, site: &str) -> Value {
    json!({"sensor_id": sensor, "celsius": temp, "ts": ts, "site": site, "alert": true})
}

/// dev's readings and what each delivers (the example's fixtures): a fan-out
/// (`tests/fan-out.yaml`; dev's threshold is 50, so 82.5 alerts), a filtered reading (below
/// the threshold, archived only: `tests/filtered.yaml`) and a dead letter (not JSON:
/// `tests/bad-record.yaml`). `site` is enrich's.
pub fn dev_cases(site: &str) -> Vec<(String, Expect)> {
    let bad = "t-101;82.5;2026-11-01T12:00:00Z";
    vec![
        (
            reading("t-101", 82.5, "2026-11-01T12:00:00Z"),
            Expect {
                status: 202,
                archive: vec![parsed("t-101", 82.5, "2026-11-01T12:00:00Z")],
                alerts: vec![alert("t-101", 82.5, "2026-11-01T12:00:00Z", site)],
                dead: vec![],
            },
        ),
        (
            reading("t-204", 45.5, "2026-11-01T12:00:05Z"),
            Expect {
                status: 202,
                archive: vec![parsed("t-204", 45.5, "2026-11-01T12:00:05Z")],
                alerts: vec![],
                dead: vec![],
            },
        ),
        (
            bad.to_owned(),
            Expect {
                status: 400,
                archive: vec![],
                alerts: vec![],
                dead: vec![("not JSON".to_owned(), bad.to_owned())],
            },
        ),
    ]
}

/// staging's readings: 62 alerts in dev (threshold 50) but is filtered in staging (65); 70.5
/// alerts, with staging's site after the config change.
pub fn staging_cases() -> Vec<(String, Expect)> {
    vec![
        (
            reading("t-301", 62.0, "2026-11-01T12:00:10Z"),
            Expect {
                status: 202,
                archive: vec![parsed("t-301", 62.0, "2026-11-01T12:00:10Z")],
                alerts: vec![],
                dead: vec![],
            },
        ),
        (
            reading("t-302", 70.5, "2026-11-01T12:00:15Z"),
            Expect {
                status: 202,
                archive: vec![parsed("t-302", 70.5, "2026-11-01T12:00:15Z")],
                alerts: vec![alert("t-302", 70.5, "2026-11-01T12:00:15Z", STAGING_SITE)],
                dead: vec![],
            },
        ),
    ]
}

/// Where records are sent and where they arrive.
pub struct Sinks {
    pub archive: Records,
    pub dlq: Records,
    pub alerts: Arc<AlertSink>,
}

impl Sinks {
    /// Subscribes to `archive_subject` and parse's dead-letter subject.
    pub async fn subscribe(
        nats: &async_nats::Client,
        archive_subject: &str,
        alerts: &Arc<AlertSink>,
    ) -> anyhow::Result<Self> {
        let sinks = Self {
            archive: Records::subscribe(nats, archive_subject).await?,
            dlq: Records::subscribe(nats, DLQ_SUBJECT).await?,
            alerts: Arc::clone(alerts),
        };
        nats.flush().await?;
        Ok(sinks)
    }

    /// Everything still in flight (probes that arrived late), dropped.
    pub async fn drain(&mut self) -> anyhow::Result<()> {
        tokio::time::sleep(QUIET).await;
        self.archive.clear().await?;
        self.dlq.clear().await?;
        while self.alerts.next(Duration::from_millis(1)).await?.is_some() {}
        Ok(())
    }
}

/// Steps 4 and 5 of both generations' tests, in `dev`: the exact records of [`dev_cases`] (a
/// fan-out, a filtered reading, a dead letter) against the fixtures' values and `etl run` of the
/// same inputs, each reading in a request of its own and then all in one NDJSON batch; then the
/// load ([`Load::from_env`]: batches of 100), several requests in flight, each hot reading
/// through parse → enrich → threshold-alert → alerts (and parse → archive). Its rates.
pub async fn dev_records_and_load(
    env: &Env,
    nats: &async_nats::Client,
    repo: &Path,
    dist: &Path,
    source: &Source,
    sinks: &mut Sinks,
) -> anyhow::Result<Rates> {
    let cases = dev_cases(DEV_SITE);
    check_cases(env, ENV, repo, dist, source, sinks, &cases).await?;
    check_batch(env, ENV, repo, dist, source, sinks, &cases).await?;
    let alerts = Arc::clone(&sinks.alerts);
    let load = Load::from_env("load", DEV_SITE);
    let rates = throughput(nats, source, &mut sinks.archive, &alerts, &load).await?;
    sinks.drain().await?;
    Ok(rates)
}

/// After `enrich`'s config change reached the lattice: the sinks drained of the probes, the
/// first of dev's cases with the new site, exactly, as `etl run` says.
pub async fn check_new_site(
    env: &Env,
    repo: &Path,
    dist: &Path,
    source: &Source,
    sinks: &mut Sinks,
) -> anyhow::Result<()> {
    sinks.drain().await?;
    let mut one = dev_cases(NEW_DEV_SITE);
    one.truncate(1);
    check_cases(env, ENV, repo, dist, source, sinks, &one).await
}

/// Sends each case's reading in a request of its own (one record per request) and checks the
/// exact records at the sinks and the dead-letter subject: against the case's literal values
/// and against `etl run --env <environment>` of the same readings from the same compile output.
pub async fn check_cases(
    env: &Env,
    environment: &str,
    repo: &Path,
    dist: &Path,
    source: &Source,
    sinks: &mut Sinks,
    cases: &[(String, Expect)],
) -> anyhow::Result<()> {
    let inputs: Vec<String> = cases.iter().map(|(input, _)| input.clone()).collect();
    let oracle = env.etl_run(environment, repo, dist, &inputs)?;
    for (i, ((input, want), oracle)) in cases.iter().zip(&oracle).enumerate() {
        let got = send_and_collect(source, std::slice::from_ref(input), sinks, want).await?;
        want.check(&got)
            .with_context(|| format!("{environment} input {i} {input:?}: the expected values"))?;
        oracle.check_same(&got).with_context(|| {
            format!("{environment} input {i} {input:?}: `etl run --env {environment}`")
        })?;
        eprintln!("e2e: {environment} input {i} ok: {}", want.describe());
    }
    Ok(())
}

/// Sends every case's reading in one NDJSON request (a batch: in-http makes each line a record)
/// and checks the exact records, in the cases' order, at the sinks and the dead-letter subject
/// (each in one message: a step publishes a batch's records together): against the cases'
/// literal values and `etl run` of the same readings one by one; a rejected record is named in
/// the 400 answer by its place in the batch.
pub async fn check_batch(
    env: &Env,
    environment: &str,
    repo: &Path,
    dist: &Path,
    source: &Source,
    sinks: &mut Sinks,
    cases: &[(String, Expect)],
) -> anyhow::Result<()> {
    let inputs: Vec<String> = cases.iter().map(|(input, _)| input.clone()).collect();
    let oracle = Outcome::concat(env.etl_run(environment, repo, dist, &inputs)?);
    let want = Expect::batch(cases);
    let got = send_and_collect(source, &inputs, sinks, &want).await?;
    let what = format!(
        "{environment}: {} readings in one NDJSON request",
        inputs.len()
    );
    want.check(&got)
        .with_context(|| format!("{what}: the expected values"))?;
    oracle
        .check_same(&got)
        .with_context(|| format!("{what}: `etl run --env {environment}`"))?;
    // in-http's answer: a line `record <i> of <n>: <reason>` per rejected record.
    let n = cases.len();
    let rejected: Vec<(String, &str)> = cases
        .iter()
        .enumerate()
        .flat_map(|(i, (_, want))| {
            want.dead
                .iter()
                .map(move |(error, _)| (format!("record {} of {n}: ", i + 1), error.as_str()))
        })
        .collect();
    let lines: Vec<&str> = got.answer.lines().collect();
    ensure!(
        lines.len() == rejected.len()
            && lines
                .iter()
                .zip(&rejected)
                .all(|(line, (place, error))| line.starts_with(place) && line.contains(error)),
        "{what}: the answer {:?} does not name the rejected records {rejected:?}",
        got.answer
    );
    eprintln!(
        "e2e: {what} ok: {}; the answer names the rejected record(s): {:?}",
        want.describe(),
        got.answer.trim_end()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The loopback servers, without a lattice

/// One request to a loopback server: the status and body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: &str,
) -> anyhow::Result<(u16, Bytes)> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let res = sender
        .send_request(req.body(Full::new(Bytes::from(body.to_owned())))?)
        .await?;
    let status = res.status().as_u16();
    Ok((status, res.into_body().collect().await?.to_bytes()))
}

/// The webhook takes any request until told which `Authorization` to require, then answers
/// every other 401 (counted, not delivered); the loopback API answers a sensor's site and
/// counts. Both generations' runs include this (run.sh's filter `common::`).
#[tokio::test]
async fn loopback_servers() -> anyhow::Result<()> {
    let alerts = AlertSink::start().await?;
    let hook = |auth: Option<&'static str>, sensor: &'static str| {
        let body = json!({"sensor_id": sensor}).to_string();
        let addr = alerts.addr;
        async move { request(addr, "POST", "/hook", auth, &body).await }
    };
    assert_eq!(hook(None, "a").await?.0, 200);
    alerts.require_authorization(Some("Bearer t0k3n"));
    assert_eq!(hook(None, "b").await?.0, 401);
    assert_eq!(hook(Some("Bearer wrong"), "c").await?.0, 401);
    assert_eq!(hook(Some("Bearer t0k3n"), "d").await?.0, 200);
    assert_eq!(alerts.unauthorized(), 2);
    let delivered = [alerts.next(QUIET).await?, alerts.next(QUIET).await?];
    assert_eq!(
        delivered.map(|v| v.map(|v| v["sensor_id"].clone())),
        [Some(json!("a")), Some(json!("d"))]
    );
    assert!(alerts.next(Duration::from_millis(50)).await?.is_none());
    let (requests, authorizations) = alerts.authorizations();
    assert_eq!(requests, 4);
    assert_eq!(authorizations, ["Bearer wrong", "Bearer t0k3n"]);

    let api = LoopbackApi::start().await?;
    let (status, body) = request(api.addr, "GET", "/sites/t-101", None, "").await?;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body)?,
        json!({"sensor": "t-101", "site": LoopbackApi::site_of("t-101")})
    );
    assert_eq!(request(api.addr, "GET", "/other", None, "").await?.0, 404);
    assert_eq!(
        request(api.addr, "POST", "/sites/t-101", None, "").await?.0,
        404
    );
    let got = api.requests();
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0],
        ApiRequest {
            method: "GET".into(),
            path: "/sites/t-101".into(),
            host: Some(api.addr.to_string()),
            status: 200,
        }
    );
    assert_eq!(api.url(), format!("http://{}", api.addr));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// More pipelines on the lattice (issue 16)

/// The second pipeline with an `http` source: on wasmCloud 1.x it shares the example's listener,
/// by path; `parse` (the example's component) → the NATS subject [`MAINTENANCE_SUBJECT`].
pub const MAINTENANCE: &str = "maintenance-log";
/// Its source's path.
pub const MAINTENANCE_PATH: &str = "/maintenance";
/// Its sink's subject.
pub const MAINTENANCE_SUBJECT: &str = "iot.maintenance";
/// The sub-pipeline: reads `threshold-alert` of the example by name, looks each alert's site up
/// on the test's API (`lookup`, granted the API's host) and publishes it to [`DIGEST_SUBJECT`];
/// `denied` calls the same API under another host name, which its grant does not name.
pub const DIGEST: &str = "alert-digest";
/// Where the looked-up alerts go.
pub const DIGEST_SUBJECT: &str = "iot.digest";
/// Where `denied`'s records go: its dead letters.
pub const DENIED_DLQ: &str = "etl.iot-sensors.alert-digest.dlq.denied";
/// The pipeline fed by devices over MQTT: an `mqtt` source on [`MQTT_TOPIC`], `parse`, and a
/// `nats` sink on [`MQTT_SUBJECT`].
pub const MQTT: &str = "mqtt-telemetry";
/// Its source's topic filter: every line's telemetry (`plant.*.telemetry` on NATS).
pub const MQTT_TOPIC: &str = "plant/+/telemetry";
/// Its sink's subject.
pub const MQTT_SUBJECT: &str = "iot.mqtt";
/// The pipelines [`add_pipelines`] adds.
pub const ADDED: [&str; 3] = [MAINTENANCE, DIGEST, MQTT];

/// Adds [`MAINTENANCE`], [`DIGEST`] and [`MQTT`] to the example in `repo` (whose registry is
/// set), the lookup component beside its own, calling `api`.
pub fn add_pipelines(repo: &Path, api: &LoopbackApi) -> anyhow::Result<()> {
    let root = repo_root();
    let lookup = root.join("tests/fixtures/egress/components/lookup.wasm");
    std::fs::copy(&lookup, repo.join("components/lookup.wasm"))?;
    let digest_of = |file: &Path, component: &str| -> anyhow::Result<String> {
        let text = std::fs::read_to_string(file)?;
        let at = text
            .find(component)
            .with_context(|| format!("{component} in {}", file.display()))?;
        let line = text[at..]
            .lines()
            .find(|l| l.trim_start().starts_with("digest:"))
            .context("its digest")?;
        Ok(line.trim().trim_start_matches("digest:").trim().to_owned())
    };
    let lookup_digest = digest_of(
        &root.join("tests/fixtures/egress/pipelines/orders.yaml"),
        "components/lookup.wasm",
    )?;
    let parse_digest = digest_of(&pipeline_file(repo), "components/parse.wasm")?;
    std::fs::write(
        repo.join("pipelines").join(format!("{MAINTENANCE}.yaml")),
        format!(
            "apiVersion: etl/v1alpha1\nkind: Pipeline\nmetadata:\n  name: {MAINTENANCE}\nspec:\n  \
             source:\n    name: ingest\n    connector: http\n    with: {{ path: {MAINTENANCE_PATH} }}\n  \
             steps:\n    - name: parse\n      from: [ingest]\n      component: components/parse.wasm\n      \
             digest: {parse_digest}\n  sinks:\n    - name: log\n      from: [parse]\n      \
             connector: nats\n      with: {{ subject: {MAINTENANCE_SUBJECT} }}\n"
        ),
    )?;
    std::fs::write(
        repo.join("pipelines").join(format!("{MQTT}.yaml")),
        format!(
            "apiVersion: etl/v1alpha1\nkind: Pipeline\nmetadata:\n  name: {MQTT}\nspec:\n  \
             source:\n    name: devices\n    connector: mqtt\n    with: {{ topic: \"{MQTT_TOPIC}\" }}\n  \
             steps:\n    - name: parse\n      from: [devices]\n      component: components/parse.wasm\n      \
             digest: {parse_digest}\n  sinks:\n    - name: telemetry\n      from: [parse]\n      \
             connector: nats\n      with: {{ subject: {MQTT_SUBJECT} }}\n"
        ),
    )?;
    let host = api.addr.to_string();
    let step = |name: &str, url_host: &str| {
        format!(
            "    - name: {name}\n      from: [alerts]\n      component: components/lookup.wasm\n      \
             digest: {lookup_digest}\n      config:\n        url: http://{url_host}/sites/plant\n        \
             method: GET\n        field: site_info\n      allow:\n        - wasi:http/types\n        \
             - wasi:io/*\n        - {{ interface: wasi:http/outgoing-handler, hosts: [\"{host}\"] }}\n"
        )
    };
    let other = format!("localhost:{}", api.addr.port());
    std::fs::write(
        repo.join("pipelines").join(format!("{DIGEST}.yaml")),
        format!(
            "apiVersion: etl/v1alpha1\nkind: Pipeline\nmetadata:\n  name: {DIGEST}\nspec:\n  \
             source:\n    name: alerts\n    connector: pipeline\n    \
             with: {{ pipeline: {PIPELINE}, from: threshold-alert }}\n  steps:\n{}{}  sinks:\n    \
             - name: digest\n      from: [lookup]\n      connector: nats\n      \
             with: {{ subject: {DIGEST_SUBJECT} }}\n",
            step("lookup", &host),
            step("denied", &other),
        ),
    )?;
    Ok(())
}

/// The repository's root (the example is `examples/iot-sensors` under it).
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Checks the added pipelines on a lattice that runs them: a reading POSTed to
/// [`MAINTENANCE`] arrives parsed at its sink; readings devices publish over MQTT at QoS 1
/// arrive at [`MQTT`]'s sink, each once ([`check_mqtt`]); an alert of the example reaches
/// [`DIGEST`], whose
/// `lookup` calls `api` (the granted host) and publishes the alert with the answer, while
/// `denied`'s call of the same API under another name never leaves its component: the record is
/// dead-lettered with the reason, and the API sees no request but `lookup`'s.
pub async fn check_more_pipelines(
    nats: &async_nats::Client,
    example: &Source,
    maintenance: &Source,
    api: &LoopbackApi,
) -> anyhow::Result<()> {
    let mut log = Records::subscribe(nats, MAINTENANCE_SUBJECT).await?;
    let mut digest = Records::subscribe(nats, DIGEST_SUBJECT).await?;
    let mut denied = Records::subscribe(nats, DENIED_DLQ).await?;
    nats.flush().await?;

    let t = Instant::now();
    let status = post(maintenance, &reading("m-1", 20.5, "2026-12-07T10:00:00Z")).await?;
    ensure!(status == 202, "{MAINTENANCE}: HTTP {status}");
    let got = next_json(&mut log, ARRIVAL)
        .await?
        .with_context(|| format!("nothing at {MAINTENANCE_SUBJECT}"))?;
    ensure!(got["sensor_id"] == "m-1", "{MAINTENANCE_SUBJECT}: {got}");
    eprintln!(
        "e2e: {MAINTENANCE} (path {}, the same listener as {PIPELINE}): the reading at its sink \
         {:.1?} after the POST",
        maintenance.path,
        t.elapsed()
    );

    check_mqtt(nats).await?;

    let before = api.requests().len();
    let sensor = "digest-1";
    let t = Instant::now();
    let status = post(example, &reading(sensor, 99.0, "2026-12-07T10:00:01Z")).await?;
    ensure!(status == 202, "{PIPELINE}: HTTP {status}");
    let deadline = Instant::now() + ARRIVAL;
    let looked_up = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = next_json(&mut digest, left)
            .await?
            .with_context(|| format!("no alert of {sensor} at {DIGEST_SUBJECT}"))?;
        if got["sensor_id"] == sensor {
            break got;
        }
    };
    ensure!(
        looked_up["site_info"]["site"] == LoopbackApi::site_of("plant")
            && looked_up["alert"] == true,
        "{DIGEST_SUBJECT}: {looked_up}"
    );
    eprintln!(
        "e2e: {DIGEST} (a sub-pipeline of {PIPELINE}'s threshold-alert) looked the alert up on \
         the granted API: at its sink {:.1?} after the POST",
        t.elapsed()
    );
    let deadline = Instant::now() + ARRIVAL;
    let reason = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let env = denied
            .next(left)
            .await?
            .with_context(|| format!("no dead letter of {sensor} at {DENIED_DLQ}"))?;
        let record: Value = serde_json::from_slice(&env.payload)?;
        if record["sensor_id"] == sensor {
            break env
                .headers
                .iter()
                .find(|(k, _)| k == "etl-error")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
        }
    };
    ensure!(
        reason.contains("egress denied"),
        "{DENIED_DLQ}: the reason is {reason:?}"
    );
    let requests = api.requests();
    let new = &requests[before..];
    ensure!(
        !new.is_empty()
            && new
                .iter()
                .all(|r| r.host.as_deref() == Some(api.addr.to_string().as_str())),
        "the API saw requests other than lookup's: {new:?}"
    );
    eprintln!(
        "e2e: denied (not granted localhost:{}) dead-lettered: {reason}; the API saw {} \
         request(s), all to the granted host",
        api.addr.port(),
        new.len()
    );
    Ok(())
}

/// Two devices publish a reading each at QoS 1 to dev's NATS MQTT listener, on two topics that
/// [`MQTT_TOPIC`] matches (paho-mqtt, waiting for each PUBACK), and one on a topic it does not:
/// the two arrive parsed at [`MQTT_SUBJECT`], once each, and nothing else.
async fn check_mqtt(nats: &async_nats::Client) -> anyhow::Result<()> {
    let port = std::env::var("ETL_E2E_MQTT_PORT").context("ETL_E2E_MQTT_PORT: run run.sh")?;
    let python = std::env::var("ETL_E2E_PYTHON").context("ETL_E2E_PYTHON: run run.sh")?;
    let mut telemetry = Records::subscribe(nats, MQTT_SUBJECT).await?;
    nats.flush().await?;
    let publishes = [
        ("plant/line-1/telemetry", "mqtt-1"),
        ("plant/line-2/telemetry", "mqtt-2"),
        ("plant/line-1/status", "mqtt-other"),
    ];
    let messages: Vec<Value> = publishes
        .iter()
        .map(|(topic, sensor)| {
            json!({"topic": topic, "payload": reading(sensor, 21.5, "2026-12-08T10:00:00Z")})
        })
        .collect();
    let t = Instant::now();
    let script = "import json, sys\n\
        import paho.mqtt.client as mqtt\n\
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id='etl-e2e-devices')\n\
        c.connect('127.0.0.1', int(sys.argv[1]))\n\
        c.loop_start()\n\
        for m in json.loads(sys.argv[2]):\n\
        \x20   info = c.publish(m['topic'], m['payload'], qos=1)\n\
        \x20   info.wait_for_publish(10)\n\
        \x20   assert info.is_published(), m['topic']\n\
        c.loop_stop()\n\
        c.disconnect()\n";
    let out = std::process::Command::new(&python)
        .args(["-c", script, &port, &serde_json::to_string(&messages)?])
        .output()
        .with_context(|| format!("running {python}"))?;
    ensure!(
        out.status.success(),
        "the MQTT devices (paho-mqtt): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + ARRIVAL;
    while seen.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = next_json(&mut telemetry, left)
            .await?
            .with_context(|| format!("{MQTT_SUBJECT} has {seen:?} of mqtt-1 and mqtt-2"))?;
        seen.push(got["sensor_id"].as_str().unwrap_or_default().to_owned());
    }
    let arrived = t.elapsed();
    while let Some(more) = next_json(&mut telemetry, QUIET).await? {
        seen.push(more["sensor_id"].as_str().unwrap_or_default().to_owned());
    }
    seen.sort();
    ensure!(
        seen == ["mqtt-1", "mqtt-2"],
        "{MQTT_SUBJECT}: {seen:?}, not mqtt-1 and mqtt-2 once each"
    );
    eprintln!(
        "e2e: {MQTT} (topic {MQTT_TOPIC}): the two readings published at QoS 1 at its sink \
         {arrived:.1?} after the first publish, once each; the one on another topic not"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Lattice figures (docs/PERFORMANCE.md, issue 17): memory always, throughput with
// ETL_E2E_BENCH=1

/// Whether the test measures the lattice figures ([`bench`]): `ETL_E2E_BENCH=1`. CI does not.
pub fn bench_wanted() -> bool {
    std::env::var("ETL_E2E_BENCH").is_ok_and(|v| v == "1")
}

/// A process of this run: one that run.sh started in the test's network namespace (or the test
/// itself), and what it is.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    pub name: String,
}

/// Every process of this run that [`process_name`] knows, in pid order.
pub fn processes() -> Vec<Process> {
    let ours = std::fs::read_link("/proc/self/ns/net").ok();
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        if ours.is_none() || std::fs::read_link(dir.join("ns/net")).ok() != ours {
            continue;
        }
        let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let name = if pid == me {
            Some("test".to_owned())
        } else {
            process_name(&args)
        };
        if let Some(name) = name {
            out.push(Process { pid, name });
        }
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// What run.sh started with `args`: `host <lattice>` (1.x), `wash host <name>` (v2),
/// `nats-server`, `wadm`, `secrets backend`, `registry`; `None` for anything else.
fn process_name(args: &[String]) -> Option<String> {
    let program = args.first()?.rsplit('/').next()?.to_owned();
    let after = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_default()
    };
    match program.as_str() {
        "etl-e2e-host" => Some(format!("host {}", after("--lattice"))),
        "wash" if args.get(1).map(String::as_str) == Some("host") => {
            Some(format!("wash host {}", after("--host-name")))
        }
        "nats-server" => Some(program),
        "etl-e2e-wadm" => Some("wadm".to_owned()),
        "etl-e2e-secrets" => Some("secrets backend".to_owned()),
        "docker-registry" => Some("registry".to_owned()),
        _ => None,
    }
}

/// A `kB` field of `/proc/<pid>/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The resident memory of the wasmCloud hosts of this run (`VmRSS` of their processes, and the
/// peak so far, `VmHWM`), and their sum in bytes.
pub fn hosts_memory() -> (String, u64) {
    let mut total = 0;
    let text: Vec<String> = processes()
        .into_iter()
        .filter(|p| p.name.starts_with("host ") || p.name.starts_with("wash host "))
        .map(|p| {
            let rss = status_bytes(p.pid, "VmRSS:").unwrap_or_default();
            let peak = status_bytes(p.pid, "VmHWM:").unwrap_or_default();
            total += rss;
            format!(
                "{} (pid {}) VmRSS {:.1} MiB (peak {:.1} MiB)",
                p.name,
                p.pid,
                mib(rss),
                mib(peak)
            )
        })
        .collect();
    (text.join("; "), total)
}

/// Prints the hosts' resident memory at `point`, and its change since the last call.
#[derive(Default)]
pub struct Memory {
    last: Option<u64>,
}

impl Memory {
    pub fn new() -> Self {
        Self { last: None }
    }

    pub fn report(&mut self, point: &str) {
        let (text, total) = hosts_memory();
        let change = match self.last {
            Some(last) => format!(" ({:+.1} MiB since the last point)", mib(total) - mib(last)),
            None => String::new(),
        };
        self.last = Some(total);
        eprintln!("e2e: memory, {point}: {text}{change}");
    }
}

/// CPU time (user + system) of each process of this run, at one instant.
struct Cpu {
    at: Instant,
    ticks: Vec<(String, u64)>,
}

impl Cpu {
    fn now() -> Self {
        let ticks = processes()
            .into_iter()
            .filter_map(|p| {
                let stat = std::fs::read_to_string(format!("/proc/{}/stat", p.pid)).ok()?;
                // The fields after the command's `)`: state is field 3, utime 14, stime 15.
                let rest = &stat[stat.rfind(')')? + 2..];
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let utime: u64 = fields.get(11)?.parse().ok()?;
                let stime: u64 = fields.get(12)?.parse().ok()?;
                Some((p.name, utime + stime))
            })
            .collect();
        Cpu {
            at: Instant::now(),
            ticks,
        }
    }

    /// Cores used by each process since `self` over `busy` (the part of the time since `self`
    /// the work took; the rest idle), those above 0.05, busiest first.
    fn since(&self, busy: Duration) -> String {
        let now = Cpu::now();
        let wall = busy.min(now.at.duration_since(self.at)).as_secs_f64();
        let hz = clock_ticks();
        let mut used: Vec<(String, f64)> = now
            .ticks
            .iter()
            .filter_map(|(name, t)| {
                let before = self.ticks.iter().find(|(n, _)| n == name)?.1;
                Some((name.clone(), t.saturating_sub(before) as f64 / hz / wall))
            })
            .filter(|(_, cores)| *cores >= 0.05)
            .collect();
        used.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total: f64 = used.iter().map(|(_, c)| c).sum();
        let each: Vec<String> = used
            .iter()
            .map(|(name, cores)| format!("{name} {cores:.2}"))
            .collect();
        format!("{total:.2} cores in all: {}", each.join(", "))
    }
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 if that fails).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// One load of the bench, with the CPU each process of the run used while it ran.
async fn measured(
    nats: &async_nats::Client,
    source: &Source,
    sinks: &mut Sinks,
    load: &Load<'_>,
) -> anyhow::Result<Rates> {
    let cpu = Cpu::now();
    let alerts = Arc::clone(&sinks.alerts);
    let rates = throughput(nats, source, &mut sinks.archive, &alerts, load).await?;
    // Until the last record arrived (then `throughput` waits `QUIET` for any more).
    let busy = [rates.archive, rates.three_steps, rates.alerts]
        .iter()
        .map(|a| a.all_in)
        .max()
        .unwrap_or_default();
    eprintln!(
        "e2e bench: {} meanwhile (the {busy:.2?} until the last record arrived): {}",
        load.label,
        cpu.since(busy)
    );
    sinks.drain().await?;
    Ok(rates)
}

/// Latency without a queue: `n` hot readings, one POST each, the next once the one before has
/// reached threshold-alert's output and the webhook. (p50, p99) from the start of the POST to
/// each of the two.
async fn unloaded(
    nats: &async_nats::Client,
    source: &Source,
    sinks: &mut Sinks,
    n: usize,
) -> anyhow::Result<[(Duration, Duration); 2]> {
    let mut steps = Records::subscribe(nats, STEPS_OUT_SUBJECT).await?;
    nats.flush().await?;
    let mut latencies: [Vec<Duration>; 2] = Default::default();
    for i in 0..n {
        let sensor = format!("bench-unloaded-{i}");
        let reading = json!({"sensor": sensor, "temp_c": 90.0, "ts": "2026-11-01T12:00:00Z"});
        let start = Instant::now();
        let status = post(source, &reading.to_string()).await?;
        ensure!(status == 202, "{sensor}: HTTP {status}");
        let mut at: [Option<Instant>; 2] = [None; 2];
        let deadline = start + ARRIVAL;
        while at.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            ensure!(
                !left.is_zero(),
                "{sensor}: not at both points within {ARRIVAL:?}"
            );
            let (point, got) = tokio::select! {
                v = steps.next_timed(left) => (0, v?.map(|(t, e)| (t, serde_json::from_slice::<Value>(&e.payload)))),
                v = sinks.alerts.next_timed(left) => (1, v?.map(|(v, _, t)| (t, Ok(v)))),
            };
            if let Some((t, v)) = got
                && v?["sensor_id"] == sensor.as_str()
            {
                at[point] = Some(t);
            }
        }
        for (l, t) in latencies.iter_mut().zip(at) {
            l.push(t.unwrap_or(start).saturating_duration_since(start));
        }
    }
    sinks.drain().await?;
    Ok(latencies.map(|mut l| {
        l.sort();
        let pct = |p: usize| l[(l.len() - 1) * p / 100];
        (pct(50), pct(99))
    }))
}

/// `ETL_E2E_BENCH=1`: the lattice figures of docs/PERFORMANCE.md, in `dev` (one replica of
/// every unit), printed and never asserted. Every load is checked as [`throughput`] checks it
/// (each record exactly once at every point).
///
/// 1. The HTTP sink, one request per record: 2000 hot readings in batches of 100.
/// 2. `set_alerts_batch("ndjson")`: the `alerts` sink given `etl.out.batch: ndjson` (what
///    `with: {batch: ndjson}` compiles to; v1: a named config of the test's own, changed live;
///    v2: its WorkloadDeployment applied again), until a POST of NDJSON arrives.
/// 3. Latency without a queue: 100 readings, each POSTed once the one before has arrived.
/// 4. A sweep of the batch size (records per POST to the source, and so per message between
///    the steps): 1 (one record per POST and per message: the in-run baseline), 10, 100,
///    1000, with 4 POSTs in flight; records/s and latency from the start of a record's POST to
///    its arrival at each point, and the CPU each process used.
/// 5. Reporting's cost: the batch-100 load with `set_alerts_batch("reports-off")` (no unit
///    reports) and `("reports-on")` (as compiled), four times each, off on on off on off off on.
/// 6. `set_alerts_batch("none")`: `alerts` one record per request again, until a POST of one
///    JSON record arrives.
///
/// `ETL_E2E_BENCH_SCALE` (default 1) scales the number of records of every load.
pub async fn bench(
    generation: &str,
    nats: &async_nats::Client,
    source: &Source,
    sinks: &mut Sinks,
    mut set_alerts_batch: impl AsyncFnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let scale: f64 = std::env::var("ETL_E2E_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(1.0);
    let records = |n: usize| ((n as f64 * scale).round() as usize).max(1);
    let mut memory = Memory::new();
    memory.report("before the bench");

    let per_record_load = Load {
        label: "bench-http-per-record",
        n: records(2000),
        in_flight: 4,
        batch: 100,
        site: DEV_SITE,
    };
    let per_record = measured(nats, source, sinks, &per_record_load).await?;

    let t = Instant::now();
    set_alerts_batch("ndjson").await?;
    let probes = wait_for_alert(
        source,
        &mut sinks.archive,
        &sinks.alerts,
        "alerts POSTing NDJSON batches",
        |_, content_type| content_type.is_some_and(|t| t.starts_with(NDJSON)),
    )
    .await?;
    eprintln!(
        "e2e bench: alerts given etl.out.batch: ndjson, POSTing batches {:.1?} later ({probes} \
         probes)",
        t.elapsed()
    );
    sinks.drain().await?;

    let idle = unloaded(nats, source, sinks, records(100).min(100)).await?;
    let mut sweep = Vec::new();
    for (batch, n) in [(1, 2_000), (10, 10_000), (100, 20_000), (1000, 50_000)] {
        let label = format!("bench-batch-{batch}");
        let n = records(n).max(batch);
        let load = Load {
            label: &label,
            n,
            in_flight: 4,
            batch,
            site: DEV_SITE,
        };
        let rates = measured(nats, source, sinks, &load).await?;
        sweep.push((batch, n, rates));
        memory.report(&format!("after the batch size {batch} load"));
    }

    // What reporting costs (issue 19): the batch-100 load with no unit reporting and with every
    // unit reporting (as compiled), four times each, in the order off on on off on off off on
    // (so that a drift over the run weighs on both alike); the reports counted on NATS show
    // which is which.
    let mut reporting = Vec::new();
    let order = [false, true, true, false, true, false, false, true];
    for (round, mode) in order
        .map(|on| if on { "reports-on" } else { "reports-off" })
        .into_iter()
        .enumerate()
    {
        let t = Instant::now();
        set_alerts_batch(mode).await?;
        first_record(source, &mut sinks.archive, &sinks.alerts).await?;
        sinks.drain().await?;
        eprintln!("e2e bench: {mode} in effect {:.1?} later", t.elapsed());
        let reports = Arc::new(AtomicUsize::new(0));
        let mut subscription = nats.subscribe(REPORTS_SUBJECTS).await?;
        let counter = Arc::clone(&reports);
        let counting = tokio::spawn(async move {
            while subscription.next().await.is_some() {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        nats.flush().await?;
        let label = format!("bench-{mode}-{round}");
        let load = Load {
            label: &label,
            n: records(20_000),
            in_flight: 4,
            batch: 100,
            site: DEV_SITE,
        };
        let rates = measured(nats, source, sinks, &load).await?;
        counting.abort();
        let reports = reports.load(Ordering::Relaxed);
        ensure!(
            (mode == "reports-on") == (reports > 0),
            "{mode}: {reports} reports published during the load"
        );
        reporting.push((mode, load.n, reports, rates));
    }

    let t = Instant::now();
    set_alerts_batch("none").await?;
    wait_for_alert(
        source,
        &mut sinks.archive,
        &sinks.alerts,
        "alerts POSTing one record per request again",
        |_, content_type| content_type == Some("application/json"),
    )
    .await?;
    eprintln!(
        "e2e bench: alerts as compiled again (one record per request) {:.1?} later",
        t.elapsed()
    );
    sinks.drain().await?;

    eprintln!("e2e bench ({generation}, dev, one replica of every unit):");
    eprintln!(
        "e2e bench: HTTP sink, one request per record: {:.0} records/s ({} readings in POSTs of \
         100; latency to the webhook p50 {:.1?}, p99 {:.1?})",
        per_record.alerts.rate, per_record_load.n, per_record.alerts.p50, per_record.alerts.p99
    );
    eprintln!(
        "e2e bench: one record at a time (each POSTed once the one before reached both points), \
         source → threshold-alert's output: p50 {:.1?}, p99 {:.1?}; → alerts (NDJSON): p50 {:.1?}, \
         p99 {:.1?}",
        idle[0].0, idle[0].1, idle[1].0, idle[1].1
    );
    eprintln!(
        "e2e bench: batch | records | → threshold-alert's output: records/s, p50, p99 | → \
         archive records/s | → alerts (NDJSON) records/s, p50, p99"
    );
    for (batch, n, r) in &sweep {
        eprintln!(
            "e2e bench: {batch:>5} | {n:>7} | {:>7.0} {:>9.1?} {:>9.1?} | {:>7.0} | {:>7.0} \
             {:>9.1?} {:>9.1?}",
            r.three_steps.rate,
            r.three_steps.p50,
            r.three_steps.p99,
            r.archive.rate,
            r.alerts.rate,
            r.alerts.p50,
            r.alerts.p99,
        );
    }
    eprintln!(
        "e2e bench: reporting | records | reports | → threshold-alert's output records/s | → \
         archive records/s | → alerts (NDJSON) records/s (batches of 100)"
    );
    for (mode, n, reports, r) in &reporting {
        eprintln!(
            "e2e bench: {mode:>11} | {n:>7} | {reports:>7} | {:>7.0} | {:>7.0} | {:>7.0}",
            r.three_steps.rate, r.archive.rate, r.alerts.rate,
        );
    }
    let mean = |mode: &str| {
        let rates: Vec<f64> = reporting
            .iter()
            .filter(|(m, ..)| *m == mode)
            .map(|(.., r)| r.three_steps.rate)
            .collect();
        rates.iter().sum::<f64>() / rates.len().max(1) as f64
    };
    let (off, on) = (mean("reports-off"), mean("reports-on"));
    eprintln!(
        "e2e bench: reporting's cost, → threshold-alert's output: {off:.0} records/s without \
         reports, {on:.0} with ({:+.1} %)",
        (on - off) / off * 100.0
    );
    Ok(())
}
