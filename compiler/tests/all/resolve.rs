//! Stage `resolve` on real components: the example's wit-bindgen builds, a std wasip2 build that
//! opens sockets, and components generated here from WIT that break the contract in one way each.

use crate::common;

use std::path::{Path, PathBuf};

use etl::build::resolve::{self, Origin};
use etl::diag::Code;
use etl::store::Cache;
use etl::store::fetch::RepoFiles;
use etl::util::digest::sha256;
use wit_parser::Resolve;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A copy of the example repo to break.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy(&common::example(), dir.path());
    dir
}

/// The codes `validate` reports, or when it finds nothing, those of resolving.
fn codes_of(repo: &Path) -> Vec<Code> {
    let v = etl::spec::validate(repo).unwrap();
    if v.has_errors() {
        return v.diagnostics.iter().map(|d| d.code).collect();
    }
    let (_, diagnostics) = resolve::resolve_repo(&v.repo, v.components, None);
    diagnostics.iter().map(|d| d.code).collect()
}

/// Replaces the parse component of a scratch repo and pins its digest, so only the bytes matter.
fn with_parse_component(repo: &Path, bytes: &[u8]) {
    let old = std::fs::read(repo.join("components/parse.wasm")).unwrap();
    std::fs::write(repo.join("components/parse.wasm"), bytes).unwrap();
    let spec = repo.join("pipelines/sensor-ingest.yaml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, text.replace(&sha256(&old), &sha256(bytes))).unwrap();
}

/// A component of `world` in the last of `sources` (WIT, pushed in order), with dummy bodies:
/// real types, no behaviour.
fn component_of(sources: &[&str], world: &str) -> Vec<u8> {
    let mut resolve = Resolve::new();
    let mut pkg = None;
    for (i, wit) in sources.iter().enumerate() {
        pkg = Some(resolve.push_str(format!("test{i}.wit"), wit).unwrap());
    }
    let pkg = pkg.unwrap();
    let world = resolve.select_world(&[pkg], Some(world)).unwrap();
    crate::dummy_component(&resolve, world)
}

const CONTRACT: &str = include_str!("../../../wit/etl-pipeline/pipeline.wit");

#[test]
fn the_example_resolves_cleanly_and_deterministically() {
    let v = etl::spec::validate(&common::example()).unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(cache_dir.path());
    let (steps, diagnostics) = resolve::resolve_repo(&v.repo, v.components, Some(&cache));
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    assert_eq!(steps.len(), 3);
    for s in &steps {
        assert_eq!(s.resolved.origin, Origin::CoreModule, "{}", s.step);
        assert!(s.resolved.contract.types_fit());
        assert!(
            s.resolved
                .contract
                .exports
                .contains(&"etl:pipeline/transform@0.1.0".to_owned())
        );
    }
    // Componentizing is deterministic: without the cache, and from it, the same bytes.
    let (again, _) = resolve::resolve_repo(&v.repo, Default::default(), None);
    let (cached, _) = resolve::resolve_repo(&v.repo, Default::default(), Some(&cache));
    for ((a, b), c) in steps.iter().zip(&again).zip(&cached) {
        assert_eq!(a.resolved.component_digest, b.resolved.component_digest);
        assert_eq!(a.resolved.component, c.resolved.component);
    }
}

#[test]
fn a_damaged_cache_entry_is_not_used() {
    let v = etl::spec::validate(&common::example()).unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(cache_dir.path());
    let (first, _) = resolve::resolve_repo(&v.repo, Default::default(), Some(&cache));
    for entry in std::fs::read_dir(cache_dir.path().join("componentized")).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let (second, diagnostics) = resolve::resolve_repo(&v.repo, Default::default(), Some(&cache));
    assert!(diagnostics.is_empty());
    assert_eq!(first[0].resolved.component, second[0].resolved.component);
}

#[test]
fn changed_bytes_are_refused_naming_both_digests() {
    let repo = scratch();
    let path = repo.path().join("components/enrich.wasm");
    let pinned = sha256(&std::fs::read(&path).unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.push(0);
    std::fs::write(&path, &bytes).unwrap();
    let v = etl::spec::validate(repo.path()).unwrap();
    let diagnostics = v.diagnostics;
    assert_eq!(diagnostics.len(), 1);
    let d = &diagnostics[0];
    assert_eq!(d.code, Code::DigestMismatch);
    assert!(
        d.message.contains(&pinned) && d.message.contains(&sha256(&bytes)),
        "{}",
        d.message
    );
    assert_eq!(
        d.location.as_ref().unwrap().file,
        "pipelines/sensor-ingest.yaml"
    );
}

#[test]
fn not_wasm_and_modules_without_metadata_are_refused() {
    let repo = scratch();
    with_parse_component(repo.path(), b"PLACEHOLDER: not a component\n");
    assert_eq!(codes_of(repo.path()), [Code::NotWasm]);
    with_parse_component(repo.path(), b"\0asm\x01\0\0\0");
    assert_eq!(codes_of(repo.path()), [Code::NoMetadata]);
}

#[test]
fn a_huge_file_is_refused_without_reading_it_all() {
    let repo = scratch();
    let huge = vec![0u8; 50 * 1024 * 1024];
    with_parse_component(repo.path(), &huge);
    assert_eq!(codes_of(repo.path()), [Code::ComponentTooLarge]);
}

#[test]
fn a_std_wasip2_build_with_sockets_is_refused_with_a_hint() {
    let bytes = std::fs::read(root().join("tests/fixtures/components/bad-sockets.wasm")).unwrap();
    let repo = scratch();
    with_parse_component(repo.path(), &bytes);
    let v = etl::spec::validate(repo.path()).unwrap();
    let (_, diagnostics) = resolve::resolve_repo(&v.repo, Default::default(), None);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    let d = &diagnostics[0];
    assert_eq!(d.code, Code::ForbiddenImport);
    assert!(
        d.notes.iter().any(|n| n.contains("wasi:sockets/tcp@")),
        "{:?}",
        d.notes
    );
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("wasm32-unknown-unknown")
    );
}

#[test]
fn grants_let_an_import_through() {
    let wit = format!(
        "{CONTRACT}\ninterface extra {{ ping: func(); }}\nworld logging-transformer {{ import config; import extra; export transform; }}\n"
    );
    let component = component_of(&[&wit], "logging-transformer");
    let resolved = resolve::prepare("c.wasm", component, None).unwrap();
    assert_eq!(
        resolved.contract.extra_imports,
        ["etl:pipeline/extra@0.1.0"]
    );
    assert!(!etl::ops::inspect::satisfies(&resolved, &[]));
    let grant = etl::spec::model::Grant::try_from("etl:pipeline/extra".to_owned()).unwrap();
    assert!(etl::ops::inspect::satisfies(&resolved, &[grant]));
}

#[test]
fn a_messaging_import_is_forbidden_before_composition() {
    // Composition would merge this import with the out harness's: it must not get that far.
    let sneaky = "package test:sneaky;
        package wasmcloud:messaging@0.2.0 {
            interface consumer { publish: func(subject: string, body: list<u8>) -> result<_, string>; }
        }
        world sneaky { import wasmcloud:messaging/consumer@0.2.0; export etl:pipeline/transform@0.1.0; }";
    let resolved =
        resolve::prepare("c.wasm", component_of(&[CONTRACT, sneaky], "sneaky"), None).unwrap();
    assert!(resolved.contract.types_fit());
    assert_eq!(
        resolved.contract.extra_imports,
        ["wasmcloud:messaging/consumer@0.2.0"]
    );
    assert!(!etl::ops::inspect::satisfies(&resolved, &[]));
}

#[test]
fn wrong_export_types_and_a_missing_export_are_named() {
    let renamed = CONTRACT.replace("payload: list<u8>", "body: list<u8>");
    let resolved =
        resolve::prepare("c.wasm", component_of(&[&renamed], "transformer"), None).unwrap();
    assert!(!resolved.contract.missing_transform);
    let names: Vec<&str> = resolved
        .contract
        .mismatched
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        names,
        ["etl:pipeline/transform@0.1.0", "etl:pipeline/types@0.1.0"]
    );
    let reason = &resolved.contract.mismatched[0].1;
    assert!(
        reason.contains("`payload`") && reason.contains("`body`"),
        "{reason}"
    );

    let exports_nothing = format!("{CONTRACT}\nworld nothing {{ import config; }}\n");
    let resolved =
        resolve::prepare("c.wasm", component_of(&[&exports_nothing], "nothing"), None).unwrap();
    assert!(resolved.contract.missing_transform);
}

