//! `etl-controller` in the end-to-end tests (issue 18): one process per environment, started and
//! stopped by pid, asked through `etl status` as a CI gate would, and watched from NATS so that
//! the test sees every write it makes to the lattice.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures::StreamExt as _;
use serde_json::Value;

use crate::common::{Env, Sinks, Source, first_record, path_str};

/// The shared application of the example's HTTP listener (wasmCloud 1.x).
pub const LISTENER: &str = "iot-sensors-http-listener";
/// How often the test's controllers poll their tag: a CI run wants seconds, not the default.
pub const POLL: &str = "1s";

/// A running `etl-controller` for one environment.
pub struct Controller {
    child: Option<Child>,
    args: Vec<String>,
    exe: PathBuf,
    /// `http://127.0.0.1:<port>`: its status API.
    pub url: String,
    /// Its log (stderr), appended to across restarts.
    pub log: PathBuf,
    /// The environment it applies.
    pub environment: String,
    /// The file of the bearer token its API requires, if any.
    pub token_file: Option<PathBuf>,
    etl: PathBuf,
}

impl Controller {
    /// Starts the controller of `environment` for `generation` (`v1`, `v2`), polling
    /// `<registry>/bundles/iot-sensors/<environment>:<environment>` and verifying with `key`'s
    /// public half; `extra` are further flags.
    pub fn start(
        env: &Env,
        environment: &str,
        key: &Path,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut args = vec![
            "--bundle".to_owned(),
            format!(
                "{}/bundles/iot-sensors/{environment}:{environment}",
                env.registry
            ),
            "--key".to_owned(),
            path_str(&key.with_extension("pub"))?.to_owned(),
            "--generation".to_owned(),
            env.generation.to_owned(),
            "--environment".to_owned(),
            environment.to_owned(),
            "--nats-url".to_owned(),
            env.nats_url.clone(),
            "--poll-interval".to_owned(),
            POLL.to_owned(),
            "--listen".to_owned(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(extra.iter().cloned());
        let token_file = extra
            .iter()
            .position(|a| a == "--token-file")
            .and_then(|i| extra.get(i + 1))
            .map(PathBuf::from);
        let mut controller = Self {
            child: None,
            args,
            exe: env.controller.clone(),
            url: format!("http://127.0.0.1:{port}"),
            log: env.work.join(format!("controller-{environment}.log")),
            environment: environment.to_owned(),
            token_file,
            etl: env.etl.clone(),
        };
        controller.spawn()?;
        Ok(controller)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("{}", self.log.display()))?;
        let child = Command::new(&self.exe)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        eprintln!(
            "e2e: etl-controller for {} started (pid {}), status at {}",
            self.environment,
            child.id(),
            self.url
        );
        self.child = Some(child);
        Ok(())
    }

    /// Stops it with SIGTERM (SIGKILL after 10 s) and waits for it.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // Our own child, not reaped yet: its pid is still its own.
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("kill -TERM")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait()? {
                eprintln!(
                    "e2e: etl-controller for {} stopped ({status})",
                    self.environment
                );
                return Ok(());
            }
            if Instant::now() > deadline {
                child.kill()?;
                child.wait()?;
                bail!(
                    "etl-controller for {} did not stop within 10 s of SIGTERM",
                    self.environment
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it and starts it again with the same flags plus `extra`.
    pub fn restart(&mut self, extra: &[String]) -> anyhow::Result<()> {
        self.stop()?;
        self.args.extend(extra.iter().cloned());
        self.spawn()
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Its status document, through `etl status --format json` (which exits 1, the document
    /// printed all the same, while the environment is not ready).
    pub fn status(&self) -> anyhow::Result<Value> {
        let out = Command::new(&self.etl)
            .args(["status", "--controller", &self.url, "--format", "json"])
            .args(self.token_args())
            .output()
            .context("running etl status")?;
        ensure!(
            matches!(out.status.code(), Some(0 | 1)),
            "etl status --controller {} failed ({}): {}{}",
            self.url,
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        let status: Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "etl status --format json ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        ensure!(
            out.status.success() == (status["state"] == "ready"),
            "etl status exited {} for a status in state {}",
            out.status,
            status["state"]
        );
        Ok(status)
    }

    /// `etl status --wait --timeout <timeout>`: a CI gate. Ok once the environment runs the
    /// bundle its tag names now; the elapsed time.
    pub fn wait_ready(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let t = Instant::now();
        let out = Command::new(&self.etl)
            .args([
                "status",
                "--controller",
                &self.url,
                "--wait",
                "--timeout",
                &format!("{}s", timeout.as_secs()),
            ])
            .args(self.token_args())
            .output()
            .context("running etl status --wait")?;
        ensure!(
            out.status.success(),
            "etl status --wait: {} not ready within {timeout:?} ({}):\n{}{}\n---- controller log ----\n{}",
            self.environment,
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.log_tail(40)
        );
        Ok(t.elapsed())
    }

    /// Polls its status until `check` holds (or `timeout`): the last status.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status();
            if let Ok(s) = &status
                && check(s)
            {
                return status;
            }
            if Instant::now() > deadline {
                bail!(
                    "{}'s controller: {what} not seen within {timeout:?}; last status: {}\n---- controller log ----\n{}",
                    self.environment,
                    status.map_or_else(|e| format!("{e:#}"), |s| s.to_string()),
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `--token-file FILE` for `etl status`, `etl dlq` and `etl top`, when it has a token.
    pub fn token_args(&self) -> Vec<String> {
        match &self.token_file {
            Some(f) => vec!["--token-file".to_owned(), f.display().to_string()],
            None => Vec::new(),
        }
    }

    /// `GET <url><path>` with its token: the body.
    pub fn get(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let mut args = vec!["-fsS".to_owned()];
        if let Some(f) = &self.token_file {
            let token = std::fs::read_to_string(f)?;
            args.extend([
                "-H".to_owned(),
                format!("authorization: Bearer {}", token.trim()),
            ]);
        }
        args.push(format!("{}{path}", self.url));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&args)
    }

    /// `GET <url><path>` without credentials: the HTTP status.
    pub fn status_without_token(&self, path: &str) -> anyhow::Result<u16> {
        let out = curl(&[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{}{path}", self.url),
        ])?;
        Ok(String::from_utf8_lossy(&out).trim().parse()?)
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Counts the requests that change a lattice, as they cross NATS: wadm's `model.put`,
/// `deploy`, `undeploy` and `del` (1.x), the hosts' `workload.start` and `stop` (v2).
pub struct Writes {
    count: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<Vec<Write>>>,
    task: tokio::task::JoinHandle<()>,
}

/// One write request as it crossed NATS.
#[derive(Debug, Clone)]
pub struct Write {
    /// Its subject.
    pub subject: String,
    /// Its payload, as JSON (`null` if it was not JSON).
    pub payload: Value,
}

impl Writes {
    /// Starts counting on `nats`.
    pub async fn watch(nats: &async_nats::Client) -> anyhow::Result<Self> {
        let mut wadm = nats.subscribe("wadm.api.*.model.>").await?;
        let mut hosts = nats.subscribe("runtime.host.*.workload.>").await?;
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, s) = (count.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    Some(m) = wadm.next() => m,
                    Some(m) = hosts.next() => m,
                    else => break,
                };
                let subject = message.subject.to_string();
                let write = [".put", ".deploy.", ".undeploy.", ".del.", ".start", ".stop"]
                    .iter()
                    .any(|w| subject.contains(w));
                if write {
                    c.fetch_add(1, Ordering::SeqCst);
                    let payload = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
                    s.lock()
                        .expect("not poisoned")
                        .push(Write { subject, payload });
                }
            }
        });
        Ok(Self { count, seen, task })
    }

    /// How many writes so far, and their subjects.
    pub fn seen(&self) -> (usize, Vec<String>) {
        let seen = self.seen.lock().expect("not poisoned");
        (
            self.count.load(Ordering::SeqCst),
            seen.iter().map(|w| w.subject.clone()).collect(),
        )
    }

    /// The writes from the `from`-th on.
    pub fn since(&self, from: usize) -> Vec<Write> {
        let seen = self.seen.lock().expect("not poisoned");
        seen.get(from..).map(<[Write]>::to_vec).unwrap_or_default()
    }
}

impl Drop for Writes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The status says what `dist` deploys to `environment` runs: ready, the tag's bundle applied
/// and signed with `key`, every pipeline of the plan deployed at the plan's version with the
/// plan's artifacts of the generation under test, and nothing else.
pub fn check_status(
    status: &Value,
    dist: &Path,
    environment: &str,
    key: &Path,
) -> anyhow::Result<()> {
    let plan: Value = serde_json::from_slice(&std::fs::read(dist.join("plan.json"))?)?;
    let generation = status["generation"].as_str().unwrap_or_default();
    let field = if generation == "v2" {
        "artifactV2"
    } else {
        "artifact"
    };
    ensure!(
        status["state"] == "ready" && status["environment"] == environment,
        "{environment} is not ready: {status}"
    );
    ensure!(
        status["applied"]["digest"] == status["tag"]["digest"],
        "{environment} applied {} while its tag names {}",
        status["applied"]["digest"],
        status["tag"]["digest"]
    );
    let signer = key_id(&key.with_extension("pub"))?;
    ensure!(
        status["applied"]["signer"] == signer.as_str(),
        "{environment}'s bundle signer is {}, expected {signer}",
        status["applied"]["signer"]
    );
    let deployments = plan["deployments"][environment]
        .as_object()
        .with_context(|| format!("plan.json deploys nothing to {environment}"))?;
    let pipelines = status["pipelines"].as_array().context("status.pipelines")?;
    // The shared HTTP listener: an application of its own on 1.x, none on v2 (each host listens).
    let listener = pipelines.iter().find(|p| p["application"] == LISTENER);
    if generation == "v2" {
        ensure!(listener.is_none(), "a v2 status with {LISTENER}: {status}");
    } else {
        ensure!(
            listener.is_some_and(|l| l["state"] == "deployed"),
            "{environment}'s {LISTENER} is not deployed: {status}"
        );
    }
    let reported: Vec<&str> = pipelines
        .iter()
        .filter(|p| p["application"] != LISTENER)
        .filter_map(|p| p["name"].as_str())
        .collect();
    let planned: Vec<&str> = deployments.keys().map(String::as_str).collect();
    ensure!(
        reported == planned,
        "{environment}'s status reports pipelines {reported:?}, the plan deploys {planned:?}"
    );
    for (name, app) in deployments {
        let p = pipeline_state(status, name)?;
        ensure!(
            p["state"] == "deployed" && p["version"] == app["version"],
            "{environment}/{name}: {p}, expected deployed at {}",
            app["version"]
        );
        let mut want: Vec<&str> = app["components"]
            .as_array()
            .context("components")?
            .iter()
            .filter_map(|c| c[field]["image"].as_str())
            .collect();
        let mut got: Vec<&str> = p["artifacts"]
            .as_array()
            .context("artifacts")?
            .iter()
            .filter_map(|a| a["image"].as_str())
            .collect();
        want.sort_unstable();
        got.sort_unstable();
        ensure!(
            want == got,
            "{environment}/{name} runs {got:?}, the plan pins {want:?}"
        );
    }
    Ok(())
}

/// The status of `pipeline` in a status document.
pub fn pipeline_state<'a>(status: &'a Value, pipeline: &str) -> anyhow::Result<&'a Value> {
    status["pipelines"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == pipeline))
        .with_context(|| format!("no pipeline {pipeline} in {status}"))
}

/// Every image a status document says runs, sorted.
pub fn artifacts(status: &Value) -> anyhow::Result<Vec<String>> {
    let mut images: Vec<String> = status["pipelines"]
        .as_array()
        .context("status.pipelines")?
        .iter()
        .flat_map(|p| p["artifacts"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["image"].as_str().map(str::to_owned))
        .collect();
    images.sort();
    Ok(images)
}

/// A public key's id as the controller reports its signer: `sha256:` and the first 16 hex
/// digits of the SHA-256 of the key's SPKI DER (the PEM's body).
fn key_id(public_pem: &Path) -> anyhow::Result<String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let pem = std::fs::read_to_string(public_pem)?;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body.trim())?;
    let hex: String = sha2::Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("sha256:{}", &hex[..16]))
}

