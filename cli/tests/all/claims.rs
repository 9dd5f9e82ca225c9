//! wascap claims through the binary: `etl keygen --claims`, `etl compile --claims-key` (and
//! `ETL_CLAIMS_KEY_FILE`), the warning without a key, and `etl diff` across the two. The claims
//! themselves are read back by wascap in `compiler/tests/all/claims.rs`.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use etl::oci::claims::AccountKey;
use serde_json::Value;

const KEY_ENV: &str = "ETL_CLAIMS_KEY_FILE";

fn etl(args: &[&str], cwd: &Path, env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_etl"));
    command
        .args(args)
        .current_dir(cwd)
        .env_remove(KEY_ENV)
        .env("SOURCE_DATE_EPOCH", "1700000000");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("etl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `etl compile --no-cache` of the example into `out` with `args`: the exit code and stderr.
fn compile(out: &Path, args: &[&str], env: &[(&str, &Path)]) -> (Option<i32>, String) {
    let example = common::example();
    let mut all = vec![
        "compile",
        "--no-cache",
        "--repo",
        s(&example),
        "--out",
        s(out),
    ];
    all.extend(args);
    let output = etl(&all, out.parent().unwrap(), env);
    (output.status.code(), text(&output.stderr))
}

fn plan(dist: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dist.join("plan.json")).unwrap()).unwrap()
}

#[test]
fn keygen_claims_writes_a_private_account_seed_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out = etl(&["keygen", "--claims"], dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let seed = std::fs::read_to_string(dir.path().join("etl-claims.nk")).unwrap();
    let public = std::fs::read_to_string(dir.path().join("etl-claims.pub")).unwrap();
    assert!(seed.starts_with("SA") && seed.ends_with('\n'), "{seed}");
    let key = AccountKey::from_seed(&seed).unwrap();
    assert_eq!(public, format!("{}\n", key.public_key()));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("account {}", key.public_key())),
        "{stdout}"
    );
    assert!(!stdout.contains(seed.trim()), "the seed is never printed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("etl-claims.nk"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    let again = etl(&["keygen", "--claims"], dir.path(), &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("etl-claims.nk` exists"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etl-claims.nk")).unwrap(),
        seed
    );
    // Not even beside a cosign key pair of the same prefix.
    let cosign = etl(&["keygen", "--out", "k"], dir.path(), &[]);
    assert!(cosign.status.success(), "{}", text(&cosign.stderr));
    let clash = etl(&["keygen", "--claims", "--out", "k"], dir.path(), &[]);
    assert_eq!(clash.status.code(), Some(2));
    assert!(!dir.path().join("k.nk").exists());
}

#[test]
fn compile_with_a_claims_key_records_each_units_subject_and_reproduces() {
    let dir = tempfile::tempdir().unwrap();
    let out = etl(&["keygen", "--claims", "--out", "acct"], dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let seed_file = dir.path().join("acct.nk");
    let key = AccountKey::from_seed(&std::fs::read_to_string(&seed_file).unwrap()).unwrap();

    let a = dir.path().join("a");
    let (code, stderr) = compile(&a, &["--claims-key", s(&seed_file)], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("W0520"), "{stderr}");
    let b = dir.path().join("b");
    let (code, stderr) = compile(&b, &[], &[(KEY_ENV, &seed_file)]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        common::tree(&a),
        common::tree(&b),
        "byte-identical, by flag or environment"
    );

    let plan = plan(&a);
    let project = plan["project"].as_str().unwrap();
    for p in plan["pipelines"].as_array().unwrap() {
        let pipeline = p["name"].as_str().unwrap();
        let units = p["steps"].as_array().unwrap().iter();
        for u in units.chain(p["sinks"].as_array().unwrap()) {
            let unit = u["name"].as_str().unwrap();
            assert_eq!(
                u["artifact"]["claims"],
                serde_json::json!({
                    "issuer": key.public_key(),
                    "subject": key.subject(&format!("{project}/{pipeline}/{unit}")),
                }),
                "{unit}"
            );
            assert!(u["artifactV2"].get("claims").is_none());
        }
    }

    // `etl diff` with the same key: nothing changed; without it, the claims are what differs.
    let same = etl(
        &[
            "diff",
            s(&a),
            s(&common::example()),
            "--claims-key",
            s(&seed_file),
        ],
        dir.path(),
        &[],
    );
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stdout));
    let bare = dir.path().join("bare");
    let (code, stderr) = compile(&bare, &[], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let changed = etl(&["diff", s(&bare), s(&a)], dir.path(), &[]);
    assert_eq!(changed.status.code(), Some(1));
    let report = text(&changed.stdout);
    assert!(
        report.contains(&format!("claims issuer (none) → {}", key.public_key())),
        "{report}"
    );
    assert_eq!(report.matches("claims issuer").count(), 5, "{report}");
}

#[test]
fn without_a_claims_key_a_unit_with_secrets_warns() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = compile(&dir.path().join("dist"), &[], &[]);
    assert_eq!(
        code,
        Some(0),
        "a warning does not fail the compile: {stderr}"
    );
    assert_eq!(stderr.matches("warning[W0520]").count(), 1, "{stderr}");
    for expected in [
        "wasmCloud 1.x hosts will not fetch the secrets of `alerts`: its component carries no \
         claims (environments `dev`, `prod`, `staging`)",
        "pipelines/sensor-ingest.yaml:42:9",
        "authorization: { secret: alerts-webhook-token }",
        "compile with `--claims-key FILE`",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
}

#[test]
fn a_claims_key_that_is_not_an_account_seed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cosign = etl(&["keygen", "--out", "k"], dir.path(), &[]);
    assert!(cosign.status.success(), "{}", text(&cosign.stderr));
    let out = dir.path().join("dist");
    let (code, stderr) = compile(&out, &["--claims-key", "k.key"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("`k.key`: not an nkey seed (`etl keygen --claims` writes one"),
        "{stderr}"
    );
    let (code, stderr) = compile(&out, &["--claims-key", "missing.nk"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("missing.nk"), "{stderr}");
    assert!(!out.exists(), "nothing written");
}

#[test]
fn help_explains_the_claims_options() {
    let dir = tempfile::tempdir().unwrap();
    let help = text(&etl(&["compile", "--help"], dir.path(), &[]).stdout);
    assert!(
        help.contains("--claims-key <FILE>") && help.contains("[env: ETL_CLAIMS_KEY_FILE="),
        "{help}"
    );
    let help = text(&etl(&["keygen", "--help"], dir.path(), &[]).stdout);
    assert!(
        help.contains("--claims") && help.contains("PREFIX.nk"),
        "{help}"
    );
    let help = text(&etl(&["diff", "--help"], dir.path(), &[]).stdout);
    assert!(help.contains("--claims-key <FILE>"), "{help}");
}
