//! Batching settings: how an `http` source splits a request body into records (`batch`), how a
//! sink packs records into requests, messages or objects (`batch`) and how large one may grow
//! (`batch-bytes`). The harness parts read them from the runtime configuration
//! (`etl.in.batch`, `etl.out.batch`, `etl.out.batch-bytes`), so a value they do not take would
//! only fail at run time: each connector's values are checked here.
//!
//! A plain value is checked where it is written, in the pipeline or in an environment file; a
//! template as each environment renders the setting (its override file merged over the
//! pipeline's `with:`), once for all the environments where it renders to the same bad value.
//! A template that does not render is the template rules' to report.

use crate::diag::{self, Code, Diagnostic, Span};
use crate::spec::environments::Environments;
use crate::spec::load::{Loaded, Repo};
use crate::spec::model::{Pipeline, Scalar, Setting, Settings, SinkConnector, SourceConnector};
use crate::spec::overrides::{connector_setting, rendered_connector_setting};
use crate::spec::templates;
use crate::spec::validate::findings::Findings;

/// The setting that says how records are batched.
const BATCH: &str = "batch";
/// A sink's setting: the most bytes of one request, message or object.
const BATCH_BYTES: &str = "batch-bytes";
/// An `s3` sink's object-name template.
const KEY: &str = "key";
/// What an `s3` sink's object-name template must hold when its objects are NDJSON batches.
const DIGEST: &str = "{digest}";

/// What reads batching settings: an `http` source or a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Batcher {
    HttpSource,
    Sink(SinkConnector),
}

impl Batcher {
    /// What reads the settings of the source or sink `connector` of `pipeline`, if anything.
    fn of(pipeline: &Pipeline, connector: &str) -> Option<Self> {
        let source = &pipeline.spec.source;
        if *source.name == *connector {
            return (source.connector == SourceConnector::Http).then_some(Batcher::HttpSource);
        }
        pipeline
            .spec
            .sinks
            .iter()
            .find(|s| *s.name == *connector)
            .map(|s| Batcher::Sink(s.connector))
    }

    /// What it is: `` `http` source ``, `` `nats` sink ``.
    fn name(self) -> String {
        match self {
            Batcher::HttpSource => "`http` source".to_owned(),
            Batcher::Sink(c) => format!("`{}` sink", c.name()),
        }
    }

    /// [`Batcher::name`] after its article: `` an `http` source ``, `` a `nats` sink ``.
    fn kind(self) -> String {
        let article = match self {
            Batcher::HttpSource | Batcher::Sink(SinkConnector::Http | SinkConnector::S3) => "an",
            Batcher::Sink(SinkConnector::Nats | SinkConnector::Kafka) => "a",
        };
        format!("{article} {}", self.name())
    }

