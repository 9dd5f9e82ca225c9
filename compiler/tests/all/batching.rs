//! Batching settings (issue 17): an `http` source's `batch` reaches every unit it feeds as
//! `etl.in.batch`, a sink's `batch` and `batch-bytes` reach it as `etl.out.batch` and
//! `etl.out.batch-bytes`, each only when set (the harness parts apply the defaults), and no
//! provider's link gets them. Values a connector does not take are `E0314` and `E0315`: see the
//! `batch-*` cases of `tests/fixtures/invalid`.

use std::collections::BTreeMap;
use std::path::Path;

use etl::build::deployment::deploy;

use crate::common;

/// Replaces the first `from` in the repo file `file` by `into`.
fn edit(repo: &Path, file: &str, from: &str, into: &str) {
    let path = repo.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} has no {from:?}");
    std::fs::write(&path, text.replacen(from, into, 1)).unwrap();
}

/// The example with every batching setting: the source reads one record per request
/// (`batch: none`); `alerts` POSTs JSON arrays of at most 64 KiB (a template); `archive` sends a
/// message per record, at most 256 KiB in staging (its override file); and two more sinks of
/// `parse`: `to-kafka` (`batch: batch`, beside a provider setting `hosts`) and `to-s3`, objects of
/// lines.
fn example_with_batching(repo: &Path) {
    common::copy(&common::example(), repo);
    let zeros = "0".repeat(64);
    edit(
        repo,
        "etl.yaml",
        "    messaging-nats: wasmcloud+builtin://messaging-nats\n",
        &format!(
            "    messaging-nats: wasmcloud+builtin://messaging-nats\n    \
             messaging-kafka: ghcr.io/wasmcloud/messaging-kafka:0.6.1@sha256:{zeros}\n    \
             blobstore-s3: ghcr.io/wasmcloud/blobstore-s3:0.12.1@sha256:{zeros}\n"
        ),
    );
    let pipeline = "pipelines/sensor-ingest.yaml";
    edit(
        repo,
        pipeline,
        "      path: /sensors\n",
        "      path: /sensors\n      batch: none\n",
    );
    edit(
        repo,
        pipeline,
        "        authorization: { secret: alerts-webhook-token }   # never a literal token\n",
        "        authorization: { secret: alerts-webhook-token }   # never a literal token\n        \
         batch: json-array\n        batch-bytes: \"{{ 64 * 1024 }}\"\n",
    );
    edit(
        repo,
        pipeline,
        "        subject: \"{{ vars.archive_subject }}\"\n",
        "        subject: \"{{ vars.archive_subject }}\"\n        batch: none\n",
    );
    let text = std::fs::read_to_string(repo.join(pipeline)).unwrap();
    std::fs::write(
        repo.join(pipeline),
        format!(
            "{text}    - name: to-kafka\n      from: [parse]\n      connector: kafka\n      with:\n        \
             topic: iot.readings\n        hosts: kafka-1:9092\n        batch: batch\n    \
             - name: to-s3\n      from: [parse]\n      connector: s3\n      with:\n        \
             bucket: readings\n        batch: ndjson\n        batch-bytes: 8388608\n"
        ),
    )
    .unwrap();
    edit(
        repo,
        "environments/staging.yaml",
        "            subject: iot.staging.sensors.archive.replay\n",
        "            subject: iot.staging.sensors.archive.replay\n            batch-bytes: 262144\n",
    );
}

