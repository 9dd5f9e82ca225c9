//! The corpus of broken repos: every directory under `tests/fixtures/invalid/` is a small pipeline
//! repo with one problem (or, for the `multi-*` cases, several problems in several files). Each
//! is validated and its human-readable report is snapshot-tested next to it, as
//! `<case>/diagnostics.snap`.
//!
//! A few cases cannot be committed as files (a 10 MiB file, a symlink out of the repo, 100,000
//! nested brackets, a directory named like a spec file): they are generated in a temporary
//! directory here, and their snapshots live in `compiler/tests/all/snapshots/`.
//!
//! Update the snapshots with `INSTA_UPDATE=always cargo test -p etl --test all --
//! invalid_fixtures::`, then read every changed `.snap` as a reviewer would.

use std::path::{Path, PathBuf};

use etl::diag::render;
use etl::diag::{Code, Diagnostic};
use etl::spec::Validation;

/// At least this many committed cases: the corpus only grows.
const MIN_CASES: usize = 34;

/// `tests/fixtures/invalid` of the workspace, absolute, whatever the current directory.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/invalid")
        .canonicalize()
        .expect("tests/fixtures/invalid exists")
}

/// Every case directory, sorted by name.
fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures are readable")
        .map(|e| e.expect("fixture entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= MIN_CASES,
        "expected at least {MIN_CASES} cases, found {}",
        cases.len()
    );
    cases
}

