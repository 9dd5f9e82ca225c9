//! Pipeline diagrams: the source, steps and sinks of one pipeline and the `from` edges between
//! them, as Mermaid (renders in GitHub comments and Markdown) or Graphviz DOT.
//!
//! Nodes come in spec order (source, steps, sinks) and edges in `from` order, so the same
//! pipeline always gives the same text. Labels show names and connector kinds only, never a
//! setting's value.

use std::fmt::Write;

use crate::deploy::{sink_connector_name, source_connector_name};
use crate::model::Pipeline;

/// What a node is, for its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Source,
    Step,
    Sink,
}

/// A node: its name, the detail under it (the connector kind), what it is.
type Node<'a> = (&'a str, Option<&'static str>, Kind);

/// The nodes and edges (from index, to index) of a pipeline.
fn shape(p: &Pipeline) -> (Vec<Node<'_>>, Vec<(usize, usize)>) {
    let spec = &p.spec;
    let mut nodes = vec![(
        spec.source.name.as_str(),
        Some(source_connector_name(spec.source.connector)),
        Kind::Source,
    )];
    nodes.extend(
        spec.steps
            .iter()
            .map(|s| (s.name.as_str(), None, Kind::Step)),
    );
    nodes.extend(spec.sinks.iter().map(|s| {
        (
            s.name.as_str(),
            Some(sink_connector_name(s.connector)),
            Kind::Sink,
        )
    }));
    let index = |name: &str| nodes.iter().position(|(n, _, _)| *n == name);
    let mut edges = Vec::new();
    let froms = spec
        .steps
        .iter()
        .map(|s| (s.name.as_str(), &s.from))
        .chain(spec.sinks.iter().map(|s| (s.name.as_str(), &s.from)));
    for (to, from) in froms {
        let Some(to) = index(to) else { continue };
        for f in from {
            if let Some(f) = index(f)
                && !edges.contains(&(f, to))
            {
                edges.push((f, to));
            }
        }
    }
    (nodes, edges)
}

/// A Mermaid `flowchart LR`: the source as a parallelogram, steps as boxes, sinks as
/// cylinders; node ids are `n0`, `n1`, … so that any name is safe.
pub fn mermaid(p: &Pipeline) -> String {
    let (nodes, edges) = shape(p);
    let mut out = String::from("flowchart LR\n");
    for (i, (name, detail, kind)) in nodes.iter().enumerate() {
        let label = match detail {
            Some(d) => format!("{}<br/><small>{d}</small>", mermaid_text(name)),
            None => mermaid_text(name),
        };
        let _ = match kind {
            Kind::Source => writeln!(out, "  n{i}[/\"{label}\"/]"),
            Kind::Step => writeln!(out, "  n{i}[\"{label}\"]"),
            Kind::Sink => writeln!(out, "  n{i}[(\"{label}\")]"),
        };
    }
    for (from, to) in edges {
        let _ = writeln!(out, "  n{from} --> n{to}");
    }
    out
}

/// Graphviz DOT, left to right: the source as an inverted house, steps as boxes, sinks as
/// cylinders.
pub fn dot(p: &Pipeline) -> String {
    let (nodes, edges) = shape(p);
    let mut out = format!(
        "digraph {} {{\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n",
        dot_id(&p.metadata.name)
    );
    for (name, detail, kind) in &nodes {
        let shape = match kind {
            Kind::Source => "invhouse",
            Kind::Step => "box",
            Kind::Sink => "cylinder",
        };
        let label = match detail {
            Some(d) => format!("{name}\\n{d}"),
            None => (*name).to_owned(),
        };
        let _ = writeln!(
            out,
            "  {} [shape={shape}, label={}];",
            dot_id(name),
            dot_id(&label)
        );
    }
    for (from, to) in edges {
        let _ = writeln!(
            out,
            "  {} -> {};",
            dot_id(nodes[from].0),
            dot_id(nodes[to].0)
        );
    }
    out.push_str("}\n");
    out
}

/// Text inside a quoted Mermaid label: `"` and the characters Mermaid reads as markup become
/// entity codes.
fn mermaid_text(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            c => out.push(c),
        }
    }
    out
}

/// A quoted DOT id; `\n` sequences already in it are kept as line breaks.
fn dot_id(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(mermaid_text("a\"<b>#"), "a#quot;#lt;b#gt;#35;");
        assert_eq!(dot_id("a\"b"), "\"a\\\"b\"");
    }
}
