//! What every harness part shares, as macros that expand in the part's own crate (each part
//! gets its own generated types, so a shared function could not take them):
//!
//! - [`generate!`]: the part's bindings, from the one list of WIT packages `etl:platform`
//!   refers to;
//! - [`config_error_text!`]: how a `wasi:config/runtime` error reads in the part's messages;
//! - [`SECRETS`] and [`names`]: the unit's secret setting names, as the deployment lists them.
//!
//! The calling crate depends on `wit-bindgen` itself, and sits beside this one
//! (`harness-components/<part>/`), so that the relative WIT paths below hold for it.
#![no_std]

/// Config key: the unit's secret setting names (`authorization`, `header.X-Api-Key`,
/// `step.token`, …), a comma list, written by the deployment. Names only: the values come from
/// the host's secrets (wasmCloud 1.x) or its config store (v2), never from this key.
pub const SECRETS: &str = "etl.secrets";

/// The names of a comma list (e.g. the value of [`SECRETS`]): split on `,`, each trimmed, empty
/// ones left out.
pub fn names(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|n| !n.is_empty())
}

/// Generates the bindings of a world of `etl:platform` (e.g. `"etl:platform/out-http"`) in the
/// calling crate, with every package it refers to, in dependency order (../wit/deps/README.md),
/// and `generate_all`: the worlds use other packages' interfaces (`etl:pipeline`, `wasi:…`).
///
/// `generate!(v2 "etl:platform-v2/settings")`: a world of `../wit/etl-platform-v2`, with
/// `wasi:config@0.2.0-rc.1` too. With two versions of `wasi:config`, the modules of both carry
/// the version (`wasi::config0_2_0_rc_1`, `wasi::config0_2_0_draft`), which is why the other
/// parts are generated without it.
#[macro_export]
macro_rules! generate {
    (v2 $world:tt) => {
        $crate::generate!(@with $world [
            "../../wit/deps/wasi-config-0.2.0-rc.1",
            "../../wit/etl-platform-v2",
        ]);
    };
    ($world:tt) => {
        $crate::generate!(@with $world []);
    };
    (@with $world:tt [$($more:literal,)*]) => {
        wit_bindgen::generate!({
            path: [
                "../../wit/deps/wasi-io-0.2.12",
                "../../wit/deps/wasi-clocks-0.2.12",
                "../../wit/deps/wasi-random-0.2.12",
                "../../wit/deps/wasi-filesystem-0.2.12",
                "../../wit/deps/wasi-sockets-0.2.12",
                "../../wit/deps/wasi-cli-0.2.12",
                "../../wit/deps/wasi-http-0.2.12",
                "../../wit/deps/wasi-config-0.2.0-draft",
                "../../wit/deps/wasmcloud-messaging-0.2.0",
                "../../wit/deps/wasi-io-0.2.6",
                "../../wit/deps/wasi-blobstore-0.2.0-draft",
                "../../wit/deps/wasmcloud-secrets-0.1.0-draft",
                "../../wit/etl-pipeline",
                "../../wit/etl-platform",
                $($more,)*
            ],
            world: $world,
            generate_all,
        });
    };
}

/// Defines `config_error_text(&ConfigError) -> String` in the calling crate, for the
/// `wasi:config/runtime` bindings [`generate!`] made there: `upstream: …` or `i/o: …`.
#[macro_export]
macro_rules! config_error_text {
    () => {
        /// How a `wasi:config/runtime` error reads in this part's messages.
        fn config_error_text(error: &wasi::config::runtime::ConfigError) -> String {
            match error {
                wasi::config::runtime::ConfigError::Upstream(t) => format!("upstream: {t}"),
                wasi::config::runtime::ConfigError::Io(t) => format!("i/o: {t}"),
            }
        }
    };
}

/// Defines, in `settings` and `settings-v2`, `PREFIX` (the namespace of the step's own settings
/// in the runtime configuration, `step.`) and `visible(all)`: the step's own settings among all
/// of them, the `step.` keys with the prefix stripped, sorted by key (and value, for a key given
/// twice).
#[macro_export]
macro_rules! step_settings {
    () => {
        /// The namespace of the step's own settings in the runtime configuration.
        const PREFIX: &str = "step.";

        /// The step's own settings among all of them: the `step.` keys with the prefix stripped,
        /// sorted by key (and value, for a key given twice).
        fn visible(all: Vec<(String, String)>) -> Vec<(String, String)> {
            let mut visible: Vec<(String, String)> = all
                .into_iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(PREFIX)?.to_string(), v)))
                .collect();
            visible.sort();
            visible
        }
    };
}
