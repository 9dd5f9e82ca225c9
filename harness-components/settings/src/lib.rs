//! `settings`: serves the customer component its own step settings, world
//! `etl:platform/settings` (wasmCloud 1.x; `settings-v2` is its twin for v2 hosts).
//!
//! The step's `config:` values (rendered for the environment) reach the composed component
//! through `wasi:config/runtime`, each under the key `step.<name>`, next to the platform's own
//! settings (`etl.*`: subjects, URLs, …). This part exports the contract's
//! `etl:pipeline/config` to the customer and shows it the `step.` keys only, with the prefix
//! stripped, so platform settings are never visible to customer code.
//!
//! It also exports the contract's types-only interface `etl:pipeline/types` (nothing to
//! implement): in a composed step that export satisfies every other part's import of it.

etl_harness_bindings::generate!("etl:platform/settings");
etl_harness_bindings::config_error_text!();
etl_harness_bindings::step_settings!();

use exports::etl::pipeline::config::Guest;
use wasi::config::runtime::{self, ConfigError};

struct Settings;

impl Guest for Settings {
    fn get(key: String) -> Option<String> {
        runtime::get(&format!("{PREFIX}{key}")).unwrap_or_else(|e| fail(&e))
    }

    fn get_all() -> Vec<(String, String)> {
        visible(runtime::get_all().unwrap_or_else(|e| fail(&e)))
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
}