    /// The settings it reads.
    fn settings(self) -> &'static [&'static str] {
        match self {
            Batcher::HttpSource => &[BATCH],
            Batcher::Sink(_) => &[BATCH, BATCH_BYTES],
        }
    }

    /// The values of its `batch`, the default first, each with what it does.
    fn modes(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Batcher::HttpSource => &[
                (
                    "auto",
                    "an `application/x-ndjson`, `application/jsonl` or `application/ndjson` body holds a record per non-empty line, an `application/json` array a record per element, any other body one record",
                ),
                ("none", "every request is one record"),
            ],
            Batcher::Sink(SinkConnector::Http) => &[
                ("none", "a request per record"),
                (
                    "ndjson",
                    "a request per batch, the payloads one per line, as `application/x-ndjson`",
                ),
                (
                    "json-array",
                    "a request per batch, a JSON array of the payloads, as `application/json`",
                ),
            ],
            Batcher::Sink(SinkConnector::Nats | SinkConnector::Kafka) => &[
                ("batch", "a message per batch, a version-2 envelope"),
                ("none", "a message per record"),
            ],
            Batcher::Sink(SinkConnector::S3) => &[
                ("none", "an object per record"),
                ("ndjson", "an object per batch, the payloads one per line"),
            ],
        }
    }

    /// What a sink's batch fills at most (`batch-bytes`), and how many bytes by default.
    fn filled(connector: SinkConnector) -> (&'static str, u64) {
        match connector {
            SinkConnector::Http => ("request body", 1 << 20),
            SinkConnector::Nats | SinkConnector::Kafka => ("message", 512 << 10),
            SinkConnector::S3 => ("object", 8 << 20),
        }
    }

    /// What it expects of `key`.
    fn expected(self, key: &str) -> String {
        if key == BATCH {
            let modes: Vec<String> = self
                .modes()
                .iter()
                .enumerate()
                .map(|(i, (mode, what))| {
                    let default = if i == 0 { "the default: " } else { "" };
                    format!("`{mode}` ({default}{what})")
                })
                .collect();
            format!("`batch` of {}: {}", self.kind(), or_list(&modes))
        } else {
            let (unit, default) = match self {
                Batcher::Sink(c) => Batcher::filled(c),
                Batcher::HttpSource => unreachable!("an `http` source reads no `batch-bytes`"),
            };
            format!(
                "`batch-bytes` of {}: a positive integer, the most bytes of a {unit} a batch is packed into (default {default})",
                self.kind()
            )
        }
    }
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// What is wrong with a batching setting: the diagnostic but its place and message.
struct Problem {
    code: Code,
    /// Why, after "… is `<value>`,": e.g. "not a positive number of bytes".
    why: String,
    label: String,
    help: Option<String>,
}

/// What is wrong with `text` as the setting `key` of `batcher`, if anything.
fn problem(batcher: Batcher, key: &str, text: &str) -> Option<Problem> {
    if key == BATCH {
        let modes: Vec<&str> = batcher.modes().iter().map(|(m, _)| *m).collect();
        if modes.contains(&text) {
            return None;
        }
        let quoted: Vec<String> = modes.iter().map(|m| format!("`{m}`")).collect();
        let help = diag::closest(text, modes.iter().copied())
            .map(|m| format!("did you mean `{m}`?"))
            .or_else(|| by_content_type(batcher, text))
            .or_else(|| elsewhere(batcher, text));
        return Some(Problem {
            code: Code::BatchMode,
            why: format!("which {} does not take", batcher.kind()),
            label: format!("not {}", or_list(&quoted)),
            help,
        });
    }
    if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
        // The parts are wasm32: a size must fit in 32 bits.
        return match text.parse::<u32>() {
            Ok(0) => Some(Problem {
                code: Code::BatchBytes,
                why: "not a positive number of bytes".to_owned(),
                label: "a batch of at most 0 bytes holds nothing".to_owned(),
                help: (batcher.modes().iter().any(|(m, _)| *m == "none"))
                    .then(|| "to send each record alone, write `batch: none`".to_owned()),
            }),
            Ok(_) => None,
            Err(_) => Some(Problem {
                code: Code::BatchBytes,
                why: "more bytes than a batch can hold".to_owned(),
                label: format!("larger than {} (4 GiB − 1)", u32::MAX),
                help: None,
            }),
        };
    }
    Some(Problem {
        code: Code::BatchBytes,
        why: "not a positive number of bytes".to_owned(),
        label: "not a positive integer".to_owned(),
        help: bytes_of(text)
            .filter(|n| (1..=u64::from(u32::MAX)).contains(n))
            .map(|n| format!("did you mean `{n}`?")),
    })
}

/// For an `http` source asked to read a format (`ndjson`, `json-array`): `auto` reads it.
fn by_content_type(batcher: Batcher, mode: &str) -> Option<String> {
    let formats = ["ndjson", "jsonl", "json-array", "json", "array", "lines"];
    (batcher == Batcher::HttpSource && formats.contains(&mode.to_ascii_lowercase().as_str())).then(|| {
        "`auto` (the default) splits a body by its content type, an `application/x-ndjson` one by \
         line, an `application/json` array by element: write `batch: auto`, or no `batch`"
            .to_owned()
    })
}

