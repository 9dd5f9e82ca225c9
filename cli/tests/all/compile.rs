//! `etl compile` end to end on the example: what dist/ holds, that it is the same bytes every
//! time, that the cache makes a recompile a no-op, and that a failed compile writes nothing.

use crate::common;

use std::path::Path;

use etl::ops::compile::{self, Options};
use etl::store::Cache;

fn compile_into(repo: &Path, out: &Path, cache: Option<&Path>) -> compile::Compilation {
    let options = Options {
        out: out.to_owned(),
        cache: cache.map(Cache::new),
        provenance: Default::default(),
    };
    compile::compile(repo, &options).unwrap()
}

#[test]
fn the_example_compiles_into_a_plan_and_composed_components() {
    let tmp = tempfile::tempdir().unwrap();
    let dist = tmp.path().join("dist");
    let c = compile_into(&common::example(), &dist, None);
    // Only the warning that, without a claims key, 1.x hosts will not fetch the sink's secret.
    let codes: Vec<(&str, &str)> = c
        .validation
        .diagnostics
        .iter()
        .map(|d| (d.code.as_str(), d.message.as_str()))
        .collect();
    assert_eq!(codes.len(), 1, "{codes:#?}");
    assert_eq!(codes[0].0, "W0520");
    assert!(codes[0].1.contains("`alerts`"), "{codes:#?}");
    let plan = c.plan.expect("a plan");
    let pipeline = &plan.pipelines[0];
    let unit = |name: &str| {
        pipeline
            .steps
            .iter()
            .chain(&pipeline.sinks)
            .find(|u| u.name == name)
            .unwrap()
    };
    assert_eq!(
        unit("parse").harness.inbound,
        ["in-http", "in-messaging"],
        "the step behind the http source is entered over http, and over messaging on its \
         replay subject"
    );
    assert_eq!(unit("enrich").harness.inbound, ["in-messaging"]);
    assert_eq!(unit("alerts").harness.out, "out-http");
    assert_eq!(unit("archive").harness.out, "out-messaging");
    assert!(
        unit("parse")
            .artifact
            .exports
            .iter()
            .any(|e| e.starts_with("wasi:http/incoming-handler@0.2"))
    );
    assert!(
        unit("enrich")
            .artifact
            .exports
            .iter()
            .any(|e| e.starts_with("wasmcloud:messaging/handler@0.2"))
    );
    for u in pipeline.steps.iter().chain(&pipeline.sinks) {
        let v2 = u
            .artifact_v2
            .as_ref()
            .expect("every unit has a v2 artifact");
        for a in [&u.artifact, v2] {
            assert!(
                a.imports.iter().all(|i| !i.starts_with("etl:")),
                "{}: {:?}",
                u.name,
                a.imports
            );
            let bytes = std::fs::read(dist.join(&a.path)).unwrap();
            assert_eq!(etl::util::digest::sha256(&bytes), a.digest);
        }
        // The generations differ only in how the host serves config and secrets (1.x:
        // `wasi:config/runtime` and `wasmcloud:secrets`; v2: `wasi:config/store`). A part
        // calling into the settings part across a component boundary costs one core instance
        // (an adapter module): in v2 every part reads its config there; in 1.x only `out-http`
        // calls it, for its secrets.
        let generational =
            |i: &&String| i.starts_with("wasi:config/") || i.starts_with("wasmcloud:secrets/");
        let other = |a: &etl::build::dist::ArtifactPlan| -> Vec<String> {
            a.imports
                .iter()
                .filter(|i| !generational(i))
                .cloned()
                .collect()
        };
        assert_eq!(other(&u.artifact), other(v2), "{}", u.name);
        let own = |a: &etl::build::dist::ArtifactPlan| -> Vec<String> {
            let mut own: Vec<String> = a.imports.iter().filter(generational).cloned().collect();
            own.sort();
            own
        };
        assert_eq!(
            own(&u.artifact),
            [
                "wasi:config/runtime@0.2.0-draft",
                "wasmcloud:secrets/reveal@0.1.0-draft",
                "wasmcloud:secrets/store@0.1.0-draft",
            ],
            "{}",
            u.name
        );
        assert_eq!(own(v2), ["wasi:config/store@0.2.0-rc.1"], "{}", u.name);
        assert_eq!(u.artifact.exports, v2.exports);
        let calls_settings_on_1x = u.harness.out == "out-http";
        assert_eq!(
            u.artifact.core_instances + u32::from(!calls_settings_on_1x),
            v2.core_instances,
            "{}",
            u.name
        );
        // 16: `parse`, composed with both in parts.
        assert!(
            (12..=16).contains(&v2.core_instances),
            "{}",
            v2.core_instances
        );
        assert_ne!(u.artifact.digest, v2.digest);
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dist.join("plan.json")).unwrap()).unwrap();
    assert_eq!(json["kind"], "Plan");
    assert_eq!(
        c.built, 10,
        "five units, one component per wasmCloud generation"
    );
}

