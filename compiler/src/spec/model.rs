//! The spec model: typed forms of the four file kinds of a pipeline repo.
//!
//! Every type here agrees with its JSON Schema in `schema/` (a test proves it on every example
//! and fixture): unknown keys are rejected by both, optional fields have the same defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::LazyLock;

use indexmap::IndexMap;
use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};

/// The only `apiVersion` this compiler reads.
pub const API_VERSION: &str = "etl/v1alpha1";

/// Names valid for wadm (`^[-\w]+$`), restricted to ASCII because they also name OCI repositories.
pub const NAME_PATTERN: &str = "^[-A-Za-z0-9_]+$";
/// A content digest: `sha256:` and 64 lowercase hex digits.
pub const DIGEST_PATTERN: &str = "^sha256:[0-9a-f]{64}$";
/// A provider image: a wasmCloud built-in, or an OCI reference (`host[:port]/path[:tag][@sha256:…]`).
pub const PROVIDER_IMAGE_PATTERN: &str = "^(wasmcloud\\+builtin://[a-z][-a-z0-9]*|[a-z0-9][-a-z0-9.]*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?)$";
/// A capability grant: `namespace:package/interface`, an optional `@version`, or `namespace:package/*`.
pub const GRANT_PATTERN: &str =
    "^[a-z][-a-z0-9]*:[a-z][-a-z0-9]*/(\\*|[a-z][-a-z0-9]*(@[0-9A-Za-z.+-]+)?)$";
/// A host an outbound HTTP grant names: the forms of a wasmCloud v2 `allowedHosts` entry
/// (`host[:port]`, `scheme://host[:port][/]`, `*.suffix[:port]`, `scheme://*.suffix[:port][/]`),
/// the CRD's own pattern without its `*` (every host), which a grant may not name.
pub const EGRESS_HOST_PATTERN: &str = "^([A-Za-z][A-Za-z0-9+.-]*://)(\\*\\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(:[0-9]{1,5})?/?$|^(\\*\\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(:[0-9]{1,5})?$";
/// The interface whose grant must name hosts: a customer's outbound HTTP.
pub const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler";

macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, $pattern:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The text as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                static RE: LazyLock<Regex> = LazyLock::new(|| Regex::new($pattern).expect("valid pattern"));
                if RE.is_match(&value) {
                    Ok(Self(value))
                } else {
                    Err(format!("`{value}` is not {}", $what))
                }
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
    };
}

validated_string!(
    /// A name valid for wadm and OCI: see [`NAME_PATTERN`].
    Name, NAME_PATTERN, "a valid name"
);
validated_string!(
    /// A `sha256:` content digest: see [`DIGEST_PATTERN`].
    Digest, DIGEST_PATTERN, "a sha256 digest"
);
validated_string!(
    /// An import a customer component may be granted: see [`GRANT_PATTERN`].
    Grant, GRANT_PATTERN, "an interface grant"
);
validated_string!(
    /// A host an outbound HTTP grant names: see [`EGRESS_HOST_PATTERN`].
    EgressHost, EGRESS_HOST_PATTERN, "a host entry"
);

impl Grant {
    /// Whether it grants the import `import` (a component's import name, e.g.
    /// `wasi:logging/logging@0.1.0-draft`): `ns:pkg/iface` at any version, `ns:pkg/iface@v` at
    /// that version only, `ns:pkg/*` every interface of the package.
    pub fn covers(&self, import: &str) -> bool {
        let (name, version) = match import.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (import, None),
        };
        if let Some(package) = self.0.strip_suffix("/*") {
            return name.split_once('/').is_some_and(|(p, _)| p == package);
        }
        match self.0.split_once('@') {
            Some((g, v)) => g == name && version == Some(v),
            None => self.0 == name,
        }
    }

    /// Whether it grants `wasi:http/outgoing-handler` at some version: the interface itself
    /// (at any version, or at one), or `wasi:http/*`.
    pub fn covers_outgoing_handler(&self) -> bool {
        let name = self.0.split('@').next().unwrap_or_default();
        name == OUTGOING_HANDLER || name == "wasi:http/*"
    }
}

