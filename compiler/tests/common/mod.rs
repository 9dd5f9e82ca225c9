//! Helpers shared by the integration tests of `etl` (compiler/tests/all) and `etl-cli`
//! (cli/tests/all, which includes this file by path). `edits.rs` beside it is included the same
//! way by the two test binaries with property tests.

// Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The example pipeline repo.
pub fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/iot-sensors")
}

/// `tests/fixtures/sub-pipelines`: `orders` → `audit` (reads step `parse`) → `replay` (reads
/// `audit`'s `nats` sink `trail`, on a subject per environment).
pub fn sub_pipelines() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sub-pipelines")
}

/// The applications of a repo compiled in memory, by environment and pipeline.
pub fn applications(
    repo: &Path,
) -> BTreeMap<String, BTreeMap<String, etl::build::emit::Application>> {
    let build = etl::build::build(repo, None, &Default::default()).unwrap();
    assert!(
        !build.validation.has_errors(),
        "{:?}",
        build.validation.diagnostics
    );
    build.plan.expect("a valid repo has a plan").deployments
}

/// Copies the directory tree `from` into `to` (created if missing).
pub fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Every file under `dir`, by relative path with `/` separators.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy();
                out.insert(rel.replace('\\', "/"), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Runs `command` with `stdin` as its standard input, and returns what it did.
pub fn output_with_stdin(command: &mut std::process::Command, stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The example compiled in memory, checked to have compiled cleanly into one pipeline, `sensor-ingest`, deployed to `dev`, `prod` and `staging`.
pub fn compiled_example() -> (etl::build::dist::Plan, BTreeMap<String, Vec<u8>>) {
    let build = etl::build::build(&example(), None, &Default::default()).unwrap();
    assert!(
        build.validation.diagnostics.is_empty(),
        "{:#?}",
        build.validation.diagnostics
    );
    let plan = build.plan.expect("a plan");
    let environments: Vec<&str> = plan.deployments.keys().map(String::as_str).collect();
    assert_eq!(environments, ["dev", "prod", "staging"]);
    for apps in plan.deployments.values() {
        assert_eq!(apps.keys().collect::<Vec<_>>(), ["sensor-ingest"]);
    }
    (plan, build.files)
}

/// The repo of outbound HTTP by policy: `tests/fixtures/egress` (pipeline `orders`, whose step
/// `price` calls out).
pub fn egress_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/egress")
}

/// The egress fixture compiled in memory, checked to have compiled cleanly.
pub fn compiled_egress() -> (etl::build::dist::Plan, BTreeMap<String, Vec<u8>>) {
    let build = etl::build::build(&egress_fixture(), None, &Default::default()).unwrap();
    assert!(
        build.validation.diagnostics.is_empty(),
        "{:#?}",
        build.validation.diagnostics
    );
    (build.plan.expect("a plan"), build.files)
}

/// `text` with what the harness and customer bytes decide masked: image digests (`@sha256:…`)
/// and application versions (`sha-…`), so a snapshot shows the shape, not the bytes.
pub fn masked(text: &str) -> String {
    /// `text` with each `prefix` followed by `len` lower-case hex digits replaced by
    /// `prefix…`.
    fn mask(text: &str, prefix: &str, len: usize) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let (before, from) = rest.split_at(at);
            out.push_str(before);
            let hex = &from[prefix.len()..];
            let digits = hex
                .bytes()
                .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
                .count();
            if digits >= len {
                out.push_str(prefix);
                out.push('…');
                rest = &hex[len..];
            } else {
                out.push_str(prefix);
                rest = hex;
            }
        }
        out.push_str(rest);
        out
    }
    mask(&mask(text, "sha256:", 64), "sha-", 12)
}

/// Secret keys of [`with_secrets`], with the test values its fixture gives them.
pub const SECRET_VALUES: [(&str, &str); 4] = [
    ("alerts-webhook-token", "Bearer fixture-token"),
    ("alerts-api-key", "fixture-api-key"),
    ("enrich-token", "fixture-enrich-token"),
    ("kafka-password", "fixture-kafka-password"),
];

