//! `dist/plan.json`, the one description of a build every command reads: what was built from
//! what, the composed artifacts, and every pipeline as deployed to every environment.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value as Json;

use crate::build::emit::Application;
use crate::build::resolve;

/// `dist/plan.json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Always `etl/v1alpha1`.
    pub api_version: &'static str,
    /// Always `Plan`.
    pub kind: &'static str,
    /// Project name.
    pub project: String,
    /// OCI repository prefix.
    pub registry: String,
    /// Digest of every spec file read, by path.
    pub inputs: BTreeMap<String, String>,
    /// Digest of every harness part, by name.
    pub harness: BTreeMap<&'static str, String>,
    /// One entry per pipeline, by name.
    pub pipelines: Vec<PipelinePlan>,
    /// Where this compile came from: commit, time, source.
    pub provenance: ProvenancePlan,
    /// Every pipeline as deployed to every environment: what the manifests say.
    pub deployments: BTreeMap<String, BTreeMap<String, Application>>,
}

/// Where a compile came from. Only here: the artifacts' bytes depend on what runs alone, so an
/// unchanged step keeps its digest across commits.
#[derive(Debug, Clone, Serialize)]
pub struct ProvenancePlan {
    /// RFC 3339 time: `SOURCE_DATE_EPOCH`, else the commit's time, else the Unix epoch.
    pub created: String,
    /// Where the pipeline repo lives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The pipeline repo's commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// One pipeline of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PipelinePlan {
    /// Pipeline name.
    pub name: String,
    /// Its spec file.
    pub file: String,
    /// Customer steps.
    pub steps: Vec<UnitPlan>,
    /// Sinks.
    pub sinks: Vec<UnitPlan>,
}

/// One composed component: a step or a sink.
#[derive(Debug, Clone, Serialize)]
pub struct UnitPlan {
    /// Step or sink name.
    pub name: String,
    /// What it consumes.
    pub from: Vec<String>,
    /// The customer component (steps only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerPlan>,
    /// The harness parts around it.
    pub harness: HarnessPlan,
    /// The composed artifact.
    pub artifact: ArtifactPlan,
}

/// The customer component as resolved.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerPlan {
    /// The reference as written.
    pub component: String,
    /// Digest of the bytes (`digest:`).
    pub digest: String,
    /// Component or core module.
    pub origin: resolve::Origin,
    /// Digest of the component composed (the componentized module, or the same).
    pub component_digest: String,
    /// Its imports beyond the contract, each granted by the policy: its capabilities.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
}

/// The harness parts of one composition.
#[derive(Debug, Clone, Serialize)]
pub struct HarnessPlan {
    /// Entry parts.
    #[serde(rename = "in")]
    pub inbound: Vec<&'static str>,
    /// Delivery part.
    pub out: &'static str,
}

/// A composed component.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactPlan {
    /// `sha256:` of the composed bytes.
    pub digest: String,
    /// Path under `dist/`.
    pub path: String,
    /// Size in bytes.
    pub size: usize,
    /// Its imports, which the host must provide.
    pub imports: Vec<String>,
    /// Its exports.
    pub exports: Vec<String>,
}

/// An environment name (`--env`, `--from`, `--to`) that a plan does not deploy to.
#[derive(Debug, thiserror::Error)]
#[error("the plan deploys to no environment `{name}` (it has: {known}){help}")]
pub struct UnknownEnvironment {
    /// The name given.
    pub name: String,
    /// The plan's environments.
    pub known: String,
    /// A " (did you mean …?)", if one is close.
    pub help: String,
}

/// The applications a `plan.json` (read as JSON) deploys to `env`, by pipeline.
pub fn deployments_of<'a>(
    plan: &'a Json,
    env: &str,
) -> Result<&'a serde_json::Map<String, Json>, UnknownEnvironment> {
    let deployments = plan["deployments"].as_object();
    deployments
        .and_then(|d| d.get(env))
        .and_then(Json::as_object)
        .ok_or_else(|| {
            let known: Vec<&str> = deployments
                .into_iter()
                .flatten()
                .map(|(name, _)| name.as_str())
                .collect();
            UnknownEnvironment {
                name: env.to_owned(),
                known: known.join(", "),
                help: crate::diag::did_you_mean(env, known.iter().copied())
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default(),
            }
        })
}
