//! A scripted wadm on a real NATS: answers `wadm.api.<lattice>.model.*` requests in the exact
//! shapes a real wadm 0.21.1 answered them (`tests/fixtures/wadm/`, checked by
//! `fake_wadm_answers_as_wadm_did`), keeping applications and versions as wadm does, and
//! counting every request. The real wadm is the end-to-end test's business (tests/e2e).
//!
//! Deployed applications report `reconciling` in the first list after their deploy (a real
//! wadm lags a little too), then `deployed` — or `failed`, with the message a real wadm gave
//! for images it could not fetch, for an application told to fail.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use serde_json::{Value, json};

/// One application as wadm stores it.
#[derive(Debug, Clone, Default)]
struct Model {
    /// Every version put, oldest first, with its manifest (as JSON).
    versions: Vec<(String, Value)>,
    deployed: Option<String>,
    /// Deployed since the last list.
    fresh: bool,
    /// Undeployed at least once.
    undeployed: bool,
}

/// What the fake holds.
#[derive(Debug, Default)]
pub struct State {
    models: BTreeMap<String, Model>,
    /// Every request, as `<operation>[ <name>]`, in order.
    pub requests: Vec<String>,
    /// Applications to report failed.
    failing: BTreeMap<String, ()>,
}

/// A fake wadm answering on one lattice.
pub struct FakeWadm {
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

const WRITES: [&str; 4] = ["put", "deploy", "undeploy", "del"];

impl FakeWadm {
    /// Answers for `lattice` on the NATS at `url`, starting from `state`.
    pub async fn start(url: &str, lattice: &str, state: Arc<Mutex<State>>) -> FakeWadm {
        let client = async_nats::connect(url).await.unwrap();
        let prefix = format!("wadm.api.{lattice}.model.");
        let mut requests = client.subscribe(format!("{prefix}>")).await.unwrap();
        client.flush().await.unwrap();
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Some(message) = requests.next().await {
                let Some(reply) = message.reply.clone() else {
                    continue;
                };
                let rest = message.subject.trim_start_matches(&prefix).to_owned();
                let (operation, name) = match rest.split_once('.') {
                    Some((operation, name)) => (operation.to_owned(), Some(name.to_owned())),
                    None => (rest, None),
                };
                let yaml = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Content-Type"))
                    .is_some_and(|v| v.as_str() == "application/yaml");
                let body = {
                    let mut state = shared.lock().unwrap();
                    state.answer(&operation, name.as_deref(), &message.payload, yaml)
                };
                let bytes = serde_json::to_vec(&body).unwrap();
                client.publish(reply, bytes.into()).await.unwrap();
            }
        });
        FakeWadm { state, task }
    }

    /// A fake with nothing stored.
    pub async fn empty(url: &str, lattice: &str) -> FakeWadm {
        FakeWadm::start(url, lattice, Arc::default()).await
    }

    /// Stops answering (wadm is down); the state is kept for [`FakeWadm::start`].
    pub fn stop(self) -> Arc<Mutex<State>> {
        self.task.abort();
        self.state.clone()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The requests that change something (put, deploy, undeploy, del).
    pub fn writes(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| WRITES.contains(&r.split(' ').next().unwrap_or_default()))
            .collect()
    }

    /// The applications and their deployed versions.
    pub fn deployed(&self) -> BTreeMap<String, Option<String>> {
        let state = self.state.lock().unwrap();
        state
            .models
            .iter()
            .map(|(name, m)| (name.clone(), m.deployed.clone()))
            .collect()
    }

    /// Makes `app` report failed from now on.
    pub fn fail(&self, app: &str) {
        self.state
            .lock()
            .unwrap()
            .failing
            .insert(app.to_owned(), ());
    }

    /// Puts and deploys `manifest` (YAML) as another party would, without counting it.
    pub fn put_by_hand(&self, manifest: &[u8]) {
        let mut state = self.state.lock().unwrap();
        let put = state.put(manifest);
        let name = put["name"].as_str().unwrap().to_owned();
        let version = put["current_version"].as_str().unwrap().to_owned();
        state.deploy(&name, &version);
    }
}

impl Drop for FakeWadm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A recorded answer's failure status (`failed`, wadm's message about unfetchable images).
fn failed_status() -> Value {
    let recorded: Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/wadm/status-pipeline-failed.json"
        ))
        .unwrap(),
    )
    .unwrap();
    recorded["status"].clone()
}

impl State {
    fn answer(&mut self, operation: &str, name: Option<&str>, payload: &[u8], yaml: bool) -> Value {
        self.requests.push(match name {
            Some(name) => format!("{operation} {name}"),
            None => operation.to_owned(),
        });
        let version = || {
            serde_json::from_slice::<Value>(payload)
                .ok()
                .and_then(|v| v["version"].as_str().map(str::to_owned))
        };
        match (operation, name) {
            ("get", None) => self.list(),
            ("get", Some(name)) => self.get(name, version()),
            ("versions", Some(name)) => self.versions(name),
            ("put", None) if yaml => self.put(payload),
            ("put", None) => {
                json!({"message": "Unable to parse manifest: not JSON", "result": "error"})
            }
            ("deploy", Some(name)) => self.deploy(name, &version().unwrap_or_default()),
            ("undeploy", Some(name)) => self.undeploy(name),
            ("del", Some(name)) => self.delete(name),
            _ => json!({"message": format!("Unsupported subject: {operation}"), "result": "error"}),
        }
    }

