//! OCI: image layouts of Wasm artifacts ([`layout`]), the registry client ([`registry`]) and
//! cosign-compatible signatures ([`sign`]). Nothing here knows about pipelines.

pub mod layout;
pub mod registry;
pub mod sign;
