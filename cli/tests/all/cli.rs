//! The `etl` binary as users and CI call it: exit codes, output streams and formats.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn etl(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("etl runs")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn broken_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    etl::ops::init::init(dir.path(), Some("demo")).unwrap();
    let pipeline = dir.path().join("pipelines/hello.yaml");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(
        &pipeline,
        text.replace("from: [transform]", "from: [transfrom]")
            .replace("connector: http", "connector: htpp"),
    )
    .unwrap();
    dir
}

#[test]
fn valid_example_exits_zero() {
    let out = etl(&["validate", "--repo", "examples/iot-sensors"], &root());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is valid"));
}

#[test]
fn invalid_repo_exits_one_and_reports_everything() {
    let repo = broken_repo();
    let out = etl(&["validate", "--color", "never"], repo.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error[E0104]") && stderr.contains("did you mean `http`?"),
        "{stderr}"
    );
    assert!(stderr.contains("pipelines/hello.yaml:"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "no color when asked for none");
}

#[test]
fn json_format_is_a_stable_document_on_stdout() {
    let repo = broken_repo();
    let out = etl(&["validate", "--format", "json"], repo.path());
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["valid"], false);
    let first = &doc["diagnostics"][0];
    for key in [
        "code",
        "severity",
        "message",
        "file",
        "line",
        "column",
        "endLine",
        "endColumn",
        "expected",
        "help",
        "notes",
        "related",
    ] {
        assert!(first.get(key).is_some(), "missing {key} in {first}");
    }
}

#[test]
fn github_format_prints_workflow_annotations() {
    let repo = broken_repo();
    let out = etl(
        &["validate", "--format", "github", "--repo", "."],
        repo.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("E0104"))
        .expect("an annotation for E0104");
    assert!(
        line.starts_with("::error file=pipelines/hello.yaml,line="),
        "{line}"
    );
    assert!(line.contains("title=E0104"), "{line}");
}

#[test]
fn github_paths_include_the_repo_directory() {
    let parent = tempfile::tempdir().unwrap();
    let repo = parent.path().join("pipes");
    std::fs::create_dir(&repo).unwrap();
    etl::ops::init::init(&repo, None).unwrap();
    std::fs::write(
        repo.join("environments/dev.yaml"),
        "apiVersion: etl/v1alpha1\nkind: Environment\nmetadata: {name: dve}\nspec: {}\n",
    )
    .unwrap();
    let out = etl(
        &["validate", "--format", "github", "--repo", "pipes"],
        parent.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("file=pipes/environments/dev.yaml"),
        "{stdout}"
    );
}

#[test]
fn usage_errors_exit_two() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        etl(&["validate", "--repo", "does-not-exist"], dir.path())
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        etl(&["validate", "--format", "xml"], dir.path())
            .status
            .code(),
        Some(2)
    );
    assert_eq!(etl(&["no-such-command"], dir.path()).status.code(), Some(2));
}

#[test]
fn missing_project_is_reported_not_crashed() {
    let dir = tempfile::tempdir().unwrap();
    let out = etl(&["validate"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("E0004"));
}

#[test]
fn init_scaffolds_a_valid_repo_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out = etl(&["init", "new-repo"], dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let repo = dir.path().join("new-repo");
    assert_eq!(
        etl(&["validate", "--repo", "new-repo"], dir.path())
            .status
            .code(),
        Some(0)
    );
    std::fs::write(repo.join("etl.yaml"), "mine").unwrap();
    let again = etl(&["init", "new-repo"], dir.path());
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read_to_string(repo.join("etl.yaml")).unwrap(),
        "mine"
    );
}

#[test]
fn help_explains_each_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = etl(&["validate", "--help"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--format") && help.contains("Exit status"),
        "{help}"
    );
}

#[test]
fn inspect_judges_components_against_the_contract() {
    let ok = etl(
        &["inspect", "examples/iot-sensors/components/parse.wasm"],
        &root(),
    );
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        text.contains("export etl:pipeline/transform@0.1.0;") && text.contains("✓ satisfied"),
        "{text}"
    );

    let bad = etl(
        &["inspect", "tests/fixtures/components/bad-sockets.wasm"],
        &root(),
    );
    assert_eq!(bad.status.code(), Some(1));
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(
        text.contains("✗ imports wasi:sockets/tcp@") && text.contains("wasm32-unknown-unknown"),
        "{text}"
    );

    let not_wasm = etl(&["inspect", "README.md"], &root());
    assert_eq!(not_wasm.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&not_wasm.stderr).contains("is not WebAssembly"));

    assert_eq!(
        etl(&["inspect", "no-such.wasm"], &root()).status.code(),
        Some(2)
    );
    assert_eq!(
        etl(&["inspect", "README.md", "--allow", "not a grant"], &root())
            .status
            .code(),
        Some(2)
    );
}
