//! The embedded platform harness components (`etl::build::harness`): each is a valid component
//! with exactly the imports and exports its world (`wit/etl-platform`) and the Rust standard
//! library for `wasm32-wasip2` give it, and `harness-components/build.sh` rebuilds them bit for
//! bit.

use std::path::Path;
use std::process::Command;

use etl::build::harness::Part;
use sha2::{Digest as _, Sha256};
use wac_types::{Package, Types};
use wasmparser::{Parser, Validator, WasmFeatures};

/// The interfaces every part imports because it is a Rust std build for `wasm32-wasip2` (the
/// standard library's start-up and panic output), whatever its world says. `wasi:io` comes in
/// the version of the `wasi:io` the world itself uses, if any (the component linker merges
/// semver-compatible imports into the newest): see [`std_imports`].
/// What the `msg-id` part imports: the host's messaging at both versions.
const MSG_ID_MESSAGING: [&str; 5] = [
    "wasmcloud:messaging/types@0.2.0",
    "wasmcloud:messaging/consumer@0.2.0",
    "wasmcloud:messaging/types@0.3.0",
    "wasmcloud:messaging/producer@0.3.0",
    "wasmcloud:messaging/request-reply@0.3.0",
];

const STD_CLI: [&str; 10] = [
    "wasi:cli/environment@0.2.6",
    "wasi:cli/exit@0.2.6",
    "wasi:cli/stdin@0.2.6",
    "wasi:cli/stdout@0.2.6",
    "wasi:cli/stderr@0.2.6",
    "wasi:cli/terminal-input@0.2.6",
    "wasi:cli/terminal-output@0.2.6",
    "wasi:cli/terminal-stdin@0.2.6",
    "wasi:cli/terminal-stdout@0.2.6",
    "wasi:cli/terminal-stderr@0.2.6",
];

/// `wasi:io` and `wasi:cli`, as a std build imports them, after `world`'s own imports.
fn std_imports(io_version: &str) -> Vec<String> {
    ["poll", "error", "streams"]
        .iter()
        .map(|i| format!("wasi:io/{i}@{io_version}"))
        .chain(STD_CLI.iter().map(|s| s.to_string()))
        .collect()
}

