//! What to ask wadm, decided without asking it anything: a pure function of the bundle's
//! applications and what the lattice holds ([`Observed`]), and the applications' states from
//! the same and from what the requests answered.
//!
//! - An application of the bundle that wadm lacks, or has at another version: put (unless
//!   wadm stores that version already, e.g. on a rollback) and deploy that version. Shared
//!   applications first (wadm refuses to deploy an application whose shared one it has not
//!   deployed), then the others, in the bundle's order.
//! - One at the bundle's version and deployed: nothing.
//! - One that another project or environment owns (its `etl.dev/` annotations, or none):
//!   nothing, ever; it is reported failed.
//! - An application this controller owns (the bundle's project and environment in its
//!   annotations) that the bundle lacks: undeploy (when deployed) and delete — pipelines
//!   before shared applications. Nothing else is ever touched.

use std::collections::{BTreeMap, BTreeSet};

use etl::oci::bundle::ApplicationFacts;

use super::api::{Kind, Status};
use crate::state::{AppState, State};

/// Who owns an application of the lattice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This controller: its annotations name the bundle's project and environment.
    Ours,
    /// Someone else, as its annotations say (e.g. `project x, environment dev` or `no etl.dev
    /// annotations`).
    Other(String),
}

/// An application wadm holds, as far as decisions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Its name.
    pub name: String,
    /// The version put last.
    pub version: String,
    /// The version deployed, if any.
    pub deployed_version: Option<String>,
    /// wadm's status of it.
    pub status: Status,
    /// Who owns it.
    pub owner: Owner,
    /// Whether it is a shared application.
    pub shared: bool,
    /// Every version wadm stores, when it was asked ([`needs_versions`]).
    pub stored: Option<BTreeSet<String>>,
}

impl Observed {
    /// Whether wadm stores `version` of it, as far as is known.
    fn stores(&self, version: &str) -> bool {
        self.version == version
            || self.deployed_version.as_deref() == Some(version)
            || self.stored.as_ref().is_some_and(|s| s.contains(version))
    }
}

/// A request to wadm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `model.put` of the application's manifest, as the bundle holds it.
    Put {
        /// The application.
        app: String,
    },
    /// `model.deploy.<app>` of `version`.
    Deploy {
        /// The application.
        app: String,
        /// The version.
        version: String,
    },
    /// `model.undeploy.<app>`.
    Undeploy {
        /// The application.
        app: String,
    },
    /// `model.del.<app>`: every version.
    Delete {
        /// The application.
        app: String,
    },
}

impl Action {
    /// The application it is about.
    pub fn app(&self) -> &str {
        match self {
            Action::Put { app }
            | Action::Deploy { app, .. }
            | Action::Undeploy { app }
            | Action::Delete { app } => app,
        }
    }
}

/// What to do, and what not to touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The requests, in order.
    pub actions: Vec<Action>,
    /// Applications of the bundle someone else owns, and why they are left alone.
    pub conflicts: BTreeMap<String, String>,
}

/// Whether deciding about `app` needs to know every version wadm stores of `observed`: when
/// it is ours and neither the version put last nor the one deployed is the bundle's.
pub fn needs_versions(app: &ApplicationFacts, observed: &Observed) -> bool {
    observed.owner == Owner::Ours
        && observed.deployed_version.as_deref() != Some(app.version.as_str())
        && !observed.stores(&app.version)
}

/// The requests that bring the lattice (`observed`) to the bundle's `applications`.
pub fn decide(applications: &[ApplicationFacts], observed: &[Observed]) -> Plan {
    let mut plan = Plan::default();
    let find = |name: &str| observed.iter().find(|o| o.name == name);
    let (shared, others): (Vec<&ApplicationFacts>, Vec<&ApplicationFacts>) =
        applications.iter().partition(|a| a.shared);
    for app in shared.into_iter().chain(others) {
        let name = app.name.clone();
        let version = app.version.clone();
        match find(&app.name) {
            None => {
                plan.actions.push(Action::Put { app: name.clone() });
                plan.actions.push(Action::Deploy { app: name, version });
            }
            Some(o) => {
                if let Owner::Other(whose) = &o.owner {
                    plan.conflicts.insert(
                        name.clone(),
                        format!(
                            "the lattice already has an application `{name}` that is not this \
                             environment's ({whose}): left alone"
                        ),
                    );
                    continue;
                }
                if o.deployed_version.as_deref() == Some(app.version.as_str()) {
                    continue;
                }
                // As far as is known: unless wadm was asked for every version it stores
                // (needs_versions), a version neither put last nor deployed is put.
                if !o.stores(&app.version) {
                    plan.actions.push(Action::Put { app: name.clone() });
                }
                plan.actions.push(Action::Deploy { app: name, version });
            }
        }
    }
    let wanted: BTreeSet<&str> = applications.iter().map(|a| a.name.as_str()).collect();
    let (shared, others): (Vec<&Observed>, Vec<&Observed>) = observed
        .iter()
        .filter(|o| o.owner == Owner::Ours && !wanted.contains(o.name.as_str()))
        .partition(|o| o.shared);
    for o in others.into_iter().chain(shared) {
        if o.deployed_version.is_some() {
            plan.actions.push(Action::Undeploy {
                app: o.name.clone(),
            });
        }
        plan.actions.push(Action::Delete {
            app: o.name.clone(),
        });
    }
    plan
}

