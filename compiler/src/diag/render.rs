//! Renders diagnostics for people (rustc-style snippets), for tools (stable JSON) and for GitHub
//! Actions (workflow annotations). The only place diagnostics become text.

use std::collections::BTreeMap;

use annotate_snippets::{Annotation, AnnotationKind, Group, Level, Origin, Renderer, Snippet};
use serde::Serialize;

use crate::diag::{Diagnostic, Location, Severity, Sources, Span};

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

/// The most lines one snippet spans. A related place farther from the primary one gets a
/// snippet of its own, so that rendering a diagnostic costs its own lines, never the whole file:
/// a large file with many diagnostics renders in linear time.
const MAX_SNIPPET_LINES: usize = 64;

/// Renders diagnostics in the rustc style; `color` adds ANSI styles.
pub fn human(diagnostics: &[Diagnostic], sources: &Sources, paths: &Paths, color: bool) -> String {
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    // Each file's line starts, found once however many diagnostics point into it.
    let mut lines: BTreeMap<&str, Lines<'_>> = BTreeMap::new();
    for d in diagnostics {
        let places = d
            .location
            .iter()
            .chain(d.related.iter().map(|r| &r.location));
        for place in places {
            if let Some(text) = sources.get(&place.file) {
                lines
                    .entry(place.file.as_str())
                    .or_insert_with(|| Lines::new(text));
            }
        }
    }
    let lines_of = |file: &str| lines.get(file);
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
        // The primary place and the related ones near it share one snippet; the others get
        // one each, in order.
        let mut primary = d.location.as_ref().and_then(|l| {
            let span = l.span?;
            let lines = lines_of(&l.file)?;
            let range = byte_range(span, lines.text);
            let annotation = (AnnotationKind::Primary, range, d.label.as_deref());
            Some((l.file.as_str(), lines, vec![annotation]))
        });
        let mut others = Vec::new();
        for (i, related) in d.related.iter().enumerate() {
            let (Some(span), Some(lines)) =
                (related.location.span, lines_of(&related.location.file))
            else {
                continue;
            };
            let range = byte_range(span, lines.text);
            let annotation = (
                AnnotationKind::Context,
                range,
                Some(related.message.as_str()),
            );
            match &mut primary {
                Some((file, lines, annotations))
                    if *file == related.location.file
                        && lines.spans_at_most(annotations, &annotation.1, MAX_SNIPPET_LINES) =>
                {
                    annotations.push(annotation);
                }
                _ => others.push((i + 1, lines, vec![annotation])),
            }
        }
        match (primary, &d.location) {
            (Some((_, lines, annotations)), _) => {
                group = group.element(lines.snippet(shown[0].as_str(), annotations));
            }
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
        for (shown_at, lines, annotations) in others {
            group = group.element(lines.snippet(shown[shown_at].as_str(), annotations));
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

/// An annotation of a snippet: its kind, byte range in the whole file, and label.
type Annotated<'a> = (AnnotationKind, std::ops::Range<usize>, Option<&'a str>);

/// A source text and where its lines start.
#[derive(Debug)]
struct Lines<'a> {
    text: &'a str,
    /// Byte offset of each line's first character.
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = crate::diag::line_starts(text);
        // A final newline ends the last line; it starts no line a snippet could show.
        if starts.len() > 1 && starts.last() == Some(&text.len()) {
            starts.pop();
        }
        Lines { text, starts }
    }

    /// The index of the line holding byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1)
    }

    /// The first and last line a range touches.
    fn lines_of(&self, range: &std::ops::Range<usize>) -> (usize, usize) {
        let last = range.end.max(range.start + 1) - 1;
        (self.line_of(range.start), self.line_of(last))
    }

    /// Whether `range` and the ranges of `annotations` lie within `max` lines together.
    fn spans_at_most(
        &self,
        annotations: &[Annotated<'_>],
        range: &std::ops::Range<usize>,
        max: usize,
    ) -> bool {
        let (first, last) = annotations
            .iter()
            .map(|(_, r, _)| self.lines_of(r))
            .chain(std::iter::once(self.lines_of(range)))
            .fold((usize::MAX, 0), |(f, l), (a, b)| (f.min(a), l.max(b)));
        last - first < max
    }

    /// The first line's index and the byte range of the lines the annotations touch.
    fn excerpt(&self, annotations: &[Annotated<'_>]) -> (usize, usize, usize) {
        let (first, last) = annotations
            .iter()
            .map(|(_, r, _)| self.lines_of(r))
            .fold((usize::MAX, 0), |(f, l), (a, b)| (f.min(a), l.max(b)));
        let start = self.starts[first];
        let end = self
            .starts
            .get(last + 1)
            .copied()
            .unwrap_or(self.text.len());
        (first, start, end)
    }

    /// A folded snippet of just the lines the annotations touch, numbered as in the file.
    fn snippet<'s>(
        &self,
        path: &'s str,
        annotations: Vec<Annotated<'s>>,
    ) -> Snippet<'s, Annotation<'s>>
    where
        'a: 's,
    {
        let (first, start, end) = self.excerpt(&annotations);
        annotations.into_iter().fold(
            Snippet::source(&self.text[start..end])
                .line_start(first + 1)
                .path(path)
                .fold(true),
            |snippet, (kind, range, label)| {
                let shifted = range.start.min(end) - start..range.end.min(end) - start;
                snippet.annotation(kind.span(shifted).label(label))
            },
        )
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
    use crate::diag::{Code, Pos};

    #[test]
    fn escapes_workflow_commands() {
        assert_eq!(escape_data("a%b\nc"), "a%25b%0Ac");
        assert_eq!(escape_property("E0201: x,y"), "E0201%3A x%2Cy");
    }

    #[test]
    fn a_snippet_holds_only_the_lines_it_annotates_however_large_the_file() {
        let text: String = (1..=100_000).map(|i| format!("key{i}: {i}\n")).collect();
        let lines = Lines::new(&text);
        let at = |line: usize| {
            let start = lines.starts[line - 1];
            (AnnotationKind::Primary, start..start + 3, None)
        };
        let (first, start, end) = lines.excerpt(&[at(70_000)]);
        assert_eq!((first, &text[start..end]), (69_999, "key70000: 70000\n"));
        let (first, start, end) = lines.excerpt(&[at(10), at(12)]);
        assert_eq!((first, text[start..end].lines().count()), (9, 3));
        assert!(lines.spans_at_most(&[at(10)], &at(73).1, MAX_SNIPPET_LINES));
        assert!(!lines.spans_at_most(&[at(10)], &at(90_000).1, MAX_SNIPPET_LINES));
    }

    #[test]
    fn a_far_related_place_gets_a_snippet_of_its_own_with_its_own_line_number() {
        let text: String = (1..=1_000).map(|i| format!("key{i}: {i}\n")).collect();
        let offset = |line: usize| {
            text.match_indices('\n')
                .nth(line - 2)
                .map_or(0, |(i, _)| i + 1)
        };
        let span = |line: usize| Span {
            start: Pos {
                line: line as u32,
                column: 1,
                offset: offset(line),
            },
            end: Pos {
                line: line as u32,
                column: 4,
                offset: offset(line) + 3,
            },
        };
        let d = Diagnostic::new(Code::DuplicateKey, "duplicate key `key`")
            .at("pipelines/p.yaml", span(900))
            .related("pipelines/p.yaml", span(3), "first defined here");
        let mut sources = Sources::default();
        sources.insert("pipelines/p.yaml", text.clone());
        let shown = human(&[d], &sources, &Paths::default(), false);
        assert!(shown.contains("900 | key900: 900"), "{shown}");
        assert!(shown.contains("3 | key3: 3"), "{shown}");
        assert!(!shown.contains("key450"), "{shown}");
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