/// (imports, exports) of a component, as named at its top level, in order.
fn items(part: Part) -> (Vec<String>, Vec<String>) {
    let mut types = Types::default();
    let package = Package::from_bytes(part.name(), None, part.bytes(), &mut types)
        .unwrap_or_else(|e| panic!("{part} is not a component: {e:#}"));
    let world = &types[package.ty()];
    (
        world.imports.keys().cloned().collect(),
        world.exports.keys().cloned().collect(),
    )
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The imports and exports of every part, exactly, in the order the component lists them.
fn expected(part: Part) -> (Vec<String>, Vec<String>) {
    let (mut imports, exports): (Vec<String>, Vec<&str>) = match part {
        // Its clocks (the report's times, the retries' waits) bring `wasi:io/poll@0.2.12`, into
        // which std's `poll` is merged; std's `error` and `streams` stay at 0.2.6 (below).
        Part::InMessaging => (
            strings(&[
                "etl:pipeline/types@0.1.0",
                "etl:pipeline/transform@0.1.0",
                "etl:platform/emit@0.1.0",
                "wasmcloud:messaging/types@0.2.0",
                "wasmcloud:messaging/consumer@0.2.0",
                "wasi:io/poll@0.2.12",
                "wasi:clocks/monotonic-clock@0.2.12",
                "wasi:clocks/wall-clock@0.2.12",
                "wasi:config/runtime@0.2.0-draft",
            ]),
            vec!["wasmcloud:messaging/handler@0.2.0"],
        ),
        Part::InHttp => (
            strings(&[
                "etl:pipeline/types@0.1.0",
                "etl:pipeline/transform@0.1.0",
                "etl:platform/emit@0.1.0",
                "wasmcloud:messaging/types@0.2.0",
                "wasmcloud:messaging/consumer@0.2.0",
                "wasi:io/poll@0.2.12",
                "wasi:clocks/monotonic-clock@0.2.12",
                "wasi:clocks/wall-clock@0.2.12",
                "wasi:config/runtime@0.2.0-draft",
                "wasi:random/random@0.2.12",
            ]),
            vec!["wasi:http/incoming-handler@0.2.12"],
        ),
        Part::OutMessaging => (
            strings(&[
                "wasmcloud:messaging/types@0.2.0",
                "wasmcloud:messaging/consumer@0.2.0",
                "wasi:config/runtime@0.2.0-draft",
                "etl:pipeline/types@0.1.0",
            ]),
            vec!["etl:platform/emit@0.1.0"],
        ),
        // The monotonic clock bounds each request's waits (its `etl.out.request-timeout`).
        Part::OutHttp => (
            strings(&[
                "wasi:io/poll@0.2.12",
                "wasi:clocks/monotonic-clock@0.2.12",
                "wasi:io/error@0.2.12",
                "wasi:io/streams@0.2.12",
                "wasi:http/types@0.2.12",
                "wasi:http/outgoing-handler@0.2.12",
                "wasi:config/runtime@0.2.0-draft",
                "etl:platform/secrets@0.1.0",
                "etl:pipeline/types@0.1.0",
            ]),
            vec!["etl:platform/emit@0.1.0"],
        ),
        Part::OutBlobstore => (
            strings(&[
                "wasi:io/error@0.2.6",
                "wasi:io/poll@0.2.6",
                "wasi:io/streams@0.2.6",
                "wasi:blobstore/types@0.2.0-draft",
                "wasi:blobstore/container@0.2.0-draft",
                "wasi:blobstore/blobstore@0.2.0-draft",
                "wasi:config/runtime@0.2.0-draft",
                "etl:pipeline/types@0.1.0",
            ]),
            vec!["etl:platform/emit@0.1.0"],
        ),
        Part::Settings => (
            strings(&[
                "wasi:config/runtime@0.2.0-draft",
                "wasmcloud:secrets/store@0.1.0-draft",
                "wasmcloud:secrets/reveal@0.1.0-draft",
            ]),
            vec![
                "etl:pipeline/types@0.1.0",
                "etl:pipeline/config@0.1.0",
                "etl:platform/secrets@0.1.0",
            ],
        ),
        Part::SettingsV2 => (
            strings(&["wasi:config/store@0.2.0-rc.1"]),
            vec![
                "etl:pipeline/types@0.1.0",
                "etl:pipeline/config@0.1.0",
                "wasi:config/runtime@0.2.0-draft",
                "etl:platform/secrets@0.1.0",
            ],
        ),
        Part::Identity => (
            strings(&["etl:pipeline/types@0.1.0"]),
            vec!["etl:pipeline/transform@0.1.0"],
        ),
        // The host's outgoing handler, and the same interface served to the customer.
        Part::Egress => (
            strings(&[
                "wasi:io/poll@0.2.12",
                "wasi:io/error@0.2.12",
                "wasi:io/streams@0.2.12",
                "wasi:http/types@0.2.12",
                "wasi:http/outgoing-handler@0.2.12",
                "wasi:config/runtime@0.2.0-draft",
            ]),
            vec!["wasi:http/outgoing-handler@0.2.12"],
        ),
        // The host's messaging at both versions, and 0.2.0's consumer served to the out part.
        Part::MsgId => (
            strings(&MSG_ID_MESSAGING),
            vec!["wasmcloud:messaging/consumer@0.2.0"],
        ),
    };
    match part {
        // in-http's wasi:http brings the rest of wasi:io@0.2.12 before the std imports; std's
        // own wasi:io imports are merged into it.
        Part::InHttp => {
            imports.extend(strings(&[
                "wasi:io/error@0.2.12",
                "wasi:io/streams@0.2.12",
                "wasi:http/types@0.2.12",
            ]));
            imports.extend(STD_CLI.iter().map(|s| s.to_string()));
        }
        // out-http, out-blobstore and egress import wasi:io themselves (above); std adds only
        // wasi:cli.
        Part::OutHttp | Part::OutBlobstore | Part::Egress => {
            imports.extend(STD_CLI.iter().map(|s| s.to_string()))
        }
        Part::InMessaging => {
            imports.extend(strings(&["wasi:io/error@0.2.6", "wasi:io/streams@0.2.6"]));
            imports.extend(STD_CLI.iter().map(|s| s.to_string()));
        }
        _ => imports.extend(std_imports("0.2.6")),
    }
    (imports, strings(&exports))
}

#[test]
fn every_part_is_a_valid_component() {
    for part in Part::ALL {
        let bytes = part.bytes();
        assert!(Parser::is_component(bytes), "{part} is not a component");
        Validator::new_with_features(WasmFeatures::all())
            .validate_all(bytes)
            .unwrap_or_else(|e| panic!("{part} does not validate: {e}"));
    }
}

#[test]
fn every_part_imports_and_exports_exactly_what_its_world_and_std_give_it() {
    for part in Part::ALL {
        let (imports, exports) = items(part);
        let (want_imports, want_exports) = expected(part);
        assert_eq!(imports, want_imports, "imports of {part}");
        assert_eq!(exports, want_exports, "exports of {part}");
    }
}

#[test]
fn only_the_messaging_parts_and_the_reports_touch_the_broker_and_no_part_reaches_files_or_sockets()
{
    for part in Part::ALL {
        let (imports, exports) = items(part);
        let messaging = |names: &[String]| {
            names
                .iter()
                .filter(|n| n.starts_with("wasmcloud:messaging/"))
                .cloned()
                .collect::<Vec<_>>()
        };
        let (imported, exported) = match part {
            Part::InMessaging => (
                vec![
                    "wasmcloud:messaging/types@0.2.0",
                    "wasmcloud:messaging/consumer@0.2.0",
                ],
                vec!["wasmcloud:messaging/handler@0.2.0"],
            ),
            // Its reports.
            Part::InHttp => (
                vec![
                    "wasmcloud:messaging/types@0.2.0",
                    "wasmcloud:messaging/consumer@0.2.0",
                ],
                vec![],
            ),
            Part::OutMessaging => (
                vec![
                    "wasmcloud:messaging/types@0.2.0",
                    "wasmcloud:messaging/consumer@0.2.0",
                ],
                vec![],
            ),
            // What out-messaging publishes, with `Nats-Msg-Id` where it can.
            Part::MsgId => (
                MSG_ID_MESSAGING.to_vec(),
                vec!["wasmcloud:messaging/consumer@0.2.0"],
            ),
            _ => (vec![], vec![]),
        };
        assert_eq!(messaging(&imports), imported, "{part} imports");
        assert_eq!(messaging(&exports), exported, "{part} exports");
        for name in &imports {
            // in-http alone draws a random request key when the client sends no
            // `Idempotency-Key` (docs/harness.md, record ids).
            if part == Part::InHttp && name == "wasi:random/random@0.2.12" {
                continue;
            }
            for forbidden in ["wasi:filesystem/", "wasi:sockets/", "wasi:random/"] {
                assert!(!name.starts_with(forbidden), "{part} imports {name}");
            }
        }
        let http = imports.iter().any(|n| n.starts_with("wasi:http/"))
            || exports.iter().any(|n| n.starts_with("wasi:http/"));
        assert_eq!(
            http,
            matches!(part, Part::InHttp | Part::OutHttp | Part::Egress),
            "{part} and wasi:http"
        );
        // Only the settings parts serve secrets, and only the 1.x one reads the host's.
        let host_secrets = imports.iter().any(|n| n.starts_with("wasmcloud:secrets/"));
        assert_eq!(
            host_secrets,
            part == Part::Settings,
            "{part} and wasmcloud:secrets"
        );
        let serves = exports.iter().any(|n| n == "etl:platform/secrets@0.1.0");
        assert_eq!(
            serves,
            matches!(part, Part::Settings | Part::SettingsV2),
            "{part} and etl:platform/secrets"
        );
    }
}

#[test]
fn names_and_digests_are_consistent() {
    let mut names: Vec<&str> = Part::ALL.iter().map(|p| p.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), Part::ALL.len());
    for part in Part::ALL {
        let digest = part.digest();
        assert_eq!(digest, format!("sha256:{:x}", Sha256::digest(part.bytes())));
        assert_eq!(digest.len(), "sha256:".len() + 64);
        assert_eq!(part.to_string(), part.name());
        // Every part has a crate of its name in harness-components/.
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../harness-components")
            .join(part.name())
            .join("Cargo.toml");
        assert!(manifest.is_file(), "{} is missing", manifest.display());
    }
}

