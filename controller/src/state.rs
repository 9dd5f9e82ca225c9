//! What an applier reports about each application of a bundle: the vocabulary both generations
//! share, and the status document is made of.

use serde::Serialize;

/// Where an application stands on the lattice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Runs the bundle's version, every part of it up.
    Deployed,
    /// Being brought to the bundle's version.
    Reconciling,
    /// The lattice refused or failed it ([`AppState::reason`] says why).
    Failed,
    /// Not running.
    Undeployed,
}

/// One application of a bundle as the lattice runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppState {
    /// The application's name (the bundle's `ApplicationFacts::name`).
    pub name: String,
    /// The version the lattice runs or is bringing up (`sha-<12 hex>`), when known.
    pub version: Option<String>,
    /// Where it stands.
    pub state: State,
    /// Why it is failed or still reconciling, in the lattice's words (wadm's or the host's).
    pub reason: Option<String>,
}
