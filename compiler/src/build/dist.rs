//! `dist/plan.json`, the one description of a build every command reads: what was built from
//! what, the composed artifacts, and every pipeline as deployed to every environment. Written by
//! [`crate::build::build`], read back only through [`read`], [`read_file`] or [`parse`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::build::emit::{self, Application};
use crate::build::generation::Generation;
use crate::build::jetstream::JetStream;
use crate::build::resolve;
use crate::oci::claims::Claims;
use crate::util::io::IoError;

/// The plan's file name in `dist/`.
pub const FILE: &str = "plan.json";

/// The plan's `kind`.
pub const KIND: &str = "Plan";

/// `dist/plan.json`.
///
/// Plans written by earlier etl versions read too: those before deployments were emitted lack
/// `provenance` and `deployments`, and customers without grants lack `grants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Always `etl/v1alpha1`.
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// Project name.
    pub project: String,
    /// OCI repository prefix; empty when a plan names none.
    #[serde(default)]
    pub registry: String,
    /// Digest of every spec file read, by path.
    pub inputs: BTreeMap<String, String>,
    /// Digest of every harness part, by name.
    pub harness: BTreeMap<String, String>,
    /// One entry per pipeline, by name.
    pub pipelines: Vec<PipelinePlan>,
    /// Where this compile came from: commit, time, source.
    #[serde(default)]
    pub provenance: ProvenancePlan,
    /// Every pipeline as deployed to every environment: what the manifests say.
    #[serde(default)]
    pub deployments: BTreeMap<String, BTreeMap<String, Application>>,
}

/// Where a compile came from. Only here: the artifacts' bytes depend on what runs alone, so an
/// unchanged step keeps its digest across commits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelinePlan {
    /// Pipeline name.
    pub name: String,
    /// Its spec file.
    pub file: String,
    /// Customer steps.
    pub steps: Vec<UnitPlan>,
    /// Sinks.
    pub sinks: Vec<UnitPlan>,
    /// What it reads when its source is a `pipeline` source (a sub-pipeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamPlan>,
}

/// The step or `nats` sink of another pipeline a sub-pipeline reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamPlan {
    /// The pipeline.
    pub pipeline: String,
    /// Its step or `nats` sink.
    pub from: String,
}

impl PipelinePlan {
    /// Its steps, then its sinks.
    pub fn units(&self) -> impl Iterator<Item = &UnitPlan> {
        self.steps.iter().chain(&self.sinks)
    }

    /// The step or sink named `name`.
    pub fn unit(&self, name: &str) -> Option<&UnitPlan> {
        self.units().find(|u| u.name == name)
    }
}

/// One composed component: a step or a sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitPlan {
    /// Step or sink name.
    pub name: String,
    /// What it consumes.
    pub from: Vec<String>,
    /// The customer component (steps only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerPlan>,
    /// The harness parts around it (the settings part is the generation's).
    pub harness: HarnessPlan,
    /// The composed artifact wasmCloud 1.x hosts run.
    pub artifact: ArtifactPlan,
    /// The composed artifact wasmCloud v2 hosts run: the same parts around the v2 settings
    /// part. Absent from plans of etl versions that built one artifact per step.
    #[serde(
        rename = "artifactV2",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_v2: Option<ArtifactPlan>,
}

impl UnitPlan {
    /// Its artifact for `generation`, if the plan has one.
    pub fn artifact_of(&self, generation: Generation) -> Option<&ArtifactPlan> {
        match generation {
            Generation::V1 => Some(&self.artifact),
            Generation::V2 => self.artifact_v2.as_ref(),
        }
    }

    /// Every artifact it has, 1.x first.
    pub fn artifacts(&self) -> impl Iterator<Item = (Generation, &ArtifactPlan)> {
        Generation::ALL
            .into_iter()
            .filter_map(|g| Some((g, self.artifact_of(g)?)))
    }
}

