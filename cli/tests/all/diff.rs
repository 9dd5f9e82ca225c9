//! `etl diff`: two compiles of edited copies of the example compared, the report snapshot-tested
//! in its three formats; harness and composition causes, redaction and the Markdown size limit
//! on edited plans; git refs and exit codes through the binary.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use etl::ops::diff::{self, Cause, Options, Report, Snapshot, Status};
use serde_json::{Value, json};

/// Compositions shared by every test of this binary (and every run).
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("diff-cache")
}

fn options(repo: &Path) -> Options {
    Options {
        repo: repo.to_owned(),
        cache: Some(etl::store::Cache::new(cache_dir())),
        ..Options::default()
    }
}

/// A copy of the example, edited by `edit` (given the copy's root).
fn example_with(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy(&common::example(), dir.path());
    edit(dir.path());
    dir
}

/// Replaces `from` with `to` in the file `path` under `root`; `from` must be there.
fn replace(root: &Path, path: &str, from: &str, to: &str) {
    let file = root.join(path);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(from), "`{from}` is not in {path}");
    std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
}

/// `etl compile` of `repo` into `<dir>/dist`, stamped with `created`: the dist directory.
fn compile(repo: &Path, dir: &Path, created: i64) -> PathBuf {
    let out = dir.join("dist");
    let c = etl::ops::compile::compile(
        repo,
        &etl::ops::compile::Options {
            out: out.clone(),
            cache: Some(etl::store::Cache::new(cache_dir())),
            provenance: etl::oci::layout::Provenance {
                created,
                ..Default::default()
            },
        },
    )
    .unwrap();
    assert!(c.plan.is_some(), "{:#?}", c.validation.diagnostics);
    out
}

/// The dist of `repo`, read back as a side named `name`.
fn side(repo: &Path, name: &str) -> (tempfile::TempDir, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    let dist = compile(repo, dir.path(), 0);
    let mut s = diff::load(dist.to_str().unwrap(), &options(repo)).unwrap();
    s.arg = name.to_owned();
    (dir, s)
}

fn compare(base: &Path, head: &Path) -> Report {
    let (_a, base) = side(base, "base");
    let (_b, head) = side(head, "head");
    diff::diff(&base, &head)
}

fn sha256_of(path: &Path) -> String {
    etl::util::digest::sha256(&std::fs::read(path).unwrap())
}

/// The representative change: the `enrich` step's config (a new key, a changed var), its
/// component (other bytes, so another digest), `threshold-alert` swapped for a component
/// importing `wasi:logging`, granted by `policy.allow`; prod's replicas and staging's spread; the
/// alert webhook's secret key.
fn representative(root: &Path) {
    let pipeline = "pipelines/sensor-ingest.yaml";
    replace(
        root,
        pipeline,
        "        site: \"{{ vars.site }}\"\n",
        "        site: \"{{ vars.site }}\"\n        cache_key_prefix: \"v2\"\n",
    );
    replace(root, "etl.yaml", "site: plant-a", "site: plant-b");
    std::fs::copy(
        root.join("components/threshold-alert.wasm"),
        root.join("components/enrich.wasm"),
    )
    .unwrap();
    let enrich = sha256_of(&root.join("components/enrich.wasm"));
    replace(
        root,
        pipeline,
        "sha256:581c25750c32f3a400e4f59aa60e594075c8d5f91a5791762dadc54591f3151f",
        &enrich,
    );
    let chaos = common::example().join("../../tests/fixtures/chaos/components/chaos.wasm");
    std::fs::copy(&chaos, root.join("components/chaos.wasm")).unwrap();
    replace(
        root,
        pipeline,
        "components/threshold-alert.wasm\n      digest: sha256:5328554214e738d123c86db70ea8075bb7c7e6a15ac8528c4ddddf5c5c85fafe",
        &format!("components/chaos.wasm\n      digest: {}", sha256_of(&chaos)),
    );
    replace(
        root,
        "etl.yaml",
        "allow: []",
        "allow: [\"wasi:logging/logging\"]",
    );
    replace(root, "etl.yaml", "replicas: 3", "replicas: 2");
    replace(
        root,
        "etl.yaml",
        "requirements: { zone: lab }",
        "requirements: { zone: lab, tier: burn-in }",
    );
    replace(
        root,
        pipeline,
        "{ secret: alerts-webhook-token }",
        "{ secret: alerts-webhook-token-v2 }",
    );
}

#[test]
fn identical_dists_report_nothing() {
    let report = compare(&common::example(), &common::example());
    assert!(report.is_empty(), "{}", report.text());
    assert_eq!(report.summary, "no changes to what gets deployed");
    assert!(report.pipelines.is_empty() && report.capabilities.is_empty());
    assert_eq!(
        report.text(),
        "no changes to what gets deployed\nbase: base\nhead: head\n"
    );
    assert!(!report.markdown().contains("###"));
    let json: Value = serde_json::from_str(&report.json()).unwrap();
    assert_eq!(json["changed"], false);
    assert_eq!(json["pipelines"], json!([]));
}

#[test]
fn a_representative_change_as_markdown_text_and_json() {
    let head = example_with(representative);
    let report = compare(&common::example(), head.path());
    insta::assert_snapshot!("representative_markdown", report.markdown());
    insta::assert_snapshot!("representative_text", report.text());
    insta::assert_snapshot!("representative_json", report.json());
    // Every key of the JSON document is documented.
    fn keys(v: &Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    out.insert(k.clone());
                    if k != "requirements" {
                        keys(v, out); // host labels are data, not keys of the format
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }
    let mut all = std::collections::BTreeSet::new();
    keys(&serde_json::from_str(&report.json()).unwrap(), &mut all);
    let doc = std::fs::read_to_string(common::example().join("../../docs/diff.md")).unwrap();
    for key in &all {
        assert!(
            doc.contains(&format!("\"{key}\"")),
            "`{key}` is not in docs/diff.md"
        );
    }

    assert_eq!(
        report.summary,
        "3 environments, 1 pipeline changed: 4 artifacts, 11 scaling changes, 4 config values, 3 secrets, 1 new capability grant"
    );
    let p = &report.pipelines[0];
    let causes = |unit: &str| {
        p.artifacts
            .iter()
            .find(|a| a.unit == unit)
            .unwrap_or_else(|| panic!("{unit} changed"))
            .causes
            .clone()
    };
    match &causes("enrich")[..] {
        [
            Cause::Customer {
                component: None,
                digest: Some(d),
                reference,
                ..
            },
        ] => {
            assert_eq!(
                d.old.as_deref(),
                Some("sha256:581c25750c32f3a400e4f59aa60e594075c8d5f91a5791762dadc54591f3151f")
            );
            assert_eq!(reference, "components/enrich.wasm");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &causes("threshold-alert")[..],
        [Cause::Customer {
            component: Some(_),
            ..
        }]
    ));
    assert!(
        p.restamped.is_empty(),
        "same provenance: nothing else moves"
    );
}

#[test]
fn a_new_grant_is_flagged_before_anything_else() {
    let head = example_with(representative);
    let report = compare(&common::example(), head.path());
    assert_eq!(report.capabilities.len(), 1);
    let c = &report.capabilities[0];
    assert_eq!(
        (c.pipeline.as_str(), c.unit.as_str()),
        ("sensor-ingest", "threshold-alert")
    );
    assert!(
        c.grants
            .iter()
            .all(|g| g.starts_with("wasi:logging/logging"))
            && c.imports
                .iter()
                .all(|g| g.starts_with("wasi:logging/logging"))
            && !c.grants.is_empty(),
        "{c:?}"
    );

    let md = report.markdown();
    let mut lines = md.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("**etl diff:** 3 environments")
    );
    let warning = md.find("> [!WARNING]").expect("a warning block");
    assert!(warning < md.find("###").unwrap(), "{md}");
    assert!(
        md.contains("> - `sensor-ingest` / `threshold-alert`: `wasi:logging/logging"),
        "{md}"
    );
    let text = report.text();
    assert!(text.find("NEW CAPABILITIES").unwrap() < text.find("\npipeline ").unwrap());

    // Taking the grant back is no new capability.
    let back = compare(head.path(), &common::example());
    assert!(back.capabilities.is_empty());
    assert!(!back.markdown().contains("[!WARNING]"));
}

