//! Stage `compose` on parts generated from WIT (dummy bodies, real types): the wiring, the
//! composed component's interface, and determinism.

use etl::build::compose::{self, Parts};
use wit_parser::Resolve;

const CONTRACT: &str = include_str!("../../../wit/etl-pipeline/pipeline.wit");

/// Stand-ins for the harness worlds, over a minimal broker interface.
const PARTS: &str = "package test:parts;
package test:broker {
    interface consumer { publish: func(subject: string, body: list<u8>) -> result<_, string>; }
    interface handler { handle: func(body: list<u8>) -> result<_, string>; }
}
interface emit {
    use etl:pipeline/types@0.1.0.{message};
    emit: func(outputs: list<message>) -> result<_, string>;
}
world settings { export etl:pipeline/types@0.1.0; export etl:pipeline/config@0.1.0; }
world out { import test:broker/consumer; export emit; }
world in { import etl:pipeline/transform@0.1.0; import emit; export test:broker/handler; }
world customer { import etl:pipeline/config@0.1.0; export etl:pipeline/transform@0.1.0; }
world greedy { import etl:pipeline/config@0.1.0; import test:broker/consumer; export etl:pipeline/transform@0.1.0; }
";

fn component(world: &str) -> Vec<u8> {
    let mut resolve = Resolve::new();
    resolve.push_str("contract.wit", CONTRACT).unwrap();
    let pkg = resolve.push_str("parts.wit", PARTS).unwrap();
    let world = resolve.select_world(&[pkg], Some(world)).unwrap();
    crate::dummy_component(&resolve, world)
}

fn composed(customer: &str) -> Vec<u8> {
    let (settings, customer, out, inbound) = (
        component("settings"),
        component(customer),
        component("out"),
        component("in"),
    );
    compose::compose(Parts {
        settings: &settings,
        customer: &customer,
        outbound: &out,
        inbound: &[&inbound],
        egress: None,
        msg_id: None,
    })
    .unwrap()
}

#[test]
fn a_step_composes_into_one_component_exporting_the_handler() {
    let bytes = composed("customer");
    let (imports, exports) = compose::interface_of(&bytes).unwrap();
    // Types, config, transform and emit are all satisfied inside; only the broker is left.
    assert_eq!(imports, ["test:broker/consumer"]);
    assert_eq!(exports, ["test:broker/handler"]);
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&bytes)
        .unwrap();
}

#[test]
fn composition_is_deterministic() {
    assert_eq!(composed("customer"), composed("customer"));
}

#[test]
fn a_customer_import_is_never_wired_to_a_platform_part() {
    // `greedy` imports the broker consumer itself. It must stay an import of the composition
    // (shared with the out part's by name) - which the capability policy refuses earlier - and
    // never be satisfied by the out part's own instance.
    let bytes = composed("greedy");
    let (imports, _) = compose::interface_of(&bytes).unwrap();
    assert_eq!(imports, ["test:broker/consumer"]);
}

#[test]
fn a_customer_that_does_not_fit_fails_with_a_reason() {
    let (settings, out, inbound) = (component("settings"), component("out"), component("in"));
    // The out part in the customer's place exports no `transform`: it must not leak as an import.
    match compose::compose(Parts {
        settings: &settings,
        customer: &out,
        outbound: &out,
        inbound: &[&inbound],
        egress: None,
        msg_id: None,
    }) {
        Ok(bytes) => panic!(
            "composed anyway; imports: {:?}",
            compose::interface_of(&bytes).map(|i| i.0)
        ),
        Err(e) => assert_eq!(
            e.to_string(),
            "nothing provides `etl:pipeline/transform@0.1.0` to the in part"
        ),
    }
}

/// A customer that reads the step's config and, besides, imports `interface` (a `wasi:config`
/// interface, granted by the policy).
fn customer_importing(interface: &str) -> Vec<u8> {
    let wit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/deps");
    let mut resolve = Resolve::new();
    resolve.push_str("contract.wit", CONTRACT).unwrap();
    resolve
        .push_dir(wit.join("wasi-config-0.2.0-draft"))
        .unwrap();
    resolve
        .push_dir(wit.join("wasi-config-0.2.0-rc.1"))
        .unwrap();
    let pkg = resolve
        .push_str(
            "customer.wit",
            &format!(
                "package test:customer; world c {{ import etl:pipeline/config@0.1.0; \
                 import {interface}; export etl:pipeline/transform@0.1.0; }}"
            ),
        )
        .unwrap();
    let world = resolve.select_world(&[pkg], Some("c")).unwrap();
    crate::dummy_component(&resolve, world)
}

