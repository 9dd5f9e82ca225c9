//! Stage `deployment`: how one pipeline runs in one environment, a [`Deployment`].
//!
//! For every unit (step or sink) it says how records reach it (the HTTP source, or the subjects
//! it subscribes to), where its outputs and dead letters go, and the runtime configuration its
//! composed component reads through `wasi:config/runtime` (see `docs/harness.md`). The local
//! runner (crate `etl-run`) wires its in-memory bus from this plan, and the manifest emitters
//! read the same plan, so a record takes the same path on a laptop and on a lattice.
//!
//! Subjects between steps are named by [`step_subject`] and [`dead_letter_subject`]; sources and
//! sinks on `nats`/`kafka` use the subject or topic their `with:` names, and a `pipeline` source
//! (a sub-pipeline) the subject of the step or `nats` sink it names, as that pipeline publishes
//! it in the same environment. Every unit reports each batch to its [`report_subject`]
//! (configuration key [`REPORT_SUBJECT`]), and every step also listens on its
//! [`replay_subject`], where the controller replays its dead letters (`docs/reporting.md`).
//! In an environment whose delivery is at least once (the default), the units read the subjects
//! a JetStream stream captures through consumers of that stream ([`at_least_once`]), which
//! [`crate::build::jetstream`] defines.
//!
//! Secret settings (`{secret: KEY}`) are kept apart from the configuration, as setting name →
//! secret key (never a value): those the composed component reads itself ([`reads_secret`]: a
//! step's, an HTTP sink's headers) in [`UnitDeployment::secrets`], listed by name in its
//! configuration key `etl.secrets`; a connector's other secrets are credentials of its provider,
//! in [`UnitDeployment::link_secrets`] and [`SourceDeployment::secrets`].

use std::collections::BTreeMap;

use crate::diag;
use crate::spec::delivery::DeliverySettings;
use crate::spec::environments::Environments;
use crate::spec::load::{Loaded, Repo};
use crate::spec::model::{
    HEADER_SETTING, Pipeline, Setting, Settings, SinkConnector, SourceConnector, UPSTREAM_KEYS,
    Upstream,
};
use crate::spec::overrides::connector_with;
use crate::spec::templates;

use crate::spec::subjects::mqtt_subject;
pub use crate::spec::subjects::{
    dead_letter_subject, deliver_subject, replay_subject, report_subject, step_subject,
};

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
    /// The subject (`nats`, `pipeline`) or topic (`kafka`) records arrive on; `None` for `http`.
    pub subject: Option<String>,
    /// What a `pipeline` source reads: another pipeline's step or `nats` sink.
    pub upstream: Option<UpstreamDeployment>,
    /// Rendered `with:` settings (secret references left out).
    pub settings: BTreeMap<String, String>,
    /// Setting → secret key of its `{secret: KEY}` settings: credentials of its provider.
    pub secrets: BTreeMap<String, String>,
}

/// The step or `nats` sink of another pipeline a `pipeline` source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamDeployment {
    /// The pipeline read.
    pub pipeline: String,
    /// Its step or `nats` sink.
    pub from: String,
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
    /// What it reads, in `from:` order: `[subject, node]` for each entry of its `from:`, the
    /// subject (or topic) that node's records reach it on, `http` for the HTTP source.
    pub inputs: Vec<(String, String)>,
    /// Subjects it consumes (through `in-messaging`): those of its `from:` in order, then a
    /// step's [`UnitDeployment::replay`] subject. In an at-least-once environment the subjects
    /// a JetStream stream captures are replaced by the one its consumers deliver to
    /// ([`at_least_once`]).
    pub subscriptions: Vec<String>,
    /// Subjects its outputs are published to (`etl.out.subjects`), for messaging outputs.
    pub publishes: Vec<String>,
    /// Its dead-letter subject: a step's; a sink's too when it reads through JetStream (what
    /// still fails on the last delivery goes there).
    pub dead_letter: Option<String>,
    /// The subject its dead letters are replayed to, which it subscribes to (steps only).
    pub replay: Option<String>,
    /// The subject it reports each batch to ([`REPORT_SUBJECT`] of its configuration).
    pub report: String,
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

