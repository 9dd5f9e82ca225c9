//! The subjects etl derives for a step (`etl.<project>.<pipeline>.out.<step>`, `.dlq.<step>`)
//! carry that step's records only: nothing else publishes to one, and another pipeline that
//! reads one says so (`connector: pipeline`), so that etl resolves and checks what it reads.

use std::collections::HashMap;

use super::view::{Bus, Lattice, Publish, Publisher};
use crate::diag::{Code, Diagnostic};
use crate::spec::subjects::is_wildcard;
use crate::spec::validate::findings::Findings;

/// What an internal subject carries, in words: "step `parse` of pipeline `a`".
fn owner(l: &Lattice<'_>, w: &Publish<'_>) -> String {
    let what = match w.publisher {
        Publisher::DeadLetters => "the dead letters of step",
        _ => "step",
    };
    format!("{what} `{}` of pipeline `{}`", w.unit, l.name(w.pipeline))
}

/// A subject internal to a step is published to by that step alone.
pub(super) fn check_internal(l: &Lattice<'_>, found: &mut Findings) {
    let mut internal: HashMap<&str, &Publish<'_>> = HashMap::new();
    for w in l.publishes.iter().filter(|w| w.is_internal()) {
        internal.entry(w.subject.as_str()).or_insert(w);
    }
    for w in &l.publishes {
        if w.bus != Bus::Nats {
            continue;
        }
        let Some(&first) = internal.get(w.subject.as_str()) else {
            continue;
        };
        // A step defined twice in one pipeline is reported as such.
        if std::ptr::eq(first, w) || (first.pipeline == w.pipeline && first.unit == w.unit) {
            continue;
        }
        let (who, verb) = match w.publisher {
            Publisher::Sink => ("sink", "publishes to"),
            Publisher::Step => ("step", "publishes to"),
            Publisher::DeadLetters => ("the dead letters of step", "go to"),
        };
        let who = format!("{who} `{}` of pipeline `{}`", w.unit, l.name(w.pipeline));
        found.add(
            l.env,
            Diagnostic::new(
                Code::InternalSubject,
                format!(
                    "{who} {verb} `{}`, the subject of {}",
                    w.subject,
                    owner(l, first)
                ),
            )
            .at(w.at.file, w.at.span)
            .label(format!("internal to `{}`", first.unit))
            .related(
                first.at.file,
                first.at.span,
                format!("`{}` publishes to `{}`", first.unit, first.subject),
            )
            .expected(
                "a subject of its own: `etl.<project>.<pipeline>.out.<step>` and `.dlq.<step>` \
                 carry one step's records",
            )
            .help(format!(
                "publish to another subject; a pipeline that wants these records reads them with \
                 `connector: pipeline` and `with: {{ pipeline: {}, from: {} }}`",
                l.name(w.pipeline),
                w.unit
            )),
        );
    }
}

/// A `nats` source that subscribes to another pipeline's step subject is a sub-pipeline that
/// does not say so.
pub(super) fn check_implicit(l: &Lattice<'_>, found: &mut Findings) {
    for r in &l.reads {
        if !r.connector.reads_nats() {
            continue;
        }
        let taken: Vec<&Publish<'_>> = l
            .received(r)
            .into_iter()
            .filter(|w| w.publisher == Publisher::Step && w.pipeline != r.pipeline)
            .collect();
        let Some(first) = taken.first() else {
            continue;
        };
        let reader = l.name(r.pipeline);
        let mut d = Diagnostic::new(
            Code::ImplicitSubPipeline,
            if is_wildcard(&r.pattern) {
                format!(
                    "source `{}` of pipeline `{reader}` subscribes to `{}`, which takes in the \
                     records of {}",
                    r.source,
                    r.pattern,
                    list(l, &taken)
                )
            } else {
                format!(
                    "source `{}` of pipeline `{reader}` reads `{}`, the subject internal to {}",
                    r.source,
                    r.pattern,
                    owner(l, first)
                )
            },
        )
        .at(r.at.file, r.at.span)
        .label(format!("internal to pipeline `{}`", l.name(first.pipeline)))
        .related(
            first.at.file,
            first.at.span,
            format!("`{}` publishes to `{}`", first.unit, first.subject),
        )
        .note("etl names these subjects: they change when the pipeline or step is renamed");
        d = if taken.len() == 1 {
            d.help(format!(
                "say so: `connector: pipeline` with `with: {{ pipeline: {}, from: {} }}`",
                l.name(first.pipeline),
                first.unit
            ))
        } else {
            d.help("read each by name instead: one pipeline with a `connector: pipeline` source for each")
        };
        found.add(l.env, d);
    }
}

/// "step `a` of pipeline `p`, step `b` of pipeline `q`" (at most three, then how many more).
fn list(l: &Lattice<'_>, taken: &[&Publish<'_>]) -> String {
    let mut names: Vec<String> = taken
        .iter()
        .take(3)
        .map(|w| format!("`{}` of `{}`", w.unit, l.name(w.pipeline)))
        .collect();
    if taken.len() > 3 {
        names.push(format!("{} more", taken.len() - 3));
    }
    let noun = if taken.len() == 1 { "step" } else { "steps" };
    format!("{noun} {}", names.join(", "))
}