fn case_name(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

pub(crate) fn validate(dir: &Path) -> Validation {
    etl::spec::validate(dir).unwrap_or_else(|e| panic!("{}: validate failed: {e}", dir.display()))
}

/// The report a person sees (`etl validate --color never`, repo-relative paths), with the repo
/// directory itself written `<repo>` so snapshots do not depend on where the checkout is.
pub(crate) fn report(dir: &Path, v: &Validation) -> String {
    let text = format!(
        "{}{}\n",
        render::human(
            &v.diagnostics,
            v.sources(),
            &render::Paths::default(),
            false
        ),
        render::summary(&v.diagnostics, "repo")
    );
    text.replace(&dir.display().to_string(), "<repo>")
}

/// Diagnostics that may legitimately have no span: they are about a file (or the repo) as a
/// whole.
fn may_lack_span(d: &Diagnostic) -> bool {
    match d.code {
        Code::NoProject | Code::TooLarge | Code::EmptyFile => true,
        // A spec file linked out of the repo is refused unread: there is no text to point into.
        Code::PathEscapes => d.message.ends_with("is a symbolic link out of the repo"),
        Code::NotUtf8 => d.location.as_ref().is_some_and(|l| l.span.is_none()),
        _ => false,
    }
}

/// The invariants every report of a broken repo keeps.
fn check_invariants(name: &str, v: &Validation, text: &str) {
    assert!(
        !v.diagnostics.is_empty(),
        "{name}: a broken repo must produce at least one diagnostic"
    );
    for d in &v.diagnostics {
        if d.code != Code::NoProject {
            assert!(
                d.location.is_some(),
                "{name}: {} has no location: {d:?}",
                d.code
            );
        }
        if !may_lack_span(d) {
            assert!(
                d.location.as_ref().is_some_and(|l| l.span.is_some()),
                "{name}: {} has no span: {d:?}",
                d.code
            );
        }
        assert!(Code::ALL.contains(&d.code), "{name}: unlisted {}", d.code);
    }
    // The codes as printed, e.g. `error[E0201]`, are all stable codes.
    let listed: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    for line in text.lines() {
        for prefix in ["error[", "warning["] {
            if let Some(rest) = line.strip_prefix(prefix) {
                let code = rest.split(']').next().unwrap_or_default();
                assert!(
                    listed.contains(&code),
                    "{name}: printed code `{code}` is not in Code::ALL"
                );
            }
        }
    }
}

#[test]
fn every_invalid_fixture_matches_its_snapshot() {
    for dir in cases() {
        let name = case_name(&dir);
        let v = validate(&dir);
        let text = report(&dir, &v);
        check_invariants(&name, &v, &text);
        insta::with_settings!({
            snapshot_path => dir.clone(),
            prepend_module_to_snapshot => false,
            omit_expression => true,
            description => format!("etl validate --repo tests/fixtures/invalid/{name}"),
        }, {
            insta::assert_snapshot!("diagnostics", text);
        });
    }
}

#[test]
fn every_invalid_fixture_renders_as_json() {
    for dir in cases() {
        let name = case_name(&dir);
        let v = validate(&dir);
        let text = render::json(&v.diagnostics);
        let doc: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{name}: JSON output does not parse: {e}\n{text}"));
        assert_eq!(
            doc["valid"],
            serde_json::Value::Bool(!v.has_errors()),
            "{name}: `valid` disagrees with the diagnostics"
        );
        assert_eq!(
            doc["diagnostics"].as_array().map(Vec::len),
            Some(v.diagnostics.len()),
            "{name}: every diagnostic is in the JSON"
        );
        let errors = v.diagnostics.iter().filter(|d| d.is_error()).count();
        assert_eq!(doc["errors"], serde_json::json!(errors), "{name}");
        assert_eq!(
            doc["warnings"],
            serde_json::json!(v.diagnostics.len() - errors),
            "{name}"
        );
    }
}

#[test]
fn every_invalid_fixture_reports_the_same_twice() {
    for dir in cases() {
        let first = report(&dir, &validate(&dir));
        let second = report(&dir, &validate(&dir));
        assert_eq!(
            first,
            second,
            "{}: output is not deterministic",
            case_name(&dir)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Generated cases.

pub(crate) const DIGEST: &str =
    "sha256:93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476";

const PROJECT: &str = "\
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
  environments:
    dev:
      lattice: shop-dev
";

pub(crate) fn pipeline() -> String {
    format!(
        "\
apiVersion: etl/v1alpha1
kind: Pipeline
metadata:
  name: orders
spec:
  source:
    name: ingest
    connector: http
    with: {{ path: /orders }}
  steps:
    - name: parse
      from: [ingest]
      component: components/parse.wasm
      digest: {DIGEST}
  sinks:
    - name: archive
      from: [parse]
      connector: nats
      with: {{ subject: orders.archive }}
"
    )
}

/// A minimal valid repo (one pipeline, one step) under `root/repo`.
fn minimal_repo(root: &Path) -> PathBuf {
    let repo = root.join("repo");
    std::fs::create_dir_all(repo.join("pipelines")).unwrap();
    std::fs::create_dir_all(repo.join("components")).unwrap();
    std::fs::write(repo.join("etl.yaml"), PROJECT).unwrap();
    std::fs::write(repo.join("pipelines/orders.yaml"), pipeline()).unwrap();
    std::fs::write(repo.join("components/parse.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let v = validate(&repo);
    assert!(
        v.diagnostics.is_empty(),
        "the base repo is valid: {}",
        report(&repo, &v)
    );
    repo
}

fn snapshot_generated(name: &str, repo: &Path) -> Validation {
    let v = validate(repo);
    let text = report(repo, &v);
    insta::with_settings!({
        omit_expression => true,
        description => format!("generated case `{name}`"),
    }, {
        insta::assert_snapshot!(name, text);
    });
    v
}

fn codes(v: &Validation) -> Vec<&'static str> {
    v.diagnostics.iter().map(|d| d.code.as_str()).collect()
}

#[test]
fn generated_ten_mib_pipeline_file() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = minimal_repo(tmp.path());
    let mut text = pipeline();
    let pad = 10 * 1024 * 1024 - text.len();
    text.push_str(&format!("# {}\n", "x".repeat(pad - 3)));
    assert_eq!(text.len(), 10 * 1024 * 1024);
    std::fs::write(repo.join("pipelines/orders.yaml"), text).unwrap();
    let v = snapshot_generated("generated_ten_mib_pipeline_file", &repo);
    assert_eq!(codes(&v), ["E0003"]);
    check_invariants("generated_ten_mib_pipeline_file", &v, "");
}

#[cfg(unix)]
#[test]
fn generated_component_symlink_out_of_repo() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = minimal_repo(tmp.path());
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("parse.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let link = repo.join("components/parse.wasm");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("../../outside/parse.wasm", &link).unwrap();
    assert!(link.is_file(), "the link resolves");
    let v = snapshot_generated("generated_component_symlink_out_of_repo", &repo);
    assert_eq!(codes(&v), ["E0305"]);
    check_invariants("generated_component_symlink_out_of_repo", &v, "");
}

#[cfg(unix)]
#[test]
fn generated_pipeline_file_symlink_out_of_repo() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = minimal_repo(tmp.path());
    let outside = tmp.path().join("private.yaml");
    std::fs::write(&outside, "secret-content-that-must-not-be-printed: 1\n").unwrap();
    std::os::unix::fs::symlink(&outside, repo.join("pipelines/leak.yaml")).unwrap();
    let v = snapshot_generated("generated_pipeline_file_symlink_out_of_repo", &repo);
    assert_eq!(codes(&v), ["E0305"]);
    let text = report(&repo, &v);
    assert!(
        !text.contains("secret-content"),
        "the linked file's content is never shown:\n{text}"
    );
    check_invariants("generated_pipeline_file_symlink_out_of_repo", &v, &text);
}

#[test]
fn generated_hundred_thousand_nested_brackets() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = minimal_repo(tmp.path());
    let text = format!(
        "apiVersion: etl/v1alpha1\nkind: Pipeline\nmetadata:\n  name: orders\nspec:\n  {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    std::fs::write(repo.join("pipelines/orders.yaml"), text).unwrap();
    let v = snapshot_generated("generated_hundred_thousand_nested_brackets", &repo);
    assert_eq!(codes(&v), ["E0013"]);
    check_invariants("generated_hundred_thousand_nested_brackets", &v, "");
}

#[test]
fn generated_directory_named_like_a_pipeline_file() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = minimal_repo(tmp.path());
    std::fs::create_dir_all(repo.join("pipelines/x.yaml")).unwrap();
    std::fs::write(repo.join("pipelines/x.yaml/README"), "not a spec file\n").unwrap();
    // Directories under `pipelines/` are not spec files, whatever their name: they are skipped.
    snapshot_generated("generated_directory_named_like_a_pipeline_file", &repo);
}

#[test]
fn generated_component_digest_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = minimal_repo(tmp.path());
    std::fs::write(repo.join("components/parse.wasm"), b"\0asm\x01\0\0\0\0").unwrap();
    let v = snapshot_generated("generated_component_digest_mismatch", &repo);
    assert_eq!(codes(&v), ["E0701"]);
    let d = &v.diagnostics[0];
    let actual = etl::util::digest::sha256(b"\0asm\x01\0\0\0\0");
    assert!(
        d.message.contains(DIGEST) && d.message.contains(&actual),
        "names both digests: {}",
        d.message
    );
    let span = d.location.as_ref().unwrap().span.unwrap();
    assert_eq!(
        (span.start.line, span.start.column),
        (14, 15),
        "at `digest:`"
    );
    check_invariants("generated_component_digest_mismatch", &v, "");
}

#[test]
fn generated_component_not_wasm() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = minimal_repo(tmp.path());
    // What `etl init` writes as a placeholder, pinned by its own digest: only the header is wrong.
    let placeholder = b"PLACEHOLDER: build your component and put it here\n";
    std::fs::write(repo.join("components/parse.wasm"), placeholder).unwrap();
    let spec = repo.join("pipelines/orders.yaml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replace(DIGEST, &etl::util::digest::sha256(placeholder)),
    )
    .unwrap();
    let v = snapshot_generated("generated_component_not_wasm", &repo);
    assert_eq!(codes(&v), ["E0702"]);
    check_invariants("generated_component_not_wasm", &v, "");
}