/// A messaging step around `customer` for `generation`, with the real harness parts; its imports.
fn real_step(customer: &[u8], generation: etl::build::generation::Generation) -> Vec<String> {
    use etl::build::harness::Part;
    let bytes = compose::compose(Parts {
        settings: generation.settings().bytes(),
        customer,
        outbound: Part::OutMessaging.bytes(),
        inbound: &[Part::InMessaging.bytes()],
        egress: None,
        msg_id: None,
    })
    .unwrap();
    compose::interface_of(&bytes).unwrap().0
}

#[test]
fn each_generation_imports_only_the_config_interface_its_hosts_serve() {
    use etl::build::generation::Generation;
    let config = |imports: &[String]| -> Vec<String> {
        imports
            .iter()
            .filter(|i| i.starts_with("wasi:config/"))
            .cloned()
            .collect()
    };
    // The platform parts read `runtime`: the 1.x host serves it; in a v2 step the v2 settings
    // part does, from the host's `store`. A customer granted `runtime` reads the same on both.
    let customer = customer_importing("wasi:config/runtime@0.2.0-draft");
    assert_eq!(
        config(&real_step(&customer, Generation::V1)),
        ["wasi:config/runtime@0.2.0-draft"]
    );
    assert_eq!(
        config(&real_step(&customer, Generation::V2)),
        ["wasi:config/store@0.2.0-rc.1"]
    );
    // Any other config interface a customer imports stays its own import, which one of the
    // generations' hosts refuses (`etl compile` says so: E0711).
    let customer = customer_importing("wasi:config/store@0.2.0-rc.1");
    let v1 = config(&real_step(&customer, Generation::V1));
    assert!(
        v1.contains(&"wasi:config/store@0.2.0-rc.1".to_owned()),
        "{v1:?}"
    );
    assert!(!v1.iter().all(|i| Generation::V1.serves(i)));
    assert_eq!(
        config(&real_step(&customer, Generation::V2)),
        ["wasi:config/store@0.2.0-rc.1"]
    );
}

/// A customer that calls out: it imports `wasi:http/outgoing-handler` (and its types and
/// streams) at `version`, a `0.2.x` of `wasi:http` (its WASI packages are the vendored 0.2.12
/// ones, renamed).
fn customer_calling_out(version: &str) -> Vec<u8> {
    let deps = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/deps");
    let mut resolve = Resolve::new();
    resolve.push_str("contract.wit", CONTRACT).unwrap();
    for package in [
        "io",
        "clocks",
        "random",
        "filesystem",
        "sockets",
        "cli",
        "http",
    ] {
        let dir = deps.join(format!("wasi-{package}-0.2.12"));
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            // Renamed, and without the gates of the versions since (`@since(version = 0.2.12)`
            // of a 0.2.3, say).
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace("@0.2.12", &format!("@{version}"))
                .lines()
                .filter(|l| {
                    let l = l.trim_start();
                    !l.starts_with("@since(") && !l.starts_with("@deprecated(")
                })
                .collect::<Vec<_>>()
                .join("\n");
            resolve
                .push_str(path.file_name().unwrap().to_str().unwrap(), &text)
                .unwrap();
        }
    }
    let pkg = resolve
        .push_str(
            "customer.wit",
            &format!(
                "package test:customer; world c {{ import etl:pipeline/config@0.1.0; \
                 import wasi:http/outgoing-handler@{version}; export etl:pipeline/transform@0.1.0; }}"
            ),
        )
        .unwrap();
    let world = resolve.select_world(&[pkg], Some("c")).unwrap();
    crate::dummy_component(&resolve, world)
}

/// A messaging step around `customer` with the real harness parts, and the egress part when
/// `guarded`.
fn guarded_step(
    customer: &[u8],
    generation: etl::build::generation::Generation,
    guarded: bool,
) -> Result<Vec<u8>, compose::ComposeError> {
    use etl::build::harness::Part;
    compose::compose(Parts {
        settings: generation.settings().bytes(),
        customer,
        outbound: Part::OutMessaging.bytes(),
        inbound: &[Part::InMessaging.bytes()],
        egress: guarded.then(|| Part::Egress.bytes()),
        msg_id: None,
    })
}

