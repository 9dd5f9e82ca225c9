//! The JSON Schemas of the spec files (`schema/*.schema.json`, embedded), and their errors as
//! diagnostics that point at the YAML source.
//!
//! "Expected" texts come from the schemas' own `description`s, so editors and the compiler say
//! the same thing.

use std::collections::HashSet;
use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value as Json;

use crate::diag::{self, Code, Diagnostic, Span};
use crate::spec::model::{DIGEST_PATTERN, EGRESS_HOST_PATTERN, GRANT_PATTERN, NAME_PATTERN};
use crate::spec::yaml::Node;

/// The four kinds of spec file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    /// `etl.yaml`.
    Project,
    /// `pipelines/*.yaml`.
    Pipeline,
    /// `environments/<env>.yaml`.
    Environment,
    /// `tests/*.yaml`.
    Test,
}

impl FileKind {
    /// Every kind.
    pub const ALL: [FileKind; 4] = [
        FileKind::Project,
        FileKind::Pipeline,
        FileKind::Environment,
        FileKind::Test,
    ];

    /// The `kind:` value of files of this kind.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Project => "Project",
            FileKind::Pipeline => "Pipeline",
            FileKind::Environment => "Environment",
            FileKind::Test => "Test",
        }
    }

    /// The schema's text, as published in `schema/`.
    pub fn schema_text(self) -> &'static str {
        match self {
            FileKind::Project => include_str!("../../../schema/project.schema.json"),
            FileKind::Pipeline => include_str!("../../../schema/pipeline.schema.json"),
            FileKind::Environment => include_str!("../../../schema/environment.schema.json"),
            FileKind::Test => include_str!("../../../schema/test.schema.json"),
        }
    }

    /// The schema file name under `schema/`.
    pub fn schema_file(self) -> &'static str {
        match self {
            FileKind::Project => "project.schema.json",
            FileKind::Pipeline => "pipeline.schema.json",
            FileKind::Environment => "environment.schema.json",
            FileKind::Test => "test.schema.json",
        }
    }

    fn compiled(self) -> &'static Compiled {
        static ALL: LazyLock<[Compiled; 4]> = LazyLock::new(|| FileKind::ALL.map(Compiled::new));
        &ALL[self as usize]
    }
}

struct Compiled {
    schema: Json,
    validator: Validator,
}

impl Compiled {
    fn new(kind: FileKind) -> Self {
        let schema: Json =
            serde_json::from_str(kind.schema_text()).expect("embedded schema is JSON");
        let validator = jsonschema::draft202012::new(&schema).expect("embedded schema compiles");
        Compiled { schema, validator }
    }
}

/// Whether the schema accepts `instance`.
pub fn is_valid(kind: FileKind, instance: &Json) -> bool {
    kind.compiled().validator.is_valid(instance)
}

/// The JSON pointers of the values the schema rejects in `instance`, in the schema's order.
pub fn error_pointers(kind: FileKind, instance: &Json) -> Vec<String> {
    kind.compiled()
        .validator
        .iter_errors(instance)
        .map(|e| e.instance_path().as_str().to_owned())
        .collect()
}

/// Validates `instance` (the JSON form of `tree`) and returns one diagnostic per problem.
///
/// A required field reported missing beside an unknown key that is its misspelling would say
/// the same thing twice: only the "unknown field, did you mean" diagnostic is kept.
pub fn violations(kind: FileKind, file: &str, tree: &Node, instance: &Json) -> Vec<Diagnostic> {
    let compiled = kind.compiled();
    let errors: Vec<ValidationError<'_>> = compiled.validator.iter_errors(instance).collect();
    let mut misspelt: HashSet<(String, String)> = HashSet::new();
    for error in &errors {
        if let ValidationErrorKind::AdditionalProperties { unexpected } = error.kind() {
            let pointer = error.instance_path().as_str();
            let known = schema_at(&compiled.schema, pointer, instance)
                .map(property_names)
                .unwrap_or_default();
            for key in unexpected {
                if let Some(fix) = diag::closest(key, known.iter().map(String::as_str)) {
                    misspelt.insert((pointer.to_owned(), fix.to_owned()));
                }
            }
        }
    }
    let mut out = Vec::new();
    for error in &errors {
        if let ValidationErrorKind::Required { property } = error.kind() {
            let key = (
                error.instance_path().as_str().to_owned(),
                property.as_str().unwrap_or_default().to_owned(),
            );
            if misspelt.contains(&key) {
                continue;
            }
        }
        describe(&compiled.schema, file, tree, instance, error, &mut out);
    }
    out
}