/// One entry of an `allow` list (`policy.allow`, a step's `allow`): an interface grant, written
/// as the interface alone or as `{interface, hosts}`. A grant of `wasi:http/outgoing-handler`
/// (or `wasi:http/*`) must take the second form and name the hosts the step may call; `hosts`
/// on any other grant is an error (both checked by `etl validate`, not here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    /// The interface granted.
    pub interface: Grant,
    /// The hosts, as written; `None` for the short form or a mapping without `hosts`.
    pub hosts: Option<Vec<EgressHost>>,
}

/// The two forms of [`Allow`], as written.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum AllowForm {
    Interface(Grant),
    Extended(ExtendedAllow),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendedAllow {
    interface: Grant,
    #[serde(
        default,
        deserialize_with = "some_non_empty",
        skip_serializing_if = "Option::is_none"
    )]
    hosts: Option<Vec<EgressHost>>,
}

/// A list that is there (the field is optional) and has at least one element.
fn some_non_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    non_empty(d).map(Some)
}

impl<'de> Deserialize<'de> for Allow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match AllowForm::deserialize(d)? {
            AllowForm::Interface(interface) => Allow {
                interface,
                hosts: None,
            },
            AllowForm::Extended(e) => Allow {
                interface: e.interface,
                hosts: e.hosts,
            },
        })
    }
}

impl Serialize for Allow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.hosts {
            None => AllowForm::Interface(self.interface.clone()).serialize(s),
            Some(hosts) => AllowForm::Extended(ExtendedAllow {
                interface: self.interface.clone(),
                hosts: Some(hosts.clone()),
            })
            .serialize(s),
        }
    }
}

/// The nearest valid [`Name`] to any text: transliterated to ASCII (`télémétrie` → `telemetrie`,
/// `東京` → `dong-jing`), lower-cased, each run of other characters replaced by one `-`, without
/// leading or trailing `-`; `None` if nothing is left.
pub fn name_from(raw: &str) -> Option<String> {
    let ascii = deunicode::deunicode(raw);
    let mut name = String::with_capacity(ascii.len());
    for c in ascii.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            name.push(c.to_ascii_lowercase());
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let name = name.trim_matches('-');
    (!name.is_empty()).then(|| name.to_owned())
}

/// The `apiVersion` of every file: only `etl/v1alpha1` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiVersion {
    /// `etl/v1alpha1`.
    #[serde(rename = "etl/v1alpha1")]
    V1Alpha1,
}

macro_rules! kind_tag {
    ($(#[$doc:meta])* $name:ident, $text:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            #[doc = concat!("`", $text, "`.")]
            #[serde(rename = $text)]
            Tag,
        }
    };
}

kind_tag!(
    /// `kind: Project`.
    ProjectKind, "Project"
);
kind_tag!(
    /// `kind: Pipeline`.
    PipelineKind, "Pipeline"
);
kind_tag!(
    /// `kind: Environment`.
    EnvironmentKind, "Environment"
);
kind_tag!(
    /// `kind: Test`.
    TestKind, "Test"
);

/// Deserializes a map that must have at least one entry (the schema's `minProperties: 1`).
fn non_empty_map<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
    d: D,
) -> Result<IndexMap<Name, V>, D::Error> {
    let map = IndexMap::<Name, V>::deserialize(d)?;
    if map.is_empty() {
        return Err(serde::de::Error::invalid_length(0, &"at least one entry"));
    }
    Ok(map)
}

/// Deserializes a list that must have at least one element (the schema's `minItems: 1`).
fn non_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    let items = Vec::<T>::deserialize(d)?;
    if items.is_empty() {
        return Err(serde::de::Error::invalid_length(0, &"at least one element"));
    }
    Ok(items)
}

/// `metadata` of every file kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Name of the object; see [`NAME_PATTERN`].
    pub name: Name,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `etl.yaml` at the repo root (`kind: Project`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Project {
    /// Always [`API_VERSION`].
    pub api_version: ApiVersion,
    /// Always `Project`.
    pub kind: ProjectKind,
    /// Project name.
    pub metadata: Metadata,
    /// Project settings.
    pub spec: ProjectSpec,
}

/// `spec` of the project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProjectSpec {
    /// OCI repository prefix for composed step artifacts, e.g. `registry.acme.example/etl`.
    pub registry: String,
    /// Deployment environments by name, in file order; at least one.
    #[serde(deserialize_with = "non_empty_map")]
    pub environments: IndexMap<Name, Environment>,
    /// Capability policy for every customer component.
    #[serde(default)]
    pub policy: Policy,
    /// Where `secret:` references are resolved (a wadm secret policy backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<SecretBackend>,
    /// The capability provider image for each provider the pipelines use.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<ProviderKind, ProviderImage>,
    /// How records travel between the units of every environment, unless an environment's
    /// own `delivery` overrides a field (`docs/spec.md#delivery`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
}