/// Config key: the subject a unit's `in` part publishes its per-batch report to. Deployed units
/// have it; `etl run` and `etl test` leave it out ([`UnitDeployment::local_config`]).
pub const REPORT_SUBJECT: &str = "etl.report.subject";

/// Config key: the subject a step publishes its dead letters to.
pub const DEAD_LETTER_KEY: &str = "etl.out.dead-letter";

/// What [`UnitDeployment::inputs`] gives as the subject of an HTTP source's records, as a
/// report's `from` does.
pub const HTTP_INPUT: &str = "http";

/// Config key prefix: `etl.out.header.<Name>` is a header of every request of an HTTP sink.
pub const HEADER_KEY: &str = "etl.out.header.";

/// Whether the harness of a unit of kind `kind` reads its `with:` setting `key` (from its
/// runtime configuration or, for a secret, through the settings part) rather than passing it to
/// the provider: a nats sink's `subject`, a kafka sink's `topic`, an s3 sink's `bucket` and
/// `key`, an http sink's `url`, `content-type`, `authorization` and `header.<Name>`; and every
/// sink's `batch` and `batch-bytes` ([`BATCH_SETTINGS`]).
pub fn harness_reads(kind: UnitKind, key: &str) -> bool {
    if matches!(kind, UnitKind::Sink(_)) && BATCH_SETTINGS.contains(&key) {
        return true;
    }
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

/// The `with:` settings of a sink that say how its records are packed into batches, and the
/// runtime configuration keys its `out-*` part reads them from: how (`batch`), and the largest
/// request, message or object a batch fills (`batch-bytes`). Written only when set: the parts
/// apply their defaults.
pub const BATCH_SETTINGS: [&str; 2] = ["batch", "batch-bytes"];

/// The configuration key of a sink's batch setting `key` (one of [`BATCH_SETTINGS`]).
fn batch_key(key: &str) -> String {
    format!("etl.out.{key}")
}

/// The `with:` settings of an `http` source its `in-http` part reads (in every unit the source
/// feeds), and their configuration keys: the request headers kept, the largest body, and how a
/// body splits into records. The provider gets none of them.
pub const HTTP_SOURCE_SETTINGS: [(&str, &str); 3] = [
    ("headers", "etl.in.headers"),
    ("max-body", "etl.in.max-body"),
    ("batch", "etl.in.batch"),
];

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
    /// An `mqtt` source's topic has no NATS subject (validation would have reported it).
    #[error("`{unit}`: the MQTT topic `{topic}` has no NATS subject: {why}")]
    MqttTopic {
        /// The source.
        unit: String,
        /// Its topic, as rendered.
        topic: String,
        /// Why.
        why: &'static str,
    },
    /// A `pipeline` source names no step or `nats` sink of a pipeline of the repo (validation
    /// would have reported it).
    #[error("`{unit}`: pipeline `{pipeline}` has no step or `nats` sink `{from}` to read")]
    Upstream {
        /// The source.
        unit: String,
        /// The pipeline it names.
        pipeline: String,
        /// The node it names.
        from: String,
    },
}