/// Which other connectors take `mode` as their `batch`, when some do.
fn elsewhere(batcher: Batcher, mode: &str) -> Option<String> {
    let all = [
        Batcher::HttpSource,
        Batcher::Sink(SinkConnector::Http),
        Batcher::Sink(SinkConnector::Nats),
        Batcher::Sink(SinkConnector::Kafka),
        Batcher::Sink(SinkConnector::S3),
    ];
    let takers: Vec<String> = all
        .into_iter()
        .filter(|b| *b != batcher && b.modes().iter().any(|(m, _)| *m == mode))
        .map(Batcher::kind)
        .collect();
    (!takers.is_empty()).then(|| {
        format!(
            "`{mode}` is a `batch` of {}, not of {}",
            or_list(&takers),
            batcher.kind()
        )
    })
}

/// The bytes `text` means when it is a size written another way: with a unit (`512KiB`,
/// `1 MiB`, `8MB`, `64k`) or with separators (`1_048_576`, `1,048,576`).
fn bytes_of(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit() && !"_, ".contains(c))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: String = number.chars().filter(char::is_ascii_digit).collect();
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor).filter(|n| *n > 0)
}

/// Reports the batching settings of the repo whose values their connector does not take: the
/// plain ones where they are written, the templates in each of `environments`.
pub(super) fn check_batching(
    repo: &Repo,
    environments: Option<&Environments>,
    out: &mut Vec<Diagnostic>,
) {
    for pipeline in &repo.pipelines {
        for (name, batcher, with, pointer) in batchers(pipeline) {
            check_written(
                &pipeline.file,
                &pipeline.tree,
                &pointer,
                name,
                batcher,
                with,
                out,
            );
        }
    }
    for file in &repo.environments {
        for (pipeline_name, o) in &file.spec.spec.pipelines {
            let Some(pipeline) = repo
                .pipelines
                .iter()
                .find(|p| p.spec.metadata.name == *pipeline_name)
            else {
                continue;
            };
            for (connector, c) in &o.connectors {
                let Some(batcher) = Batcher::of(&pipeline.spec, connector) else {
                    continue;
                };
                let pointer =
                    format!("/spec/pipelines/{pipeline_name}/connectors/{connector}/with");
                check_written(
                    &file.file, &file.tree, &pointer, connector, batcher, &c.with, out,
                );
            }
        }
    }
    let Some(environments) = environments else {
        return;
    };
    let engine = templates::engine();
    let mut found = Findings::new();
    let mut count = 0;
    for env in environments.for_setting(None) {
        count += 1;
        for pipeline in &repo.pipelines {
            let context = templates::context(env, &pipeline.spec.metadata.name);
            for (name, batcher, with, pointer) in batchers(pipeline) {
                for key in batcher.settings() {
                    let Some(written) =
                        connector_setting(repo, &env.name, pipeline, name, (with, &pointer), key)
                    else {
                        continue;
                    };
                    let Setting::Value(Scalar::String(text)) = written.setting else {
                        continue;
                    };
                    if !templates::is_template(text) {
                        continue;
                    }
                    let Ok(rendered) = templates::render(&engine, text.clone(), &context) else {
                        continue;
                    };
                    if let Some(p) = problem(batcher, key, &rendered) {
                        let d = diagnostic(p, batcher, name, key, "renders to", &rendered);
                        found.add(&env.name, d.at(written.file, written.span));
                    }
                }
                if batcher != Batcher::Sink(SinkConnector::S3) {
                    continue;
                }
                // An `s3` sink writing NDJSON batches names each object by its `{digest}`.
                let value = |key: &str| {
                    let with = (with, pointer.as_str());
                    rendered_connector_setting(repo, env, &engine, pipeline, name, with, key)
                };
                if value(BATCH).is_none_or(|(_, mode)| mode != "ndjson") {
                    continue;
                }
                let Some((written, template)) = value(KEY) else {
                    continue;
                };
                if template.contains(DIGEST) {
                    continue;
                }
                let d = Diagnostic::new(
                    Code::BatchKey,
                    format!(
                        "`key` of the `s3` sink `{name}` is `{template}`, which has no `{DIGEST}`, \
                         and the sink writes NDJSON batches (`batch: ndjson`)"
                    ),
                )
                .label(format!("no `{DIGEST}`"))
                .expected(format!(
                    "an object-name template with `{DIGEST}`, the object's SHA-256 (e.g. \
                     `readings/{DIGEST}.ndjson`)"
                ))
                .help(format!(
                    "without it every batch's object may get the same name and replace the one \
                     before; leave `key` out for `{DIGEST}.ndjson`"
                ));
                found.add(&env.name, d.at(written.file, written.span));
            }
        }
    }
    found.finish(count, out);
}

