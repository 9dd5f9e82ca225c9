//! The JSON API the dashboard and the CLI read (`/api/v1/…`, `docs/controller.md`): the
//! documents of `etl::ops::telemetry` made from the status document, the bundle taken and the
//! telemetry, and the dead-letter and audit requests. Who may ask is decided before
//! ([`crate::serve`]).

use std::collections::BTreeMap;

use etl::oci::bundle::{Facts, PipelineFacts};
use etl::ops::status::{ControllerStatus, UnitMetrics};
use etl::ops::telemetry::{
    Counters, Edge, Node, NodeKind, Overview, PipelineSummary, PipelineView, Rates, ReplayRequest,
};
use hyper::{Method, StatusCode};

use crate::deadletters::{self, Caller, Query};
use crate::telemetry::Telemetry;

/// The longest list of replays answered.
const MAX_LIMIT: usize = 1000;
/// The longest list of dead letters answered: each is a message fetched from the stream and a
/// preview redacted.
pub const MAX_DEAD_LETTERS: usize = 500;
/// A list's length unless asked otherwise.
const LIMIT: usize = 50;

/// An answer: its status and JSON body.
pub struct Reply {
    /// The HTTP status.
    pub code: StatusCode,
    /// The JSON body.
    pub body: Vec<u8>,
}

impl Reply {
    fn ok<T: serde::Serialize>(value: &T) -> Reply {
        Reply {
            code: StatusCode::OK,
            body: serde_json::to_vec(value).expect("API documents serialize"),
        }
    }

    /// `{"error": message}` with `code`.
    pub fn error(code: StatusCode, message: &str) -> Reply {
        Reply {
            code,
            body: serde_json::to_vec(&serde_json::json!({ "error": message }))
                .expect("a string serializes"),
        }
    }
}

impl From<deadletters::Error> for Reply {
    fn from(e: deadletters::Error) -> Reply {
        use deadletters::Error as E;
        let code = match &e {
            E::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            E::BadId(_) | E::BadRequest(_) => StatusCode::BAD_REQUEST,
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::Nats(_) | E::Audit(_) => StatusCode::BAD_GATEWAY,
        };
        Reply::error(code, &e.to_string())
    }
}

/// A request to the API, as [`answer`] needs it.
pub struct Request<'a> {
    /// Its method.
    pub method: &'a Method,
    /// Its path, `/api/v1/…`.
    pub path: &'a str,
    /// Its query string.
    pub query: &'a str,
    /// Its body (POST).
    pub body: &'a [u8],
    /// Who asks.
    pub caller: Caller,
}

/// Whether `path` is the API's.
pub fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// The methods `path` takes, when it is known.
pub fn methods(path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix("/api/v1/")?;
    match rest {
        "dead-letters/replay" => Some("POST"),
        "overview" | "dead-letters" | "audit" => Some("GET, HEAD"),
        _ if rest.starts_with("pipelines/") || rest.starts_with("dead-letters/") => {
            Some("GET, HEAD")
        }
        _ => None,
    }
}