/// The customer component as resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
    /// The hosts its outbound HTTP may reach (`wasi:http/outgoing-handler`), from the grants
    /// that cover that import; empty when it does not import it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<String>,
}

/// The harness parts of one composition, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HarnessPlan {
    /// Entry parts.
    #[serde(rename = "in")]
    pub inbound: Vec<String>,
    /// Delivery part.
    pub out: String,
    /// The guard of the customer's outbound HTTP, when it has one (`egress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<String>,
    /// The part that sets `Nats-Msg-Id` on what the unit publishes, in its wasmCloud 1.x
    /// artifact only (`msg-id`, when the project sets `delivery.nats_msg_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
}

/// A composed component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Core module instances one instantiation of it creates: what it takes of a wasmCloud v2
    /// host's instance pool per message in flight. 0 in plans of earlier versions.
    #[serde(rename = "coreInstances", default)]
    pub core_instances: u32,
    /// The wascap claims embedded in it (wasmCloud 1.x artifacts compiled with
    /// `--claims-key`): the subject a secrets backend maps the unit's secrets to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Claims>,
}

/// Why a `plan.json` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file is missing or unreadable.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The file is not a plan.
    #[error("`{}` is not an etl plan: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why not.
        reason: NotAPlan,
    },
}

/// Why some bytes are not a plan.
#[derive(Debug, thiserror::Error)]
pub enum NotAPlan {
    /// Not JSON, or not the shape of a plan.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A JSON object without a `kind`.
    #[error("it has no `kind: Plan`")]
    NoKind,
    /// A JSON object of another kind.
    #[error("its kind is `{0}`, not `Plan`")]
    Kind(String),
}

/// The plan of the output directory `dist` (its [`FILE`]).
pub fn read(dist: &Path) -> Result<Plan, ReadError> {
    read_file(&dist.join(FILE)).map(|(plan, _)| plan)
}

/// The plan in the file at `path`, and the file's bytes.
pub fn read_file(path: &Path) -> Result<(Plan, Vec<u8>), ReadError> {
    let bytes = std::fs::read(path).map_err(IoError::at(path))?;
    let plan = parse(&bytes).map_err(|reason| ReadError::Invalid {
        path: path.to_owned(),
        reason,
    })?;
    Ok((plan, bytes))
}

/// The plan `bytes` hold. An object without a `kind`, or of another kind, is refused as such,
/// whatever else it has.
pub fn parse(bytes: &[u8]) -> Result<Plan, NotAPlan> {
    /// Just the kind, to tell another document from a broken plan.
    #[derive(Deserialize)]
    struct Kind {
        #[serde(default)]
        kind: String,
    }
    let kind = |kind: String| match kind.as_str() {
        "" => NotAPlan::NoKind,
        _ => NotAPlan::Kind(kind),
    };
    match serde_json::from_slice::<Plan>(bytes) {
        Ok(plan) if plan.kind == KIND => Ok(plan),
        Ok(plan) => Err(kind(plan.kind)),
        Err(e) => match serde_json::from_slice::<Kind>(bytes) {
            Ok(k) if k.kind != KIND => Err(kind(k.kind)),
            _ => Err(NotAPlan::Json(e)),
        },
    }
}

/// Why an output directory names no registry for a command given no `--registry`.
#[derive(Debug, thiserror::Error)]
pub enum NoRegistry {
    /// Its plan cannot be read.
    #[error("`{}`: {reason} (or give --registry)", path.display())]
    Unreadable {
        /// The plan's path.
        path: PathBuf,
        /// Why: the OS error, or why it is not a plan.
        reason: String,
    },
    /// Its plan names no registry.
    #[error("`{}` names no registry: give --registry", .0.display())]
    Unnamed(PathBuf),
}

