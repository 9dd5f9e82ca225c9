//! `etl graph`: Mermaid and DOT diagrams of the example and fixture pipelines, snapshot-tested,
//! with Graphviz as the oracle that the DOT parses.

use crate::common;

use std::path::Path;
use std::process::Command;

fn pipeline(repo: &Path, name: &str) -> etl::spec::model::Pipeline {
    let validation = etl::spec::validate(repo).unwrap();
    assert!(!validation.has_errors(), "{:?}", validation.diagnostics);
    etl::build::deployment::find_pipeline(&validation.repo, name)
        .unwrap()
        .spec
        .clone()
}

fn chaos() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/chaos")
}

/// `dot -Tsvg` accepts `text`; the SVG it draws, for a look at the node titles.
fn graphviz(text: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("Graphviz's `dot` runs (scripts/setup.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "dot refused it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_example_as_mermaid_and_dot() {
    let p = pipeline(&common::example(), "sensor-ingest");
    insta::assert_snapshot!("sensor_ingest_mermaid", etl::ops::graph::mermaid(&p));
    let dot = etl::ops::graph::dot(&p);
    insta::assert_snapshot!("sensor_ingest_dot", dot);
    let svg = graphviz(&dot).replace("&#45;", "-").replace("&gt;", ">");
    for node in [
        "ingest",
        "parse",
        "enrich",
        "threshold-alert",
        "alerts",
        "archive",
    ] {
        assert!(svg.contains(&format!("<title>{node}</title>")), "{node}");
    }
    assert!(
        svg.contains("<title>parse->archive</title>"),
        "the fan-out edge"
    );
}

#[test]
fn fan_in_draws_every_edge_once() {
    let p = pipeline(&chaos(), "diamond");
    let mermaid = etl::ops::graph::mermaid(&p);
    insta::assert_snapshot!("diamond_mermaid", mermaid);
    let dot = etl::ops::graph::dot(&p);
    graphviz(&dot);
    let edges: Vec<&str> = dot.lines().filter(|l| l.contains("->")).collect();
    assert_eq!(
        edges,
        [
            "  \"feed\" -> \"left\";",
            "  \"feed\" -> \"right\";",
            "  \"left\" -> \"join\";",
            "  \"right\" -> \"join\";",
            "  \"join\" -> \"out\";",
        ]
    );
}

/// A sub-pipeline is drawn with what it reads first: the other pipeline's node, feeding its
/// source.
#[test]
fn a_sub_pipeline_shows_what_it_reads() {
    let p = pipeline(&common::sub_pipelines(), "replay");
    insta::assert_snapshot!("replay_mermaid", etl::ops::graph::mermaid(&p));
    let dot = etl::ops::graph::dot(&p);
    insta::assert_snapshot!("replay_dot", dot);
    let svg = graphviz(&dot);
    assert!(svg.contains("<title>audit/trail</title>"), "{svg}");
    assert!(
        svg.contains("<title>audit/trail&#45;&gt;trail</title>"),
        "{svg}"
    );
}

#[test]
fn etl_graph_prints_and_refuses_unknown_names() {
    let etl = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_etl"))
            .args(args)
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .output()
            .unwrap()
    };
    let out = etl(&["graph", "sensor-ingest", "--repo", "examples/iot-sensors"]);
    assert_eq!(out.status.code(), Some(0));
    let p = pipeline(&common::example(), "sensor-ingest");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        etl::ops::graph::mermaid(&p)
    );
    let out = etl(&[
        "graph",
        "sensor-ingest",
        "--repo",
        "examples/iot-sensors",
        "--format",
        "dot",
    ]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        etl::ops::graph::dot(&p)
    );
    let out = etl(&["graph", "sensor-ingset", "--repo", "examples/iot-sensors"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: unknown pipeline `sensor-ingset` (did you mean `sensor-ingest`?); the repo defines `sensor-ingest`\n"
    );
}
