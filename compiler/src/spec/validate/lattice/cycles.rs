//! Records must not flow around a cycle of pipelines: one pipeline's source reading what
//! another publishes (by name through `connector: pipeline`, or by subject or topic) makes an
//! edge, and no chain of edges may lead back to where it started (a pipeline reading its own
//! output included), or a record would go round for ever.

use std::collections::BTreeSet;

use super::view::{Lattice, Publish, Read};
use crate::diag::{Code, Diagnostic};
use crate::spec::validate::findings::Findings;

/// Pipeline `from` publishes what pipeline `read.pipeline` reads.
#[derive(Clone, Copy)]
struct Edge<'l, 'a> {
    from: usize,
    read: &'l Read<'a>,
    publish: &'l Publish<'a>,
}

pub(super) fn check_cycles(l: &Lattice<'_>, found: &mut Findings) {
    let n = l.pipelines.len();
    // For each pipeline, the first edge from each pipeline it reads.
    let mut inputs: Vec<Vec<Edge<'_, '_>>> = vec![Vec::new(); n];
    for read in &l.reads {
        for publish in l.received(read) {
            let into = &mut inputs[read.pipeline];
            if !into.iter().any(|e| e.from == publish.pipeline) {
                into.push(Edge {
                    from: publish.pipeline,
                    read,
                    publish,
                });
            }
        }
    }
    let mut state = vec![0u8; n];
    let mut path = Vec::new();
    let mut cycles = Vec::new();
    for i in 0..n {
        if state[i] == 0 {
            visit(i, &inputs, &mut state, &mut path, &mut cycles);
        }
    }
    let mut reported = BTreeSet::new();
    for cycle in cycles {
        let key: BTreeSet<usize> = cycle
            .iter()
            .map(|e: &Edge<'_, '_>| e.read.pipeline)
            .collect();
        if reported.insert(key) {
            found.add(l.env, diagnostic(l, &cycle));
        }
    }
}

/// Depth first along the edges into `i`; each edge back into the path closes a cycle, pushed as
/// its edges in the direction records flow, starting from its first pipeline in repo order.
fn visit<'l, 'a>(
    i: usize,
    inputs: &[Vec<Edge<'l, 'a>>],
    state: &mut [u8],
    path: &mut Vec<Edge<'l, 'a>>,
    cycles: &mut Vec<Vec<Edge<'l, 'a>>>,
) {
    state[i] = 1;
    for edge in &inputs[i] {
        match state[edge.from] {
            0 => {
                path.push(*edge);
                visit(edge.from, inputs, state, path, cycles);
                path.pop();
            }
            1 => {
                // `path` holds the edges walked upstream, each into the pipeline the previous
                // one came from; the cycle is those from the edge into `edge.from` on.
                let start = path
                    .iter()
                    .position(|e| e.read.pipeline == edge.from)
                    .unwrap_or(path.len());
                let mut cycle: Vec<Edge<'_, '_>> = path[start..].to_vec();
                cycle.push(*edge);
                cycle.reverse();
                let first = (0..cycle.len()).min_by_key(|&k| cycle[k].from).unwrap_or(0);
                cycle.rotate_left(first);
                cycles.push(cycle);
            }
            _ => {}
        }
    }
    state[i] = 2;
}

/// "`b` reads `parse` of `a`".
fn reads(l: &Lattice<'_>, e: &Edge<'_, '_>) -> String {
    let (reader, upstream) = (l.name(e.read.pipeline), l.name(e.from));
    if reader == upstream {
        format!("`{reader}` reads `{}` of itself", e.publish.unit)
    } else {
        format!("`{reader}` reads `{}` of `{upstream}`", e.publish.unit)
    }
}

/// The diagnostic of `cycle` (its edges in the direction records flow): at the last edge, which
/// closes it, with every other edge named where it is written.
fn diagnostic(l: &Lattice<'_>, cycle: &[Edge<'_, '_>]) -> Diagnostic {
    let mut names: Vec<&str> = cycle.iter().map(|e| l.name(e.from)).collect();
    names.push(names[0]);
    let closing = cycle.last().expect("a cycle has an edge");
    let message = if cycle.len() == 1 {
        format!(
            "pipeline `{}` reads its own records: {}",
            names[0],
            names.join(" → ")
        )
    } else {
        format!(
            "pipelines read each other's records in a cycle: {}",
            names.join(" → ")
        )
    };
    let mut d = Diagnostic::new(Code::PipelineCycle, message)
        .at(closing.read.at.file, closing.read.at.span)
        .label(format!("{}, closing the cycle", reads(l, closing)))
        .expected("records flowing one way: from a pipeline to those that read it, never back")
        .help("remove one of these reads");
    for e in &cycle[..cycle.len() - 1] {
        d = d.related(e.read.at.file, e.read.at.span, reads(l, e));
    }
    if cycle.len() == 1 {
        d = d.related(
            closing.publish.at.file,
            closing.publish.at.span,
            format!(
                "`{}` publishes to `{}`",
                closing.publish.unit, closing.publish.subject
            ),
        );
    }
    d
}
