//! A `workload.start` request for one replica of a `WorkloadDeployment`, as the runtime
//! operator builds it (`reconcilePlacement` in `workload_controller.go`): config layers
//! materialized from ConfigMaps and Secrets (`MaterializeConfigLayer` in `utils.go`), local
//! resources passed through, Service DNS aliases injected.

use std::collections::BTreeMap;

use super::manifest::{self, ConfigLayer, Map, WorkloadSpec};
use super::proto;

/// Where config layers find ConfigMaps and Secrets: the bundle's ConfigMaps, then the secrets
/// file's resources.
pub struct Sources<'a> {
    /// The namespace (environment), for messages.
    pub namespace: &'a str,
    /// ConfigMaps of the bundle file.
    pub bundle_config_maps: &'a BTreeMap<String, Map>,
    /// Secrets and ConfigMaps of the secrets file.
    pub resources: &'a manifest::Resources,
}

impl Sources<'_> {
    fn config_map(&self, name: &str) -> Option<&Map> {
        self.bundle_config_maps
            .get(name)
            .or_else(|| self.resources.config_maps.get(name))
    }

    /// `MaterializeConfigLayer`: `config`, then each `configFrom` ConfigMap's data, then each
    /// `secretFrom` Secret's data, later keys winning.
    fn materialize(&self, layer: &ConfigLayer, what: &str) -> Result<Map, String> {
        let mut out = layer.config.clone();
        for r in &layer.config_from {
            let data = self.config_map(&r.name).ok_or_else(|| {
                format!(
                    "ConfigMap {}/{} not found (configFrom of {what}): neither the bundle nor \
                     the secrets file has it",
                    self.namespace, r.name
                )
            })?;
            out.extend(data.clone());
        }
        for r in &layer.secret_from {
            let data = self.resources.secrets.get(&r.name).ok_or_else(|| {
                format!(
                    "Secret {}/{} not found (secretFrom of {what}): give it in the \
                     controller's secrets file",
                    self.namespace, r.name
                )
            })?;
            out.extend(data.clone());
        }
        Ok(out)
    }

    /// `materializeLocalResources`.
    fn local_resources(
        &self,
        spec: Option<&manifest::LocalResources>,
        what: &str,
    ) -> Result<proto::LocalResources, String> {
        let Some(spec) = spec else {
            return Ok(proto::LocalResources::default());
        };
        Ok(proto::LocalResources {
            config: spec.config.clone(),
            environment: match &spec.environment {
                Some(layer) => self.materialize(layer, &format!("{what}'s environment"))?,
                None => Map::new(),
            },
            volume_mounts: spec
                .volume_mounts
                .iter()
                .flatten()
                .map(|m| proto::VolumeMount {
                    name: m.name.clone(),
                    mount_path: m.mount_path.clone(),
                    read_only: m.read_only,
                })
                .collect(),
            allowed_hosts: spec.allowed_hosts.clone(),
            allowed_ip_name_lookups: spec.allowed_ip_name_lookups.clone(),
            allowed_host_loopback_ports: spec.allowed_host_loopback_ports.clone(),
        })
    }
}

/// What the operator supports and this controller does not: a reason, or nothing. Checked
/// before anything is started, so that such a deployment is `failed` with the reason.
pub fn unsupported(d: &manifest::WorkloadDeployment) -> Option<String> {
    if d.spec.replicas < 0 {
        return Some(format!("replicas {} is negative", d.spec.replicas));
    }
    if !d.spec.artifacts.is_empty() {
        return Some(
            "spec.artifacts (Artifact resources) are not supported by etl-controller".into(),
        );
    }
    let spec = &d.spec.template.spec;
    for c in &spec.components {
        if c.image_pull_secret.is_some() {
            return Some(format!(
                "component {}: imagePullSecret is not supported by etl-controller (hosts pull \
                 with their own registry credentials)",
                c.name
            ));
        }
        if c.image.starts_with("artifact://") {
            return Some(format!(
                "component {}: artifact:// images are not supported by etl-controller",
                c.name
            ));
        }
    }
    if spec
        .service
        .as_ref()
        .is_some_and(|s| s.image_pull_secret.is_some())
    {
        return Some(
            "service: imagePullSecret is not supported by etl-controller (hosts pull with \
             their own registry credentials)"
                .into(),
        );
    }
    None
}

/// The parts of a start request every replica of a deployment shares: everything but the
/// workload's name, id and annotations. Fails, naming it, when a ConfigMap or Secret is
/// missing.
pub struct Template {
    service: Option<proto::Service>,
    components: Vec<proto::Component>,
    host_interfaces: Vec<proto::WitInterface>,
    volumes: Vec<proto::Volume>,
}