fn help(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// The runtime configuration key of a step's egress part: the hosts its customer's outbound
/// HTTP may reach, a comma list of `allowedHosts` entries.
pub const EGRESS_HOSTS: &str = "etl.egress.hosts";

impl UnitDeployment {
    /// The runtime configuration of its composed component when its customer may call the hosts
    /// `egress` (the step's grants give them; empty when it does not call out):
    /// [`UnitDeployment::config`], and [`EGRESS_HOSTS`] when there are hosts. Manifests and the
    /// local runner both configure a unit with this.
    pub fn runtime_config(&self, egress: &[String]) -> BTreeMap<String, String> {
        let mut config = self.config.clone();
        if !egress.is_empty() {
            config.insert(EGRESS_HOSTS.to_owned(), egress.join(","));
        }
        config
    }

    /// The configuration `etl run` and `etl test` give its composed component:
    /// [`UnitDeployment::runtime_config`] without [`REPORT_SUBJECT`], as nothing collects
    /// reports locally (no key, no report).
    pub fn local_config(&self, egress: &[String]) -> BTreeMap<String, String> {
        let mut config = self.runtime_config(egress);
        config.remove(REPORT_SUBJECT);
        config
    }
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
    let with_of =
        |name: &str, with: &Settings| connector_with(repo, environment, pipeline, name, with);
    let render = |unit: &str, settings: &Settings| {
        render_settings(&engine, &context, environment, unit, settings)
    };

    let source = &spec.spec.source;
    let source_settings = render(&source.name, &with_of(&source.name, &source.with))?;
    let upstream = (source.connector == SourceConnector::Pipeline)
        .then(|| {
            source.upstream().ok_or(DeploymentError::MissingSetting {
                unit: source.name.to_string(),
                connector: source.connector.name(),
                key: UPSTREAM_KEYS[0],
            })
        })
        .transpose()?;
    let source_subject = match (upstream, source.connector.required_key()) {
        (Some(upstream), _) => Some(upstream_subject(
            repo,
            environment,
            &project_name,
            &source.name,
            upstream,
        )?),
        (None, Some(key)) => {
            let value = source_settings.values.get(key).cloned().ok_or(
                DeploymentError::MissingSetting {
                    unit: source.name.to_string(),
                    connector: source.connector.name(),
                    key,
                },
            )?;
            if source.connector == SourceConnector::Mqtt {
                let subject = mqtt_subject(&value).map_err(|why| DeploymentError::MqttTopic {
                    unit: source.name.to_string(),
                    topic: value.clone(),
                    why,
                })?;
                Some(subject)
            } else {
                Some(value)
            }
        }
        (None, None) => None,
    };
    // How a unit reading `from` is fed: the HTTP flag, `[subject, node]` per `from:` entry, the
    // subjects, and `etl.in.*` config.
    let inbound = |from: &[String], config: &mut BTreeMap<String, String>| {
        let mut http = false;
        let mut inputs = Vec::new();
        let mut subscriptions = Vec::new();
        for f in from {
            if spec.spec.is_http_source(f) {
                http = true;
                inputs.push((HTTP_INPUT.to_owned(), f.clone()));
                continue;
            }
            let subject = if *f == *source.name {
                let subject = source_subject
                    .clone()
                    .expect("nats, kafka, mqtt and pipeline sources have one");
                // A device's bytes, not envelopes: the `in` part makes each message a record.
                if source.connector == SourceConnector::Mqtt {
                    config.insert(RAW_SUBJECTS_KEY.to_owned(), subject.clone());
                }
                subject
            } else {
                step_subject(&project_name, pipeline, f)
            };
            inputs.push((subject.clone(), f.clone()));
            if !subscriptions.contains(&subject) {
                subscriptions.push(subject);
            }
        }
        if http {
            for (key, name) in HTTP_SOURCE_SETTINGS {
                if let Some(v) = source_settings.values.get(key) {
                    config.insert(name.to_owned(), v.clone());
                }
            }
        }
        Inbound {
            http,
            inputs,
            subscriptions,
        }
    };
    let report_of = |unit: &str| report_subject(&project_name, pipeline, unit, environment);

    let mut units = Vec::new();
    for step in &spec.spec.steps {
        let rendered = render(&step.name, &step.config)?;
        let mut config: BTreeMap<String, String> = rendered
            .values
            .iter()
            .map(|(k, v)| (format!("step.{k}"), v.clone()))
            .collect();
        let Inbound {
            http,
            inputs,
            mut subscriptions,
        } = inbound(&step.from, &mut config);
        let subject = step_subject(&project_name, pipeline, &step.name);
        let dead_letter = dead_letter_subject(&project_name, pipeline, &step.name);
        // A dead letter replayed to this subject reaches this step alone, whatever feeds it.
        let replay = replay_subject(&project_name, pipeline, &step.name);
        if !subscriptions.contains(&replay) {
            subscriptions.push(replay.clone());
        }
        let report = report_of(&step.name);
        config.insert("etl.out.subjects".to_owned(), subject.clone());
        config.insert(DEAD_LETTER_KEY.to_owned(), dead_letter.clone());
        if env.reports {
            config.insert(REPORT_SUBJECT.to_owned(), report.clone());
        }
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
            inputs,
            subscriptions,
            publishes: vec![subject],
            dead_letter: Some(dead_letter),
            replay: Some(replay),
            report,
            config,
            settings: BTreeMap::new(),
            secrets,
            link_secrets: BTreeMap::new(),
        });
    }
    for sink in &spec.spec.sinks {
        let rendered = render(&sink.name, &with_of(&sink.name, &sink.with))?;
        let mut config = BTreeMap::new();
        let Inbound {
            http,
            inputs,
            subscriptions,
        } = inbound(&sink.from, &mut config);
        let report = report_of(&sink.name);
        if env.reports {
            config.insert(REPORT_SUBJECT.to_owned(), report.clone());
        }
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
        for key in BATCH_SETTINGS {
            if let Some(v) = rendered.values.get(key) {
                config.insert(batch_key(key), v.clone());
            }
        }
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
            inputs,
            subscriptions,
            publishes,
            dead_letter: None,
            replay: None,
            report,
            config,
            settings: rendered.values,
            secrets,
            link_secrets,
        });
    }
    let mut deployment = Deployment {
        project: project_name,
        environment: environment.to_owned(),
        lattice: env.lattice.clone(),
        pipeline: pipeline.to_owned(),
        source: SourceDeployment {
            name: source.name.to_string(),
            connector: source.connector,
            subject: source_subject,
            upstream: upstream.map(|u| UpstreamDeployment {
                pipeline: u.pipeline.to_owned(),
                from: u.from.to_owned(),
            }),
            settings: source_settings.values,
            secrets: source_settings.secrets,
        },
        units,
    };
    if env.delivery.at_least_once() {
        at_least_once(&mut deployment, &env.delivery);
    }
    Ok(deployment)
}