#[test]
fn compiling_twice_gives_the_same_bytes_and_the_cache_makes_it_a_no_op() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (cache_a, cache_b) = (tmp.path().join("cache-a"), tmp.path().join("cache-b"));
    compile_into(&common::example(), &a, Some(&cache_a));
    compile_into(&common::example(), &b, Some(&cache_b));
    assert_eq!(
        common::tree(&a),
        common::tree(&b),
        "two fresh compiles differ"
    );
    let again = compile_into(&common::example(), &a, Some(&cache_a));
    assert_eq!(
        again.built, 0,
        "an unchanged repo recompiles from the cache"
    );
    assert_eq!(common::tree(&a), common::tree(&b));

    // A cached composition whose bytes no longer hash to their stored digest is rebuilt, and
    // the output is unchanged; so is one whose description is unreadable.
    let composed = cache_a.join("composed");
    let mut entries: Vec<_> = std::fs::read_dir(&composed)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let wasm = entries
        .iter()
        .find(|p| p.extension().unwrap() == "wasm")
        .unwrap();
    let mut bytes = std::fs::read(wasm).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(wasm, bytes).unwrap();
    let json = entries
        .iter()
        .rfind(|p| p.extension().unwrap() == "json")
        .unwrap();
    std::fs::write(json, b"{").unwrap();
    let repaired = compile_into(&common::example(), &a, Some(&cache_a));
    assert_eq!(repaired.built, 2, "the two damaged entries are rebuilt");
    assert_eq!(common::tree(&a), common::tree(&b));
}

#[test]
fn identical_compositions_are_built_once_and_shared() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    common::copy(&common::example(), &repo);
    let text = std::fs::read_to_string(repo.join("pipelines/sensor-ingest.yaml")).unwrap();
    std::fs::write(
        repo.join("pipelines/sensor-copy.yaml"),
        // Its own path: two pipelines cannot share one on a lattice (E0224).
        text.replace("name: sensor-ingest", "name: sensor-copy")
            .replace("path: /sensors", "path: /sensors-copy"),
    )
    .unwrap();
    let dist = tmp.path().join("dist");
    let c = compile_into(&repo, &dist, None);
    assert!(c.plan.is_some(), "{:#?}", c.validation.diagnostics);
    assert_eq!(
        c.built, 10,
        "the second pipeline reuses every composition of the first"
    );
    let components = common::tree(&dist)
        .keys()
        .filter(|k| k.starts_with("components/"))
        .count();
    assert_eq!(components, 10);
}

#[test]
fn a_failed_compile_leaves_the_previous_output_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    common::copy(&common::example(), &repo);
    let dist = tmp.path().join("dist");
    compile_into(&repo, &dist, None);
    let before = common::tree(&dist);
    let mut bytes = std::fs::read(repo.join("components/enrich.wasm")).unwrap();
    bytes.push(0);
    std::fs::write(repo.join("components/enrich.wasm"), bytes).unwrap();
    let c = compile_into(&repo, &dist, None);
    assert!(c.plan.is_none());
    assert!(
        c.validation
            .diagnostics
            .iter()
            .any(|d| d.code == etl::diag::Code::DigestMismatch)
    );
    assert_eq!(common::tree(&dist), before);
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "no staging directories left behind: {leftovers:?}"
    );
}