    fn list(&mut self) -> Value {
        let failed = failed_status();
        let models: Vec<Value> = self
            .models
            .iter_mut()
            .map(|(name, m)| {
                let (current, manifest) = m.versions.last().cloned().unwrap_or_default();
                let detailed = match (&m.deployed, m.fresh) {
                    (None, _) if m.undeployed => json!({
                        "status": {"type": "undeployed", "message": "Manifest has been undeployed"},
                        "version": "", "components": []
                    }),
                    (None, _) => json!({
                        "status": {"type": "waiting", "message":
                            "Waiting for status: Lattice contains no hosts, deployment not started."},
                        "version": "", "components": []
                    }),
                    (Some(_), true) => json!({
                        "status": {"type": "reconciling", "message": "Scaling component on 1 host(s)"},
                        "version": "", "components": []
                    }),
                    (Some(_), false) if self.failing.contains_key(name) => failed.clone(),
                    (Some(_), false) => json!({
                        "status": {"type": "deployed"}, "scalers": [], "version": "", "components": []
                    }),
                };
                m.fresh = false;
                let summary_status = if m.deployed.is_some() {
                    detailed["status"]["type"].clone()
                } else {
                    json!("undeployed")
                };
                json!({
                    "name": name,
                    "version": current,
                    "description": manifest["metadata"]["annotations"]["description"],
                    "deployed_version": m.deployed,
                    "detailed_status": detailed,
                    "status": summary_status,
                    "status_message": detailed["status"]["message"].as_str().unwrap_or_default(),
                })
            })
            .collect();
        json!({"result": "success", "message": "Successfully fetched list of applications", "models": models})
    }

    fn get(&self, name: &str, version: Option<String>) -> Value {
        let Some(m) = self.models.get(name) else {
            return json!({"result": "notfound", "message": format!("Application with the name {name} not found")});
        };
        match version {
            None => json!({
                "result": "success",
                "message": format!("Successfully fetched application {name}"),
                "manifest": m.versions.last().map(|(_, manifest)| manifest.clone()),
            }),
            Some(version) => match m.versions.iter().find(|(v, _)| *v == version) {
                Some((_, manifest)) => json!({
                    "result": "success",
                    "message": format!("Successfully fetched application {name} {version}"),
                    "manifest": manifest,
                }),
                None => json!({
                    "result": "notfound",
                    "message": format!("Application {name} with version {version} doesn't exist"),
                }),
            },
        }
    }

    fn versions(&self, name: &str) -> Value {
        let Some(m) = self.models.get(name) else {
            return json!({"result": "notfound", "message": format!("Application with the name {name} not found"), "versions": []});
        };
        let versions: Vec<Value> = m
            .versions
            .iter()
            .map(|(v, _)| json!({"version": v, "deployed": m.deployed.as_ref() == Some(v)}))
            .collect();
        json!({
            "result": "success",
            "message": format!("Successfully fetched versions for application {name}"),
            "versions": versions,
        })
    }

    fn put(&mut self, payload: &[u8]) -> Value {
        let text = String::from_utf8_lossy(payload);
        let manifest: Value = match serde_saphyr::from_str(&text) {
            Ok(m) => m,
            Err(e) => {
                return json!({"message": format!("Unable to parse manifest: {e}"), "result": "error"});
            }
        };
        let name = manifest["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let version = manifest["metadata"]["annotations"]["version"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let m = self.models.entry(name.clone()).or_default();
        if m.versions.iter().any(|(v, _)| *v == version) {
            return json!({"message": format!("Manifest version {version} already exists"), "result": "error"});
        }
        let previous = m
            .versions
            .last()
            .map(|(v, _)| v.clone())
            .unwrap_or_default();
        m.versions.push((version.clone(), manifest));
        json!({
            "result": if m.versions.len() == 1 { "created" } else { "newversion" },
            "total_versions": m.versions.len(),
            "current_version": version,
            "message": format!("Successfully put manifest {name} {previous}"),
            "name": name,
        })
    }

    fn deploy(&mut self, name: &str, version: &str) -> Value {
        let Some(m) = self.models.get_mut(name) else {
            return json!({"result": "notfound", "message": format!("Application with the name {name} not found"), "name": name, "version": version});
        };
        if !m.versions.iter().any(|(v, _)| v == version) {
            return json!({
                "result": "error",
                "message": format!("Application with the name '{name}' does not have a version '{version}' to deploy"),
                "name": name, "version": version,
            });
        }
        m.deployed = Some(version.to_owned());
        m.fresh = true;
        json!({
            "result": "acknowledged",
            "message": format!("Successfully deployed application {name} {version}"),
            "name": name, "version": version,
        })
    }

    fn undeploy(&mut self, name: &str) -> Value {
        let Some(m) = self.models.get_mut(name) else {
            return json!({"result": "notfound", "message": format!("Application with the name {name} not found"), "name": name, "version": null});
        };
        m.deployed = None;
        m.undeployed = true;
        json!({"result": "acknowledged", "message": format!("Successfully undeployed application {name}"), "name": name, "version": null})
    }

    fn delete(&mut self, name: &str) -> Value {
        if self.models.remove(name).is_some() {
            json!({"result": "deleted", "message": format!("Successfully deleted application {name}"), "undeploy": true})
        } else {
            json!({"result": "noop", "message": format!("Application {name} doesn't exist or was already deleted"), "undeploy": false})
        }
    }
}
