//! The rules across pipelines on repos that the invalid fixtures do not cover: a valid
//! sub-pipeline chain edited here and there.

use crate::common;

use std::path::Path;

use etl::diag::{Code, Diagnostic};

/// The sub-pipelines fixture, copied into `dir` with `edit` applied to some files.
fn edited(dir: &Path, edits: &[(&str, &dyn Fn(String) -> String)]) -> Vec<Diagnostic> {
    common::copy(&common::sub_pipelines(), dir);
    for (file, edit) in edits {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let changed = edit(text.clone());
        assert_ne!(changed, text, "{file} unchanged");
        std::fs::write(&path, changed).unwrap();
    }
    etl::spec::validate(dir).unwrap().diagnostics
}

#[test]
fn a_step_only_a_sub_pipeline_reads_is_consumed() {
    let dir = tempfile::tempdir().unwrap();
    let tap = |text: String| {
        let step = text
            .split("  sinks:")
            .next()
            .unwrap()
            .split("  steps:\n")
            .nth(1)
            .unwrap()
            .replace("name: parse", "name: tap");
        text.replace("  sinks:", &format!("{step}  sinks:"))
    };
    let diagnostics = edited(
        dir.path(),
        &[
            ("pipelines/orders.yaml", &tap),
            ("pipelines/audit.yaml", &|t: String| {
                t.replace("from: parse", "from: tap")
            }),
        ],
    );
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    // Without the reader, `tap` is a dead end.
    let dir = tempfile::tempdir().unwrap();
    let diagnostics = edited(dir.path(), &[("pipelines/orders.yaml", &tap)]);
    let codes: Vec<Code> = diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, [Code::DeadEnd]);
}

/// A cycle through subjects that only one environment's vars close is reported there only.
#[test]
fn a_cycle_in_one_environment_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let looped = |_: String| {
        std::fs::read_to_string(common::sub_pipelines().join("pipelines/replay.yaml"))
            .unwrap()
            .replace("name: replay\n", "name: echo\n")
            .replace("from: [replay]", "from: [echo]")
            .replace(
                "    connector: pipeline\n    with: { pipeline: audit, from: trail }",
                "    connector: nats\n    with: { subject: \"{{ vars.echo }}\" }",
            )
            .replace("subject: relay.replay.out", "subject: relay.echo.out")
    };
    let vars = |t: String| {
        t.replace(
            "        trail: relay.dev.audit.trail\n",
            "        trail: relay.dev.audit.trail\n        echo: relay.echo.out\n",
        )
        .replace(
            "        trail: relay.staging.audit.trail\n",
            "        trail: relay.staging.audit.trail\n        echo: relay.staging.echo.in\n",
        )
    };
    let diagnostics = edited(
        dir.path(),
        &[("pipelines/echo.yaml", &looped), ("etl.yaml", &vars)],
    );
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    let d = &diagnostics[0];
    assert_eq!(d.code, Code::PipelineCycle);
    assert_eq!(
        d.message,
        "pipeline `echo` reads its own records: echo → echo"
    );
    assert_eq!(d.notes, ["in environment `dev`"]);
    assert_eq!(d.location.as_ref().unwrap().file, "pipelines/echo.yaml");
}

/// A `nats` source with a wildcard over other pipelines' step subjects is a hidden
/// sub-pipeline of each; over their dead letters it is not.
#[test]
fn wildcard_subscriptions_to_internal_subjects() {
    let source = |subject: &'static str| {
        move |_: String| {
            std::fs::read_to_string(common::sub_pipelines().join("pipelines/replay.yaml"))
                .unwrap()
                .replace("name: replay\n", "name: tap\n")
                .replace("from: [replay]", "from: [tap]")
                .replace(
                    "    connector: pipeline\n    with: { pipeline: audit, from: trail }",
                    &format!("    connector: nats\n    with: {{ subject: \"{subject}\" }}"),
                )
                .replace("subject: relay.replay.out", "subject: relay.tap.out")
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let steps = source("etl.relay.*.out.parse");
    let diagnostics = edited(dir.path(), &[("pipelines/tap.yaml", &steps)]);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(diagnostics[0].code, Code::ImplicitSubPipeline);
    assert_eq!(
        diagnostics[0].message,
        "source `trail` of pipeline `tap` subscribes to `etl.relay.*.out.parse`, which takes in \
         the records of step `parse` of `orders`"
    );
    assert_eq!(
        diagnostics[0].help.as_deref(),
        Some("say so: `connector: pipeline` with `with: { pipeline: orders, from: parse }`")
    );
    // Its own step subject too: a cycle, and the others' a hidden sub-pipeline of each.
    let dir = tempfile::tempdir().unwrap();
    let all = source("etl.relay.*.out.*");
    let diagnostics = edited(dir.path(), &[("pipelines/tap.yaml", &all)]);
    let codes: Vec<Code> = diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, [Code::PipelineCycle, Code::ImplicitSubPipeline]);
    assert_eq!(
        diagnostics[1].help.as_deref(),
        Some(
            "read each by name instead: one pipeline with a `connector: pipeline` source for each"
        )
    );
    let dir = tempfile::tempdir().unwrap();
    let dead = source("etl.relay.orders.dlq.*");
    let diagnostics = edited(dir.path(), &[("pipelines/tap.yaml", &dead)]);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
}