/// The subject `upstream` publishes to in `environment`, for the `pipeline` source `unit`: a
/// step's subject, or the subject a `nats` sink renders to there.
fn upstream_subject(
    repo: &Repo,
    environment: &str,
    project: &str,
    unit: &str,
    upstream: Upstream<'_>,
) -> Result<String, DeploymentError> {
    let unknown = || DeploymentError::Upstream {
        unit: unit.to_owned(),
        pipeline: upstream.pipeline.to_owned(),
        from: upstream.from.to_owned(),
    };
    let spec = &find_pipeline(repo, upstream.pipeline)
        .map_err(|_| unknown())?
        .spec
        .spec;
    if spec.steps.iter().any(|s| *s.name == *upstream.from) {
        return Ok(step_subject(project, upstream.pipeline, upstream.from));
    }
    let sink = spec
        .sinks
        .iter()
        .find(|s| *s.name == *upstream.from && s.connector == SinkConnector::Nats)
        .ok_or_else(unknown)?;
    let environments = Environments::of(repo).ok_or(DeploymentError::NoProject)?;
    let env = environments.get(environment).ok_or_else(unknown)?;
    let with = connector_with(repo, environment, upstream.pipeline, &sink.name, &sink.with);
    let context = templates::context(env, upstream.pipeline);
    let rendered = render_settings(
        &templates::engine(),
        &context,
        environment,
        &sink.name,
        &with,
    )?;
    let key = SinkConnector::Nats.required_key();
    rendered
        .values
        .get(key)
        .cloned()
        .ok_or(DeploymentError::MissingSetting {
            unit: sink.name.to_string(),
            connector: SinkConnector::Nats.name(),
            key,
        })
}

