//! Secrets are referenced (`{secret: KEY}`), never written into the repo; references need a
//! secret backend in every environment they are used in.

use std::sync::LazyLock;

use regex::Regex;

use super::settings::SettingsAt;
use crate::diag::{self, Code, Diagnostic};
use crate::spec::environments::Environments;
use crate::spec::model::{Scalar, Setting};
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

#[cfg(test)]
mod tests {
    use super::looks_like_credential;

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
