//! Stage `bundle`: the deployment bundle of each environment of a plan ([`crate::oci::bundle`]):
//! its facts, taken from the plan alone, and its files, the environment's manifests exactly as
//! `dist/<env>/wadm/` and `dist/<env>/k8s/` hold them ([`dist::manifest_files`] writes both).
//! `etl compile` packages one per environment into `dist/oci/`; `etl promote` builds the target
//! environment's again from the re-pinned plan.

use std::collections::BTreeMap;

use crate::build::dist::{self, Plan, UnknownEnvironment};
use crate::build::emit::{self, Application};
use crate::build::generation::Generation;
use crate::oci::bundle::{
    API_VERSION, ApplicationFacts, ArtifactFacts, Bundle, Facts, KIND, PipelineFacts,
};

/// The bundle of environment `env` of `plan`.
pub fn bundle(plan: &Plan, env: &str) -> Result<Bundle, UnknownEnvironment> {
    let apps = plan.deployments_of(env)?;
    let prefix = format!("{env}/");
    let files = dist::manifest_files(env, apps)
        .into_iter()
        .map(|(path, bytes)| {
            let path = path
                .strip_prefix(&prefix)
                .expect("manifest files are under their environment")
                .to_owned();
            (path, bytes)
        })
        .collect();
    Ok(Bundle {
        facts: facts(plan, env, apps),
        files,
    })
}

/// The bundle of every environment `plan` deploys to, by environment.
pub fn bundles(plan: &Plan) -> BTreeMap<String, Bundle> {
    plan.deployments
        .keys()
        .map(|env| {
            let bundle = bundle(plan, env).expect("the plan deploys to its own environments");
            (env.clone(), bundle)
        })
        .collect()
}

/// The facts of the applications `apps` (by pipeline) of environment `env` of `plan`: the
/// shared applications first, then the pipelines, each by name (the order to deploy them in);
/// and the graph of each pipeline, by name, as its application records it (none for an
/// application of a plan of an earlier version).
fn facts(plan: &Plan, env: &str, apps: &BTreeMap<String, Application>) -> Facts {
    let shared = emit::shared_applications(apps.values());
    let mut applications: Vec<ApplicationFacts> =
        shared.values().map(|app| application(app, None)).collect();
    applications.extend(
        apps.iter()
            .map(|(pipeline, app)| application(app, Some(pipeline))),
    );
    Facts {
        api_version: API_VERSION.to_owned(),
        kind: KIND.to_owned(),
        project: plan.project.clone(),
        environment: env.to_owned(),
        registry: plan.registry.clone(),
        lattice: apps
            .values()
            .next()
            .map(|a| a.lattice.clone())
            .unwrap_or_default(),
        revision: plan.provenance.revision.clone(),
        source: plan.provenance.source.clone(),
        applications,
        pipelines: apps
            .iter()
            .filter(|(_, app)| !app.nodes.is_empty())
            .map(|(pipeline, app)| PipelineFacts {
                name: pipeline.clone(),
                nodes: app.nodes.clone(),
            })
            .collect(),
    }
}