/// `settings` of `unit` rendered in `environment`: values, and secret references apart.
fn render_settings(
    engine: &minijinja::Environment<'_>,
    context: &minijinja::Value,
    environment: &str,
    unit: &str,
    settings: &Settings,
) -> Result<Rendered, DeploymentError> {
    let mut out = Rendered::default();
    for (key, setting) in settings {
        match setting {
            Setting::Secret(s) => {
                out.secrets.insert(key.clone(), s.secret.clone());
            }
            Setting::Value(v) => {
                let text = templates::render(engine, v.as_text(), context).map_err(|e| {
                    DeploymentError::Render {
                        unit: unit.to_owned(),
                        key: key.clone(),
                        environment: environment.to_owned(),
                        message: e.detail().unwrap_or("render error").to_owned(),
                    }
                })?;
                out.values.insert(key.clone(), text);
            }
        }
    }
    Ok(out)
}

/// Lists the names of `secrets` under [`SECRETS_KEY`] in `config`, when there are any.
fn list_secrets(config: &mut BTreeMap<String, String>, secrets: &BTreeMap<String, String>) {
    if !secrets.is_empty() {
        let names: Vec<&str> = secrets.keys().map(String::as_str).collect();
        config.insert(SECRETS_KEY.to_owned(), names.join(","));
    }
}

/// How a unit is fed (see [`UnitDeployment`]).
struct Inbound {
    http: bool,
    inputs: Vec<(String, String)>,
    subscriptions: Vec<String>,
}

/// Settings split into rendered values and secret references.
#[derive(Default)]
struct Rendered {
    values: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
}

// At-least-once delivery: the units' side of the JetStream consumers.

/// Config key: the deliveries of one message, the last of which dead-letters what still fails.
pub const MAX_DELIVER_KEY: &str = "etl.in.max-deliver";
/// Config key: the waits before redeliveries, a comma list of milliseconds.
pub const BACKOFF_KEY: &str = "etl.in.redelivery-backoff";
/// Config key: where the `in` part publishes the records still failing on the last delivery.
pub const IN_DEAD_LETTER_KEY: &str = "etl.in.dead-letter";
/// Config key: how the `out` part confirms its publishes; [`CONFIRM_JETSTREAM`] for steps.
pub const CONFIRM_KEY: &str = "etl.out.confirm";
/// [`CONFIRM_KEY`]'s value: each publish is a request answered by a JetStream acknowledgement.
pub const CONFIRM_JETSTREAM: &str = "jetstream";
/// Config key: the subjects whose messages are a device's bytes, one record each, not envelopes
/// (`in-messaging`): a unit's `mqtt` source's subject.
pub const RAW_SUBJECTS_KEY: &str = "etl.in.raw-subjects";
/// Config key: the longest one request of an `http` sink may take, in milliseconds
/// (`out-http`, whose default is [`MAX_REQUEST_TIMEOUT_MS`]).
pub const REQUEST_TIMEOUT_KEY: &str = "etl.out.request-timeout";
/// The longest [`REQUEST_TIMEOUT_KEY`] the compiler sets: `out-http`'s own default.
pub const MAX_REQUEST_TIMEOUT_MS: i64 = 10_000;

/// The [`REQUEST_TIMEOUT_KEY`] of an `http` sink whose deliveries wait `ack_wait` nanoseconds
/// for their acknowledgement: half of that (at most [`MAX_REQUEST_TIMEOUT_MS`], at least 1 ms),
/// so that a request given up on is answered (`-NAK`) well before JetStream would deliver its
/// message again anyway, to the same busy sink.
pub fn request_timeout_ms(ack_wait: i64) -> i64 {
    (ack_wait / 2 / 1_000_000).clamp(1, MAX_REQUEST_TIMEOUT_MS)
}