impl Template {
    /// Materializes `spec` (the effective template) for `sources.namespace`.
    pub fn new(spec: &WorkloadSpec, sources: &Sources<'_>) -> Result<Template, String> {
        let namespace = sources.namespace;
        let mut host_interfaces = Vec::new();
        for hi in &spec.host_interfaces {
            let layer = ConfigLayer {
                config_from: hi.config_from.clone(),
                secret_from: hi.secret_from.clone(),
                config: hi.config.clone(),
            };
            let what = format!("host interface {}:{}", hi.namespace, hi.package);
            host_interfaces.push(proto::WitInterface {
                namespace: hi.namespace.clone(),
                package: hi.package.clone(),
                version: hi.version.clone(),
                interfaces: hi.interfaces.clone(),
                config: sources.materialize(&layer, &what)?,
                name: hi.name.clone(),
            });
        }
        let mut components = Vec::new();
        for c in &spec.components {
            components.push(proto::Component {
                image: c.image.clone(),
                local_resources: sources.local_resources(
                    c.local_resources.as_ref(),
                    &format!("component {}", c.name),
                )?,
                pool_size: c.pool_size,
                max_invocations: c.max_invocations,
                name: c.name.clone(),
                image_pull_policy: proto::pull_policy(&c.image_pull_policy),
                max_concurrency: c.max_concurrency,
            });
        }
        // `injectServiceDNSAliases`.
        if let Some(service) = spec.kubernetes.as_ref().and_then(|k| k.service.as_ref()) {
            let aliases = format!("{0}.{namespace},{0}.{namespace}.svc", service.name);
            for hi in &mut host_interfaces {
                if hi.namespace == "wasi"
                    && hi.package == "http"
                    && hi.interfaces.iter().any(|i| i == "incoming-handler")
                {
                    hi.config.insert("host-aliases".to_owned(), aliases.clone());
                }
            }
        }
        let service = match &spec.service {
            Some(s) => Some(proto::Service {
                image: s.image.clone(),
                local_resources: sources.local_resources(s.local_resources.as_ref(), "service")?,
                max_restarts: (s.max_restarts != 0).then(|| s.max_restarts.to_string()),
                image_pull_policy: proto::pull_policy(&s.image_pull_policy),
            }),
            None => None,
        };
        let volumes = spec
            .volumes
            .iter()
            .map(|v| proto::Volume {
                name: v.name.clone(),
                host_path: if v.ephemeral.is_some() {
                    None
                } else {
                    v.host_path.as_ref().map(|h| proto::HostPathVolume {
                        local_path: h.path.clone(),
                    })
                },
                empty_dir: v.ephemeral.as_ref().map(|_| manifest::Empty {}),
            })
            .collect();
        Ok(Template {
            service,
            components,
            host_interfaces,
            volumes,
        })
    }