#[test]
fn generated_component_is_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = minimal_repo(tmp.path());
    std::fs::remove_file(repo.join("components/parse.wasm")).unwrap();
    std::fs::create_dir(repo.join("components/parse.wasm")).unwrap();
    let v = snapshot_generated("generated_component_is_a_directory", &repo);
    assert_eq!(codes(&v), ["E0306"]);
    assert!(v.diagnostics[0].message.contains("is a directory"));
    check_invariants("generated_component_is_a_directory", &v, "");
}

#[test]
fn generated_component_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = minimal_repo(tmp.path());
    std::fs::remove_file(repo.join("components/parse.wasm")).unwrap();
    let v = snapshot_generated("generated_component_missing", &repo);
    assert_eq!(codes(&v), ["E0306"]);
    assert!(v.diagnostics[0].message.contains("does not exist"));
    check_invariants("generated_component_missing", &v, "");
}

/// An `oci://` component is checked from the cache when it holds a copy, and is otherwise left
/// to `compile`: validating never pulls (the registry here does not exist).
#[test]
fn oci_components_are_checked_from_the_cache_only() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = minimal_repo(tmp.path());
    let placeholder = b"not wasm\n";
    let digest = etl::util::digest::sha256(placeholder);
    let reference = format!("oci://registry.invalid/etl/parse@sha256:{}", "a".repeat(64));
    let spec = repo.join("pipelines/orders.yaml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replace(DIGEST, &digest)
            .replace("components/parse.wasm", &reference),
    )
    .unwrap();
    let cache_dir = tmp.path().join("cache");
    let cache = etl::store::Cache::new(&cache_dir);
    let v = etl::spec::validate_with(&repo, Some(&cache)).unwrap();
    assert!(
        v.diagnostics.is_empty(),
        "nothing cached, nothing to say: {:?}",
        v.diagnostics
    );
    std::fs::create_dir_all(cache_dir.join("sha256")).unwrap();
    std::fs::write(
        cache_dir
            .join("sha256")
            .join(digest.trim_start_matches("sha256:")),
        placeholder,
    )
    .unwrap();
    let v = etl::spec::validate_with(&repo, Some(&cache)).unwrap();
    assert_eq!(codes(&v), ["E0702"]);
}

