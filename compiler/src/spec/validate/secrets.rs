//! Secrets are referenced (`{secret: KEY}`), never written into the repo; references need a
//! secret backend in every environment they are used in, and a setting name a deployment can
//! deliver them under. A fixture's test values are for secrets its pipeline uses, and are no
//! real credentials.

use std::sync::LazyLock;

use regex::Regex;

use super::settings::SettingsAt;
use crate::diag::{self, Code, Diagnostic};
use crate::spec::environments::Environments;
use crate::spec::load::Repo;
use crate::spec::model::{Pipeline, Scalar, Setting};
use crate::spec::templates;

/// Setting keys that name a credential.
static SECRET_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(^|[-_.])(password|passwd|pwd|secret|token|api[-_]?key|apikey|access[-_]?key|private[-_]?key|credentials?|authorization|client[-_]?secret|sasl[-_]?password)($|[-_.])")
        .expect("valid")
});

/// Values that are credentials whatever their key: private keys, cloud and forge tokens, JWTs,
/// bearer tokens, and URLs with a password.
static SECRET_VALUE: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"-----BEGIN [A-Z ]*PRIVATE KEY-----", "a private key"),
        (r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", "an AWS access key id"),
        (r"\bgh[pousr]_[A-Za-z0-9]{36,}\b", "a GitHub token"),
        (r"\bxox[abprs]-[A-Za-z0-9-]{10,}", "a Slack token"),
        (
            r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
            "a JSON web token",
        ),
        (r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}", "a bearer token"),
        (
            r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@",
            "a URL with a password",
        ),
    ]
    .into_iter()
    .map(|(re, what)| (Regex::new(re).expect("valid"), what))
    .collect()
});

/// Why a setting counts as a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// Its key names a credential (`password`, `token`, …) and it has a value.
    ByKey,
    /// Its value is recognisably one, whatever the key: a description such as "a private key".
    ByValue(&'static str),
}

/// Whether `value` under `key` looks like a credential, and why.
pub fn looks_like_credential(key: &str, value: &str) -> Option<Credential> {
    if let Some((_, what)) = SECRET_VALUE.iter().find(|(re, _)| re.is_match(value)) {
        return Some(Credential::ByValue(what));
    }
    (SECRET_KEY.is_match(key) && !value.trim().is_empty()).then_some(Credential::ByKey)
}