/// The JetStream stream of pipeline `pipeline` of project `project`, in an at-least-once
/// environment: `ETL_DATA_<project>_<pipeline>`.
pub fn stream_name(project: &str, pipeline: &str) -> String {
    format!("ETL_DATA_{project}_{pipeline}")
}

/// The queue group of unit `unit` of `pipeline`: its replicas share its records.
pub fn queue_group(project: &str, pipeline: &str, unit: &str) -> String {
    format!("etl.{project}.{pipeline}.{unit}")
}

impl Deployment {
    /// The inputs of `unit` that a JetStream stream captures in an at-least-once environment,
    /// as `(stream, subject)`, in `from:` order, each once: a step's output (this pipeline's
    /// stream), a `nats` source's subject (this pipeline's stream), or another pipeline's step
    /// that a `pipeline` source reads (that pipeline's stream).
    pub fn captured_inputs(&self, unit: &UnitDeployment) -> Vec<(String, String)> {
        let own = stream_name(&self.project, &self.pipeline);
        let source = &self.source;
        let mut out: Vec<(String, String)> = Vec::new();
        for (subject, node) in &unit.inputs {
            let stream = if *node == source.name {
                match (source.connector, &source.upstream) {
                    (c, _) if c.reads_nats() => Some(own.clone()),
                    (SourceConnector::Pipeline, Some(up))
                        if *subject == step_subject(&self.project, &up.pipeline, &up.from) =>
                    {
                        Some(stream_name(&self.project, &up.pipeline))
                    }
                    _ => None,
                }
            } else if self
                .units
                .iter()
                .any(|u| u.name == *node && u.kind == UnitKind::Step)
            {
                Some(own.clone())
            } else {
                None
            };
            if let Some(stream) = stream {
                let entry = (stream, subject.clone());
                if !out.contains(&entry) {
                    out.push(entry);
                }
            }
        }
        out
    }
}

impl UnitDeployment {
    /// Whether it reads through JetStream (and acknowledges what it handled): in an
    /// at-least-once environment, fed by subjects a stream captures.
    pub fn jetstream_fed(&self) -> bool {
        self.config.contains_key(MAX_DELIVER_KEY)
    }
}

