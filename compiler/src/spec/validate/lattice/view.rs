//! What one environment's lattice holds once every pipeline of the repo is deployed to it: the
//! subjects each step and sink publishes to, what each source subscribes to, and the HTTP routes,
//! each with where it is written.
//!
//! Settings are read as the environment renders them (its override file merged over the
//! pipeline's `with:`); a setting that does not render is left out, as the template rules report
//! it.

use std::collections::HashMap;

use crate::diag::Span;
use crate::spec::environments::EnvView;
use crate::spec::load::{Loaded, Repo};
use crate::spec::model::{Pipeline, Setting, Settings, SinkConnector, SourceConnector};
use crate::spec::overrides::connector_setting;
use crate::spec::subjects::{
    dead_letter_subject, is_wildcard, matches, mqtt_subject, step_subject,
};
use crate::spec::templates;

/// A place in a file of the repo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct At<'a> {
    /// The file.
    pub file: &'a str,
    /// Where in it.
    pub span: Span,
}

impl<'a> At<'a> {
    /// The node at `pointer` of `p` (or its nearest ancestor).
    pub fn of(p: &'a Loaded<Pipeline>, pointer: &str) -> Self {
        At {
            file: &p.file,
            span: p.span(pointer),
        }
    }
}

/// Which bus a subject is on: NATS (the bus between steps too) or Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Bus {
    Nats,
    Kafka,
}

/// What publishes to a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Publisher {
    /// A step, its outputs: a subject internal to the pipeline.
    Step,
    /// A step, its dead letters: internal too.
    DeadLetters,
    /// A `nats` or `kafka` sink, to the subject or topic its `with:` names.
    Sink,
}

/// A subject or topic something publishes to.
#[derive(Debug, Clone)]
pub(super) struct Publish<'a> {
    /// Index of the pipeline in [`Lattice::pipelines`].
    pub pipeline: usize,
    /// The step or sink.
    pub unit: &'a str,
    pub publisher: Publisher,
    pub bus: Bus,
    pub subject: String,
    /// A step's name, or a sink's subject setting.
    pub at: At<'a>,
}

impl Publish<'_> {
    /// Whether only the compiler names this subject (a step's outputs or dead letters).
    pub fn is_internal(&self) -> bool {
        self.publisher != Publisher::Sink
    }
}

/// What a source subscribes to.
#[derive(Debug, Clone)]
pub(super) struct Read<'a> {
    /// Index of the pipeline in [`Lattice::pipelines`].
    pub pipeline: usize,
    /// The source.
    pub source: &'a str,
    pub connector: SourceConnector,
    pub bus: Bus,
    /// A subject (NATS wildcards allowed on a `nats` source) or topic.
    pub pattern: String,
    /// A `nats` or `kafka` source's subject setting; a `pipeline` source's `with.pipeline`.
    pub at: At<'a>,
}

/// Where an HTTP source is served.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Route {
    /// A path of the lattice's HTTP server (`with.path`, default `/`).
    Path(String),
    /// A listener of its own (`with.address`).
    Address(String),
}

/// An HTTP source's route.
#[derive(Debug, Clone)]
pub(super) struct Served<'a> {
    /// Index of the pipeline in [`Lattice::pipelines`].
    pub pipeline: usize,
    pub route: Route,
    /// The setting that says so, or the source's `connector: http` for the default path.
    pub at: At<'a>,
}

/// One environment's lattice.
pub(super) struct Lattice<'a> {
    /// The environment.
    pub env: &'a str,
    /// What its shared HTTP listener binds.
    pub http_address: &'a str,
    /// Every pipeline, in repo order (the first of two with one name).
    pub pipelines: &'a [&'a Loaded<Pipeline>],
    pub publishes: Vec<Publish<'a>>,
    pub reads: Vec<Read<'a>>,
    pub served: Vec<Served<'a>>,
    /// `publishes` by bus and subject: indices, in order.
    by_subject: HashMap<(Bus, String), Vec<usize>>,
}

