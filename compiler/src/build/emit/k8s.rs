//! The wasmCloud v2 `WorkloadDeployment` resources (`runtime.wasmcloud.dev/v1alpha1`) of an
//! [`Application`].
//!
//! The resources are built as the typed structs below, which mirror the part of the v2 CRD they
//! use, and serialized by serde-saphyr, which quotes every string YAML would read as something
//! else: no value is ever pasted into YAML text.
//!
//! What the translation decides (the reasons, and what is assumed of v2 hosts, are in
//! `docs/manifests.md`):
//! - one `WorkloadDeployment` per component, named `<pipeline>-<component>`: v2 scales a workload
//!   as a unit, and each step has its own replicas. There is no namespace: the resources are
//!   applied to a namespace chosen at deploy time. Providers get no resource: a v2 host serves
//!   the interfaces itself, configured per workload through `hostInterfaces`;
//! - v2 has no weighted spread, so a spread component gets one resource per share, named
//!   `<pipeline>-<component>-<share>`, whose `hostSelector` is the share's requirements and whose
//!   replicas are the share's part of the component's, split by weight (absent: 100, as wadm)
//!   with the largest-remainder method, ties to the earlier share; shares with no replica are
//!   left out;
//! - the component's runtime configuration is its `localResources.config` (what v2 serves
//!   through `wasi:config`); an HTTP sink may reach the host of its URL, and a step that calls
//!   out the hosts its grant names (`localResources.allowedHosts`: v2 denies every outgoing
//!   request otherwise);
//! - the links touching the component become one `hostInterfaces` entry per WIT package,
//!   unnamed (so it serves the component's unnamed import), their configs merged in link order;
//! - secrets come from the Kubernetes Secret `<pipeline>-<component>-secrets`: those the
//!   component reads itself through `secretFrom` on its `wasi:config` entry (the host layers
//!   that entry's config into the component's config store, where the settings part reads each
//!   under its setting name), a Kafka or S3 connector's credentials through `secretFrom` on the
//!   entry of that connector's package;
//! - the image is the component's wasmCloud v2 artifact (it imports `wasi:config/store`, which
//!   v2 hosts serve), and a messaging entry that delivers records to it gets `max_in_flight`
//!   (the application's, sized so the host's instance pool cannot run out).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Application, ArtifactRef, Component, Direction, Link, Secret};
use super::{is_dns_label, split_replicas};
use crate::spec::model::ProviderKind;
use crate::spec::model::Spread;
use crate::util::digest::sha256;

/// `apiVersion` of the resources.
pub const API_VERSION: &str = "runtime.wasmcloud.dev/v1alpha1";
/// `kind` of the resources.
pub const KIND: &str = "WorkloadDeployment";
/// The first line of every manifest.
pub const HEADER: &str = super::HEADER;
/// Weight of a spread share that sets none (wadm's default).
pub use super::DEFAULT_WEIGHT;
/// `wasmcloud:messaging` version the composed components import, when their imports do not say.
pub const MESSAGING_VERSION: &str = "0.2.0";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadDeployment {
    api_version: &'static str,
    kind: &'static str,
    metadata: ObjectMeta,
    spec: DeploymentSpec,
}

