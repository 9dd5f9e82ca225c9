//! Stage `deployment`: how one pipeline runs in one environment, a [`Deployment`].
//!
//! For every unit (step or sink) it says how records reach it (the HTTP source, or the subjects
//! it subscribes to), where its outputs and dead letters go, and the runtime configuration its
//! composed component reads through `wasi:config/runtime` (see `docs/harness.md`). The local
//! runner (crate `etl-run`) wires its in-memory bus from this plan, and the manifest emitters
//! read the same plan, so a record takes the same path on a laptop and on a lattice.
//!
//! Subjects between steps are named by [`step_subject`] and [`dead_letter_subject`]; sources and
//! sinks on `nats`/`kafka` use the subject or topic their `with:` names.
//!
//! Secret settings (`{secret: KEY}`) are kept apart from the configuration, as setting name →
//! secret key (never a value): those the composed component reads itself ([`reads_secret`]: a
//! step's, an HTTP sink's headers) in [`UnitDeployment::secrets`], listed by name in its
//! configuration key `etl.secrets`; a connector's other secrets are credentials of its provider,
//! in [`UnitDeployment::link_secrets`] and [`SourceDeployment::secrets`].

use std::collections::BTreeMap;

use crate::diag;
use crate::spec::environments::Environments;
use crate::spec::load::{Loaded, Repo};
use crate::spec::model::{
    HEADER_SETTING, Pipeline, Setting, Settings, SinkConnector, SourceConnector,
};
use crate::spec::templates;

/// A pipeline as deployed to one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// Project name.
    pub project: String,
    /// Environment name.
    pub environment: String,
    /// The environment's lattice.
    pub lattice: String,
    /// Pipeline name.
    pub pipeline: String,
    /// The source.
    pub source: SourceDeployment,
    /// Steps in spec order, then sinks in spec order.
    pub units: Vec<UnitDeployment>,
}

/// The source of a deployed pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDeployment {
    /// Source name (what `from:` lists).
    pub name: String,
    /// Connector kind.
    pub connector: SourceConnector,
    /// The subject (`nats`) or topic (`kafka`) records arrive on; `None` for `http`.
    pub subject: Option<String>,
    /// Rendered `with:` settings (secret references left out).
    pub settings: BTreeMap<String, String>,
    /// Setting → secret key of its `{secret: KEY}` settings: credentials of its provider.
    pub secrets: BTreeMap<String, String>,
}

/// What a unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// A customer step.
    Step,
    /// A sink on this connector.
    Sink(SinkConnector),
}

/// One composed component of a deployed pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitDeployment {
    /// Step or sink name.
    pub name: String,
    /// Step or sink.
    pub kind: UnitKind,
    /// Whether the HTTP source feeds it (through `in-http`).
    pub http: bool,
    /// Subjects it consumes (through `in-messaging`), in `from:` order.
    pub subscriptions: Vec<String>,
    /// Subjects its outputs are published to (`etl.out.subjects`), for messaging outputs.
    pub publishes: Vec<String>,
    /// Its dead-letter subject (steps only).
    pub dead_letter: Option<String>,
    /// The runtime configuration of its component: `etl.*` and `step.*` keys.
    pub config: BTreeMap<String, String>,
    /// Rendered `with:` of a sink (secret references left out).
    pub settings: BTreeMap<String, String>,
    /// Setting name → secret key of the secret settings its component reads: a step's
    /// (`step.<name>`), an HTTP sink's `authorization` and `header.<Name>`. Their names are the
    /// configuration key `etl.secrets`.
    pub secrets: BTreeMap<String, String>,
    /// Setting → secret key of a sink's other secret settings: credentials of the provider its
    /// records go out through.
    pub link_secrets: BTreeMap<String, String>,
}

/// Config key: the names of the secret settings a unit's component reads, a comma list.
pub const SECRETS_KEY: &str = "etl.secrets";

/// Config key prefix: `etl.out.header.<Name>` is a header of every request of an HTTP sink.
pub const HEADER_KEY: &str = "etl.out.header.";

