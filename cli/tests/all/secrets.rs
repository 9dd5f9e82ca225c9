//! A secret's value never leaves the place it was given: the tests plant values (in fixtures,
//! in a `--secrets` file, in `ETL_SECRET_*` variables) and grep everything `etl` writes or
//! prints for them: `dist/` and `plan.json`, `etl diff` in every format, `etl run` and
//! `etl test` output, and error messages.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

/// A value planted in the environment of every command here, for a key the repo uses.
const PLANTED_ENV: &str = "planted-env-value-7f3a";
/// A value planted in a `--secrets` file.
const PLANTED_FILE: &str = "planted file value \"quoted\" \\ 9c1e";

fn etl(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .env(etl_run::secrets::env_var("alerts-api-key"), PLANTED_ENV)
        .env(etl_run::secrets::env_var("enrich-token"), PLANTED_ENV)
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// Every planted value: the fixture's test values and the two above.
fn planted() -> Vec<&'static str> {
    let mut values: Vec<&str> = common::SECRET_VALUES.iter().map(|(_, v)| *v).collect();
    values.extend([PLANTED_ENV, PLANTED_FILE]);
    values
}

/// Fails naming `what` if `bytes` hold any planted value (as written or JSON-escaped).
fn assert_clean(what: &str, bytes: &[u8]) {
    for value in planted() {
        let escaped = serde_json::to_string(value).unwrap();
        for form in [value, &escaped[1..escaped.len() - 1]] {
            assert!(
                !bytes.windows(form.len()).any(|w| w == form.as_bytes()),
                "{what} holds the secret value {value:?}"
            );
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn no_secret_value_reaches_dist_plan_json_or_etl_diff() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    common::with_secrets(&repo);
    let cache = tmp.path().join("cache");
    let cache = cache.to_str().unwrap();
    let compile = |out: &str| {
        let o = etl(
            &[
                "compile",
                "--repo",
                "repo",
                "--out",
                out,
                "--cache-dir",
                cache,
            ],
            tmp.path(),
        );
        assert!(o.status.success(), "{}", text(&o));
        assert_clean("`etl compile` output", text(&o).as_bytes());
    };
    compile("base");
    let files = common::tree(&tmp.path().join("base"));
    assert!(files.contains_key("plan.json"));
    for (path, bytes) in &files {
        assert_clean(path, bytes);
    }

    // Rotate a secret to another key, with a new test value, and add one.
    let pipeline = repo.join("pipelines/sensor-ingest.yaml");
    let yaml = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(
        &pipeline,
        yaml.replace(
            "{ secret: alerts-api-key }",
            "{ secret: alerts-api-key-v2 }",
        )
        .replace(
            "        site: \"{{ vars.site }}\"\n",
            "        site: \"{{ vars.site }}\"\n        password: { secret: enrich-password }\n",
        ),
    )
    .unwrap();
    // In every fixture that gives it (a key the pipeline no longer uses would be warned about,
    // its line quoted).
    for name in ["fan-out", "broken-sensor"] {
        let fixture = repo.join(format!("tests/{name}.yaml"));
        let yaml = std::fs::read_to_string(&fixture).unwrap();
        let rotated = yaml.replace(
            "    alerts-api-key: fixture-api-key\n",
            "    alerts-api-key-v2: fixture-api-key\n",
        );
        assert_ne!(yaml, rotated, "{name}");
        std::fs::write(&fixture, rotated).unwrap();
    }
    compile("head");
    for (path, bytes) in &common::tree(&tmp.path().join("head")) {
        assert_clean(path, bytes);
    }
    for format in ["text", "markdown", "json"] {
        let o = etl(&["diff", "base", "head", "--format", format], tmp.path());
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let shown = text(&o);
        assert!(shown.contains("alerts-api-key-v2"), "{format}: {shown}");
        assert!(shown.contains("enrich-password"), "{format}: {shown}");
        assert_clean(&format!("`etl diff --format {format}`"), shown.as_bytes());
    }
}

#[test]
fn etl_run_and_etl_test_print_keys_never_values() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    common::with_secrets(&repo);
    let cache = tmp.path().join("cache");
    let cache = cache.to_str().unwrap();
    // The file gives two keys; the environment the other two (`alerts-api-key`,
    // `enrich-token`).
    let secrets = tmp.path().join("secrets.yaml");
    std::fs::write(
        &secrets,
        format!(
            "alerts-webhook-token: {}\nkafka-password: {}\n",
            serde_json::to_string(PLANTED_FILE).unwrap(),
            serde_json::to_string(PLANTED_FILE).unwrap()
        ),
    )
    .unwrap();
    let input = tmp.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"json\": {\"sensor\": \"t-1\", \"temp_c\": 90, \"ts\": \"2026-11-01T12:00:00Z\"}}\n",
    )
    .unwrap();
    for generation in ["v1", "v2"] {
        for format in ["text", "jsonl"] {
            let o = etl(
                &[
                    "run",
                    "sensor-ingest",
                    "--repo",
                    "repo",
                    "--cache-dir",
                    cache,
                    "--secrets",
                    "secrets.yaml",
                    "--input",
                    "in.jsonl",
                    "--format",
                    format,
                    "--generation",
                    generation,
                ],
                tmp.path(),
            );
            let shown = text(&o);
            assert!(o.status.success(), "{shown}");
            assert!(
                shown.contains("<secret alerts-webhook-token>")
                    && shown.contains("<secret alerts-api-key>"),
                "{generation} {format}: {shown}"
            );
            assert_clean(
                &format!("`etl run --format {format}` ({generation})"),
                shown.as_bytes(),
            );
        }
    }

    // A value missing: the error names the key, and no value.
    std::fs::write(&secrets, "kafka-password: x\n").unwrap();
    let o = etl(
        &[
            "run",
            "sensor-ingest",
            "--repo",
            "repo",
            "--cache-dir",
            cache,
            "--secrets",
            "secrets.yaml",
            "--input",
            "in.jsonl",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    let shown = text(&o);
    assert!(
        shown.contains(
            "secret `alerts-webhook-token` (setting `authorization` of `alerts`) has no value: \
             give it in a `--secrets FILE` or as `ETL_SECRET_ALERTS_WEBHOOK_TOKEN`"
        ),
        "{shown}"
    );
    assert_clean("the missing-secret error", shown.as_bytes());

    // A secrets file that is not a map of strings: its error quotes no value.
    std::fs::write(
        &secrets,
        format!(
            "alerts-webhook-token: {}\nkafka-password: 12345\n",
            serde_json::to_string(PLANTED_FILE).unwrap()
        ),
    )
    .unwrap();
    let o = etl(
        &[
            "run",
            "sensor-ingest",
            "--repo",
            "repo",
            "--secrets",
            "secrets.yaml",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    let shown = text(&o);
    assert!(
        shown.contains("secrets.yaml`:2:17: the value of secret `kafka-password` is not a string"),
        "{shown}"
    );
    assert!(!shown.contains("12345"), "{shown}");
    assert_clean("the secrets-file error", shown.as_bytes());

    // `etl test`: passing, and failing with a diff of the very record that carries them.
    let o = etl(
        &["test", "--repo", "repo", "--cache-dir", cache],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_clean("`etl test` output", text(&o).as_bytes());
    let fixture = repo.join("tests/fan-out.yaml");
    let yaml = std::fs::read_to_string(&fixture).unwrap();
    std::fs::write(
        &fixture,
        yaml.replace("x-site: dev-bench", "x-site: elsewhere"),
    )
    .unwrap();
    let o = etl(
        &["test", "--repo", "repo", "--cache-dir", cache],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    let shown = text(&o);
    assert!(
        shown.contains("-    \"x-site\": \"elsewhere\"")
            && shown.contains("\"authorization\": \"<secret alerts-webhook-token>\""),
        "{shown}"
    );
    assert_clean("a failing `etl test`", shown.as_bytes());
}