/// What became of the requests of a plan, by application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Applications a put and/or deploy was acknowledged for.
    pub acted: BTreeSet<String>,
    /// Applications wadm refused a request for, and its words.
    pub refused: BTreeMap<String, String>,
}

/// The state of each of the bundle's `applications`, from what wadm held before (`observed`),
/// the `plan` and what its requests answered. An application just deployed is `reconciling`
/// until a later look finds wadm reporting its version deployed: right after a deploy wadm may
/// still show the previous version's status.
///
/// Then, by name, one state for each application this controller owns that the bundle no
/// longer has but wadm still held: `failed` with wadm's words when it refused to undeploy or
/// delete it, else `reconciling` until a later look finds it gone — so the environment is not
/// ready while a pruned application may still run.
pub fn states(
    applications: &[ApplicationFacts],
    observed: &[Observed],
    plan: &Plan,
    outcomes: &Outcomes,
) -> Vec<AppState> {
    let mut states = bundle_states(applications, observed, plan, outcomes);
    let wanted: BTreeSet<&str> = applications.iter().map(|a| a.name.as_str()).collect();
    let mut removed: Vec<&Observed> = observed
        .iter()
        .filter(|o| o.owner == Owner::Ours && !wanted.contains(o.name.as_str()))
        .collect();
    removed.sort_by(|a, b| a.name.cmp(&b.name));
    states.extend(removed.into_iter().map(|o| {
        let (state, reason) = match (outcomes.refused.get(&o.name), &o.deployed_version) {
            (Some(message), _) => (
                State::Failed,
                format!(
                    "removed from the bundle, but wadm refused to undeploy or delete it: {message}"
                ),
            ),
            (None, Some(_)) => (
                State::Reconciling,
                "removed from the bundle: being undeployed".to_owned(),
            ),
            (None, None) => (
                State::Reconciling,
                "removed from the bundle: being deleted (not deployed)".to_owned(),
            ),
        };
        AppState {
            name: o.name.clone(),
            version: Some(
                o.deployed_version
                    .clone()
                    .unwrap_or_else(|| o.version.clone()),
            ),
            state,
            reason: Some(reason),
        }
    }));
    states
}

/// [`states`] of the bundle's applications.
fn bundle_states(
    applications: &[ApplicationFacts],
    observed: &[Observed],
    plan: &Plan,
    outcomes: &Outcomes,
) -> Vec<AppState> {
    applications
        .iter()
        .map(|app| {
            let o = observed.iter().find(|o| o.name == app.name);
            let deployed = o.and_then(|o| o.deployed_version.clone());
            let state = |state, version, reason| AppState {
                name: app.name.clone(),
                version,
                state,
                reason,
            };
            if let Some(reason) = plan.conflicts.get(&app.name) {
                return state(State::Failed, deployed, Some(reason.clone()));
            }
            if let Some(reason) = outcomes.refused.get(&app.name) {
                return state(
                    State::Failed,
                    Some(app.version.clone()),
                    Some(reason.clone()),
                );
            }
            if outcomes.acted.contains(&app.name) {
                return state(
                    State::Reconciling,
                    Some(app.version.clone()),
                    Some(format!("deploying {}", app.version)),
                );
            }
            let Some(o) = o else {
                return state(State::Undeployed, None, None);
            };
            match &deployed {
                None => return state(State::Undeployed, None, None),
                Some(v) if *v != app.version => {
                    return state(
                        State::Reconciling,
                        deployed.clone(),
                        Some(format!(
                            "wadm runs version {v}; the bundle's is {}",
                            app.version
                        )),
                    );
                }
                Some(_) => {}
            }
            let info = &o.status.info;
            let message = (!info.message.is_empty()).then(|| info.message.clone());
            match info.kind {
                Kind::Deployed => state(State::Deployed, deployed, None),
                Kind::Failed | Kind::Unhealthy => {
                    state(State::Failed, deployed, failure(&o.status))
                }
                Kind::Reconciling | Kind::Waiting => state(State::Reconciling, deployed, message),
                Kind::Undeployed | Kind::Unknown => state(
                    State::Reconciling,
                    deployed,
                    Some(format!("wadm reports it {:?}", info.kind).to_lowercase()),
                ),
            }
        })
        .collect()
}

/// Why wadm says an application failed: its message, else its failed scalers'.
fn failure(status: &Status) -> Option<String> {
    if !status.info.message.is_empty() {
        return Some(status.info.message.clone());
    }
    let scalers: Vec<String> = status
        .scalers
        .iter()
        .filter(|s| matches!(s.info.kind, Kind::Failed | Kind::Unhealthy))
        .map(|s| format!("{}: {}", s.name, s.info.message))
        .collect();
    (!scalers.is_empty()).then(|| scalers.join("; "))
}
