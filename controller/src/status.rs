//! The status document ([`etl::ops::status::ControllerStatus`]) as the controller keeps it: the
//! first one, the environment's state derived from the rest, and the applications' lines from a
//! bundle's facts and what the applier reports.

use std::collections::BTreeMap;

use etl::build::generation::Generation;
use etl::oci::bundle::Facts;
use etl::ops::status::{
    API_VERSION, ArtifactStatus, ControllerStatus, EnvironmentState, KIND, PipelineState,
    PipelineStatus, TagStatus,
};

use crate::config::Settings;
use crate::state::{AppState, State};

/// The document before the first check: nothing known but the configuration.
pub fn initial(settings: &Settings) -> ControllerStatus {
    ControllerStatus {
        api_version: API_VERSION.to_owned(),
        kind: KIND.to_owned(),
        project: settings.project.clone(),
        environment: settings.environment.clone(),
        generation: settings.generation.short().to_owned(),
        lattice: match settings.generation {
            Generation::V1 => settings.lattice.clone(),
            Generation::V2 => None,
        },
        bundle: settings.bundle.to_string(),
        tag: TagStatus::default(),
        applied: None,
        refused: None,
        state: EnvironmentState::Waiting,
        pipelines: Vec::new(),
    }
}

/// The environment's state from the rest of the document: `stale` when the last check of the
/// tag failed; `waiting` before anything is applied (`failed` if the tag's bundle was
/// refused); `failed` when the tag names a refused bundle or an application failed; `ready`
/// when the tag's bundle is applied and every application is deployed; else `reconciling`.
pub fn overall(doc: &ControllerStatus) -> EnvironmentState {
    if doc.tag.stale {
        return EnvironmentState::Stale;
    }
    let tag = doc.tag.digest.as_deref();
    // The tag names a refused bundle, unless that bundle was taken since (a signature pushed
    // after its tag: the refusal stays in the document as history).
    let refused_now = doc.refused.as_ref().is_some_and(|r| {
        Some(r.digest.as_str()) == tag && doc.applied.as_ref().is_none_or(|a| a.digest != r.digest)
    });
    let Some(applied) = &doc.applied else {
        return if refused_now {
            EnvironmentState::Failed
        } else {
            EnvironmentState::Waiting
        };
    };
    if refused_now
        || doc
            .pipelines
            .iter()
            .any(|p| p.state == PipelineState::Failed)
    {
        return EnvironmentState::Failed;
    }
    if Some(applied.digest.as_str()) == tag
        && doc
            .pipelines
            .iter()
            .all(|p| p.state == PipelineState::Deployed)
    {
        EnvironmentState::Ready
    } else {
        EnvironmentState::Reconciling
    }
}

/// One line per application of `facts` that `generation` deploys, in its order, from the
/// applier's `states` (an application it does not mention is undeployed); the artifacts are
/// those of `generation`. A v2 lattice deploys no shared application: its hosts have their own
/// HTTP listeners, so an application without `k8s/` manifests is not one of its lines.
///
/// Then one line per state of an application that is not one of those lines, in the
/// applier's order: what the bundle no longer has but the lattice still runs (being pruned, or
/// failing to be), so that the environment is not ready until it is gone.
pub fn pipelines(
    facts: &Facts,
    generation: Generation,
    states: &[AppState],
) -> Vec<PipelineStatus> {
    let mut lines = bundle_lines(facts, generation, states);
    let extra: Vec<PipelineStatus> = states
        .iter()
        .filter(|s| !lines.iter().any(|l| l.application == s.name))
        .map(|s| PipelineStatus {
            name: s.name.clone(),
            application: s.name.clone(),
            version: s.version.clone(),
            state: word(s.state),
            reason: s.reason.clone(),
            artifacts: Vec::new(),
            units: Vec::new(),
        })
        .collect();
    lines.extend(extra);
    lines
}

fn bundle_lines(facts: &Facts, generation: Generation, states: &[AppState]) -> Vec<PipelineStatus> {
    facts
        .applications
        .iter()
        .filter(|app| generation == Generation::V1 || app.k8s.is_some())
        .map(|app| {
            let state = states.iter().find(|s| s.name == app.name);
            PipelineStatus {
                name: app.pipeline.clone().unwrap_or_else(|| app.name.clone()),
                application: app.name.clone(),
                version: state.and_then(|s| s.version.clone()),
                state: state.map_or(PipelineState::Undeployed, |s| word(s.state)),
                reason: state.and_then(|s| s.reason.clone()),
                artifacts: app
                    .artifacts
                    .iter()
                    .filter(|a| a.generation == generation.short())
                    .map(|a| ArtifactStatus {
                        unit: a.unit.clone(),
                        image: a.image.clone(),
                        component_digest: a.component_digest.clone(),
                    })
                    .collect(),
                units: Vec::new(),
            }
        })
        .collect()
}

