//! The lattice a controller drives, whichever generation: wasmCloud 1.x through wadm
//! ([`crate::wadm`]) or v2 through the hosts' workload API ([`crate::workload`]). Both look
//! without changing anything ([`Lattice::observe`]) or bring the lattice to a bundle
//! ([`Lattice::apply`]), and say where each application stands.

use etl::oci::bundle::Bundle;

use crate::state::AppState;
use crate::{wadm, workload};

/// The applier of a generation.
#[expect(
    clippy::large_enum_variant,
    reason = "one per process, never moved after it is made"
)]
pub enum Lattice {
    /// wasmCloud 1.x: wadm's API.
    V1(wadm::Wadm),
    /// wasmCloud v2: the hosts' workload API.
    V2(workload::Workloads),
}

/// Why the lattice could not be looked at or changed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// wadm's.
    #[error(transparent)]
    Wadm(#[from] wadm::Error),
    /// The workload API's.
    #[error(transparent)]
    Workload(#[from] workload::Error),
}

impl Lattice {
    /// Brings the lattice to `bundle`; every application's state.
    pub async fn apply(&mut self, bundle: &Bundle) -> Result<Vec<AppState>, Error> {
        Ok(match self {
            Lattice::V1(wadm) => wadm.apply(bundle).await?,
            Lattice::V2(workloads) => workloads.apply(bundle).await?,
        })
    }

    /// Every application's state, changing nothing.
    pub async fn observe(&mut self, bundle: &Bundle) -> Result<Vec<AppState>, Error> {
        Ok(match self {
            Lattice::V1(wadm) => wadm.observe(bundle).await?,
            Lattice::V2(workloads) => workloads.observe(bundle).await?,
        })
    }
}
