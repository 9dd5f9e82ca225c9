//! What etl writes into the user's file system, through the real binary: an output directory
//! replaces only an earlier output (never the repo, an ancestor of it, the current directory, a
//! file or someone else's directory), leaves no staging directory behind, and `etl init` and
//! `etl keygen` never write over anything.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn etl(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .current_dir(cwd)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env_remove("ETL_SOURCE_URL")
        .output()
        .expect("etl runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One entry of a tree: a file's bytes, a directory, or a symbolic link's target.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    File(Vec<u8>),
    Dir,
    Link(PathBuf),
}

/// Everything under `dir`, hidden entries, empty directories and symbolic links included (links
/// are not followed).
fn snapshot(dir: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_symlink() {
                out.insert(rel, Entry::Link(std::fs::read_link(&path).unwrap()));
            } else if meta.is_dir() {
                out.insert(rel, Entry::Dir);
                walk(root, &path, out);
            } else {
                out.insert(rel, Entry::File(std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A workspace: `<top>/repo` (a copy of the example), `<top>/notes.txt`, `<top>/docs/` (someone
/// else's directory), `<top>/empty/`, and `<top>/link` → `repo`.
fn workspace() -> tempfile::TempDir {
    let top = tempfile::tempdir().unwrap();
    common::copy(&common::example(), &top.path().join("repo"));
    std::fs::write(top.path().join("notes.txt"), "my notes\n").unwrap();
    std::fs::create_dir(top.path().join("docs")).unwrap();
    std::fs::write(top.path().join("docs/plan.md"), "not etl's\n").unwrap();
    std::fs::create_dir(top.path().join("empty")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(top.path().join("repo"), top.path().join("link")).unwrap();
    top
}

/// `etl compile` with `args`, run in `cwd`, with a cache of its own under `top`.
fn compile(top: &Path, cwd: &Path, args: &[&str]) -> Output {
    let cache = top.join(".cache").display().to_string();
    let mut all = vec!["compile", "--color", "never", "--cache-dir", &cache];
    all.extend_from_slice(args);
    etl(&all, cwd)
}

/// Every refused `--out` exits 2 with its reason and leaves the whole workspace byte for byte
/// as it was, without a staging directory.
#[test]
fn compile_refuses_every_out_that_is_not_its_own_and_changes_nothing() {
    let top = workspace();
    let t = top.path();
    let repo = t.join("repo");
    let cases: Vec<(PathBuf, &str, &str)> = vec![
        (t.to_owned(), "repo", "is the pipeline repo"),
        (repo.clone(), ".", "is the pipeline repo"),
        (repo.clone(), "pipelines/..", "is the pipeline repo"),
        (t.to_owned(), "link", "is the pipeline repo"),
        (t.to_owned(), ".", "contains the pipeline repo"),
        (repo.clone(), "..", "contains the pipeline repo"),
        (t.to_owned(), "/", "contains the pipeline repo"),
        (t.to_owned(), "notes.txt", "exists and is not a directory"),
        (
            t.to_owned(),
            "docs",
            "is a directory that etl did not write",
        ),
        (
            repo.clone(),
            "pipelines",
            "is a directory that etl did not write",
        ),
        (repo.clone(), "etl.yaml", "exists and is not a directory"),
    ];
    let before = snapshot(t);
    for (cwd, out, reason) in cases {
        let repo_arg = repo.display().to_string();
        let out = compile(t, &cwd, &["--repo", &repo_arg, "--out", out]);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(text.contains(reason), "expected `{reason}`:\n{text}");
        assert_eq!(snapshot(t), before, "the workspace changed: {text}");
    }
}

#[test]
fn compile_replaces_an_earlier_output_and_an_empty_directory_only() {
    let top = workspace();
    let t = top.path();
    let args = |out: &str| ["--repo", "repo", "--out", out].map(str::to_owned);
    let run = |out: &str| {
        let a = args(out);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        compile(t, t, &a)
    };
    // New, then again over itself, with a stray file in it.
    let first = run("dist");
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(
        std::fs::read_to_string(t.join("dist/.etl-output")).unwrap(),
        etl::util::out_dir::MARKER_TEXT
    );
    let written = snapshot(&t.join("dist"));
    std::fs::write(t.join("dist/stray.txt"), "gone next time").unwrap();
    let again = run("dist");
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(
        snapshot(&t.join("dist")),
        written,
        "not replaced as a whole"
    );
    // An empty directory becomes an output.
    let empty = run("empty");
    assert_eq!(empty.status.code(), Some(0), "{}", stderr(&empty));
    assert_eq!(snapshot(&t.join("empty")), written);
    // Inside an earlier output, `--out .` is the current directory: refused, unchanged.
    let before = snapshot(t);
    let inside = compile(t, &t.join("dist"), &["--repo", "../repo", "--out", "."]);
    assert_eq!(inside.status.code(), Some(2), "{}", stderr(&inside));
    assert!(stderr(&inside).contains("contains the current directory"));
    assert_eq!(snapshot(t), before);
    // No staging or set-aside directory is left anywhere.
    let leftovers: Vec<String> = snapshot(t)
        .into_keys()
        .filter(|p| p.contains(".new-") || p.contains(".old-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A cache inside the output would make it a directory etl did not write by the time the compile
/// swaps it in: refused before any work, nothing created.
#[test]
fn compile_refuses_a_cache_inside_its_output() {
    let top = workspace();
    let t = top.path();
    let before = snapshot(t);
    let args = [
        "compile",
        "--repo",
        "repo",
        "--out",
        "dist",
        "--cache-dir",
        "dist/.cache",
    ];
    let out = etl(&args, t);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("the cache `dist/.cache` is inside the output `dist`"),
        "{text}"
    );
    assert_eq!(snapshot(t), before, "{text}");
}

/// `etl promote` rewrites DIST: it must be an etl output, checked before the registry is asked.
#[test]
fn promote_refuses_a_dist_that_etl_did_not_write() {
    let top = workspace();
    let t = top.path();
    let keygen = etl(&["keygen", "--out", "k"], t);
    assert!(keygen.status.success(), "{}", stderr(&keygen));
    std::fs::write(t.join("docs/plan.json"), r#"{"registry": "127.0.0.1:9/x"}"#).unwrap();
    let before = snapshot(t);
    for dist in ["docs", "notes.txt", "empty", "missing"] {
        let out = etl(
            &[
                "promote",
                "--from",
                "dev",
                "--to",
                "prod",
                "--key",
                "k.pub",
                "--registry",
                "127.0.0.1:9/x",
                dist,
            ],
            t,
        );
        assert_eq!(out.status.code(), Some(2), "{dist}: {}", stderr(&out));
        assert!(
            [
                "is not an `etl compile` output",
                "is not a directory",
                "does not exist"
            ]
            .iter()
            .any(|r| stderr(&out).contains(r)),
            "{dist}: {}",
            stderr(&out)
        );
        assert_eq!(snapshot(t), before, "{dist}");
    }
}

#[test]
fn init_names_the_project_after_its_directory() {
    let top = tempfile::tempdir().unwrap();
    let out = etl(&["init", "Télémétrie Repo"], top.path());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let project = std::fs::read_to_string(top.path().join("Télémétrie Repo/etl.yaml")).unwrap();
    assert!(project.contains("  name: telemetrie-repo\n"), "{project}");
    // In the current directory too.
    std::fs::create_dir(top.path().join("acme_pipes")).unwrap();
    let out = etl(&["init"], &top.path().join("acme_pipes"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let project = std::fs::read_to_string(top.path().join("acme_pipes/etl.yaml")).unwrap();
    assert!(project.contains("  name: acme_pipes\n"), "{project}");
}

/// A new repo works end to end before its author writes anything: validate, test, compile, run.
#[test]
fn an_initialized_repo_validates_tests_compiles_and_runs() {
    let top = tempfile::tempdir().unwrap();
    let t = top.path();
    let cache = t.join("cache").display().to_string();
    assert!(etl(&["init", "new"], t).status.success());
    let validate = etl(&["validate", "--repo", "new"], t);
    assert_eq!(validate.status.code(), Some(0), "{}", stderr(&validate));
    let test = etl(&["test", "--repo", "new", "--cache-dir", &cache], t);
    assert_eq!(
        test.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        stderr(&test)
    );
    let compile = etl(
        &[
            "compile",
            "--repo",
            "new",
            "--out",
            "new/dist",
            "--cache-dir",
            &cache,
        ],
        t,
    );
    assert_eq!(compile.status.code(), Some(0), "{}", stderr(&compile));
    let mut run = Command::new(env!("CARGO_BIN_EXE_etl"));
    run.args(["run", "hello", "--repo", "new", "--cache-dir", &cache])
        .current_dir(t);
    let out = common::output_with_stdin(&mut run, "{\"payload\": \"unchanged\"}\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", stderr(&out));
    assert!(stdout.contains("unchanged"), "{stdout}");
}

/// `etl init` writes nothing when anything is in the way, not even through a dangling link.
#[cfg(unix)]
#[test]
fn init_never_writes_through_a_dangling_symlink() {
    let top = tempfile::tempdir().unwrap();
    let t = top.path();
    std::fs::create_dir(t.join("new")).unwrap();
    std::os::unix::fs::symlink(t.join("elsewhere.yaml"), t.join("new/etl.yaml")).unwrap();
    let before = snapshot(t);
    let out = etl(&["init", "new"], t);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refusing to overwrite"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(t), before);
}

/// `examples/build-components.sh`, run on a copy of the sources at another path, gives exactly
/// the component `etl init` writes (and every example and fixture component as committed, their
/// digests pinned as committed): the scaffold's digest does not depend on where or by whom it
/// was built (a cold build, about a minute).
#[test]
fn the_init_component_reproduces() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("somewhere/else");
    for dir in [
        "wit",
        "examples/components",
        "examples/iot-sensors",
        "tests/fixtures/chaos",
        "tests/fixtures/sub-pipelines",
        "tests/fixtures/egress",
        "tests/fixtures/components",
    ] {
        common::copy(&root.join(dir), &copy.join(dir));
    }
    let _ = std::fs::remove_dir_all(copy.join("examples/components/target"));
    for file in ["rust-toolchain.toml", "examples/build-components.sh"] {
        std::fs::copy(root.join(file), copy.join(file)).unwrap();
    }
    let out = Command::new("bash")
        .arg(copy.join("examples/build-components.sh"))
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("example-components"),
        )
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::read(copy.join("compiler/assets/passthrough.wasm")).unwrap()
            == etl::ops::init::PASSTHROUGH_COMPONENT,
        "build-components.sh gave other bytes than the embedded passthrough"
    );
    for dir in [
        "examples/iot-sensors",
        "tests/fixtures/chaos",
        "tests/fixtures/sub-pipelines",
        "tests/fixtures/egress",
        "tests/fixtures/components",
    ] {
        assert!(
            common::tree(&copy.join(dir)) == common::tree(&root.join(dir)),
            "{dir} does not reproduce"
        );
    }
}
