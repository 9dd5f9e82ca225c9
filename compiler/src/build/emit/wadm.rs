//! The wadm `Application` manifest (wasmCloud 1.x) of an [`Application`].
//!
//! The manifest is built as the typed structs below, which mirror the OAM shape wadm-types 0.8.3
//! parses (`core.oam.dev/v1beta1`), and serialized by serde-saphyr, which quotes every string
//! that YAML (1.1 or 1.2) would read as something else: no value is ever pasted into YAML text.
//!
//! What the translation decides (see `docs/manifests.md`):
//! - every step and sink is a `component`, every provider a `capability`, in that order;
//! - each has its scaler trait first, then its `link` traits in [`Application::links`] order: a
//!   link lives on its source, so a component → provider link is a trait of the component
//!   (`target` is the provider) and a provider → component link one of the provider (`target` is
//!   the component);
//! - a component's scaler is a `spreadscaler` of its replicas; a provider's is a `daemonscaler`
//!   of one instance on every host its components' spread selects: wadm runs at most one
//!   instance of a provider per host, so a provider `spreadscaler` of N instances would need N
//!   eligible hosts (a lattice with one `zone: lab` host could not run two replicas in the lab);
//! - a provider of a shared application (the environment's HTTP listener, which every pipeline
//!   with a path-routed `http` source uses) is a reference `application: {name, component}`
//!   with its links and nothing else, and the shared application itself carries the annotation
//!   `experimental.wasmcloud.dev/shared: "true"`;
//! - `metadata.annotations` is always present (wadm-types refuses a manifest without it), and
//!   every spread entry has `requirements`, even empty, for the same reason.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Application, Direction, Link, NamedConfig, Scale, Secret};
use crate::spec::model::Spread;

/// `apiVersion` of a wadm application manifest.
pub const API_VERSION: &str = "core.oam.dev/v1beta1";
/// `kind` of a wadm application manifest.
pub const KIND: &str = "Application";
/// Policy type of a wadm secret policy.
pub const SECRET_POLICY_TYPE: &str = "policy.secret.wasmcloud.dev/v1alpha1";
/// The first line of every manifest.
pub const HEADER: &str = super::HEADER;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    spec: Spec<'a>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
    annotations: Annotations<'a>,
}

/// wadm reads `version` (and shows `description`); the `etl.dev/` ones say where the manifest
/// came from. Annotation keys must be OAM labels, values may be anything.
#[derive(Serialize)]
struct Annotations<'a> {
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(rename = "etl.dev/project")]
    project: &'a str,
    #[serde(rename = "etl.dev/environment")]
    environment: &'a str,
    #[serde(rename = "etl.dev/lattice")]
    lattice: &'a str,
    /// wadm deploys a shared application's providers once for every application that
    /// references them.
    #[serde(
        rename = "experimental.wasmcloud.dev/shared",
        skip_serializing_if = "Option::is_none"
    )]
    shared: Option<&'static str>,
}

#[derive(Serialize)]
struct Spec<'a> {
    components: Vec<OamComponent<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    policies: Vec<Policy<'a>>,
}

#[derive(Serialize)]
struct OamComponent<'a> {
    name: &'a str,
    /// `component` or `capability`.
    #[serde(rename = "type")]
    kind: &'static str,
    properties: Properties<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    traits: Vec<Trait<'a>>,
}

#[derive(Serialize)]
struct Properties<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    /// Where a component of a shared application is (instead of an image).
    #[serde(skip_serializing_if = "Option::is_none")]
    application: Option<SharedComponent<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    config: Vec<Config<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<SecretProperty<'a>>,
}

#[derive(Serialize)]
struct SharedComponent<'a> {
    name: &'a str,
    component: &'a str,
}

#[derive(Serialize)]
struct Config<'a> {
    name: &'a str,
    properties: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct SecretProperty<'a> {
    name: &'a str,
    properties: SecretSource<'a>,
}

#[derive(Serialize)]
struct SecretSource<'a> {
    policy: &'a str,
    key: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "type", content = "properties", rename_all = "lowercase")]