/// A copy of `tests/fixtures/egress`, edited by `edit` (given the copy's root).
fn egress_with(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy(&common::egress_fixture(), dir.path());
    edit(dir.path());
    dir
}

/// Sets the hosts of the grant of `price` (tests/fixtures/egress) to `hosts`.
fn price_hosts(root: &Path, hosts: &str) {
    replace(
        root,
        "pipelines/orders.yaml",
        r#"hosts: [api.acme.example, "https://x.example:8443", "*.acme.example"]"#,
        &format!("hosts: {hosts}"),
    );
}

#[test]
fn hosts_a_step_may_newly_call_are_capabilities_and_hosts_taken_back_are_shown_too() {
    let head = egress_with(|root| {
        price_hosts(
            root,
            r#"[api.acme.example, "https://x.example:8443", "127.0.0.1:8080"]"#,
        )
    });
    let report = compare(&common::egress_fixture(), head.path());
    assert_eq!(report.capabilities.len(), 1);
    let c = &report.capabilities[0];
    assert_eq!((c.pipeline.as_str(), c.unit.as_str()), ("orders", "price"));
    assert_eq!(c.hosts, ["127.0.0.1:8080"]);
    assert_eq!(c.removed_hosts, ["*.acme.example"]);
    assert!(c.imports.is_empty() && c.grants.is_empty(), "{c:?}");
    // The artifacts are the same: the egress part reads its hosts at run time.
    assert!(report.pipelines[0].artifacts.is_empty());
    insta::assert_snapshot!("egress_hosts_text", report.text());
    insta::assert_snapshot!("egress_hosts_markdown", report.markdown());

    // Only taking hosts back is listed too, but is no new capability.
    let narrowed = egress_with(|root| price_hosts(root, "[api.acme.example]"));
    let back = compare(&common::egress_fixture(), narrowed.path());
    assert_eq!(back.capabilities.len(), 1);
    assert!(!back.capabilities[0].is_new());
    assert_eq!(
        back.capabilities[0].removed_hosts,
        ["https://x.example:8443", "*.acme.example"]
    );
    let md = back.markdown();
    assert!(
        md.contains("> [!NOTE]\n> **Capabilities taken back.**") && !md.contains("[!WARNING]"),
        "{md}"
    );
    assert!(back.text().contains("CAPABILITIES TAKEN BACK"));
    assert!(!back.summary.contains("capability"), "{}", back.summary);
}

#[test]
fn scaling_is_reported_per_environment_and_unit() {
    let head = example_with(|root| {
        replace(root, "etl.yaml", "replicas: 3", "replicas: 5");
        replace(root, "etl.yaml", "weight: 60", "weight: 70");
        replace(
            root,
            "pipelines/sensor-ingest.yaml",
            "    - name: enrich\n",
            "    - name: enrich\n      replicas: 4\n",
        );
    });
    let report = compare(&common::example(), head.path());
    let p = &report.pipelines[0];
    let envs: Vec<&str> = p
        .deployments
        .iter()
        .map(|d| d.environment.as_str())
        .collect();
    assert_eq!(
        envs,
        ["dev", "prod"],
        "staging pins the pipeline's replicas"
    );
    let prod = &p.deployments[1];
    assert_eq!(prod.scale.len(), 5);
    let parse = &prod.scale[0];
    assert_eq!(parse.unit, "parse");
    let replicas = parse.replicas.as_ref().unwrap();
    assert_eq!((replicas.old, replicas.new), (Some(3), Some(5)));
    assert!(parse.spread.is_some());
    let text = report.text();
    // More replicas that can share a host: fewer messages in flight for each (dev: enrich's 4
    // replicas may all land on one host; prod: the larger share, 4 of 5 east or 3 of 4).
    let expected = "  [dev]
    max in flight per messaging-fed step (wasmCloud v2) 9 → 5
    enrich replicas 1 → 4
  [prod]
    max in flight per messaging-fed step (wasmCloud v2) 4 → 3
    parse, threshold-alert, alerts, archive replicas 3 → 5, spread east[zone=east]:60 west[zone=west]:40 → east[zone=east]:70 west[zone=west]:40
    enrich replicas 3 → 4, spread east[zone=east]:60 west[zone=west]:40 → east[zone=east]:70 west[zone=west]:40
";
    assert!(text.ends_with(expected), "{text}");
    assert_eq!(report.counts.environments, 2);
    assert_eq!(report.counts.scaling, 8);
    assert!(
        report
            .markdown()
            .contains("| `dev` | `enrich` replicas `1` → `4` |\n"),
        "{}",
        report.markdown()
    );
}

#[test]
fn a_new_pipeline_is_listed_with_its_units_and_graph() {
    let head = example_with(|root| {
        let text = std::fs::read_to_string(root.join("pipelines/sensor-ingest.yaml")).unwrap();
        std::fs::write(
            root.join("pipelines/sensor-replay.yaml"),
            text.replace("name: sensor-ingest", "name: sensor-replay")
                .replace(
                    "connector: http\n    with:\n      path: /sensors",
                    "connector: nats\n    with:\n      subject: iot.replay",
                ),
        )
        .unwrap();
    });
    let report = compare(&common::example(), head.path());
    assert_eq!(report.counts.pipelines_added, 1, "{}", report.text());
    assert_eq!(
        report.summary,
        "3 environments, 1 pipeline changed: 1 new pipeline"
    );
    let p = &report.pipelines[0];
    assert_eq!(
        (p.name.as_str(), p.status),
        ("sensor-replay", Status::Added)
    );
    let units: Vec<&str> = p.units_added.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        units,
        ["parse", "enrich", "threshold-alert", "alerts", "archive"]
    );
    assert!(p.deployments.iter().all(|d| d.status == Status::Added));
    let graph = p.graph.as_deref().unwrap();
    assert!(
        graph.contains("n0[/\"ingest<br/><small>nats</small>\"/]"),
        "{graph}"
    );
    assert!(
        !graph.contains("classDef"),
        "nothing to mark in a new pipeline"
    );
    // New pipeline, no new kind of import: every interface was imported by some unit before.
    assert!(report.capabilities.is_empty(), "{:?}", report.capabilities);
}

