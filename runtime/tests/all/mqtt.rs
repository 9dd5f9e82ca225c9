//! An `mqtt` source run locally: the sub-pipelines fixture's `orders` read from an MQTT topic
//! instead of HTTP. A device publishes its own bytes, so each input record reaches the step as
//! one message of its payload (the `in` part's `etl.in.raw-subjects`), and arrives at the sink
//! as it was, in order, on both wasmCloud generations' artifacts.

use etl::build::generation::Generation;
use etl_run::artifacts::{self, Origin};
use etl_run::{Limits, Record, Runtime};

use crate::common;

#[test]
fn each_record_of_an_mqtt_source_reaches_the_step_as_its_own_bytes() {
    let dir = tempfile::tempdir().unwrap();
    common::copy(&common::sub_pipelines(), dir.path());
    let pipeline = dir.path().join("pipelines/orders.yaml");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    let edited = text.replace(
        "    connector: http\n    with:\n      path: /orders\n",
        "    connector: mqtt\n    with:\n      topic: shop/+/orders\n",
    );
    assert_ne!(edited, text, "the fixture's source moved");
    std::fs::write(&pipeline, edited).unwrap();
    let inputs: Vec<Record> = [r#"{"order":1}"#, r#"{"order":2,"sku":"A-1"}"#]
        .iter()
        .map(|p| Record {
            key: None,
            payload: p.as_bytes().to_vec(),
            headers: Vec::new(),
        })
        .collect();
    let cache = etl::store::Cache::new(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("mqtt-cache"),
    );
    for generation in Generation::ALL {
        let (validation, artifacts) =
            artifacts::prepare(dir.path(), &Origin::Build(Some(cache.clone())), generation)
                .unwrap();
        assert!(!validation.has_errors(), "{:#?}", validation.diagnostics);
        let artifacts = artifacts.expect("the repo compiles");
        let deployment = etl::build::deployment::deploy(&validation.repo, "dev", "orders").unwrap();
        assert_eq!(deployment.source.subject.as_deref(), Some("shop.*.orders"));
        let report = Runtime::new(None)
            .unwrap()
            .load(&deployment, &artifacts["orders"])
            .unwrap()
            .run(&inputs, &Limits::default(), &mut |_| {})
            .unwrap();
        let archived: Vec<&[u8]> = report
            .sinks
            .iter()
            .filter(|s| s.sink == "archive")
            .map(|s| s.record.payload.as_slice())
            .collect();
        let sent: Vec<&[u8]> = inputs.iter().map(|r| r.payload.as_slice()).collect();
        assert_eq!(archived, sent, "{generation:?}");
    }
}