#[test]
fn a_cached_oci_component_needs_no_registry() {
    let bytes = std::fs::read(common::example().join("components/parse.wasm")).unwrap();
    let digest = sha256(&bytes);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(cache_dir.path());
    let fetch = RepoFiles {
        root: Path::new("."),
        cache: Some(&cache),
    };
    // Nothing answers at `registry.invalid`: only the cache can give the bytes.
    let reference = format!("oci://registry.invalid/etl/parse@sha256:{}", "a".repeat(64));
    let entry = cache_dir
        .path()
        .join("sha256")
        .join(digest.trim_start_matches("sha256:"));
    std::fs::create_dir_all(entry.parent().unwrap()).unwrap();
    std::fs::write(&entry, &bytes).unwrap();
    let resolved = resolve::resolve(&reference, &digest, &fetch, Some(&cache)).unwrap();
    assert_eq!(resolved.digest, digest);
    assert_eq!(resolved.origin, Origin::CoreModule);
}

#[test]
fn compile_resolves_the_bytes_validate_read_without_reading_them_again() {
    let repo = scratch();
    let v = etl::spec::validate(repo.path()).unwrap();
    assert!(!v.has_errors(), "{:#?}", v.diagnostics);
    // Gone from disk: only the bytes validate read and checked can resolve it now.
    std::fs::remove_dir_all(repo.path().join("components")).unwrap();
    let (steps, diagnostics) = resolve::resolve_repo(&v.repo, v.components, None);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    assert_eq!(steps.len(), 3);
}

