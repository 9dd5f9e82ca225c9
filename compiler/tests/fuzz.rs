//! Property tests: whatever the bytes, the loader and checks return diagnostics, never panic, and
//! finish; alias expansion stays within the node budget; `etl run` input is read or refused
//! with its position.

mod common;

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
        let result = std::panic::catch_unwind(|| etl::validate(&repo).map(|v| v.diagnostics));
        let _ = tx.send(result);
    });
    match rx.recv_timeout(HANG) {
        Ok(Ok(Ok(diagnostics))) => diagnostics,
        Ok(Ok(Err(e))) => panic!("validate failed outside diagnostics: {e}"),
        Ok(Err(_)) => panic!("validate panicked"),
        Err(_) => panic!("validate did not finish within {HANG:?}"),
    }
}

/// Characters that matter to YAML, templates and the checks, weighted into random edits.
const ALPHABET: &[u8] = b":-[]{}&*!|>'\"#\n\t %@`,?~\\01aZ_.{{}}/\xc3\xa9";

#[derive(Debug, Clone)]
enum Edit {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: Vec<u8> },
    DuplicateLine { line: usize },
    SwapLines { a: usize, b: usize },
    Truncate { at: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1..16usize).prop_map(|(at, len)| Edit::Delete { at, len }),
        (
            any::<usize>(),
            prop::collection::vec(prop::sample::select(ALPHABET), 1..12)
        )
            .prop_map(|(at, text)| Edit::Insert { at, text }),
        any::<usize>().prop_map(|line| Edit::DuplicateLine { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines { a, b }),
        any::<usize>().prop_map(|at| Edit::Truncate { at }),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len().max(1);
        match e {
            Edit::Delete { at, len } => {
                let at = at % n;
                let end = (at + len).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Edit::Insert { at, text } => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, text.iter().copied());
            }
            Edit::DuplicateLine { line } | Edit::SwapLines { a: line, .. } if bytes.is_empty() => {
                let _ = line;
            }
            Edit::DuplicateLine { line } => {
                let mut lines: Vec<Vec<u8>> =
                    bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                let i = line % lines.len();
                lines.insert(i, lines[i].clone());
                bytes = lines.join(&b'\n');
            }
            Edit::SwapLines { a, b } => {
                let mut lines: Vec<Vec<u8>> =
                    bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                let (i, j) = (a % lines.len(), b % lines.len());
                lines.swap(i, j);
                bytes = lines.join(&b'\n');
            }
            Edit::Truncate { at } => bytes.truncate(at % n),
        }
    }
    bytes
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
        let text = etl::render::json(&diagnostics);
        prop_assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
    }

    #[test]
    fn mutated_run_input_gives_records_or_a_positioned_error(edits in prop::collection::vec(edit(), 1..8)) {
        let valid = concat!(
            "{\"json\": {\"sensor\": \"t-1\", \"temp_c\": 82.5}, \"key\": \"k\"}\n",
            "{\"payload\": \"text\", \"headers\": {\"a\": \"b\"}}\n",
            "{\"base64\": \"AAEC/w==\"}\n",
        );
        let bytes = apply(valid.as_bytes().to_vec(), &edits);
        let text = String::from_utf8_lossy(&bytes);
        match etl::run::input::parse_lines("in.jsonl", &text) {
            Ok(records) => prop_assert!(records.len() <= text.lines().count()),
            Err(e) => {
                prop_assert!(e.line >= 1 && e.line <= text.lines().count(), "{e}");
                prop_assert!(e.column >= 1, "{e}");
                let prefix = format!("in.jsonl:{}:", e.line);
                prop_assert!(e.to_string().starts_with(&prefix), "{}", e);
            }
        }
    }

    #[test]
    fn aliases_never_expand_past_the_node_budget(widths in prop::collection::vec(1..12usize, 1..10)) {
        let mut text = String::from("a0: &a0 [x]\n");
        for (i, width) in widths.iter().enumerate() {
            let refs = vec![format!("*a{i}"); *width].join(", ");
            text.push_str(&format!("a{}: &a{} [{refs}]\n", i + 1, i + 1));
        }
        let expanded: f64 = widths.iter().map(|w| *w as f64).product();
        match etl::yaml::parse("t.yaml", &text) {
            Ok(_) => prop_assert!(expanded <= etl::yaml::MAX_NODES as f64, "{} nodes accepted", expanded),
            Err(d) => prop_assert_eq!(d[0].code, etl::diag::Code::AliasBomb),
        }
    }
}

#[test]
fn unreadable_root_is_an_error_not_a_panic() {
    assert!(etl::validate(Path::new("/nonexistent/etl-repo")).is_err());
    let file = tempfile::NamedTempFile::new().unwrap();
    assert!(matches!(
        etl::validate(file.path()),
        Err(etl::Error::NotADirectory(_))
    ));
}
