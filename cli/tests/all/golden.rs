//! `golden/`: every text file `etl compile` writes for every example repo — `plan.json`, the wadm
//! and wasmCloud v2 manifests of every environment, and the OCI index, manifests and configs (of
//! the artifacts, and of each environment's deployment bundle, whose config is its facts) — as
//! insta snapshots. A change to emitted output shows up as a snapshot diff in review.
//!
//! Also here: the same inputs give the same bytes whatever the directory, the time zone and
//! the order the repo's files were created in; and input the emitters cannot express is a
//! diagnostic before anything is written.
//!
//! Update with `INSTA_UPDATE=always cargo test -p etl-cli --test all -- golden::`, then read
//! every changed `golden/**/*.snap` as a reviewer would.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use etl::oci::layout::Provenance;
use etl::ops::compile::{self, Options};

/// The provenance plan.json records: fixed, so it does not follow the etl repo's commits.
fn provenance() -> Provenance {
    Provenance {
        created: 1_700_000_000,
        source: Some("https://git.acme.example/platform/pipelines".to_owned()),
        revision: Some("0123456789abcdef0123456789abcdef01234567".to_owned()),
    }
}

/// Every example repo: the directories of `examples/` that hold an `etl.yaml`.
fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut repos: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("etl.yaml").is_file())
        .collect();
    repos.sort();
    assert!(
        !repos.is_empty(),
        "no example repos under {}",
        dir.display()
    );
    repos
}

fn compile_into(repo: &Path, out: &Path) -> compile::Compilation {
    let options = Options {
        out: out.to_owned(),
        cache: None,
        provenance: provenance(),
    };
    compile::compile(repo, &options).unwrap()
}

/// The snapshot name of a dist file: its path with `/` as `__`.
fn snapshot_name(path: &str) -> String {
    path.replace('/', "__")
}

#[test]
fn golden_outputs_of_every_example() {
    for repo in examples() {
        let name = repo.file_name().unwrap().to_string_lossy().into_owned();
        let tmp = tempfile::tempdir().unwrap();
        let dist = tmp.path().join("dist");
        let c = compile_into(&repo, &dist);
        assert!(
            c.plan.is_some(),
            "{name} does not compile: {:#?}",
            c.validation.diagnostics
        );
        let files = common::tree(&dist);
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../golden")
                .join(&name),
        );
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.bind(|| {
            let mut snapshotted = 0;
            for (path, bytes) in &files {
                // Binary components are pinned by digest in plan.json; blobs are content-named,
                // so manifests and configs are snapshotted by repository below.
                if path.starts_with("components/") || path.starts_with("oci/blobs/") {
                    continue;
                }
                let text = String::from_utf8(bytes.clone())
                    .unwrap_or_else(|_| panic!("{path} is not text"));
                insta::assert_snapshot!(snapshot_name(path), text);
                snapshotted += 1;
            }
            // Each artifact's and bundle's manifest and config, named by repository (blob names
            // change whenever their content does, which would hide the diff); a bundle's layers
            // are the manifests of its environment, snapshotted above.
            let index: serde_json::Value =
                serde_json::from_slice(&files["oci/index.json"]).unwrap();
            for m in index["manifests"].as_array().unwrap() {
                let repository = m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap();
                let blob = |digest: &str| {
                    let hex = digest.trim_start_matches("sha256:");
                    let bytes = &files[&format!("oci/blobs/sha256/{hex}")];
                    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap();
                    serde_json::to_string_pretty(&value).unwrap()
                };
                let manifest = blob(m["digest"].as_str().unwrap());
                let config_digest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
                let config = blob(config_digest["config"]["digest"].as_str().unwrap());
                insta::assert_snapshot!(format!("oci__{repository}__manifest.json"), manifest);
                insta::assert_snapshot!(format!("oci__{repository}__config.json"), config);
                snapshotted += 2;
            }
            assert!(snapshotted > 0);
        });
    }
}