/// Every application of `facts` failed for one reason: the lattice could not be asked.
pub fn unreachable(facts: &Facts, generation: Generation, reason: &str) -> Vec<PipelineStatus> {
    let states: Vec<AppState> = facts
        .applications
        .iter()
        .map(|app| AppState {
            name: app.name.clone(),
            version: None,
            state: State::Failed,
            reason: Some(reason.to_owned()),
        })
        .collect();
    pipelines(facts, generation, &states)
}

/// Marks the pipelines whose JetStream streams or consumers are not as the bundle wants
/// (`failures`, by pipeline) `failed`, with why.
pub fn delivery_failed(lines: &mut [PipelineStatus], failures: &BTreeMap<String, String>) {
    for line in lines {
        if let Some(reason) = failures.get(&line.name) {
            line.state = PipelineState::Failed;
            line.reason = Some(reason.clone());
        }
    }
}

fn word(state: State) -> PipelineState {
    match state {
        State::Deployed => PipelineState::Deployed,
        State::Reconciling => PipelineState::Reconciling,
        State::Failed => PipelineState::Failed,
        State::Undeployed => PipelineState::Undeployed,
    }
}

/// The time now, RFC 3339 in UTC to the second.
pub fn now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use etl::ops::status::{Applied, Refused};

    use super::*;

    fn doc(tag: &str, applied: Option<&str>, states: &[PipelineState]) -> ControllerStatus {
        ControllerStatus {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            project: None,
            environment: None,
            generation: "v1".to_owned(),
            lattice: None,
            bundle: "h/r:t".to_owned(),
            tag: TagStatus {
                digest: Some(tag.to_owned()),
                ..TagStatus::default()
            },
            applied: applied.map(|d| Applied {
                digest: d.to_owned(),
                revision: None,
                signer: "k".to_owned(),
                applied_at: "t".to_owned(),
            }),
            refused: None,
            state: EnvironmentState::Waiting,
            pipelines: states
                .iter()
                .map(|s| PipelineStatus {
                    name: "p".to_owned(),
                    application: "p".to_owned(),
                    version: None,
                    state: *s,
                    reason: None,
                    artifacts: vec![],
                    units: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn the_environment_state() {
        use EnvironmentState as E;
        use PipelineState as P;
        let deployed = [P::Deployed, P::Deployed];
        assert_eq!(overall(&doc("a", Some("a"), &deployed)), E::Ready);
        assert_eq!(
            overall(&doc("a", Some("a"), &[P::Deployed, P::Reconciling])),
            E::Reconciling
        );
        assert_eq!(
            overall(&doc("a", Some("a"), &[P::Failed, P::Deployed])),
            E::Failed
        );
        assert_eq!(overall(&doc("b", Some("a"), &deployed)), E::Reconciling);
        assert_eq!(overall(&doc("a", None, &[])), E::Waiting);
        let mut refused = doc("b", Some("a"), &deployed);
        refused.refused = Some(Refused {
            digest: "b".to_owned(),
            reason: "unsigned".to_owned(),
            at: "t".to_owned(),
        });
        assert_eq!(overall(&refused), E::Failed);
        // The tag back at the applied bundle: the refusal is history.
        refused.tag.digest = Some("a".to_owned());
        assert_eq!(overall(&refused), E::Ready);
        refused.applied = None;
        refused.tag.digest = Some("b".to_owned());
        assert_eq!(overall(&refused), E::Failed);
        // Refused while unsigned, taken once its signature arrived: ready.
        let mut signed_late = doc("a", Some("a"), &deployed);
        signed_late.refused = Some(Refused {
            digest: "a".to_owned(),
            reason: "not signed".to_owned(),
            at: "t".to_owned(),
        });
        assert_eq!(overall(&signed_late), E::Ready);
        let mut stale = doc("a", Some("a"), &deployed);
        stale.tag.stale = true;
        assert_eq!(overall(&stale), E::Stale);
    }

    /// The facts of a bundle of project `p`, environment `dev`, with `applications`.
    fn facts(applications: Vec<etl::oci::bundle::ApplicationFacts>) -> etl::oci::bundle::Facts {
        etl::oci::bundle::Facts {
            api_version: "etl/v1alpha1".to_owned(),
            kind: "Bundle".to_owned(),
            project: "p".to_owned(),
            environment: "dev".to_owned(),
            registry: "r".to_owned(),
            lattice: "l".to_owned(),
            revision: None,
            source: None,
            applications,
            pipelines: Vec::new(),
        }
    }

    #[test]
    fn a_v2_lattice_has_no_line_for_a_shared_application() {
        use etl::oci::bundle::ApplicationFacts;
        let app = |name: &str, shared: bool| ApplicationFacts {
            name: name.to_owned(),
            pipeline: (!shared).then(|| name.to_owned()),
            version: "sha-0".to_owned(),
            shared,
            wadm: format!("wadm/{name}.yaml"),
            k8s: (!shared).then(|| format!("k8s/{name}.yaml")),
            artifacts: vec![],
        };
        let facts = facts(vec![app("listener", true), app("p", false)]);
        let deployed = |name: &str| AppState {
            name: name.to_owned(),
            version: Some("sha-0".to_owned()),
            state: State::Deployed,
            reason: None,
        };
        let names = |g, states: &[AppState]| -> Vec<String> {
            pipelines(&facts, g, states)
                .into_iter()
                .map(|p| format!("{} {:?}", p.application, p.state))
                .collect()
        };
        assert_eq!(
            names(Generation::V2, &[deployed("p")]),
            ["p Deployed"],
            "v2 hosts need no listener application"
        );
        assert_eq!(
            names(Generation::V1, &[deployed("p")]),
            ["listener Undeployed", "p Deployed"]
        );
    }

    #[test]
    fn a_pipeline_whose_streams_are_not_as_wanted_is_failed_with_why() {
        use etl::oci::bundle::ApplicationFacts;
        let app = |name: &str| ApplicationFacts {
            name: name.to_owned(),
            pipeline: Some(name.to_owned()),
            version: "sha-0".to_owned(),
            shared: false,
            wadm: format!("wadm/{name}.yaml"),
            k8s: None,
            artifacts: vec![],
        };
        let facts = facts(vec![app("a"), app("b")]);
        let deployed = |name: &str| AppState {
            name: name.to_owned(),
            version: Some("sha-0".to_owned()),
            state: State::Deployed,
            reason: None,
        };
        let mut lines = pipelines(&facts, Generation::V1, &[deployed("a"), deployed("b")]);
        let failures = BTreeMap::from([(
            "b".to_owned(),
            "JetStream stream `ETL_DATA_p_b`: the server refuses to update storage".to_owned(),
        )]);
        delivery_failed(&mut lines, &failures);
        assert_eq!(lines[0].state, PipelineState::Deployed);
        assert_eq!(lines[0].reason, None);
        assert_eq!(lines[1].state, PipelineState::Failed);
        assert_eq!(lines[1].reason.as_deref(), Some(failures["b"].as_str()));
    }

    #[test]
    fn what_is_being_pruned_has_a_line_and_keeps_the_environment_from_ready() {
        use etl::oci::bundle::ApplicationFacts;
        let facts = facts(vec![ApplicationFacts {
            name: "kept".to_owned(),
            pipeline: Some("kept".to_owned()),
            version: "sha-1".to_owned(),
            shared: false,
            wadm: "wadm/kept.yaml".to_owned(),
            k8s: Some("k8s/kept.yaml".to_owned()),
            artifacts: vec![],
        }]);
        let state = |name: &str, state, reason: Option<&str>| AppState {
            name: name.to_owned(),
            version: Some("sha-0".to_owned()),
            state,
            reason: reason.map(str::to_owned),
        };
        for generation in [Generation::V1, Generation::V2] {
            let states = [
                state("kept", State::Deployed, None),
                state(
                    "removed",
                    State::Reconciling,
                    Some("removed from the bundle: being undeployed"),
                ),
            ];
            let lines = pipelines(&facts, generation, &states);
            let summary: Vec<(&str, &str, PipelineState, Option<&str>)> = lines
                .iter()
                .map(|l| {
                    (
                        l.name.as_str(),
                        l.application.as_str(),
                        l.state,
                        l.reason.as_deref(),
                    )
                })
                .collect();
            assert_eq!(
                summary,
                [
                    ("kept", "kept", PipelineState::Deployed, None),
                    (
                        "removed",
                        "removed",
                        PipelineState::Reconciling,
                        Some("removed from the bundle: being undeployed")
                    ),
                ]
            );
            let mut d = doc("a", Some("a"), &[]);
            d.pipelines = lines;
            assert_eq!(overall(&d), EnvironmentState::Reconciling);
            // The lattice refused the prune: failed.
            let states = [
                state("kept", State::Deployed, None),
                state("removed", State::Failed, Some("wadm refused")),
            ];
            d.pipelines = pipelines(&facts, generation, &states);
            assert_eq!(overall(&d), EnvironmentState::Failed);
            // Gone: ready.
            d.pipelines = pipelines(&facts, generation, &states[..1]);
            assert_eq!(overall(&d), EnvironmentState::Ready);
        }
    }

    #[test]
    fn now_is_rfc3339_to_the_second() {
        let t = now();
        assert_eq!(t.len(), "2026-12-07T14:00:00Z".len(), "{t}");
        assert!(t.ends_with('Z'));
    }
}