/// The capability providers the connectors and the bus between steps run on (wasmCloud 1.x).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// `wasi:http/incoming-handler` for an `http` source.
    HttpServer,
    /// `wasi:http/outgoing-handler` for an `http` sink.
    HttpClient,
    /// `wasmcloud:messaging` on NATS: the subjects between steps, `nats` sources and sinks.
    MessagingNats,
    /// `wasmcloud:messaging` on Kafka: `kafka` sources and sinks.
    MessagingKafka,
    /// `wasi:blobstore` on S3: `s3` sinks.
    BlobstoreS3,
}

impl ProviderKind {
    /// Every kind, in manifest order.
    pub const ALL: [ProviderKind; 5] = [
        ProviderKind::HttpServer,
        ProviderKind::HttpClient,
        ProviderKind::MessagingNats,
        ProviderKind::MessagingKafka,
        ProviderKind::BlobstoreS3,
    ];

    /// The key in `spec.providers`, which also names the provider in manifests.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::HttpServer => "http-server",
            ProviderKind::HttpClient => "http-client",
            ProviderKind::MessagingNats => "messaging-nats",
            ProviderKind::MessagingKafka => "messaging-kafka",
            ProviderKind::BlobstoreS3 => "blobstore-s3",
        }
    }

    /// The wasmCloud 1.x host's built-in provider of this kind, if it has one.
    pub fn builtin(self) -> Option<&'static str> {
        match self {
            ProviderKind::HttpServer => Some("wasmcloud+builtin://http-server"),
            ProviderKind::HttpClient => Some("wasmcloud+builtin://http-client"),
            ProviderKind::MessagingNats => Some("wasmcloud+builtin://messaging-nats"),
            ProviderKind::MessagingKafka | ProviderKind::BlobstoreS3 => None,
        }
    }

    /// wasmCloud's published image of this provider (to pin by digest in `spec.providers`).
    pub fn published(self) -> &'static str {
        match self {
            ProviderKind::HttpServer => "ghcr.io/wasmcloud/http-server:0.27.0",
            ProviderKind::HttpClient => "ghcr.io/wasmcloud/http-client:0.13.1",
            ProviderKind::MessagingNats => "ghcr.io/wasmcloud/messaging-nats:0.27.0",
            ProviderKind::MessagingKafka => "ghcr.io/wasmcloud/messaging-kafka:0.6.1",
            ProviderKind::BlobstoreS3 => "ghcr.io/wasmcloud/blobstore-s3:0.12.1",
        }
    }
}

validated_string!(
    /// A provider image: `wasmcloud+builtin://NAME`, or an OCI reference, best pinned with
    /// `@sha256:…`; see [`PROVIDER_IMAGE_PATTERN`].
    ProviderImage, PROVIDER_IMAGE_PATTERN, "a provider image reference"
);

/// How the image of a provider built into the wasmCloud 1.x host begins.
pub const BUILTIN_PROVIDER: &str = "wasmcloud+builtin://";

impl ProviderImage {
    /// Whether the reference names exact bytes: a built-in, or an OCI reference with a digest.
    pub fn is_pinned(&self) -> bool {
        self.0.starts_with(BUILTIN_PROVIDER) || self.0.contains("@sha256:")
    }
}

