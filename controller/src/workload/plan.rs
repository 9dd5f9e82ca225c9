//! The decision, as a pure function: what the bundle wants (a [`Desired`] per
//! `WorkloadDeployment`), what the hosts run of this project and environment (the [`Observed`]
//! workloads) and which hosts there are ([`Host`]) → what to stop and start ([`Plan`], by
//! [`decide`]), and where each deployment stands ([`assess`]).
//!
//! What it decides, per deployment (the runtime operator's ReplicaSet semantics, minus
//! ReplicaSets):
//! - a replica is a slot `0..replicas` of the current template (its hash); a slot is filled by a
//!   live workload of that template (starting, running, or on a host that did not answer this
//!   time); a second one in the same slot, or one in a slot past `replicas`, is stopped first;
//! - a workload in error is stopped first, and its slot filled again;
//! - an empty slot gets a start on a host whose labels match `hostSelector` (and `hostId`,
//!   `environment` when set), heard from within [`super::hosts::HOST_STALE`]: the one with the
//!   fewest replicas of this deployment, then the fewest workloads, then the smallest id — so
//!   replicas spread over the matching hosts, and two replicas with one matching host share it;
//!   no such host → the deployment is failed with the reason, and what runs stays;
//! - workloads of a previous template are stopped after the new ones run (rolling), or first
//!   (`deployPolicy: Recreate`); while a new replica is still starting, they stay;
//! - a workload of a deployment the bundle no longer has is stopped (`prune`), unless its
//!   application's manifest could not be read (`held`);
//! - a workload on a host not heard from within the stale time counts for nothing and is not
//!   touched: its slot is filled elsewhere; if the host comes back (after however long), what
//!   it runs that is no longer wanted — a duplicate, a previous template, a removed
//!   deployment — is stopped.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::manifest::Map;
use crate::state::State;

/// Whose workloads these are: they carry it in their annotations, and their ids derive from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Owner {
    /// The bundle's project.
    pub project: String,
    /// The bundle's environment (also the workloads' namespace).
    pub environment: String,
}

/// One `WorkloadDeployment` of the bundle, as far as placing it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Desired {
    /// The `WorkloadDeployment`'s name.
    pub deployment: String,
    /// The bundle application (pipeline) it belongs to.
    pub application: String,
    /// Its template's hash.
    pub hash: String,
    /// How many workloads.
    pub replicas: u32,
    /// Labels a host must have.
    #[serde(default)]
    pub host_selector: Map,
    /// The one host it must run on, if pinned.
    #[serde(default)]
    pub host_id: Option<String>,
    /// The environment a host must advertise, if any.
    #[serde(default)]
    pub environment: Option<String>,
    /// `deployPolicy: Recreate`: the previous template's workloads go before new ones start.
    #[serde(default)]
    pub recreate: bool,
    /// Why none of its workloads can be started (a Secret missing, a field not supported):
    /// it is failed with this reason, and what runs of it stays.
    #[serde(default)]
    pub blocked: Option<String>,
}

/// A host as its heartbeats and the administrator's labels describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Host {
    /// The host's id.
    pub id: String,
    /// Its name, for messages.
    #[serde(default)]
    pub name: String,
    /// Its labels.
    #[serde(default)]
    pub labels: Map,
    /// The environment it advertises.
    #[serde(default)]
    pub environment: String,
    /// Not heard from within the stale time: nothing is placed there or asked of it.
    #[serde(default)]
    pub stale: bool,
    /// How many workloads it runs (all of them, its last heartbeat says).
    #[serde(default)]
    pub workloads: u64,
}

/// What a host says of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    /// Up.
    Running,
    /// Ran to completion (a `wasi:cli/run` service): operational, as the operator counts it.
    Completed,
    /// Being started.
    Starting,
    /// The host did not answer (its heartbeat is recent): assumed still there.
    Unknown,
    /// Being stopped.
    Stopping,
    /// Failed to start, or failed since.
    Error,
}

impl Condition {
    fn operational(self) -> bool {
        matches!(self, Condition::Running | Condition::Completed)
    }

    fn live(self) -> bool {
        matches!(
            self,
            Condition::Running | Condition::Completed | Condition::Starting | Condition::Unknown
        )
    }
}

