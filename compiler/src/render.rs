//! Renders diagnostics for people (rustc-style snippets), for tools (stable JSON) and for GitHub
//! Actions (workflow annotations). The only place diagnostics become text.

use annotate_snippets::{AnnotationKind, Group, Level, Origin, Renderer, Snippet};
use serde::Serialize;

use crate::diag::{Diagnostic, Location, Severity, Span};
use crate::load::Sources;

/// Version of the JSON format; bumped only on incompatible changes.
pub const JSON_FORMAT_VERSION: u32 = 1;

/// How paths are shown: `prefix` (the repo directory as given) joined with the repo-relative path.
#[derive(Debug, Clone, Default)]
pub struct Paths {
    prefix: String,
}

impl Paths {
    /// Paths shown relative to `repo`; `.` or empty shows them repo-relative.
    pub fn new(repo: &str) -> Self {
        let repo = repo.trim_end_matches('/');
        let prefix = if repo.is_empty() || repo == "." {
            String::new()
        } else {
            format!("{repo}/")
        };
        Paths { prefix }
    }

    fn show(&self, file: &str) -> String {
        format!("{}{file}", self.prefix)
    }
}

/// Renders diagnostics in the rustc style; `color` adds ANSI styles.
pub fn human(diagnostics: &[Diagnostic], sources: &Sources, paths: &Paths, color: bool) -> String {
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let mut out = String::new();
    for d in diagnostics {
        let shown: Vec<String> = std::iter::once(d.location.as_ref())
            .chain(d.related.iter().map(|r| Some(&r.location)))
            .map(|l| l.map(|l| paths.show(&l.file)).unwrap_or_default())
            .collect();
        let level = match d.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let mut group =
            Group::with_title(level.primary_title(d.message.as_str()).id(d.code.as_str()));
        let mut snippet = d.location.as_ref().and_then(|l| {
            let span = l.span?;
            let text = sources.get(&l.file)?;
            Some((
                l.file.as_str(),
                Snippet::source(text)
                    .path(shown[0].as_str())
                    .fold(true)
                    .annotation(
                        AnnotationKind::Primary
                            .span(byte_range(span, text))
                            .label(d.label.as_deref()),
                    ),
            ))
        });
        let mut others = Vec::new();
        for (i, related) in d.related.iter().enumerate() {
            let (Some(span), Some(text)) =
                (related.location.span, sources.get(&related.location.file))
            else {
                continue;
            };
            let annotation = AnnotationKind::Context
                .span(byte_range(span, text))
                .label(related.message.as_str());
            match &mut snippet {
                Some((file, s)) if *file == related.location.file => {
                    *s = std::mem::replace(s, Snippet::source("")).annotation(annotation);
                }
                _ => others.push(
                    Snippet::source(text)
                        .path(shown[i + 1].as_str())
                        .fold(true)
                        .annotation(annotation),
                ),
            }
        }
        match (snippet, &d.location) {
            (Some((_, s)), _) => group = group.element(s),
            (None, Some(l)) => {
                let mut origin = Origin::path(shown[0].as_str());
                if let Some(span) = l.span {
                    origin = origin
                        .line(span.start.line as usize)
                        .char_column(span.start.column as usize);
                }
                group = group.element(origin);
            }
            (None, None) => {}
        }
        for s in others {
            group = group.element(s);
        }
        if let Some(expected) = &d.expected {
            group = group.element(Level::NOTE.message(format!("expected {expected}")));
        }
        for note in &d.notes {
            group = group.element(Level::NOTE.message(note.as_str()));
        }
        if let Some(help) = &d.help {
            group = group.element(Level::HELP.message(help.as_str()));
        }
        let report: [Group<'_>; 1] = [group];
        out.push_str(&renderer.render(&report));
        out.push_str("\n\n");
    }
    out
}

/// The last line of human output: counts, or that the repo is valid.
pub fn summary(diagnostics: &[Diagnostic], what: &str) -> String {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (0, 0) => format!("{what} is valid"),
        (0, w) => format!("{what} is valid, with {}", plural(w, "warning")),
        (e, 0) => format!("{what} is invalid: {}", plural(e, "error")),
        (e, w) => format!(
            "{what} is invalid: {} and {}",
            plural(e, "error"),
            plural(w, "warning")
        ),
    }
}