/// One deployment environment of the project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Environment {
    /// wasmCloud lattice the environment deploys to.
    pub lattice: String,
    /// Replicas of each step unless overridden.
    #[serde(default = "one")]
    pub replicas: NonZeroU32,
    /// How replicas spread over hosts (wadm `spreadscaler` spread).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spread: Vec<Spread>,
    /// Variables for templates in `config:` and `with:` (`{{ vars.NAME }}`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub vars: IndexMap<String, Scalar>,
    /// Overrides the project's secret backend in this environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<SecretBackend>,
    /// Messages a wasmCloud v2 host hands each step at once (the `max_in_flight` of its
    /// messaging interface). Unset: sized from [`Environment::core_instances`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<NonZeroU32>,
    /// The instance pool of the environment's wasmCloud v2 hosts (`wash host
    /// --core-instances`). Unset: 1000, the hosts' default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_instances: Option<NonZeroU32>,
    /// The NATS the environment's wasmCloud 1.x messaging provider connects to. Unset: the
    /// provider's default, `127.0.0.1:4222`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<Nats>,
    /// The environment's shared HTTP listener. Unset: `0.0.0.0:8000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpListener>,
    /// Whether its steps and sinks report each batch to the environment's controller
    /// (`docs/reporting.md`). Unset: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reports: Option<bool>,
    /// How records travel between its units: each field set here overrides the project's
    /// `delivery` field of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
}

/// `delivery`: the delivery guarantee between units and, for at-least-once, the limits of the
/// NATS JetStream streams and consumers that give it. Every field is optional; the project's
/// `spec.delivery` is the default of every environment's `delivery`, field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// At least once (through JetStream, the default) or at most once (core NATS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guarantee: Option<Guarantee>,
    /// Deliveries of one message; the last one dead-letters what still fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deliver: Option<NonZeroU32>,
    /// How long a delivery may stay unacknowledged before it is delivered again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_wait: Option<DurationText>,
    /// The wait before a redelivery after the n-th delivery failed: the n-th entry, the last
    /// one repeated.
    #[serde(
        default,
        deserialize_with = "some_non_empty",
        skip_serializing_if = "Option::is_none"
    )]
    pub backoff: Option<Vec<DurationText>>,
    /// Unacknowledged messages per consumer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ack_pending: Option<NonZeroU32>,
    /// Stream limit: older messages are dropped, even unconsumed (`0s`: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<DurationText>,
    /// Stream limit in bytes (`-1`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<i64>,
    /// JetStream's `Nats-Msg-Id` de-duplication window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_window: Option<DurationText>,
    /// Whether what the units publish over NATS carries `Nats-Msg-Id` (wasmCloud 1.x; the
    /// project's `delivery` only, as it changes the 1.x artifacts every environment shares).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_msg_id: Option<bool>,
}

/// A delivery guarantee.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guarantee {
    /// Every record reaches every unit it should at least once: the subjects between units are
    /// captured by a JetStream stream, each unit acknowledges what it handled.
    #[default]
    AtLeastOnce,
    /// Core NATS: a record in flight when a unit fails is lost.
    AtMostOnce,
}

impl Guarantee {
    /// The name specs write.
    pub fn name(self) -> &'static str {
        match self {
            Guarantee::AtLeastOnce => "at-least-once",
            Guarantee::AtMostOnce => "at-most-once",
        }
    }
}

/// The form of a duration: a whole number and a unit, `ms`, `s`, `m` or `h`.
pub const DURATION_PATTERN: &str = "^[0-9]+(ms|s|m|h)$";

validated_string!(
    /// A duration as written: see [`DURATION_PATTERN`]. Its length is [`DurationText::nanos`].
    DurationText, DURATION_PATTERN, "a duration"
);

impl DurationText {
    /// The duration in nanoseconds; `None` when it does not fit an `i64` (about 292 years),
    /// what the NATS server API carries.
    pub fn nanos(&self) -> Option<i64> {
        let split = self.0.find(|c: char| !c.is_ascii_digit())?;
        let (number, unit) = self.0.split_at(split);
        let per: i64 = match unit {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        number.parse::<i64>().ok()?.checked_mul(per)
    }
}

/// Where an environment's NATS is, for the wasmCloud 1.x `messaging-nats` provider's links
/// (`cluster_uris`). wasmCloud v2 hosts use their own connection (`wash host --data-nats-url`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nats {
    /// Server URLs (`nats://host:port`, `tls://…`, `ws://…`, `wss://…`), at least one.
    pub urls: Vec<String>,
}

/// The HTTP listener an environment's path-routed HTTP sources share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpListener {
    /// `IP:PORT` the listener binds, e.g. `0.0.0.0:8000`.
    pub address: String,
}

impl HttpListener {
    /// What the listener binds when the environment does not say: the wasmCloud 1.x
    /// `http-server` provider's own default.
    pub const DEFAULT_ADDRESS: &str = "0.0.0.0:8000";