    /// The request's JSON for one workload. The bytes hold materialized Secrets: send them,
    /// never log them.
    pub fn request(&self, namespace: &str, name: &str, id: &str, annotations: &Map) -> Vec<u8> {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Request<'a> {
            workload: Workload<'a>,
            workload_id: &'a str,
        }
        // `proto::Workload` borrowed: the template is shared by every replica.
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Workload<'a> {
            namespace: &'a str,
            name: &'a str,
            #[serde(skip_serializing_if = "Map::is_empty")]
            annotations: &'a Map,
            #[serde(skip_serializing_if = "Option::is_none")]
            service: &'a Option<proto::Service>,
            wit_world: WitWorld<'a>,
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            volumes: &'a [proto::Volume],
        }
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct WitWorld<'a> {
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            components: &'a [proto::Component],
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            host_interfaces: &'a [proto::WitInterface],
        }
        serde_json::to_vec(&Request {
            workload: Workload {
                namespace,
                name,
                annotations,
                service: &self.service,
                wit_world: WitWorld {
                    components: &self.components,
                    host_interfaces: &self.host_interfaces,
                },
                volumes: &self.volumes,
            },
            workload_id: id,
        })
        .expect("a start request serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::manifest::Manifest;

    const MANIFEST: &str = "\
apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: WorkloadDeployment
metadata:
  name: p-alerts
spec:
  kubernetes:
    service:
      name: web
  template:
    spec:
      components:
      - name: alerts
        image: r/alerts@sha256:00
        imagePullPolicy: IfNotPresent
        poolSize: 4
        localResources:
          config:
            url: https://example.com
          environment:
            config:
              A: inline
            configFrom:
            - name: env
          allowedHosts: [example.com]
      hostInterfaces:
      - namespace: wasi
        package: config
        version: 0.2.0-rc.1
        interfaces: [store]
        config:
          authorization: placeholder
          other: kept
        secretFrom:
        - name: p-alerts-secrets
      - namespace: wasi
        package: http
        interfaces: [incoming-handler]
        config:
          host: p-alerts
      volumes:
      - name: scratch
        ephemeral: {}
";

    fn resources() -> manifest::Resources {
        manifest::Resources::read(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: p-alerts-secrets\nstringData:\n  \
             authorization: Bearer s3cret\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  \
             name: env\ndata:\n  A: from-map\n  B: b\n",
            "dev",
        )
        .unwrap()
    }

    #[test]
    fn materializes_as_the_operator_does() {
        let m = Manifest::read("k8s/p.yaml", MANIFEST.as_bytes(), "dev").unwrap();
        let d = &m.deployments[0];
        assert_eq!(unsupported(d), None);
        let resources = resources();
        let sources = Sources {
            namespace: "dev",
            bundle_config_maps: &m.config_maps,
            resources: &resources,
        };
        let template = Template::new(&d.effective_template(), &sources).unwrap();
        let annotations = Map::from([("etl.dev/project".to_owned(), "p".to_owned())]);
        let bytes = template.request("dev", "p-alerts-x-0", "id-0", &annotations);
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "workload": {
                    "namespace": "dev",
                    "name": "p-alerts-x-0",
                    "annotations": {"etl.dev/project": "p"},
                    "witWorld": {
                        "components": [{
                            "image": "r/alerts@sha256:00",
                            "localResources": {
                                "config": {"url": "https://example.com"},
                                "environment": {"A": "from-map", "B": "b"},
                                "allowedHosts": ["example.com"]
                            },
                            "poolSize": 4,
                            "name": "alerts",
                            "imagePullPolicy": "IMAGE_PULL_POLICY_IF_NOT_PRESENT"
                        }],
                        "hostInterfaces": [
                            {"namespace": "wasi", "package": "config", "version": "0.2.0-rc.1",
                             "interfaces": ["store"],
                             "config": {"authorization": "Bearer s3cret", "other": "kept"}},
                            {"namespace": "wasi", "package": "http",
                             "interfaces": ["incoming-handler"],
                             "config": {"host": "p-alerts",
                                        "host-aliases": "web.dev,web.dev.svc"}}
                        ]
                    },
                    "volumes": [{"name": "scratch", "emptyDir": {}}]
                },
                "workloadId": "id-0"
            })
        );
    }

    #[test]
    fn a_missing_secret_is_named_and_its_values_are_not() {
        let m = Manifest::read("k8s/p.yaml", MANIFEST.as_bytes(), "dev").unwrap();
        let empty = manifest::Resources::default();
        let sources = Sources {
            namespace: "dev",
            bundle_config_maps: &m.config_maps,
            resources: &empty,
        };
        let e = Template::new(&m.deployments[0].effective_template(), &sources)
            .err()
            .unwrap();
        assert_eq!(
            e,
            "Secret dev/p-alerts-secrets not found (secretFrom of host interface wasi:config): \
             give it in the controller's secrets file"
        );
        let mut only_secret = resources();
        only_secret.config_maps.clear();
        let sources = Sources {
            resources: &only_secret,
            ..sources
        };
        let e = Template::new(&m.deployments[0].effective_template(), &sources)
            .err()
            .unwrap();
        assert_eq!(
            e,
            "ConfigMap dev/env not found (configFrom of component alerts's environment): \
             neither the bundle nor the secrets file has it"
        );
        assert!(!e.contains("s3cret"));
    }

    /// What `etl compile` writes for the example (the golden files, insta's header stripped).
    fn golden(env: &str) -> String {
        let path = format!(
            "{}/../golden/iot-sensors/{env}__k8s__sensor-ingest.yaml.snap",
            env!("CARGO_MANIFEST_DIR")
        );
        let snap = std::fs::read_to_string(&path).unwrap();
        let body = snap.splitn(3, "---\n").nth(2).unwrap();
        body.to_owned()
    }

    #[test]
    fn the_compilers_manifests_materialize_with_their_secret() {
        for (env, deployments) in [("dev", 5), ("staging", 5), ("prod", 10)] {
            let text = golden(env);
            let m = Manifest::read("k8s/sensor-ingest.yaml", text.as_bytes(), env).unwrap();
            assert_eq!(m.deployments.len(), deployments, "{env}");
            let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: \
                          sensor-ingest-alerts-secrets\nstringData:\n  authorization: Bearer t\n";
            let resources = manifest::Resources::read(secret, env).unwrap();
            let sources = Sources {
                namespace: env,
                bundle_config_maps: &m.config_maps,
                resources: &resources,
            };
            for d in &m.deployments {
                assert_eq!(unsupported(d), None, "{env} {}", d.metadata.name);
                Template::new(&d.effective_template(), &sources)
                    .unwrap_or_else(|e| panic!("{env} {}: {e}", d.metadata.name));
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let pull_secret = MANIFEST.replace(
            "        imagePullPolicy: IfNotPresent\n",
            "        imagePullSecret:\n          name: creds\n",
        );
        let m = Manifest::read("k8s/p.yaml", pull_secret.as_bytes(), "dev").unwrap();
        assert!(
            unsupported(&m.deployments[0])
                .unwrap()
                .contains("imagePullSecret")
        );
        let negative =
            MANIFEST.replace("spec:\n  kubernetes", "spec:\n  replicas: -1\n  kubernetes");
        let m = Manifest::read("k8s/p.yaml", negative.as_bytes(), "dev").unwrap();
        assert_eq!(
            unsupported(&m.deployments[0]).unwrap(),
            "replicas -1 is negative"
        );
    }
}