#[test]
fn a_granted_config_import_one_generation_does_not_serve_fails_the_compile() {
    let repo = scratch();
    let store =
        std::fs::read_to_string(root().join("wit/deps/wasi-config-0.2.0-rc.1/store.wit")).unwrap();
    let customer = "package test:c;
        world c { import wasi:config/store@0.2.0-rc.1; import etl:pipeline/config@0.1.0;
                  export etl:pipeline/transform@0.1.0; }";
    with_parse_component(
        repo.path(),
        &component_of(&[CONTRACT, &store, customer], "c"),
    );
    let project = repo.path().join("etl.yaml");
    let text = std::fs::read_to_string(&project).unwrap();
    std::fs::write(
        &project,
        text.replace("allow: []", "allow: [\"wasi:config/store@0.2.0-rc.1\"]"),
    )
    .unwrap();
    let build = etl::build::build(repo.path(), None, &Default::default()).unwrap();
    assert!(build.plan.is_none());
    let d = &build.validation.diagnostics;
    assert_eq!(
        d.iter().map(|d| d.code).collect::<Vec<_>>(),
        [Code::UnservedImport]
    );
    assert_eq!(
        d[0].message,
        "`parse` imports `wasi:config/store@0.2.0-rc.1`, which wasmCloud 1.x hosts do not serve: \
         they would refuse to start it"
    );
}

#[test]
fn a_granted_secrets_import_v2_hosts_do_not_serve_fails_the_compile() {
    // The 1.x host serves `wasmcloud:secrets@0.1.0-draft` (the 1.x settings part imports it
    // too); a v2 host does not, and delivers secrets as configuration instead.
    let repo = scratch();
    let secrets =
        std::fs::read_to_string(root().join("wit/deps/wasmcloud-secrets-0.1.0-draft/secrets.wit"))
            .unwrap();
    let secrets = format!("package wasmcloud:secrets@0.1.0-draft;\n{secrets}");
    let customer = "package test:c;
        world c { import wasmcloud:secrets/store@0.1.0-draft; import etl:pipeline/config@0.1.0;
                  export etl:pipeline/transform@0.1.0; }";
    with_parse_component(
        repo.path(),
        &component_of(&[CONTRACT, &secrets, customer], "c"),
    );
    let project = repo.path().join("etl.yaml");
    let text = std::fs::read_to_string(&project).unwrap();
    std::fs::write(
        &project,
        text.replace(
            "allow: []",
            "allow: [\"wasmcloud:secrets/store@0.1.0-draft\"]",
        ),
    )
    .unwrap();
    let build = etl::build::build(repo.path(), None, &Default::default()).unwrap();
    assert!(build.plan.is_none());
    let d = &build.validation.diagnostics;
    assert_eq!(
        d.iter().map(|d| d.code).collect::<Vec<_>>(),
        [Code::UnservedImport]
    );
    assert_eq!(
        d[0].message,
        "`parse` imports `wasmcloud:secrets/store@0.1.0-draft`, which wasmCloud v2 hosts do not \
         serve: they would refuse to start it"
    );
}