/// Makes prod deliver at most once: its units subscribe to the subjects they read.
fn prod_at_most_once(root: &Path) {
    replace(
        root,
        "etl.yaml",
        "      lattice: acme-iot-prod\n",
        "      lattice: acme-iot-prod\n      delivery: { guarantee: at-most-once }\n",
    );
}

#[test]
fn rewiring_shows_in_from_links_providers_and_the_harness() {
    let http_server = format!(
        "ghcr.io/wasmcloud/http-server:0.27.0@sha256:{}",
        "a".repeat(64)
    );
    // Prod at most once, both sides, so that a unit's subscriptions follow its `from` there; dev
    // and staging deliver at least once (the default), where a unit reads its consumer's deliver
    // subject whatever it reads from the stream.
    let base = example_with(prod_at_most_once);
    let head = example_with(|root| {
        prod_at_most_once(root);
        let pipeline = "pipelines/sensor-ingest.yaml";
        // `archive` reads `enrich` instead of `parse`; `alerts` publishes on NATS, not over HTTP.
        replace(
            root,
            pipeline,
            "      from: [parse]\n      connector: nats",
            "      from: [enrich]\n      connector: nats",
        );
        replace(
            root,
            pipeline,
            "      connector: http\n      with:\n        url: \"{{ vars.alert_url }}\"\n        authorization: { secret: alerts-webhook-token }",
            "      connector: nats\n      with:\n        subject: iot.alerts",
        );
        replace(
            root,
            "etl.yaml",
            "http-server: wasmcloud+builtin://http-server",
            &format!("http-server: {http_server}"),
        );
    });
    let report = compare(base.path(), head.path());
    let p = &report.pipelines[0];
    assert_eq!(p.wiring.len(), 1);
    assert_eq!(p.wiring[0].unit, "archive");
    let alerts = p.artifacts.iter().find(|a| a.unit == "alerts").unwrap();
    assert!(
        matches!(&alerts.causes[..], [Cause::HarnessParts { parts }]
            if parts.old.as_ref().unwrap().contains(&"out-http".to_owned())
            && parts.new.as_ref().unwrap().contains(&"out-messaging".to_owned())),
        "{:?}",
        alerts.causes
    );
    let text = report.text();
    for line in [
        "  archive from parse → enrich\n",
        "alerts components sha256:",
        "harness parts in-messaging+out-http+identity → in-messaging+out-messaging+identity",
        "    link messaging-nats → archive (wasmcloud:messaging/handler) source.subscriptions: \"etl.iot-sensors.sensor-ingest.out.parse|",
        "    link alerts → http-client (wasi:http/outgoing-handler) removed\n",
        "    provider http-client removed (was wasmcloud+builtin://http-client)\n",
        "    alerts secret authorization removed (was key alerts-webhook-token)\n",
        &format!(
            "    provider http-server image wasmcloud+builtin://http-server → {http_server}\n"
        ),
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    let prod = p
        .deployments
        .iter()
        .find(|d| d.environment == "prod")
        .unwrap();
    assert!(
        prod.config
            .iter()
            .any(|c| c.name.starts_with("messaging-nats → archive")
                && c.key == "source.subscriptions"),
        "{:?}",
        prod.config
    );
    // At least once, `archive` still reads `etl.iot-sensors.sensor-ingest.deliver.archive`: its
    // subscriptions do not change (what it reads from the stream is its consumer's filter).
    for env in ["dev", "staging"] {
        let d = p.deployments.iter().find(|d| d.environment == env).unwrap();
        assert!(
            !d.config.iter().any(|c| c.key == "source.subscriptions"),
            "{env}: {:?}",
            d.config
        );
    }
    assert_eq!(
        text.matches("→ archive (wasmcloud:messaging/handler) source.subscriptions")
            .count(),
        1,
        "only prod's: {text}"
    );
    // Per environment, the link to http-client goes; `alerts` already published its reports
    // over the consumer link to messaging-nats its records now take: no link added.
    assert!(
        report.counts.links == 3 && report.counts.providers == 6,
        "{:?}",
        report.counts
    );
    assert!(
        p.graph.as_deref().unwrap().contains("n2 --> n5"),
        "enrich → archive"
    );
}

/// `delivery.nats_msg_id` adds the `msg-id` part to the wasmCloud 1.x artifacts of the units
/// that publish over NATS, and to nothing else: each is listed with that part named.
#[test]
fn nats_msg_id_changes_the_1x_artifacts_that_publish_over_nats_by_one_part() {
    let base = example_with(|_| {});
    let head = example_with(|root| {
        replace(
            root,
            "etl.yaml",
            "\n  policy:\n",
            "\n  delivery:\n    nats_msg_id: true\n  policy:\n",
        )
    });
    let report = compare(base.path(), head.path());
    let p = &report.pipelines[0];
    let mut units: Vec<&str> = p.artifacts.iter().map(|a| a.unit.as_str()).collect();
    units.sort();
    assert_eq!(units, ["archive", "enrich", "parse", "threshold-alert"]);
    for a in &p.artifacts {
        assert_eq!(
            a.generation,
            etl::build::generation::Generation::V1,
            "{}",
            a.unit
        );
        assert!(
            matches!(&a.causes[..], [Cause::HarnessParts { parts }]
                if !parts.old.as_ref().unwrap().contains(&"msg-id".to_owned())
                && parts.new.as_ref().unwrap().last().map(String::as_str) == Some("msg-id")),
            "{}: {:?}",
            a.unit,
            a.causes
        );
    }
    assert!(
        report.text().contains(
            "harness parts in-messaging+out-messaging → in-messaging+out-messaging+msg-id"
        ),
        "{}",
        report.text()
    );
}

#[test]
fn a_new_environment_is_deployed_with_its_settings() {
    let head = example_with(|root| {
        replace(
            root,
            "etl.yaml",
            "    prod:\n",
            "    qa:\n      lattice: acme-iot-qa\n      replicas: 2\n      vars:\n        site: qa-rig\n        threshold: \"40\"\n        alert_url: http://alerts.qa.acme.example/hook\n        archive_subject: iot.qa.sensors.archive\n    prod:\n",
        )
    });
    let report = compare(&common::example(), head.path());
    assert_eq!(report.environments.added, ["qa"]);
    assert_eq!(
        report.summary,
        "1 environment, 1 pipeline changed: 1 new environment"
    );
    let qa = &report.pipelines[0].deployments[0];
    assert_eq!((qa.environment.as_str(), qa.status), ("qa", Status::Added));
    let text = report.text();
    assert!(text.contains("environment qa: added\n"), "{text}");
    assert!(text.contains("  [qa] newly deployed\n    delivery at-least-once (stream ETL_DATA_iot-sensors_sensor-ingest and 4 consumers)\n    secret backend nats-kv\n    max in flight per messaging-fed step (wasmCloud v2) 4\n    parse, enrich, threshold-alert, alerts, archive replicas 2\n"), "{text}");
    assert!(
        text.contains("    threshold-alert config step.threshold: added \"40\"\n"),
        "{text}"
    );
    let back = compare(head.path(), &common::example());
    assert_eq!(back.environments.removed, ["qa"]);
    assert!(
        back.text().contains("  [qa] no longer deployed\n"),
        "{}",
        back.text()
    );
}

#[test]
fn the_graph_from_a_plan_is_the_graph_from_the_spec() {
    let chaos = common::example().join("../../tests/fixtures/chaos");
    for (repo, pipeline) in [
        (common::example(), "sensor-ingest"),
        (chaos.clone(), "diamond"),
        (chaos, "chaos-http"),
        (common::sub_pipelines(), "audit"),
        (common::sub_pipelines(), "replay"),
    ] {
        let (_dir, snapshot) = side(&repo, "x");
        let validation = etl::spec::validate(&repo).unwrap();
        let spec = &etl::build::deployment::find_pipeline(&validation.repo, pipeline)
            .unwrap()
            .spec;
        let graph = snapshot.graph(pipeline).unwrap();
        assert_eq!(
            graph.mermaid(),
            etl::ops::graph::mermaid(spec),
            "{pipeline}"
        );
        assert_eq!(graph.dot(), etl::ops::graph::dot(spec), "{pipeline}");
    }
}

#[test]
fn another_time_or_revision_changes_no_artifact_and_no_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let a = compile(&common::example(), &dir.path().join("a"), 0);
    let b = compile(&common::example(), &dir.path().join("b"), 1_700_000_000);
    let (mut a_files, mut b_files) = (common::tree(&a), common::tree(&b));
    let (a_plan, b_plan) = (
        a_files.remove("plan.json").unwrap(),
        b_files.remove("plan.json").unwrap(),
    );
    // Artifacts and manifests: byte for byte the same.
    assert_same_files(&a_files, &b_files, "another SOURCE_DATE_EPOCH");
    // The plan records the time, and that is all that differs.
    let mut a_plan: Value = serde_json::from_slice(&a_plan).unwrap();
    let b_plan: Value = serde_json::from_slice(&b_plan).unwrap();
    assert_eq!(a_plan["provenance"]["created"], "1970-01-01T00:00:00Z");
    assert_eq!(b_plan["provenance"]["created"], "2023-11-14T22:13:20Z");
    a_plan["provenance"] = b_plan["provenance"].clone();
    assert_eq!(a_plan, b_plan);

    let opts = options(&common::example());
    let report = diff::diff(
        &diff::load(a.to_str().unwrap(), &opts).unwrap(),
        &diff::load(b.to_str().unwrap(), &opts).unwrap(),
    );
    assert!(!report.changed, "{}", report.text());
}

