//! Property tests: whatever the bytes, the loader and checks return diagnostics, never panic, and
//! finish; alias expansion stays within the node budget. (`etl run` input is fuzzed in the
//! runtime's tests.)

use crate::common;
use crate::edits::{apply, edit};

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;

/// A run that takes longer than this is a hang, not slowness (no speed target is asserted here).
const HANG: Duration = Duration::from_secs(30);

/// A copy of the example repo in a temp dir, to overwrite one file of.
fn scratch_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy(&common::example(), dir.path());
    dir
}

/// Validates `repo` on another thread; fails the test on a panic or a hang.
fn validate_terminates(repo: &Path) -> Vec<etl::diag::Diagnostic> {
    let (tx, rx) = mpsc::channel();
    let repo = repo.to_owned();
    std::thread::spawn(move || {
        let result = std::panic::catch_unwind(|| etl::spec::validate(&repo).map(|v| v.diagnostics));
        let _ = tx.send(result);
    });
    match rx.recv_timeout(HANG) {
        Ok(Ok(Ok(diagnostics))) => diagnostics,
        Ok(Ok(Err(e))) => panic!("validate failed outside diagnostics: {e}"),
        Ok(Err(_)) => panic!("validate panicked"),
        Err(_) => panic!("validate did not finish within {HANG:?}"),
    }
}

const TARGETS: &[&str] = &[
    "etl.yaml",
    "pipelines/sensor-ingest.yaml",
    "environments/staging.yaml",
    "tests/fan-out.yaml",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_in_any_spec_file_give_diagnostics(target in prop::sample::select(TARGETS), bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let repo = scratch_repo();
        std::fs::write(repo.path().join(target), &bytes).unwrap();
        let diagnostics = validate_terminates(repo.path());
        for d in &diagnostics {
            prop_assert!(!d.message.is_empty());
        }
    }

    #[test]
    fn mutated_valid_specs_give_diagnostics(target in prop::sample::select(TARGETS), edits in prop::collection::vec(edit(), 1..8)) {
        let repo = scratch_repo();
        let path = repo.path().join(target);
        let original = std::fs::read(&path).unwrap();
        std::fs::write(&path, apply(original, &edits)).unwrap();
        let diagnostics = validate_terminates(repo.path());
        let text = etl::diag::render::json(&diagnostics);
        prop_assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
    }

    #[test]
    fn aliases_never_expand_past_the_node_budget(widths in prop::collection::vec(1..12usize, 1..10)) {
        let mut text = String::from("a0: &a0 [x]\n");
        for (i, width) in widths.iter().enumerate() {
            let refs = vec![format!("*a{i}"); *width].join(", ");
            text.push_str(&format!("a{}: &a{} [{refs}]\n", i + 1, i + 1));
        }
        let expanded: f64 = widths.iter().map(|w| *w as f64).product();
        match etl::spec::yaml::parse("t.yaml", &text) {
            Ok(_) => prop_assert!(expanded <= etl::spec::yaml::MAX_NODES as f64, "{} nodes accepted", expanded),
            Err(d) => prop_assert_eq!(d[0].code, etl::diag::Code::AliasBomb),
        }
    }
}

#[test]
fn unreadable_root_is_an_error_not_a_panic() {
    assert!(etl::spec::validate(Path::new("/nonexistent/etl-repo")).is_err());
    let file = tempfile::NamedTempFile::new().unwrap();
    assert!(matches!(
        etl::spec::validate(file.path()),
        Err(etl::spec::Error::NotADirectory(_))
    ));
}