fn describe(
    schema: &Json,
    file: &str,
    tree: &Node,
    instance: &Json,
    error: &ValidationError<'_>,
    out: &mut Vec<Diagnostic>,
) {
    let pointer = error.instance_path().as_str().to_owned();
    let here = tree.pointer(&pointer);
    let span = here.map_or_else(|| tree.nearest_span(&pointer), |c| c.node.span);
    let sub = schema_at(schema, &pointer, instance);
    let what = field_name(&pointer);
    let expected = sub.and_then(description);
    let with_expected = |d: Diagnostic| match &expected {
        Some(e) => d.expected(e.clone()),
        None => d,
    };
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let known = sub.map(property_names).unwrap_or_default();
            for key in unexpected {
                let key_span = here
                    .and_then(|c| c.node.child(key))
                    .map_or(span, |c| c.key_or_node_span());
                out.push(
                    Diagnostic::new(
                        Code::UnknownField,
                        format!("unknown field `{key}` in {what}"),
                    )
                    .at(file, key_span)
                    .label("not a field here")
                    .expected(format!("one of {}", diag::quoted_list(&known)))
                    .maybe_help(diag::did_you_mean(key, known.iter().map(String::as_str))),
                );
            }
        }
        ValidationErrorKind::Required { property } => {
            let property = property.as_str().unwrap_or_default();
            let expected = sub
                .and_then(|s| resolve(schema, s).get("properties")?.get(property))
                .map(|p| resolve(schema, p))
                .and_then(description);
            let at = here.map_or(span, |c| c.key_or_node_span());
            let mut d = Diagnostic::new(
                Code::MissingField,
                format!("missing field `{property}` in {what}"),
            )
            .at(file, at)
            .label(format!("`{property}` is required here"));
            if let Some(e) = expected {
                d = d.expected(format!("`{property}`: {e}"));
            }
            out.push(d);
        }
        ValidationErrorKind::Type { kind } => {
            out.push(with_expected(
                Diagnostic::new(
                    Code::WrongType,
                    format!(
                        "{what} must be {}, not {}",
                        type_words(&format!("{kind:?}")),
                        json_type(error.instance())
                    ),
                )
                .at(file, span)
                .label(format!("this is {}", json_type(error.instance()))),
            ));
        }
        ValidationErrorKind::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o.as_str().map(str::to_owned))
                .collect();
            let value = scalar_text(error.instance());
            out.push(
                Diagnostic::new(
                    Code::NotAllowed,
                    format!("`{value}` is not an allowed {what}"),
                )
                .at(file, span)
                .label("not allowed here")
                .expected(format!("one of {}", diag::quoted_list(&options)))
                .maybe_help(diag::did_you_mean(
                    &value,
                    options.iter().map(String::as_str),
                )),
            );
        }
        ValidationErrorKind::Constant { expected_value } => {
            out.push(
                Diagnostic::new(
                    Code::NotAllowed,
                    format!("{what} must be `{}`", scalar_text(expected_value)),
                )
                .at(file, span)
                .expected(format!("`{}`", scalar_text(expected_value))),
            );
        }
        ValidationErrorKind::Pattern { pattern } => {
            out.push(pattern_diagnostic(
                pattern,
                &scalar_text(error.instance()),
                &what,
                file,
                span,
                expected,
            ));
        }
        ValidationErrorKind::PropertyNames { error: inner } => {
            let key = scalar_text(inner.instance());
            let key_span = here
                .and_then(|c| c.node.child(&key))
                .map_or(span, |c| c.key_or_node_span());
            let pattern = match inner.kind() {
                ValidationErrorKind::Pattern { pattern } => pattern.as_str(),
                _ => "",
            };
            out.push(pattern_diagnostic(
                pattern,
                &key,
                &format!("key of {what}"),
                file,
                key_span,
                None,
            ));
        }
        ValidationErrorKind::MinItems { .. } if lists_egress_hosts(schema, sub) => {
            let grant = pointer.strip_suffix("/hosts").unwrap_or(&pointer);
            let interface = instance
                .pointer(&format!("{grant}/interface"))
                .and_then(Json::as_str)
                .unwrap_or(crate::spec::model::OUTGOING_HANDLER);
            out.push(crate::spec::egress::no_hosts(file, span, interface, true));
        }
        ValidationErrorKind::MinItems { limit } => {
            out.push(with_expected(
                Diagnostic::new(
                    Code::OutOfRange,
                    format!(
                        "{what} needs at least {limit} item{}",
                        if *limit == 1 { "" } else { "s" }
                    ),
                )
                .at(file, span)
                .label("empty list"),
            ));
        }
        ValidationErrorKind::Minimum { limit } | ValidationErrorKind::Maximum { limit } => {
            let side = if matches!(error.kind(), ValidationErrorKind::Minimum { .. }) {
                "at least"
            } else {
                "at most"
            };
            out.push(with_expected(
                Diagnostic::new(
                    Code::OutOfRange,
                    format!("{what} must be {side} {limit}, not {}", error.instance()),
                )
                .at(file, span)
                .label("out of range"),
            ));
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            out.push(with_expected(
                Diagnostic::new(
                    Code::Schema,
                    format!("{what} gives more than one of its alternatives"),
                )
                .at(file, span)
                .label("choose one"),
            ));
        }
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. } => {
            out.push(with_expected(
                Diagnostic::new(
                    Code::Schema,
                    format!("{what} has none of the accepted forms"),
                )
                .at(file, span)
                .label(format!("this is {}", json_type(error.instance()))),
            ));
        }
        _ => {
            out.push(with_expected(
                Diagnostic::new(Code::Schema, format!("{what}: {}", error.masked())).at(file, span),
            ));
        }
    }
}

