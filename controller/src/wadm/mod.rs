//! The wasmCloud 1.x applier: wadm's NATS API (`wadm.api.<lattice>.model.*`).
//!
//! A look at the lattice is one `model.get` (every application, its deployed version and
//! status), plus `model.get.<name>` once per application version never seen before (its
//! annotations say who owns it; versions never change, so the answer is kept) and
//! `model.versions.<name>` for an application of the bundle whose version is neither the one
//! put last nor the one deployed. [`decide`] turns that into requests; [`Wadm::apply`] sends
//! them — each manifest put exactly as the bundle holds it — and reports every application's
//! state. An unchanged bundle on a lattice already at it costs reads only.

pub mod api;
pub mod decide;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use etl::oci::bundle::{Bundle, Facts};
use serde::de::DeserializeOwned;

use self::api::{Answer, GetAnswer, ListAnswer, PutAnswer, Summary, VersionsAnswer};
use self::decide::{Action, Observed, Outcomes, Owner, Plan};
use crate::state::AppState;

/// The annotation naming an application's project.
pub const PROJECT_ANNOTATION: &str = "etl.dev/project";
/// The annotation naming an application's environment.
pub const ENVIRONMENT_ANNOTATION: &str = "etl.dev/environment";
/// wadm's annotation of a shared application.
pub const SHARED_ANNOTATION: &str = "experimental.wasmcloud.dev/shared";

/// How to speak to wadm.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long to wait for each answer.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why the lattice could not be looked at or changed (a refused put or deploy is an
/// application's state, not an error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No answer.
    #[error(
        "wadm does not answer on `{subject}` ({detail}): is wadm running for lattice \
         `{lattice}` on this NATS?"
    )]
    NoAnswer {
        /// The subject asked.
        subject: String,
        /// The lattice.
        lattice: String,
        /// The NATS client's words.
        detail: String,
    },
    /// An answer that is not JSON of the expected shape.
    #[error("wadm's answer on `{subject}` is not what wadm 0.21 answers: {detail}")]
    BadAnswer {
        /// The subject asked.
        subject: String,
        /// What is wrong.
        detail: String,
    },
    /// wadm answered with an error where it must not.
    #[error("wadm refused `{subject}`: {message}")]
    Refused {
        /// The subject asked.
        subject: String,
        /// wadm's words.
        message: String,
    },
}

/// An application version's owner, as its annotations say.
#[derive(Debug, Clone)]
struct Annotated {
    project: Option<String>,
    environment: Option<String>,
    shared: bool,
}

/// A client of wadm on a lattice's NATS.
pub struct Wadm {
    nats: async_nats::Client,
    options: Options,
    /// Annotations by (lattice, application, version): a version's manifest never changes.
    seen: HashMap<(String, String, String), Annotated>,
}

impl Wadm {
    /// A client over `nats`.
    pub fn new(nats: async_nats::Client, options: Options) -> Wadm {
        Wadm {
            nats,
            options,
            seen: HashMap::new(),
        }
    }

    /// Every application's state on the lattice, changing nothing.
    pub async fn observe(&mut self, bundle: &Bundle) -> Result<Vec<AppState>, Error> {
        let observed = self.look(&bundle.facts).await?;
        Ok(decide::states(
            &bundle.facts.applications,
            &observed,
            &Plan::default(),
            &Outcomes::default(),
        ))
    }

    /// Brings the lattice to `bundle` ([`decide::decide`]) and reports every application's
    /// state.
    pub async fn apply(&mut self, bundle: &Bundle) -> Result<Vec<AppState>, Error> {
        let facts = &bundle.facts;
        let observed = self.look(facts).await?;
        let plan = decide::decide(&facts.applications, &observed);
        let mut outcomes = Outcomes::default();
        for action in &plan.actions {
            let app = action.app();
            if outcomes.refused.contains_key(app) {
                continue;
            }
            match self.send(bundle, action).await? {
                Ok(()) => {
                    if matches!(action, Action::Put { .. } | Action::Deploy { .. }) {
                        outcomes.acted.insert(app.to_owned());
                    }
                }
                Err(message) => {
                    tracing::warn!(application = app, "wadm refused {action:?}: {message}");
                    outcomes.refused.insert(app.to_owned(), message);
                }
            }
        }
        Ok(decide::states(
            &facts.applications,
            &observed,
            &plan,
            &outcomes,
        ))
    }