/// The batching keys of each unit's runtime configuration in `environment`, by unit.
fn batch_config(
    repo: &etl::spec::load::Repo,
    environment: &str,
) -> BTreeMap<String, Vec<(String, String)>> {
    deploy(repo, environment, "sensor-ingest")
        .unwrap()
        .units
        .into_iter()
        .map(|u| {
            let keys = u
                .config
                .into_iter()
                .filter(|(k, _)| k.contains("batch"))
                .collect();
            (u.name, keys)
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn the_example_sets_no_batching_and_gets_no_batching_keys() {
    let v = etl::spec::validate(&common::example()).unwrap();
    for env in ["dev", "staging", "prod"] {
        for (unit, keys) in batch_config(&v.repo, env) {
            assert!(keys.is_empty(), "{env} {unit}: {keys:?}");
        }
    }
}

#[test]
fn batching_settings_reach_the_units_that_read_them() {
    let dir = tempfile::tempdir().unwrap();
    example_with_batching(dir.path());
    let v = etl::spec::validate(dir.path()).unwrap();
    assert!(v.diagnostics.is_empty(), "{:#?}", v.diagnostics);
    for env in ["dev", "staging", "prod"] {
        let config = batch_config(&v.repo, env);
        // The unit the HTTP source feeds reads how a body splits; the steps after it, fed over
        // NATS, read nothing of batching.
        assert_eq!(config["parse"], pairs(&[("etl.in.batch", "none")]), "{env}");
        assert_eq!(config["enrich"], [], "{env}");
        assert_eq!(config["threshold-alert"], [], "{env}");
        assert_eq!(
            config["alerts"],
            pairs(&[
                ("etl.out.batch", "json-array"),
                ("etl.out.batch-bytes", "65536")
            ]),
            "{env}: the template rendered"
        );
        let archive = if env == "staging" {
            pairs(&[("etl.out.batch", "none"), ("etl.out.batch-bytes", "262144")])
        } else {
            pairs(&[("etl.out.batch", "none")])
        };
        assert_eq!(config["archive"], archive, "{env}: the override file's");
        assert_eq!(
            config["to-kafka"],
            pairs(&[("etl.out.batch", "batch")]),
            "{env}"
        );
        assert_eq!(
            config["to-s3"],
            pairs(&[
                ("etl.out.batch", "ndjson"),
                ("etl.out.batch-bytes", "8388608")
            ]),
            "{env}"
        );
    }
}

/// The harness reads the batching settings: the links to the providers carry none of them (the
/// other settings stay), in the wadm and the Kubernetes manifests alike.
#[test]
fn no_provider_link_gets_a_batching_setting() {
    let dir = tempfile::tempdir().unwrap();
    example_with_batching(dir.path());
    let build = etl::build::build(dir.path(), None, &Default::default()).unwrap();
    assert!(
        build.validation.diagnostics.is_empty(),
        "{:#?}",
        build.validation.diagnostics
    );
    let plan = build.plan.expect("a plan");
    for (env, apps) in &plan.deployments {
        let app = &apps["sensor-ingest"];
        let mut linked = BTreeMap::new();
        for link in &app.links {
            for config in [&link.source_config, &link.target_config]
                .into_iter()
                .flatten()
            {
                assert!(
                    config.properties.keys().all(|k| !k.contains("batch")),
                    "{env}: {link:?}"
                );
                linked.insert(config.name.clone(), config.properties.clone());
            }
        }
        let of = |prefix: &str| {
            linked
                .iter()
                .find(|(name, _)| name.starts_with(prefix))
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| panic!("{env}: no link config {prefix}…: {linked:?}"))
        };
        assert_eq!(
            of("parse-http-in"),
            BTreeMap::from([("path".to_owned(), "/sensors".to_owned())]),
            "{env}"
        );
        assert_eq!(
            of("to-kafka-kafka-out"),
            BTreeMap::from([("hosts".to_owned(), "kafka-1:9092".to_owned())]),
            "{env}"
        );
        // In the manifests, `batch` is only ever part of a runtime configuration key.
        for file in ["wadm", "k8s"] {
            let path = format!("{env}/{file}/sensor-ingest.yaml");
            let text = std::str::from_utf8(&build.files[&path]).unwrap();
            let lines: Vec<&str> = text.lines().filter(|l| l.contains("batch")).collect();
            assert!(!lines.is_empty(), "{path}");
            for line in lines {
                assert!(
                    line.contains("etl.in.batch") || line.contains("etl.out.batch"),
                    "{path}: {line}"
                );
            }
        }
    }
}