/// Byte range of a span, clamped to the text and to character boundaries, never empty when the
/// text has room (so a caret always shows).
fn byte_range(span: Span, text: &str) -> std::ops::Range<usize> {
    let clamp = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let start = clamp(span.start.offset);
    let mut end = clamp(span.end.offset.max(span.start.offset));
    if end == start && start < text.len() {
        end = clamp(start + text[start..].chars().next().map_or(0, char::len_utf8));
    }
    start..end
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonReport<'a> {
    version: u32,
    valid: bool,
    errors: usize,
    warnings: usize,
    diagnostics: Vec<JsonDiagnostic<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonDiagnostic<'a> {
    code: &'static str,
    severity: Severity,
    message: &'a str,
    file: Option<&'a str>,
    line: Option<u32>,
    column: Option<u32>,
    end_line: Option<u32>,
    end_column: Option<u32>,
    label: Option<&'a str>,
    expected: Option<&'a str>,
    help: Option<&'a str>,
    notes: &'a [String],
    related: Vec<JsonRelated<'a>>,
}

#[derive(Serialize)]
struct JsonRelated<'a> {
    file: &'a str,
    line: Option<u32>,
    column: Option<u32>,
    message: &'a str,
}

fn place(location: Option<&Location>) -> (Option<&str>, Option<Span>) {
    (
        location.map(|l| l.file.as_str()),
        location.and_then(|l| l.span),
    )
}

/// Renders diagnostics as the stable JSON document described in `docs/diagnostics.md`.
pub fn json(diagnostics: &[Diagnostic]) -> String {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let report = JsonReport {
        version: JSON_FORMAT_VERSION,
        valid: errors == 0,
        errors,
        warnings: diagnostics.len() - errors,
        diagnostics: diagnostics
            .iter()
            .map(|d| {
                let (file, span) = place(d.location.as_ref());
                JsonDiagnostic {
                    code: d.code.as_str(),
                    severity: d.severity,
                    message: &d.message,
                    file,
                    line: span.map(|s| s.start.line),
                    column: span.map(|s| s.start.column),
                    end_line: span.map(|s| s.end.line),
                    end_column: span.map(|s| s.end.column),
                    label: d.label.as_deref(),
                    expected: d.expected.as_deref(),
                    help: d.help.as_deref(),
                    notes: &d.notes,
                    related: d
                        .related
                        .iter()
                        .map(|r| JsonRelated {
                            file: &r.location.file,
                            line: r.location.span.map(|s| s.start.line),
                            column: r.location.span.map(|s| s.start.column),
                            message: &r.message,
                        })
                        .collect(),
                }
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&report).expect("diagnostics serialize");
    text.push('\n');
    text
}

/// Renders diagnostics as GitHub Actions workflow commands.
pub fn github(diagnostics: &[Diagnostic], paths: &Paths) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let command = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut props = Vec::new();
        if let Some(l) = &d.location {
            props.push(format!("file={}", escape_property(&paths.show(&l.file))));
            if let Some(s) = l.span {
                props.push(format!(
                    "line={},col={},endLine={},endColumn={}",
                    s.start.line, s.start.column, s.end.line, s.end.column
                ));
            }
        }
        props.push(format!(
            "title={}",
            escape_property(&format!("{} {}", d.code, d.code.title()))
        ));
        let mut message = d.message.clone();
        if let Some(e) = &d.expected {
            message.push_str(&format!("\nexpected {e}"));
        }
        for n in &d.notes {
            message.push_str(&format!("\nnote: {n}"));
        }
        if let Some(h) = &d.help {
            message.push_str(&format!("\nhelp: {h}"));
        }
        out.push_str(&format!(
            "::{command} {}::{}\n",
            props.join(","),
            escape_data(&message)
        ));
    }
    out
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_workflow_commands() {
        assert_eq!(escape_data("a%b\nc"), "a%25b%0Ac");
        assert_eq!(escape_property("E0201: x,y"), "E0201%3A x%2Cy");
    }

    #[test]
    fn ranges_never_split_characters() {
        let text = "é: 1";
        let at = |offset| crate::diag::Pos {
            line: 1,
            column: 1,
            offset,
        };
        assert_eq!(
            byte_range(
                Span {
                    start: at(1),
                    end: at(1)
                },
                text
            ),
            0..2
        );
        assert_eq!(
            byte_range(
                Span {
                    start: at(99),
                    end: at(99)
                },
                text
            ),
            5..5
        );
    }
}
