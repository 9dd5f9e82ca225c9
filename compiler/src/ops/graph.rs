//! Pipeline diagrams: the source, steps and sinks of one pipeline and the `from` edges between
//! them, as Mermaid (renders in GitHub comments and Markdown) or Graphviz DOT.
//!
//! Nodes come in spec order (source, steps, sinks) and edges in `from` order, so the same
//! pipeline always gives the same text. Labels show names and connector kinds only, never a
//! setting's value. A sub-pipeline (a `pipeline` source) is drawn with what it reads first: the
//! other pipeline's step or sink, `<pipeline>/<node>`, as a subroutine (Mermaid) or a component
//! (DOT), feeding the source.
//!
//! Both formats render a [`Graph`]: built from a spec by [`Graph::of`] (`etl graph`), or from a
//! compiled plan by `etl diff`, which also marks the units a change added or changed.

use std::fmt::Write;

use crate::spec::model::Pipeline;

/// What a node is, for its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The source: a parallelogram (Mermaid), an inverted house (DOT).
    Source,
    /// A step: a box.
    Step,
    /// A sink: a cylinder.
    Sink,
    /// What a `pipeline` source reads, a node of another pipeline: a subroutine (Mermaid), a
    /// component (DOT).
    Upstream,
}

/// A highlight on a node (Mermaid only): what a change did to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Added.
    Added,
    /// Changed.
    Changed,
}

/// A node: its name, the detail under it (the connector kind), what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Source, step or sink name.
    pub name: String,
    /// Shown under the name: the connector kind.
    pub detail: Option<String>,
    /// Its shape.
    pub kind: Kind,
    /// A highlight, if any.
    pub mark: Option<Mark>,
}

/// A pipeline as a graph: nodes in the order given, edges (from index, to index) in the order
/// added, each once. Built from a spec ([`Graph::of`]) or from anything else that knows the
/// units and their `from` (a compiled plan, for `etl diff`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    /// The pipeline's name.
    pub name: String,
    /// The nodes.
    pub nodes: Vec<Node>,
    /// The edges, as indices into `nodes`.
    pub edges: Vec<(usize, usize)>,
}

impl Graph {
    /// An empty graph named `name`.
    pub fn new(name: &str) -> Self {
        Graph {
            name: name.to_owned(),
            ..Graph::default()
        }
    }

    /// Adds a node; returns its index.
    pub fn node(&mut self, name: &str, detail: Option<&str>, kind: Kind) -> usize {
        self.nodes.push(Node {
            name: name.to_owned(),
            detail: detail.map(str::to_owned),
            kind,
            mark: None,
        });
        self.nodes.len() - 1
    }

    /// The index of the node named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Adds an edge from the node named `from` to the node named `to`, unless there is one or
    /// either is missing.
    pub fn edge(&mut self, from: &str, to: &str) {
        if let (Some(f), Some(t)) = (self.index(from), self.index(to))
            && !self.edges.contains(&(f, t))
        {
            self.edges.push((f, t));
        }
    }

    /// Adds the node `<pipeline>/<from>` of another pipeline, which `source` reads, and the edge
    /// to `source` (a node added later).
    pub fn upstream(&mut self, pipeline: &str, from: &str) -> String {
        let name = format!("{pipeline}/{from}");
        self.node(&name, Some("pipeline"), Kind::Upstream);
        name
    }

    /// The source, steps and sinks of `p` in spec order, and its `from` edges; first, what its
    /// source reads when it is a `pipeline` source.
    pub fn of(p: &Pipeline) -> Self {
        let spec = &p.spec;
        let mut g = Graph::new(&p.metadata.name);
        let upstream = spec
            .source
            .upstream()
            .map(|u| g.upstream(u.pipeline, u.from));
        g.node(
            &spec.source.name,
            Some(spec.source.connector.name()),
            Kind::Source,
        );
        for s in &spec.steps {
            g.node(&s.name, None, Kind::Step);
        }
        for s in &spec.sinks {
            g.node(&s.name, Some(s.connector.name()), Kind::Sink);
        }
        if let Some(upstream) = upstream {
            g.edge(&upstream, &spec.source.name);
        }
        let froms = spec
            .steps
            .iter()
            .map(|s| (s.name.as_str(), &s.from))
            .chain(spec.sinks.iter().map(|s| (s.name.as_str(), &s.from)));
        for (to, from) in froms {
            for f in from {
                g.edge(f, to);
            }
        }
        g
    }

    /// A Mermaid `flowchart LR`: the source as a parallelogram, steps as boxes, sinks as
    /// cylinders; node ids are `n0`, `n1`, … so that any name is safe. Marked nodes get the
    /// classes `added` and `changed`.
    pub fn mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for (i, node) in self.nodes.iter().enumerate() {
            let label = match &node.detail {
                Some(d) => format!(
                    "{}<br/><small>{}</small>",
                    mermaid_text(&node.name),
                    mermaid_text(d)
                ),
                None => mermaid_text(&node.name),
            };
            let _ = match node.kind {
                Kind::Source => writeln!(out, "  n{i}[/\"{label}\"/]"),
                Kind::Step => writeln!(out, "  n{i}[\"{label}\"]"),
                Kind::Sink => writeln!(out, "  n{i}[(\"{label}\")]"),
                Kind::Upstream => writeln!(out, "  n{i}[[\"{label}\"]]"),
            };
        }
        for (from, to) in &self.edges {
            let _ = writeln!(out, "  n{from} --> n{to}");
        }
        for (mark, class, style) in [
            (Mark::Added, "added", "fill:#dafbe1,stroke:#1a7f37"),
            (Mark::Changed, "changed", "fill:#fff8c5,stroke:#9a6700"),
        ] {
            let ids: Vec<String> = (0..self.nodes.len())
                .filter(|i| self.nodes[*i].mark == Some(mark))
                .map(|i| format!("n{i}"))
                .collect();
            if !ids.is_empty() {
                let _ = writeln!(out, "  classDef {class} {style}");
                let _ = writeln!(out, "  class {} {class}", ids.join(","));
            }
        }
        out
    }

    /// Graphviz DOT, left to right: the source as an inverted house, steps as boxes, sinks as
    /// cylinders.
    pub fn dot(&self) -> String {
        let mut out = format!(
            "digraph {} {{\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n",
            dot_id(&self.name)
        );
        for node in &self.nodes {
            let shape = match node.kind {
                Kind::Source => "invhouse",
                Kind::Step => "box",
                Kind::Sink => "cylinder",
                Kind::Upstream => "component",
            };
            let label = match &node.detail {
                Some(d) => format!("{}\\n{d}", node.name),
                None => node.name.clone(),
            };
            let _ = writeln!(
                out,
                "  {} [shape={shape}, label={}];",
                dot_id(&node.name),
                dot_id(&label)
            );
        }
        for (from, to) in &self.edges {
            let _ = writeln!(
                out,
                "  {} -> {};",
                dot_id(&self.nodes[*from].name),
                dot_id(&self.nodes[*to].name)
            );
        }
        out.push_str("}\n");
        out
    }
}

/// [`Graph::mermaid`] of the pipeline `p`.
pub fn mermaid(p: &Pipeline) -> String {
    Graph::of(p).mermaid()
}

/// [`Graph::dot`] of the pipeline `p`.
pub fn dot(p: &Pipeline) -> String {
    Graph::of(p).dot()
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