/// The source and sinks of `pipeline` that read batching settings: name, what it is, its
/// `with:` and where that is.
fn batchers(pipeline: &Loaded<Pipeline>) -> Vec<(&str, Batcher, &Settings, String)> {
    let spec = &pipeline.spec.spec;
    let mut out = Vec::new();
    if spec.source.connector == SourceConnector::Http {
        out.push((
            spec.source.name.as_str(),
            Batcher::HttpSource,
            &spec.source.with,
            "/spec/source/with".to_owned(),
        ));
    }
    for (i, sink) in spec.sinks.iter().enumerate() {
        out.push((
            sink.name.as_str(),
            Batcher::Sink(sink.connector),
            &sink.with,
            format!("/spec/sinks/{i}/with"),
        ));
    }
    out
}

/// Reports the batching settings of `with` (at `pointer` of `tree` in `file`), of the source or
/// sink `name`, that are secrets or plain values `batcher` does not take.
fn check_written(
    file: &str,
    tree: &crate::spec::yaml::Node,
    pointer: &str,
    name: &str,
    batcher: Batcher,
    with: &Settings,
    out: &mut Vec<Diagnostic>,
) {
    for key in batcher.settings() {
        let Some(setting) = with.get(*key) else {
            continue;
        };
        let span: Span = tree.nearest_span(&format!("{pointer}/{key}"));
        let d = match setting {
            Setting::Secret(_) => {
                let code = if *key == BATCH {
                    Code::BatchMode
                } else {
                    Code::BatchBytes
                };
                Diagnostic::new(
                    code,
                    format!(
                        "`{key}` of the {} `{name}` cannot be a secret",
                        batcher.name()
                    ),
                )
                .label("a secret reference")
                .expected(batcher.expected(key))
                .note("the harness reads it from the unit's runtime configuration, which holds no secrets")
            }
            Setting::Value(v) => {
                let text = v.as_text();
                if templates::is_template(&text) {
                    continue;
                }
                let Some(p) = problem(batcher, key, &text) else {
                    continue;
                };
                diagnostic(p, batcher, name, key, "is", &text)
            }
        };
        out.push(d.at(file, span));
    }
}

