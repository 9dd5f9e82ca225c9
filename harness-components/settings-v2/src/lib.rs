//! `settings-v2`: the `settings` part for wasmCloud v2 hosts, world `etl:platform-v2/settings`.
//!
//! A v2 host serves the runtime configuration as `wasi:config/store@0.2.0-rc.1`, not as the 1.x
//! host's `wasi:config/runtime@0.2.0-draft`. This part serves the customer its step settings
//! exactly as `settings` does (the same code, `etl_harness_bindings::step_settings!`), and also exports
//! `wasi:config/runtime@0.2.0-draft`, passing each call to the host's `store`: the other parts
//! of a v2 composition take their configuration from it, so they are the same components for
//! both generations, and a v2 composition has one core instance more than a 1.x one (the adapter
//! module wasmtime adds for the calls into this part).

etl_harness_bindings::generate!(v2 "etl:platform-v2/settings");

etl_harness_bindings::step_settings!();

use exports::etl::pipeline::config::Guest as ConfigGuest;
use exports::wasi::config0_2_0_draft::runtime::{ConfigError, Guest as RuntimeGuest};
use wasi::config0_2_0_rc_1::store;

struct Settings;

impl ConfigGuest for Settings {
    fn get(key: String) -> Option<String> {
        store::get(&format!("{PREFIX}{key}")).unwrap_or_else(|e| fail(&e))
    }

    fn get_all() -> Vec<(String, String)> {
        visible(store::get_all().unwrap_or_else(|e| fail(&e)))
    }
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
    let text = match error {
        store::Error::Upstream(t) => format!("upstream: {t}"),
        store::Error::Io(t) => format!("i/o: {t}"),
    };
    panic!("etl settings: cannot read the step's settings from wasi:config/store ({text})")
}

export!(Settings);