/// Copies `from` to `to` creating files in the reverse of the usual order, so directory
/// listing order (which some filesystems keep by creation) differs from a plain copy.
fn copy_reversed(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.file_name()));
    for e in entries {
        if e.file_type().unwrap().is_dir() {
            copy_reversed(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn the_same_inputs_give_the_same_bytes_anywhere_anytime() {
    let etl = env!("CARGO_BIN_EXE_etl");
    for repo in examples() {
        let mut trees = Vec::new();
        for (i, tz) in ["UTC", "Pacific/Chatham"].into_iter().enumerate() {
            let tmp = tempfile::tempdir().unwrap();
            let copy = tmp.path().join(format!("repo-{i}"));
            if i == 0 {
                common::copy(&repo, &copy);
            } else {
                copy_reversed(&repo, &copy);
            }
            let dist = tmp.path().join(format!("out-{i}"));
            let out = Command::new(etl)
                .args(["compile", "--no-cache", "--repo"])
                .arg(&copy)
                .arg("--out")
                .arg(&dist)
                .env("TZ", tz)
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .env_remove("ETL_SOURCE_URL")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            trees.push(common::tree(&dist));
        }
        assert_eq!(
            trees[0].keys().collect::<Vec<_>>(),
            trees[1].keys().collect::<Vec<_>>()
        );
        for (path, bytes) in &trees[0] {
            assert!(
                trees[1][path] == *bytes,
                "{path} differs between the two compiles of {}",
                repo.display()
            );
        }
    }
}

/// Compiles a copy of the example after `edit`, expecting it to fail with `code`; returns the
/// messages, and checks that nothing was written.
fn refused(edit: impl FnOnce(&Path), code: &str) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    common::copy(&common::example(), &repo);
    // Fixtures name steps; these cases are about the pipeline alone.
    std::fs::remove_dir_all(repo.join("tests")).unwrap();
    edit(&repo);
    let dist = tmp.path().join("dist");
    let c = compile_into(&repo, &dist);
    assert!(c.plan.is_none(), "compiled anyway");
    assert!(!dist.exists(), "a failed compile wrote {}", dist.display());
    let messages: Vec<String> = c
        .validation
        .diagnostics
        .iter()
        .filter(|d| d.code.as_str() == code)
        .map(|d| {
            let at = d
                .location
                .as_ref()
                .map(|l| {
                    let line = l.span.map(|s| s.start.line).unwrap_or_default();
                    format!("{}:{line}", l.file)
                })
                .unwrap_or_default();
            format!("{at}: {}", d.message)
        })
        .collect();
    assert!(
        !messages.is_empty(),
        "no {code}: {:#?}",
        c.validation.diagnostics
    );
    messages
}

fn edit_pipeline(repo: &Path, from: &str, to: &str) {
    let path = repo.join("pipelines/sensor-ingest.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn a_step_named_like_a_provider_is_refused_before_writing() {
    let messages = refused(
        |repo| {
            edit_pipeline(repo, "name: enrich", "name: messaging-nats");
            edit_pipeline(repo, "from: [enrich]", "from: [messaging-nats]");
        },
        "E0801",
    );
    // One problem in every environment is one diagnostic that names them.
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(
        messages[0].contains("`messaging-nats`")
            && messages[0].contains("pipelines/sensor-ingest.yaml")
            && messages[0].ends_with("(environments `dev`, `staging`, `prod`)"),
        "{messages:#?}"
    );
}

#[test]
fn an_upper_case_step_name_is_refused_before_writing() {
    let messages = refused(
        |repo| {
            edit_pipeline(repo, "name: enrich", "name: Enrich");
            edit_pipeline(repo, "from: [enrich]", "from: [Enrich]");
        },
        "E0801",
    );
    assert!(
        messages.iter().any(|m| m.contains("sensor-ingest-Enrich")),
        "{messages:#?}"
    );
}

#[test]
fn an_http_source_feeding_two_steps_is_refused_before_writing() {
    let messages = refused(
        |repo| {
            edit_pipeline(
                repo,
                "from: [parse]\n      component: components/enrich.wasm",
                "from: [ingest]\n      component: components/enrich.wasm",
            )
        },
        "E0801",
    );
    assert!(
        messages.iter().any(|m| m.contains("`parse`, `enrich`")),
        "{messages:#?}"
    );
}

#[test]
fn a_connector_without_a_provider_image_is_refused_before_writing() {
    let messages = refused(
        |repo| {
            let path = repo.join("etl.yaml");
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.replace("    http-client: wasmcloud+builtin://http-client\n", "");
            std::fs::write(&path, text).unwrap();
        },
        "E0312",
    );
    assert!(
        messages.iter().any(|m| m.contains("`http-client`")),
        "{messages:#?}"
    );
}
