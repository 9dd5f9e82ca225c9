//! The report as text (a terminal), JSON (tools) and Markdown (a pull-request comment, cut to
//! fit GitHub's limit).

use std::fmt::Write as _;

use super::*;

/// `sha256:` and the first 12 hex digits.
fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algo, hex)) if hex.len() > 12 => format!("{algo}:{}", &hex[..12]),
        _ => digest.to_owned(),
    }
}

/// A value as shown: JSON-quoted (so newlines and quotes are visible), or the redaction mark.
fn shown(value: &Option<String>) -> String {
    match value {
        None => "(unset)".to_owned(),
        Some(v) if v == REDACTED => REDACTED.to_owned(),
        Some(v) => serde_json::to_string(v).expect("strings serialize"),
    }
}

fn spread_text(spread: &Option<Vec<Spread>>) -> String {
    match spread {
        None => "(none)".to_owned(),
        Some(s) if s.is_empty() => "anywhere".to_owned(),
        Some(s) => s
            .iter()
            .map(|s| {
                let reqs: Vec<String> = s
                    .requirements
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let mut text = format!("{}[{}]", s.name, reqs.join(","));
                if let Some(w) = s.weight {
                    let _ = write!(text, ":{w}");
                }
                text
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "(none)".to_owned(), ToString::to_string)
}

/// `n` nanoseconds in the largest unit that divides it, as durations are written in specs:
/// `24h`, `90m`, `30s`, `250ms`.
fn duration_text(n: i64) -> String {
    const UNITS: [(i64, &str); 4] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
    ];
    UNITS
        .iter()
        .find(|(per, _)| n != 0 && n % per == 0)
        .map_or_else(
            || format!("{n}ns"),
            |(per, unit)| format!("{}{unit}", n / per),
        )
}

/// `n` bytes in the largest binary unit that divides it.
fn bytes_text(n: i64) -> String {
    const UNITS: [(i64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    UNITS
        .iter()
        .find(|(per, _)| n != 0 && n % per == 0)
        .map_or_else(
            || format!("{n} B"),
            |(per, unit)| format!("{} {unit}", n / per),
        )
}

/// A JetStream setting as people write it: durations (nanoseconds in the document) as `1h`,
/// byte sizes in binary units, the NATS API's "no limit" values as `unlimited`, lists joined.
fn jetstream_value(field: &str, value: &Option<serde_json::Value>) -> String {
    use serde_json::Value;
    let Some(value) = value else {
        return "(none)".to_owned();
    };
    match value {
        Value::Number(n) => match (field, n.as_i64()) {
            ("max_age", Some(0)) | ("max_bytes" | "max_msgs", Some(-1)) => "unlimited".to_owned(),
            ("max_age" | "ack_wait" | "duplicate_window", Some(n)) => duration_text(n),
            ("max_bytes", Some(n)) => bytes_text(n),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "(none)".to_owned(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// How one line of a change reads, with `code` wrapping names and values.
struct Style {
    code: fn(&str) -> String,
}

impl Style {
    fn c(&self, s: &str) -> String {
        (self.code)(s)
    }

    fn change(&self, old: &str, new: &str) -> String {
        format!("{} → {}", self.c(old), self.c(new))
    }

    /// `old → new`, or just the new value when there was none.
    fn either(&self, change: &Change<String>) -> String {
        match (&change.old, &change.new) {
            (None, Some(new)) => self.c(new),
            (old, new) => self.change(&opt(old), &opt(new)),
        }
    }

    fn cause(&self, cause: &Cause) -> String {
        match cause {
            Cause::Customer {
                component,
                digest,
                component_digest,
                reference,
            } => {
                let mut parts = Vec::new();
                if let Some(c) = component {
                    parts.push(format!(
                        "customer component {}",
                        self.change(&opt(&c.old), &opt(&c.new))
                    ));
                } else {
                    parts.push(format!("customer component {}", self.c(reference)));
                }
                if let Some(d) = digest {
                    parts.push(format!(
                        "digest {}",
                        self.change(&short(&opt(&d.old)), &short(&opt(&d.new)))
                    ));
                }
                if let Some(d) = component_digest {
                    parts.push(format!(
                        "componentized {}",
                        self.change(&short(&opt(&d.old)), &short(&opt(&d.new)))
                    ));
                }
                parts.join(", ")
            }
            Cause::Harness { part, digest } => format!(
                "harness part {} {}",
                self.c(part),
                self.change(&short(&opt(&digest.old)), &short(&opt(&digest.new)))
            ),
            Cause::HarnessParts { parts } => format!(
                "harness parts {}",
                self.change(
                    &parts.old.clone().unwrap_or_default().join("+"),
                    &parts.new.clone().unwrap_or_default().join("+")
                )
            ),
            Cause::Claims { issuer } => format!(
                "claims issuer {}",
                self.change(&opt(&issuer.old), &opt(&issuer.new))
            ),
            Cause::Composition => {
                "neither the customer component nor a harness part: the composition (connector or wiring) differs".to_owned()
            }
        }
    }

    /// A change of delivery guarantee and the stream and consumers it adds or removes:
    /// `at-least-once → at-most-once (stream S and 4 consumers removed)`.
    fn delivery(&self, d: &DeploymentDiff) -> Option<String> {
        let guarantee = d.delivery.as_ref()?;
        let mut text = self.either(guarantee);
        for status in [Status::Removed, Status::Added] {
            let of = |kind: JetStreamKind| -> Vec<&JetStreamChange> {
                d.jetstream
                    .iter()
                    .filter(|j| j.of == kind && j.status == status)
                    .collect()
            };
            let (streams, consumers) = (of(JetStreamKind::Stream), of(JetStreamKind::Consumer));
            let mut what = Vec::new();
            if !streams.is_empty() {
                let names: Vec<String> = streams.iter().map(|s| self.c(&s.name)).collect();
                what.push(format!(
                    "{} {}",
                    if names.len() == 1 {
                        "stream"
                    } else {
                        "streams"
                    },
                    names.join(", ")
                ));
            }
            if !consumers.is_empty() {
                what.push(plural(consumers.len(), "consumer", "consumers"));
            }
            if what.is_empty() {
                continue;
            }
            let verb = match (status, guarantee.old.is_some()) {
                (_, false) => "",
                (Status::Removed, _) => " removed",
                _ => " added",
            };
            let _ = write!(text, " ({}{verb})", what.join(" and "));
        }
        Some(text)
    }

    /// The JetStream changes of a deployment whose guarantee stayed: streams and consumers
    /// added or removed, then settings, consumers with the same change on one line.
    fn jetstream_lines(&self, d: &DeploymentDiff) -> Vec<String> {
        let mut lines = Vec::new();
        if d.delivery.is_some() {
            return lines;
        }
        let mut settings: Vec<(JetStreamKind, String, Vec<&str>)> = Vec::new();
        for j in &d.jetstream {
            let kind = match j.of {
                JetStreamKind::Stream => "stream",
                JetStreamKind::Consumer => "consumer",
            };
            let (Some(field), Some(value)) = (&j.field, &j.value) else {
                let on = if j.of == JetStreamKind::Consumer {
                    format!(" (stream {})", self.c(&j.stream))
                } else {
                    String::new()
                };
                let verb = if j.status == Status::Added {
                    "added"
                } else {
                    "removed"
                };
                lines.push(format!("{kind} {}{on} {verb}", self.c(&j.name)));
                continue;
            };
            let what = format!(
                "{field} {}",
                self.either(&Change {
                    old: value
                        .old
                        .as_ref()
                        .map(|_| jetstream_value(field, &value.old)),
                    new: Some(jetstream_value(field, &value.new)),
                })
            );
            match settings
                .iter_mut()
                .find(|(k, w, _)| *k == j.of && *w == what)
            {
                Some((_, _, names)) => names.push(&j.name),
                None => settings.push((j.of, what, vec![&j.name])),
            }
        }
        for (kind, what, names) in settings {
            let kind = match (kind, names.len()) {
                (JetStreamKind::Stream, 1) => "stream",
                (JetStreamKind::Stream, _) => "streams",
                (JetStreamKind::Consumer, 1) => "consumer",
                (JetStreamKind::Consumer, _) => "consumers",
            };
            let names: Vec<String> = names.iter().map(|n| self.c(n)).collect();
            lines.push(format!("{kind} {} {what}", names.join(", ")));
        }
        lines
    }

    /// The changes of one deployment, one line each, without the environment. A change of
    /// delivery guarantee comes first: it changes what can be lost.
    fn deployment_lines(&self, d: &DeploymentDiff) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(delivery) = self.delivery(d) {
            lines.push(format!("delivery {delivery}"));
        }
        if let Some(l) = &d.lattice {
            lines.push(format!("lattice {}", self.either(l)));
        }
        if let Some(b) = &d.secret_backend {
            lines.push(format!("secret backend {}", self.either(b)));
        }
        if let Some(m) = &d.max_in_flight {
            let text = |n: &Option<u32>| n.map(|n| n.to_string());
            lines.push(format!(
                "max in flight per messaging-fed step (wasmCloud v2) {}",
                self.either(&Change {
                    old: text(&m.old),
                    new: text(&m.new),
                })
            ));
        }
        // Units whose scaling changed alike share a line.
        let mut scaling: Vec<(String, Vec<&str>)> = Vec::new();
        for s in &d.scale {
            let mut what = Vec::new();
            if let Some(r) = &s.replicas {
                what.push(match r.old {
                    Some(old) => {
                        format!("replicas {}", self.change(&old.to_string(), &opt(&r.new)))
                    }
                    None => format!("replicas {}", self.c(&opt(&r.new))),
                });
            }
            if let Some(sp) = &s.spread {
                what.push(format!(
                    "spread {}",
                    self.change(&spread_text(&sp.old), &spread_text(&sp.new))
                ));
            }
            let what = what.join(", ");
            match scaling.iter_mut().find(|(w, _)| *w == what) {
                Some((_, units)) => units.push(&s.unit),
                None => scaling.push((what, vec![&s.unit])),
            }
        }
        for (what, units) in scaling {
            let units: Vec<String> = units.iter().map(|u| self.c(u)).collect();
            lines.push(format!("{} {what}", units.join(", ")));
        }
        lines.extend(self.jetstream_lines(d));
        for c in &d.config {
            let whose = match c.of {
                Owner::Component => format!("{} config", self.c(&c.name)),
                Owner::Link => format!("link {}", self.c(&c.name)),
                Owner::Provider => format!("provider {} config", self.c(&c.name)),
            };
            let what = match (&c.value.old, &c.value.new) {
                (Some(_), Some(_)) => self.change(&shown(&c.value.old), &shown(&c.value.new)),
                (None, _) => format!("added {}", self.c(&shown(&c.value.new))),
                (_, None) => format!("removed (was {})", self.c(&shown(&c.value.old))),
            };
            lines.push(format!("{whose} {}: {what}", self.c(&c.key)));
        }
        for s in &d.secrets {
            let what = match (&s.key.old, &s.key.new) {
                (Some(o), Some(n)) => format!("key {}", self.change(o, n)),
                (None, Some(n)) => format!("from key {}", self.c(n)),
                (Some(o), None) => format!("removed (was key {})", self.c(o)),
                (None, None) => String::new(),
            };
            lines.push(format!(
                "{} secret {} {what}",
                self.c(&s.unit),
                self.c(&s.name)
            ));
        }
        for l in &d.links {
            let what = if l.status == Status::Added {
                "added"
            } else {
                "removed"
            };
            lines.push(format!("link {} {what}", self.c(&l.link)));
        }
        for p in &d.providers {
            lines.push(match (&p.image.old, &p.image.new) {
                (Some(o), Some(n)) => {
                    format!("provider {} image {}", self.c(&p.name), self.change(o, n))
                }
                (None, Some(n)) => format!("provider {} image {}", self.c(&p.name), self.c(n)),
                (Some(o), None) => {
                    format!("provider {} removed (was {})", self.c(&p.name), self.c(o))
                }
                (None, None) => String::new(),
            });
        }
        for i in &d.images {
            lines.push(format!(
                "{} image ({}) {}",
                self.c(&i.unit),
                i.generation,
                self.change(&opt(&i.image.old), &opt(&i.image.new))
            ));
        }
        if let Some(o) = &d.other {
            lines.push(format!(
                "the application differs in a way this report does not itemize: version {}",
                self.change(&opt(&o.old), &opt(&o.new))
            ));
        }
        lines
    }
}

/// The lines about a pipeline that hold for every environment: units, artifacts, wiring.
fn pipeline_lines(p: &PipelineDiff, style: &Style) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(d) = p
        .description
        .as_ref()
        .filter(|_| p.status == Status::Changed)
    {
        lines.push(format!(
            "description {}",
            style.change(&opt(&d.old), &opt(&d.new))
        ));
    }
    for u in &p.units_added {
        let what = match &u.component {
            Some(c) => format!("step running {}", style.c(c)),
            None => "sink".to_owned(),
        };
        let from: Vec<String> = u.from.iter().map(|f| style.c(f)).collect();
        let components = match &u.digest_v2 {
            Some(v2) => format!(
                "components {} (wasmCloud 1.x), {} (v2)",
                style.c(&short(&u.digest)),
                style.c(&short(v2))
            ),
            None => format!("component {}", style.c(&short(&u.digest))),
        };
        lines.push(format!(
            "new {what} {} (from {}), {components}",
            style.c(&u.name),
            from.join(", "),
        ));
    }
    for u in &p.units_removed {
        lines.push(format!("removed {}", style.c(u)));
    }
    // A unit's artifacts of both generations changed for the same reasons: one line.
    let mut i = 0;
    while i < p.artifacts.len() {
        let a = &p.artifacts[i];
        let digests = |a: &ArtifactChange| {
            style.change(
                &short(&opt(&a.component_digest.old)),
                &short(&opt(&a.component_digest.new)),
            )
        };
        let causes: Vec<String> = a.causes.iter().map(|c| style.cause(c)).collect();
        match p.artifacts.get(i + 1) {
            Some(b) if b.unit == a.unit && b.causes == a.causes => {
                lines.push(format!(
                    "{} components {} ({}), {} ({}): {}",
                    style.c(&a.unit),
                    digests(a),
                    a.generation,
                    digests(b),
                    b.generation,
                    causes.join("; ")
                ));
                i += 2;
            }
            _ => {
                lines.push(format!(
                    "{} component ({}) {}: {}",
                    style.c(&a.unit),
                    a.generation,
                    digests(a),
                    causes.join("; ")
                ));
                i += 1;
            }
        }
    }
    for w in &p.wiring {
        lines.push(format!(
            "{} from {}",
            style.c(&w.unit),
            style.change(
                &opt(&w.from.old.as_ref().map(|f| f.join(", "))),
                &opt(&w.from.new.as_ref().map(|f| f.join(", ")))
            )
        ));
    }
    if !p.restamped.is_empty() {
        // A unit re-stamped in both generations is named once.
        let mut units: Vec<String> = Vec::new();
        for (i, r) in p.restamped.iter().enumerate() {
            let both = |other: Option<&Restamp>| other.is_some_and(|o| o.unit == r.unit);
            if both(i.checked_sub(1).and_then(|j| p.restamped.get(j))) {
                continue;
            }
            units.push(if both(p.restamped.get(i + 1)) {
                style.c(&r.unit)
            } else {
                format!("{} ({})", style.c(&r.unit), r.generation)
            });
        }
        lines.push(format!(
            "re-stamped (OCI manifest only, same component): {}",
            units.join(", ")
        ));
    }
    lines
}

fn plain(s: &str) -> String {
    s.to_owned()
}

/// A Markdown code span that survives a table cell: `|` escaped, and enough backticks.
fn code_span(s: &str) -> String {
    let s = s.replace('|', "\\|");
    if s.contains('`') {
        format!("`` {s} ``")
    } else {
        format!("`{s}`")
    }
}

fn side_text(s: &Side) -> String {
    match &s.revision {
        Some(r) if !s.arg.contains(&r[..r.len().min(7)]) => {
            format!("{} ({})", s.arg, &r[..r.len().min(12)])
        }
        _ => s.arg.clone(),
    }
}

impl Report {
    /// For a terminal: every change, one a line.
    pub fn text(&self) -> String {
        let style = Style { code: plain };
        let mut out = format!("{}\n", self.summary);
        let _ = writeln!(
            out,
            "base: {}\nhead: {}",
            side_text(&self.base),
            side_text(&self.head)
        );
        let weakened = self.weakened_delivery();
        if !weakened.is_empty() {
            out.push_str(
                "\nDELIVERY WEAKENED: records in flight can now be lost in these deployments \
                 (at most once: no JetStream stream keeps them)\n",
            );
            for (p, d) in weakened {
                let _ = writeln!(
                    out,
                    "  ! {} [{}]: {}",
                    p.name,
                    d.environment,
                    style.delivery(d).unwrap_or_default()
                );
            }
        }
        if self.capabilities.iter().any(Capability::is_new) {
            out.push_str(
                "\nNEW CAPABILITIES: these units can import interfaces or call hosts they could \
                 not before\n",
            );
            for c in self.capabilities.iter().filter(|c| c.is_new()) {
                let _ = writeln!(
                    out,
                    "  ! {}/{}: {}",
                    c.pipeline,
                    c.unit,
                    capability_text(c, plain)
                );
            }
        }
        if self.capabilities.iter().any(|c| !c.is_new()) {
            out.push_str("\nCAPABILITIES TAKEN BACK: these units may no longer call these hosts\n");
            for c in self.capabilities.iter().filter(|c| !c.is_new()) {
                let _ = writeln!(
                    out,
                    "  - {}/{}: {}",
                    c.pipeline,
                    c.unit,
                    capability_text(c, plain)
                );
            }
        }
        if !self.environments.added.is_empty() || !self.environments.removed.is_empty() {
            out.push('\n');
            for e in &self.environments.added {
                let _ = writeln!(out, "environment {e}: added");
            }
            for e in &self.environments.removed {
                let _ = writeln!(out, "environment {e}: removed");
            }
        }
        for p in &self.pipelines {
            let _ = writeln!(out, "\npipeline {} ({})", p.name, status_word(p.status));
            for line in pipeline_lines(p, &style) {
                let _ = writeln!(out, "  {line}");
            }
            for d in &p.deployments {
                let lines = style.deployment_lines(d);
                match d.status {
                    Status::Changed => {
                        let _ = writeln!(out, "  [{}]", d.environment);
                    }
                    status => {
                        let _ = writeln!(out, "  [{}] {}", d.environment, deploy_word(status));
                    }
                }
                for line in lines {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
        out
    }

    /// The stable JSON document (docs/diff.md).
    pub fn json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("reports serialize");
        text.push('\n');
        text
    }

    /// For a pull-request comment: at most [`MARKDOWN_LIMIT`] characters; pipelines whose
    /// sections do not fit are cut, each with a note saying what was cut.
    pub fn markdown(&self) -> String {
        self.markdown_within(MARKDOWN_LIMIT)
    }

    /// [`Report::markdown`] within `limit` bytes (at least a few thousand).
    pub fn markdown_within(&self, limit: usize) -> String {
        let style = Style { code: code_span };
        let mut head = format!("**etl diff:** {}\n", self.summary);
        let _ = writeln!(
            head,
            "\n{} → {}",
            code_span(&side_text(&self.base)),
            code_span(&side_text(&self.head))
        );
        const SHOWN: usize = 50;
        let weakened = self.weakened_delivery();
        if !weakened.is_empty() {
            head.push_str(
                "\n> [!CAUTION]\n> **Delivery weakened.** Records in flight can now be lost in these \
                 deployments (at most once: no JetStream stream keeps them); check that each is \
                 intended:\n",
            );
            for (p, d) in weakened.iter().take(SHOWN) {
                let _ = writeln!(
                    head,
                    "> - {} in {}: {}",
                    code_span(&p.name),
                    code_span(&d.environment),
                    style.delivery(d).unwrap_or_default()
                );
            }
            if weakened.len() > SHOWN {
                let _ = writeln!(
                    head,
                    "> - … and {} more: run `{}` for all of them",
                    weakened.len() - SHOWN,
                    self.full_command()
                );
            }
        }
        let blocks = [
            (
                true,
                "> [!WARNING]\n> **New capabilities.** These units can import interfaces or call \
                 hosts they could not before; check that each is intended:",
            ),
            (
                false,
                "> [!NOTE]\n> **Capabilities taken back.** These units may no longer call these \
                 hosts:",
            ),
        ];
        for (new, title) in blocks {
            let listed: Vec<&Capability> = self
                .capabilities
                .iter()
                .filter(|c| c.is_new() == new)
                .collect();
            if listed.is_empty() {
                continue;
            }
            let _ = writeln!(head, "\n{title}");
            for c in listed.iter().take(SHOWN) {
                let _ = writeln!(
                    head,
                    "> - {} / {}: {}",
                    code_span(&c.pipeline),
                    code_span(&c.unit),
                    capability_text(c, code_span)
                );
            }
            if listed.len() > SHOWN {
                let _ = writeln!(
                    head,
                    "> - … and {} more units: run `{}` for all of them",
                    listed.len() - SHOWN,
                    self.full_command()
                );
            }
        }
        if !self.environments.added.is_empty() || !self.environments.removed.is_empty() {
            let list = |v: &[String]| {
                v.iter()
                    .map(|e| code_span(e))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            head.push('\n');
            if !self.environments.added.is_empty() {
                let _ = writeln!(
                    head,
                    "**New environments:** {}",
                    list(&self.environments.added)
                );
            }
            if !self.environments.removed.is_empty() {
                let _ = writeln!(
                    head,
                    "**Removed environments:** {}",
                    list(&self.environments.removed)
                );
            }
        }
        let sections: Vec<Vec<String>> = self
            .pipelines
            .iter()
            .map(|p| markdown_section(p, &style))
            .collect();
        let command = self.full_command();
        let budget = limit.saturating_sub(head.len());
        let mut out = head + &fit(&sections, &self.pipelines, budget, &command);
        if out.len() > limit {
            // Only a head of thousands of environments gets here: cut it at a line.
            let note = format!(
                "\n> [!NOTE]\n> Cut to fit a comment. Run `{command}` for the full report.\n"
            );
            let mut end = limit.saturating_sub(note.len());
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            end = out[..end].rfind('\n').map_or(0, |i| i + 1);
            out.truncate(end);
            out.push_str(&note);
        }
        out
    }

    /// The deployments whose guarantee went from at least once to at most once.
    fn weakened_delivery(&self) -> Vec<(&PipelineDiff, &DeploymentDiff)> {
        self.pipelines
            .iter()
            .flat_map(|p| p.deployments.iter().map(move |d| (p, d)))
            .filter(|(_, d)| d.weakens_delivery())
            .collect()
    }

    fn full_command(&self) -> String {
        format!(
            "etl diff {} {} --format text",
            shell_word(&self.base.arg),
            shell_word(&self.head.arg)
        )
    }
}

fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./~^@:+=".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A unit's new interfaces: those granted to the customer component, then the composed
/// component's other new imports; then the hosts its outbound HTTP may newly reach, and those
/// it no longer may.
fn capability_text(c: &Capability, code: fn(&str) -> String) -> String {
    let list = |v: Vec<&String>| {
        v.into_iter()
            .map(|i| code(i))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let granted = |i: &String| c.grants.iter().any(|g| unversioned(g) == unversioned(i));
    let others: Vec<&String> = c.imports.iter().filter(|i| !granted(i)).collect();
    let mut parts = Vec::new();
    if !c.grants.is_empty() {
        parts.push(format!(
            "{} (granted to the customer component)",
            list(c.grants.iter().collect())
        ));
    }
    if !others.is_empty() {
        parts.push(format!(
            "{} (imported by the composed component)",
            list(others)
        ));
    }
    if !c.hosts.is_empty() {
        parts.push(format!(
            "outbound HTTP to {} (granted hosts)",
            list(c.hosts.iter().collect())
        ));
    }
    if !c.removed_hosts.is_empty() {
        parts.push(format!(
            "no more outbound HTTP to {}",
            list(c.removed_hosts.iter().collect())
        ));
    }
    parts.join("; ")
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Added => "new",
        Status::Removed => "removed",
        Status::Changed => "changed",
    }
}

fn deploy_word(s: Status) -> &'static str {
    match s {
        Status::Added => "newly deployed",
        Status::Removed => "no longer deployed",
        Status::Changed => "changed",
    }
}

/// One pipeline's Markdown, as blocks that are kept or cut whole: the heading, each line, the
/// table's rows (the first with the table's head), the graph.
fn markdown_section(p: &PipelineDiff, style: &Style) -> Vec<String> {
    let mut blocks = vec![format!(
        "\n### {} — {}\n",
        code_span(&p.name),
        status_word(p.status)
    )];
    for (i, line) in pipeline_lines(p, style).iter().enumerate() {
        let gap = if i == 0 { "\n" } else { "" };
        blocks.push(format!("{gap}- {line}\n"));
    }
    // One row per change, with every environment it is made in.
    let mut rows: Vec<(String, Vec<&str>)> = Vec::new();
    for d in &p.deployments {
        let mut lines = style.deployment_lines(d);
        if d.status != Status::Changed {
            lines.insert(0, format!("**{}**", deploy_word(d.status)));
        }
        for line in lines {
            match rows.iter_mut().find(|(l, _)| *l == line) {
                Some((_, envs)) => envs.push(&d.environment),
                None => rows.push((line, vec![&d.environment])),
            }
        }
    }
    for (i, (line, envs)) in rows.iter().enumerate() {
        let mut block = String::new();
        if i == 0 {
            block.push_str("\n| environment | change |\n| --- | --- |\n");
        }
        let envs: Vec<String> = envs.iter().map(|e| code_span(e)).collect();
        let _ = writeln!(block, "| {} | {line} |", envs.join(", "));
        blocks.push(block);
    }
    if let Some(graph) = &p.graph {
        blocks.push(format!(
            "\n<details><summary>Graph of <code>{}</code> in HEAD</summary>\n\n```mermaid\n{graph}```\n\n</details>\n",
            html_text(&p.name)
        ));
    }
    blocks
}

fn html_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The sections within `budget` bytes: each gets a fair share (what the small ones leave is
/// shared by the large ones); a section over its share keeps its first blocks and ends in a
/// short note of what was cut. Sections that cannot get even their heading and note are left
/// out. When anything was cut, a last note says how to see everything.
fn fit(
    sections: &[Vec<String>],
    pipelines: &[PipelineDiff],
    budget: usize,
    command: &str,
) -> String {
    let sizes: Vec<usize> = sections
        .iter()
        .map(|s| s.iter().map(String::len).sum())
        .collect();
    if sizes.iter().sum::<usize>() <= budget {
        return sections.concat().concat();
    }
    let cut_note = |what: &str| format!("\n> ✂ {what} not shown: see below.\n");
    let last_note = |omitted: usize| {
        let omitted = if omitted > 0 {
            format!(
                " {} not shown at all.",
                plural(omitted, "more pipeline was", "more pipelines were")
            )
        } else {
            String::new()
        };
        format!(
            "\n---\n\n> [!NOTE]\n> This report was cut to fit a comment.{omitted} Run `{command}` for the full report.\n"
        )
    };
    let budget = budget.saturating_sub(last_note(pipelines.len()).len());
    // The most a section's note can take, and the least a section can be shown with.
    let note_room = cut_note("99999 more changes and the graph").len();
    let least = |i: usize| sections[i][0].len() + note_room;
    // Sections shown: as many as can each have their heading and a note.
    let mut shown = 0;
    let mut needed = 0;
    while shown < sections.len() && needed + least(shown) <= budget {
        needed += least(shown);
        shown += 1;
    }
    // Each shown section gets its least, and a fair share of the rest: smallest wants first,
    // what they leave shared by the larger ones.
    let want = |i: usize| sizes[i].saturating_sub(least(i));
    let mut order: Vec<usize> = (0..shown).collect();
    order.sort_by_key(|i| want(*i));
    let mut allot: Vec<usize> = (0..shown).map(least).collect();
    let mut left = budget - needed;
    for (k, &i) in order.iter().enumerate() {
        let extra = want(i).min(left / (shown - k));
        allot[i] += extra;
        left -= extra;
    }
    // The blocks each section keeps within its share; what the shares leave unused (blocks
    // are kept whole) goes to the next blocks of the cut sections, in order.
    let mut kept = vec![0; shown];
    let mut used = 0;
    for i in 0..shown {
        if sizes[i] <= allot[i] {
            kept[i] = sections[i].len();
            used += sizes[i];
            continue;
        }
        let room = allot[i] - note_room;
        let mut taken = 0;
        for (j, b) in sections[i].iter().enumerate() {
            if j > 0 && taken + b.len() > room {
                break;
            }
            taken += b.len();
            kept[i] += 1;
        }
        used += taken + note_room;
    }
    let mut left = budget.saturating_sub(used);
    for i in 0..shown {
        while let Some(b) = sections[i].get(kept[i]) {
            // The last block kept makes the note unneeded.
            let gain = if kept[i] + 1 == sections[i].len() {
                note_room
            } else {
                0
            };
            if b.len() > left + gain {
                break;
            }
            left = left + gain - b.len();
            kept[i] += 1;
        }
    }
    let mut out = String::new();
    for i in 0..shown {
        let blocks = &sections[i];
        out.push_str(&blocks[..kept[i]].concat());
        let cut = &blocks[kept[i]..];
        if cut.is_empty() {
            continue;
        }
        let graph = cut.last().is_some_and(|b| b.contains("```mermaid"));
        let changes = cut.len() - usize::from(graph);
        let mut what = Vec::new();
        if changes > 0 {
            what.push(plural(changes, "more change", "more changes"));
        }
        if graph {
            what.push("the graph".to_owned());
        }
        out.push_str(&cut_note(&what.join(" and ")));
    }
    out.push_str(&last_note(sections.len() - shown));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jetstream_values_read_as_specs_write_them() {
        let v = |field: &str, value: serde_json::Value| jetstream_value(field, &Some(value));
        assert_eq!(v("max_age", json!(86_400_000_000_000_i64)), "24h");
        assert_eq!(v("max_age", json!(5_400_000_000_000_i64)), "90m");
        assert_eq!(v("max_age", json!(0)), "unlimited");
        assert_eq!(v("ack_wait", json!(30_000_000_000_i64)), "30s");
        assert_eq!(v("duplicate_window", json!(250_000_000)), "250ms");
        assert_eq!(v("duplicate_window", json!(1500)), "1500ns");
        assert_eq!(v("max_bytes", json!(-1)), "unlimited");
        assert_eq!(v("max_bytes", json!(1_073_741_824)), "1 GiB");
        assert_eq!(v("max_bytes", json!(1_000_000)), "1000000 B");
        assert_eq!(v("max_msgs", json!(-1)), "unlimited");
        assert_eq!(v("max_ack_pending", json!(1000)), "1000");
        assert_eq!(v("filter_subjects", json!(["a", "b"])), "a, b");
        assert_eq!(jetstream_value("max_age", &None), "(none)");
    }
}