#[test]
fn repackaged_artifacts_are_listed_compactly() {
    // What a plan from an etl that stamped commits into artifacts looks like against today's:
    // every manifest digest differs, no component does.
    let base = example_plan();
    let mut head = base.clone();
    for apps in head["deployments"].as_object_mut().unwrap().values_mut() {
        let app = &mut apps["sensor-ingest"];
        app["version"] = json!("sha-000000000000");
        for c in app["components"].as_array_mut().unwrap() {
            for artifact in ["artifact", "artifactV2"] {
                let a = &mut c[artifact];
                let old = a["manifestDigest"].as_str().unwrap().to_owned();
                let new = format!("sha256:{}", &etl::util::digest::sha256(old.as_bytes())[7..]);
                let image = a["image"].as_str().unwrap().replace(&old, &new);
                a["manifestDigest"] = json!(new);
                a["image"] = json!(image);
            }
        }
    }
    let report = diff::diff(&snapshot("base", &base), &snapshot("head", &head));
    assert_eq!(
        report.summary,
        "3 environments, 1 pipeline changed: 10 re-stamped artifacts"
    );
    let p = &report.pipelines[0];
    assert!(p.artifacts.is_empty() && p.deployments.is_empty());
    assert!(
        report.text().contains(
            "  re-stamped (OCI manifest only, same component): parse, enrich, threshold-alert, alerts, archive\n"
        ),
        "{}",
        report.text()
    );
    assert!(
        !p.graph.as_deref().unwrap().contains("classDef"),
        "a re-stamp changes no behaviour"
    );
}

// ---- Edited plans --------------------------------------------------------------------------

/// The example's plan.json.
fn example_plan() -> Value {
    static PLAN: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    PLAN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let dist = compile(&common::example(), dir.path(), 0);
        serde_json::from_slice(&std::fs::read(dist.join("plan.json")).unwrap()).unwrap()
    })
    .clone()
}

fn snapshot(name: &str, plan: &Value) -> Snapshot {
    Snapshot::from_plan_json(name, name, &plan.to_string()).unwrap()
}

/// Sets the composed digest of `unit` in the plan and every deployment.
/// Gives `unit`'s artifacts of both generations new digests: `digest` (1.x) and `digest` with
/// its last hex digit changed (v2).
fn set_component_digest(plan: &mut Value, unit: &str, digest: &str) {
    let v2 = format!("{}f", &digest[..digest.len() - 1]);
    for kind in ["steps", "sinks"] {
        for u in plan["pipelines"][0][kind].as_array_mut().unwrap() {
            if u["name"] == unit {
                u["artifact"]["digest"] = json!(digest);
                u["artifactV2"]["digest"] = json!(v2);
            }
        }
    }
    for apps in plan["deployments"].as_object_mut().unwrap().values_mut() {
        for c in apps["sensor-ingest"]["components"].as_array_mut().unwrap() {
            if c["name"] == unit {
                for (artifact, digest) in [("artifact", digest), ("artifactV2", v2.as_str())] {
                    c[artifact]["componentDigest"] = json!(digest);
                    c[artifact]["manifestDigest"] = json!(format!("{digest}-manifest"));
                }
            }
        }
    }
}