#[derive(Serialize)]
struct ObjectMeta {
    name: String,
    labels: BTreeMap<&'static str, String>,
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct DeploymentSpec {
    replicas: u32,
    template: Template,
}

#[derive(Serialize)]
struct Template {
    labels: BTreeMap<&'static str, String>,
    spec: WorkloadSpec,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct WorkloadSpec {
    components: Vec<WorkloadComponent>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    host_interfaces: Vec<HostInterface>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    host_selector: BTreeMap<String, String>,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct WorkloadComponent {
    name: String,
    image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_resources: Option<LocalResources>,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct LocalResources {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_hosts: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    config: BTreeMap<String, String>,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct HostInterface {
    namespace: String,
    package: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    interfaces: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    config: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secret_from: Vec<ObjectReference>,
}

#[derive(Serialize, Clone)]
struct ObjectReference {
    name: String,
}

/// The resources of `app` as one multi-document YAML text: a header comment, then every resource
/// as a document opened by `---`, components in order, the shares of a component in spread order.
pub fn manifests(app: &Application) -> String {
    let mut out = String::from(HEADER);
    for component in &app.components {
        for resource in resources(app, component) {
            out.push_str("---\n");
            out.push_str(&super::yaml(&resource));
        }
    }
    out
}

/// The resources of one component: one, or one per spread share that gets replicas.
fn resources(app: &Application, component: &Component) -> Vec<WorkloadDeployment> {
    let base = format!("{}-{}", app.name, component.name);
    let spec = WorkloadSpec {
        components: vec![WorkloadComponent {
            name: component.name.clone(),
            image: artifact(component).image.clone(),
            local_resources: local_resources(component, &links_of(app, component)),
        }],
        host_interfaces: host_interfaces(app, component),
        host_selector: BTreeMap::new(),
    };
    let mut labels = BTreeMap::new();
    for (key, value) in [
        ("app.kubernetes.io/name", app.name.as_str()),
        ("app.kubernetes.io/component", component.name.as_str()),
        ("app.kubernetes.io/part-of", app.project.as_str()),
        ("app.kubernetes.io/managed-by", "etl"),
        ("etl.dev/environment", app.environment.as_str()),
    ] {
        // Names are checked as labels where they name Kubernetes objects; a project or
        // environment name the label syntax refuses is left out rather than made up.
        if is_label_value(value) {
            labels.insert(key, value.to_owned());
        }
    }
    let mut annotations = BTreeMap::from([("etl.dev/version", app.version.clone())]);
    if let Some(description) = &app.description {
        annotations.insert("etl.dev/description", description.clone());
    }
    let providers: BTreeSet<&str> = links_of(app, component)
        .iter()
        .map(|l| l.provider.as_str())
        .collect();
    if !providers.is_empty() {
        annotations.insert(
            "etl.dev/providers",
            providers.into_iter().collect::<Vec<_>>().join(","),
        );
    }
    let secrets = delivered_secrets(app, component);
    if !secrets.is_empty() {
        let map: BTreeMap<&str, &str> = secrets
            .iter()
            .map(|s| (s.name.as_str(), s.key.as_str()))
            .collect();
        annotations.insert(
            "etl.dev/secrets",
            serde_json::to_string(&map).expect("string maps serialize"),
        );
    }
    let resource =
        |name: String, replicas: u32, share: Option<(&Spread, String)>| -> WorkloadDeployment {
            let mut labels = labels.clone();
            let mut annotations = annotations.clone();
            let mut spec = spec.clone();
            if let Some((spread, suffix)) = share {
                labels.insert("etl.dev/spread", suffix);
                annotations.insert("etl.dev/spread", spread.name.clone());
                spec.host_selector = spread.requirements.clone();
            }
            WorkloadDeployment {
                api_version: API_VERSION,
                kind: KIND,
                metadata: ObjectMeta {
                    name,
                    labels: labels.clone(),
                    annotations,
                },
                spec: DeploymentSpec {
                    replicas,
                    template: Template { labels, spec },
                },
            }
        };
    if component.scale.spread.is_empty() {
        return vec![resource(base, component.scale.replicas, None)];
    }
    split_replicas(component.scale.replicas, &component.scale.spread)
        .into_iter()
        .zip(&component.scale.spread)
        .filter(|(replicas, _)| *replicas > 0)
        .map(|(replicas, spread)| {
            let suffix = share_suffix(&spread.name);
            resource(format!("{base}-{suffix}"), replicas, Some((spread, suffix)))
        })
        .collect()
}

/// The artifact a v2 host runs: the component's v2 one, or, in a plan of an earlier version
/// that built one artifact per step, that one (what those versions wrote).
fn artifact(component: &Component) -> &ArtifactRef {
    component
        .artifact_v2
        .as_ref()
        .unwrap_or(&component.artifact)
}

/// The name of the Kubernetes Secret that holds the secrets of `component`.
fn secret_name(app: &Application, component: &Component) -> String {
    format!("{}-{}-secrets", app.name, component.name)
}

/// Whether a v2 host reads the credentials of a link to `provider` from the config of its
/// interface: the Kafka and S3 connectors' (NATS is the host's own connection; the HTTP client
/// has no credentials of its own).
fn reads_link_secrets(provider: &str) -> bool {
    provider == ProviderKind::MessagingKafka.name() || provider == ProviderKind::BlobstoreS3.name()
}

/// Every secret the component's Secret must hold: those the component reads, then its Kafka
/// and S3 links' credentials.
fn delivered_secrets<'a>(app: &'a Application, component: &'a Component) -> Vec<&'a Secret> {
    let links = links_of(app, component);
    let linked = links
        .into_iter()
        .filter(|l| reads_link_secrets(&l.provider))
        .flat_map(|l| &l.secrets);
    component.secrets.iter().chain(linked).collect()
}

/// The links of `component`, in application order (records in first).
fn links_of<'a>(app: &'a Application, component: &Component) -> Vec<&'a Link> {
    app.links
        .iter()
        .filter(|l| l.component == component.name)
        .collect()
}

/// What a spread share adds to its resource name and puts in its `etl.dev/spread` label: the
/// spread name when it is a DNS label, else a DNS label made of it and a hash of it (spread names
/// may hold upper case and `_`).
fn share_suffix(name: &str) -> String {
    if is_dns_label(name) {
        return name.to_owned();
    }
    let mut base: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    base.truncate(54);
    let base = base.trim_matches('-');
    let hash = sha256(name.as_bytes());
    let hash = &hash.trim_start_matches("sha256:")[..8];
    if base.is_empty() {
        hash.to_owned()
    } else {
        format!("{base}-{hash}")
    }
}

/// A Kubernetes label value: at most 63 characters, alphanumerics, `-`, `_` and `.`, starting
/// and ending with an alphanumeric (or empty).
fn is_label_value(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| alnum(b) || b == b'-' || b == b'_' || b == b'.')
            && s.bytes().next().is_some_and(alnum)
            && s.bytes().last().is_some_and(alnum))
}

/// The component's runtime configuration, and the hosts it may call: those its grant names (a
/// step that calls out), or the host its HTTP sink posts to.
fn local_resources(component: &Component, links: &[&Link]) -> Option<LocalResources> {
    let config = component
        .config
        .as_ref()
        .map(|c| c.properties.clone())
        .unwrap_or_default();
    let posts = links.iter().any(|l| {
        l.direction == Direction::ComponentToProvider
            && l.namespace == "wasi"
            && l.package == "http"
            && l.interfaces.iter().any(|i| i == "outgoing-handler")
    });
    let allowed_hosts: Vec<String> = if !component.egress.is_empty() {
        component.egress.clone()
    } else if posts {
        config
            .get("etl.out.url")
            .map(String::as_str)
            .and_then(allowed_host)
            .into_iter()
            .collect()
    } else {
        Vec::new()
    };
    (!config.is_empty() || !allowed_hosts.is_empty()).then_some(LocalResources {
        allowed_hosts,
        config,
    })
}

/// The `allowedHosts` entry of a URL: `scheme://host[:port]`, or `None` when the URL has a form
/// the CRD's pattern refuses (no scheme, an IP v6 literal, an empty host).
fn allowed_host(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'.' || b == b'-');
    if !scheme_ok {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    if !host.split('.').all(label_ok) || !port_ok {
        return None;
    }
    Some(match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// One `hostInterfaces` entry per WIT package the component's links use, plus `wasi:config` when
/// the component imports it, in (namespace, package) order.
fn host_interfaces(app: &Application, component: &Component) -> Vec<HostInterface> {
    let mut entries: BTreeMap<(String, String), HostInterface> = BTreeMap::new();
    let links = links_of(app, component);
    for link in &links {
        let entry = entries
            .entry((link.namespace.clone(), link.package.clone()))
            .or_insert_with(|| HostInterface {
                namespace: link.namespace.clone(),
                package: link.package.clone(),
                version: None,
                interfaces: Vec::new(),
                config: BTreeMap::new(),
                secret_from: Vec::new(),
            });
        for interface in &link.interfaces {
            if !entry.interfaces.contains(interface) {
                entry.interfaces.push(interface.clone());
            }
        }
        for config in [&link.source_config, &link.target_config]
            .into_iter()
            .flatten()
        {
            entry.config.extend(translate(link, &config.properties));
        }
        if !link.secrets.is_empty() && reads_link_secrets(&link.provider) {
            let name = secret_name(app, component);
            if !entry.secret_from.iter().any(|r| r.name == name) {
                entry.secret_from.push(ObjectReference { name });
            }
        }
    }
    for ((namespace, package), entry) in &mut entries {
        entry.interfaces.sort();
        match (namespace.as_str(), package.as_str()) {
            ("wasmcloud", "messaging") => {
                entry.version = Some(
                    import_version(component, namespace, package)
                        .unwrap_or_else(|| MESSAGING_VERSION.to_owned()),
                );
                if let Some(n) = app.max_in_flight
                    && entry.interfaces.iter().any(|i| i == "handler")
                {
                    entry
                        .config
                        .entry("max_in_flight".to_owned())
                        .or_insert_with(|| n.to_string());
                }
            }
            ("wasi", "http") if entry.interfaces.iter().any(|i| i == "incoming-handler") => {
                entry
                    .config
                    .entry("host".to_owned())
                    .or_insert_with(|| format!("{}-{}", app.name, component.name));
            }
            ("wasi", "blobstore") => {
                if let Some(bucket) = component
                    .config
                    .as_ref()
                    .and_then(|c| c.properties.get("etl.out.container"))
                {
                    entry
                        .config
                        .entry("buckets".to_owned())
                        .or_insert_with(|| bucket.clone());
                }
            }
            _ => {}
        }
    }
    let config_interfaces: BTreeSet<&str> = artifact(component)
        .imports
        .iter()
        .filter_map(|i| parse_import(i))
        .filter(|(ns, pkg, _, _)| *ns == "wasi" && *pkg == "config")
        .map(|(_, _, interface, _)| interface)
        .collect();
    if !config_interfaces.is_empty() {
        entries
            .entry(("wasi".to_owned(), "config".to_owned()))
            .or_insert_with(|| HostInterface {
                namespace: "wasi".to_owned(),
                package: "config".to_owned(),
                version: import_version(component, "wasi", "config"),
                interfaces: config_interfaces.into_iter().map(str::to_owned).collect(),
                config: BTreeMap::new(),
                // The component's own secrets, layered into its config store.
                secret_from: if component.secrets.is_empty() {
                    Vec::new()
                } else {
                    vec![ObjectReference {
                        name: secret_name(app, component),
                    }]
                },
            });
    }
    entries.into_values().collect()
}

/// A link's configuration as a v2 host reads it.
///
/// - NATS `subscriptions` (`subject|queue,…`, the 1.x provider's syntax) become the subjects
///   alone and `consumer_group`: the v2 messaging host takes the group as its own key, and the
///   shares of a spread are separate workloads, so they must name the group to share it;
/// - the 1.x HTTP server's routing keys (`path`, `address`) are dropped: a v2 host routes
///   incoming requests by host name (`host`), never by path or listen address;
/// - the 1.x provider's NATS address (`cluster_uris`) is dropped: a v2 host uses its own;
/// - everything else is kept as it is.
fn translate(link: &Link, properties: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = properties.clone();
    // Where the 1.x provider connects; a v2 host uses its own NATS connection.
    if link.provider == ProviderKind::MessagingNats.name() {
        out.remove("cluster_uris");
    }
    if link.direction != Direction::ProviderToComponent {
        return out;
    }
    if link.provider == ProviderKind::MessagingNats.name() {
        if let Some(subscriptions) = out.remove("subscriptions") {
            let mut subjects = Vec::new();
            let mut group = None;
            for entry in subscriptions.split(',').filter(|e| !e.is_empty()) {
                match entry.split_once('|') {
                    Some((subject, queue)) => {
                        subjects.push(subject);
                        group.get_or_insert(queue);
                    }
                    None => subjects.push(entry),
                }
            }
            out.insert("subscriptions".to_owned(), subjects.join(","));
            if let Some(group) = group {
                out.insert("consumer_group".to_owned(), group.to_owned());
            }
        }
    } else if link.provider == ProviderKind::HttpServer.name() {
        out.remove("path");
        out.remove("address");
    }
    out
}

/// `(namespace, package, interface, version)` of an import `ns:pkg/iface@ver`.
fn parse_import(import: &str) -> Option<(&str, &str, &str, Option<&str>)> {
    let (ns, rest) = import.split_once(':')?;
    let (pkg, rest) = rest.split_once('/')?;
    let (interface, version) = match rest.split_once('@') {
        Some((i, v)) => (i, Some(v)),
        None => (rest, None),
    };
    Some((ns, pkg, interface, version))
}

/// The version the component imports a package at, when all its imports of it agree on one.
fn import_version(component: &Component, namespace: &str, package: &str) -> Option<String> {
    let versions: BTreeSet<&str> = artifact(component)
        .imports
        .iter()
        .filter_map(|i| parse_import(i))
        .filter(|(ns, pkg, _, _)| *ns == namespace && *pkg == package)
        .filter_map(|(_, _, _, v)| v)
        .collect();
    (versions.len() == 1).then(|| versions.into_iter().next().expect("one").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(name: &str, weight: Option<u32>) -> Spread {
        Spread {
            name: name.to_owned(),
            requirements: BTreeMap::new(),
            weight,
        }
    }

    #[test]
    fn replicas_split_by_largest_remainder() {
        let s = |w: &[Option<u32>]| -> Vec<Spread> {
            w.iter()
                .enumerate()
                .map(|(i, w)| spread(&format!("s{i}"), *w))
                .collect()
        };
        assert_eq!(split_replicas(3, &s(&[Some(60), Some(40)])), [2, 1]);
        assert_eq!(split_replicas(3, &s(&[Some(40), Some(60)])), [1, 2]);
        // Absent weights are 100 each; the tie goes to the earlier share.
        assert_eq!(split_replicas(3, &s(&[None, None])), [2, 1]);
        assert_eq!(split_replicas(2, &s(&[None, None, None])), [1, 1, 0]);
        assert_eq!(split_replicas(3, &s(&[Some(50), None])), [1, 2]);
        assert_eq!(split_replicas(4, &s(&[Some(0), Some(100)])), [0, 4]);
        assert_eq!(split_replicas(3, &s(&[Some(0), Some(0)])), [2, 1]);
        assert_eq!(
            split_replicas(10, &s(&[Some(1), Some(1), Some(1)])),
            [4, 3, 3]
        );
        assert_eq!(
            split_replicas(7, &s(&[Some(10), Some(20), Some(70)])),
            [1, 1, 5]
        );
        assert_eq!(
            split_replicas(u32::MAX, &s(&[Some(u32::MAX), Some(u32::MAX)])),
            [u32::MAX / 2 + 1, u32::MAX / 2]
        );
        for replicas in 0..20 {
            let shares = split_replicas(replicas, &s(&[Some(3), Some(7), None, Some(1)]));
            assert_eq!(shares.iter().sum::<u32>(), replicas);
        }
    }

    #[test]
    fn share_suffixes_are_dns_labels() {
        assert_eq!(share_suffix("eu-west"), "eu-west");
        let odd = share_suffix("EU_West");
        assert!(odd.starts_with("eu-west-") && odd.len() == "eu-west-".len() + 8);
        assert_ne!(share_suffix("EU_West"), share_suffix("eu_west"));
        for name in ["___", "-a-", &"X".repeat(200), "a_b", "Zone1"] {
            let suffix = share_suffix(name);
            assert!(is_dns_label(&suffix), "{name:?} -> {suffix:?}");
        }
    }

    #[test]
    fn label_values() {
        for ok in ["", "a", "a.b_c-d", "A1", &"a".repeat(63)] {
            assert!(is_label_value(ok), "{ok:?}");
        }
        for bad in ["-a", "a-", "_a", "a b", "a/b", &"a".repeat(64)] {
            assert!(!is_label_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn allowed_hosts_of_urls() {
        let a = |u: &str| allowed_host(u);
        assert_eq!(
            a("https://hooks.example.com/alerts?x=1").as_deref(),
            Some("https://hooks.example.com")
        );
        assert_eq!(
            a("http://user:pw@api.example.com:8443/x").as_deref(),
            Some("http://api.example.com:8443")
        );
        assert_eq!(
            a("http://localhost:8080").as_deref(),
            Some("http://localhost:8080")
        );
        assert_eq!(a("hooks.example.com/alerts"), None);
        assert_eq!(a("http://[::1]:8080/"), None);
        assert_eq!(a("http:///x"), None);
        assert_eq!(a("http://a..b/"), None);
        assert_eq!(a("http://a:99999x/"), None);
    }

    #[test]
    fn nats_subscriptions_become_subjects_and_a_group() {
        let link = Link {
            direction: Direction::ProviderToComponent,
            provider: ProviderKind::MessagingNats.name().to_owned(),
            component: "c".to_owned(),
            namespace: "wasmcloud".to_owned(),
            package: "messaging".to_owned(),
            interfaces: vec!["handler".to_owned()],
            name: Some("c".to_owned()),
            source_config: None,
            target_config: None,
            secrets: Vec::new(),
        };
        let props = BTreeMap::from([
            ("subscriptions".to_owned(), "a.b|q,c.>|q".to_owned()),
            ("other".to_owned(), "x".to_owned()),
        ]);
        let out = translate(&link, &props);
        assert_eq!(out["subscriptions"], "a.b,c.>");
        assert_eq!(out["consumer_group"], "q");
        assert_eq!(out["other"], "x");
    }
}
