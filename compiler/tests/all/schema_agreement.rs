//! The JSON Schemas in `schema/` and the serde model in `model.rs` accept the same documents.
//!
//! Checked on every spec file of the examples and fixtures (both directions), and on systematic
//! mutations of the example (every field removed, retyped or joined by an unknown sibling).

use std::path::{Path, PathBuf};

use etl::spec::model::{EnvironmentOverride, Pipeline, Project, TestFixture};
use etl::spec::schema::{self, FileKind};
use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The kind of a spec file from its place in a pipeline repo.
fn kind_of(path: &Path) -> Option<FileKind> {
    let name = path.file_name()?.to_str()?;
    if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
        return None;
    }
    if name == "etl.yaml" {
        return Some(FileKind::Project);
    }
    match path.parent()?.file_name()?.to_str()? {
        "pipelines" => Some(FileKind::Pipeline),
        "environments" => Some(FileKind::Environment),
        "tests" => Some(FileKind::Test),
        _ => None,
    }
}

fn serde_accepts(kind: FileKind, doc: &Value) -> Result<(), String> {
    let r = match kind {
        FileKind::Project => serde_json::from_value::<Project>(doc.clone()).map(drop),
        FileKind::Pipeline => serde_json::from_value::<Pipeline>(doc.clone()).map(drop),
        FileKind::Environment => {
            serde_json::from_value::<EnvironmentOverride>(doc.clone()).map(drop)
        }
        FileKind::Test => serde_json::from_value::<TestFixture>(doc.clone()).map(drop),
    };
    r.map_err(|e| e.to_string())
}

fn spec_files(dir: &Path, out: &mut Vec<(PathBuf, FileKind)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() && !path.is_symlink() {
            spec_files(&path, out);
        } else if let Some(kind) = kind_of(&path) {
            out.push((path, kind));
        }
    }
}

#[test]
fn schema_and_model_agree_on_every_example_and_fixture() {
    let root = repo_root();
    let mut files = Vec::new();
    spec_files(&root.join("examples"), &mut files);
    spec_files(&root.join("tests/fixtures"), &mut files);
    assert!(files.len() >= 6, "found only {} spec files", files.len());
    let mut compared = 0;
    let mut disagreements = Vec::new();
    for (path, kind) in &files {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let Ok(tree) = etl::spec::yaml::parse("f.yaml", &text) else {
            continue;
        };
        let doc = tree.to_json();
        let by_schema = schema::is_valid(*kind, &doc);
        let by_model = serde_accepts(*kind, &doc);
        compared += 1;
        if by_schema != by_model.is_ok() {
            disagreements.push(format!(
                "{}: schema {by_schema}, model {by_model:?}",
                path.display()
            ));
        }
    }
    assert!(compared >= 6);
    assert!(
        disagreements.is_empty(),
        "schema and model disagree:\n{}",
        disagreements.join("\n")
    );
}

/// Every way of breaking one field of `doc`: removed, replaced by a value of each other type,
/// or given an unknown sibling.
fn mutations(doc: &Value) -> Vec<Value> {
    let replacements = [
        json!(null),
        json!(true),
        json!(7),
        json!(-1),
        json!(0),
        json!(1.5),
        json!("text"),
        json!([]),
        json!(["x"]),
        json!({}),
        json!({"secret": "k"}),
    ];
    let mut out = Vec::new();
    let mut paths = Vec::new();
    collect_paths(doc, &mut Vec::new(), &mut paths);
    for path in &paths {
        for r in &replacements {
            let mut m = doc.clone();
            *pointer_mut(&mut m, path) = r.clone();
            out.push(m);
        }
        let (last, parent) = path
            .split_last()
            .map_or((None, &path[..]), |(l, p)| (Some(l), p));
        let mut m = doc.clone();
        match (pointer_mut(&mut m, parent), last) {
            (Value::Object(map), Some(key)) => {
                map.shift_remove(key);
            }
            (Value::Array(items), Some(i)) => {
                items.remove(i.parse::<usize>().unwrap());
            }
            _ => continue,
        }
        out.push(m);
        let mut m = doc.clone();
        if let Value::Object(map) = pointer_mut(&mut m, path) {
            map.insert("unexpected".into(), json!(1));
            out.push(m);
        }
    }
    out
}

fn collect_paths(v: &Value, here: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(here.clone());
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                here.push(k.clone());
                collect_paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                here.push(i.to_string());
                collect_paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn pointer_mut<'a>(v: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(v, |v, seg| match v {
        Value::Object(map) => map.get_mut(seg).unwrap(),
        Value::Array(items) => &mut items[seg.parse::<usize>().unwrap()],
        _ => unreachable!(),
    })
}

#[test]
fn everything_the_schema_accepts_the_model_reads() {
    let root = repo_root().join("examples/iot-sensors");
    let mut files = Vec::new();
    spec_files(&root, &mut files);
    let (mut checked, mut accepted) = (0, 0);
    let mut failures = Vec::new();
    for (path, kind) in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let doc = etl::spec::yaml::parse("f.yaml", &text).unwrap().to_json();
        for m in mutations(&doc) {
            checked += 1;
            if schema::is_valid(*kind, &m) {
                accepted += 1;
                if let Err(e) = serde_accepts(*kind, &m) {
                    failures.push(format!(
                        "{}: schema accepts, model says {e}:\n{m}",
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(
        checked > 500 && accepted > 50,
        "only {checked} mutations, {accepted} accepted"
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} mutations:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