/// Wires `deployment` for at-least-once delivery with `settings` ([`crate::build::jetstream`]): each unit fed by captured
/// subjects ([`Deployment::captured_inputs`]) subscribes to its [`deliver_subject`] instead of
/// them (a step keeps its replay subscription, other subjects stay) and gets
/// [`MAX_DELIVER_KEY`], [`BACKOFF_KEY`] and [`IN_DEAD_LETTER_KEY`] (a sink's dead letters get
/// the subject a step's have, which becomes its [`UnitDeployment::dead_letter`]), an `http`
/// sink also [`REQUEST_TIMEOUT_KEY`] ([`request_timeout_ms`]); every step, whose outputs land
/// in the stream, gets [`CONFIRM_KEY`]. Its `inputs` stay as they are.
pub fn at_least_once(deployment: &mut Deployment, settings: &DeliverySettings) {
    let project = deployment.project.clone();
    let pipeline = deployment.pipeline.clone();
    let captured: Vec<Vec<(String, String)>> = deployment
        .units
        .iter()
        .map(|u| deployment.captured_inputs(u))
        .collect();
    for (unit, captured) in deployment.units.iter_mut().zip(captured) {
        if !captured.is_empty() {
            let deliver = deliver_subject(&project, &pipeline, &unit.name);
            let mut subscriptions = Vec::with_capacity(unit.subscriptions.len());
            for s in &unit.subscriptions {
                let s = if captured.iter().any(|(_, c)| c == s) {
                    &deliver
                } else {
                    s
                };
                if !subscriptions.contains(s) {
                    subscriptions.push(s.clone());
                }
            }
            unit.subscriptions = subscriptions;
            let dead_letter = dead_letter_subject(&project, &pipeline, &unit.name);
            unit.config
                .insert(MAX_DELIVER_KEY.to_owned(), settings.max_deliver.to_string());
            unit.config
                .insert(BACKOFF_KEY.to_owned(), settings.backoff_list());
            unit.config
                .insert(IN_DEAD_LETTER_KEY.to_owned(), dead_letter.clone());
            unit.dead_letter.get_or_insert(dead_letter);
            if unit.kind == UnitKind::Sink(SinkConnector::Http) {
                unit.config.insert(
                    REQUEST_TIMEOUT_KEY.to_owned(),
                    request_timeout_ms(settings.ack_wait).to_string(),
                );
            }
        }
        if unit.kind == UnitKind::Step {
            unit.config
                .insert(CONFIRM_KEY.to_owned(), CONFIRM_JETSTREAM.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tests/fixtures/sub-pipelines`: `orders` → `audit` (reads step `parse`) → `replay`
    /// (reads `nats` sink `trail`, whose subject differs per environment).
    fn fixture() -> Repo {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/sub-pipelines");
        let validation = crate::spec::validate(&root).unwrap();
        // Not even a warning: each sub-pipeline says what it reads, and `parse`'s output is
        // consumed (by `audit`).
        assert!(
            validation.diagnostics.is_empty(),
            "{:?}",
            validation.diagnostics
        );
        validation.repo
    }

    fn source(repo: &Repo, env: &str, pipeline: &str) -> SourceDeployment {
        deploy(repo, env, pipeline).unwrap().source
    }

    #[test]
    fn a_sub_pipeline_of_a_step_reads_its_subject() {
        let repo = fixture();
        let orders = deploy(&repo, "dev", "orders").unwrap();
        let parse = orders.units.iter().find(|u| u.name == "parse").unwrap();
        for env in ["dev", "staging"] {
            let audit = deploy(&repo, env, "audit").unwrap();
            assert_eq!(audit.source.connector, SourceConnector::Pipeline);
            assert_eq!(audit.source.subject, parse.publishes.first().cloned());
            assert_eq!(
                audit.source.subject.as_deref(),
                Some("etl.relay.orders.out.parse")
            );
            assert_eq!(
                audit.source.upstream,
                Some(UpstreamDeployment {
                    pipeline: "orders".to_owned(),
                    from: "parse".to_owned(),
                })
            );
            // Its first step reads that subject, as `orders`' own sink does: through a consumer
            // of `orders`' stream, delivering to the step's own subject (and it subscribes to its
            // own replay subject).
            let step = &audit.units[0];
            assert_eq!(
                step.subscriptions,
                [
                    "etl.relay.audit.deliver.audit",
                    "etl.relay.audit.replay.audit"
                ]
            );
            assert_eq!(
                step.inputs,
                [("etl.relay.orders.out.parse".to_owned(), "parsed".to_owned())]
            );
            assert!(!step.http);
            // `pipeline` and `from` are not connector configuration: the only `etl.in.*` keys
            // are those of delivery through JetStream.
            let keys: Vec<&str> = step
                .config
                .keys()
                .filter(|k| k.starts_with("etl.in."))
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                [
                    "etl.in.dead-letter",
                    "etl.in.max-deliver",
                    "etl.in.redelivery-backoff"
                ]
            );
        }
    }

    #[test]
    fn an_http_sink_gives_a_request_up_at_half_its_ack_wait_and_at_most_ten_seconds() {
        const SECOND: i64 = 1_000_000_000;
        assert_eq!(request_timeout_ms(30 * SECOND), 10_000);
        assert_eq!(request_timeout_ms(20 * SECOND), 10_000);
        assert_eq!(request_timeout_ms(8 * SECOND), 4_000);
        assert_eq!(request_timeout_ms(1_000_000), 1);
    }

    #[test]
    fn a_sub_pipeline_of_a_nats_sink_reads_what_it_renders_to_in_each_environment() {
        let repo = fixture();
        for (env, subject) in [
            ("dev", "relay.dev.audit.trail"),
            ("staging", "relay.staging.audit.trail"),
        ] {
            let trail = deploy(&repo, env, "audit")
                .unwrap()
                .units
                .into_iter()
                .find(|u| u.name == "trail")
                .unwrap();
            assert_eq!(trail.publishes, [subject]);
            let replay = source(&repo, env, "replay");
            assert_eq!(replay.subject.as_deref(), Some(subject), "{env}");
        }
    }

    #[test]
    fn every_unit_reports_and_every_step_listens_for_replays() {
        let repo = fixture();
        for env in ["dev", "staging"] {
            // `ingest` (http) → `parse` → `archive` (nats).
            let orders = deploy(&repo, env, "orders").unwrap();
            let [parse, archive] = orders.units.as_slice() else {
                panic!("orders has one step and one sink");
            };
            // Fed by the HTTP source only, the step still subscribes: to its replay subject.
            assert!(parse.http);
            assert_eq!(parse.inputs, [("http".to_owned(), "ingest".to_owned())]);
            let replay = "etl.relay.orders.replay.parse";
            assert_eq!(parse.replay.as_deref(), Some(replay));
            assert_eq!(parse.subscriptions, [replay]);
            assert_eq!(
                parse.dead_letter.as_deref(),
                Some("etl.relay.orders.dlq.parse")
            );
            // Each unit reports to its own subject of this environment, read from its config.
            for unit in [parse, archive] {
                let report = format!("etl.relay.orders.report.{}.{env}", unit.name);
                assert_eq!(unit.report, report);
                assert_eq!(unit.config[REPORT_SUBJECT], report);
                assert_eq!(unit.runtime_config(&[])[REPORT_SUBJECT], report);
                // `etl run` collects no reports: no key, no report.
                let local = unit.local_config(&["api.example".to_owned()]);
                assert!(!local.contains_key(REPORT_SUBJECT));
                assert_eq!(local[EGRESS_HOSTS], "api.example");
            }
            // A sink is not replayed into: no replay subject, only what it reads.
            assert_eq!(archive.replay, None);
            assert_eq!(
                archive.inputs,
                [("etl.relay.orders.out.parse".to_owned(), "parse".to_owned())]
            );
            // Read through `orders`' stream, delivered to its own subject.
            assert_eq!(archive.subscriptions, ["etl.relay.orders.deliver.archive"]);
        }
    }

    #[test]
    fn an_environment_without_reports_compiles_no_report_subject() {
        let mut repo = fixture();
        let project = repo.project.as_mut().unwrap();
        project
            .spec
            .spec
            .environments
            .values_mut()
            .next()
            .unwrap()
            .reports = Some(false);
        let first = default_environment(&repo).unwrap();
        for env in ["dev", "staging"] {
            let orders = deploy(&repo, env, "orders").unwrap();
            for unit in &orders.units {
                assert_eq!(
                    unit.config.contains_key(REPORT_SUBJECT),
                    env != first,
                    "{env} {}",
                    unit.name
                );
            }
        }
    }

    #[test]
    fn an_unresolvable_upstream_is_an_error() {
        let mut repo = fixture();
        let audit = repo
            .pipelines
            .iter_mut()
            .find(|p| *p.spec.metadata.name == *"audit")
            .unwrap();
        audit.spec.spec.source.with.insert(
            "from".to_owned(),
            Setting::Value(crate::spec::model::Scalar::String("archive-x".to_owned())),
        );
        let e = deploy(&repo, "dev", "audit").unwrap_err();
        assert!(
            matches!(&e, DeploymentError::Upstream { from, .. } if from == "archive-x"),
            "{e}"
        );
    }
}