fn pattern_diagnostic(
    pattern: &str,
    value: &str,
    what: &str,
    file: &str,
    span: Span,
    expected: Option<String>,
) -> Diagnostic {
    if pattern == NAME_PATTERN {
        let mut d = Diagnostic::new(Code::InvalidName, format!("`{value}` is not a valid {what}"))
            .at(file, span)
            .label("invalid name")
            .expected("letters, digits, `-` and `_` only (wadm requires `^[-\\w]+$`; OCI repositories need ASCII)");
        if let Some(fixed) = crate::spec::model::name_from(value) {
            d = d.help(format!("use `{fixed}`"));
        }
        return d;
    }
    if pattern == EGRESS_HOST_PATTERN {
        return crate::spec::egress::bad_host(value, file, span);
    }
    if pattern == DIGEST_PATTERN {
        let mut d = Diagnostic::new(
            Code::InvalidDigest,
            format!("`{value}` is not a sha256 digest"),
        )
        .at(file, span)
        .label("invalid digest")
        .expected("`sha256:` followed by 64 lowercase hex digits");
        if value
            .strip_prefix("sha256:")
            .is_some_and(|h| h.chars().any(|c| c.is_ascii_uppercase()))
        {
            d = d.help(format!(
                "write the hex digits in lower case: `{}`",
                value.to_ascii_lowercase()
            ));
        } else if value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit()) {
            d = d.help(format!(
                "add the algorithm: `sha256:{}`",
                value.to_ascii_lowercase()
            ));
        } else {
            d = d.help("compute it with `sha256sum FILE` and write `sha256:<hex>`");
        }
        return d;
    }
    let mut d = Diagnostic::new(Code::Pattern, format!("`{value}` is not a valid {what}"))
        .at(file, span)
        .label("does not match");
    if pattern == GRANT_PATTERN {
        d = d.expected("an interface such as `wasi:logging/logging`, `wasi:logging/logging@0.1.0-draft` or `wasi:logging/*`");
    } else if let Some(e) = expected {
        d = d.expected(e);
    } else {
        d = d.expected(format!("text matching `{pattern}`"));
    }
    d
}

/// Whether `list` is the schema of the `hosts` of a grant.
fn lists_egress_hosts(root: &Json, list: Option<&Json>) -> bool {
    list.and_then(|l| l.get("items"))
        .map(|items| resolve(root, items))
        .and_then(|items| items.get("pattern"))
        .and_then(Json::as_str)
        == Some(EGRESS_HOST_PATTERN)
}

/// The human name of the field at a pointer: `steps[2].from`.
fn field_name(pointer: &str) -> String {
    if pointer.is_empty() {
        return "the document".to_owned();
    }
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    format!("`{out}`")
}

fn scalar_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null (an empty value)",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}

fn type_words(kind_debug: &str) -> String {
    let word = |t: &str| match t.to_ascii_lowercase().as_str() {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a string",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "a boolean",
        "null" => "empty",
        _ => "of another type",
    };
    let types: Vec<&str> = kind_debug
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|t| !t.is_empty() && !matches!(*t, "Single" | "Multiple" | "JsonTypeSet"))
        .map(word)
        .collect();
    match types.as_slice() {
        [] => "of another type".to_owned(),
        [one] => (*one).to_owned(),
        many => many.join(" or "),
    }
}

/// Follows a local `$ref` (`#/$defs/x`).
fn resolve<'a>(root: &'a Json, schema: &'a Json) -> &'a Json {
    let mut here = schema;
    for _ in 0..8 {
        match here
            .get("$ref")
            .and_then(Json::as_str)
            .and_then(|r| r.strip_prefix('#'))
        {
            Some(pointer) => match root.pointer(pointer) {
                Some(target) => here = target,
                None => break,
            },
            None => break,
        }
    }
    here
}

/// The subschema that describes the instance at `pointer`, following properties, items,
/// additionalProperties and local refs.
fn schema_at<'a>(root: &'a Json, pointer: &str, instance: &Json) -> Option<&'a Json> {
    let mut here = resolve(root, root);
    let mut value = instance;
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        here = match value {
            Json::Array(items) => {
                value = items.get(segment.parse::<usize>().ok()?)?;
                here.get("items")?
            }
            Json::Object(map) => {
                value = map.get(&segment)?;
                match here.get("properties").and_then(|p| p.get(&segment)) {
                    Some(s) => s,
                    None => here.get("additionalProperties").filter(|a| a.is_object())?,
                }
            }
            _ => return None,
        };
        here = resolve(root, here);
    }
    Some(here)
}

fn description(schema: &Json) -> Option<String> {
    schema
        .get("description")
        .and_then(Json::as_str)
        .map(str::to_owned)
}

fn property_names(schema: &Json) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Json::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schemas_compile() {
        for kind in FileKind::ALL {
            let _ = kind.compiled();
        }
    }

    #[test]
    fn names_fields_readably() {
        assert_eq!(field_name("/spec/steps/2/from"), "`spec.steps[2].from`");
        assert_eq!(field_name(""), "the document");
    }
}