enum Trait<'a> {
    Spreadscaler(SpreadScaler),
    Daemonscaler(SpreadScaler),
    Link(LinkProperties<'a>),
}

#[derive(Serialize)]
struct SpreadScaler {
    instances: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    spread: Vec<Spread>,
}

#[derive(Serialize)]
struct LinkProperties<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    namespace: &'a str,
    package: &'a str,
    interfaces: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<SourceConfig<'a>>,
    target: Target<'a>,
}

#[derive(Serialize)]
struct SourceConfig<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    config: Vec<Config<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<SecretProperty<'a>>,
}

#[derive(Serialize)]
struct Target<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    config: Vec<Config<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<SecretProperty<'a>>,
}

#[derive(Serialize)]
struct Policy<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    properties: PolicyProperties<'a>,
}

#[derive(Serialize)]
struct PolicyProperties<'a> {
    backend: &'a str,
}

fn configs(config: Option<&NamedConfig>) -> Vec<Config<'_>> {
    config
        .map(|c| Config {
            name: &c.name,
            properties: &c.properties,
        })
        .into_iter()
        .collect()
}

/// The spread entries of `scale`, with their weights when `weighted`.
fn spread(scale: &Scale, weighted: bool) -> Vec<Spread> {
    scale
        .spread
        .iter()
        .map(|s| Spread {
            weight: s.weight.filter(|_| weighted),
            ..s.clone()
        })
        .collect()
}

/// A component's scaler: its replicas, shared out by the spread's weights.
fn spreadscaler(scale: &Scale) -> Trait<'_> {
    Trait::Spreadscaler(SpreadScaler {
        instances: scale.replicas,
        spread: spread(scale, true),
    })
}

/// A provider's scaler: one instance on each host the spread's requirements select (every host
/// of the lattice without a spread).
fn daemonscaler(scale: &Scale) -> Trait<'_> {
    Trait::Daemonscaler(SpreadScaler {
        instances: 1,
        spread: spread(scale, false),
    })
}

/// The `secrets` entries of `secrets`, resolved through the secret policy `policy`.
fn secret_properties<'a>(secrets: &'a [Secret], policy: &'a str) -> Vec<SecretProperty<'a>> {
    secrets
        .iter()
        .map(|s| SecretProperty {
            name: &s.name,
            properties: SecretSource {
                policy,
                key: &s.key,
            },
        })
        .collect()
}

/// The `link` trait of `link`, to go on its source; its secrets (the provider's) on the
/// provider's side, through the secret policy `policy`.
fn link_trait<'a>(link: &'a Link, policy: &'a str) -> Trait<'a> {
    let (target, source_secrets, target_secrets) = match link.direction {
        Direction::ComponentToProvider => (&link.provider, &[][..], &link.secrets[..]),
        Direction::ProviderToComponent => (&link.component, &link.secrets[..], &[][..]),
    };
    let source_config = configs(link.source_config.as_ref());
    Trait::Link(LinkProperties {
        name: link.name.as_deref(),
        namespace: &link.namespace,
        package: &link.package,
        interfaces: &link.interfaces,
        source: (!source_config.is_empty() || !source_secrets.is_empty()).then(|| SourceConfig {
            config: source_config,
            secrets: secret_properties(source_secrets, policy),
        }),
        target: Target {
            name: target,
            config: configs(link.target_config.as_ref()),
            secrets: secret_properties(target_secrets, policy),
        },
    })
}

/// The traits of the component or provider `name`: its scaler (none for a shared provider's
/// reference), then the links it is the source of, in [`Application::links`] order.
fn traits<'a>(
    app: &'a Application,
    name: &str,
    direction: Direction,
    scaler: Option<Trait<'a>>,
) -> Vec<Trait<'a>> {
    let policy = policy_name(app);
    let sourced = app.links.iter().filter(|l| {
        l.direction == direction
            && match direction {
                Direction::ComponentToProvider => l.component == name,
                Direction::ProviderToComponent => l.provider == name,
            }
    });
    scaler
        .into_iter()
        .chain(sourced.map(|l| link_trait(l, policy)))
        .collect()
}

