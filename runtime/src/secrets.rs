//! Secret values for a local run: where they come from, and keeping them out of what is printed.
//!
//! A pipeline names its secrets by key (`{secret: KEY}`); locally their values come, in this
//! order, from a fixture's `secrets:` (`etl test`), a file named on the command line
//! (`--secrets FILE`: a YAML or JSON map of KEY to string value, read by [`SecretValues::from_file`])
//! and the environment variable [`env_var`] of the key (`ETL_SECRET_<KEY>`). The runner serves
//! them as the hosts do: through `wasmcloud:secrets` to wasmCloud 1.x artifacts, inside the
//! config store to v2 ones, each under its setting name. A value is never part of an error, and
//! [`Redactor`] takes every value out of what `etl run` and `etl test` print.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use etl::util::io::IoError;

use crate::{Outcome, Record};

/// Prefix of the environment variables that give secret values.
pub const ENV_PREFIX: &str = "ETL_SECRET_";

/// The environment variable that gives the value of secret `key`: [`ENV_PREFIX`] and the key
/// in upper case, every character other than an ASCII letter or digit as `_`
/// (`alerts-webhook-token` → `ETL_SECRET_ALERTS_WEBHOOK_TOKEN`).
pub fn env_var(key: &str) -> String {
    etl::util::env_var_name(ENV_PREFIX, key)
}

/// Why a secrets file could not be used. Never holds a value from it.
#[derive(Debug, thiserror::Error)]
pub enum SecretsFileError {
    /// The file cannot be read.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The file is not YAML (or JSON) text.
    #[error("`{}`:{line}:{column}: not a YAML or JSON map of secret key to value ({what})", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
        /// What is wrong, in general terms (the parser's words could quote a value).
        what: &'static str,
    },
    /// The document is not a map.
    #[error("`{}`: not a map of secret key to value", path.display())]
    NotAMap {
        /// The file.
        path: PathBuf,
    },
    /// A value is not a string.
    #[error("`{}`:{line}:{column}: the value of secret `{key}` is not a string (quote it)", path.display())]
    NotAString {
        /// The file.
        path: PathBuf,
        /// The secret key.
        key: String,
        /// 1-based line of the value.
        line: u32,
        /// 1-based column of the value.
        column: u32,
    },
}

/// Secret values by key, from a file named on the command line and, for the keys it lacks, the
/// environment.
#[derive(Debug, Clone, Default)]
pub struct SecretValues {
    /// Values by key, as given.
    values: BTreeMap<String, String>,
    /// Whether a key not in `values` is looked up in the environment ([`env_var`]).
    env: bool,
}

impl SecretValues {
    /// No values at all (not even the environment's).
    pub fn none() -> Self {
        SecretValues::default()
    }

    /// Exactly `values`, nothing from the environment.
    pub fn of(values: impl IntoIterator<Item = (String, String)>) -> Self {
        SecretValues {
            values: values.into_iter().collect(),
            env: false,
        }
    }

    /// The environment's values ([`env_var`] of each key).
    pub fn from_env() -> Self {
        SecretValues {
            values: BTreeMap::new(),
            env: true,
        }
    }

    /// The values of the YAML or JSON map in `path` (secret key → string), then the
    /// environment's.
    pub fn from_file(path: &Path) -> Result<Self, SecretsFileError> {
        let text = std::fs::read_to_string(path).map_err(IoError::at(path))?;
        let values = parse(path, &text)?;
        Ok(SecretValues { values, env: true })
    }

    /// The value of secret `key`, if one is given.
    pub fn get(&self, key: &str) -> Option<String> {
        if let Some(value) = self.values.get(key) {
            return Some(value.clone());
        }
        if self.env {
            return std::env::var(env_var(key)).ok();
        }
        None
    }
}

/// The map of a secrets file.
fn parse(path: &Path, text: &str) -> Result<BTreeMap<String, String>, SecretsFileError> {
    use etl::spec::yaml::{self, Value};
    let file = path.display().to_string();
    let root = yaml::parse(&file, text).map_err(|diagnostics| {
        let at = diagnostics
            .first()
            .and_then(|d| d.location.as_ref())
            .and_then(|l| l.span)
            .map_or((1, 1), |s| (s.start.line, s.start.column));
        SecretsFileError::Syntax {
            path: path.to_owned(),
            line: at.0,
            column: at.1,
            what: diagnostics
                .first()
                .map_or("malformed YAML", |d| d.code.title()),
        }
    })?;
    let Value::Map(entries) = root.value else {
        return Err(SecretsFileError::NotAMap {
            path: path.to_owned(),
        });
    };
    let mut values = BTreeMap::new();
    for entry in entries {
        match entry.value.value {
            Value::String(value) => {
                values.insert(entry.key, value);
            }
            _ => {
                return Err(SecretsFileError::NotAString {
                    path: path.to_owned(),
                    key: entry.key,
                    line: entry.value.span.start.line,
                    column: entry.value.span.start.column,
                });
            }
        }
    }
    Ok(values)
}

