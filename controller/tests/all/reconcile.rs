//! The loop: a signed bundle applied once, nothing written again while nothing changes, not
//! even after a restart; a new bundle pruning what it lacks; a rollback; refusals that keep the
//! last good bundle running; a registry outage; wadm down or failing; drift repaired.

use etl::oci::sign::SigningKey;
use etl::ops::status::{ControllerStatus, EnvironmentState, PipelineState};
use etl_controller::reconcile::Controller;
use serde_json::Value;

use crate::Env;
use crate::bundles::{
    self, LISTENER, LISTENER_V, PIPELINE, PIPELINE_V, REPOSITORY, bundle, listener, pipeline,
};
use crate::fake_wadm::FakeWadm;

/// One look; the status it published.
async fn tick(c: &mut Controller) -> ControllerStatus {
    c.tick().await;
    c.status().borrow().clone()
}

/// Looks until the controller says `ready` (at most 50 looks, 100 ms apart): for a lattice
/// coming back, whose first answers may still be missing on a loaded machine.
async fn ready(c: &mut Controller) -> ControllerStatus {
    let mut doc = tick(c).await;
    for _ in 0..50 {
        if doc.state == EnvironmentState::Ready {
            return doc;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        doc = tick(c).await;
    }
    panic!("not ready after 50 looks: {doc:#?}");
}

/// Looks until the controller no longer says `reconciling` (at most 10 looks).
async fn settle(c: &mut Controller) -> ControllerStatus {
    for _ in 0..10 {
        let doc = tick(c).await;
        if doc.state != EnvironmentState::Reconciling {
            return doc;
        }
    }
    panic!(
        "still reconciling after 10 looks: {:#?}",
        c.status().borrow()
    );
}

fn states(doc: &ControllerStatus) -> Vec<(String, PipelineState, Option<String>)> {
    doc.pipelines
        .iter()
        .map(|p| (p.application.clone(), p.state, p.version.clone()))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_bundle_is_applied_once_and_a_restart_changes_nothing() {
    let env = Env::start().await;
    // Someone else's application on the same lattice.
    env.wadm
        .put_by_hand(&bundles::manifest("someone-elses-app"));
    // The bundle lists the pipeline first; the shared listener must still go first.
    let a = bundle("dev", vec![pipeline(), listener(LISTENER_V)]);
    let digest = env.push(&a).await;
    let mut c = env.controller().await;

    let first = tick(&mut c).await;
    assert_eq!(first.state, EnvironmentState::Reconciling, "{first:#?}");
    assert_eq!(
        env.wadm.writes(),
        strings(&[
            "put",
            &format!("deploy {LISTENER}"),
            "put",
            &format!("deploy {PIPELINE}"),
        ])
    );
    let requests = env.wadm.requests();
    let put_listener = requests.iter().position(|r| r == "put").unwrap();
    let deploy_listener = requests
        .iter()
        .position(|r| *r == format!("deploy {LISTENER}"))
        .unwrap();
    assert!(put_listener < deploy_listener);

    let ready = settle(&mut c).await;
    assert_eq!(ready.state, EnvironmentState::Ready, "{ready:#?}");
    let applied = ready.applied.clone().unwrap();
    assert_eq!(applied.digest, digest);
    assert_eq!(applied.signer, env.settings().key.id());
    assert_eq!(
        applied.revision.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!(ready.tag.digest.as_deref(), Some(digest.as_str()));
    assert_eq!(
        (
            ready.project.as_deref(),
            ready.environment.as_deref(),
            ready.lattice.as_deref()
        ),
        (Some("iot-sensors"), Some("dev"), Some("acme-iot-dev"))
    );
    assert_eq!(
        states(&ready),
        [
            (
                PIPELINE.to_owned(),
                PipelineState::Deployed,
                Some(PIPELINE_V.to_owned())
            ),
            (
                LISTENER.to_owned(),
                PipelineState::Deployed,
                Some(LISTENER_V.to_owned())
            ),
        ]
    );
    // v1's artifacts only.
    let artifacts = &ready.pipelines[0].artifacts;
    assert_eq!(artifacts.len(), 1);
    assert!(artifacts[0].image.contains("/v1/"), "{artifacts:?}");

    // Nothing changes: looks read (one list each), never write.
    let writes = env.wadm.writes().len();
    let before = env.wadm.requests().len();
    for _ in 0..3 {
        assert_eq!(tick(&mut c).await.state, EnvironmentState::Ready);
    }
    assert_eq!(env.wadm.writes().len(), writes);
    assert_eq!(
        env.wadm.requests()[before..],
        strings(&["get", "get", "get"])
    );

    // A restart resumes from what the lattice runs: reads, no write.
    drop(c);
    let mut restarted = env.controller().await;
    let doc = tick(&mut restarted).await;
    assert_eq!(doc.state, EnvironmentState::Ready, "{doc:#?}");
    assert_eq!(env.wadm.writes().len(), writes);
    // Someone else's application was never touched.
    assert!(
        env.wadm
            .requests()
            .iter()
            .all(|r| !r.contains("someone-elses-app") || r.starts_with("get ")),
        "{:?}",
        env.wadm.requests()
    );
    assert_eq!(
        env.wadm.deployed()["someone-elses-app"].as_deref(),
        Some("v0.1.0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_bundle_prunes_what_it_lacks_and_a_rollback_redeploys() {
    let env = Env::start().await;
    let a = env
        .push(&bundle("dev", vec![listener(LISTENER_V), pipeline()]))
        .await;
    let mut c = env.controller().await;
    assert_eq!(settle(&mut c).await.state, EnvironmentState::Ready);
    let before = env.wadm.writes().len();

    // The pipeline removed from the repo, the listener changed.
    let b = env
        .push(&bundle("dev", vec![listener("sha-111111111111")]))
        .await;
    let doc = settle(&mut c).await;
    assert_eq!(doc.state, EnvironmentState::Ready, "{doc:#?}");
    assert_eq!(doc.applied.unwrap().digest, b);
    assert_eq!(
        env.wadm.writes()[before..],
        strings(&[
            "put",
            &format!("deploy {LISTENER}"),
            &format!("undeploy {PIPELINE}"),
            &format!("del {PIPELINE}"),
        ])
    );
    assert_eq!(
        env.wadm.deployed(),
        [(LISTENER.to_owned(), Some("sha-111111111111".to_owned()))].into()
    );

    // Rollback: the tag back at the first bundle. wadm still stores the listener's old
    // version (deployed again, not put); the pipeline was deleted (put and deployed again).
    let before = env.wadm.writes().len();
    bundles::retag(&env.registry.host(), REPOSITORY, "dev", &a).await;
    let doc = settle(&mut c).await;
    assert_eq!(doc.state, EnvironmentState::Ready, "{doc:#?}");
    assert_eq!(doc.applied.unwrap().digest, a);
    assert!(
        env.wadm
            .requests()
            .contains(&format!("versions {LISTENER}"))
    );
    assert_eq!(
        env.wadm.writes()[before..],
        strings(&[
            &format!("deploy {LISTENER}"),
            "put",
            &format!("deploy {PIPELINE}")
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_bundles_leave_the_last_good_one_running() {
    let env = Env::start().await;
    let host = env.registry.host();
    let a = env
        .push(&bundle("dev", vec![listener(LISTENER_V), pipeline()]))
        .await;
    let mut c = env.controller().await;
    assert_eq!(settle(&mut c).await.state, EnvironmentState::Ready);
    let writes = env.wadm.writes().len();

    let refused = |doc: &ControllerStatus, digest: &str, reason: &str| {
        assert_eq!(doc.state, EnvironmentState::Failed, "{doc:#?}");
        assert_eq!(doc.applied.as_ref().unwrap().digest, a, "{doc:#?}");
        let r = doc.refused.as_ref().expect("a refusal");
        assert_eq!(r.digest, digest);
        assert!(r.reason.contains(reason), "{}", r.reason);
        assert!(
            doc.pipelines
                .iter()
                .all(|p| p.state == PipelineState::Deployed),
            "{doc:#?}"
        );
    };

    // Unsigned.
    let unsigned = bundle("dev", vec![listener("sha-999999999999"), pipeline()]);
    let c_digest = bundles::push(&host, REPOSITORY, "dev", &unsigned, None).await;
    let doc = tick(&mut c).await;
    refused(&doc, &c_digest, "signature: not signed");

    // Signed with another key.
    let other =
        SigningKey::from_pem(&etl::oci::sign::keygen(None).unwrap().private_pem, None).unwrap();
    let wrong = bundle("dev", vec![listener("sha-888888888888"), pipeline()]);
    let d = bundles::push(&host, REPOSITORY, "dev", &wrong, Some(&other)).await;
    refused(
        &tick(&mut c).await,
        &d,
        "the signature does not verify with the key",
    );
    // Looked at once: the next look fetches nothing and says the same.
    refused(&tick(&mut c).await, &d, "does not verify");

    // Signed, then a file changed in the registry's storage.
    let tampered = bundle("dev", vec![listener("sha-777777777777"), pipeline()]);
    let packaged = tampered.package("x");
    // The listener's manifest: its bytes are this bundle's only (the pipeline's are shared).
    let layer = packaged
        .blobs
        .iter()
        .find(|(_, bytes)| String::from_utf8_lossy(bytes).contains("sha-777777777777"))
        .map(|(digest, _)| digest.clone())
        .unwrap();
    let e = env.push(&tampered).await;
    std::fs::write(
        env.registry.blob_file(&layer),
        b"# Generated by someone else\n",
    )
    .unwrap();
    refused(&tick(&mut c).await, &e, "tampered");
    assert_eq!(env.wadm.writes().len(), writes, "a refusal wrote to wadm");
    // A corrupt blob is fetched again at the next look: served whole once more, it passes.
    let listener_bytes = packaged.blobs[&layer].clone();
    std::fs::write(env.registry.blob_file(&layer), &listener_bytes).unwrap();
    let doc = settle(&mut c).await;
    assert_eq!(doc.applied.as_ref().unwrap().digest, e, "{doc:#?}");
    assert_eq!(doc.state, EnvironmentState::Ready, "{doc:#?}");
    bundles::retag(&host, REPOSITORY, "dev", &a).await;
    assert_eq!(settle(&mut c).await.state, EnvironmentState::Ready);
    let writes = env.wadm.writes().len();

    // Signed, but for staging.
    let staging = bundle("staging", vec![listener(LISTENER_V), pipeline()]);
    let f = env.push(&staging).await;
    refused(&tick(&mut c).await, &f, "for environment `staging`");
    assert_eq!(env.wadm.writes().len(), writes, "a refusal wrote to wadm");

    // The tag back at the good bundle: ready, the refusal kept as history.
    bundles::retag(&host, REPOSITORY, "dev", &a).await;
    let doc = tick(&mut c).await;
    assert_eq!(doc.state, EnvironmentState::Ready, "{doc:#?}");
    assert_eq!(doc.refused.unwrap().digest, f);
    assert_eq!(env.wadm.writes().len(), writes);

    // The unsigned bundle signed late (its signature pushed after its tag) is taken.
    bundles::sign_in(&host, REPOSITORY, &c_digest, &env.key).await;
    bundles::retag(&host, REPOSITORY, "dev", &c_digest).await;
    let doc = settle(&mut c).await;
    assert_eq!(doc.state, EnvironmentState::Ready, "{doc:#?}");
    assert_eq!(doc.applied.unwrap().digest, c_digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_outage_is_stale_and_drift_is_repaired_once_it_is_over() {
    let env = Env::start().await;
    let a = env
        .push(&bundle("dev", vec![listener(LISTENER_V), pipeline()]))
        .await;
    let mut c = env.controller().await;
    assert_eq!(settle(&mut c).await.state, EnvironmentState::Ready);
    let writes = env.wadm.writes().len();

    env.registry.stop();
    // Meanwhile someone undeploys the pipeline by hand.
    let nats = async_nats::connect(env.nats.url()).await.unwrap();
    let answer = nats
        .request(
            format!("wadm.api.acme-iot-dev.model.undeploy.{PIPELINE}"),
            "{}".into(),
        )
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&answer.payload).unwrap();
    assert_eq!(answer["result"], "acknowledged");
    let writes = writes + 1;

    let doc = tick(&mut c).await;
    assert_eq!(doc.state, EnvironmentState::Stale, "{doc:#?}");
    assert!(doc.tag.stale);
    let error = doc.tag.error.clone().unwrap();
    assert!(error.contains("cannot connect to registry"), "{error}");
    assert_eq!(doc.tag.digest.as_deref(), Some(a.as_str()));
    assert_eq!(doc.applied.as_ref().unwrap().digest, a);
    // Looked at, not changed: the pipeline shows undeployed, nothing was written.
    assert_eq!(
        states(&doc)[1],
        (PIPELINE.to_owned(), PipelineState::Undeployed, None)
    );
    assert_eq!(env.wadm.writes().len(), writes);

    env.registry.resume();
    let doc = settle(&mut c).await;
    assert_eq!(doc.state, EnvironmentState::Ready, "{doc:#?}");
    assert!(!doc.tag.stale && doc.tag.error.is_none());
    // Repaired: deployed again (wadm still stores the version: no put).
    assert_eq!(
        env.wadm.writes()[writes..],
        strings(&[&format!("deploy {PIPELINE}")])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wadm_down_or_failing_is_reported_with_its_reason() {
    let mut env = Env::start().await;
    env.push(&bundle("dev", vec![listener(LISTENER_V), pipeline()]))
        .await;
    let mut c = env.controller().await;
    assert_eq!(settle(&mut c).await.state, EnvironmentState::Ready);

    let wadm = std::mem::replace(
        &mut env.wadm,
        FakeWadm::empty(&env.nats.url(), "nobody-listens-here").await,
    );
    let state = wadm.stop();
    let doc = tick(&mut c).await;
    assert_eq!(doc.state, EnvironmentState::Failed, "{doc:#?}");
    for p in &doc.pipelines {
        assert_eq!(p.state, PipelineState::Failed);
        let reason = p.reason.as_deref().unwrap();
        assert!(
            reason.contains("wadm does not answer on `wadm.api.acme-iot-dev.model.get`"),
            "{reason}"
        );
    }

    env.wadm = FakeWadm::start(&env.nats.url(), "acme-iot-dev", state).await;
    ready(&mut c).await;
    env.wadm.fail(PIPELINE);
    let doc = tick(&mut c).await;
    assert_eq!(doc.state, EnvironmentState::Failed);
    let reason = doc.pipelines[1].reason.as_deref().unwrap();
    assert!(
        reason.starts_with("failed to fetch component: failed to fetch component under OCI"),
        "{reason}"
    );
    assert_eq!(doc.pipelines[0].state, PipelineState::Deployed);
}

/// The fake answers a request sequence as the real wadm 0.21.1 did (the recorded answers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_wadm_answers_as_wadm_did() {
    let nats_server = crate::processes::Nats::start();
    let _wadm = FakeWadm::empty(&nats_server.url(), "acme-iot-dev").await;
    let nats = async_nats::connect(nats_server.url()).await.unwrap();
    let ask = |operation: &str, payload: Vec<u8>, yaml: bool| {
        let nats = nats.clone();
        let subject = format!("wadm.api.acme-iot-dev.model.{operation}");
        async move {
            let mut request = async_nats::Request::new().payload(payload.into());
            if yaml {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Content-Type", "application/yaml");
                request = request.headers(headers);
            }
            let answer = nats.send_request(subject, request).await.unwrap();
            serde_json::from_slice::<Value>(&answer.payload).unwrap()
        }
    };
    let recorded = |name: &str| -> Value {
        serde_json::from_slice(
            &std::fs::read(format!(
                "{}/tests/fixtures/wadm/{name}.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap()
    };
    let listener = bundles::manifest(LISTENER);
    let version = format!("{{\"version\":\"{LISTENER_V}\"}}").into_bytes();
    assert_eq!(ask("get", vec![], false).await, recorded("list-empty"));
    assert_eq!(
        ask("get.nope", vec![], false).await,
        recorded("get-not-found")
    );
    assert_eq!(
        ask("put", listener.clone(), true).await,
        recorded("put-created")
    );
    assert_eq!(
        ask("put", listener.clone(), true).await,
        recorded("put-version-exists")
    );
    assert_eq!(ask("get", vec![], false).await, recorded("list-put"));
    assert_eq!(
        ask(&format!("get.{LISTENER}"), version.clone(), false).await,
        recorded("get-listener")
    );
    assert_eq!(
        ask(&format!("deploy.{LISTENER}"), version, false).await,
        recorded("deploy-acknowledged")
    );
    let pipeline = bundles::manifest(PIPELINE);
    assert_eq!(
        ask("put", pipeline, true).await,
        recorded("put-created-pipeline")
    );
    assert_eq!(
        ask(
            &format!("deploy.{PIPELINE}"),
            b"{\"version\":\"sha-000000000000\"}".to_vec(),
            false
        )
        .await,
        recorded("deploy-unknown-version")
    );
    assert_eq!(
        ask("put", bundles::listener_at("sha-111111111111"), true).await,
        recorded("put-new-version")
    );
    assert_eq!(
        ask(&format!("versions.{LISTENER}"), vec![], false).await,
        recorded("versions-listener")
    );
    assert_eq!(
        ask(&format!("undeploy.{PIPELINE}"), b"{}".to_vec(), false).await,
        recorded("undeploy-acknowledged")
    );
    assert_eq!(
        ask(&format!("del.{PIPELINE}"), vec![], false).await,
        recorded("del-deleted")
    );
    assert_eq!(
        ask(&format!("del.{PIPELINE}"), vec![], false).await,
        recorded("del-noop")
    );
}
