//! OCI: the typed documents ([`manifest`]), image layouts of Wasm artifacts ([`layout`]), the
//! registry client ([`registry`]) and cosign-compatible signatures ([`sign`]). Nothing here
//! knows about pipelines.

pub mod layout;
pub mod manifest;
pub mod registry;
pub mod sign;