/// The answer to an API request.
pub async fn answer(
    status: &ControllerStatus,
    telemetry: &Telemetry,
    request: Request<'_>,
) -> Reply {
    let query: BTreeMap<String, String> = form_urlencoded::parse(request.query.as_bytes())
        .into_owned()
        .collect();
    let number = |name: &str, default: usize, max: usize| -> Result<usize, Reply> {
        match query.get(name) {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n.min(max)),
                _ => Err(Reply::error(
                    StatusCode::BAD_REQUEST,
                    &format!("`{name}` must be a positive number"),
                )),
            },
        }
    };
    let rest = request
        .path
        .strip_prefix("/api/v1/")
        .unwrap_or(request.path);
    match (request.method, rest) {
        (&Method::POST, "dead-letters/replay") => {
            let replay: ReplayRequest = match serde_json::from_slice(request.body) {
                Ok(r) => r,
                Err(e) => {
                    return Reply::error(
                        StatusCode::BAD_REQUEST,
                        &format!("not a replay request: {e}"),
                    );
                }
            };
            match deadletters::replay(telemetry, &replay, &request.caller).await {
                Ok(done) => Reply::ok(&done),
                Err(e) => e.into(),
            }
        }
        (_, "overview") => Reply::ok(&overview(status, telemetry)),
        (_, "dead-letters") => {
            let (limit, preview) = match (
                number("limit", LIMIT, MAX_DEAD_LETTERS),
                number("preview", deadletters::PREVIEW, deadletters::MAX_PREVIEW),
            ) {
                (Ok(l), Ok(p)) => (l, p),
                (Err(e), _) | (_, Err(e)) => return e,
            };
            let q = Query {
                pipeline: query.get("pipeline").cloned().filter(|s| !s.is_empty()),
                step: query.get("step").cloned().filter(|s| !s.is_empty()),
                limit,
                preview,
            };
            match deadletters::list(telemetry, &q).await {
                Ok(list) => Reply::ok(&list),
                Err(e) => e.into(),
            }
        }
        (_, "audit") => {
            let limit = match number("limit", LIMIT, MAX_LIMIT) {
                Ok(l) => l,
                Err(e) => return e,
            };
            let Some(plane) = telemetry.plane() else {
                return deadletters::Error::NotReady.into();
            };
            match plane.audit.list(limit).await {
                Ok(list) => Reply::ok(&list),
                Err(e) => Reply::error(StatusCode::BAD_GATEWAY, &e.to_string()),
            }
        }
        _ => {
            if let Some(id) = rest.strip_prefix("dead-letters/") {
                let preview =
                    match number("preview", deadletters::PREVIEW, deadletters::MAX_PREVIEW) {
                        Ok(p) => p,
                        Err(e) => return e,
                    };
                return match deadletters::show(telemetry, id, preview).await {
                    Ok(d) => Reply::ok(&d),
                    Err(e) => e.into(),
                };
            }
            if let Some(name) = rest.strip_prefix("pipelines/") {
                return match pipeline(status, telemetry, name) {
                    Some(view) => Reply::ok(&view),
                    None => Reply::error(
                        StatusCode::NOT_FOUND,
                        &format!("the bundle applied has no pipeline `{name}`"),
                    ),
                };
            }
            Reply::error(StatusCode::NOT_FOUND, "not found")
        }
    }
}

/// The reporting units of `pipeline`: its steps and sinks.
fn units(pipeline: &PipelineFacts) -> impl Iterator<Item = &etl::oci::bundle::NodeFacts> {
    pipeline.nodes.iter().filter(|n| n.kind != NodeKind::Source)
}

/// A pipeline's line of the status document.
fn line<'a>(
    status: &'a ControllerStatus,
    name: &str,
) -> Option<&'a etl::ops::status::PipelineStatus> {
    status.pipelines.iter().find(|p| p.name == name)
}

/// `GET /api/v1/overview`.
pub fn overview(status: &ControllerStatus, telemetry: &Telemetry) -> Overview {
    let taken = telemetry.taken();
    let mut history = telemetry.history();
    // The history's entry of the bundle running has the time it was first applied (a restart
    // takes it again).
    let deployed = taken.as_ref().map(|t| {
        if history
            .first()
            .is_some_and(|h| h.digest == t.deployment.digest)
        {
            history.remove(0)
        } else {
            t.deployment.clone()
        }
    });
    let kept = telemetry.dead_letters.kept();
    let pipelines = taken
        .as_ref()
        .map(|t| {
            t.facts
                .pipelines
                .iter()
                .map(|p| summary(status, telemetry, p, &kept))
                .collect()
        })
        .unwrap_or_default();
    Overview {
        project: status.project.clone(),
        environment: status.environment.clone(),
        generation: status.generation.clone(),
        state: status.state.as_str().to_owned(),
        deployed,
        history,
        pipelines,
        reports: telemetry.with_store(|s| s.health()).unwrap_or_default(),
    }
}

