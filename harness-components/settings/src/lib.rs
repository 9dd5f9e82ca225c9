//! `settings`: serves the customer component its own step settings, and the other parts the
//! unit's secret settings; world `etl:platform/settings` (wasmCloud 1.x; `settings-v2` is its
//! twin for v2 hosts).
//!
//! The step's `config:` values (rendered for the environment) reach the composed component
//! through `wasi:config/runtime`, each under the key `step.<name>`, next to the platform's own
//! settings (`etl.*`: subjects, URLs, …). This part exports the contract's
//! `etl:pipeline/config` to the customer and shows it the `step.` keys only, with the prefix
//! stripped, so platform settings are never visible to customer code.
//!
//! Secret settings (`{secret: KEY}`) are not in the configuration: the wasmCloud 1.x host serves
//! them through `wasmcloud:secrets` (store and reveal), each named like its setting, as the wadm
//! manifest declares them for the component; the configuration key `etl.secrets` lists their
//! names. A step's own (`step.<name>`) reach the customer through `config` like its other
//! settings; every one reaches the other parts through `etl:platform/secrets`.
//!
//! It also exports the contract's types-only interface `etl:pipeline/types` (nothing to
//! implement): in a composed step that export satisfies every other part's import of it.

etl_harness_bindings::generate!("etl:platform/settings");
etl_harness_bindings::config_error_text!();
etl_harness_bindings::step_settings!();

use etl_harness_bindings::{SECRETS, names};
use exports::etl::pipeline::config::Guest as ConfigGuest;
use exports::etl::platform::secrets::Guest as SecretsGuest;
use wasi::config::runtime::{self, ConfigError};
use wasmcloud::secrets::{reveal, store};

struct Settings;

impl ConfigGuest for Settings {
    fn get(key: String) -> Option<String> {
        let name = format!("{PREFIX}{key}");
        if let Some(value) = runtime::get(&name).unwrap_or_else(|e| fail(&e)) {
            return Some(value);
        }
        let list = runtime::get(SECRETS).unwrap_or_else(|e| fail(&e));
        let secret = list.as_deref().is_some_and(|l| names(l).any(|n| n == name));
        secret.then(|| step_secret(&name))
    }

    fn get_all() -> Vec<(String, String)> {
        let mut all = runtime::get_all().unwrap_or_else(|e| fail(&e));
        let secret: Vec<String> = all
            .iter()
            .filter(|(k, _)| k == SECRETS)
            .flat_map(|(_, list)| names(list))
            .filter(|n| n.starts_with(PREFIX))
            .map(str::to_string)
            .collect();
        for name in secret {
            let value = step_secret(&name);
            all.push((name, value));
        }
        visible(all)
    }
}

impl SecretsGuest for Settings {
    fn get(name: String) -> Result<Option<String>, String> {
        secret(&name)
    }
}

/// The secret named `name`: `None` when the host has none of that name.
fn secret(name: &str) -> Result<Option<String>, String> {
    let handle = match store::get(name) {
        Ok(handle) => handle,
        Err(store::SecretsError::NotFound) => return Ok(None),
        Err(store::SecretsError::Upstream(t)) => {
            return Err(format!("wasmcloud:secrets, upstream: {t}"));
        }
        Err(store::SecretsError::Io(t)) => return Err(format!("wasmcloud:secrets, i/o: {t}")),
    };
    match reveal::reveal(&handle) {
        store::SecretValue::String(value) => Ok(Some(value)),
        store::SecretValue::Bytes(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
            "wasmcloud:secrets: the value is bytes that are not UTF-8 text".to_string()
        }),
    }
}

/// The step's secret setting `name` (`step.<key>`), for the customer, whose `config` cannot
/// report an error: a secret the deployment declares but the host cannot give traps (naming the
/// setting, never a value), as an unreadable configuration does.
fn step_secret(name: &str) -> String {
    let key = name.strip_prefix(PREFIX).unwrap_or(name);
    match secret(name) {
        Ok(Some(value)) => value,
        Ok(None) => panic!(
            "etl settings: the step's secret setting `{key}` has no value: the host has no secret \
             named `{name}`"
        ),
        Err(text) => panic!("etl settings: cannot read the step's secret setting `{key}` ({text})"),
    }
}

/// The contract's `config` cannot report an error, and answering "not set" for a setting that
/// could not be read would let the transform run on the wrong settings. So the call traps: the
/// host reports the failed invocation, and the record is not processed with wrong settings.
fn fail(error: &ConfigError) -> ! {
    let text = config_error_text(error);
    panic!("etl settings: cannot read the step's settings from wasi:config/runtime ({text})")
}

export!(Settings);

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn only_step_settings_are_visible_sorted_and_unprefixed() {
        let all = vec![
            pair("step.threshold", "80"),
            pair("etl.out.subjects", "secret.subject"),
            pair("etl.secrets", "step.token"),
            pair("step.", "empty name"),
            pair("stepx.a", "no"),
            pair("STEP.b", "no"),
            pair("step.site", "east"),
            pair("step.step.nested", "kept"),
        ];
        assert_eq!(
            visible(all),
            [
                pair("", "empty name"),
                pair("site", "east"),
                pair("step.nested", "kept"),
                pair("threshold", "80"),
            ]
        );
    }

    #[test]
    fn secret_names_are_a_trimmed_comma_list() {
        let listed: Vec<&str> = names(" step.token, ,authorization,,header.X-Api-Key ").collect();
        assert_eq!(listed, ["step.token", "authorization", "header.X-Api-Key"]);
        assert_eq!(names("").count(), 0);
    }
}
