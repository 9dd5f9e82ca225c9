//! PLACEHOLDER, to be dropped when the v2 applier (`controller/src/workload/`, branch i18-v2)
//! is merged: the API that branch provides, so that the rest of the crate compiles. It applies
//! nothing and says so.

use std::collections::BTreeMap;
use std::path::PathBuf;

use etl::oci::bundle::Bundle;

use crate::state::AppState;

/// The v2 applier's settings.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Labels by host (id or name), as `--host-label HOST=KEY=VALUE` gives them.
    pub host_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// The Kubernetes `Secret` documents the manifests reference.
    pub secrets: Option<PathBuf>,
}

/// Why the hosts could not be driven.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// This build has no v2 applier.
    #[error("this build of etl-controller has no wasmCloud v2 applier yet")]
    Unavailable,
}

/// The v2 applier.
pub struct Workloads {
    _nats: async_nats::Client,
    _options: Options,
}

impl Workloads {
    /// An applier over `nats`.
    pub fn new(nats: async_nats::Client, options: Options) -> Workloads {
        Workloads {
            _nats: nats,
            _options: options,
        }
    }

    /// Brings the hosts to `bundle`.
    pub async fn apply(&mut self, _bundle: &Bundle) -> Result<Vec<AppState>, Error> {
        Err(Error::Unavailable)
    }

    /// Where each application stands.
    pub async fn observe(&mut self, _bundle: &Bundle) -> Result<Vec<AppState>, Error> {
        Err(Error::Unavailable)
    }
}
