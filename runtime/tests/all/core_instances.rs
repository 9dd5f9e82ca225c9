//! `coreInstances` in the plan, against wasmtime's own instance pool: an artifact instantiates in
//! a pool of exactly that many core instances per component, and not in one fewer. The figure
//! sizes `max_in_flight` on wasmCloud v2 hosts, whose pool is wasmtime's.

use std::path::Path;

use etl::build::dist::ArtifactPlan;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

/// Whether `bytes` instantiate with a pool of `per_component` core instances per component.
fn instantiates(bytes: &[u8], per_component: u32) -> Result<(), String> {
    let mut pool = PoolingAllocationConfig::default();
    pool.max_core_instances_per_component(per_component)
        .total_core_instances(per_component)
        .total_memories(per_component)
        .total_tables(per_component)
        .total_component_instances(1)
        .max_memory_size(64 << 20);
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config).map_err(|e| format!("{e:#}"))?;
    let component = Component::new(&engine, bytes).map_err(|e| format!("{e:#}"))?;
    let mut linker: Linker<()> = Linker::new(&engine);
    linker
        .define_unknown_imports_as_traps(&component)
        .map_err(|e| format!("{e:#}"))?;
    let mut store = Store::new(&engine, ());
    linker
        .instantiate(&mut store, &component)
        .map(drop)
        .map_err(|e| format!("{e:#}"))
}

#[test]
fn every_artifact_takes_exactly_its_core_instances_from_wasmtimes_pool() {
    check_repo("examples/iot-sensors", 10);
}

/// The same of a step that calls out: its egress part's core instances count too.
#[test]
fn a_step_that_calls_out_counts_its_egress_part_too() {
    check_repo("tests/fixtures/egress", 4);
}

/// Every artifact of the repo at `repo` (from the workspace root), `count` of them, takes
/// exactly its `coreInstances` from wasmtime's pool.
fn check_repo(repo: &str, count: usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(repo);
    let build = etl::build::build(&root, None, &Default::default()).unwrap();
    let plan = build.plan.expect("the repo compiles");
    let artifacts: Vec<&ArtifactPlan> = plan
        .pipelines
        .iter()
        .flat_map(|p| p.units())
        .flat_map(|u| u.artifacts().map(|(_, a)| a))
        .collect();
    assert_eq!(artifacts.len(), count);
    for a in artifacts {
        let bytes = &build.files[&a.path];
        let n = a.core_instances;
        assert!(n > 1, "{}: {n}", a.path);
        instantiates(bytes, n).unwrap_or_else(|e| panic!("{} in a pool of {n}: {e}", a.path));
        let short = instantiates(bytes, n - 1);
        assert!(
            short
                .as_ref()
                .is_err_and(|e| e.contains(&format!("contains {n} core module instances"))),
            "{} instantiated in a pool of {} core instances: {short:?}",
            a.path,
            n - 1
        );
    }
}