/// `minimal_repo` with a `prod` environment that lacks the `threshold` var `dev` defines, and the
/// step's `config` set to `config` (a YAML flow mapping).
fn repo_with_step_config(root: &Path, config: &str) -> PathBuf {
    let repo = minimal_repo(root);
    let project = PROJECT.replace(
        "      lattice: shop-dev\n",
        "      lattice: shop-dev\n      vars: { threshold: \"7\" }\n    prod:\n      lattice: shop-prod\n",
    );
    std::fs::write(repo.join("etl.yaml"), project).unwrap();
    let text = pipeline().replace(
        &format!("      digest: {DIGEST}\n"),
        &format!("      digest: {DIGEST}\n      config: {config}\n"),
    );
    std::fs::write(repo.join("pipelines/orders.yaml"), text).unwrap();
    repo
}

#[test]
fn templates_may_guard_a_var_with_default_or_is_defined() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with_step_config(
        tmp.path(),
        r#"{ limit: "{{ vars.threshold | default('50') }}", mode: "{% if vars.threshold is defined %}set{% else %}unset{% endif %}" }"#,
    );
    let v = validate(&repo);
    assert!(v.diagnostics.is_empty(), "{}", report(&repo, &v));
    let config = |env: &str| {
        let d = etl::build::deployment::deploy(&v.repo, env, "orders").unwrap();
        let step = &d.units[0].config;
        (step["step.limit"].clone(), step["step.mode"].clone())
    };
    assert_eq!(config("dev"), ("7".to_owned(), "set".to_owned()));
    assert_eq!(config("prod"), ("50".to_owned(), "unset".to_owned()));
}

#[test]
fn generated_template_unknown_filter() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with_step_config(
        tmp.path(),
        r#"{ limit: "{{ vars.threshold | defualt('50') }}" }"#,
    );
    let v = snapshot_generated("generated_template_unknown_filter", &repo);
    assert_eq!(codes(&v), ["E0403"]);
    assert_eq!(
        v.diagnostics[0].help.as_deref(),
        Some("did you mean `default`?")
    );
    check_invariants("generated_template_unknown_filter", &v, "");
}

/// Shared settings written once with an anchor and merged with `<<`: the repo validates, and a
/// problem in a merged entry is reported where the entry is written.
#[test]
fn merge_keys_share_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = minimal_repo(tmp.path());
    let spec = repo.join("pipelines/orders.yaml");
    let text = std::fs::read_to_string(&spec).unwrap().replace(
        "      with: { subject: orders.archive }\n",
        "      with:\n        <<: *common\n        subject: orders.archive\n",
    );
    let text = text.replace(
        "    with: { path: /orders }\n",
        "    with: &common { path: /orders }\n",
    );
    std::fs::write(&spec, &text).unwrap();
    let v = validate(&repo);
    assert!(v.diagnostics.is_empty(), "{}", report(&repo, &v));
    let sink = &v.repo.pipelines[0].spec.spec.sinks[0];
    assert_eq!(
        serde_json::to_value(&sink.with).unwrap(),
        serde_json::json!({"path": "/orders", "subject": "orders.archive"})
    );
    // A merge of a scalar is named as such, at the alias.
    std::fs::write(
        &spec,
        text.replace(
            "with: &common { path: /orders }",
            "with: { path: &common /orders }",
        ),
    )
    .unwrap();
    let v = validate(&repo);
    assert_eq!(codes(&v), ["E0103"], "{}", report(&repo, &v));
    assert!(v.diagnostics[0].message.contains("merge key"));
}