    /// What the lattice holds, as [`decide`] needs it.
    async fn look(&mut self, facts: &Facts) -> Result<Vec<Observed>, Error> {
        let lattice = &facts.lattice;
        let list: ListAnswer = self.ask(lattice, "get", Bytes::new(), false).await?;
        if list.result != "success" {
            return Err(Error::Refused {
                subject: subject(lattice, "get"),
                message: list.message,
            });
        }
        let mut observed = Vec::with_capacity(list.models.len());
        for summary in list.models {
            let Some(annotated) = self.annotations(lattice, &summary).await? else {
                // Deleted since the list: nothing to decide about.
                continue;
            };
            let mut o = observe(summary, &annotated, facts);
            if let Some(app) = facts.applications.iter().find(|a| a.name == o.name)
                && decide::needs_versions(app, &o)
            {
                o.stored = Some(self.versions(lattice, &o.name).await?);
            }
            observed.push(o);
        }
        Ok(observed)
    }

    /// The annotations of the version of `summary` that matters (the deployed one, else the
    /// one put last), asked once per version; `None` when wadm no longer has it.
    async fn annotations(
        &mut self,
        lattice: &str,
        summary: &Summary,
    ) -> Result<Option<Annotated>, Error> {
        let version = summary
            .deployed_version
            .clone()
            .unwrap_or_else(|| summary.version.clone());
        let key = (lattice.to_owned(), summary.name.clone(), version.clone());
        if let Some(known) = self.seen.get(&key) {
            return Ok(Some(known.clone()));
        }
        let operation = format!("get.{}", summary.name);
        let body = serde_json::json!({ "version": version }).to_string();
        let answer: GetAnswer = self.ask(lattice, &operation, body.into(), false).await?;
        let manifest = match (answer.result.as_str(), answer.manifest) {
            ("success", Some(manifest)) => manifest,
            ("notfound", _) => return Ok(None),
            _ => {
                return Err(Error::Refused {
                    subject: subject(lattice, &operation),
                    message: answer.message,
                });
            }
        };
        let annotations = manifest.metadata.annotations;
        let annotated = Annotated {
            project: annotations.get(PROJECT_ANNOTATION).cloned(),
            environment: annotations.get(ENVIRONMENT_ANNOTATION).cloned(),
            shared: annotations
                .get(SHARED_ANNOTATION)
                .is_some_and(|v| v.trim() == "true"),
        };
        self.seen.insert(key, annotated.clone());
        Ok(Some(annotated))
    }

    /// Every version wadm stores of `name`.
    async fn versions(&self, lattice: &str, name: &str) -> Result<BTreeSet<String>, Error> {
        let operation = format!("versions.{name}");
        let answer: VersionsAnswer = self.ask(lattice, &operation, Bytes::new(), false).await?;
        match answer.result.as_str() {
            "success" => Ok(answer.versions.into_iter().map(|v| v.version).collect()),
            "notfound" => Ok(BTreeSet::new()),
            _ => Err(Error::Refused {
                subject: subject(lattice, &operation),
                message: answer.message,
            }),
        }
    }