/// A workload of this project and environment on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Observed {
    /// Its workload id.
    pub id: String,
    /// The host it is on.
    pub host: String,
    /// The `WorkloadDeployment` it belongs to.
    pub deployment: String,
    /// The application that deployment belongs to.
    pub application: String,
    /// The template it was started from.
    pub hash: String,
    /// Its slot.
    pub replica: u32,
    /// What the host says of it.
    pub condition: Condition,
    /// The host's message (an error's reason).
    #[serde(default)]
    pub message: String,
    /// Its application's version when it was started, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Everything [`decide`] looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Inputs {
    /// Whose workloads.
    pub owner: Owner,
    /// The bundle's deployments, in bundle order.
    pub desired: Vec<Desired>,
    /// What runs of this owner.
    #[serde(default)]
    pub observed: Vec<Observed>,
    /// The hosts known.
    #[serde(default)]
    pub hosts: Vec<Host>,
    /// Applications whose workloads are left as they are (their manifest could not be read).
    #[serde(default)]
    pub held: BTreeSet<String>,
    /// Why nothing may be started yet, if so (hosts still being discovered).
    #[serde(default)]
    pub starts_held: Option<String>,
    /// Whether hosts may still be unheard from (the controller started less than a heartbeat
    /// interval ago): a deployment no host suits waits instead of failing.
    #[serde(default)]
    pub discovering: bool,
}

/// Why a workload is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Because {
    /// It is in error (its slot is filled again).
    Failed,
    /// Another workload fills its slot.
    Duplicate,
    /// Its slot is past `replicas`.
    Surplus,
    /// Its template is no longer the deployment's.
    Replaced,
    /// Its deployment is no longer in the bundle.
    Removed,
}

/// Stop a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stop {
    /// Its workload id.
    pub id: String,
    /// Its host.
    pub host: String,
    /// Its deployment.
    pub deployment: String,
    /// Why.
    pub because: Because,
}

/// Start the current template's workload for a slot on a host (its id: [`workload_id`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Start {
    /// The host.
    pub host: String,
    /// The slot.
    pub replica: u32,
}

/// What to do for one deployment, in order: `stop_first`, then `start` (each until running),
/// then — only if every start succeeded — `stop_after`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    /// The `WorkloadDeployment`.
    pub deployment: String,
    /// Stops before any start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_first: Vec<Stop>,
    /// Starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start: Vec<Start>,
    /// Stops once every start runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_after: Vec<Stop>,
    /// Why it cannot be brought to the bundle (what runs of it stays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// Why its starts wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

impl Step {
    /// Whether it does nothing.
    pub fn is_idle(&self) -> bool {
        self.stop_first.is_empty() && self.start.is_empty() && self.stop_after.is_empty()
    }
}

/// What [`decide`] wants done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plan {
    /// One per desired deployment, in the same order.
    pub steps: Vec<Step>,
    /// Workloads of deployments the bundle no longer has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prune: Vec<Stop>,
}

impl Plan {
    /// Whether it does nothing.
    pub fn is_idle(&self) -> bool {
        self.prune.is_empty() && self.steps.iter().all(Step::is_idle)
    }
}

