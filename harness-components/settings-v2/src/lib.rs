//! `settings-v2`: the `settings` part for wasmCloud v2 hosts, world `etl:platform-v2/settings`.
//!
//! A v2 host serves the runtime configuration as `wasi:config/store@0.2.0-rc.1`, not as the 1.x
//! host's `wasi:config/runtime@0.2.0-draft`. This part serves the customer its step settings
//! exactly as `settings` does (the same code, `etl_harness_bindings::step_settings!`), and also exports
//! `wasi:config/runtime@0.2.0-draft`, passing each call to the host's `store`: the other parts
//! of a v2 composition take their configuration from it, so they are the same components for
//! both generations, and a v2 composition has one core instance more than a 1.x one (the adapter
//! module wasmtime adds for the calls into this part).
//!
//! A v2 host delivers secrets as configuration: the deployment puts its Secret on the
//! `wasi:config` interface, whose config the host layers under the component's own, so each
//! secret value is in `store` under its setting name (`step.<name>` for a step's, which the
//! customer therefore reads like its other settings). This part serves them to the other parts
//! as `etl:platform/secrets`, and checks that every secret the deployment lists in
//! `etl.secrets` is there before it answers the customer, as `settings` does on 1.x.

etl_harness_bindings::generate!(v2 "etl:platform-v2/settings");

etl_harness_bindings::step_settings!();

use etl_harness_bindings::{SECRETS, names};
use exports::etl::pipeline::config::Guest as ConfigGuest;
use exports::etl::platform::secrets::Guest as SecretsGuest;
use exports::wasi::config0_2_0_draft::runtime::{ConfigError, Guest as RuntimeGuest};
use wasi::config0_2_0_rc_1::store;

struct Settings;

impl ConfigGuest for Settings {
    fn get(key: String) -> Option<String> {
        let name = format!("{PREFIX}{key}");
        let value = store::get(&name).unwrap_or_else(|e| fail(&e));
        if value.is_none() {
            let list = store::get(SECRETS).unwrap_or_else(|e| fail(&e));
            if list.as_deref().is_some_and(|l| names(l).any(|n| n == name)) {
                missing(&name);
            }
        }
        value
    }

    fn get_all() -> Vec<(String, String)> {
        let all = store::get_all().unwrap_or_else(|e| fail(&e));
        let listed = all.iter().filter(|(k, _)| k == SECRETS);
        for name in listed.flat_map(|(_, list)| names(list)) {
            if name.starts_with(PREFIX) && !all.iter().any(|(k, _)| k == name) {
                missing(name);
            }
        }
        visible(all)
    }
}

impl SecretsGuest for Settings {
    fn get(name: String) -> Result<Option<String>, String> {
        store::get(&name).map_err(|e| format!("wasi:config/store, {}", error_text(&e)))
    }
}

/// A step secret the deployment lists and the host did not deliver: traps naming the setting
/// (never a value), as a failure to read the settings does.
fn missing(name: &str) -> ! {
    let key = name.strip_prefix(PREFIX).unwrap_or(name);
    panic!(
        "etl settings: the step's secret setting `{key}` has no value: the host's config has no \
         key `{name}` (the deployment's Secret must hold it)"
    )
}

impl RuntimeGuest for Settings {
    fn get(key: String) -> Result<Option<String>, ConfigError> {
        store::get(&key).map_err(runtime_error)
    }

    fn get_all() -> Result<Vec<(String, String)>, ConfigError> {
        store::get_all().map_err(runtime_error)
    }
}

/// A `store` error as the same `runtime` error: the two variants have the same cases.
fn runtime_error(error: store::Error) -> ConfigError {
    match error {
        store::Error::Upstream(text) => ConfigError::Upstream(text),
        store::Error::Io(text) => ConfigError::Io(text),
    }
}

/// Traps, as `settings` does: the contract's `config` cannot report an error, and "not set"
/// would let the transform run on the wrong settings.
fn fail(error: &store::Error) -> ! {
    let text = error_text(error);
    panic!("etl settings: cannot read the step's settings from wasi:config/store ({text})")
}

/// How a `store` error reads in this part's messages: `upstream: …` or `i/o: …`.
fn error_text(error: &store::Error) -> String {
    match error {
        store::Error::Upstream(t) => format!("upstream: {t}"),
        store::Error::Io(t) => format!("i/o: {t}"),
    }
}

export!(Settings);