/// `etl compile --repo repo --out out` with `args`: (exit code, stderr).
fn compile_bin(repo: &Path, out: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_etl"))
        .arg("compile")
        .arg("--repo")
        .arg(repo)
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .expect("etl runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_summary_says_what_was_built_taken_from_the_cache_and_shared() {
    // A second NATS sink of `parse`: the same compositions as `archive` (one per wasmCloud
    // generation), made once per run.
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    common::copy(&common::example(), &repo);
    let pipeline = repo.join("pipelines/sensor-ingest.yaml");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(
        &pipeline,
        format!(
            "{text}    - name: archive-copy\n      from: [parse]\n      connector: nats\n      \
             with:\n        subject: etl.archive-copy\n"
        ),
    )
    .unwrap();

    let (code, stderr) = compile_bin(&repo, &tmp.path().join("a"), &["--no-cache"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "(6 steps and sinks, 12 components: 10 built, 2 shared with an identical one)"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("from cache"),
        "there is no cache: {stderr}"
    );

    let cache = tmp.path().join("cache");
    let cache = cache.to_str().unwrap();
    let (_, stderr) = compile_bin(&repo, &tmp.path().join("b"), &["--cache-dir", cache]);
    assert!(
        stderr.contains(
            "(6 steps and sinks, 12 components: 10 built, 0 from cache, 2 shared with an identical one)"
        ),
        "{stderr}"
    );
    let (_, stderr) = compile_bin(&repo, &tmp.path().join("c"), &["--cache-dir", cache]);
    assert!(
        stderr.contains(
            "(6 steps and sinks, 12 components: 0 built, 10 from cache, 2 shared with an identical one)"
        ),
        "{stderr}"
    );
}

#[test]
fn a_cache_that_cannot_be_written_is_said_once() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    // A file where the compositions' directory goes: unwritable for every user (a read-only
    // directory is not, for root).
    std::fs::write(cache.join("composed"), "in the way").unwrap();
    let (code, stderr) = compile_bin(
        &common::example(),
        &tmp.path().join("dist"),
        &["--cache-dir", cache.to_str().unwrap()],
    );
    assert_eq!(
        code,
        Some(0),
        "the compile goes on without the cache: {stderr}"
    );
    let warning = format!(
        "warning: the cache `{}` cannot be written (`{}`: ",
        cache.display(),
        cache.join("composed").display()
    );
    assert_eq!(stderr.matches(&warning).count(), 1, "{stderr}");
    assert!(stderr.contains("(os error"), "{stderr}");
}

/// The `max_in_flight` every messaging entry of `dist/<env>/k8s/sensor-ingest.yaml` that
/// delivers records carries, one per such entry.
fn max_in_flight(dist: &Path, env: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dist.join(env).join("k8s/sensor-ingest.yaml")).unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    docs.iter()
        .flat_map(|d| {
            d["spec"]["template"]["spec"]["hostInterfaces"]
                .as_array()
                .unwrap()
        })
        .filter(|e| e["package"] == "messaging" && e["interfaces"].to_string().contains("handler"))
        .map(|e| e["config"]["max_in_flight"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn messages_in_flight_are_sized_from_the_hosts_instance_pool_or_set_per_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    common::copy(&common::example(), &repo);
    // Five steps and sinks fed over messaging (`parse` on its replay subject), 16 + 15 + 15 + 14
    // + 14 core instances: 74 per message in flight; two thirds of the default pool of 1000 is
    // 666, so 9 in flight each. Staging runs 2 replicas that may share a host, prod 3 split 2 + 1
    // over two zones: 148, so 4.
    let dist = tmp.path().join("a");
    let (code, stderr) = compile_bin(&repo, &dist, &["--no-cache"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("W0802"), "{stderr}");
    assert_eq!(max_in_flight(&dist, "dev"), ["9"; 5]);
    assert_eq!(max_in_flight(&dist, "staging"), ["4"; 5]);

    // A larger pool in dev; a ceiling in staging that five units cannot all use at once.
    let etl_yaml = repo.join("etl.yaml");
    let text = std::fs::read_to_string(&etl_yaml).unwrap();
    let text = text
        .replacen(
            "      lattice: acme-iot-dev\n",
            "      lattice: acme-iot-dev\n      coreInstances: 3000\n",
            1,
        )
        .replacen(
            "      lattice: acme-iot-staging\n",
            "      lattice: acme-iot-staging\n      maxInFlight: 20\n",
            1,
        );
    std::fs::write(&etl_yaml, text).unwrap();
    let dist = tmp.path().join("b");
    let (code, stderr) = compile_bin(&repo, &dist, &["--no-cache"]);
    assert_eq!(
        code,
        Some(0),
        "a warning does not fail the compile: {stderr}"
    );
    assert_eq!(max_in_flight(&dist, "dev"), ["27"; 5], "2000 / 74");
    assert_eq!(max_in_flight(&dist, "staging"), ["20"; 5]);
    assert_eq!(
        max_in_flight(&dist, "prod"),
        ["4"; 10],
        "two spread shares each"
    );
    assert!(stderr.contains("warning[W0802]"), "{stderr}");
    assert!(
        stderr.contains(
            "pipeline `sensor-ingest` in environment `staging`: with every message in flight, its \
             steps fed over messaging take 2960 core instances"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("etl.yaml:"), "at the setting: {stderr}");
    assert!(stderr.contains("`maxInFlight: 4` fits"), "{stderr}");
    assert_eq!(stderr.matches("W0802").count(), 1, "{stderr}");
}