    /// Sends one request of a plan: `Ok(Err(message))` when wadm refuses it.
    async fn send(&self, bundle: &Bundle, action: &Action) -> Result<Result<(), String>, Error> {
        let lattice = &bundle.facts.lattice;
        match action {
            Action::Put { app } => {
                let facts = bundle.facts.applications.iter().find(|a| a.name == *app);
                let Some((facts, manifest)) =
                    facts.and_then(|f| Some((f, bundle.files.get(&f.wadm)?)))
                else {
                    return Ok(Err(format!("the bundle has no wadm manifest for `{app}`")));
                };
                let answer: PutAnswer = self
                    .ask(lattice, "put", Bytes::from(manifest.clone()), true)
                    .await?;
                tracing::info!(application = %app, version = %facts.version, "put: {}", answer.result);
                if !matches!(answer.result.as_str(), "created" | "newversion") {
                    return Ok(Err(answer.message));
                }
                if answer.name != facts.name || answer.current_version != facts.version {
                    return Ok(Err(format!(
                        "the bundle's {} is application `{}` version {}, but its facts say `{}` \
                         version {}",
                        facts.wadm, answer.name, answer.current_version, facts.name, facts.version
                    )));
                }
                Ok(Ok(()))
            }
            Action::Deploy { app, version } => {
                let body = serde_json::json!({ "version": version }).to_string();
                let answer: Answer = self
                    .ask(lattice, &format!("deploy.{app}"), body.into(), false)
                    .await?;
                tracing::info!(application = %app, %version, "deploy: {}", answer.result);
                Ok(acknowledged(answer, &["acknowledged"]))
            }
            Action::Undeploy { app } => {
                let answer: Answer = self
                    .ask(
                        lattice,
                        &format!("undeploy.{app}"),
                        Bytes::from_static(b"{}"),
                        false,
                    )
                    .await?;
                tracing::info!(application = %app, "undeploy (pruned): {}", answer.result);
                Ok(acknowledged(answer, &["acknowledged", "notfound"]))
            }
            Action::Delete { app } => {
                let answer: Answer = self
                    .ask(lattice, &format!("del.{app}"), Bytes::new(), false)
                    .await?;
                tracing::info!(application = %app, "delete (pruned): {}", answer.result);
                Ok(acknowledged(answer, &["deleted", "noop"]))
            }
        }
    }

    /// One request to `wadm.api.<lattice>.model.<operation>` and its answer.
    async fn ask<T: DeserializeOwned>(
        &self,
        lattice: &str,
        operation: &str,
        payload: Bytes,
        yaml: bool,
    ) -> Result<T, Error> {
        let subject = subject(lattice, operation);
        let mut request = async_nats::Request::new()
            .payload(payload)
            .timeout(Some(self.options.timeout));
        if yaml {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Content-Type", "application/yaml");
            request = request.headers(headers);
        }
        let answer = self
            .nats
            .send_request(subject.clone(), request)
            .await
            .map_err(|e| Error::NoAnswer {
                subject: subject.clone(),
                lattice: lattice.to_owned(),
                detail: e.to_string(),
            })?;
        serde_json::from_slice(&answer.payload).map_err(|e| Error::BadAnswer {
            subject,
            detail: e.to_string(),
        })
    }
}

/// `wadm.api.<lattice>.model.<operation>`.
fn subject(lattice: &str, operation: &str) -> String {
    format!("wadm.api.{lattice}.model.{operation}")
}

/// `Ok` when the answer's result is one of `ok`, else wadm's message.
fn acknowledged(answer: Answer, ok: &[&str]) -> Result<(), String> {
    if ok.contains(&answer.result.as_str()) {
        Ok(())
    } else if answer.message.is_empty() {
        Err(format!("wadm answered `{}`", answer.result))
    } else {
        Err(answer.message)
    }
}

/// An application in the list, with its version's annotations, as decisions see it.
fn observe(summary: Summary, annotated: &Annotated, facts: &Facts) -> Observed {
    let owner = match (&annotated.project, &annotated.environment) {
        (Some(p), Some(e)) if *p == facts.project && *e == facts.environment => Owner::Ours,
        (None, None) => Owner::Other(format!(
            "it has no {PROJECT_ANNOTATION} and {ENVIRONMENT_ANNOTATION} annotations"
        )),
        (p, e) => Owner::Other(format!(
            "its annotations say project `{}`, environment `{}`",
            p.as_deref().unwrap_or("?"),
            e.as_deref().unwrap_or("?")
        )),
    };
    Observed {
        name: summary.name,
        version: summary.version,
        deployed_version: summary.deployed_version,
        status: summary.detailed_status,
        owner,
        shared: annotated.shared,
        stored: None,
    }
}