#[test]
fn a_customer_that_calls_out_gets_the_guard_never_the_host() {
    use etl::build::generation::Generation;
    let customer = customer_calling_out("0.2.12");
    for generation in Generation::ALL {
        let bytes = guarded_step(&customer, generation, true).unwrap();
        let (imports, _) = compose::interface_of(&bytes).unwrap();
        let http: Vec<&String> = imports
            .iter()
            .filter(|i| i.starts_with("wasi:http/"))
            .collect();
        // The guard's import of the host's handler; the customer's types are the host's too.
        assert_eq!(
            http,
            [
                "wasi:http/types@0.2.12",
                "wasi:http/outgoing-handler@0.2.12"
            ],
            "{generation}"
        );
        let config: Vec<&str> = imports
            .iter()
            .filter(|i| i.starts_with("wasi:config/"))
            .map(String::as_str)
            .collect();
        assert_eq!(config, generation.served()[..1], "{generation}");
        // The same parts give the same bytes.
        assert_eq!(bytes, guarded_step(&customer, generation, true).unwrap());
        // Without the guard, nothing may serve the customer's import: not the host either.
        match guarded_step(&customer, generation, false) {
            Ok(_) => panic!("composed without the guard"),
            Err(e) => assert_eq!(
                e.to_string(),
                "nothing provides `wasi:http/outgoing-handler@0.2.12` to the customer component"
            ),
        }
    }
}

#[test]
fn the_guard_serves_a_customer_of_another_wasi_http_0_2() {
    use etl::build::generation::Generation;
    let customer = customer_calling_out("0.2.3");
    for generation in Generation::ALL {
        let bytes = guarded_step(&customer, generation, true)
            .unwrap_or_else(|e| panic!("{generation}: {e}"));
        let (imports, _) = compose::interface_of(&bytes).unwrap();
        let handlers: Vec<&String> = imports
            .iter()
            .filter(|i| i.starts_with("wasi:http/outgoing-handler"))
            .collect();
        assert_eq!(
            handlers,
            ["wasi:http/outgoing-handler@0.2.12"],
            "{generation}"
        );
    }
}

/// `delivery.nats_msg_id`: the wasmCloud 1.x artifact of every unit whose `out` part publishes
/// over NATS gets the `msg-id` part, and so imports `wasmcloud:messaging@0.3.0` (which only 1.x
/// hosts with `wasmcloud-messaging-v3` serve); the v2 artifacts, and the units that deliver over
/// HTTP, stay as they were. Without the setting, no artifact imports it.
#[test]
fn nats_msg_id_puts_the_msg_id_part_in_the_1x_artifacts_that_publish_over_nats() {
    use etl::build::generation::Generation;
    const PRODUCER: &str = "wasmcloud:messaging/producer@0.3.0";
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    crate::common::copy(&crate::common::example(), &repo);
    let build = |repo: &std::path::Path| {
        let build = etl::build::build(repo, None, &Default::default()).unwrap();
        assert!(
            !build.validation.has_errors(),
            "{:#?}",
            build.validation.diagnostics
        );
        build.plan.expect("a plan")
    };
    let before = build(&repo);
    let project = repo.join("etl.yaml");
    let text = std::fs::read_to_string(&project).unwrap();
    let edited = text.replacen(
        "\n  policy:\n",
        "\n  delivery:\n    nats_msg_id: true\n  policy:\n",
        1,
    );
    assert_ne!(edited, text);
    std::fs::write(&project, edited).unwrap();
    let after = build(&repo);
    let mut with_part = 0;
    for (old, new) in before.pipelines.iter().zip(&after.pipelines) {
        for (old, new) in old
            .steps
            .iter()
            .chain(&old.sinks)
            .zip(new.steps.iter().chain(&new.sinks))
        {
            let publishes = new.harness.out == "out-messaging";
            assert_eq!(new.harness.msg_id.is_some(), publishes, "{}", new.name);
            assert!(old.harness.msg_id.is_none(), "{}", old.name);
            let v1 = new.artifact_of(Generation::V1).unwrap();
            assert_eq!(
                v1.imports.iter().any(|i| i == PRODUCER),
                publishes,
                "{}",
                new.name
            );
            assert_eq!(
                v1.digest == old.artifact_of(Generation::V1).unwrap().digest,
                !publishes,
                "{}: the 1.x artifact changes exactly when it gets the part",
                new.name
            );
            for plan in [old, new] {
                let v2 = plan.artifact_of(Generation::V2).unwrap();
                assert!(
                    !v2.imports.iter().any(|i| i.contains("@0.3.0")),
                    "{}",
                    plan.name
                );
            }
            assert_eq!(
                new.artifact_of(Generation::V2).unwrap().digest,
                old.artifact_of(Generation::V2).unwrap().digest,
                "{}: v2 artifacts are untouched",
                new.name
            );
            let old_v1 = old.artifact_of(Generation::V1).unwrap();
            assert!(
                !old_v1.imports.iter().any(|i| i.contains("@0.3.0")),
                "{}",
                old.name
            );
            with_part += usize::from(publishes);
        }
    }
    assert!(
        with_part >= 3,
        "the example's steps and its nats sink: {with_part}"
    );
}