pub(super) fn check_secrets(
    at: &SettingsAt<'_>,
    environments: Option<&Environments>,
    out: &mut Vec<Diagnostic>,
) {
    let engine = templates::engine();
    for (key, setting) in at.settings {
        let pointer = format!(
            "{}/{}",
            at.pointer,
            key.replace('~', "~0").replace('/', "~1")
        );
        let span = at.tree.nearest_span(&pointer);
        match setting {
            Setting::Secret(reference) => {
                if let Some(why) = undeliverable(key, at.is_step_config()) {
                    let cleaned = secret_key_like(key);
                    out.push(
                        Diagnostic::new(
                            Code::SecretName,
                            format!("secret setting `{key}` cannot be delivered under its name: {why}"),
                        )
                        .at(at.file, span)
                        .label("not deliverable")
                        .expected("a setting name of letters, digits, `-`, `_` and `.` (at most 240), not starting with `etl.`")
                        .maybe_help((!cleaned.is_empty() && cleaned != *key && undeliverable(&cleaned, at.is_step_config()).is_none()).then(|| format!("did you mean `{cleaned}`?")))
                        .note("a secret reaches its component under its setting name: on wasmCloud v2 as a key of the Kubernetes Secret `<pipeline>-<component>-secrets` and of the component's config store, on wasmCloud 1.x as the name of a wadm secret"),
                    );
                }
                let Some(environments) = environments else {
                    continue;
                };
                let lacking: Vec<&str> = environments
                    .for_setting(at.only_env)
                    .filter(|e| !e.has_secret_backend)
                    .map(|e| e.name.as_str())
                    .collect();
                if !lacking.is_empty() {
                    out.push(
                        Diagnostic::new(
                            Code::NoSecretBackend,
                            format!("secret `{}` has no secret backend in {}", reference.secret, diag::quoted_list(&lacking)),
                        )
                        .at(at.file, span)
                        .label("cannot be resolved")
                        .expected("`spec.secrets.backend` in `etl.yaml`, or `secrets.backend` in each environment")
                        .help("add `secrets: {backend: nats-kv}` (a wadm secret policy backend) to `spec` in `etl.yaml`"),
                    );
                }
            }
            Setting::Value(Scalar::String(text)) => {
                // A literal is judged as written; a template as rendered in each environment
                // (parsed once), so a credential kept in `vars` is found where it is used.
                let literal = (!templates::is_template(text))
                    .then(|| looks_like_credential(key, text))
                    .flatten();
                let rendered = || {
                    let template = engine.template_from_str(text).ok()?;
                    environments?.for_setting(at.only_env).find_map(|env| {
                        let value = template.render(templates::context(env, at.pipeline)).ok()?;
                        Some((env.name.as_str(), looks_like_credential(key, &value)?))
                    })
                };
                let (found, note) = match literal {
                    Some(found) => (found, None),
                    None if !templates::is_template(text) => continue,
                    None => match rendered() {
                        Some((env, found)) => (
                            found,
                            Some(format!("in environment `{env}` the template renders to it")),
                        ),
                        None => continue,
                    },
                };
                let message = match found {
                    Credential::ByKey => format!("`{key}` is a credential written into the repo"),
                    Credential::ByValue(what) => {
                        format!("`{key}` holds {what} written into the repo")
                    }
                };
                let mut d = Diagnostic::new(Code::InlineSecret, message)
                    .at(at.file, span)
                    .label("inline credential")
                    .expected("a reference: `{secret: KEY}`")
                    .help(format!(
                        "store the value in the secret backend and write `{key}: {{secret: <key>}}`"
                    ));
                if let Some(note) = note {
                    d = d.note(note);
                }
                out.push(d);
            }
            Setting::Value(_) => {}
        }
    }
}

/// Checks the `secrets:` of every fixture: each key must be a secret its pipeline uses (in its
/// `with:`/`config:` or an environment file's override of it), and no value may be recognisably
/// a real credential (they are test values, kept in the repo).
pub(super) fn check_fixture_secrets(repo: &Repo, out: &mut Vec<Diagnostic>) {
    for t in &repo.tests {
        let spec = &t.spec.spec;
        let Some(p) = repo
            .pipelines
            .iter()
            .find(|p| *p.spec.metadata.name == *spec.pipeline)
        else {
            continue;
        };
        for (key, value) in &spec.secrets {
            let pointer = format!(
                "/spec/secrets/{}",
                key.replace('~', "~0").replace('/', "~1")
            );
            if let Some(Credential::ByValue(what)) = looks_like_credential(key, value) {
                out.push(
                    Diagnostic::new(
                        Code::InlineSecret,
                        format!("the fixture's secret `{key}` holds {what} written into the repo"),
                    )
                    .at(&t.file, t.span(&pointer))
                    .label("a real-looking credential")
                    .expected("a test value, e.g. `Bearer test-token`")
                    .help("give a fixture a made-up value; pass real ones to `etl run` with `--secrets FILE` or `ETL_SECRET_<KEY>`"),
                );
            }
        }
        // A pipeline with steps or sinks its schema check left out may use more secrets.
        if !p.holes.is_empty() {
            continue;
        }
        let used = used_secrets(repo, &p.spec);
        for key in spec.secrets.keys() {
            if used.iter().any(|u| u == key) {
                continue;
            }
            let pointer = format!(
                "/spec/secrets/{}",
                key.replace('~', "~0").replace('/', "~1")
            );
            out.push(
                Diagnostic::new(
                    Code::UnknownFixtureSecret,
                    format!("pipeline `{}` uses no secret `{key}`", spec.pipeline),
                )
                .at(&t.file, t.key_span(&pointer))
                .label("unused secret")
                .expected(format!(
                    "a secret key of `{{secret: KEY}}` in `{}`: {}",
                    spec.pipeline,
                    diag::quoted_list(&used)
                ))
                .maybe_help(diag::did_you_mean(key, used.iter().map(String::as_str)))
                .related(
                    &p.file,
                    p.span("/metadata/name"),
                    "the pipeline is defined here",
                ),
            );
        }
    }
}