/// Whether the harness of a unit of kind `kind` reads its `with:` setting `key` (from its
/// runtime configuration or, for a secret, through the settings part) rather than passing it to
/// the provider: a nats sink's `subject`, a kafka sink's `topic`, an s3 sink's `bucket` and
/// `key`, an http sink's `url`, `content-type`, `authorization` and `header.<Name>`.
pub fn harness_reads(kind: UnitKind, key: &str) -> bool {
    match kind {
        UnitKind::Sink(SinkConnector::Http) => {
            matches!(key, "url" | "content-type" | "authorization")
                || key.starts_with(HEADER_SETTING)
        }
        UnitKind::Sink(SinkConnector::Nats) => key == "subject",
        // The harness publishes each record with the topic as its subject; a `topic` on the
        // sink's consumer link would make messaging-kafka consume that topic into the sink.
        UnitKind::Sink(SinkConnector::Kafka) => key == "topic",
        // blobstore-s3 has no `bucket` setting: the bucket is the container the harness opens.
        UnitKind::Sink(SinkConnector::S3) => matches!(key, "bucket" | "key"),
        UnitKind::Step => true,
    }
}

/// Whether the component of a unit of kind `kind` reads its secret setting `key` itself
/// (through the settings part): every secret of a step (`config:`), an HTTP sink's
/// `authorization` and `header.<Name>`. Any other secret of a connector is its provider's.
pub fn reads_secret(kind: UnitKind, key: &str) -> bool {
    match kind {
        UnitKind::Step => true,
        UnitKind::Sink(SinkConnector::Http) => {
            key == "authorization" || key.starts_with(HEADER_SETTING)
        }
        UnitKind::Sink(_) => false,
    }
}

/// Why a deployment could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// The project is missing or did not load.
    #[error("the repo has no loaded `etl.yaml`")]
    NoProject,
    /// No such environment.
    #[error("unknown environment `{name}`{}; the project defines {}", help(.suggestion), diag::quoted_list(.known))]
    UnknownEnvironment {
        /// The name asked for.
        name: String,
        /// A near miss.
        suggestion: Option<String>,
        /// Every environment.
        known: Vec<String>,
    },
    /// No such pipeline.
    #[error("unknown pipeline `{name}`{}; the repo defines {}", help(.suggestion), diag::quoted_list(.known))]
    UnknownPipeline {
        /// The name asked for.
        name: String,
        /// A near miss.
        suggestion: Option<String>,
        /// Every pipeline.
        known: Vec<String>,
    },
    /// A setting failed to render (validation would have reported it).
    #[error("`{unit}`: setting `{key}` does not render in environment `{environment}`: {message}")]
    Render {
        /// The source, step or sink.
        unit: String,
        /// The setting.
        key: String,
        /// The environment.
        environment: String,
        /// Why.
        message: String,
    },
    /// A connector lacks a setting it needs (validation would have reported it).
    #[error("`{unit}`: the `{connector}` connector needs `with: {{ {key}: … }}`")]
    MissingSetting {
        /// The source or sink.
        unit: String,
        /// Its connector kind.
        connector: &'static str,
        /// The missing key.
        key: &'static str,
    },
}

fn help(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// The subject a step publishes its outputs to.
pub fn step_subject(project: &str, pipeline: &str, step: &str) -> String {
    format!("etl.{project}.{pipeline}.out.{step}")
}

/// The subject a step publishes its dead letters to.
pub fn dead_letter_subject(project: &str, pipeline: &str, step: &str) -> String {
    format!("etl.{project}.{pipeline}.dlq.{step}")
}

/// The environment a test fixture or command uses when none is named: the project's first.
pub fn default_environment(repo: &Repo) -> Option<String> {
    let project = repo.project.as_ref()?;
    project
        .spec
        .spec
        .environments
        .keys()
        .next()
        .map(|n| n.to_string())
}

/// The pipeline named `name`, or an error that says which ones there are.
pub fn find_pipeline<'a>(
    repo: &'a Repo,
    name: &str,
) -> Result<&'a Loaded<Pipeline>, DeploymentError> {
    let names = || repo.pipelines.iter().map(|p| p.spec.metadata.name.as_str());
    repo.pipelines
        .iter()
        .find(|p| *p.spec.metadata.name == *name)
        .ok_or_else(|| DeploymentError::UnknownPipeline {
            name: name.to_owned(),
            suggestion: diag::closest(name, names()).map(str::to_owned),
            known: names().map(str::to_owned).collect(),
        })
}

