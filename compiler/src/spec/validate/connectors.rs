//! Connectors name where records come from and go: a `nats` source needs its `subject`, a
//! `pipeline` source the `pipeline` and the node it reads ([`UPSTREAM_KEYS`]), an `http` sink its
//! `url`, and so on ([`SourceConnector::required_key`], [`SinkConnector::required_key`]), in the
//! pipeline or in every environment's override. An `http` sink's `header.<Name>` settings name
//! headers it can send. An `mqtt` source's `topic` maps to a NATS subject.

use crate::diag::{self, Code, Diagnostic};
use crate::spec::environments::Environments;
use crate::spec::load::{Loaded, Repo};
use crate::spec::model::{
    HEADER_SETTING, Pipeline, Settings, SinkConnector, SourceConnector, UPSTREAM_KEYS,
};
use crate::spec::overrides::rendered_connector_setting;
use crate::spec::subjects::mqtt_subject;
use crate::spec::templates;
use crate::spec::validate::findings::Findings;

/// Reports each `mqtt` source whose `topic`, as each environment renders it, has no NATS
/// subject ([`mqtt_subject`]), where the topic is written; once for all the environments where
/// it is the same.
pub(super) fn check_mqtt_topics(
    repo: &Repo,
    environments: Option<&Environments>,
    out: &mut Vec<Diagnostic>,
) {
    let Some(environments) = environments else {
        return;
    };
    let engine = templates::engine();
    let mut found = Findings::new();
    let mut count = 0;
    for env in environments.for_setting(None) {
        count += 1;
        for pipeline in &repo.pipelines {
            let source = &pipeline.spec.spec.source;
            if source.connector != SourceConnector::Mqtt {
                continue;
            }
            let with = (&source.with, "/spec/source/with");
            let Some((written, topic)) = rendered_connector_setting(
                repo,
                env,
                &engine,
                pipeline,
                &source.name,
                with,
                "topic",
            ) else {
                continue;
            };
            let Err(why) = mqtt_subject(&topic) else {
                continue;
            };
            let d = Diagnostic::new(
                Code::MqttTopic,
                format!(
                    "`topic` of the `mqtt` source `{}` is `{topic}`, which has no NATS subject: \
                     {why}",
                    source.name
                ),
            )
            .at(written.file, written.span)
            .label(why)
            .expected(
                "an MQTT topic or filter of non-empty levels without `.`, `*`, `>` or white \
                 space, a level `+` or a last level `#` (`plant/+/temperature`, `plant/#`)",
            )
            .help(
                "the NATS server's MQTT listener maps `/` to `.`, `+` to `*` and `#` to `>`; a \
                 topic it maps otherwise is not one a source can read",
            );
            found.add(&env.name, d);
        }
    }
    found.finish(count, out);
}

pub(super) fn check_required_settings(
    repo: &Repo,
    pipeline: &Loaded<Pipeline>,
    out: &mut Vec<Diagnostic>,
) {
    let spec = &pipeline.spec.spec;
    let name = pipeline.spec.metadata.name.as_str();
    let source = &spec.source;
    let required = source.connector.required_key();
    let keys: &[&str] = match source.connector {
        SourceConnector::Pipeline => &UPSTREAM_KEYS,
        _ => required.as_slice(),
    };
    for key in keys {
        let connector = source.connector.name();
        missing(
            repo,
            pipeline,
            name,
            &source.name,
            connector,
            "/spec/source",
            &source.with,
            key,
            out,
        );
    }
    for (i, sink) in spec.sinks.iter().enumerate() {
        let key = sink.connector.required_key();
        let connector = sink.connector.name();
        let at = format!("/spec/sinks/{i}");
        missing(
            repo, pipeline, name, &sink.name, connector, &at, &sink.with, key, out,
        );
    }
}

/// Reports `key` missing from `with` of `unit` unless every environment's override sets it.
#[allow(clippy::too_many_arguments)]
fn missing(
    repo: &Repo,
    pipeline: &Loaded<Pipeline>,
    pipeline_name: &str,
    unit: &str,
    connector: &str,
    pointer: &str,
    with: &Settings,
    key: &str,
    out: &mut Vec<Diagnostic>,
) {
    if with.contains_key(key) {
        return;
    }
    let Some(project) = &repo.project else {
        return;
    };
    let lacking: Vec<&str> = project
        .spec
        .spec
        .environments
        .keys()
        .map(|e| e.as_str())
        .filter(|env| {
            !repo.environments.iter().any(|f| {
                f.spec.metadata.name.as_str() == *env
                    && f.spec
                        .spec
                        .pipelines
                        .iter()
                        .filter(|(p, _)| p.as_str() == pipeline_name)
                        .flat_map(|(_, o)| o.connectors.iter())
                        .any(|(c, o)| c.as_str() == unit && o.with.contains_key(key))
            })
        })
        .collect();
    if lacking.is_empty() {
        return;
    }
    let with_pointer = format!("{pointer}/with");
    let span = if pipeline.tree.pointer(&with_pointer).is_some() {
        pipeline.span(&with_pointer)
    } else {
        pipeline.span(&format!("{pointer}/connector"))
    };
    let mut d = Diagnostic::new(
        Code::MissingSetting,
        format!(
            "`{unit}` does not say where its `{connector}` connector goes: `with.{key}` is missing"
        ),
    )
    .at(&pipeline.file, span)
    .label(format!("no `{key}` here"))
    .expected(format!(
        "`with: {{ {key}: … }}` on the `{connector}` connector"
    ))
    .maybe_help(
        diag::closest(key, with.keys().map(String::as_str))
            .map(|c| format!("`with` has `{c}`: did you mean `{key}`?")),
    );
    if lacking.len() < project.spec.spec.environments.len() {
        d = d.note(format!(
            "environment override files set it, except for {}",
            diag::quoted_list(&lacking)
        ));
    }
    out.push(d);
}