/// The workload id of a slot: a UUID (as the operator's, Kubernetes UIDs) derived from the owner,
/// deployment, template hash and slot, so that a controller that restarts finds the workloads
/// of the current bundle by asking hosts for them (`workload.status`), and a start it repeats
/// is refused by the host (`already exists`) rather than run twice.
pub fn workload_id(owner: &Owner, deployment: &str, hash: &str, replica: u32) -> String {
    let mut h = Sha256::new();
    for part in [
        "etl-controller/workload/v1",
        &owner.project,
        &owner.environment,
        deployment,
        hash,
        &replica.to_string(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let mut b: [u8; 16] = h.finalize()[..16].try_into().expect("16 of 32 bytes");
    // RFC 9562 version 8 (custom), variant 10.
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The workload's name on its host: `<deployment>-<hash>-<slot>`.
pub fn workload_name(deployment: &str, hash: &str, replica: u32) -> String {
    format!("{deployment}-{hash}-{replica}")
}

/// Why starts wait for hosts to be heard from, if they do ([`Inputs::starts_held`]). Until
/// `discovery` has passed since the controller started (`discovering`), a host not heard from
/// yet may run workloads of this owner that only it can tell of: a slot would look empty and
/// be filled on another host. So nothing is started then — unless the ledger had entries for
/// this owner (`ledger_hosts`: the hosts they name) and every one of those hosts has been
/// heard from (`heard`: by heartbeat or by answering a status request).
pub fn starts_held(
    discovering: bool,
    discovery: std::time::Duration,
    ledger_hosts: &BTreeSet<String>,
    heard: &BTreeSet<String>,
) -> Option<String> {
    if !discovering {
        return None;
    }
    let unheard: Vec<&str> = ledger_hosts
        .iter()
        .filter(|h| !heard.contains(*h))
        .map(String::as_str)
        .collect();
    let why = if ledger_hosts.is_empty() {
        "no ledger entry says which hosts run this environment's workloads".to_owned()
    } else if unheard.is_empty() {
        return None;
    } else {
        format!(
            "hosts the ledger names not heard from yet: {}",
            unheard.join(", ")
        )
    };
    Some(format!(
        "listening to host heartbeats for {discovery:?} after start before placing anything \
         ({why})"
    ))
}

/// Decides what to stop and start. Deterministic: the same inputs give the same plan.
pub fn decide(inputs: &Inputs) -> Plan {
    let hosts: BTreeMap<&str, &Host> = inputs.hosts.iter().map(|h| (h.id.as_str(), h)).collect();
    let reachable = |host: &str| hosts.get(host).is_some_and(|h| !h.stale);
    // Workloads per host (the heartbeat's count, plus what this plan starts there).
    let mut load: BTreeMap<&str, u64> = inputs
        .hosts
        .iter()
        .map(|h| (h.id.as_str(), h.workloads))
        .collect();
    let mut plan = Plan::default();
    for d in &inputs.desired {
        let mut step = Step {
            deployment: d.deployment.clone(),
            ..Step::default()
        };
        let mut ours: Vec<&Observed> = inputs
            .observed
            .iter()
            .filter(|o| o.deployment == d.deployment)
            .collect();
        ours.sort_by(|a, b| (a.replica, &a.host, &a.id).cmp(&(b.replica, &b.host, &b.id)));
        let stop = |o: &Observed, because| Stop {
            id: o.id.clone(),
            host: o.host.clone(),
            deployment: o.deployment.clone(),
            because,
        };
        for o in ours
            .iter()
            .filter(|o| o.condition == Condition::Error && reachable(&o.host))
        {
            step.stop_first.push(stop(o, Because::Failed));
        }
        // The current template's slots: the best workload of each (running before starting
        // before unknown, then by host id) fills it.
        let mut current: Vec<&Observed> = ours
            .iter()
            .copied()
            .filter(|o| o.hash == d.hash && o.condition.live() && reachable(&o.host))
            .collect();
        current.sort_by(|a, b| {
            (a.replica, a.condition, &a.host).cmp(&(b.replica, b.condition, &b.host))
        });
        let mut kept: BTreeMap<u32, &Observed> = BTreeMap::new();
        for o in current {
            if o.replica >= d.replicas {
                step.stop_first.push(stop(o, Because::Surplus));
                continue;
            }
            match kept.entry(o.replica) {
                std::collections::btree_map::Entry::Occupied(_) => {
                    step.stop_first.push(stop(o, Because::Duplicate));
                }
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(o);
                }
            }
        }
        let missing: Vec<u32> = (0..d.replicas).filter(|r| !kept.contains_key(r)).collect();
        if let Some(reason) = &d.blocked {
            step.failed = Some(reason.clone());
        } else if !missing.is_empty() {
            if let Some(why) = &inputs.starts_held {
                step.waiting = Some(why.clone());
            } else {
                // Replicas of this deployment per host, kept and planned.
                let mut mine: BTreeMap<&str, u32> = BTreeMap::new();
                for o in kept.values() {
                    *mine.entry(o.host.as_str()).or_default() += 1;
                }
                for r in missing {
                    let matching: Vec<&Host> =
                        inputs.hosts.iter().filter(|h| suits(d, h)).collect();
                    // A host still holding this slot's workload id (stopping, or not answering)
                    // cannot take it.
                    let busy = |h: &Host| {
                        ours.iter().any(|o| {
                            o.hash == d.hash
                                && o.replica == r
                                && o.host == h.id
                                && matches!(o.condition, Condition::Stopping | Condition::Unknown)
                        })
                    };
                    let chosen = matching
                        .iter()
                        .copied()
                        .filter(|h| !busy(h))
                        .min_by_key(|h| {
                            (
                                mine.get(h.id.as_str()).copied().unwrap_or(0),
                                load.get(h.id.as_str()).copied().unwrap_or(0),
                                h.id.as_str(),
                            )
                        });
                    match chosen {
                        Some(h) => {
                            *mine.entry(h.id.as_str()).or_default() += 1;
                            *load.entry(h.id.as_str()).or_default() += 1;
                            step.start.push(Start {
                                host: h.id.clone(),
                                replica: r,
                            });
                        }
                        None if matching.is_empty() && inputs.discovering => {
                            step.waiting = Some(format!(
                                "listening to host heartbeats: {}",
                                no_host(d, &inputs.hosts)
                            ));
                            break;
                        }
                        None if matching.is_empty() => {
                            step.failed = Some(no_host(d, &inputs.hosts));
                            break;
                        }
                        None => {
                            step.waiting = Some(format!(
                                "replica {r}'s previous workload is still stopping on {}",
                                matching
                                    .iter()
                                    .map(|h| name_of(h))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ));
                            break;
                        }
                    }
                }
            }
        }
        // The previous templates' workloads.
        let ready = step.failed.is_none()
            && step.waiting.is_none()
            && kept.values().all(|o| o.condition.operational());
        for o in ours.iter().filter(|o| {
            o.hash != d.hash
                && o.condition.live()
                && o.condition != Condition::Error
                && reachable(&o.host)
        }) {
            if d.recreate {
                step.stop_first.push(stop(o, Because::Replaced));
            } else if ready {
                step.stop_after.push(stop(o, Because::Replaced));
            }
        }
        plan.steps.push(step);
    }
    let wanted: BTreeSet<&str> = inputs
        .desired
        .iter()
        .map(|d| d.deployment.as_str())
        .collect();
    let mut prune: Vec<&Observed> = inputs
        .observed
        .iter()
        .filter(|o| {
            !wanted.contains(o.deployment.as_str())
                && !inputs.held.contains(&o.application)
                && reachable(&o.host)
                && o.condition != Condition::Stopping
        })
        .collect();
    prune.sort_by(|a, b| {
        (&a.deployment, a.replica, &a.host).cmp(&(&b.deployment, b.replica, &b.host))
    });
    plan.prune = prune
        .into_iter()
        .map(|o| Stop {
            id: o.id.clone(),
            host: o.host.clone(),
            deployment: o.deployment.clone(),
            because: Because::Removed,
        })
        .collect();
    plan
}

/// `findFreeHost`'s filter: schedulable, labels matching the selector, the pinned host, the
/// environment asked for.
fn suits(d: &Desired, h: &Host) -> bool {
    !h.stale
        && d.host_selector
            .iter()
            .all(|(k, v)| h.labels.get(k) == Some(v))
        && d.host_id.as_ref().is_none_or(|id| &h.id == id)
        && d.environment.as_ref().is_none_or(|e| &h.environment == e)
}

fn name_of(h: &Host) -> String {
    if h.name.is_empty() {
        h.id.clone()
    } else {
        h.name.clone()
    }
}

fn describe(labels: &Map) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

/// Why no host suits a deployment: what it asks, and what the hosts heard from offer.
fn no_host(d: &Desired, hosts: &[Host]) -> String {
    let stale = super::hosts::HOST_STALE.as_secs();
    let mut live: Vec<&Host> = hosts.iter().filter(|h| !h.stale).collect();
    live.sort_by(|a, b| a.id.cmp(&b.id));
    let mut wants = vec![format!("hostSelector {}", describe(&d.host_selector))];
    if let Some(id) = &d.host_id {
        wants.push(format!("hostId {id}"));
    }
    if let Some(e) = &d.environment {
        wants.push(format!("environment {e}"));
    }
    if live.is_empty() {
        return format!(
            "no suitable host found: no host has sent a heartbeat within {stale} s ({} wanted)",
            wants.join(", ")
        );
    }
    let offered: Vec<String> = live
        .iter()
        .map(|h| {
            let env = if h.environment.is_empty() {
                String::new()
            } else {
                format!(" environment {}", h.environment)
            };
            format!("{} {}{env}", name_of(h), describe(&h.labels))
        })
        .collect();
    format!(
        "no suitable host found: {} matches none of the hosts heard from within {stale} s: {}",
        wants.join(", "),
        offered.join("; ")
    )
}

/// Where one deployment stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment {
    /// The `WorkloadDeployment`.
    pub deployment: String,
    /// Its application.
    pub application: String,
    /// Deployed, reconciling or failed.
    pub state: State,
    /// Why, unless deployed.
    pub reason: Option<String>,
}

/// Where each desired deployment stands, given what was observed and what `plan` (made from
/// the same inputs) would do: `failed` with a reason when it cannot be placed, is blocked or has
/// a workload in error; `deployed` when every slot runs the current template, nothing of a
/// previous one runs and nothing is left to do; `reconciling` otherwise, saying what is left.
pub fn assess(inputs: &Inputs, plan: &Plan) -> Vec<Assessment> {
    let hosts: BTreeMap<&str, &Host> = inputs.hosts.iter().map(|h| (h.id.as_str(), h)).collect();
    let host_name = |id: &str| hosts.get(id).map_or_else(|| id.to_owned(), |h| name_of(h));
    inputs
        .desired
        .iter()
        .zip(&plan.steps)
        .map(|(d, step)| {
            let ours: Vec<&Observed> = inputs
                .observed
                .iter()
                .filter(|o| o.deployment == d.deployment)
                .collect();
            let errors: Vec<String> = ours
                .iter()
                .filter(|o| o.hash == d.hash && o.condition == Condition::Error)
                .map(|o| {
                    format!(
                        "replica {} on {}: {}",
                        o.replica,
                        host_name(&o.host),
                        if o.message.is_empty() {
                            "WORKLOAD_STATE_ERROR"
                        } else {
                            &o.message
                        }
                    )
                })
                .collect();
            let (state, reason) = if let Some(f) = &step.failed {
                (State::Failed, Some(f.clone()))
            } else if !errors.is_empty() {
                (State::Failed, Some(errors.join("; ")))
            } else {
                // Workloads on hosts not heard from count for nothing: their slots are filled
                // elsewhere, and nothing can be done about them until the host is back.
                let reachable = |o: &Observed| hosts.get(o.host.as_str()).is_some_and(|h| !h.stale);
                let count = |f: &dyn Fn(&Observed) -> bool| {
                    ours.iter().filter(|o| reachable(o) && f(o)).count()
                };
                let running = ours
                    .iter()
                    .filter(|o| {
                        reachable(o)
                            && o.hash == d.hash
                            && o.replica < d.replicas
                            && o.condition.operational()
                    })
                    .map(|o| o.replica)
                    .collect::<BTreeSet<u32>>()
                    .len();
                let surplus = step
                    .stop_first
                    .iter()
                    .filter(|s| matches!(s.because, Because::Surplus | Because::Duplicate))
                    .count();
                let starting = count(&|o| o.hash == d.hash && o.condition == Condition::Starting);
                let unknown = count(&|o| o.condition == Condition::Unknown);
                let previous = count(&|o| o.hash != d.hash && o.condition.live());
                let stopping = count(&|o| o.condition == Condition::Stopping);
                let done = step.is_idle()
                    && step.waiting.is_none()
                    && running == d.replicas as usize
                    && starting + unknown + previous + stopping == 0;
                if done {
                    (State::Deployed, None)
                } else {
                    let mut parts = vec![format!("{running} of {} replicas running", d.replicas)];
                    for (n, what) in [
                        (starting, "starting"),
                        (step.start.len(), "to start"),
                        (surplus, "surplus to stop"),
                        (previous, "of the previous template still up"),
                        (stopping, "stopping"),
                        (unknown, "on hosts that did not answer"),
                    ] {
                        if n > 0 {
                            parts.push(format!("{n} {what}"));
                        }
                    }
                    if let Some(w) = &step.waiting {
                        parts.push(format!("waiting: {w}"));
                    }
                    (State::Reconciling, Some(parts.join(", ")))
                }
            };
            Assessment {
                deployment: d.deployment.clone(),
                application: d.application.clone(),
                state,
                reason,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recorded state and what must come of it.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Fixture {
        #[serde(rename = "about")]
        _about: String,
        inputs: Inputs,
        plan: Plan,
        states: Vec<(String, String, Option<String>)>,
    }

    fn check(name: &str, text: &str) {
        let f: Fixture = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let plan = decide(&f.inputs);
        assert_eq!(
            plan,
            f.plan,
            "{name}: the plan\n{}",
            serde_json::to_string_pretty(&plan).unwrap()
        );
        let states: Vec<(String, String, Option<String>)> = assess(&f.inputs, &plan)
            .into_iter()
            .map(|a| {
                let state = serde_json::to_value(a.state).unwrap();
                (a.deployment, state.as_str().unwrap().to_owned(), a.reason)
            })
            .collect();
        assert_eq!(states, f.states, "{name}: the states");
        // Deterministic, whatever the order of what was observed.
        let mut reversed = f.inputs.clone();
        reversed.observed.reverse();
        reversed.hosts.reverse();
        assert_eq!(
            decide(&reversed),
            plan,
            "{name}: the plan depends on input order"
        );
    }

    macro_rules! fixtures {
        ($($name:ident),* $(,)?) => {$(
            #[test]
            fn $name() {
                check(
                    stringify!($name),
                    include_str!(concat!("../../tests/fixtures/workload/", stringify!($name), ".json")),
                );
            }
        )*};
    }

    fixtures!(
        unchanged,
        template_changed,
        template_changed_recreate,
        rolling_in_progress,
        removed,
        no_host_matches,
        two_replicas_one_host,
        spread,
        scale_down,
        scale_up,
        failed_workload,
        stale_host,
        host_returns,
        blocked,
        starts_held,
        held_application,
        stopping_slot,
        host_silent,
        no_host_while_discovering,
        partition_heals,
    );

    #[test]
    fn a_restart_starts_nothing_until_every_host_the_ledger_names_is_heard_from() {
        let discovery = std::time::Duration::from_secs(17);
        let set = |hosts: &[&str]| -> BTreeSet<String> {
            hosts.iter().map(|h| (*h).to_owned()).collect()
        };
        // The ledger says slot 0 runs on NB, which has not answered yet; NA has.
        let mut inputs: Inputs = serde_json::from_value(serde_json::json!({
            "owner": {"project": "iot-sensors", "environment": "dev"},
            "desired": [{"deployment": "d", "application": "a", "hash": "h1", "replicas": 1}],
            "observed": [{"id": "w-d-0", "host": "NB", "deployment": "d", "application": "a",
                          "hash": "h1", "replica": 0, "condition": "unknown"}],
            "hosts": [{"id": "NA", "name": "a-1"}],
            "discovering": true
        }))
        .unwrap();
        let ledger = set(&["NA", "NB"]);
        // Without a hold the slot looks empty: a start on NA, a duplicate once NB answers.
        assert_eq!(decide(&inputs).steps[0].start.len(), 1);
        inputs.starts_held = super::starts_held(true, discovery, &ledger, &set(&["NA"]));
        assert_eq!(
            inputs.starts_held.as_deref(),
            Some(
                "listening to host heartbeats for 17s after start before placing anything \
                 (hosts the ledger names not heard from yet: NB)"
            )
        );
        let plan = decide(&inputs);
        assert!(plan.is_idle(), "{plan:?}");
        assert_eq!(plan.steps[0].waiting, inputs.starts_held);
        // Every host the ledger names heard from, or discovery over: no hold.
        assert_eq!(
            super::starts_held(true, discovery, &ledger, &set(&["NA", "NB"])),
            None
        );
        assert_eq!(
            super::starts_held(false, discovery, &ledger, &set(&[])),
            None
        );
        // No ledger entry for this owner: held while discovering.
        assert!(
            super::starts_held(true, discovery, &set(&[]), &set(&["NA"]))
                .unwrap()
                .ends_with("(no ledger entry says which hosts run this environment's workloads)")
        );
    }

    #[test]
    fn workload_ids_are_stable_uuids() {
        let owner = Owner {
            project: "iot".into(),
            environment: "dev".into(),
        };
        let id = workload_id(&owner, "p-parse", "abc", 0);
        assert_eq!(id, workload_id(&owner, "p-parse", "abc", 0));
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "8", "version 8: {id}");
        assert!(
            matches!(&id[19..20], "8" | "9" | "a" | "b"),
            "variant: {id}"
        );
        let others = [
            workload_id(&owner, "p-parse", "abc", 1),
            workload_id(&owner, "p-parse", "abd", 0),
            workload_id(&owner, "p-pars", "eabc", 0),
            workload_id(
                &Owner {
                    project: "iot".into(),
                    environment: "staging".into(),
                },
                "p-parse",
                "abc",
                0,
            ),
        ];
        assert!(others.iter().all(|o| o != &id), "{others:?}");
    }
}