/// The registry the plan of the output directory `dist` was compiled for: what `etl push` and
/// `etl promote` use when given no `--registry`.
pub fn recorded_registry(dist: &Path) -> Result<String, NoRegistry> {
    let path = dist.join(FILE);
    let plan = read(dist).map_err(|e| NoRegistry::Unreadable {
        path: path.clone(),
        reason: match e {
            ReadError::Io(e) => e.source.to_string(),
            ReadError::Invalid { reason, .. } => reason.to_string(),
        },
    })?;
    if plan.registry.is_empty() {
        return Err(NoRegistry::Unnamed(path));
    }
    Ok(plan.registry)
}

/// The manifest files of the applications `apps` (by pipeline) of `env`, by path under `dist/`:
/// for each pipeline `<env>/wadm/<pipeline>.yaml` (wasmCloud 1.x) and `<env>/k8s/<pipeline>.yaml`
/// (wasmCloud v2), `<env>/jetstream/<pipeline>.json` for each one delivered at least once (its
/// stream and consumers, [`JetStream`]), and `<env>/wadm/<name>.yaml` for each shared
/// application they reference (the environment's HTTP listener, which wadm must deploy before
/// them).
pub fn manifest_files(
    env: &str,
    apps: &BTreeMap<String, Application>,
) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for (pipeline, app) in apps {
        files.insert(
            format!("{env}/wadm/{pipeline}.yaml"),
            emit::wadm::manifest(app).into_bytes(),
        );
        files.insert(
            format!("{env}/k8s/{pipeline}.yaml"),
            emit::k8s::manifests(app).into_bytes(),
        );
        if let Some(jetstream) = &app.jetstream {
            files.insert(
                format!("{env}/{}", JetStream::path(pipeline)),
                jetstream.to_json(),
            );
        }
    }
    for (name, app) in emit::shared_applications(apps.values()) {
        files.insert(
            format!("{env}/wadm/{name}.yaml"),
            emit::wadm::manifest(&app).into_bytes(),
        );
    }
    files
}

impl Plan {
    /// The plan as written to `dist/`: canonical JSON.
    pub fn to_json(&self) -> String {
        crate::util::json::pretty(self)
    }

    /// The applications the plan deploys to `env`, by pipeline.
    pub fn deployments_of(
        &self,
        env: &str,
    ) -> Result<&BTreeMap<String, Application>, UnknownEnvironment> {
        self.deployments.get(env).ok_or_else(|| {
            let known: Vec<&str> = self.deployments.keys().map(String::as_str).collect();
            UnknownEnvironment {
                name: env.to_owned(),
                known: known.join(", "),
                help: crate::diag::did_you_mean(env, known.iter().copied())
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default(),
            }
        })
    }
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::oci::layout::Provenance;

    /// The example's plan.json, as built.
    fn example_plan() -> Vec<u8> {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/iot-sensors");
        let provenance = Provenance {
            created: 1_700_000_000,
            source: Some("https://git.acme.example/platform/pipelines".to_owned()),
            revision: Some("0123456789abcdef0123456789abcdef01234567".to_owned()),
        };
        let mut build = crate::build::build(&example, None, &provenance).unwrap();
        let bytes = build.files.remove(FILE).expect("the example compiles");
        assert_eq!(parse(&bytes).unwrap(), build.plan.unwrap());
        bytes
    }