/// The diagnostic of `p` for the setting `key` of the source or sink `name`, which `verb`
/// (`is`, `renders to`) `value`.
fn diagnostic(
    p: Problem,
    batcher: Batcher,
    name: &str,
    key: &str,
    verb: &str,
    value: &str,
) -> Diagnostic {
    Diagnostic::new(
        p.code,
        format!(
            "`{key}` of the {} `{name}` {verb} `{value}`, {}",
            batcher.name(),
            p.why
        ),
    )
    .label(p.label)
    .expected(batcher.expected(key))
    .maybe_help(p.help)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTTP: Batcher = Batcher::Sink(SinkConnector::Http);
    const S3: Batcher = Batcher::Sink(SinkConnector::S3);

    fn help(b: Batcher, key: &str, v: &str) -> Option<String> {
        problem(b, key, v).expect("a problem").help
    }

    #[test]
    fn each_connector_takes_its_own_modes() {
        let nats = Batcher::Sink(SinkConnector::Nats);
        let kafka = Batcher::Sink(SinkConnector::Kafka);
        for (b, ok) in [
            (Batcher::HttpSource, &["auto", "none"][..]),
            (HTTP, &["none", "ndjson", "json-array"]),
            (nats, &["batch", "none"]),
            (kafka, &["batch", "none"]),
            (S3, &["none", "ndjson"]),
        ] {
            for mode in ok {
                assert!(problem(b, BATCH, mode).is_none(), "{b:?} {mode}");
            }
            for bad in ["", "None", " none", "true", "1"] {
                let p = problem(b, BATCH, bad).expect(bad);
                assert_eq!(p.code, Code::BatchMode);
            }
        }
        assert_eq!(
            problem(S3, BATCH, "x").unwrap().label,
            "not `none` or `ndjson`"
        );
        assert_eq!(
            problem(HTTP, BATCH, "x").unwrap().label,
            "not `none`, `ndjson` or `json-array`"
        );
    }

    #[test]
    fn a_near_miss_of_a_mode_gets_a_suggestion() {
        for near in ["ndjosn", "NDJSON", "nd-json", "ndjsn"] {
            assert_eq!(
                help(HTTP, BATCH, near).as_deref(),
                Some("did you mean `ndjson`?"),
                "{near}"
            );
        }
        for near in ["json_array", "jsonarray", "json-arary", "JSON-Array"] {
            assert_eq!(
                help(HTTP, BATCH, near).as_deref(),
                Some("did you mean `json-array`?"),
                "{near}"
            );
        }
        assert_eq!(
            help(Batcher::HttpSource, BATCH, "Auto").as_deref(),
            Some("did you mean `auto`?")
        );
        // Another connector's mode says whose it is.
        assert_eq!(
            help(S3, BATCH, "json-array").as_deref(),
            Some("`json-array` is a `batch` of an `http` sink, not of an `s3` sink")
        );
        assert_eq!(
            help(HTTP, BATCH, "auto").as_deref(),
            Some("`auto` is a `batch` of an `http` source, not of an `http` sink")
        );
        assert_eq!(help(HTTP, BATCH, "gzip"), None);
        // An `http` source asked for a format: `auto` reads it by content type.
        for format in ["ndjson", "json-array", "JSONL"] {
            let help = help(Batcher::HttpSource, BATCH, format).unwrap();
            assert!(help.contains("write `batch: auto`"), "{format}: {help}");
        }
    }

    #[test]
    fn batch_bytes_is_a_positive_integer() {
        for ok in ["1", "1048576", "0042", &u32::MAX.to_string()] {
            assert!(problem(HTTP, BATCH_BYTES, ok).is_none(), "{ok}");
        }
        for bad in [
            "0",
            "-1",
            "+5",
            "1.5",
            "",
            "lots",
            "18446744073709551616",
            "4294967296",
            " 5",
        ] {
            let p = problem(HTTP, BATCH_BYTES, bad).expect(bad);
            assert_eq!(p.code, Code::BatchBytes, "{bad}");
        }
        assert_eq!(
            help(HTTP, BATCH_BYTES, "0").as_deref(),
            Some("to send each record alone, write `batch: none`")
        );
        for (written, bytes) in [
            ("1MiB", 1_048_576),
            ("1 MiB", 1_048_576),
            ("512KiB", 524_288),
            ("8MB", 8_000_000),
            ("64k", 64_000),
            ("1_048_576", 1_048_576),
            ("1,048,576", 1_048_576),
            (" 5", 5),
        ] {
            assert_eq!(
                help(HTTP, BATCH_BYTES, written),
                Some(format!("did you mean `{bytes}`?")),
                "{written}"
            );
        }
        for no_help in ["1.5", "-1", "+5", "lots", "0MiB", "1 parsec"] {
            assert_eq!(help(HTTP, BATCH_BYTES, no_help), None, "{no_help}");
        }
    }

    #[test]
    fn what_is_expected_names_every_mode_and_the_default() {
        assert_eq!(
            S3.expected(BATCH),
            "`batch` of an `s3` sink: `none` (the default: an object per record) or `ndjson` \
             (an object per batch, the payloads one per line)"
        );
        assert_eq!(
            Batcher::Sink(SinkConnector::Kafka).expected(BATCH_BYTES),
            "`batch-bytes` of a `kafka` sink: a positive integer, the most bytes of a message a \
             batch is packed into (default 524288)"
        );
    }
}