    /// Name of the shared wadm application that runs project `project`'s listener in an
    /// environment: `<project>-http-listener` (so no pipeline that shares it may have it).
    pub fn application(project: &str) -> String {
        format!("{project}-http-listener")
    }
}

fn one() -> NonZeroU32 {
    NonZeroU32::MIN
}

/// One spread entry: a share of replicas on hosts with the given labels. The same in
/// `etl.yaml`, in the applications of `plan.json` and in `etl diff`'s report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spread {
    /// Name of the spread: read as a [`Name`].
    #[serde(deserialize_with = "name_text")]
    pub name: String,
    /// Host labels a host must have. Always written: wadm needs it in every entry.
    #[serde(default)]
    pub requirements: BTreeMap<String, String>,
    /// Relative weight of this spread; `None`: wadm's default (100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// A [`Name`], as its text.
fn name_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Name::deserialize(d).map(String::from)
}

/// The capability policy: imports a customer component may have beyond the contract.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Interface grants, e.g. `wasi:logging/logging`.
    #[serde(default)]
    pub allow: Vec<Allow>,
}

/// A wadm secret policy backend (`policy.secret.wasmcloud.dev/v1alpha1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretBackend {
    /// Backend name, e.g. `nats-kv`.
    pub backend: String,
}

/// A `pipelines/*.yaml` file (`kind: Pipeline`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Pipeline {
    /// Always [`API_VERSION`].
    pub api_version: ApiVersion,
    /// Always `Pipeline`.
    pub kind: PipelineKind,
    /// Pipeline name (unique in the repo).
    pub metadata: Metadata,
    /// The pipeline graph.
    pub spec: PipelineSpec,
}

/// The graph of a pipeline: one source, steps, sinks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Where records come in.
    pub source: Source,
    /// Customer transforms, each composed with the platform harness.
    #[serde(deserialize_with = "non_empty")]
    pub steps: Vec<Step>,
    /// Where records leave.
    #[serde(deserialize_with = "non_empty")]
    pub sinks: Vec<Sink>,
}

impl PipelineSpec {
    /// Whether the `from` entry `name` is an `http` source: records from it arrive as HTTP
    /// requests (through `in-http`); from anything else, over a subject (`in-messaging`).
    pub fn is_http_source(&self, name: &str) -> bool {
        name == self.source.name.as_str() && self.source.connector == SourceConnector::Http
    }
}

/// The pipeline's source connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Name steps refer to in `from`.
    pub name: Name,
    /// Connector kind.
    pub connector: SourceConnector,
    /// Connector settings.
    #[serde(default, rename = "with", skip_serializing_if = "IndexMap::is_empty")]
    pub with: Settings,
}

/// Connector kinds a source may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceConnector {
    /// HTTP server (`wasi:http/incoming-handler`).
    Http,
    /// NATS subject (`wasmcloud:messaging`).
    Nats,
    /// Kafka topic (`wasmcloud:messaging` on the Kafka provider).
    Kafka,
    /// MQTT topic, through the NATS server's MQTT listener: a subscription to the subject the
    /// topic maps to ([`crate::spec::subjects::mqtt_subject`]), on the NATS provider.
    Mqtt,
    /// Another pipeline's output, by name (`with: {pipeline, from}`): a sub-pipeline, fed over
    /// the NATS subject the compiler resolves.
    Pipeline,
}

impl SourceConnector {
    /// The name specs write.
    pub fn name(self) -> &'static str {
        match self {
            SourceConnector::Http => "http",
            SourceConnector::Nats => "nats",
            SourceConnector::Kafka => "kafka",
            SourceConnector::Mqtt => "mqtt",
            SourceConnector::Pipeline => "pipeline",
        }
    }

    /// Whether it reads a NATS subject its `with:` names: a `nats` source's `subject`, an `mqtt`
    /// source's `topic` as the subject it maps to.
    pub fn reads_nats(self) -> bool {
        matches!(self, SourceConnector::Nats | SourceConnector::Mqtt)
    }

    /// The `with:` key naming the subject or topic it reads, if it names one (a `pipeline`
    /// source names a pipeline and a node instead: [`UPSTREAM_KEYS`]).
    pub fn required_key(self) -> Option<&'static str> {
        match self {
            SourceConnector::Http | SourceConnector::Pipeline => None,
            SourceConnector::Nats => Some("subject"),
            SourceConnector::Kafka | SourceConnector::Mqtt => Some("topic"),
        }
    }
}

