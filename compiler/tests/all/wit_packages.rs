//! Every WIT package under `wit/` resolves: the customer contract (`etl-pipeline`), the
//! platform's internal package (`etl-platform`) and the vendored upstream packages (`deps/`).
//!
//! Pins the exact shape of the contract's `transformer` world and of every `etl:platform` world
//! (their full, elaborated imports and exports), so a change to a WIT file or a vendored package
//! shows up here rather than in a composed component.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use wit_parser::{
    Handle, PackageId, Resolve, Type, TypeDefKind, TypeOwner, UnresolvedPackageGroup, WorldItem,
};

fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("wit")
}

/// The directories under `wit/deps`, sorted.
fn dep_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(wit_dir().join("deps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn parse(dir: &Path) -> UnresolvedPackageGroup {
    UnresolvedPackageGroup::parse_dir(dir)
        .unwrap_or_else(|e| panic!("{} does not parse: {e:?}", dir.display()))
}

/// Loads everything under `wit/` into one `Resolve`: `etl-platform` as the main package, with
/// `etl-pipeline` and every `deps/*` package as its dependencies (sorted topologically by
/// `wit-parser`). Returns the resolve and the ids of `etl:pipeline` and `etl:platform`.
fn load_all() -> (Resolve, PackageId, PackageId) {
    load_main("etl-platform")
}

/// [`load_all`] with `main` (a directory of `wit/`) as the main package.
fn load_main(main: &str) -> (Resolve, PackageId, PackageId) {
    let wit = wit_dir();
    let mut deps = vec![parse(&wit.join("etl-pipeline"))];
    if main != "etl-platform" {
        deps.push(parse(&wit.join("etl-platform")));
    }
    deps.extend(dep_dirs().iter().map(|d| parse(d)));
    let mut resolve = Resolve::new();
    let platform = resolve
        .push_groups(parse(&wit.join(main)), deps)
        .unwrap_or_else(|e| panic!("wit/ does not resolve: {e:?}"));
    let pipeline = package(&resolve, "etl:pipeline@0.1.0");
    (resolve, pipeline, platform)
}

fn package(resolve: &Resolve, name: &str) -> PackageId {
    resolve
        .packages
        .iter()
        .find(|(_, p)| p.name.to_string() == name)
        .unwrap_or_else(|| panic!("package {name} not loaded"))
        .0
}

fn item_name(resolve: &Resolve, key: &wit_parser::WorldKey, item: &WorldItem) -> String {
    match item {
        WorldItem::Interface { .. } => resolve.name_world_key(key),
        WorldItem::Function(f) => format!("func {}", f.name),
        WorldItem::Type { .. } => format!("type {}", resolve.name_world_key(key)),
    }
}

/// The (elaborated) imports and exports of `world` in package `pkg`.
fn world_items(
    resolve: &Resolve,
    pkg: PackageId,
    world: &str,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let id = *resolve.packages[pkg]
        .worlds
        .get(world)
        .unwrap_or_else(|| panic!("world {world} missing"));
    let w = &resolve.worlds[id];
    let imports = w
        .imports
        .iter()
        .map(|(k, i)| item_name(resolve, k, i))
        .collect();
    let exports = w
        .exports
        .iter()
        .map(|(k, i)| item_name(resolve, k, i))
        .collect();
    (imports, exports)
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A type as WIT text; named types print as their name.
fn ty(resolve: &Resolve, t: &Type) -> String {
    match t {
        Type::Bool => "bool".into(),
        Type::U8 => "u8".into(),
        Type::U16 => "u16".into(),
        Type::U32 => "u32".into(),
        Type::U64 => "u64".into(),
        Type::S8 => "s8".into(),
        Type::S16 => "s16".into(),
        Type::S32 => "s32".into(),
        Type::S64 => "s64".into(),
        Type::F32 => "f32".into(),
        Type::F64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::ErrorContext => "error-context".into(),
        Type::Id(id) => {
            let def = &resolve.types[*id];
            if let Some(name) = &def.name {
                return name.clone();
            }
            match &def.kind {
                TypeDefKind::List(t) => format!("list<{}>", ty(resolve, t)),
                TypeDefKind::Option(t) => format!("option<{}>", ty(resolve, t)),
                TypeDefKind::Tuple(t) => format!(
                    "tuple<{}>",
                    t.types
                        .iter()
                        .map(|t| ty(resolve, t))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                TypeDefKind::Result(r) => {
                    let ok = r.ok.as_ref().map_or("_".into(), |t| ty(resolve, t));
                    match &r.err {
                        Some(e) => format!("result<{ok}, {}>", ty(resolve, e)),
                        None => format!("result<{ok}>"),
                    }
                }
                TypeDefKind::Handle(Handle::Own(t)) => ty(resolve, &Type::Id(*t)),
                TypeDefKind::Handle(Handle::Borrow(t)) => {
                    format!("borrow<{}>", ty(resolve, &Type::Id(*t)))
                }
                TypeDefKind::Type(t) => ty(resolve, t),
                other => panic!("unexpected anonymous type {other:?}"),
            }
        }
    }
}

/// The functions of interface `iface` of package `pkg`, as WIT signatures.
fn functions(resolve: &Resolve, pkg: PackageId, iface: &str) -> Vec<String> {
    let id = resolve.packages[pkg].interfaces[iface];
    resolve.interfaces[id]
        .functions
        .values()
        .map(|f| {
            let params = f
                .params
                .iter()
                .map(|p| format!("{}: {}", p.name, ty(resolve, &p.ty)))
                .collect::<Vec<_>>()
                .join(", ");
            match &f.result {
                Some(r) => format!("{}: func({params}) -> {}", f.name, ty(resolve, r)),
                None => format!("{}: func({params})", f.name),
            }
        })
        .collect()
}

/// The type named `name` in interface `iface` of package `pkg`, following `use` aliases back to
/// the interface that defines it: (defining interface, rendered definition).
fn type_def(resolve: &Resolve, pkg: PackageId, iface: &str, name: &str) -> (String, String) {
    let iface_id = resolve.packages[pkg].interfaces[iface];
    let mut id = resolve.interfaces[iface_id].types[name];
    while let TypeDefKind::Type(Type::Id(next)) = resolve.types[id].kind {
        id = next;
    }
    let def = &resolve.types[id];
    let owner = match def.owner {
        TypeOwner::Interface(i) => resolve.id_of(i).unwrap(),
        other => panic!("unexpected owner {other:?}"),
    };
    let body = match &def.kind {
        TypeDefKind::Record(r) => r
            .fields
            .iter()
            .map(|f| format!("{}: {}", f.name, ty(resolve, &f.ty)))
            .collect::<Vec<_>>()
            .join(", "),
        TypeDefKind::Variant(v) => v
            .cases
            .iter()
            .map(|c| match &c.ty {
                Some(t) => format!("{}({})", c.name, ty(resolve, t)),
                None => c.name.clone(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => panic!("unexpected kind {other:?}"),
    };
    (owner, body)
}

#[test]
fn every_vendored_dependency_resolves_on_its_own_name() {
    let (resolve, _, _) = load_all();
    // Each `deps/` directory is named after the package it holds: `<ns>-<name>-<version>`.
    for dir in dep_dirs() {
        let dir_name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let group = parse(&dir);
        assert!(group.nested.is_empty(), "{dir_name}: nested packages");
        let name = &group.main.name;
        let expected = format!(
            "{}-{}-{}",
            name.namespace,
            name.name,
            name.version
                .as_ref()
                .expect("vendored packages are versioned")
        );
        assert_eq!(dir_name, expected, "directory name does not match package");
        package(&resolve, &name.to_string());
    }
    let mut all: Vec<String> = resolve
        .packages
        .iter()
        .map(|(_, p)| p.name.to_string())
        .collect();
    all.sort();
    assert_eq!(
        all,
        [
            "etl:pipeline@0.1.0",
            "etl:platform@0.1.0",
            "wasi:blobstore@0.2.0-draft",
            "wasi:cli@0.2.12",
            "wasi:clocks@0.2.12",
            "wasi:config@0.2.0-draft",
            "wasi:config@0.2.0-rc.1",
            "wasi:filesystem@0.2.12",
            "wasi:http@0.2.12",
            "wasi:io@0.2.12",
            "wasi:io@0.2.6",
            "wasi:logging@0.1.0-draft",
            "wasi:random@0.2.12",
            "wasi:sockets@0.2.12",
            "wasmcloud:messaging@0.2.0",
            "wasmcloud:messaging@0.3.0",
            "wasmcloud:secrets@0.1.0-draft",
        ]
    );
}

#[test]
fn vendored_packages_are_documented() {
    let readme = std::fs::read_to_string(wit_dir().join("deps/README.md")).unwrap();
    for dir in dep_dirs() {
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert!(
            readme.contains(&format!("`{name}/`")),
            "wit/deps/README.md does not list {name}/"
        );
    }
}

#[test]
fn the_customer_contract_is_exact() {
    let (resolve, pipeline, _) = load_all();
    let names: BTreeSet<&str> = resolve.packages[pipeline]
        .worlds
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, BTreeSet::from(["transformer"]));
    let (imports, exports) = world_items(&resolve, pipeline, "transformer");
    // `import config; export transform;` — `types` is imported implicitly, because the exported
    // `transform` uses its types.
    assert_eq!(
        imports,
        set(&["etl:pipeline/config@0.1.0", "etl:pipeline/types@0.1.0"])
    );
    assert_eq!(exports, set(&["etl:pipeline/transform@0.1.0"]));

    assert_eq!(
        functions(&resolve, pipeline, "transform"),
        ["transform: func(input: message) -> result<list<message>, error>"]
    );
    assert_eq!(
        functions(&resolve, pipeline, "config"),
        [
            "get: func(key: string) -> option<string>",
            "get-all: func() -> list<tuple<string, string>>",
        ]
    );
    assert!(functions(&resolve, pipeline, "types").is_empty());
    assert_eq!(
        type_def(&resolve, pipeline, "types", "message"),
        (
            "etl:pipeline/types@0.1.0".into(),
            "key: option<list<u8>>, payload: list<u8>, headers: list<tuple<string, string>>".into()
        )
    );
    assert_eq!(
        type_def(&resolve, pipeline, "types", "error"),
        (
            "etl:pipeline/types@0.1.0".into(),
            "invalid(string), transient(string)".into()
        )
    );
}

#[test]
fn emit_hands_a_batch_of_contract_messages_from_in_to_out() {
    let (resolve, _, platform) = load_all();
    let ifaces: BTreeSet<&str> = resolve.packages[platform]
        .interfaces
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(ifaces, BTreeSet::from(["emit", "secrets"]));
    assert_eq!(
        functions(&resolve, platform, "emit"),
        ["deliver: func(outcomes: list<outcome>) -> result<_, string>"]
    );
    // One outcome per input record of the batch: its outputs, or its rejection.
    assert_eq!(
        type_def(&resolve, platform, "emit", "outcome"),
        (
            "etl:platform/emit@0.1.0".into(),
            "outputs(list<message>), invalid(rejected)".into()
        )
    );
    assert_eq!(
        type_def(&resolve, platform, "emit", "rejected").1,
        "input: message, reason: string"
    );
    // `message` is the contract's own type, not a copy.
    assert_eq!(
        type_def(&resolve, platform, "emit", "message").0,
        "etl:pipeline/types@0.1.0"
    );
}

#[test]
fn secrets_give_a_value_by_setting_name_or_say_why_not() {
    let (resolve, _, platform) = load_all();
    assert_eq!(
        functions(&resolve, platform, "secrets"),
        ["get: func(name: string) -> result<option<string>, string>"]
    );
}

#[test]
fn every_platform_world_resolves_with_exactly_its_items() {
    let (resolve, _, platform) = load_all();
    let http_types = [
        "wasi:io/poll@0.2.12",
        "wasi:io/error@0.2.12",
        "wasi:io/streams@0.2.12",
        "wasi:clocks/monotonic-clock@0.2.12",
        "wasi:http/types@0.2.12",
    ];
    let with = |base: &[&str], more: &[&str]| -> BTreeSet<String> {
        base.iter().chain(more).map(|s| s.to_string()).collect()
    };
    let expected: Vec<(&str, BTreeSet<String>, BTreeSet<String>)> = vec![
        (
            "in-messaging",
            set(&[
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
            set(&["wasmcloud:messaging/handler@0.2.0"]),
        ),
        (
            "in-http",
            with(
                &http_types,
                &[
                    "etl:pipeline/types@0.1.0",
                    "etl:pipeline/transform@0.1.0",
                    "etl:platform/emit@0.1.0",
                    "wasmcloud:messaging/types@0.2.0",
                    "wasmcloud:messaging/consumer@0.2.0",
                    "wasi:clocks/wall-clock@0.2.12",
                    "wasi:config/runtime@0.2.0-draft",
                    "wasi:random/random@0.2.12",
                ],
            ),
            set(&["wasi:http/incoming-handler@0.2.12"]),
        ),
        (
            "out-messaging",
            set(&[
                "etl:pipeline/types@0.1.0",
                "wasmcloud:messaging/types@0.2.0",
                "wasmcloud:messaging/consumer@0.2.0",
                "wasi:config/runtime@0.2.0-draft",
            ]),
            set(&["etl:platform/emit@0.1.0"]),
        ),
        (
            "out-http",
            with(
                &http_types,
                &[
                    "etl:pipeline/types@0.1.0",
                    "wasi:http/outgoing-handler@0.2.12",
                    "wasi:config/runtime@0.2.0-draft",
                    "etl:platform/secrets@0.1.0",
                ],
            ),
            set(&["etl:platform/emit@0.1.0"]),
        ),
        (
            "out-blobstore",
            set(&[
                "etl:pipeline/types@0.1.0",
                "wasi:io/poll@0.2.6",
                "wasi:io/error@0.2.6",
                "wasi:io/streams@0.2.6",
                "wasi:blobstore/types@0.2.0-draft",
                "wasi:blobstore/container@0.2.0-draft",
                "wasi:blobstore/blobstore@0.2.0-draft",
                "wasi:config/runtime@0.2.0-draft",
            ]),
            set(&["etl:platform/emit@0.1.0"]),
        ),
        (
            "settings",
            set(&[
                "wasi:config/runtime@0.2.0-draft",
                "wasmcloud:secrets/store@0.1.0-draft",
                "wasmcloud:secrets/reveal@0.1.0-draft",
            ]),
            // `types` too: its export satisfies every other part's import of the types-only
            // interface, which no host serves.
            set(&[
                "etl:pipeline/types@0.1.0",
                "etl:pipeline/config@0.1.0",
                "etl:platform/secrets@0.1.0",
            ]),
        ),
        (
            "identity",
            set(&["etl:pipeline/types@0.1.0"]),
            set(&["etl:pipeline/transform@0.1.0"]),
        ),
        (
            // The host's outgoing handler in, the same interface out (to the customer).
            "egress",
            with(
                &http_types,
                &[
                    "wasi:http/outgoing-handler@0.2.12",
                    "wasi:config/runtime@0.2.0-draft",
                ],
            ),
            set(&["wasi:http/outgoing-handler@0.2.12"]),
        ),
    ];

    let worlds: BTreeSet<&str> = resolve.packages[platform]
        .worlds
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        worlds,
        expected.iter().map(|(n, _, _)| *n).collect::<BTreeSet<_>>()
    );
    for (world, imports, exports) in expected {
        let (got_imports, got_exports) = world_items(&resolve, platform, world);
        assert_eq!(got_imports, imports, "imports of etl:platform/{world}");
        assert_eq!(got_exports, exports, "exports of etl:platform/{world}");
    }
}

#[test]
fn the_v2_settings_world_serves_the_1x_config_interface_from_the_v2_one() {
    let (resolve, _, v2) = load_main("etl-platform-v2");
    assert_eq!(
        resolve.packages[v2].name.to_string(),
        "etl:platform-v2@0.1.0"
    );
    let worlds: Vec<&str> = resolve.packages[v2]
        .worlds
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(worlds, ["settings"]);
    let (imports, exports) = world_items(&resolve, v2, "settings");
    assert_eq!(imports, set(&["wasi:config/store@0.2.0-rc.1"]));
    assert_eq!(
        exports,
        set(&[
            "etl:pipeline/types@0.1.0",
            "etl:pipeline/config@0.1.0",
            "wasi:config/runtime@0.2.0-draft",
            "etl:platform/secrets@0.1.0",
        ])
    );
    // The same functions and error cases (only the error type's name differs), so the 1.x
    // interface can be served from the v2 one call for call.
    let draft = package(&resolve, "wasi:config@0.2.0-draft");
    let rc = package(&resolve, "wasi:config@0.2.0-rc.1");
    let runtime: Vec<String> = functions(&resolve, draft, "runtime")
        .into_iter()
        .map(|f| f.replace("config-error", "error"))
        .collect();
    assert_eq!(runtime, functions(&resolve, rc, "store"));
    assert_eq!(
        type_def(&resolve, draft, "runtime", "config-error").1,
        type_def(&resolve, rc, "store", "error").1
    );
}

#[test]
fn the_msg_id_world_serves_the_out_parts_messaging_through_the_1x_hosts_0_3() {
    let (resolve, _, msg_id) = load_main("etl-platform-msg-id");
    assert_eq!(
        resolve.packages[msg_id].name.to_string(),
        "etl:platform-msg-id@0.1.0"
    );
    let (imports, exports) = world_items(&resolve, msg_id, "msg-id");
    assert_eq!(
        imports,
        set(&[
            "wasmcloud:messaging/types@0.2.0",
            "wasmcloud:messaging/consumer@0.2.0",
            "wasmcloud:messaging/types@0.3.0",
            "wasmcloud:messaging/producer@0.3.0",
            "wasmcloud:messaging/request-reply@0.3.0",
        ])
    );
    assert_eq!(exports, set(&["wasmcloud:messaging/consumer@0.2.0"]));
    // A message of 0.3.0 carries metadata (NATS headers on the 1.x host); 0.2.0's has none.
    let v3 = package(&resolve, "wasmcloud:messaging@0.3.0");
    let types = resolve.packages[v3].interfaces["types"];
    assert!(
        resolve.interfaces[types]
            .functions
            .contains_key("[method]message.add-metadata")
    );
}

#[test]
fn platform_worlds_use_the_host_interfaces_design_names() {
    // The composed component's final imports are what the hosts must serve (DESIGN.md):
    // `wasmcloud:messaging@0.2.0`, `wasi:http@0.2.x`, `wasi:config/runtime`, blobstore for
    // the s3 sink, the 1.x host's `wasmcloud:secrets` for the settings part, and `wasi:clocks`
    // for the in parts' reports and retries, `wasi:random` for in-http's request keys. No
    // harness world imports anything else from outside `etl:`.
    let (resolve, _, platform) = load_all();
    let allowed = [
        "wasmcloud:messaging/",
        "wasi:http/",
        "wasi:io/",
        "wasi:clocks/monotonic-clock@",
        "wasi:clocks/wall-clock@",
        "wasi:config/runtime@",
        "wasi:random/random@",
        "wasi:blobstore/",
        "wasmcloud:secrets/store@0.1.0-draft",
        "wasmcloud:secrets/reveal@0.1.0-draft",
        "etl:",
    ];
    for (name, id) in &resolve.packages[platform].worlds {
        for (key, item) in &resolve.worlds[*id].imports {
            let import = item_name(&resolve, key, item);
            assert!(
                allowed.iter().any(|p| import.starts_with(p)),
                "world {name} imports {import}"
            );
        }
    }
}
