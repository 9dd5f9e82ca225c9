//! OCI: the typed documents ([`manifest`]), deployment bundles ([`bundle`]), image layouts of Wasm artifacts ([`layout`]), the
//! registry client ([`registry`]), cosign-compatible signatures ([`sign`]) and the wascap
//! claims embedded in wasmCloud 1.x components ([`claims`]). Nothing here knows about pipelines.

pub mod bundle;
pub mod claims;
pub mod layout;
pub mod manifest;
pub mod registry;
pub mod sign;