    #[test]
    fn a_plan_read_back_writes_the_same_bytes() {
        let bytes = example_plan();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), &bytes).unwrap();
        let plan = read(dir.path()).unwrap();
        assert_eq!(plan.to_json().as_bytes(), bytes.as_slice());
        assert!(!plan.deployments.is_empty() && plan.provenance.revision.is_some());
    }

    #[test]
    fn plans_of_earlier_versions_read() {
        let mut plan: serde_json::Value = serde_json::from_slice(&example_plan()).unwrap();
        // Before deployments were emitted: no provenance, no deployments, no grants, one
        // artifact per step.
        let object = plan.as_object_mut().unwrap();
        object.remove("provenance");
        object.remove("deployments");
        for p in plan["pipelines"].as_array_mut().unwrap() {
            for u in p["steps"].as_array_mut().unwrap() {
                u["customer"].as_object_mut().unwrap().remove("grants");
                u.as_object_mut().unwrap().remove("artifactV2");
            }
        }
        let read = parse(plan.to_string().as_bytes()).unwrap();
        assert!(read.deployments.is_empty());
        let step = &read.pipelines[0].steps[0];
        assert!(step.artifact_v2.is_none());
        assert_eq!(step.artifacts().count(), 1);
        assert_eq!(read.provenance, ProvenancePlan::default());
    }

    #[test]
    fn deployments_of_earlier_versions_read_with_their_imports() {
        // Before one artifact per generation: a component's imports beside its artifact, no v2
        // artifact, no max_in_flight.
        let mut plan: serde_json::Value = serde_json::from_slice(&example_plan()).unwrap();
        let app = &mut plan["deployments"]["dev"]["sensor-ingest"];
        app.as_object_mut().unwrap().remove("maxInFlight");
        let c = &mut app["components"][0];
        let imports = c["artifact"]["imports"].clone();
        c.as_object_mut().unwrap().remove("artifactV2");
        c["artifact"].as_object_mut().unwrap().remove("imports");
        c["imports"] = imports.clone();
        let read = parse(plan.to_string().as_bytes()).unwrap();
        let app = &read.deployments["dev"]["sensor-ingest"];
        assert_eq!(app.max_in_flight, None);
        let c = &app.components[0];
        assert!(c.artifact_v2.is_none());
        assert_eq!(serde_json::to_value(&c.artifact.imports).unwrap(), imports);
        assert!(!c.artifact.imports.is_empty());
    }

    #[test]
    fn other_documents_are_told_from_broken_plans() {
        let reason = |text: &str| parse(text.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            reason(r#"{"kind": "Other"}"#),
            "its kind is `Other`, not `Plan`"
        );
        assert_eq!(reason("{}"), "it has no `kind: Plan`");
        assert_eq!(reason("[]"), "it has no `kind: Plan`");
        assert!(reason(r#"{"kind": "Plan"}"#).contains("missing field"));
        assert!(reason("not json").contains("expected"));
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read(dir.path()), Err(ReadError::Io(_))));
        std::fs::write(dir.path().join(FILE), "{}").unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(
            e.ends_with("plan.json` is not an etl plan: it has no `kind: Plan`"),
            "{e}"
        );
    }

    #[test]
    fn the_recorded_registry_or_why_there_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE).display().to_string();
        let e = recorded_registry(dir.path()).unwrap_err().to_string();
        assert!(e.starts_with(&format!("`{path}`: ")), "{e}");
        assert!(e.ends_with("(os error 2) (or give --registry)"), "{e}");
        std::fs::write(dir.path().join(FILE), "not json").unwrap();
        let e = recorded_registry(dir.path()).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("`{path}`: expected ident at line 1 column 2 (or give --registry)")
        );
        let mut plan: serde_json::Value = serde_json::from_slice(&example_plan()).unwrap();
        std::fs::write(dir.path().join(FILE), plan.to_string()).unwrap();
        assert_eq!(
            recorded_registry(dir.path()).unwrap(),
            "registry.acme.example/etl"
        );
        plan.as_object_mut().unwrap().remove("registry");
        std::fs::write(dir.path().join(FILE), plan.to_string()).unwrap();
        let e = recorded_registry(dir.path()).unwrap_err().to_string();
        assert_eq!(e, format!("`{path}` names no registry: give --registry"));
    }

    #[test]
    fn deployments_of_an_unknown_environment_suggest_one() {
        let plan = parse(&example_plan()).unwrap();
        assert_eq!(plan.deployments_of("prod").unwrap().len(), 1);
        let e = plan.deployments_of("prd").unwrap_err().to_string();
        assert!(e.contains("(it has: dev, prod, staging)"), "{e}");
        assert!(e.contains("did you mean"), "{e}");
    }
}
