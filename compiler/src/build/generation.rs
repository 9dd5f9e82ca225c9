//! The two wasmCloud generations every step is built for, and the little that differs between
//! them: the hosts serve the runtime configuration at different `wasi:config` versions (1.x:
//! `runtime@0.2.0-draft`; v2: `store@0.2.0-rc.1`, and no version is served by both), and
//! deliver secrets differently (1.x: `wasmcloud:secrets@0.1.0-draft`; v2: as configuration), so
//! each step has one artifact per generation, composed from the same customer bytes and the
//! same `in` and `out` parts around a generation's own `settings` part.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::build::harness::Part;

/// A wasmCloud generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Generation {
    /// wasmCloud 1.x with wadm: the manifests in `<env>/wadm/`.
    #[serde(rename = "v1")]
    V1,
    /// wasmCloud v2, the current generation: the `WorkloadDeployment`s in `<env>/k8s/`.
    #[serde(rename = "v2")]
    V2,
}

impl Generation {
    /// Both, 1.x first (the order of every list the plan writes).
    pub const ALL: [Generation; 2] = [Generation::V1, Generation::V2];

    /// The settings part of its compositions: the one harness part that differs.
    pub fn settings(self) -> Part {
        match self {
            Generation::V1 => Part::Settings,
            Generation::V2 => Part::SettingsV2,
        }
    }

    /// The packages whose interfaces the two generations' hosts serve at different versions
    /// (or not at all): an import of one of them must be one [`Generation::served`] lists.
    pub const VERSIONED: [&'static str; 2] = ["wasi:config/", "wasmcloud:secrets/"];

    /// The interfaces of the [`Generation::VERSIONED`] packages its hosts serve. The 1.x host:
    /// `wasi:config/runtime@0.2.0-draft` and `store@0.2.0-draft`, and
    /// `wasmcloud:secrets/store` and `reveal@0.1.0-draft` (its `settings` part reads secrets
    /// through them). A v2 host (`wash host` 2.10): only `wasi:config/store@0.2.0-rc.1` (secrets
    /// arrive as configuration). A host refuses to start a component that imports another.
    pub fn served(self) -> &'static [&'static str] {
        match self {
            Generation::V1 => &[
                "wasi:config/runtime@0.2.0-draft",
                "wasi:config/store@0.2.0-draft",
                "wasmcloud:secrets/reveal@0.1.0-draft",
                "wasmcloud:secrets/store@0.1.0-draft",
            ],
            Generation::V2 => &["wasi:config/store@0.2.0-rc.1"],
        }
    }

    /// Whether its hosts serve `import`, as far as the interfaces of the
    /// [`Generation::VERSIONED`] packages go (any other import is the policy's business).
    pub fn serves(self, import: &str) -> bool {
        !Self::VERSIONED.iter().any(|p| import.starts_with(p)) || self.served().contains(&import)
    }

    /// The OCI repository (under the project's registry) of the artifact of unit `unit` of
    /// pipeline `pipeline`: `<pipeline>-<unit>` for 1.x, `v2/<pipeline>-<unit>` for v2. Both
    /// generations keep their own tags per environment, and a `/` never occurs in a unit's
    /// own name, so the two can never collide.
    pub fn repository(self, pipeline: &str, unit: &str) -> String {
        match self {
            Generation::V1 => format!("{pipeline}-{unit}"),
            Generation::V2 => format!("v2/{pipeline}-{unit}"),
        }
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Generation::V1 => "wasmCloud 1.x",
            Generation::V2 => "wasmCloud v2",
        })
    }
}

impl Generation {
    /// Its short name: `v1` or `v2` (in `plan.json`, `etl diff --format json` and options).
    pub fn short(self) -> &'static str {
        match self {
            Generation::V1 => "v1",
            Generation::V2 => "v2",
        }
    }
}

/// A name that is not a generation's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a wasmCloud generation: `v1` (wasmCloud 1.x) or `v2` (wasmCloud v2)")]
pub struct UnknownGeneration(pub String);

impl FromStr for Generation {
    type Err = UnknownGeneration;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Generation::ALL
            .into_iter()
            .find(|g| g.short() == s)
            .ok_or_else(|| UnknownGeneration(s.to_owned()))
    }
}
