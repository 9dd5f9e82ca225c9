//! `delivery` settings (`spec.delivery`, `spec.environments.<env>.delivery`): what `etl
//! validate` says about bad ones, as a person reads it. Each case is a small repo generated in a
//! temporary directory; its report is snapshot-tested in `snapshots/`.
//!
//! Update with `INSTA_UPDATE=always cargo test -p etl --test all -- delivery::`, then read every
//! changed `.snap`.

use std::path::{Path, PathBuf};

use crate::invalid_fixtures::{DIGEST, pipeline, report, validate};

/// A repo with one pipeline whose `etl.yaml` has `delivery` (project-wide, indented under
/// `spec:`) and three environments, each with its `envs` text (indented under the environment).
fn repo(root: &Path, delivery: &str, envs: [&str; 3]) -> PathBuf {
    let repo = root.join("repo");
    std::fs::create_dir_all(repo.join("pipelines")).unwrap();
    std::fs::create_dir_all(repo.join("components")).unwrap();
    let mut project = "\
apiVersion: etl/v1alpha1
kind: Project
metadata:
  name: shop
spec:
  registry: registry.example/etl
  providers:
    http-server: wasmcloud+builtin://http-server
    http-client: wasmcloud+builtin://http-client
    messaging-nats: wasmcloud+builtin://messaging-nats
"
    .to_owned();
    project.push_str(delivery);
    project.push_str("  environments:\n");
    for (name, extra) in ["dev", "staging", "prod"].iter().zip(envs) {
        project.push_str(&format!("    {name}:\n      lattice: shop-{name}\n{extra}"));
    }
    std::fs::write(repo.join("etl.yaml"), project).unwrap();
    std::fs::write(repo.join("pipelines/orders.yaml"), pipeline()).unwrap();
    std::fs::write(repo.join("components/parse.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let _ = DIGEST;
    repo
}

fn snapshot(name: &str, delivery: &str, envs: [&str; 3]) -> Vec<&'static str> {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo(tmp.path(), delivery, envs);
    let v = validate(&repo);
    let text = report(&repo, &v);
    insta::with_settings!({
        omit_expression => true,
        description => format!("generated case `{name}`"),
    }, {
        insta::assert_snapshot!(name, text);
    });
    v.diagnostics.iter().map(|d| d.code.as_str()).collect()
}

#[test]
fn every_documented_setting_is_valid() {
    let codes = snapshot(
        "delivery_valid",
        "  delivery:
    guarantee: at-least-once
    max_deliver: 5
    ack_wait: 30s
    backoff: [1s, 5s, 30s]
    max_ack_pending: 1000
    max_age: 24h
    max_bytes: -1
    duplicate_window: 2m
    nats_msg_id: true
",
        [
            "      delivery: { max_deliver: 3, backoff: [250ms] }\n",
            "      delivery: { guarantee: at-most-once }\n",
            "      delivery: { max_age: 0s, max_bytes: 1073741824 }\n",
        ],
    );
    assert!(codes.is_empty(), "{codes:?}");
}

/// What the schema refuses: an unknown guarantee, a count below 1, a duration without its unit
/// or in a unit not taken, an empty backoff, bytes below -1, a misspelt field.
#[test]
fn settings_the_schema_refuses() {
    let codes = snapshot(
        "delivery_schema",
        "  delivery:
    guarantee: exactly-once
    max_deliver: 0
    ack_wait: 30
    backoff: []
    max_bytes: -2
",
        [
            "      delivery: { max_age: 1d }\n",
            "      delivery: { max_delivers: 3 }\n",
            "      delivery: { backoff: [1s, 1.5s] }\n",
        ],
    );
    assert_eq!(
        codes,
        [
            "E0104", "E0106", "E0103", "E0106", "E0106", "E0105", "E0102", "E0105"
        ]
    );
}

/// What only `etl validate`'s own checks find: zeros the NATS server would read as its default,
/// a duration too long for its API, and a de-duplication window longer than the stream keeps
/// messages, blamed on the setting written (an environment's own, or the project's, once for
/// every environment it reaches), and not in an at-most-once environment.
#[test]
fn settings_nats_cannot_take() {
    let codes = snapshot(
        "delivery_semantic",
        "  delivery:
    ack_wait: 0s
    max_bytes: 0
    backoff: [1s, 9999999999h]
    duplicate_window: 10m
",
        [
            "      delivery: { max_age: 5m }\n",
            "      delivery: { max_age: 1h, duplicate_window: 0s }\n",
            "      delivery: { guarantee: at-most-once, max_age: 1m }\n",
        ],
    );
    assert_eq!(codes, ["E0106"; 5]);
    // The default window (2m) against a project's short `max_age`: blamed on `max_age`, once.
    let codes = snapshot(
        "delivery_short_max_age",
        "  delivery:\n    max_age: 90s\n",
        ["", "", ""],
    );
    assert_eq!(codes, ["E0106"]);
}

/// `nats_msg_id` changes the 1.x artifacts, which every environment shares: the project's
/// `delivery` may set it, an environment's may not; and it is a boolean.
#[test]
fn nats_msg_id_is_the_projects_alone() {
    let codes = snapshot(
        "delivery_nats_msg_id",
        "  delivery:\n    nats_msg_id: true\n",
        ["      delivery: { nats_msg_id: false }\n", "", ""],
    );
    assert_eq!(codes, ["E0104"]);
    let codes = snapshot(
        "delivery_nats_msg_id_boolean",
        "  delivery:\n    nats_msg_id: yes please\n",
        ["", "", ""],
    );
    assert_eq!(codes, ["E0103"]);
}
