//! `examples/github-actions/etl.yml` runs what it says: its validate, compile, test and diff
//! steps are executed here, as a runner would, in a clone of a pipeline repo whose pull request
//! changes the example — with this build of `etl` on the `PATH`.

mod common;

use std::path::Path;
use std::process::Command;

/// The workflow file.
fn workflow() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/github-actions/etl.yml");
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).expect("the workflow is YAML")
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=ci", "-c", "user.email=ci@example.invalid"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_pull_request_steps_run_as_written() {
    let wf = workflow();
    assert!(
        wf["on"]["pull_request"].is_object(),
        "runs on pull requests"
    );
    assert_eq!(wf["permissions"]["pull-requests"], "write", "may comment");
    let steps = wf["jobs"]["etl"]["steps"].as_array().unwrap();
    let run = |name: &str| -> String {
        steps
            .iter()
            .find(|s| s["name"] == name)
            .and_then(|s| s["run"].as_str())
            .unwrap_or_else(|| panic!("no step `{name}` with a `run`"))
            .to_owned()
    };

    // The pipeline repo: the example on `main`, and a pull request that scales prod up.
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    common::copy(&common::example(), &origin);
    git(&origin, &["init", "-q", "-b", "main"]);
    git(&origin, &["add", "."]);
    git(&origin, &["commit", "-q", "-m", "pipelines"]);
    let checkout = tmp.path().join("checkout");
    let out = Command::new("git")
        .args(["clone", "-q"])
        .arg(&origin)
        .arg(&checkout)
        .output()
        .unwrap();
    assert!(out.status.success());
    git(&checkout, &["checkout", "-q", "-b", "lower-threshold"]);
    let etl_yaml = checkout.join("etl.yaml");
    let text = std::fs::read_to_string(&etl_yaml).unwrap();
    let scaled = text.replacen("      replicas: 3\n", "      replicas: 4\n", 1);
    assert_ne!(scaled, text);
    std::fs::write(&etl_yaml, scaled).unwrap();
    git(&checkout, &["commit", "-q", "-am", "prod: four replicas"]);

    let bin = Path::new(env!("CARGO_BIN_EXE_etl")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let output = tmp.path().join("github-output");
    let sh = |script: &str| {
        let script = script.replace("${{ github.base_ref }}", "main");
        assert!(!script.contains("${{"), "unexpanded expression in {script}");
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(&checkout)
            .env("PATH", &path)
            .env("GITHUB_OUTPUT", &output)
            .env("ETL_SOURCE_URL", "https://github.com/acme/pipelines")
            .output()
            .unwrap()
    };
    for step in ["Validate", "Compile", "Test"] {
        let out = sh(&run(step));
        assert!(
            out.status.success(),
            "step {step}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(checkout.join("dist/prod/wadm/sensor-ingest.yaml").is_file());

    let out = sh(&run("Diff against the base branch"));
    assert!(
        out.status.success(),
        "diff step: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outputs = std::fs::read_to_string(&output).unwrap();
    assert!(outputs.contains("changed=true"), "{outputs}");
    let md = std::fs::read_to_string(checkout.join("diff.md")).unwrap();
    assert!(md.contains("prod"), "{md}");
    assert!(md.contains("replicas `3` → `4`"), "{md}");
    assert!(md.len() < 60_000);
}
