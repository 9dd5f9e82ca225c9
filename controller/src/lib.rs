//! `etl-controller`: a pull-based GitOps reconciler beside each lattice. It polls the tag of an
//! environment's deployment bundle (`etl::oci::bundle`), verifies the bundle's signature, and
//! brings the lattice to it — wasmCloud 1.x through wadm, v2 through the hosts' workload API —
//! then says what runs (`docs/controller.md`).

pub mod state;
pub mod workload;