impl<'a> Lattice<'a> {
    /// The lattice of `env`, with every one of `pipelines` of project `project` deployed to it.
    pub fn of(
        repo: &'a Repo,
        project: &str,
        env: &'a EnvView,
        pipelines: &'a [&'a Loaded<Pipeline>],
    ) -> Self {
        let mut lattice = Lattice {
            env: &env.name,
            http_address: &env.http_address,
            pipelines,
            publishes: Vec::new(),
            reads: Vec::new(),
            served: Vec::new(),
            by_subject: HashMap::new(),
        };
        let engine = templates::engine();
        // A connector's setting as rendered here, and where it is written.
        let setting = |i: usize, unit: &str, with: (&'a Settings, &str), key: &str| {
            let p = pipelines[i];
            let written = connector_setting(repo, &env.name, p, unit, with, key)?;
            let Setting::Value(v) = written.setting else {
                return None;
            };
            let context = templates::context(env, &p.spec.metadata.name);
            let text = templates::render(&engine, v.as_text(), &context).ok()?;
            let at = At {
                file: written.file,
                span: written.span,
            };
            Some((text, at))
        };
        for (i, p) in pipelines.iter().enumerate() {
            let name = p.spec.metadata.name.as_str();
            for (j, step) in p.spec.spec.steps.iter().enumerate() {
                let at = At::of(p, &format!("/spec/steps/{j}/name"));
                for (publisher, subject) in [
                    (Publisher::Step, step_subject(project, name, &step.name)),
                    (
                        Publisher::DeadLetters,
                        dead_letter_subject(project, name, &step.name),
                    ),
                ] {
                    lattice.publishes.push(Publish {
                        pipeline: i,
                        unit: &step.name,
                        publisher,
                        bus: Bus::Nats,
                        subject,
                        at,
                    });
                }
            }
            for (j, sink) in p.spec.spec.sinks.iter().enumerate() {
                let bus = match sink.connector {
                    SinkConnector::Nats => Bus::Nats,
                    SinkConnector::Kafka => Bus::Kafka,
                    SinkConnector::Http | SinkConnector::S3 => continue,
                };
                let pointer = format!("/spec/sinks/{j}/with");
                let key = sink.connector.required_key();
                if let Some((subject, at)) = setting(i, &sink.name, (&sink.with, &pointer), key) {
                    lattice.publishes.push(Publish {
                        pipeline: i,
                        unit: &sink.name,
                        publisher: Publisher::Sink,
                        bus,
                        subject,
                        at,
                    });
                }
            }
        }
        let mut reads = Vec::new();
        for (i, p) in pipelines.iter().enumerate() {
            let source = &p.spec.spec.source;
            let with = (&source.with, "/spec/source/with");
            let mut read = |bus, pattern, at| {
                reads.push(Read {
                    pipeline: i,
                    source: &source.name,
                    connector: source.connector,
                    bus,
                    pattern,
                    at,
                });
            };
            match source.connector {
                SourceConnector::Nats | SourceConnector::Kafka => {
                    let bus = if source.connector == SourceConnector::Nats {
                        Bus::Nats
                    } else {
                        Bus::Kafka
                    };
                    let key = source.connector.required_key().unwrap_or_default();
                    if let Some((pattern, at)) = setting(i, &source.name, with, key) {
                        read(bus, pattern, at);
                    }
                }
                // The subject its topic maps to (a topic without one is reported elsewhere).
                SourceConnector::Mqtt => {
                    if let Some((topic, at)) = setting(i, &source.name, with, "topic")
                        && let Ok(subject) = mqtt_subject(&topic)
                    {
                        read(Bus::Nats, subject, at);
                    }
                }
                SourceConnector::Pipeline => {
                    if let Some(subject) = upstream_subject(&lattice.publishes, pipelines, i) {
                        read(Bus::Nats, subject, At::of(p, "/spec/source/with/pipeline"));
                    }
                }
                SourceConnector::Http => {
                    let (route, at) = match setting(i, &source.name, with, "address") {
                        Some((address, at)) => (Route::Address(address), at),
                        None => match setting(i, &source.name, with, "path") {
                            Some((path, at)) => (Route::Path(path), at),
                            None => (
                                Route::Path("/".to_owned()),
                                At::of(p, "/spec/source/connector"),
                            ),
                        },
                    };
                    lattice.served.push(Served {
                        pipeline: i,
                        route,
                        at,
                    });
                }
            }
        }
        lattice.reads = reads;
        for (k, w) in lattice.publishes.iter().enumerate() {
            let key = (w.bus, w.subject.clone());
            lattice.by_subject.entry(key).or_default().push(k);
        }
        lattice
    }

    /// What a subscription of `r` receives, in publish order: a `nats` subscription with
    /// wildcards by NATS rules, any other by its subject or topic.
    pub fn received(&self, r: &Read<'_>) -> Vec<&Publish<'a>> {
        if r.bus == Bus::Nats && is_wildcard(&r.pattern) {
            return self
                .publishes
                .iter()
                .filter(|w| w.bus == Bus::Nats && matches(&r.pattern, &w.subject))
                .collect();
        }
        self.by_subject
            .get(&(r.bus, r.pattern.clone()))
            .map(|ks| ks.iter().map(|&k| &self.publishes[k]).collect())
            .unwrap_or_default()
    }

    /// The name of pipeline `i`.
    pub fn name(&self, i: usize) -> &'a str {
        &self.pipelines[i].spec.metadata.name
    }
}

/// The subject the `pipeline` source of pipeline `i` reads, among `publishes`: its upstream
/// step's, or its upstream `nats` sink's; `None` when it names neither.
fn upstream_subject(
    publishes: &[Publish<'_>],
    pipelines: &[&Loaded<Pipeline>],
    i: usize,
) -> Option<String> {
    let upstream = pipelines[i].spec.spec.source.upstream()?;
    publishes
        .iter()
        .find(|w| {
            *pipelines[w.pipeline].spec.metadata.name == *upstream.pipeline
                && w.unit == upstream.from
                && w.bus == Bus::Nats
                && w.publisher != Publisher::DeadLetters
        })
        .map(|w| w.subject.clone())
}
