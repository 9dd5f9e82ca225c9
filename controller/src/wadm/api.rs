//! wadm's NATS API as the controller reads it: `wadm.api.<lattice>.model.<operation>[.<name>]`,
//! JSON answers as wadm 0.21 sends them (`wadm-types` 0.8), read leniently — only the fields
//! the controller uses, unknown ones ignored, missing ones empty — so that an error answer
//! (`{"result": "error", "message": …}`) reads as one whatever the operation.
//! `tests/fixtures/wadm/` holds answers recorded from a real wadm 0.21.1.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `model.get` without a name: every application of the lattice.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ListAnswer {
    /// `success` or `error`.
    pub result: String,
    /// wadm's words.
    pub message: String,
    /// The applications.
    pub models: Vec<Summary>,
}

/// One application in a list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// Its name.
    pub name: String,
    /// The version put last.
    pub version: String,
    /// The version deployed, if any.
    pub deployed_version: Option<String>,
    /// Its status (what `model.status.<name>` answers).
    pub detailed_status: Status,
}

/// An application's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Status {
    /// The whole.
    #[serde(rename = "status")]
    pub info: Info,
    /// Each scaler (spread, daemon, link, config…).
    pub scalers: Vec<Scaler>,
}

/// A status and its message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Info {
    /// The status.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Why, in wadm's words.
    pub message: String,
}

/// wadm's status types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Nothing to do it on yet (no hosts).
    Waiting,
    /// Not deployed.
    #[default]
    Undeployed,
    /// Being brought up.
    #[serde(alias = "compensating")]
    Reconciling,
    /// Up.
    #[serde(alias = "ready")]
    Deployed,
    /// Failed.
    Failed,
    /// Up, but something is wrong.
    Unhealthy,
    /// A status this reader does not know.
    #[serde(other)]
    Unknown,
}

/// One scaler's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Scaler {
    /// `SpreadScaler`, `LinkScaler`, …
    pub kind: String,
    /// What it scales.
    pub name: String,
    /// Its status.
    #[serde(rename = "status")]
    pub info: Info,
}

/// `model.get.<name>`: one version of an application's manifest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GetAnswer {
    /// `success`, `notfound` or `error`.
    pub result: String,
    /// wadm's words.
    pub message: String,
    /// The manifest, of which only the metadata is read.
    pub manifest: Option<ManifestHead>,
}

/// A manifest's metadata.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ManifestHead {
    /// Its metadata.
    pub metadata: Metadata,
}

/// Name and annotations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Metadata {
    /// The application's name.
    pub name: String,
    /// Its annotations (`version`, `etl.dev/project`, …).
    pub annotations: BTreeMap<String, String>,
}

/// `model.versions.<name>`: every version stored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VersionsAnswer {
    /// `success`, `notfound` or `error`.
    pub result: String,
    /// wadm's words.
    pub message: String,
    /// The versions, oldest first.
    pub versions: Vec<Version>,
}

/// One stored version.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Version {
    /// The version.
    pub version: String,
    /// Whether it is the one deployed.
    pub deployed: bool,
}

/// `model.put`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PutAnswer {
    /// `created`, `newversion` or `error`.
    pub result: String,
    /// wadm's words.
    pub message: String,
    /// The application's name, as wadm read it.
    pub name: String,
    /// The version put.
    pub current_version: String,
}

/// `model.deploy`, `model.undeploy`, `model.del`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Answer {
    /// `acknowledged`, `deleted`, `noop`, `notfound` or `error`.
    pub result: String,
    /// wadm's words.
    pub message: String,
}