/// Moves `environment`'s bundle tag to a copy of the bundle whose `file` says `to` where it
/// said `from` — what someone with push rights to the registry, but not the
/// signing key, could do. Uses the registry's HTTP API (curl), as any client would; returns the
/// tampered manifest's digest.
pub fn tamper_bundle(
    registry: &str,
    environment: &str,
    file: &str,
    from: &str,
    to: &str,
) -> anyhow::Result<String> {
    use sha2::Digest as _;
    let (host, prefix) = registry.split_once('/').context("registry host/prefix")?;
    let repository = format!("{prefix}/bundles/iot-sensors/{environment}");
    let base = format!("http://{host}/v2/{repository}");
    let accept = "Accept: application/vnd.oci.image.manifest.v1+json";
    let manifest = curl(&[
        "-fsS",
        "-H",
        accept,
        &format!("{base}/manifests/{environment}"),
    ])?;
    let mut doc: Value = serde_json::from_slice(&manifest)?;
    let layer = doc["layers"]
        .as_array_mut()
        .and_then(|ls| {
            ls.iter_mut()
                .find(|l| l["annotations"]["org.opencontainers.image.title"] == file)
        })
        .with_context(|| format!("the bundle has no {file}"))?;
    let digest = layer["digest"].as_str().context("layer digest")?.to_owned();
    let text = String::from_utf8(curl(&["-fsS", &format!("{base}/blobs/{digest}")])?)?;
    ensure!(text.contains(from), "{file} has no {from:?}");
    let changed = text.replacen(from, to, 1).into_bytes();
    let hex = |bytes: &[u8]| -> String {
        sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let new_digest = format!("sha256:{}", hex(&changed));
    let body = std::env::temp_dir().join(format!("etl-e2e-tampered-{}", std::process::id()));
    std::fs::write(&body, &changed)?;
    // A monolithic upload: POST for a session, PUT the bytes with their digest.
    let headers = curl(&[
        "-fsS",
        "-o",
        "/dev/null",
        "-D",
        "-",
        "-X",
        "POST",
        &format!("{base}/blobs/uploads/"),
    ])?;
    let headers = String::from_utf8(headers)?;
    let location = headers
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.trim().to_owned())
        })
        .context("no Location for the upload")?;
    let location = if location.starts_with("http") {
        location
    } else {
        format!("http://{host}{location}")
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    curl(&[
        "-fsS",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", body.display()),
        &format!("{location}{separator}digest={new_digest}"),
    ])?;
    std::fs::remove_file(&body)?;
    layer["digest"] = Value::from(new_digest);
    layer["size"] = Value::from(changed.len());
    let tampered = serde_json::to_vec(&doc)?;
    let manifest_path =
        std::env::temp_dir().join(format!("etl-e2e-manifest-{}", std::process::id()));
    std::fs::write(&manifest_path, &tampered)?;
    curl(&[
        "-fsS",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &format!("@{}", manifest_path.display()),
        &format!("{base}/manifests/{environment}"),
    ])?;
    std::fs::remove_file(&manifest_path)?;
    let digest = format!("sha256:{}", hex(&tampered));
    eprintln!("e2e: {host}/{repository}:{environment} moved to the tampered bundle {digest}");
    Ok(digest)
}

