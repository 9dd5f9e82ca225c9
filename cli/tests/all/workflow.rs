//! The example workflows run what they say, with this build of `etl` on the `PATH`:
//! `examples/github-actions/etl.yml`'s validate, compile, test and diff steps in a clone of a
//! pipeline repo whose pull request changes the example, and `release.yml`'s publish and
//! promote jobs against a real registry that wants credentials.

use crate::common;

use std::path::Path;
use std::process::Command;

/// A workflow file of `examples/github-actions/`.
fn workflow(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/github-actions")
        .join(name);
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
    let wf = workflow("etl.yml");
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

#[test]
fn the_release_jobs_publish_and_promote_as_written() {
    let wf = workflow("release.yml");
    assert_eq!(wf["on"]["push"]["branches"], serde_json::json!(["main"]));
    assert!(wf["on"]["workflow_dispatch"]["inputs"]["to"].is_object());
    let registry = crate::registry::TestRegistry::start(Some(("ci", "s3cret")));

    // The pipeline repo: the example, publishing to the test registry, with its public key.
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    common::copy(&common::example(), &repo);
    let etl_yaml = repo.join("etl.yaml");
    let text = std::fs::read_to_string(&etl_yaml).unwrap().replace(
        "registry: registry.acme.example/etl",
        &format!("registry: {}/etl", registry.host()),
    );
    std::fs::write(&etl_yaml, text).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_etl")).parent().unwrap();
    let keys = tmp.path().join("keys");
    let out = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["keygen", "--out"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::copy(keys.with_extension("pub"), repo.join("etl.pub")).unwrap();

    // What the expressions of the steps' `env` stand for. A secret pasted into GitHub often
    // ends in a blank line: the key file is given one.
    let values = |expression: &str| -> String {
        match expression {
            "${{ secrets.ETL_SIGNING_KEY }}" => {
                std::fs::read_to_string(keys.with_extension("key")).unwrap() + "\n"
            }
            "${{ secrets.ETL_KEY_PASSPHRASE }}" => String::new(), // no such secret
            "${{ secrets.REGISTRY_USER }}" => "ci".to_owned(),
            "${{ secrets.REGISTRY_TOKEN }}" => "s3cret".to_owned(),
            "${{ inputs.from }}" => "dev".to_owned(),
            "${{ inputs.to }}" => "staging".to_owned(),
            other => panic!("no value for {other}"),
        }
    };
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let run_job = |job: &str| {
        for step in wf["jobs"][job]["steps"].as_array().unwrap() {
            let (Some(name), Some(script)) = (step["name"].as_str(), step["run"].as_str()) else {
                continue;
            };
            if name == "Install etl" {
                continue; // this build is on the PATH
            }
            assert!(!script.contains("${{"), "unexpanded expression in {script}");
            let mut command = Command::new("bash");
            command
                .args(["-euo", "pipefail", "-c", script])
                .current_dir(&repo)
                .env("PATH", &path)
                .env("RUNNER_TEMP", tmp.path())
                .env("ETL_CACHE_DIR", tmp.path().join("cache"))
                .env("DOCKER_CONFIG", tmp.path().join("docker"))
                .env("SOURCE_DATE_EPOCH", "1700000000");
            for (key, value) in step["env"].as_object().into_iter().flatten() {
                command.env(key, values(value.as_str().unwrap()));
            }
            let out = command.output().unwrap();
            assert!(
                out.status.success(),
                "{job}: step {name}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };

    run_job("publish");
    assert!(
        !tmp.path().join("etl.key").exists(),
        "the private key is not left behind"
    );
    let published: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("dist/plan.json")).unwrap()).unwrap();
    let dev = |name: &str| format!("{}/etl/sensor-ingest-{name}:dev", registry.host());
    let verify = |password: &str| {
        common::output_with_stdin(
            Command::new(env!("CARGO_BIN_EXE_etl"))
                .args(["verify", "--key", "etl.pub", &dev("parse"), &dev("alerts")])
                .args(["--username", "ci", "--password-stdin"])
                .current_dir(&repo),
            password,
        )
    };
    let out = verify("s3cret\n");
    assert!(
        out.status.success(),
        "dev is tagged and signed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = verify("wrong\n");
    // Refused credentials are no verdict on the signatures: the registry cannot be read.
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused the credentials given"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A later run promotes dev to staging from a fresh compile of the same commit.
    std::fs::remove_dir_all(repo.join("dist")).unwrap();
    run_job("promote");
    assert!(
        !tmp.path().join("etl.key").exists(),
        "the private key is not left behind"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("dist/promotions/staging.json")).unwrap())
            .unwrap();
    assert_eq!(
        (&record["from"], &record["to"]),
        (&"dev".into(), &"staging".into())
    );
    // Staging's bundle is tagged and verifies with the project's key.
    let bundle = format!(
        "{}/etl/bundles/iot-sensors/staging:staging",
        registry.host()
    );
    let out = common::output_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_etl"))
            .args(["verify", "--key", "etl.pub", &bundle])
            .args(["--username", "ci", "--password-stdin"])
            .current_dir(&repo),
        "s3cret\n",
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "ok: `{bundle}` {}",
            record["bundle"]["digest"].as_str().unwrap()
        )),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let staging =
        std::fs::read_to_string(repo.join("dist/staging/wadm/sensor-ingest.yaml")).unwrap();
    for c in published["deployments"]["dev"]["sensor-ingest"]["components"]
        .as_array()
        .unwrap()
    {
        let digest = c["artifact"]["manifestDigest"].as_str().unwrap();
        assert!(
            staging.contains(digest),
            "staging pins the published {digest}"
        );
    }
}