/// Reads recorded answers (tests).
#[cfg(test)]
fn recorded<T: DeserializeOwned>(name: &str) -> T {
    let path = format!(
        "{}/tests/fixtures/wadm/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use etl::oci::bundle::{API_VERSION, ApplicationFacts, KIND};

    use super::decide::{Action::*, decide, needs_versions, states};
    use super::*;
    use crate::state::State;

    const LISTENER: &str = "iot-sensors-http-listener";
    const PIPELINE: &str = "sensor-ingest";
    /// The versions of the recorded manifests.
    const LISTENER_V: &str = "sha-e075533a862a";
    const PIPELINE_V: &str = "sha-2ada642ee5de";

    fn app(name: &str, version: &str, shared: bool) -> ApplicationFacts {
        ApplicationFacts {
            name: name.to_owned(),
            pipeline: (!shared).then(|| name.to_owned()),
            version: version.to_owned(),
            shared,
            wadm: format!("wadm/{name}.yaml"),
            k8s: None,
            artifacts: vec![],
        }
    }

    fn facts(applications: Vec<ApplicationFacts>) -> Facts {
        Facts {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            project: "iot-sensors".to_owned(),
            environment: "dev".to_owned(),
            registry: "127.0.0.1:5000/etl".to_owned(),
            lattice: "acme-iot-dev".to_owned(),
            revision: None,
            source: None,
            applications,
            pipelines: Vec::new(),
        }
    }

    /// The recorded list `list`, each application annotated as the recorded manifests are
    /// (ours: the etl listener and pipeline; someone else's: `someone-elses-app`), or as
    /// `annotations` says.
    fn lattice(list: &str, facts: &Facts, annotations: &[(&str, Annotated)]) -> Vec<Observed> {
        let ours = recorded::<GetAnswer>("get-listener")
            .manifest
            .unwrap()
            .metadata
            .annotations;
        let foreign = recorded::<GetAnswer>("get-foreign")
            .manifest
            .unwrap()
            .metadata
            .annotations;
        let annotated = |a: &BTreeMap<String, String>, shared| Annotated {
            project: a.get(PROJECT_ANNOTATION).cloned(),
            environment: a.get(ENVIRONMENT_ANNOTATION).cloned(),
            shared,
        };
        let answer: ListAnswer = recorded(list);
        assert_eq!(answer.result, "success");
        answer
            .models
            .into_iter()
            .map(|s| {
                let a = match annotations.iter().find(|(n, _)| *n == s.name) {
                    Some((_, a)) => a.clone(),
                    None if s.name == "someone-elses-app" => annotated(&foreign, false),
                    None => annotated(&ours, s.name == LISTENER),
                };
                observe(s, &a, facts)
            })
            .collect()
    }

    fn bundle_apps() -> Vec<ApplicationFacts> {
        // The pipeline first: decisions put shared applications first whatever the order.
        vec![
            app(PIPELINE, PIPELINE_V, false),
            app(LISTENER, LISTENER_V, true),
        ]
    }

    fn put_deploy(name: &str, version: &str) -> [Action; 2] {
        [
            Put {
                app: name.to_owned(),
            },
            Deploy {
                app: name.to_owned(),
                version: version.to_owned(),
            },
        ]
    }

    #[test]
    fn an_empty_lattice_gets_everything_shared_first() {
        let f = facts(bundle_apps());
        let observed = lattice("list-empty", &f, &[]);
        let plan = decide(&f.applications, &observed);
        let expected: Vec<Action> = put_deploy(LISTENER, LISTENER_V)
            .into_iter()
            .chain(put_deploy(PIPELINE, PIPELINE_V))
            .collect();
        assert_eq!(plan.actions, expected);
        assert!(plan.conflicts.is_empty());
        let before = states(
            &f.applications,
            &observed,
            &Plan::default(),
            &Default::default(),
        );
        assert!(before.iter().all(|s| s.state == State::Undeployed));
    }

    #[test]
    fn what_runs_at_its_version_is_left_alone() {
        let f = facts(bundle_apps());
        // The listener deployed, the pipeline put and deployed but failing; and someone else's
        // application, not deployed.
        let observed = lattice("list-mixed", &f, &[]);
        let plan = decide(&f.applications, &observed);
        assert_eq!(plan, Plan::default());
        let s = states(&f.applications, &observed, &plan, &Default::default());
        assert_eq!(s[0].name, PIPELINE);
        assert_eq!(s[0].state, State::Failed);
        assert_eq!(s[0].version.as_deref(), Some(PIPELINE_V));
        let reason = s[0].reason.as_deref().unwrap();
        assert!(
            reason.starts_with(
                "failed to fetch component: failed to fetch component under OCI reference \
                 `registry.acme.example/etl/sensor-ingest-parse@sha256:"
            ),
            "{reason}"
        );
        assert_eq!(s[1].name, LISTENER);
        assert_eq!(
            (s[1].state, s[1].reason.as_deref()),
            (State::Deployed, None)
        );

        // Only the listener put, and deployed: the pipeline still needs its put and deploy.
        let observed = lattice("list-listener-deployed", &f, &[]);
        let plan = decide(&f.applications, &observed);
        assert_eq!(plan.actions, put_deploy(PIPELINE, PIPELINE_V));
    }

    #[test]
    fn a_new_version_is_put_and_deployed_and_an_old_one_redeployed() {
        let f = facts(vec![
            app(PIPELINE, "sha-222222222222", false),
            app(LISTENER, LISTENER_V, true),
        ]);
        let observed = lattice("list-mixed", &f, &[]);
        let pipeline = &observed.iter().find(|o| o.name == PIPELINE).unwrap();
        assert!(needs_versions(&f.applications[0], pipeline));
        assert!(!needs_versions(
            &f.applications[1],
            observed.iter().find(|o| o.name == LISTENER).unwrap()
        ));
        let mut observed = observed;
        for o in &mut observed {
            if o.name == PIPELINE {
                o.stored = Some(BTreeSet::from([PIPELINE_V.to_owned()]));
            }
        }
        let plan = decide(&f.applications, &observed);
        assert_eq!(plan.actions, put_deploy(PIPELINE, "sha-222222222222"));
        // wadm acknowledged both: reconciling until a later look says deployed.
        let outcomes = Outcomes {
            acted: BTreeSet::from([PIPELINE.to_owned()]),
            ..Outcomes::default()
        };
        let s = states(&f.applications, &observed, &plan, &outcomes);
        assert_eq!(
            (s[0].state, s[0].version.as_deref()),
            (State::Reconciling, Some("sha-222222222222"))
        );

        // The listener's new version is put (the last one put), the old one deployed: going to
        // the new one is a deploy, going back (a rollback) too — wadm stores both.
        let newer = facts(vec![
            app(PIPELINE, PIPELINE_V, false),
            app(LISTENER, "sha-111111111111", true),
        ]);
        let observed = lattice("list-new-version-put", &newer, &[]);
        let plan = decide(&newer.applications, &observed);
        let deploy = |version: &str| Deploy {
            app: LISTENER.to_owned(),
            version: version.to_owned(),
        };
        assert_eq!(plan.actions, [deploy("sha-111111111111")]);
        // Running the newer one, back to the older: wadm stores it (model.versions says).
        let older = facts(vec![
            app(PIPELINE, PIPELINE_V, false),
            app(LISTENER, LISTENER_V, true),
        ]);
        let mut observed = lattice("list-new-version-put", &older, &[]);
        let listener = observed.iter_mut().find(|o| o.name == LISTENER).unwrap();
        listener.deployed_version = Some("sha-111111111111".to_owned());
        assert!(needs_versions(&older.applications[1], listener));
        let versions: VersionsAnswer = recorded("versions-listener");
        listener.stored = Some(versions.versions.into_iter().map(|v| v.version).collect());
        let plan = decide(&older.applications, &observed);
        assert_eq!(plan.actions, [deploy(LISTENER_V)]);
    }

    #[test]
    fn pruning_takes_only_what_is_ours_pipelines_first() {
        // The bundle has nothing left: the pipeline and the listener go (undeploy, delete),
        // someone else's application stays.
        let f = facts(vec![]);
        let observed = lattice("list-mixed", &f, &[]);
        let plan = decide(&f.applications, &observed);
        assert_eq!(
            plan.actions,
            [
                Undeploy {
                    app: PIPELINE.to_owned()
                },
                Delete {
                    app: PIPELINE.to_owned()
                },
                Undeploy {
                    app: LISTENER.to_owned()
                },
                Delete {
                    app: LISTENER.to_owned()
                },
            ]
        );
        // Another environment's pipeline on the same lattice is not ours to prune; an
        // application put but never deployed is only deleted.
        let staging = Annotated {
            project: Some("iot-sensors".to_owned()),
            environment: Some("staging".to_owned()),
            shared: false,
        };
        let observed = lattice("list-mixed", &f, &[(PIPELINE, staging)]);
        let mut plan = decide(&f.applications, &observed);
        assert_eq!(
            plan.actions.drain(..).collect::<Vec<_>>(),
            [
                Undeploy {
                    app: LISTENER.to_owned()
                },
                Delete {
                    app: LISTENER.to_owned()
                },
            ]
        );
        let observed = lattice("list-put", &f, &[]);
        let plan = decide(&f.applications, &observed);
        assert_eq!(
            plan.actions,
            [Delete {
                app: LISTENER.to_owned()
            }]
        );
    }

    #[test]
    fn what_is_being_pruned_is_not_ready() {
        // The pipeline left the bundle; the lattice still runs it.
        let f = facts(vec![app(LISTENER, LISTENER_V, true)]);
        let observed = lattice("list-mixed", &f, &[]);
        let plan = decide(&f.applications, &observed);
        assert_eq!(
            plan.actions,
            [
                Undeploy {
                    app: PIPELINE.to_owned()
                },
                Delete {
                    app: PIPELINE.to_owned()
                },
            ]
        );
        let summary = |s: Vec<AppState>| -> Vec<(String, State, Option<String>, Option<String>)> {
            s.into_iter()
                .map(|s| (s.name, s.state, s.version, s.reason))
                .collect()
        };
        // Undeployed and deleted, or not yet (a look while the registry is stale): reconciling
        // until a later look finds it gone.
        for plan in [plan.clone(), Plan::default()] {
            assert_eq!(
                summary(states(
                    &f.applications,
                    &observed,
                    &plan,
                    &Default::default()
                )),
                [
                    (
                        LISTENER.to_owned(),
                        State::Deployed,
                        Some(LISTENER_V.to_owned()),
                        None
                    ),
                    (
                        PIPELINE.to_owned(),
                        State::Reconciling,
                        Some(PIPELINE_V.to_owned()),
                        Some("removed from the bundle: being undeployed".to_owned())
                    ),
                ]
            );
        }
        // wadm refused the undeploy: failed, in wadm's words.
        let refused = Outcomes {
            refused: BTreeMap::from([(PIPELINE.to_owned(), "lattice is busy".to_owned())]),
            ..Outcomes::default()
        };
        let s = states(&f.applications, &observed, &plan, &refused);
        assert_eq!(
            (s[1].name.as_str(), s[1].state, s[1].reason.as_deref()),
            (
                PIPELINE,
                State::Failed,
                Some(
                    "removed from the bundle, but wadm refused to undeploy or delete it: lattice \
                     is busy"
                )
            )
        );
        // Only put, never deployed: deleted, not ready until it is.
        let empty = facts(vec![]);
        let observed = lattice("list-put", &empty, &[]);
        let plan = decide(&empty.applications, &observed);
        assert_eq!(
            summary(states(
                &empty.applications,
                &observed,
                &plan,
                &Default::default()
            )),
            [(
                LISTENER.to_owned(),
                State::Reconciling,
                Some(LISTENER_V.to_owned()),
                Some("removed from the bundle: being deleted (not deployed)".to_owned())
            )]
        );
        // Gone: nothing more to say; someone else's application is never a line.
        let observed = lattice("list-mixed", &f, &[]);
        let gone: Vec<Observed> = observed
            .into_iter()
            .filter(|o| o.name != PIPELINE)
            .collect();
        let s = states(
            &f.applications,
            &gone,
            &Plan::default(),
            &Default::default(),
        );
        assert_eq!(s.len(), 1, "{s:?}");
    }

    #[test]
    fn what_others_own_is_never_touched() {
        let f = facts(vec![
            app(LISTENER, LISTENER_V, true),
            app(PIPELINE, PIPELINE_V, false),
            app("someone-elses-app", "v0.2.0", false),
        ]);
        let observed = lattice("list-mixed", &f, &[]);
        let plan = decide(&f.applications, &observed);
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        let reason = &plan.conflicts["someone-elses-app"];
        assert!(
            reason.contains("not this environment's (it has no etl.dev/project"),
            "{reason}"
        );
        let s = states(&f.applications, &observed, &plan, &Default::default());
        assert_eq!(s[2].state, State::Failed);

        let prod = Annotated {
            project: Some("iot-sensors".to_owned()),
            environment: Some("prod".to_owned()),
            shared: true,
        };
        let f = facts(vec![
            app(LISTENER, "sha-333333333333", true),
            app(PIPELINE, PIPELINE_V, false),
        ]);
        let observed = lattice("list-mixed", &f, &[(LISTENER, prod)]);
        let plan = decide(&f.applications, &observed);
        assert!(plan.actions.is_empty());
        assert!(plan.conflicts[LISTENER].contains("environment `prod`"));
    }

    #[test]
    fn wadm_words_are_read() {
        let put: PutAnswer = recorded("put-created");
        assert_eq!(
            (
                put.result.as_str(),
                put.name.as_str(),
                put.current_version.as_str()
            ),
            ("created", LISTENER, LISTENER_V)
        );
        let exists: PutAnswer = recorded("put-version-exists");
        assert_eq!(exists.result, "error");
        assert!(exists.message.contains("already exists"));
        let refused: Answer = recorded("deploy-unknown-version");
        assert_eq!(
            acknowledged(refused, &["acknowledged"]),
            Err(
                "Application with the name 'sensor-ingest' does not have a version \
                 'sha-000000000000' to deploy"
                    .to_owned()
            )
        );
        for (name, ok) in [
            ("deploy-acknowledged", &["acknowledged"][..]),
            ("undeploy-acknowledged", &["acknowledged", "notfound"]),
            ("del-deleted", &["deleted", "noop"]),
            ("del-noop", &["deleted", "noop"]),
        ] {
            assert_eq!(acknowledged(recorded(name), ok), Ok(()), "{name}");
        }
        let missing: GetAnswer = recorded("get-not-found");
        assert_eq!(missing.result, "notfound");
        assert!(missing.manifest.is_none());
        // What `model.status.<name>` answers is what the list carries for each application.
        let answer: serde_json::Value = recorded("status-pipeline-reconciling");
        let status: api::Status = serde_json::from_value(answer["status"].clone()).unwrap();
        assert_eq!(status.info.kind, api::Kind::Reconciling);
    }
}
