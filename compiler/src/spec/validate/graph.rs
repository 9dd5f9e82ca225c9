//! Graph rules of one pipeline: unique names, `from` references, no cycles, everything reachable
//! from the source.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::diag::{self, Code, Diagnostic, Span};
use crate::spec::load::{HoleKind, Loaded};
use crate::spec::model::Pipeline;

/// What a name in the pipeline refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Node {
    Source,
    Step(usize),
    Sink(usize),
    /// A step or sink the schema rejected ([`crate::spec::load::Hole`]).
    Hole(usize),
}

/// Checks the graph of `p`, whose steps named in `read_elsewhere` other pipelines read (through
/// `connector: pipeline` sources): their output is consumed.
pub(super) fn check_graph(
    p: &Loaded<Pipeline>,
    read_elsewhere: &[&str],
    out: &mut Vec<Diagnostic>,
) {
    let spec = &p.spec.spec;
    let file = p.file.as_str();
    let holes = &p.holes;
    let mut names: HashMap<&str, (Node, Span)> = HashMap::new();
    let mut duplicated: HashSet<Node> = HashSet::new();
    let declared = std::iter::once((
        spec.source.name.as_str(),
        Node::Source,
        p.span("/spec/source/name"),
    ))
    .chain(spec.steps.iter().enumerate().map(|(i, s)| {
        (
            s.name.as_str(),
            Node::Step(i),
            p.span(&format!("/spec/steps/{i}/name")),
        )
    }))
    .chain(spec.sinks.iter().enumerate().map(|(i, s)| {
        (
            s.name.as_str(),
            Node::Sink(i),
            p.span(&format!("/spec/sinks/{i}/name")),
        )
    }))
    .chain(holes.iter().enumerate().filter_map(|(k, h)| {
        h.name
            .as_ref()
            .map(|(name, span)| (name.as_str(), Node::Hole(k), *span))
    }));
    for (name, node, span) in declared {
        if let Some((_, first)) = names.get(name) {
            out.push(
                Diagnostic::new(
                    Code::DuplicateName,
                    format!(
                        "`{name}` is defined twice in pipeline `{}`",
                        p.spec.metadata.name
                    ),
                )
                .at(file, span)
                .label("defined again here")
                .related(file, *first, "first defined here")
                .expected("names unique across the source, steps and sinks of a pipeline"),
            );
            duplicated.insert(node);
            continue;
        }
        if !matches!(node, Node::Hole(_)) && name.chars().any(|c| c.is_ascii_uppercase()) {
            out.push(
                Diagnostic::new(
                    Code::UppercaseName,
                    format!("`{name}` has upper-case letters"),
                )
                .at(file, span)
                .label("upper-case")
                .help(format!(
                    "use `{}`: OCI repository names must be lower case",
                    name.to_ascii_lowercase()
                )),
            );
        }
        names.insert(name, (node, span));
    }
    let is_sink = |node: Node| match node {
        Node::Sink(_) => true,
        Node::Hole(k) => holes[k].kind == HoleKind::Sink,
        _ => false,
    };
    // A rejected item without a readable name may be what an unknown name means.
    let unnamed_hole = holes.iter().any(|h| h.name.is_none());

    // In file order, rejected steps included.
    let mut producers: Vec<(&str, Span)> = names
        .iter()
        .filter(|(_, (node, _))| !is_sink(*node))
        .map(|(name, (_, span))| (*name, *span))
        .collect();
    producers.sort_by_key(|(_, span)| span.start.offset);
    let producers: Vec<&str> = producers.into_iter().map(|(name, _)| name).collect();
    let from_of = |pointer: String, from: &'_ [String]| -> Vec<(String, Span)> {
        from.iter()
            .enumerate()
            .map(|(j, name)| (name.clone(), p.span(&format!("{pointer}/{j}"))))
            .collect()
    };
    let consumers = spec
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let from = from_of(format!("/spec/steps/{i}/from"), &s.from);
            (Node::Step(i), from)
        })
        .chain(spec.sinks.iter().enumerate().map(|(i, s)| {
            let from = from_of(format!("/spec/sinks/{i}/from"), &s.from);
            (Node::Sink(i), from)
        }))
        .chain(
            holes
                .iter()
                .enumerate()
                .filter_map(|(k, h)| Some((Node::Hole(k), h.from.clone()?))),
        );
    let mut inputs: HashMap<Node, Vec<Node>> = HashMap::new();
    // Rejected items whose `from` cannot be read may consume anything.
    let mut broken: HashSet<Node> = holes
        .iter()
        .enumerate()
        .filter(|(_, h)| h.from.is_none())
        .map(|(k, _)| Node::Hole(k))
        .collect();
    for (consumer, from) in consumers {
        let mut seen = HashSet::new();
        for (name, at) in &from {
            let at = *at;
            if !seen.insert(name.as_str()) {
                out.push(
                    Diagnostic::new(Code::DuplicateFrom, format!("`from` names `{name}` twice"))
                        .at(file, at)
                        .help("remove the repeated name: each input is consumed once"),
                );
                continue;
            }
            match names.get(name.as_str()).map(|(n, _)| *n) {
                Some(node) if is_sink(node) => {
                    broken.insert(consumer);
                    out.push(
                        Diagnostic::new(
                            Code::UnknownReference,
                            format!("`{name}` is a sink: sinks produce no records"),
                        )
                        .at(file, at)
                        .label("a sink")
                        .expected(format!(
                            "the source or a step: {}",
                            diag::quoted_list(&producers)
                        )),
                    );
                }
                Some(node) => inputs.entry(consumer).or_default().push(node),
                None if unnamed_hole => {
                    broken.insert(consumer);
                }
                None => {
                    broken.insert(consumer);
                    out.push(
                        Diagnostic::new(
                            Code::UnknownReference,
                            format!("`from` names `{name}`, which this pipeline does not define"),
                        )
                        .at(file, at)
                        .label("unknown name")
                        .expected(format!(
                            "the source or a step: {}",
                            diag::quoted_list(&producers)
                        ))
                        .maybe_help(diag::did_you_mean(name, producers.iter().copied())),
                    );
                }
            }
        }
    }

    let in_cycle = cycles(p, &inputs, out);

    let reached = downstream(HashSet::from([Node::Source]), &inputs);
    // Nodes fed by a broken `from` are unreachable only because of it: say it once, there.
    let tainted = downstream(broken.clone(), &inputs);
    let unreached = spec
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                Node::Step(i),
                s.name.as_str(),
                format!("/spec/steps/{i}/name"),
                "step",
            )
        })
        .chain(spec.sinks.iter().enumerate().map(|(i, s)| {
            (
                Node::Sink(i),
                s.name.as_str(),
                format!("/spec/sinks/{i}/name"),
                "sink",
            )
        }))
        .filter(|(n, ..)| !reached.contains(n) && !tainted.contains(n) && !in_cycle.contains(n));
    for (_, name, pointer, what) in unreached {
        out.push(
            Diagnostic::new(
                Code::Unreachable,
                format!(
                    "{what} `{name}` is not reachable from source `{}`",
                    spec.source.name
                ),
            )
            .at(file, p.span(&pointer))
            .label("no record can arrive here")
            .help("its `from` chain never leads back to the source; connect it or remove it"),
        );
    }

    // A broken `from` may have meant any step: only a pipeline whose references all resolve can
    // tell which outputs nothing consumes.
    if !broken.is_empty() {
        return;
    }
    let consumed: HashSet<Node> = inputs.values().flatten().copied().collect();
    for (i, step) in spec.steps.iter().enumerate() {
        if !consumed.contains(&Node::Step(i))
            && !duplicated.contains(&Node::Step(i))
            && !read_elsewhere.contains(&step.name.as_str())
        {
            out.push(
                Diagnostic::new(
                    Code::DeadEnd,
                    format!("nothing consumes the output of step `{}`", step.name),
                )
                .at(file, p.span(&format!("/spec/steps/{i}/name")))
                .label("its records go nowhere")
                .help(format!(
                    "add `{}` to the `from` of a step or sink, or read it from another pipeline \
                     (`connector: pipeline`)",
                    step.name
                )),
            );
        }
    }
}