/// The `with:` keys of a `pipeline` source: the pipeline read, and its step or `nats` sink.
pub const UPSTREAM_KEYS: [&str; 2] = ["pipeline", "from"];

/// What a `pipeline` source reads: a step or `nats` sink of another pipeline, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Upstream<'a> {
    /// The pipeline read (`with.pipeline`).
    pub pipeline: &'a str,
    /// Its step or `nats` sink (`with.from`).
    pub from: &'a str,
}

impl Source {
    /// What this source reads, when it is a `pipeline` source whose `with.pipeline` and
    /// `with.from` are plain names (anything else is reported by `etl validate`).
    pub fn upstream(&self) -> Option<Upstream<'_>> {
        if self.connector != SourceConnector::Pipeline {
            return None;
        }
        let name = |key: &str| match self.with.get(key)? {
            Setting::Value(Scalar::String(s)) if is_name(s) => Some(s.as_str()),
            _ => None,
        };
        Some(Upstream {
            pipeline: name("pipeline")?,
            from: name("from")?,
        })
    }
}

/// Whether `text` is a valid [`Name`].
pub fn is_name(text: &str) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(NAME_PATTERN).expect("valid pattern"));
    RE.is_match(text)
}

/// Setting prefix of an `http` sink: its setting `header.<Name>` (plain or `{secret: KEY}`) is
/// the header `<Name>` of every request it sends.
pub const HEADER_SETTING: &str = "header.";

/// Connector kinds a sink may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkConnector {
    /// HTTP POST (`wasi:http/outgoing-handler`).
    Http,
    /// NATS subject.
    Nats,
    /// Kafka topic.
    Kafka,
    /// S3 bucket (`wasi:blobstore`).
    S3,
}

impl SinkConnector {
    /// The name specs write.
    pub fn name(self) -> &'static str {
        match self {
            SinkConnector::Http => "http",
            SinkConnector::Nats => "nats",
            SinkConnector::Kafka => "kafka",
            SinkConnector::S3 => "s3",
        }
    }

    /// The `with:` key naming where it delivers.
    pub fn required_key(self) -> &'static str {
        match self {
            SinkConnector::Http => "url",
            SinkConnector::Nats => "subject",
            SinkConnector::Kafka => "topic",
            SinkConnector::S3 => "bucket",
        }
    }
}

/// One customer transform step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Step name, unique in the pipeline.
    pub name: Name,
    /// Names of the source or steps whose output this step consumes.
    #[serde(deserialize_with = "non_empty")]
    pub from: Vec<String>,
    /// Repo path of the component, or `oci://host/repo@sha256:…`.
    pub component: String,
    /// `sha256:` + 64 lowercase hex: the component bytes must hash to it.
    pub digest: Digest,
    /// Settings served to the component through `etl:pipeline/config`; templates rendered per
    /// environment.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub config: Settings,
    /// Extra imports granted to this step only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Allow>,
    /// Replicas of this step, overriding the environment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<NonZeroU32>,
}

/// One sink connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sink {
    /// Sink name, unique in the pipeline.
    pub name: Name,
    /// Names of the steps (or the source) whose output goes here.
    #[serde(deserialize_with = "non_empty")]
    pub from: Vec<String>,
    /// Connector kind.
    pub connector: SinkConnector,
    /// Connector settings.
    #[serde(default, rename = "with", skip_serializing_if = "IndexMap::is_empty")]
    pub with: Settings,
}

/// Settings of a connector or a step: key → literal, template, or secret reference.
pub type Settings = IndexMap<String, Setting>;

/// One setting value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Setting {
    /// A reference to a secret, resolved by the platform; never inlined.
    Secret(SecretRef),
    /// A literal or minijinja template. Numbers and booleans become their canonical text
    /// (`1.50` → `1.5`); quote a value whose exact text matters.
    Value(Scalar),
}

/// A scalar setting as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// A string, possibly a template.
    String(String),
}

impl Scalar {
    /// The value as the string a component or connector sees.
    pub fn as_text(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Number(n) => n.to_string(),
            Scalar::String(s) => s.clone(),
        }
    }
}