fn curl(args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("curl")
        .args(args)
        .output()
        .context("running curl")?;
    ensure!(
        out.status.success(),
        "curl {}: {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

/// A tampered bundle under `controller`'s tag (its `file` saying `to` where it said `from`,
/// [`tamper_bundle`]) is refused while the last good bundle keeps running — a record through
/// `source` to `sinks` — and `etl push --env` of `dist` puts the good one back.
#[allow(clippy::too_many_arguments)]
pub async fn tampered_bundle_is_refused(
    env: &Env,
    controller: &Controller,
    dist: &Path,
    file: &str,
    from: &str,
    to: &str,
    source: &Source,
    sinks: &mut Sinks,
) -> anyhow::Result<()> {
    let environment = controller.environment.as_str();
    let good = controller.status()?["applied"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let tampered = tamper_bundle(&env.registry, environment, file, from, to)?;
    let refused = controller
        .wait_for(
            "the tampered bundle refused",
            Duration::from_secs(30),
            |s| s["refused"]["digest"] == tampered.as_str(),
        )
        .await?;
    ensure!(
        refused["applied"]["digest"] == good.as_str(),
        "a refusal changed what {environment} runs: {refused}"
    );
    eprintln!(
        "e2e: the tampered bundle {tampered} refused: {}",
        refused["refused"]["reason"]
    );
    first_record(source, &mut sinks.archive, &sinks.alerts)
        .await
        .with_context(|| format!("{environment} after the refusal"))?;
    sinks.drain().await?;
    // The good bundle back under the tag (a push of the same output moves nothing else).
    env.etl(&["push", path_str(dist)?, "--env", environment])?;
    controller.wait_ready(Duration::from_secs(60))?;
    Ok(())
}

/// Restarting `controller` writes nothing to the lattice ([`Writes`]): it resumes from what
/// runs, and is ready again.
pub async fn a_restart_writes_nothing(
    controller: &mut Controller,
    writes: &Writes,
) -> anyhow::Result<()> {
    let (before, _) = writes.seen();
    controller.restart(&[])?;
    controller.wait_ready(Duration::from_secs(60))?;
    // A few more polls, which must write nothing either.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = writes.since(before);
    ensure!(
        after.is_empty(),
        "the restarted controller wrote: {:?}",
        after.iter().map(|w| &w.subject).collect::<Vec<_>>()
    );
    eprintln!(
        "e2e: {}'s controller restarted: no write to the lattice, ready again",
        controller.environment
    );
    Ok(())
}