fn summary(
    status: &ControllerStatus,
    telemetry: &Telemetry,
    pipeline: &PipelineFacts,
    kept: &BTreeMap<(String, String), u64>,
) -> PipelineSummary {
    let source: Vec<&str> = pipeline
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Source)
        .map(|n| n.name.as_str())
        .collect();
    let mut s = PipelineSummary {
        name: pipeline.name.clone(),
        state: line(status, &pipeline.name).map(|l| l.state.as_str().to_owned()),
        records_in: 0,
        records_out: 0,
        dead_lettered: 0,
        failed: 0,
        rates: Rates::default(),
        dead_letters_kept: kept
            .iter()
            .filter(|((p, _), _)| *p == pipeline.name)
            .map(|(_, n)| n)
            .sum(),
    };
    telemetry.with_store(|store| {
        for node in units(pipeline) {
            let first = node.from.iter().any(|f| source.contains(&f.as_str()));
            let rates = store.rates(&pipeline.name, &node.name);
            s.rates.errors += rates.errors;
            if first {
                s.rates.input += rates.input;
            }
            if node.kind == NodeKind::Sink {
                s.rates.out += rates.out;
            }
            let Some(c) = store.counters(&pipeline.name, &node.name) else {
                continue;
            };
            // Counts saturate rather than wrap (a unit's may be at the largest already).
            s.dead_lettered = s.dead_lettered.saturating_add(c.dead_lettered_total());
            s.failed = s.failed.saturating_add(c.failed_total());
            if first {
                s.records_in = s.records_in.saturating_add(c.input.records);
            }
            if node.kind == NodeKind::Sink {
                s.records_out = s.records_out.saturating_add(c.out.records);
            }
        }
    });
    s
}

/// The digest an image reference pins (`…@sha256:…`).
fn pinned(image: &str) -> Option<String> {
    image.rsplit_once('@').map(|(_, d)| d.to_owned())
}

/// `GET /api/v1/pipelines/<name>`, when the bundle taken has it.
pub fn pipeline(
    status: &ControllerStatus,
    telemetry: &Telemetry,
    name: &str,
) -> Option<PipelineView> {
    let taken = telemetry.taken()?;
    let facts: &Facts = &taken.facts;
    let pipeline = facts.pipelines.iter().find(|p| p.name == name)?;
    let artifacts: BTreeMap<&str, String> = facts
        .applications
        .iter()
        .filter(|a| a.pipeline.as_deref() == Some(name))
        .flat_map(|a| &a.artifacts)
        .filter(|a| a.generation == status.generation)
        .filter_map(|a| Some((a.unit.as_str(), pinned(&a.image)?)))
        .collect();
    let status_line = line(status, name);
    let view = |store: Option<&crate::telemetry::store::Store>| {
        let nodes = pipeline
            .nodes
            .iter()
            .map(|n| Node {
                name: n.name.clone(),
                kind: n.kind,
                connector: n.connector.clone(),
                component: n.component.clone(),
                artifact: artifacts.get(n.name.as_str()).cloned(),
                grants: n.grants.clone(),
                counters: store.and_then(|s| s.counters(name, &n.name).cloned()),
                rates: store.map(|s| s.rates(name, &n.name)).unwrap_or_default(),
                series: store.map(|s| s.series(name, &n.name)).unwrap_or_default(),
            })
            .collect();
        let edges = units(pipeline)
            .flat_map(|n| {
                n.from.iter().map(|from| {
                    let (count, rate) = store
                        .map(|s| s.edge(name, from, &n.name))
                        .unwrap_or_default();
                    Edge {
                        from: from.clone(),
                        to: n.name.clone(),
                        records: count.records,
                        errors: count.errors,
                        rate,
                    }
                })
            })
            .collect();
        (nodes, edges)
    };
    let (nodes, edges) = telemetry
        .with_store(|s| view(Some(s)))
        .unwrap_or_else(|| view(None));
    Some(PipelineView {
        name: name.to_owned(),
        state: status_line.map(|l| l.state.as_str().to_owned()),
        version: status_line.and_then(|l| l.version.clone()),
        nodes,
        edges,
    })
}

/// `status` with every pipeline's units' counts and rates (`etl status` shows them).
pub fn with_units(mut status: ControllerStatus, telemetry: &Telemetry) -> ControllerStatus {
    let Some(taken) = telemetry.taken() else {
        return status;
    };
    telemetry.with_store(|store| {
        for line in &mut status.pipelines {
            let Some(pipeline) = taken.facts.pipelines.iter().find(|p| p.name == line.name) else {
                continue;
            };
            line.units = units(pipeline)
                .filter_map(|n| {
                    let counters: Counters = store.counters(&pipeline.name, &n.name)?.clone();
                    Some(UnitMetrics {
                        name: n.name.clone(),
                        kind: n.kind,
                        counters,
                        rates: store.rates(&pipeline.name, &n.name),
                    })
                })
                .collect();
        }
    });
    status
}