/// The facts of one application: a pipeline's (`pipeline` given), or a shared one.
fn application(app: &Application, pipeline: Option<&str>) -> ApplicationFacts {
    let artifacts = app
        .components
        .iter()
        .flat_map(|c| {
            Generation::ALL.into_iter().filter_map(move |g| {
                let a = c.artifact_of(g)?;
                Some(ArtifactFacts {
                    unit: c.name.clone(),
                    generation: g.short().to_owned(),
                    image: a.image.clone(),
                    component_digest: a.component_digest.clone(),
                })
            })
        })
        .collect();
    ApplicationFacts {
        name: app.name.clone(),
        pipeline: pipeline.map(str::to_owned),
        version: app.version.clone(),
        shared: app.shared,
        wadm: format!("wadm/{}.yaml", app.name),
        k8s: pipeline.map(|p| format!("k8s/{p}.yaml")),
        artifacts,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::build::deployment::REPORT_SUBJECT;
    use crate::oci::bundle::{NodeKind, name};
    use crate::oci::layout::Provenance;

    fn example() -> crate::build::Build {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/iot-sensors");
        let provenance = Provenance {
            created: 1_700_000_000,
            source: Some("https://git.acme.example/platform/pipelines".to_owned()),
            revision: Some("0123456789abcdef0123456789abcdef01234567".to_owned()),
        };
        crate::build::build(&example, None, &provenance).unwrap()
    }

    #[test]
    fn facts_and_files_come_from_the_plan_and_dist() {
        let build = example();
        let plan = build.plan.as_ref().unwrap();
        let bundles = bundles(plan);
        assert_eq!(
            bundles.keys().collect::<Vec<_>>(),
            ["dev", "prod", "staging"]
        );
        let prod = &bundles["prod"];
        let facts = &prod.facts;
        assert_eq!(
            (
                facts.project.as_str(),
                facts.environment.as_str(),
                facts.lattice.as_str()
            ),
            ("iot-sensors", "prod", "acme-iot-prod")
        );
        assert_eq!(facts.registry, "registry.acme.example/etl");
        assert_eq!(
            facts.revision.as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        // The shared listener first, then the pipeline.
        let names: Vec<(&str, Option<&str>, bool)> = facts
            .applications
            .iter()
            .map(|a| (a.name.as_str(), a.pipeline.as_deref(), a.shared))
            .collect();
        assert_eq!(
            names,
            [
                ("iot-sensors-http-listener", None, true),
                ("sensor-ingest", Some("sensor-ingest"), false)
            ]
        );
        let listener = &facts.applications[0];
        assert_eq!(listener.k8s, None);
        assert!(listener.artifacts.is_empty());
        let app = &plan.deployments["prod"]["sensor-ingest"];
        let pipeline = &facts.applications[1];
        assert_eq!(pipeline.version, app.version);
        assert_eq!(
            (pipeline.wadm.as_str(), pipeline.k8s.as_deref()),
            ("wadm/sensor-ingest.yaml", Some("k8s/sensor-ingest.yaml"))
        );
        // Every artifact of every unit, in unit order, 1.x first; pinned as the manifests are.
        let expected: Vec<(String, &str, String)> = app
            .components
            .iter()
            .flat_map(|c| {
                [
                    (c.name.clone(), "v1", c.artifact.image.clone()),
                    (
                        c.name.clone(),
                        "v2",
                        c.artifact_v2.as_ref().unwrap().image.clone(),
                    ),
                ]
            })
            .collect();
        let actual: Vec<(String, &str, String)> = pipeline
            .artifacts
            .iter()
            .map(|a| (a.unit.clone(), a.generation.as_str(), a.image.clone()))
            .collect();
        assert_eq!(actual, expected);
        assert_eq!(
            pipeline.artifacts[1].component_digest,
            app.components[0]
                .artifact_v2
                .as_ref()
                .unwrap()
                .component_digest
        );
        // The files: exactly what dist/prod/ holds.
        let dist: BTreeMap<String, Vec<u8>> = build
            .files
            .iter()
            .filter_map(|(path, bytes)| {
                Some((path.strip_prefix("prod/")?.to_owned(), bytes.clone()))
            })
            .collect();
        assert_eq!(prod.files, dist);
        // The listener's and the pipeline's wadm manifests, its WorkloadDeployments, and its
        // JetStream stream and consumers (delivery is at least once by default).
        assert_eq!(
            prod.files.keys().collect::<Vec<_>>(),
            [
                "jetstream/sensor-ingest.json",
                "k8s/sensor-ingest.yaml",
                "wadm/iot-sensors-http-listener.yaml",
                "wadm/sensor-ingest.yaml"
            ]
        );
        assert_eq!(
            prod.files["jetstream/sensor-ingest.json"],
            app.jetstream.as_ref().unwrap().to_json()
        );
    }

    #[test]
    fn bundles_are_in_the_layout_read_back_and_reproduce() {
        let build = example();
        let plan = build.plan.as_ref().unwrap();
        let index: crate::oci::manifest::ImageIndex =
            serde_json::from_slice(&build.files["oci/index.json"]).unwrap();
        for (env, bundle) in bundles(plan) {
            let packaged = bundle.package(&name("iot-sensors", &env));
            // Byte-identical for identical inputs.
            assert_eq!(
                packaged,
                super::bundle(plan, &env)
                    .unwrap()
                    .package(&name("iot-sensors", &env))
            );
            let entry = index
                .manifests
                .iter()
                .find(|m| {
                    m.annotation(crate::oci::layout::REF_NAME)
                        == Some(&format!("bundles/iot-sensors/{env}"))
                })
                .unwrap_or_else(|| panic!("no bundle of {env} in the layout"));
            assert_eq!(entry.digest, packaged.manifest_digest);
            let blob = |digest: &str| -> Vec<u8> {
                build.files[&format!("oci/{}", crate::oci::layout::blob_path(digest))].clone()
            };
            let read = Bundle::read(&blob(&entry.digest), |d| Ok::<_, ()>(blob(&d.digest)))
                .unwrap()
                .unwrap();
            assert_eq!(read, bundle);
        }
    }

    #[test]
    fn pipeline_facts_are_the_graph_as_deployed() {
        let build = example();
        let plan = build.plan.as_ref().unwrap();
        let facts = bundle(plan, "staging").unwrap().facts;
        let [pipeline] = facts.pipelines.as_slice() else {
            panic!("one pipeline: {:?}", facts.pipelines);
        };
        assert_eq!(pipeline.name, "sensor-ingest");
        let shape: Vec<(&str, NodeKind, Option<&str>, Vec<&str>)> = pipeline
            .nodes
            .iter()
            .map(|n| {
                (
                    n.name.as_str(),
                    n.kind,
                    n.connector.as_deref(),
                    n.from.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("ingest", NodeKind::Source, Some("http"), vec![]),
                ("parse", NodeKind::Step, None, vec!["ingest"]),
                ("enrich", NodeKind::Step, None, vec!["parse"]),
                ("threshold-alert", NodeKind::Step, None, vec!["enrich"]),
                (
                    "alerts",
                    NodeKind::Sink,
                    Some("http"),
                    vec!["threshold-alert"]
                ),
                ("archive", NodeKind::Sink, Some("nats"), vec!["parse"]),
            ]
        );
        let node = |name: &str| pipeline.nodes.iter().find(|n| n.name == name).unwrap();
        let subject =
            |kind: &str, unit: &str| format!("etl.iot-sensors.sensor-ingest.{kind}.{unit}");
        // The source is only named.
        let ingest = node("ingest");
        assert!(ingest.inputs.is_empty() && ingest.report.is_none() && ingest.replay.is_none());
        // The HTTP-fed step: `http` as its input's subject, and replayed to on its own subject.
        let parse = node("parse");
        assert_eq!(parse.inputs, [("http".to_owned(), "ingest".to_owned())]);
        assert_eq!(
            parse.report.as_deref(),
            Some(format!("{}.staging", subject("report", "parse")).as_str())
        );
        assert_eq!(parse.dead_letter, Some(subject("dlq", "parse")));
        assert_eq!(parse.replay, Some(subject("replay", "parse")));
        let customer = plan.pipelines[0].steps[0].customer.as_ref().unwrap();
        assert_eq!(parse.component.as_ref(), Some(&customer.digest));
        assert!(parse.grants.is_empty());
        // Fan-out: `enrich` and the sink `archive` both read `parse` on its subject.
        for reader in ["enrich", "archive"] {
            assert_eq!(
                node(reader).inputs,
                [(subject("out", "parse"), "parse".to_owned())],
                "{reader}"
            );
        }
        // A sink reports, and has nothing to replay and no customer. Read through JetStream,
        // it dead-letters what still fails on the last delivery: the controller shows those.
        let alerts = node("alerts");
        assert_eq!(
            alerts.report.as_deref(),
            Some(format!("{}.staging", subject("report", "alerts")).as_str())
        );
        assert_eq!(alerts.dead_letter, Some(subject("dlq", "alerts")));
        assert_eq!((&alerts.replay, &alerts.component), (&None, &None));
        // Each unit's report subject is the one its manifest configures.
        let app = &plan.deployments["staging"]["sensor-ingest"];
        for c in &app.components {
            let config = &c.config.as_ref().unwrap().properties;
            assert_eq!(
                config.get(REPORT_SUBJECT),
                node(&c.name).report.as_ref(),
                "{}",
                c.name
            );
        }
        // The same graph in every environment but for the report subjects.
        let dev = bundle(plan, "dev").unwrap().facts.pipelines;
        assert_eq!(
            dev[0].nodes[1].report.as_deref(),
            Some(format!("{}.dev", subject("report", "parse")).as_str())
        );
        // An HTTP-fed step is composed with `in-messaging` too, for its replay subject.
        let harness = &plan.pipelines[0].steps[0].harness;
        assert_eq!(harness.inbound, ["in-http", "in-messaging"]);
    }

    #[test]
    fn a_repinned_step_names_the_customer_of_the_artifact_it_now_runs() {
        let build = example();
        let plan = build.plan.as_ref().unwrap();
        let app = &plan.deployments["prod"]["sensor-ingest"];
        let enrich = app.components.iter().find(|c| c.name == "enrich").unwrap();
        // What the manifest of each step's artifact says of its customer.
        assert_eq!(
            enrich.artifact.customer.as_ref(),
            Some(&plan.pipelines[0].steps[1].customer.as_ref().unwrap().digest)
        );
        let mut other = enrich.artifact.clone();
        other.customer = Some(format!("sha256:{}", "e".repeat(64)));
        other.manifest_digest = format!("sha256:{}", "f".repeat(64));
        let repinned = app.repinned(&BTreeMap::from([(other.repository.clone(), other.clone())]));
        let node = |a: &Application, name: &str| {
            a.nodes
                .iter()
                .find(|n| n.name == name)
                .unwrap()
                .component
                .clone()
        };
        assert_eq!(node(&repinned, "enrich"), other.customer);
        assert_eq!(node(&repinned, "parse"), node(app, "parse"));
        assert_ne!(repinned.version, app.version);
        // Pinned back, it is the application it was.
        let back = repinned.repinned(&BTreeMap::from([(
            enrich.artifact.repository.clone(),
            enrich.artifact.clone(),
        )]));
        assert_eq!(&back, app);
    }

    #[test]
    fn a_step_s_grants_are_readable_lines() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/egress");
        let build = crate::build::build(&root, None, &Provenance::default()).unwrap();
        let plan = build.plan.as_ref().expect("the egress fixture compiles");
        let customer = plan.pipelines[0].steps[0].customer.as_ref().unwrap();
        for env in ["dev", "prod"] {
            let facts = bundle(plan, env).unwrap().facts;
            let price = facts.pipelines[0]
                .nodes
                .iter()
                .find(|n| n.name == "price")
                .unwrap();
            assert!(
                price.grants.contains(
                    &"wasi:http/outgoing-handler → api.acme.example, https://x.example:8443, *.acme.example"
                        .to_owned()
                ),
                "{:?}",
                price.grants
            );
            // One line per interface granted, without versions, sorted.
            let mut expected = emit::grant_lines(&customer.grants, &customer.egress);
            assert_eq!(price.grants, expected);
            expected.sort();
            expected.dedup();
            assert_eq!(price.grants, expected);
            assert!(price.grants.iter().all(|g| !g.contains('@')));
            assert!(price.grants.iter().any(|g| g == "wasi:http/types"));
        }
    }

    #[test]
    fn an_unknown_environment_is_named() {
        let build = example();
        let e = bundle(build.plan.as_ref().unwrap(), "qa").unwrap_err();
        assert_eq!(e.name, "qa");
    }
}