#[test]
fn a_changed_harness_part_is_named_and_otherwise_the_composition_is_blamed() {
    let base = example_plan();
    let mut head = base.clone();
    let old = base["harness"]["out-http"].as_str().unwrap().to_owned();
    head["harness"]["out-http"] =
        json!("sha256:1111111111111111111111111111111111111111111111111111111111111111");
    set_component_digest(
        &mut head,
        "alerts",
        "sha256:2222222222222222222222222222222222222222222222222222222222222222",
    );
    set_component_digest(
        &mut head,
        "archive",
        "sha256:3333333333333333333333333333333333333333333333333333333333333333",
    );
    let report = diff::diff(&snapshot("base", &base), &snapshot("head", &head));
    let p = &report.pipelines[0];
    let causes = |unit: &str| &p.artifacts.iter().find(|a| a.unit == unit).unwrap().causes;
    match &causes("alerts")[..] {
        [Cause::Harness { part, digest }] => {
            assert_eq!(part, "out-http");
            assert_eq!(digest.old.as_deref(), Some(old.as_str()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        causes("archive"),
        &[Cause::Composition],
        "out-messaging did not change"
    );
    let text = report.text();
    assert!(
        text.contains("alerts components sha256:")
            && text.contains("harness part out-http sha256:"),
        "{text}"
    );
    assert!(
        text.contains("the composition (connector or wiring) differs"),
        "{text}"
    );
}

#[test]
fn secret_like_config_values_are_redacted_and_secrets_show_names_only() {
    let base = example_plan();
    let mut head = base.clone();
    let prod = &mut head["deployments"]["prod"]["sensor-ingest"];
    let enrich = &mut prod["components"][1];
    assert_eq!(enrich["name"], "enrich");
    let props = enrich["config"]["properties"].as_object_mut().unwrap();
    props.insert("step.password".into(), json!("hunter2"));
    props.insert("step.API_TOKEN".into(), json!("tok-live-123"));
    props.insert("step.site".into(), json!("plant-z"));
    let alerts = &mut prod["components"][3];
    assert_eq!(alerts["name"], "alerts");
    alerts["secrets"] = json!([{"name": "authorization", "key": "rotated-token-key"}]);
    let link = prod["links"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|l| l["component"] == "alerts" && l["provider"] == "http-client")
        .unwrap();
    link["targetConfig"] = json!({"name": "x", "properties": {"client_secret": "s3cr3t"}});
    let report = diff::diff(&snapshot("base", &base), &snapshot("head", &head));
    for (format, out) in [
        ("text", report.text()),
        ("markdown", report.markdown()),
        ("json", report.json()),
    ] {
        for value in ["hunter2", "tok-live-123", "s3cr3t"] {
            assert!(!out.contains(value), "{format} shows `{value}`:\n{out}");
        }
        assert!(out.contains(diff::REDACTED), "{format}");
        assert!(out.contains("plant-z"), "{format}: other values are shown");
        assert!(
            out.contains("rotated-token-key"),
            "{format}: secret keys are names"
        );
    }
    let text = report.text();
    assert!(
        text.contains("enrich config step.password: added •••"),
        "{text}"
    );
    assert!(
        text.contains("alerts secret authorization key alerts-webhook-token → rotated-token-key"),
        "{text}"
    );
    assert!(text.contains("target.client_secret: added •••"), "{text}");
    assert!(diff::is_secret_key("db.Password") && !diff::is_secret_key("step.site"));
}

/// The example's plan with its pipeline copied `n` times (`p0000`, …); `edit` changes each
/// copy's prod application.
fn many_pipelines(n: usize, edit: impl Fn(&mut Value)) -> Value {
    let mut plan = example_plan();
    let pipeline = plan["pipelines"][0].clone();
    let mut pipelines = Vec::new();
    let envs: Vec<String> = plan["deployments"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let apps: Vec<Value> = envs
        .iter()
        .map(|e| {
            let mut app = plan["deployments"][e]["sensor-ingest"].clone();
            // Read from the pipelines, not here: left out, for a smaller plan to parse.
            for c in app["components"].as_array_mut().unwrap() {
                c.as_object_mut().unwrap().remove("imports");
            }
            app
        })
        .collect();
    for env in &envs {
        plan["deployments"][env] = json!({});
    }
    for i in 0..n {
        let name = format!("p{i:04}");
        let mut p = pipeline.clone();
        p["name"] = json!(name);
        pipelines.push(p);
        for (env, app) in envs.iter().zip(&apps) {
            let mut app = app.clone();
            if env == "prod" {
                edit(&mut app);
            }
            plan["deployments"][env][&name] = app;
        }
    }
    plan["pipelines"] = Value::Array(pipelines);
    plan
}

#[test]
fn a_giant_change_is_cut_to_fit_a_comment() {
    let change = |app: &mut Value| {
        for c in app["components"].as_array_mut().unwrap() {
            c["scale"]["replicas"] = json!(9);
            let props = c["config"]["properties"].as_object_mut().unwrap();
            props.insert(
                "step.extra".into(),
                json!("a fairly long value, to fill the comment"),
            );
        }
        app["version"] = json!("sha-changed");
    };
    for n in [300, 1000] {
        let base = many_pipelines(n, |_| {});
        let head = many_pipelines(n, change);
        let report = diff::diff(&snapshot("base", &base), &snapshot("head", &head));
        assert_eq!(report.counts.pipelines, n);
        let md = report.markdown();
        assert!(md.len() < diff::MARKDOWN_LIMIT, "{n}: {} bytes", md.len());
        assert!(
            md.len() > diff::MARKDOWN_LIMIT - 5_000,
            "{n}: the room is used: {} bytes",
            md.len()
        );
        assert!(md.starts_with("**etl diff:** 1 environment, "), "{n}");
        assert!(
            md.contains("more changes and the graph not shown: see below."),
            "{n}"
        );
        assert!(
            md.ends_with("> This report was cut to fit a comment. Run `etl diff base head --format text` for the full report.\n")
                || n == 1000,
            "{n}"
        );
        assert_eq!(
            md.matches("```mermaid").count(),
            md.matches("```\n\n</details>").count(),
            "{n}: no graph is cut in half"
        );
        assert_eq!(
            md.matches("<details>").count(),
            md.matches("</details>").count()
        );
        if n == 1000 {
            assert!(md.contains("more pipelines were not shown at all. Run `etl diff base head --format text` for the full report.\n"), "{md}");
        } else {
            assert_eq!(
                md.matches("\n### ").count(),
                n,
                "every pipeline gets its heading"
            );
        }
        let text = report.text();
        assert!(text.len() > 20 * md.len() / 10, "text is not cut");
        assert!(text.contains(&format!("pipeline p{:04} (changed)", n - 1)));
    }
}

#[test]
fn a_plan_of_another_kind_is_refused() {
    let e = Snapshot::from_plan_json("x", "x/plan.json", r#"{"kind": "Other"}"#).unwrap_err();
    assert!(e.to_string().contains("not a plan"), "{e}");
    let e = Snapshot::from_plan_json("x", "x/plan.json", "[]").unwrap_err();
    assert!(e.to_string().contains("x/plan.json"), "{e}");
}

// ---- The binary: git refs and exit codes ----------------------------------------------------

fn etl(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .arg("--cache-dir")
        .arg(cache_dir())
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("ETL_SOURCE_URL")
        .current_dir(cwd)
        .output()
        .expect("etl runs")
}

fn git(dir: &Path, args: &[&str]) -> String {
    git_at(dir, 1_700_000_000, args)
}

/// `git` with the author and committer date `time`.
fn git_at(dir: &Path, time: i64, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_COMMITTER_DATE", format!("{time} +0000"))
        .env("GIT_AUTHOR_DATE", format!("{time} +0000"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A git repo whose `repo/` holds the example, committed twice: as it is, then with staging's
/// threshold lowered. Its work tree has an uncommitted change on top.
fn git_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    common::copy(&common::example(), &repo);
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "."]);
    git(dir.path(), &["commit", "-q", "-m", "one"]);
    replace(
        &repo,
        "environments/staging.yaml",
        "threshold: \"65\"",
        "threshold: \"55\"",
    );
    git(dir.path(), &["commit", "-q", "-am", "two"]);
    replace(&repo, "etl.yaml", "replicas: 3", "replicas: 7");
    dir
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn git_refs_are_exported_and_compiled_without_touching_the_work_tree() {
    let dir = git_repo();
    let repo = dir.path().join("repo");
    let status = git(dir.path(), &["status", "--porcelain"]);

    let out = etl(&["diff", "HEAD~1", "HEAD", "--repo", "repo"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("threshold-alert config step.threshold: \"65\" → \"55\""),
        "{text}"
    );
    assert!(
        !text.contains("replicas"),
        "the uncommitted change is not in HEAD: {text}"
    );
    // Another revision is no other artifact.
    assert!(!text.contains("re-stamped"), "{text}");

    let out = etl(
        &["diff", "HEAD~1", "HEAD", "--repo", ".", "--format", "json"],
        &repo,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let head = git(dir.path(), &["rev-parse", "HEAD"]);
    assert_eq!(json["head"]["revision"], json!(head.trim()));
    assert_eq!(json["head"]["arg"], "HEAD");

    // A ref against the work tree (a directory wins): the uncommitted replicas show.
    let out = etl(&["diff", "HEAD", "."], &repo);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("parse, enrich, threshold-alert, alerts, archive replicas 3 → 7"),
        "{}",
        stdout(&out)
    );

    let out = etl(&["diff", "HEAD", "HEAD", "--repo", "repo"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "no changes to what gets deployed\nbase: HEAD ({0})\nhead: HEAD ({0})\n",
            &head[..12]
        )
    );

    assert_eq!(
        git(dir.path(), &["status", "--porcelain"]),
        status,
        "work tree untouched"
    );
    assert!(git(dir.path(), &["worktree", "list"]).lines().count() == 1);
}

#[test]
fn exit_codes_are_zero_one_and_two() {
    let dir = tempfile::tempdir().unwrap();
    let a = compile(&common::example(), &dir.path().join("a"), 0);
    let b = compile(&common::example(), &dir.path().join("b"), 0);
    let head = example_with(|root| replace(root, "etl.yaml", "replicas: 3", "replicas: 4"));
    let c = compile(head.path(), &dir.path().join("c"), 0);
    let rel = |p: &Path| {
        p.strip_prefix(dir.path())
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let (a, b, c) = (rel(&a), rel(&b), rel(&c));

    let out = etl(&["diff", &a, &b], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = etl(&["diff", &a, &c, "--format", "markdown"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .starts_with("**etl diff:** 1 environment, 1 pipeline changed: 5 scaling changes\n")
    );

    // Neither a directory nor a ref: both named, with the near miss.
    std::fs::rename(dir.path().join("a"), dir.path().join("dist-a")).unwrap();
    let out = etl(&["diff", "dist-b/dist", &c], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "`dist-b/dist` is neither a directory nor a git ref of the pipeline repo `.`"
        ),
        "{}",
        stderr(&out)
    );
    let out = etl(&["diff", "dist-b", &c], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("(did you mean the directory `dist-a`?)"),
        "{}",
        stderr(&out)
    );

    // A directory that is no plan.
    let out = etl(&["diff", ".", &c], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("has neither a plan.json"),
        "{}",
        stderr(&out)
    );

    // A ref whose repo does not compile: its diagnostics, then the error.
    let git_dir = git_repo();
    let repo = git_dir.path().join("repo");
    replace(
        &repo,
        "pipelines/sensor-ingest.yaml",
        "from: [enrich]",
        "from: [enrihc]",
    );
    git(git_dir.path(), &["commit", "-q", "-am", "three"]);
    let out = etl(&["diff", "HEAD~1", "HEAD", "--color", "never"], &repo);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("error[E"), "{err}");
    assert!(err.contains("did you mean `enrich`?"), "{err}");
    assert!(
        err.contains("./pipelines/sensor-ingest.yaml:")
            || err.contains("pipelines/sensor-ingest.yaml:"),
        "{err}"
    );
    assert!(
        err.contains("error: `HEAD` of `.` does not compile"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
}

// ---- Provenance: commits, SOURCE_DATE_EPOCH and the output directory ------------------------

/// `etl compile --repo repo --out out` run in `cwd`, with `SOURCE_DATE_EPOCH` when given: the
/// output's files.
fn compile_bin(
    cwd: &Path,
    repo: &str,
    out: &str,
    epoch: Option<&str>,
) -> (std::collections::BTreeMap<String, Vec<u8>>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_etl"));
    command
        .args(["compile", "--repo", repo, "--out", out, "--cache-dir"])
        .arg(cache_dir())
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("ETL_SOURCE_URL")
        .current_dir(cwd);
    if let Some(epoch) = epoch {
        command.env("SOURCE_DATE_EPOCH", epoch);
    }
    let output = command.output().expect("etl runs");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    (common::tree(&cwd.join(out)), stderr(&output))
}

/// `a` and `b` hold the same files, byte for byte; else the paths that differ, and `why`.
fn assert_same_files(
    a: &std::collections::BTreeMap<String, Vec<u8>>,
    b: &std::collections::BTreeMap<String, Vec<u8>>,
    why: &str,
) {
    let paths: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let differ: Vec<&&String> = paths.iter().filter(|p| a.get(**p) != b.get(**p)).collect();
    assert!(differ.is_empty(), "{why} changed {differ:?}");
}

/// The files of an output but its deployment bundles' manifests and facts (their entries in
/// `oci/index.json` too; their layers are the environments' manifests), and each bundle's facts
/// by name.
fn split_bundles(
    mut files: std::collections::BTreeMap<String, Vec<u8>>,
) -> (
    std::collections::BTreeMap<String, Vec<u8>>,
    std::collections::BTreeMap<String, Value>,
) {
    let blob = |digest: &Value| format!("oci/blobs/sha256/{}", &digest.as_str().unwrap()[7..]);
    let mut index: Value = serde_json::from_slice(&files["oci/index.json"]).unwrap();
    let mut facts = std::collections::BTreeMap::new();
    index["manifests"].as_array_mut().unwrap().retain(|m| {
        let name = m["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .unwrap();
        if !name.starts_with("bundles/") {
            return true;
        }
        let manifest: Value = serde_json::from_slice(&files[&blob(&m["digest"])]).unwrap();
        let config = files.remove(&blob(&manifest["config"]["digest"])).unwrap();
        facts.insert(name.to_owned(), serde_json::from_slice(&config).unwrap());
        files.remove(&blob(&m["digest"]));
        false
    });
    assert_eq!(facts.len(), 3, "a bundle per environment");
    files.insert(
        "oci/index.json".to_owned(),
        serde_json::to_vec(&index).unwrap(),
    );
    (files, facts)
}

/// The files of an output but `plan.json`, and the plan's provenance.
fn split_plan(
    mut files: std::collections::BTreeMap<String, Vec<u8>>,
) -> (std::collections::BTreeMap<String, Vec<u8>>, Value) {
    let plan: Value = serde_json::from_slice(&files.remove("plan.json").unwrap()).unwrap();
    (files, plan["provenance"].clone())
}

#[test]
fn a_docs_only_commit_changes_no_artifact_and_diff_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    common::copy(&common::example(), &repo);
    git_at(dir.path(), 1_700_000_000, &["init", "-q"]);
    git_at(dir.path(), 1_700_000_000, &["add", "."]);
    git_at(dir.path(), 1_700_000_000, &["commit", "-q", "-m", "one"]);
    let one = git(dir.path(), &["rev-parse", "HEAD"]).trim().to_owned();
    let (before, first) = split_plan(compile_bin(dir.path(), "repo", "dist-1", None).0);

    // A day later, only the README changes.
    std::fs::write(
        repo.join("README.md"),
        "# Sensor pipelines\n\nNow with docs.\n",
    )
    .unwrap();
    git_at(dir.path(), 1_700_086_400, &["add", "."]);
    git_at(dir.path(), 1_700_086_400, &["commit", "-q", "-m", "docs"]);
    let two = git(dir.path(), &["rev-parse", "HEAD"]).trim().to_owned();
    let (after, second) = split_plan(compile_bin(dir.path(), "repo", "dist-2", None).0);

    // Every artifact and manifest is the same; the plan and the bundles' facts record each
    // commit, and only that changes in them.
    let (artifacts_before, facts_before) = split_bundles(before.clone());
    let (artifacts_after, facts_after) = split_bundles(after.clone());
    assert_same_files(&artifacts_before, &artifacts_after, "a README-only commit");
    for (name, facts) in &facts_before {
        let mut facts = facts.clone();
        assert_eq!(facts["revision"], json!(one), "{name}");
        facts["revision"] = json!(two);
        assert_eq!(facts, facts_after[name], "{name}");
    }
    assert_eq!(first["revision"], json!(one));
    assert_eq!(first["created"], "2023-11-14T22:13:20Z");
    assert_eq!(second["revision"], json!(two));
    assert_eq!(second["created"], "2023-11-15T22:13:20Z");

    // SOURCE_DATE_EPOCH changes the plan's time, no artifact.
    let (stamped, third) = split_plan(compile_bin(dir.path(), "repo", "dist-3", Some("86400")).0);
    assert_same_files(&after, &stamped, "SOURCE_DATE_EPOCH");
    assert_eq!(third["created"], "1970-01-02T00:00:00Z");
    assert_eq!(third["revision"], json!(two));

    let out = etl(&["diff", "HEAD~1", "HEAD", "--repo", "repo"], dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).starts_with("no changes to what gets deployed\n"),
        "{}",
        stdout(&out)
    );
    let out = etl(
        &[
            "diff", "HEAD~1", "HEAD", "--repo", "repo", "--format", "json",
        ],
        dir.path(),
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["changed"], false);
    assert_eq!(report["counts"]["restamped"], 0);
    assert_eq!(report["counts"]["artifacts"], 0);
}

#[test]
fn compiling_into_the_work_tree_is_not_a_change_of_the_inputs() {
    let dir = tempfile::tempdir().unwrap();
    common::copy(&common::example(), dir.path());
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "."]);
    git(dir.path(), &["commit", "-q", "-m", "one"]);
    let head = git(dir.path(), &["rev-parse", "HEAD"]).trim().to_owned();
    // Neither `dist/` nor the cache is ignored, and both are inside the work tree.
    if cache_dir().is_dir() {
        common::copy(&cache_dir(), &dir.path().join(".etl-cache"));
    }
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_etl"))
            .args(["compile", "--out", "dist", "--cache-dir", ".etl-cache"])
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("ETL_SOURCE_URL")
            .current_dir(dir.path())
            .output()
            .expect("etl runs");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(!stderr(&out).contains("uncommitted"), "{}", stderr(&out));
        common::tree(&dir.path().join("dist"))
    };
    let first = run();
    let second = run();
    assert_same_files(&first, &second, "compiling again into the work tree");
    let plan: Value = serde_json::from_slice(&second["plan.json"]).unwrap();
    assert_eq!(plan["provenance"]["revision"], json!(head));

    // Committing the output is no new input either: the recorded commit stays the one that
    // changed the pipelines.
    git(dir.path(), &["add", "dist"]);
    git(dir.path(), &["commit", "-q", "-m", "dist"]);
    assert_same_files(&first, &run(), "committing dist/");

    // A real change still counts.
    replace(dir.path(), "etl.yaml", "replicas: 3", "replicas: 4");
    let out = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["compile", "--out", "dist", "--cache-dir", ".etl-cache"])
        .env_remove("SOURCE_DATE_EPOCH")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("uncommitted changes"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_new_messages_in_flight_ceiling_is_shown_and_counted() {
    let base = example_plan();
    let mut head = base.clone();
    let app = &mut head["deployments"]["staging"]["sensor-ingest"];
    assert_eq!(
        app["maxInFlight"],
        json!(4),
        "2 replicas on the lab host: 666 / (2 × 74)"
    );
    app["maxInFlight"] = json!(3);
    app["version"] = json!("sha-000000000000");
    let report = diff::diff(&snapshot("base", &base), &snapshot("head", &head));
    assert_eq!(
        report.summary,
        "1 environment, 1 pipeline changed: 1 scaling change"
    );
    let staging = &report.pipelines[0].deployments[0];
    assert_eq!(staging.environment, "staging");
    assert_eq!(
        (
            staging.max_in_flight.as_ref().unwrap().old,
            staging.max_in_flight.as_ref().unwrap().new
        ),
        (Some(4), Some(3))
    );
    assert!(staging.other.is_none(), "explained: {:?}", staging.other);
    assert!(
        report
            .text()
            .contains("max in flight per messaging-fed step (wasmCloud v2) 4 → 3"),
        "{}",
        report.text()
    );
}

// ---- Delivery: the JetStream documents ------------------------------------------------------

/// A git repo whose `repo/` holds the example, committed as it is, then edited by `edit` and
/// committed again.
fn git_repo_with(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    common::copy(&common::example(), &repo);
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "."]);
    git(dir.path(), &["commit", "-q", "-m", "one"]);
    edit(&repo);
    git(dir.path(), &["commit", "-q", "-am", "two"]);
    dir
}

/// `etl diff BASE HEAD --format FORMAT` of the repo `dir/repo` through the binary: its exit
/// code and stdout, the commits written `<HEAD~1>` and `<HEAD>` (they change with the example).
fn diff_refs(dir: &Path, base: &str, head: &str, format: &str) -> (Option<i32>, String) {
    let out = etl(
        &["diff", base, head, "--repo", "repo", "--format", format],
        dir,
    );
    assert!(out.status.code() != Some(2), "{}", stderr(&out));
    let mut text = stdout(&out);
    for rev in ["HEAD~1", "HEAD"] {
        let hash = git(dir, &["rev-parse", rev]);
        let hash = hash.trim();
        text = text
            .replace(hash, &format!("<{rev}>"))
            .replace(&hash[..12], &format!("<{rev}>"));
    }
    (out.status.code(), text)
}

/// Prod's messages kept 1 h instead of 24 h, at most 1 GiB of them, and 10 unacknowledged per
/// unit instead of 1000: only the stream and consumers change, not the manifests.
fn prod_delivery_limits(root: &Path) {
    replace(
        root,
        "etl.yaml",
        "      lattice: acme-iot-prod\n",
        "      lattice: acme-iot-prod\n      delivery: { max_age: 1h, max_bytes: 1073741824, max_ack_pending: 10 }\n",
    );
}

#[test]
fn changed_delivery_limits_show_as_stream_and_consumer_changes() {
    let dir = git_repo_with(prod_delivery_limits);
    let (code, text) = diff_refs(dir.path(), "HEAD~1", "HEAD", "text");
    assert_eq!(
        code,
        Some(1),
        "the manifests are the same, the stream is not: {text}"
    );
    insta::assert_snapshot!("delivery_limits_text", text);
    for line in [
        "1 environment, 1 pipeline changed: 6 JetStream changes\n",
        "  [prod]\n    stream ETL_DATA_iot-sensors_sensor-ingest max_age 24h → 1h\n",
        "    stream ETL_DATA_iot-sensors_sensor-ingest max_bytes unlimited → 1 GiB\n",
        "    consumers enrich, threshold-alert, alerts, archive max_ack_pending 1000 → 10\n",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    assert!(!text.contains("DELIVERY WEAKENED"), "{text}");
    let (code, markdown) = diff_refs(dir.path(), "HEAD~1", "HEAD", "markdown");
    assert_eq!(code, Some(1));
    insta::assert_snapshot!("delivery_limits_markdown", markdown);
    let (code, json) = diff_refs(dir.path(), "HEAD~1", "HEAD", "json");
    assert_eq!(code, Some(1));
    insta::assert_snapshot!("delivery_limits_json", json);
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["counts"]["jetstream"], 6);
    assert_eq!(json["counts"]["delivery"], 0);
    let prod = &json["pipelines"][0]["deployments"][0];
    assert_eq!(prod["environment"], "prod");
    assert!(prod.get("delivery").is_none(), "{prod}");
    assert_eq!(
        prod["jetstream"][0],
        json!({
            "of": "stream",
            "name": "ETL_DATA_iot-sensors_sensor-ingest",
            "stream": "ETL_DATA_iot-sensors_sensor-ingest",
            "status": "changed",
            "field": "max_age",
            "old": 86_400_000_000_000_i64,
            "new": 3_600_000_000_000_i64
        })
    );
}

#[test]
fn a_switch_to_at_most_once_is_flagged_first() {
    let dir = git_repo_with(prod_at_most_once);
    let (code, text) = diff_refs(dir.path(), "HEAD~1", "HEAD", "text");
    assert_eq!(code, Some(1));
    insta::assert_snapshot!("delivery_guarantee_text", text);
    let weakened = "\nDELIVERY WEAKENED: records in flight can now be lost in these deployments \
                    (at most once: no JetStream stream keeps them)\n  ! sensor-ingest [prod]: \
                    at-least-once → at-most-once (stream ETL_DATA_iot-sensors_sensor-ingest and 4 \
                    consumers removed)\n";
    assert!(text.contains(weakened), "{text}");
    // First in the report after the summary and sides, first in its environment.
    assert!(
        text.contains(
            "  [prod]\n    delivery at-least-once → at-most-once (stream ETL_DATA_iot-sensors_sensor-ingest and 4 consumers removed)\n"
        ),
        "{text}"
    );
    assert!(
        text.lines()
            .nth(4)
            .unwrap()
            .starts_with("DELIVERY WEAKENED"),
        "{text}"
    );
    assert!(
        text.starts_with("1 environment, 1 pipeline changed: 1 delivery guarantee change, "),
        "{text}"
    );
    let (code, markdown) = diff_refs(dir.path(), "HEAD~1", "HEAD", "markdown");
    assert_eq!(code, Some(1));
    insta::assert_snapshot!("delivery_guarantee_markdown", markdown);
    assert!(
        markdown.contains("\n> [!CAUTION]\n> **Delivery weakened.**"),
        "{markdown}"
    );
    let (code, json) = diff_refs(dir.path(), "HEAD~1", "HEAD", "json");
    assert_eq!(code, Some(1));
    insta::assert_snapshot!("delivery_guarantee_json", json);
    let json: Value = serde_json::from_str(&json).unwrap();
    let prod = &json["pipelines"][0]["deployments"][0];
    assert_eq!(
        prod["delivery"],
        json!({ "old": "at-least-once", "new": "at-most-once" })
    );
    let removed: Vec<(&str, &str)> = prod["jetstream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            assert_eq!(j["status"], "removed", "{j}");
            (j["of"].as_str().unwrap(), j["name"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        removed,
        [
            ("stream", "ETL_DATA_iot-sensors_sensor-ingest"),
            ("consumer", "enrich"),
            ("consumer", "threshold-alert"),
            ("consumer", "alerts"),
            ("consumer", "archive"),
        ]
    );
    assert_eq!(json["counts"]["delivery"], 1);
    assert_eq!(json["counts"]["jetstream"], 0, "counted with the guarantee");

    // The way back adds the stream and consumers: first in prod, no warning.
    let (code, back) = diff_refs(dir.path(), "HEAD", "HEAD~1", "text");
    assert_eq!(code, Some(1));
    assert!(!back.contains("DELIVERY WEAKENED"), "{back}");
    assert!(
        back.contains(
            "  [prod]\n    delivery at-most-once → at-least-once (stream ETL_DATA_iot-sensors_sensor-ingest and 4 consumers added)\n"
        ),
        "{back}"
    );
}