/// A secret a unit reads that was given no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingSecret {
    /// The step or sink.
    pub unit: String,
    /// Its setting (`authorization`, `step.token`, …).
    pub setting: String,
    /// The secret key.
    pub key: String,
}

impl std::fmt::Display for MissingSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let setting = self.setting.strip_prefix("step.").unwrap_or(&self.setting);
        write!(
            f,
            "secret `{}` (setting `{setting}` of `{}`) has no value: give it in a `--secrets FILE` or as `{}`",
            self.key,
            self.unit,
            env_var(&self.key)
        )
    }
}

/// Takes secret values out of text: every occurrence of a value, as written or as a JSON
/// string escapes it, becomes `<secret KEY>`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (text to find, replacement), longest first, so a value inside another is not found
    /// first.
    patterns: Vec<(String, String)>,
}

impl Redactor {
    /// A redactor of `values` (key → value); empty values cannot be told apart and are left.
    pub fn new<'a>(values: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut patterns = Vec::new();
        for (key, value) in values {
            if value.is_empty() {
                continue;
            }
            let replacement = format!("<secret {key}>");
            let escaped = serde_json::to_string(value).expect("strings serialize");
            let escaped = &escaped[1..escaped.len() - 1];
            if escaped != value {
                patterns.push((escaped.to_owned(), replacement.clone()));
            }
            patterns.push((value.to_owned(), replacement));
        }
        patterns.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.cmp(b)));
        patterns.dedup_by(|a, b| a.0 == b.0);
        Redactor { patterns }
    }

    /// Whether there is nothing to take out.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// `text` with every secret value replaced.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (value, replacement) in &self.patterns {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), replacement);
            }
        }
        out
    }

    /// `outcome` with every secret value taken out of its text: the records' headers, keys and
    /// payloads (those that are UTF-8 text), targets, reasons, failure messages and log lines.
    pub fn outcome(&self, mut outcome: Outcome) -> Outcome {
        if self.is_empty() {
            return outcome;
        }
        for s in &mut outcome.sinks {
            s.target = self.text(&s.target);
            self.record(&mut s.record);
        }
        for d in &mut outcome.dead_letters {
            d.reason = self.text(&d.reason);
            self.record(&mut d.record);
        }
        for f in &mut outcome.failures {
            f.message = self.text(&f.message);
        }
        for (_, _, line) in &mut outcome.logs {
            line.context = self.text(&line.context);
            line.message = self.text(&line.message);
        }
        outcome
    }

    fn record(&self, record: &mut Record) {
        for (name, value) in &mut record.headers {
            *name = self.text(name);
            *value = self.text(value);
        }
        for bytes in std::iter::once(&mut record.payload).chain(record.key.as_mut()) {
            if let Ok(text) = std::str::from_utf8(bytes) {
                let redacted = self.text(text);
                if redacted != text {
                    *bytes = redacted.into_bytes();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_vars_are_the_key_in_upper_case_with_underscores() {
        assert_eq!(
            env_var("alerts-webhook-token"),
            "ETL_SECRET_ALERTS_WEBHOOK_TOKEN"
        );
        assert_eq!(env_var("db.pass/2"), "ETL_SECRET_DB_PASS_2");
        assert_eq!(env_var("ünï"), "ETL_SECRET__N_");
    }

    #[test]
    fn a_secrets_file_is_a_map_of_strings_and_its_errors_quote_no_value() {
        let path = Path::new("s.yaml");
        let values = parse(path, "a: one\n\"b\": \"two: 2\"\n").unwrap();
        assert_eq!(values["a"], "one");
        assert_eq!(values["b"], "two: 2");
        let json = parse(path, r#"{"a": "x", "b": "y"}"#).unwrap();
        assert_eq!(json.len(), 2);
        let e = parse(path, "a: hunter2\nb: 12345\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "`s.yaml`:2:4: the value of secret `b` is not a string (quote it)"
        );
        let e = parse(path, "a: hunter2\n  b: [unclosed\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("`s.yaml`:"), "{e}");
        assert!(!e.contains("hunter2") && !e.contains("unclosed"), "{e}");
        let e = parse(path, "- a\n- b\n").unwrap_err().to_string();
        assert_eq!(e, "`s.yaml`: not a map of secret key to value");
    }

    #[test]
    fn values_are_taken_out_as_written_and_as_json_escapes_them() {
        let r = Redactor::new([("k", "s3cr\"et"), ("short", "s3"), ("empty", "")]);
        assert_eq!(
            r.text(r#"a s3cr"et b s3cr\"et c s3"#),
            "a <secret k> b <secret k> c <secret short>"
        );
        assert!(Redactor::new([("e", "")]).is_empty());
    }

    #[test]
    fn missing_secrets_say_where_to_give_them() {
        let m = MissingSecret {
            unit: "enrich".to_owned(),
            setting: "step.token".to_owned(),
            key: "enrich-token".to_owned(),
        };
        assert_eq!(
            m.to_string(),
            "secret `enrich-token` (setting `token` of `enrich`) has no value: give it in a \
             `--secrets FILE` or as `ETL_SECRET_ENRICH_TOKEN`"
        );
    }
}