/// `{ secret: KEY }`: the value lives in the environment's secret backend under KEY.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Key of the secret in the backend.
    pub secret: String,
}

/// An `environments/<env>.yaml` file (`kind: Environment`): overrides for one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvironmentOverride {
    /// Always [`API_VERSION`].
    pub api_version: ApiVersion,
    /// Always `Environment`.
    pub kind: EnvironmentKind,
    /// `name` is the environment overridden; it matches the file name.
    pub metadata: Metadata,
    /// The overrides.
    pub spec: EnvironmentOverrideSpec,
}

/// What an environment file may override.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentOverrideSpec {
    /// Replaces the environment's `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<NonZeroU32>,
    /// Merged over the environment's `vars` (these win).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub vars: IndexMap<String, Scalar>,
    /// Per-pipeline overrides by pipeline name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub pipelines: IndexMap<Name, PipelineOverride>,
}

/// Overrides for one pipeline in one environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineOverride {
    /// Replicas of every step of the pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<NonZeroU32>,
    /// Connector settings by source or sink name, merged over the pipeline's `with`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub connectors: IndexMap<Name, ConnectorOverride>,
}

/// Settings override for one connector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorOverride {
    /// Merged over the connector's `with`.
    #[serde(default, rename = "with")]
    pub with: Settings,
}

/// A `tests/*.yaml` file (`kind: Test`): one pipeline fixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestFixture {
    /// Always [`API_VERSION`].
    pub api_version: ApiVersion,
    /// Always `Test`.
    pub kind: TestKind,
    /// Fixture name.
    pub metadata: Metadata,
    /// What goes in and what must come out.
    pub spec: TestSpec,
}

/// Records in at the source, expected records out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// Pipeline under test.
    pub pipeline: Name,
    /// Environment whose config is used; the project's first environment when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Name>,
    /// Values of the pipeline's secrets for this run, by secret key (the `KEY` of
    /// `{secret: KEY}`): test values, kept in the repo, so never real credentials.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub secrets: IndexMap<String, String>,
    /// Records fed to the source, in order.
    pub input: Vec<Record>,
    /// What must come out.
    pub expect: Expectations,
}

/// Expected outputs of a fixture.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expectations {
    /// Exact records per sink name, in order. A sink not named here must receive nothing.
    #[serde(default)]
    pub sinks: IndexMap<Name, Vec<Record>>,
    /// Records routed to a step's dead-letter output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_letters: Vec<DeadLetter>,
    /// Records in/out per step name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub counts: IndexMap<Name, Counts>,
}

/// One expected dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    /// Step that rejected the record.
    pub step: Name,
    /// A substring of the `invalid` error text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The rejected record, when it must match exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Record>,
}

/// Expected record counts of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Records the step received.
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub input: Option<u64>,
    /// Records the step emitted.
    #[serde(default, rename = "out", skip_serializing_if = "Option::is_none")]
    pub output: Option<u64>,
}

/// One record in a fixture. Exactly one of `payload`, `json`, `base64` gives the payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RecordRepr")]
pub struct Record {
    /// Record key (UTF-8 text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Payload as UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// Payload as a JSON value (compared as JSON, not as bytes); `json: null` is the JSON `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    /// Payload as base64 of arbitrary bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// Headers, in order.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
}

/// [`Record`] as written, before the check that exactly one payload field is present.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordRepr {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    payload: Option<String>,
    /// Present means `Some`, even when the value is `null` (the schema's `required: [json]`).
    #[serde(default, deserialize_with = "present")]
    json: Option<serde_json::Value>,
    #[serde(default)]
    base64: Option<String>,
    #[serde(default)]
    headers: IndexMap<String, String>,
}

/// Deserializes a field that is present as `Some`, whatever its value (`null` included).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

impl TryFrom<RecordRepr> for Record {
    type Error = &'static str;
    fn try_from(r: RecordRepr) -> Result<Self, Self::Error> {
        let given = [r.payload.is_some(), r.json.is_some(), r.base64.is_some()];
        if given.iter().filter(|&&g| g).count() != 1 {
            return Err("a record needs exactly one of `payload`, `json`, `base64`");
        }
        Ok(Record {
            key: r.key,
            payload: r.payload,
            json: r.json,
            base64: r.base64,
            headers: r.headers,
        })
    }
}