/// `harness-components/build.sh`, run on a copy of the sources at another path and in a fresh
/// target directory, gives exactly the embedded bytes: the harness digests do not depend on where
/// the repo is checked out or built (a cold build of the components, ~20–40 s).
#[test]
fn harness_digests_reproduce() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("somewhere/else");
    for dir in ["harness-components", "wit", "envelope/src"] {
        copy_sources(&root.join(dir), &copy.join(dir));
    }
    std::fs::copy(
        root.join("rust-toolchain.toml"),
        copy.join("rust-toolchain.toml"),
    )
    .unwrap();
    let target = tempfile::tempdir().unwrap();
    let output = Command::new("bash")
        .arg(copy.join("harness-components/build.sh"))
        .env("CARGO_TARGET_DIR", target.path())
        .output()
        .expect("cannot run harness-components/build.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "build.sh failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for part in Part::ALL {
        let file = target
            .path()
            .join("wasm32-wasip2/release")
            .join(format!("{}.wasm", part.name().replace('-', "_")));
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(
            format!("sha256:{:x}", Sha256::digest(&bytes)),
            part.digest(),
            "{part}: build.sh gave other bytes than the embedded ones"
        );
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(part.name()) && l.contains(&part.digest())),
            "build.sh does not print {part} {}:\n{stdout}",
            part.digest()
        );
    }
}

/// Copies a source tree, leaving out build output (`target/`).
fn copy_sources(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() == "target" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_sources(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