/// Copies the example into `to` and gives it secrets in every place a secret can be: the
/// `alerts` webhook's `authorization` (as in the example) and a secret header
/// `header.X-Api-Key` beside a plain `header.X-Site`; a secret in `enrich`'s `config:`
/// (`token`); and a Kafka sink `to-kafka` whose `sasl_password` is a secret of its provider.
/// The fixture `tests/fan-out.yaml` gets `secrets:` with [`SECRET_VALUES`] and expects the
/// headers at `alerts`; the fixtures expect every valid reading at `to-kafka` too.
pub fn with_secrets(to: &Path) {
    copy(&example(), to);
    let edit = |file: &str, from: &str, into: &str| {
        let path = to.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, text.replacen(from, into, 1)).unwrap();
    };
    edit(
        "etl.yaml",
        "    messaging-nats: wasmcloud+builtin://messaging-nats\n",
        &format!(
            "    messaging-nats: wasmcloud+builtin://messaging-nats\n    messaging-kafka: \
             ghcr.io/wasmcloud/messaging-kafka:0.6.1@sha256:{}\n",
            "0".repeat(64)
        ),
    );
    edit(
        "pipelines/sensor-ingest.yaml",
        "        site: \"{{ vars.site }}\"\n",
        "        site: \"{{ vars.site }}\"\n        token: { secret: enrich-token }\n",
    );
    edit(
        "pipelines/sensor-ingest.yaml",
        "        authorization: { secret: alerts-webhook-token }   # never a literal token\n",
        "        authorization: { secret: alerts-webhook-token }   # never a literal token\n        \
         header.X-Api-Key: { secret: alerts-api-key }\n        header.X-Site: \"{{ vars.site }}\"\n",
    );
    let text = std::fs::read_to_string(to.join("pipelines/sensor-ingest.yaml")).unwrap();
    std::fs::write(
        to.join("pipelines/sensor-ingest.yaml"),
        format!(
            "{text}    - name: to-kafka\n      from: [parse]\n      connector: kafka\n      with:\n        \
             topic: iot.readings\n        hosts: kafka-1:9092\n        sasl_password: {{ secret: kafka-password }}\n"
        ),
    )
    .unwrap();
    let secrets: String = SECRET_VALUES
        .iter()
        .map(|(k, v)| format!("    {k}: {v}\n"))
        .collect();
    edit(
        "tests/fan-out.yaml",
        "  secrets:\n    alerts-webhook-token: Bearer test-token\n",
        &format!("  secrets:\n{secrets}"),
    );
    edit(
        "tests/fan-out.yaml",
        "          headers: { authorization: Bearer test-token, content-type: application/json }\n",
        "          headers:\n            authorization: Bearer fixture-token\n            \
         x-api-key: fixture-api-key\n            x-site: dev-bench\n            \
         content-type: application/json\n",
    );
    edit(
        "tests/fan-out.yaml",
        "    counts:\n",
        "      to-kafka:\n        - json: { sensor_id: t-101, celsius: 82.5, ts: \"2026-11-01T12:00:00Z\" }\n    \
         counts:\n",
    );
    // Every valid reading reaches the Kafka sink too.
    edit(
        "tests/filtered.yaml",
        "    counts:\n",
        "      to-kafka:\n        - json: { sensor_id: t-204, celsius: 75.5, ts: \"2026-11-01T12:00:05Z\" }\n    \
         counts:\n",
    );
    // The reading dead-lettered by enrich was parsed: it reaches the Kafka sink (from parse)
    // like the other one, and the alert of the other needs the API key's value too.
    edit(
        "tests/broken-sensor.yaml",
        "  secrets:\n    alerts-webhook-token: Bearer test-token\n",
        &format!("  secrets:\n{secrets}"),
    );
    edit(
        "tests/broken-sensor.yaml",
        "    deadLetters:\n",
        "      to-kafka:\n        - json: { sensor_id: broken-7, celsius: 91.5, ts: \"2026-11-01T12:00:00Z\" }\n        \
         - json: { sensor_id: t-101, celsius: 82.5, ts: \"2026-11-01T12:00:00Z\" }\n    \
         deadLetters:\n",
    );
}

/// `skopeo <args>` (an independent OCI client, installed by scripts/setup.sh): its stdout,
/// having succeeded.
pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo runs (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Builds the test-oracle crate `tests/<name>/` of the package under test (`compiler/tests/`
/// or `cli/tests/`; a workspace of its own, with its own lockfile: its dependencies cannot share
/// etl's) into `<target>/<name>`, beside the running test binary's target (a nested cargo cannot
/// share the running one's build lock), and returns its executable.
pub fn build_oracle(name: &str) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
        .join("Cargo.toml");
    let exe = std::env::current_exe().unwrap();
    // <target>/debug/deps/<test>-<hash>
    let target = exe.ancestors().nth(3).unwrap().join(name);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["build", "--quiet", "--locked", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building the {name} oracle failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target
        .join("debug")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// Strings that mean something else, or nothing, to a YAML parser when written plainly: every
/// emitter must give them back as exactly these strings.
pub const AWKWARD: &[&str] = &[
    "a: b",
    "# not a comment",
    "x #y",
    "line one\nline two\n",
    "trailing newline\n",
    "{{ vars.threshold }}",
    "{a: 1}",
    "[1, 2]",
    "yes",
    "no",
    "on",
    "off",
    "y",
    "true",
    "False",
    "null",
    "~",
    "",
    "012",
    "0x1F",
    "0o17",
    "1e3",
    "1_000",
    ".inf",
    "-.nan",
    "12:30:00",
    "2026-03-01",
    "  leading spaces",
    "trailing spaces  ",
    "\ttab",
    "- item",
    "? key",
    "&anchor",
    "*alias",
    "!tag",
    "%directive",
    "@at",
    "`backtick",
    "'single'",
    "\"double\"",
    "back\\slash",
    "|",
    ">",
    "---",
    "...",
    "é ünïcödé — ✓",
    "nul\u{1}control",
    "value # with a hash",
    "line one\nline two",
    "{{ x }}",
    "{a: b}",
    " ",
    " leading space",
    "trailing space ",
    "-.NaN",
    "1:20",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "`tick",
    "tab\there",
    "crlf\r\nend",
    "ünïcødé ✓",
];

/// Ref name → manifest digest, for every entry of the OCI image layout's `index.json`
/// (signatures `sha256-<hex>.sig` included).
pub fn layout_refs(layout: &Path) -> BTreeMap<String, String> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                m["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