/// `seed` and every node that consumes, directly or through others, from a node in it.
fn downstream(seed: HashSet<Node>, inputs: &HashMap<Node, Vec<Node>>) -> HashSet<Node> {
    let mut set = seed;
    let mut changed = true;
    while changed {
        changed = false;
        for (consumer, from) in inputs {
            if !set.contains(consumer) && from.iter().any(|n| set.contains(n)) {
                set.insert(*consumer);
                changed = true;
            }
        }
    }
    set
}

/// Reports each cycle among steps once, with its whole path; returns the steps on cycles.
fn cycles(
    p: &Loaded<Pipeline>,
    inputs: &std::collections::HashMap<Node, Vec<Node>>,
    out: &mut Vec<Diagnostic>,
) -> HashSet<Node> {
    let steps = &p.spec.spec.steps;
    let mut on_cycle = HashSet::new();
    let mut reported: BTreeSet<Vec<usize>> = BTreeSet::new();
    let mut state = vec![0u8; steps.len()];
    let mut path: Vec<usize> = Vec::new();

    fn visit(
        i: usize,
        inputs: &HashMap<Node, Vec<Node>>,
        state: &mut [u8],
        path: &mut Vec<usize>,
        found: &mut Vec<Vec<usize>>,
    ) {
        state[i] = 1;
        path.push(i);
        for input in inputs.get(&Node::Step(i)).into_iter().flatten() {
            if let Node::Step(j) = *input {
                match state[j] {
                    0 => visit(j, inputs, state, path, found),
                    1 => {
                        let start = path.iter().position(|&k| k == j).unwrap_or(0);
                        found.push(path[start..].to_vec());
                    }
                    _ => {}
                }
            }
        }
        path.pop();
        state[i] = 2;
    }

    let mut found = Vec::new();
    for i in 0..steps.len() {
        if state[i] == 0 {
            visit(i, inputs, &mut state, &mut path, &mut found);
        }
    }
    for cycle in found {
        let mut key = cycle.clone();
        key.sort_unstable();
        if !reported.insert(key) {
            continue;
        }
        // `cycle` lists consumers walking upstream: a[0] reads from a[1], …, the last reads a[0].
        let mut flow: Vec<usize> = cycle.iter().rev().copied().collect();
        let first = flow
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| **s)
            .map_or(0, |(k, _)| k);
        flow.rotate_left(first);
        let names: Vec<&str> = flow.iter().map(|&k| steps[k].name.as_str()).collect();
        let closing = flow[0];
        let last = *flow.last().unwrap_or(&closing);
        let j = steps[closing]
            .from
            .iter()
            .position(|f| f.as_str() == steps[last].name.as_str())
            .unwrap_or(0);
        let mut d = Diagnostic::new(
            Code::Cycle,
            format!("steps form a cycle: {} → {}", names.join(" → "), names[0]),
        )
        .at(&p.file, p.span(&format!("/spec/steps/{closing}/from/{j}")))
        .label(format!(
            "`{}` reads from `{}`, closing the cycle",
            steps[closing].name, steps[last].name
        ))
        .expected("an acyclic graph: records flow from the source to the sinks")
        .help("remove one of these `from` entries");
        for &k in flow.iter().skip(1) {
            d = d.related(
                &p.file,
                p.span(&format!("/spec/steps/{k}/name")),
                format!("`{}` is on the cycle", steps[k].name),
            );
        }
        out.push(d);
        on_cycle.extend(flow.iter().map(|&k| Node::Step(k)));
    }
    on_cycle
}