/// The name of the secret policy every secret of `app` resolves through.
fn policy_name(app: &Application) -> &str {
    app.secret_policy
        .as_ref()
        .map_or(super::SECRET_POLICY, |p| p.name.as_str())
}

/// The manifest of `app` as YAML text, with a generated-file header comment.
pub fn manifest(app: &Application) -> String {
    let policy = app.secret_policy.as_ref();
    let components = app.components.iter().map(|c| OamComponent {
        name: &c.name,
        kind: "component",
        properties: Properties {
            image: Some(&c.artifact.image),
            application: None,
            config: configs(c.config.as_ref()),
            secrets: secret_properties(&c.secrets, policy_name(app)),
        },
        traits: traits(
            app,
            &c.name,
            Direction::ComponentToProvider,
            Some(spreadscaler(&c.scale)),
        ),
    });
    // A provider of a shared application is referenced: wadm takes its image, config and
    // scaler from there, and refuses them here; the links are this application's.
    let providers = app.providers.iter().map(|p| match &p.shared {
        None => OamComponent {
            name: &p.name,
            kind: "capability",
            properties: Properties {
                image: Some(&p.image),
                application: None,
                config: configs(p.config.as_ref()),
                secrets: Vec::new(),
            },
            traits: traits(
                app,
                &p.name,
                Direction::ProviderToComponent,
                Some(daemonscaler(&p.scale)),
            ),
        },
        Some(shared) => OamComponent {
            name: &p.name,
            kind: "capability",
            properties: Properties {
                image: None,
                application: Some(SharedComponent {
                    name: shared,
                    component: &p.name,
                }),
                config: Vec::new(),
                secrets: Vec::new(),
            },
            traits: traits(app, &p.name, Direction::ProviderToComponent, None),
        },
    });
    let manifest = Manifest {
        api_version: API_VERSION,
        kind: KIND,
        metadata: Metadata {
            name: &app.name,
            annotations: Annotations {
                version: &app.version,
                description: app.description.as_deref(),
                project: &app.project,
                environment: &app.environment,
                lattice: &app.lattice,
                shared: app.shared.then_some("true"),
            },
        },
        spec: Spec {
            components: components.chain(providers).collect(),
            policies: policy
                .map(|p| Policy {
                    name: &p.name,
                    kind: SECRET_POLICY_TYPE,
                    properties: PolicyProperties {
                        backend: &p.backend,
                    },
                })
                .into_iter()
                .collect(),
        },
    };
    format!("{HEADER}{}", super::yaml(&manifest))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::*;
    use crate::build::emit::{ArtifactRef, Component, ComponentKind, Provider, SecretPolicy};
    use crate::spec::model::ProviderKind;

    fn config(name: &str, pairs: &[(&str, &str)]) -> Option<NamedConfig> {
        Some(NamedConfig {
            name: name.to_owned(),
            properties: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        })
    }

    fn scale(replicas: u32) -> Scale {
        Scale {
            replicas,
            spread: Vec::new(),
        }
    }

    /// A NATS-fed step publishing through NATS: one link each way.
    fn app() -> Application {
        Application {
            name: "p".to_owned(),
            project: "proj".to_owned(),
            environment: "dev".to_owned(),
            lattice: "lat".to_owned(),
            description: None,
            version: "sha-0123456789ab".to_owned(),
            components: vec![Component {
                name: "step".to_owned(),
                kind: ComponentKind::Step,
                artifact: ArtifactRef {
                    image: "reg.example/etl/p-step@sha256:00".to_owned(),
                    repository: "p-step".to_owned(),
                    manifest_digest: "sha256:00".to_owned(),
                    component_digest: "sha256:11".to_owned(),
                    imports: Vec::new(),
                    customer: None,
                },
                artifact_v2: None,
                scale: scale(2),
                config: config("p-step-runtime-aaaaaaaaaaaa", &[("step.k", "v")]),
                secrets: Vec::new(),
                grants: Vec::new(),
                egress: Vec::new(),
            }],
            providers: vec![Provider {
                name: "messaging-nats".to_owned(),
                kind: ProviderKind::MessagingNats,
                image: "wasmcloud+builtin://messaging-nats".to_owned(),
                config: None,
                scale: scale(2),
                shared: None,
            }],
            links: vec![
                Link {
                    direction: Direction::ProviderToComponent,
                    provider: "messaging-nats".to_owned(),
                    component: "step".to_owned(),
                    namespace: "wasmcloud".to_owned(),
                    package: "messaging".to_owned(),
                    interfaces: vec!["handler".to_owned()],
                    name: Some("step".to_owned()),
                    source_config: config(
                        "p-step-nats-in-bbbbbbbbbbbb",
                        &[("subscriptions", "a|q")],
                    ),
                    target_config: None,
                    secrets: Vec::new(),
                },
                Link {
                    direction: Direction::ComponentToProvider,
                    provider: "messaging-nats".to_owned(),
                    component: "step".to_owned(),
                    namespace: "wasmcloud".to_owned(),
                    package: "messaging".to_owned(),
                    interfaces: vec!["consumer".to_owned()],
                    name: None,
                    source_config: None,
                    target_config: None,
                    secrets: Vec::new(),
                },
            ],
            secret_policy: None,
            max_in_flight: None,
            shared: false,
            nodes: Vec::new(),
            jetstream: None,
        }
    }

    fn parse(yaml: &str) -> Value {
        serde_saphyr::from_str(yaml).expect("the manifest parses")
    }

    #[test]
    fn starts_with_the_header_then_the_manifest() {
        let yaml = manifest(&app());
        assert!(yaml.starts_with(HEADER), "{yaml}");
        assert_eq!(
            yaml.lines().nth(1),
            Some("apiVersion: core.oam.dev/v1beta1"),
            "{yaml}"
        );
        let doc = parse(&yaml);
        assert_eq!(doc["kind"], "Application");
        assert_eq!(doc["metadata"]["name"], "p");
    }

    #[test]
    fn annotations_are_always_there_and_description_only_when_set() {
        let doc = parse(&manifest(&app()));
        assert_eq!(
            doc["metadata"]["annotations"],
            json!({
                "version": "sha-0123456789ab",
                "etl.dev/project": "proj",
                "etl.dev/environment": "dev",
                "etl.dev/lattice": "lat",
            })
        );
        let mut described = app();
        described.description = Some("d".to_owned());
        let doc = parse(&manifest(&described));
        assert_eq!(doc["metadata"]["annotations"]["description"], "d");
    }

    #[test]
    fn each_link_is_a_trait_of_its_source_after_the_scaler() {
        let doc = parse(&manifest(&app()));
        let components = doc["spec"]["components"].as_array().unwrap();
        let names: Vec<_> = components.iter().map(|c| c["name"].clone()).collect();
        assert_eq!(names, [json!("step"), json!("messaging-nats")]);
        assert_eq!(components[0]["type"], "component");
        assert_eq!(components[1]["type"], "capability");

        let step = components[0]["traits"].as_array().unwrap();
        assert_eq!(
            step[0],
            json!({"type": "spreadscaler", "properties": {"instances": 2}})
        );
        assert_eq!(
            step[1],
            json!({"type": "link", "properties": {
                "namespace": "wasmcloud", "package": "messaging", "interfaces": ["consumer"],
                "target": {"name": "messaging-nats"},
            }}),
            "component -> provider: on the component, unnamed"
        );
        assert_eq!(step.len(), 2);

        let nats = components[1]["traits"].as_array().unwrap();
        assert_eq!(
            nats[0],
            json!({"type": "daemonscaler", "properties": {"instances": 1}}),
            "a provider runs once per host, wherever its components may run"
        );
        assert_eq!(
            nats[1],
            json!({"type": "link", "properties": {
                "name": "step",
                "namespace": "wasmcloud", "package": "messaging", "interfaces": ["handler"],
                "source": {"config": [{
                    "name": "p-step-nats-in-bbbbbbbbbbbb",
                    "properties": {"subscriptions": "a|q"},
                }]},
                "target": {"name": "step"},
            }}),
            "provider -> component: on the provider, named, configured on the source side"
        );
        assert_eq!(nats.len(), 2);
    }

    #[test]
    fn config_secrets_spread_and_policy() {
        let mut app = app();
        app.components[0].secrets = vec![crate::build::emit::Secret {
            name: "token".to_owned(),
            key: "backend/token".to_owned(),
        }];
        app.secret_policy = Some(SecretPolicy {
            name: "etl-secrets".to_owned(),
            backend: "nats-kv".to_owned(),
        });
        app.components[0].scale.spread = vec![
            Spread {
                name: "anywhere".to_owned(),
                requirements: BTreeMap::new(),
                weight: None,
            },
            Spread {
                name: "east".to_owned(),
                requirements: BTreeMap::from([("zone".to_owned(), "east".to_owned())]),
                weight: Some(60),
            },
        ];
        let doc = parse(&manifest(&app));
        let step = &doc["spec"]["components"][0];
        assert_eq!(
            step["properties"],
            json!({
                "image": "reg.example/etl/p-step@sha256:00",
                "config": [{"name": "p-step-runtime-aaaaaaaaaaaa", "properties": {"step.k": "v"}}],
                "secrets": [{"name": "token", "properties": {"policy": "etl-secrets", "key": "backend/token"}}],
            })
        );
        assert_eq!(
            step["traits"][0]["properties"]["spread"],
            json!([
                {"name": "anywhere", "requirements": {}},
                {"name": "east", "requirements": {"zone": "east"}, "weight": 60},
            ]),
            "requirements are written even when empty"
        );
        assert_eq!(
            doc["spec"]["policies"],
            json!([{
                "name": "etl-secrets",
                "type": "policy.secret.wasmcloud.dev/v1alpha1",
                "properties": {"backend": "nats-kv"},
            }])
        );
    }

    #[test]
    fn link_secrets_go_on_the_providers_side() {
        let mut app = app();
        let secret = |name: &str, key: &str| crate::build::emit::Secret {
            name: name.to_owned(),
            key: key.to_owned(),
        };
        app.links[0].secrets = vec![secret("nats_password", "nats-pw")];
        app.links[1].secrets = vec![secret("sasl_password", "kafka-pw")];
        app.links[0].source_config = None;
        let doc = parse(&manifest(&app));
        let components = doc["spec"]["components"].as_array().unwrap();
        assert_eq!(
            components[0]["traits"][1]["properties"]["target"],
            json!({"name": "messaging-nats", "secrets": [
                {"name": "sasl_password", "properties": {"policy": "etl-secrets", "key": "kafka-pw"}},
            ]}),
            "component -> provider: the target is the provider"
        );
        assert_eq!(
            components[1]["traits"][1]["properties"]["source"],
            json!({"secrets": [
                {"name": "nats_password", "properties": {"policy": "etl-secrets", "key": "nats-pw"}},
            ]}),
            "provider -> component: the source is the provider"
        );
        assert!(
            components[1]["traits"][1]["properties"]["target"]
                .get("secrets")
                .is_none()
        );
    }

    #[test]
    fn nothing_empty_is_written() {
        let mut app = app();
        app.components[0].config = None;
        app.links[0].source_config = None;
        let doc = parse(&manifest(&app));
        assert!(doc["spec"].get("policies").is_none());
        let step = &doc["spec"]["components"][0]["properties"];
        assert!(
            step.get("config").is_none() && step.get("secrets").is_none(),
            "{step}"
        );
        let nats = &doc["spec"]["components"][1];
        assert!(nats["properties"].get("config").is_none());
        assert!(nats["traits"][1]["properties"].get("source").is_none());
    }

    #[test]
    fn the_same_application_gives_the_same_bytes() {
        assert_eq!(manifest(&app()), manifest(&app()));
    }
}