/// Plans `pipeline` in `environment` for a repo that validated without errors.
pub fn deploy(
    repo: &Repo,
    environment: &str,
    pipeline: &str,
) -> Result<Deployment, DeploymentError> {
    let project = repo.project.as_ref().ok_or(DeploymentError::NoProject)?;
    let environments = Environments::of(repo).ok_or(DeploymentError::NoProject)?;
    let env = environments
        .get(environment)
        .ok_or_else(|| DeploymentError::UnknownEnvironment {
            name: environment.to_owned(),
            suggestion: diag::closest(environment, environments.names()).map(str::to_owned),
            known: environments.names().map(str::to_owned).collect(),
        })?;
    let spec: &Pipeline = &find_pipeline(repo, pipeline)?.spec;
    let project_name = project.spec.metadata.name.to_string();
    let engine = templates::engine();
    let context = templates::context(env, pipeline);
    // `with:` of a source or sink, with the environment file's override merged over it.
    let with_of = |name: &str, with: &Settings| -> Settings {
        let mut merged = with.clone();
        for file in repo
            .environments
            .iter()
            .filter(|f| *f.spec.metadata.name == *environment)
        {
            if let Some(o) = file
                .spec
                .spec
                .pipelines
                .iter()
                .find(|(p, _)| ***p == *pipeline)
                .and_then(|(_, o)| o.connectors.iter().find(|(c, _)| ***c == *name))
            {
                merged.extend(o.1.with.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        merged
    };
    let render = |unit: &str, settings: &Settings| -> Result<Rendered, DeploymentError> {
        let mut out = Rendered::default();
        for (key, setting) in settings {
            match setting {
                Setting::Secret(s) => {
                    out.secrets.insert(key.clone(), s.secret.clone());
                }
                Setting::Value(v) => {
                    let text = v.as_text();
                    let text = if templates::is_template(&text) {
                        engine.render_str(&text, context.clone()).map_err(|e| {
                            DeploymentError::Render {
                                unit: unit.to_owned(),
                                key: key.clone(),
                                environment: environment.to_owned(),
                                message: e.detail().unwrap_or("render error").to_owned(),
                            }
                        })?
                    } else {
                        text
                    };
                    out.values.insert(key.clone(), text);
                }
            }
        }
        Ok(out)
    };

    let source = &spec.spec.source;
    let source_settings = render(&source.name, &with_of(&source.name, &source.with))?;
    let source_subject = match source.connector.required_key() {
        None => None,
        Some(key) => Some(source_settings.values.get(key).cloned().ok_or(
            DeploymentError::MissingSetting {
                unit: source.name.to_string(),
                connector: source.connector.name(),
                key,
            },
        )?),
    };
    // How a unit reading `from` is fed: the HTTP flag, the subjects, and `etl.in.*` config.
    let inbound = |from: &[String], config: &mut BTreeMap<String, String>| {
        let mut http = false;
        let mut subscriptions = Vec::new();
        for f in from {
            if spec.spec.is_http_source(f) {
                http = true;
                continue;
            }
            let subject = if *f == *source.name {
                source_subject
                    .clone()
                    .expect("nats and kafka sources have one")
            } else {
                step_subject(&project_name, pipeline, f)
            };
            if !subscriptions.contains(&subject) {
                subscriptions.push(subject);
            }
        }
        if http {
            for (key, name) in [
                ("headers", "etl.in.headers"),
                ("max-body", "etl.in.max-body"),
            ] {
                if let Some(v) = source_settings.values.get(key) {
                    config.insert(name.to_owned(), v.clone());
                }
            }
        }
        (http, subscriptions)
    };

    let mut units = Vec::new();
    for step in &spec.spec.steps {
        let rendered = render(&step.name, &step.config)?;
        let mut config: BTreeMap<String, String> = rendered
            .values
            .iter()
            .map(|(k, v)| (format!("step.{k}"), v.clone()))
            .collect();
        let (http, subscriptions) = inbound(&step.from, &mut config);
        let subject = step_subject(&project_name, pipeline, &step.name);
        let dead_letter = dead_letter_subject(&project_name, pipeline, &step.name);
        config.insert("etl.out.subjects".to_owned(), subject.clone());
        config.insert("etl.out.dead-letter".to_owned(), dead_letter.clone());
        let secrets: BTreeMap<String, String> = rendered
            .secrets
            .iter()
            .map(|(k, v)| (format!("step.{k}"), v.clone()))
            .collect();
        list_secrets(&mut config, &secrets);
        units.push(UnitDeployment {
            name: step.name.to_string(),
            kind: UnitKind::Step,
            http,
            subscriptions,
            publishes: vec![subject],
            dead_letter: Some(dead_letter),
            config,
            settings: BTreeMap::new(),
            secrets,
            link_secrets: BTreeMap::new(),
        });
    }
    for sink in &spec.spec.sinks {
        let rendered = render(&sink.name, &with_of(&sink.name, &sink.with))?;
        let mut config = BTreeMap::new();
        let (http, subscriptions) = inbound(&sink.from, &mut config);
        let required = sink.connector.required_key();
        let target =
            rendered
                .values
                .get(required)
                .cloned()
                .ok_or(DeploymentError::MissingSetting {
                    unit: sink.name.to_string(),
                    connector: sink.connector.name(),
                    key: required,
                })?;
        let mut publishes = Vec::new();
        match sink.connector {
            SinkConnector::Nats | SinkConnector::Kafka => {
                config.insert("etl.out.subjects".to_owned(), target.clone());
                publishes.push(target);
            }
            SinkConnector::Http => {
                config.insert("etl.out.url".to_owned(), target);
                if let Some(ct) = rendered.values.get("content-type") {
                    config.insert("etl.out.content-type".to_owned(), ct.clone());
                }
                for (key, value) in &rendered.values {
                    let header = match key.strip_prefix(HEADER_SETTING) {
                        Some(header) => header,
                        None if key == "authorization" => key,
                        None => continue,
                    };
                    config.insert(format!("{HEADER_KEY}{header}"), value.clone());
                }
            }
            SinkConnector::S3 => {
                config.insert("etl.out.container".to_owned(), target);
                if let Some(key) = rendered.values.get("key") {
                    config.insert("etl.out.key".to_owned(), key.clone());
                }
            }
        }
        let kind = UnitKind::Sink(sink.connector);
        let (secrets, link_secrets): (BTreeMap<_, _>, BTreeMap<_, _>) = rendered
            .secrets
            .into_iter()
            .partition(|(k, _)| reads_secret(kind, k));
        list_secrets(&mut config, &secrets);
        units.push(UnitDeployment {
            name: sink.name.to_string(),
            kind,
            http,
            subscriptions,
            publishes,
            dead_letter: None,
            config,
            settings: rendered.values,
            secrets,
            link_secrets,
        });
    }
    Ok(Deployment {
        project: project_name,
        environment: environment.to_owned(),
        lattice: env.lattice.clone(),
        pipeline: pipeline.to_owned(),
        source: SourceDeployment {
            name: source.name.to_string(),
            connector: source.connector,
            subject: source_subject,
            settings: source_settings.values,
            secrets: source_settings.secrets,
        },
        units,
    })
}

/// Lists the names of `secrets` under [`SECRETS_KEY`] in `config`, when there are any.
fn list_secrets(config: &mut BTreeMap<String, String>, secrets: &BTreeMap<String, String>) {
    if !secrets.is_empty() {
        let names: Vec<&str> = secrets.keys().map(String::as_str).collect();
        config.insert(SECRETS_KEY.to_owned(), names.join(","));
    }
}

/// Settings split into rendered values and secret references.
#[derive(Default)]
struct Rendered {
    values: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
}
