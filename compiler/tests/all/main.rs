//! The integration tests of the `etl` library, in one test binary (`cargo test -p etl --test
//! all`): each module is one subject; `common` holds the helpers they share with the CLI's tests.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/edits.rs"]
mod edits;

mod batching;
mod claims;
mod compose;
mod delivery;
mod fuzz;
mod harness;
mod invalid_fixtures;
mod k8s;
mod lattice;
mod layering;
mod oci;
mod resolve;
mod schema_agreement;
mod wadm;
mod wit_packages;

/// A component of `world` with dummy bodies: real types, no behaviour. (Here, not in `common`:
/// it needs wit-component's `dummy-module` feature, a dev-dependency of this crate only.)
pub fn dummy_component(resolve: &wit_parser::Resolve, world: wit_parser::WorldId) -> Vec<u8> {
    let mut module =
        wit_component::dummy_module(resolve, world, wit_parser::ManglingAndAbi::Standard32);
    wit_component::embed_component_metadata(
        &mut module,
        resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap()
}