/// The secret keys `pipeline` refers to, in its settings or in an environment file's
/// overrides of its connectors, sorted.
fn used_secrets(repo: &Repo, pipeline: &Pipeline) -> Vec<String> {
    let spec = &pipeline.spec;
    let name = pipeline.metadata.name.as_str();
    let overrides = repo
        .environments
        .iter()
        .flat_map(|f| &f.spec.spec.pipelines)
        .filter(|(p, _)| p.as_str() == name)
        .flat_map(|(_, o)| o.connectors.values().map(|c| &c.with));
    let maps = std::iter::once(&spec.source.with)
        .chain(spec.steps.iter().map(|s| &s.config))
        .chain(spec.sinks.iter().map(|s| &s.with))
        .chain(overrides);
    let mut used: Vec<String> = maps
        .flat_map(|m| m.values())
        .filter_map(|s| match s {
            Setting::Secret(r) => Some(r.secret.clone()),
            Setting::Value(_) => None,
        })
        .collect();
    used.sort();
    used.dedup();
    used
}

/// The most characters of a secret setting's name: a Kubernetes Secret key may have 253, and a
/// step's secret is delivered as `step.<name>`.
const MAX_SECRET_NAME: usize = 240;

/// Why secret setting `key` (of a step's `config:` when `step`) cannot be delivered under its
/// name, if it cannot: the name must be a Kubernetes Secret key (`[-._a-zA-Z0-9]+`), and
/// outside a step's `config:` (whose names get the prefix `step.`) must not be one of the
/// platform's own configuration keys (`etl.…`), which would shadow it in a v2 config store.
pub fn undeliverable(key: &str, step: bool) -> Option<&'static str> {
    let secret_key = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if key.is_empty() {
        Some("it is empty")
    } else if key.len() > MAX_SECRET_NAME {
        Some("it is longer than a Kubernetes Secret key may be")
    } else if !key.bytes().all(secret_key) {
        Some("a Kubernetes Secret key holds only letters, digits, `-`, `_` and `.`")
    } else if !step && (key == "." || key == "..") {
        Some("a Kubernetes Secret key cannot be `.` or `..`")
    } else if !step && key.starts_with("etl.") {
        Some("names starting with `etl.` are the platform's own configuration keys")
    } else {
        None
    }
}

/// `key` with every character a Secret key cannot hold as `-` (for a "did you mean").
fn secret_key_like(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{looks_like_credential, undeliverable};

    #[test]
    fn secret_names_must_be_secret_keys_outside_the_platforms_namespace() {
        assert_eq!(undeliverable("authorization", false), None);
        assert_eq!(undeliverable("header.X-Api-Key", false), None);
        assert_eq!(undeliverable("sasl_password", false), None);
        assert!(undeliverable("api key", false).is_some());
        assert!(undeliverable("header.X:Y", false).is_some());
        assert!(undeliverable("", true).is_some());
        assert!(undeliverable(&"k".repeat(241), true).is_some());
        assert!(undeliverable("etl.out.url", false).is_some());
        // A step's secrets are delivered as `step.<name>`.
        assert_eq!(undeliverable("etl.token", true), None);
        assert_eq!(undeliverable(".", true), None);
    }

    #[test]
    fn finds_credentials_by_key_and_by_value() {
        assert!(looks_like_credential("password", "hunter2").is_some());
        assert!(looks_like_credential("db_password", "x").is_some());
        assert!(looks_like_credential("url", "https://bob:s3cret@example.com/hook").is_some());
        assert!(looks_like_credential("note", "AKIAABCDEFGHIJKLMNOP").is_some());
        assert!(looks_like_credential("url", "https://alerts.acme.example/hook").is_none());
        assert!(looks_like_credential("subject", "iot.archive").is_none());
        assert!(looks_like_credential("tokenizer", "whitespace").is_none());
    }
}