/// The request headers hosts refuse from a component (wasmtime's forbidden headers, which
/// both wasmCloud generations' HTTP clients apply), and those a host sets from the body.
const REFUSED_HEADERS: [&str; 10] = [
    "connection",
    "content-length",
    "host",
    "http2-settings",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Checks the `header.<Name>` settings of the pipeline's `http` sinks, in the pipeline and in
/// the environment files' overrides: each must name a header `out-http` can send.
pub(super) fn check_headers(repo: &Repo, pipeline: &Loaded<Pipeline>, out: &mut Vec<Diagnostic>) {
    let spec = &pipeline.spec.spec;
    let name = pipeline.spec.metadata.name.as_str();
    for (i, sink) in spec.sinks.iter().enumerate() {
        if sink.connector != SinkConnector::Http {
            continue;
        }
        let at = |key: &str| pipeline.key_span(&format!("/spec/sinks/{i}/with/{}", escape(key)));
        header_settings(&pipeline.file, &sink.with, at, out);
        for file in &repo.environments {
            let overrides = file
                .spec
                .spec
                .pipelines
                .iter()
                .filter(|(p, _)| p.as_str() == name)
                .flat_map(|(_, o)| o.connectors.iter())
                .filter(|(c, _)| c.as_str() == sink.name.as_str());
            for (_, o) in overrides {
                let at = |key: &str| {
                    file.key_span(&format!(
                        "/spec/pipelines/{name}/connectors/{}/with/{}",
                        sink.name,
                        escape(key)
                    ))
                };
                header_settings(&file.file, &o.with, at, out);
            }
        }
    }
}

/// `key` escaped for a JSON pointer.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Reports each `header.<Name>` setting of `with` (in `file`, at `at(key)`) whose name cannot
/// be a request header of the sink.
fn header_settings(
    file: &str,
    with: &Settings,
    at: impl Fn(&str) -> diag::Span,
    out: &mut Vec<Diagnostic>,
) {
    for key in with.keys() {
        let Some(header) = key.strip_prefix(HEADER_SETTING) else {
            continue;
        };
        let Some((why, help)) = header_problem(header) else {
            continue;
        };
        out.push(
            Diagnostic::new(
                Code::InvalidHeader,
                format!("`{key}` cannot be a request header of this HTTP sink: {why}"),
            )
            .at(file, at(key))
            .label("not a header the sink can send")
            .expected("`header.<Name>`, `<Name>` an HTTP header name (letters, digits and any of ``!#$%&'*+-.^_`|~``) that hosts let a component send")
            .maybe_help(help),
        );
    }
}

/// Why `header` cannot be a header the sink sets on every request, and what to write instead.
fn header_problem(header: &str) -> Option<(String, Option<String>)> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if header.is_empty() {
        return Some(("it names no header".to_owned(), None));
    }
    if let Some(bad) = header.chars().find(|c| !token(*c)) {
        let cleaned: String = header
            .chars()
            .map(|c| if token(c) { c } else { '-' })
            .collect();
        let cleaned = cleaned.trim_matches('-');
        return Some((
            format!("{bad:?} cannot be part of an HTTP header name"),
            (!cleaned.is_empty()).then(|| format!("did you mean `{HEADER_SETTING}{cleaned}`?")),
        ));
    }
    let lower = header.to_ascii_lowercase();
    match lower.as_str() {
        "content-type" => Some((
            "the sink's `content-type` setting sets it".to_owned(),
            Some("write `content-type: …`".to_owned()),
        )),
        "authorization" => Some((
            "the sink's `authorization` setting sets it".to_owned(),
            Some("write `authorization: …` (a `{secret: KEY}`)".to_owned()),
        )),
        _ if REFUSED_HEADERS.contains(&lower.as_str()) => Some((
            format!(
                "hosts refuse `{header}` from a component (they set it themselves, or it concerns \
                 the connection alone)"
            ),
            None,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::header_problem;

    #[test]
    fn header_names_are_tokens_the_hosts_let_through() {
        for ok in ["X-Api-Key", "x_trace", "Accept", "X.Y~Z"] {
            assert_eq!(header_problem(ok), None, "{ok}");
        }
        let (why, help) = header_problem("X Api Key").unwrap();
        assert_eq!(why, "' ' cannot be part of an HTTP header name");
        assert_eq!(help.as_deref(), Some("did you mean `header.X-Api-Key`?"));
        assert!(header_problem("").is_some());
        assert!(header_problem("X:Y").is_some());
        for refused in [
            "Host",
            "content-length",
            "Transfer-Encoding",
            "Content-Type",
        ] {
            assert!(header_problem(refused).is_some(), "{refused}");
        }
        let (_, help) = header_problem("Authorization").unwrap();
        assert!(help.unwrap().contains("`authorization: …`"));
    }
}
