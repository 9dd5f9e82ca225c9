//! YAML text → a tree that remembers where every node came from.
//!
//! Built on `saphyr-parser` events, with the limits a compiler reading untrusted specs needs:
//! a nesting depth, a node budget that alias expansion counts against (so "billion laughs"
//! documents fail fast instead of exhausting memory), duplicate keys rejected, one document per
//! file. Scalars resolve by the YAML 1.2 core schema.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError};

use crate::diag::{Code, Diagnostic, Pos, Span};

/// Deepest nesting of sequences and mappings a spec file may have.
pub const MAX_DEPTH: usize = 64;
/// Most nodes one file may expand to, aliases included.
pub const MAX_NODES: usize = 1_000_000;

/// A YAML node and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Source range of the node.
    pub span: Span,
    /// The node's value.
    pub value: Value,
}

/// The value of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer or float.
    Number(serde_json::Number),
    /// Any other scalar.
    String(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order.
    Map(Vec<Entry>),
}

/// One key/value pair of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key's text.
    pub key: String,
    /// Where the key is.
    pub key_span: Span,
    /// The value.
    pub value: Node,
}

impl Node {
    /// The tree as JSON (for schema validation and deserialization).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => J::Number(n.clone()),
            Value::String(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// The entry or item one step down, by mapping key or sequence index.
    pub fn child(&self, segment: &str) -> Option<ChildRef<'_>> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|e| e.key == segment).map(|e| ChildRef {
                key_span: Some(e.key_span),
                node: &e.value,
            }),
            Value::Seq(items) => segment
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .map(|node| ChildRef {
                    key_span: None,
                    node,
                }),
            _ => None,
        }
    }

    /// The node at a JSON pointer (`/spec/steps/0/from`), with the span of its key if any.
    pub fn pointer(&self, pointer: &str) -> Option<ChildRef<'_>> {
        let mut here = ChildRef {
            key_span: None,
            node: self,
        };
        for raw in pointer.split('/').skip(1) {
            let segment = raw.replace("~1", "/").replace("~0", "~");
            here = here.node.child(&segment)?;
        }
        Some(here)
    }

    /// The span of the deepest existing node along a JSON pointer.
    pub fn nearest_span(&self, pointer: &str) -> Span {
        let mut here = self;
        for raw in pointer.split('/').skip(1) {
            let segment = raw.replace("~1", "/").replace("~0", "~");
            match here.child(&segment) {
                Some(child) => here = child.node,
                None => break,
            }
        }
        here.span
    }

    /// The string value, if this is a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// A node found by path, with the span of the mapping key that holds it.
#[derive(Debug, Clone, Copy)]
pub struct ChildRef<'a> {
    /// Span of the key, when the node is a mapping value.
    pub key_span: Option<Span>,
    /// The node.
    pub node: &'a Node,
}

impl ChildRef<'_> {
    /// The key's span if there is one, else the node's.
    pub fn key_or_node_span(&self) -> Span {
        self.key_span.unwrap_or(self.node.span)
    }
}

/// Byte offsets of line starts, to turn the parser's character positions into byte offsets.
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        LineIndex {
            text,
            starts: crate::diag::line_starts(text),
        }
    }

    /// Position from the parser's 1-based line and 0-based character column.
    fn pos(&self, line: usize, col: usize) -> Pos {
        let line = line.clamp(1, self.starts.len());
        let start = self.starts[line - 1];
        let rest = &self.text[start..];
        let offset = start + rest.char_indices().nth(col).map_or(rest.len(), |(i, _)| i);
        Pos {
            line: line as u32,
            column: col as u32 + 1,
            offset,
        }
    }

    fn span(&self, span: saphyr_parser::Span) -> Span {
        Span {
            start: self.pos(span.start.line(), span.start.col()),
            end: self.pos(span.end.line(), span.end.col()),
        }
    }

    /// Position of a byte offset.
    fn pos_of(&self, offset: usize) -> Pos {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let column = self.text[start..offset.min(self.text.len())]
            .chars()
            .count();
        Pos {
            line: line as u32,
            column: column as u32 + 1,
            offset,
        }
    }

    /// The span of the one character at a byte offset.
    fn char_span(&self, offset: usize) -> Span {
        let start = self.pos_of(offset);
        let width = self.text[offset.min(self.text.len())..]
            .chars()
            .next()
            .map_or(0, char::len_utf8);
        Span {
            start,
            end: Pos {
                column: start.column + 1,
                offset: offset + width,
                ..start
            },
        }
    }

    fn line_start(&self, line: u32) -> usize {
        self.starts[(line as usize).clamp(1, self.starts.len()) - 1]
    }

    fn line_text(&self, line: u32) -> &str {
        let i = (line as usize).clamp(1, self.starts.len()) - 1;
        let end = self.starts.get(i + 1).copied().unwrap_or(self.text.len());
        self.text[self.starts[i]..end].trim_end_matches(['\n', '\r'])
    }
}

/// Parses one YAML document. `file` names the file in diagnostics.
///
/// Returns the first problem that stops parsing, plus any duplicate keys found before it
/// (duplicates do not stop parsing, so all of them are reported).
pub fn parse(file: &str, text: &str) -> Result<Node, Vec<Diagnostic>> {
    let lines = LineIndex::new(text);
    let mut builder = Builder {
        file,
        lines: &lines,
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
        duplicates: Vec::new(),
    };
    match builder.document() {
        Ok(node) if builder.duplicates.is_empty() => Ok(node),
        Ok(_) => Err(builder.duplicates),
        Err(stop) => {
            let mut all = builder.duplicates;
            all.push(*stop);
            Err(all)
        }
    }
}

type Stop = Box<Diagnostic>;

struct Builder<'a, 'input> {
    file: &'a str,
    lines: &'a LineIndex<'input>,
    parser: Parser<'input, saphyr_parser::StrInput<'input>>,
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    duplicates: Vec<Diagnostic>,
}

impl<'input> Builder<'_, 'input> {
    fn next(&mut self) -> Result<(Event<'input>, Span), Stop> {
        match self.parser.next_event() {
            Some(Ok((event, span))) => Ok((event, self.lines.span(span))),
            Some(Err(e)) => Err(self.scan_error(&e)),
            None => Err(self.stop(
                Code::YamlSyntax,
                Span::START,
                "unexpected end of the YAML stream",
            )),
        }
    }

    fn stop(&self, code: Code, span: Span, message: impl Into<String>) -> Stop {
        Box::new(Diagnostic::new(code, message).at(self.file, span))
    }

    fn scan_error(&self, e: &ScanError) -> Stop {
        let m = e.marker();
        let pos = self.lines.pos(m.line(), m.col());
        let span = Span {
            start: pos,
            end: pos,
        };
        let info = e.info();
        if let Some(at) = self.indentation_tab(pos.line, info.contains("tab")) {
            return Box::new(
                Diagnostic::new(Code::Tab, "tab character in indentation")
                    .at(self.file, at)
                    .label("tab here")
                    .expected("spaces: YAML does not allow tabs for indentation")
                    .help("replace the tab with spaces"),
            );
        }
        let flow = flow_scan(self.lines.text, pos.offset, MAX_DEPTH);
        if info.contains("recursion limit") {
            let at = flow
                .too_deep
                .map_or(span, |offset| self.lines.char_span(offset));
            return Box::new(too_deep(self.file, at));
        }
        let mut d = Diagnostic::new(Code::YamlSyntax, format!("malformed YAML: {info}"))
            .at(self.file, span)
            .label("the parser stopped here");
        match flow.open.last() {
            Some(&(offset, open)) if self.lines.pos_of(offset).line < pos.line => {
                let close = if open == '[' { ']' } else { '}' };
                d = d
                    .related(
                        self.file,
                        self.lines.char_span(offset),
                        format!("this `{open}` is never closed"),
                    )
                    .help(format!("close it with `{close}`"));
            }
            _ if info.contains("did not find expected")
                || info.contains("mapping values")
                || info.contains("indent") =>
            {
                d = d.help("check the indentation: entries of one mapping or list start in the same column");
            }
            _ => {}
        }
        Box::new(d)
    }

    /// A tab in the leading whitespace of `line`, or of the next line when the parser named a
    /// tab (it reports the line whose scalar it was reading).
    fn indentation_tab(&self, line: u32, named: bool) -> Option<Span> {
        let lines = if named {
            line..line + 2
        } else {
            line..line + 1
        };
        lines
            .filter(|&l| (l as usize) <= self.lines.starts.len())
            .find_map(|l| {
                let text = self.lines.line_text(l);
                let indent = text.len() - text.trim_start_matches([' ', '\t']).len();
                let tab = text[..indent].find('\t')?;
                Some(self.lines.char_span(self.lines.line_start(l) + tab))
            })
    }

    fn document(&mut self) -> Result<Node, Stop> {
        let mut root = None;
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::DocumentStart(_) if root.is_some() => {
                    return Err(Box::new(
                        Diagnostic::new(
                            Code::MultipleDocuments,
                            "a second YAML document in this file",
                        )
                        .at(self.file, span)
                        .label("second document starts here")
                        .expected("one document per file")
                        .help("move each document to a file of its own"),
                    ));
                }
                Event::DocumentStart(_) => {
                    root = Some(self.node(0)?);
                }
                Event::StreamEnd => {
                    return root.ok_or_else(|| {
                        Box::new(
                            Diagnostic::new(
                                Code::EmptyFile,
                                "the file has no YAML content (it is empty or only comments)",
                            )
                            .in_file(self.file)
                            .expected(
                                "a YAML mapping with `apiVersion`, `kind`, `metadata` and `spec`",
                            ),
                        )
                    });
                }
                other => {
                    return Err(self.stop(
                        Code::YamlSyntax,
                        span,
                        format!("unexpected YAML event {other:?}"),
                    ));
                }
            }
        }
    }

    fn count(&mut self, n: usize, span: Span) -> Result<(), Stop> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(Box::new(
                Diagnostic::new(
                    Code::AliasBomb,
                    format!("the document expands to more than {MAX_NODES} nodes"),
                )
                .at(self.file, span)
                .label("expansion passes the limit here")
                .note("aliases (`*name`) copy the anchored node each time they are used"),
            ));
        }
        Ok(())
    }

    fn node(&mut self, depth: usize) -> Result<Node, Stop> {
        let (event, span) = self.next()?;
        self.node_from(event, span, depth)
    }

    fn node_from(&mut self, event: Event<'input>, span: Span, depth: usize) -> Result<Node, Stop> {
        let before = self.nodes;
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, span)?;
                if let Some(tag) = tag.filter(|t| !(t.is_yaml_core_schema() && t.suffix == "str")) {
                    return Err(unsupported_tag(
                        self.file,
                        span,
                        &tag,
                        "plain values; quote the value to make it a string",
                    ));
                }
                let value = if style == ScalarStyle::Plain {
                    resolve_plain(&text)
                } else {
                    Value::String(text.into_owned())
                };
                (Node { span, value }, anchor)
            }
            Event::Alias(id) => {
                let Some((node, size)) = self.anchors.get(&id).map(|(n, s)| (n.clone(), *s)) else {
                    return Err(self.stop(Code::YamlSyntax, span, "alias to an unknown anchor"));
                };
                self.count(size, span)?;
                return Ok(Node {
                    span,
                    value: node.value,
                });
            }
            Event::SequenceStart(_, Some(tag)) | Event::MappingStart(_, Some(tag)) => {
                return Err(unsupported_tag(
                    self.file,
                    span,
                    &tag,
                    "plain lists and mappings",
                ));
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if depth >= MAX_DEPTH => {
                return Err(Box::new(too_deep(self.file, span)));
            }
            Event::SequenceStart(anchor, _) => {
                self.count(1, span)?;
                let mut items = Vec::new();
                let end = loop {
                    let (event, at) = self.next()?;
                    if let Event::SequenceEnd = event {
                        break at;
                    }
                    items.push(self.node_from(event, at, depth + 1)?);
                };
                (
                    Node {
                        span: Span {
                            start: span.start,
                            end: collection_end(end, items.last().map(|n| n.span), span),
                        },
                        value: Value::Seq(items),
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, _) => {
                self.count(1, span)?;
                let (entries, end) = self.mapping(depth)?;
                (
                    Node {
                        span: Span {
                            start: span.start,
                            end: collection_end(end, entries.last().map(|e| e.value.span), span),
                        },
                        value: Value::Map(entries),
                    },
                    anchor,
                )
            }
            other => {
                return Err(self.stop(
                    Code::YamlSyntax,
                    span,
                    format!("unexpected YAML event {other:?}"),
                ));
            }
        };
        if anchor > 0 {
            self.anchors
                .insert(anchor, (node.clone(), self.nodes - before));
        }
        Ok(node)
    }
}

/// A mapping key as duplicate detection compares it. Tests count the comparisons: finding
/// duplicates must stay linear in the number of keys (spec files are untrusted input).
#[derive(Debug, Eq)]
struct Key(String);

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        #[cfg(test)]
        tests::KEY_COMPARISONS.with(|c| c.set(c.get() + 1));
        self.0 == other.0
    }
}

impl Builder<'_, '_> {
    /// The entries of a mapping whose start was just read, and the span of its end event.
    ///
    /// A merge key (`<<: *anchor`, or `<<: [*a, *b]`) brings the entries of the mapping(s) it
    /// names, in its place, keeping their own positions; the mapping's own keys win over them,
    /// and an earlier mapping of the list over a later one (YAML's merge key type).
    fn mapping(&mut self, depth: usize) -> Result<(Vec<Entry>, Span), Stop> {
        let mut entries: Vec<Entry> = Vec::new();
        // Each key's first entry, so finding a duplicate costs one lookup, not a scan.
        let mut firsts: HashMap<Key, usize> = HashMap::new();
        // The merge key's span, where its entries go, and those entries.
        let mut merge: Option<(Span, usize, Vec<Entry>)> = None;
        let end = loop {
            let (event, key_span) = self.next()?;
            let (key, is_merge) = match event {
                Event::MappingEnd => break key_span,
                Event::Scalar(text, style, ..) => {
                    let is_merge = style == ScalarStyle::Plain && text == "<<";
                    (text.into_owned(), is_merge)
                }
                _ => {
                    return Err(Box::new(
                        Diagnostic::new(
                            Code::UnsupportedYaml,
                            "a mapping key that is not a plain value",
                        )
                        .at(self.file, key_span)
                        .expected("a text key such as `name`"),
                    ));
                }
            };
            let value = self.node(depth + 1)?;
            let first = match &merge {
                Some((first, ..)) if is_merge => Some(*first),
                _ => firsts.get(&Key(key.clone())).map(|&i| entries[i].key_span),
            };
            if let Some(first) = first {
                self.duplicates.push(
                    Diagnostic::new(Code::DuplicateKey, format!("duplicate key `{key}`"))
                        .at(self.file, key_span)
                        .label("defined again here")
                        .related(self.file, first, "first defined here")
                        .help("remove or rename one of them: a mapping holds each key once"),
                );
                continue;
            }
            if is_merge {
                merge = Some((key_span, entries.len(), self.merged(value)?));
                continue;
            }
            firsts.insert(Key(key.clone()), entries.len());
            entries.push(Entry {
                key,
                key_span,
                value,
            });
        };
        if let Some((_, at, brought)) = merge {
            let mut kept = Vec::with_capacity(brought.len());
            for entry in brought {
                if let std::collections::hash_map::Entry::Vacant(slot) =
                    firsts.entry(Key(entry.key.clone()))
                {
                    slot.insert(usize::MAX);
                    kept.push(entry);
                }
            }
            entries.splice(at..at, kept);
        }
        Ok((entries, end))
    }

    /// The entries a merge key's value brings: those of a mapping, or of each mapping of a list.
    fn merged(&self, value: Node) -> Result<Vec<Entry>, Stop> {
        let not_a_mapping = |span: Span| {
            Box::new(
                Diagnostic::new(
                    Code::WrongType,
                    "a merge key (`<<`) must name a mapping or a list of mappings",
                )
                .at(self.file, span)
                .label("not a mapping")
                .expected("`<<: *anchor`, where the anchor is on a mapping, or `<<: [*a, *b]`"),
            )
        };
        match value.value {
            Value::Map(entries) => Ok(entries),
            Value::Seq(items) => {
                let mut all = Vec::new();
                for item in items {
                    match item.value {
                        Value::Map(entries) => all.extend(entries),
                        _ => return Err(not_a_mapping(item.span)),
                    }
                }
                Ok(all)
            }
            _ => Err(not_a_mapping(value.span)),
        }
    }
}

fn too_deep(file: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        Code::TooDeep,
        format!("nesting deeper than {MAX_DEPTH} levels"),
    )
    .at(file, span)
    .label(format!("level {} starts here", MAX_DEPTH + 1))
    .expected(format!(
        "at most {MAX_DEPTH} levels of nested lists and mappings"
    ))
}

/// Where a collection ends: at its closing bracket for flow style; for block style (whose end
/// event sits, empty, at the next token) at the end of its last item.
fn collection_end(end_event: Span, last: Option<Span>, start: Span) -> Pos {
    if end_event.start != end_event.end {
        return end_event.end;
    }
    last.map_or(start.end, |l| l.end)
}

fn unsupported_tag(file: &str, span: Span, tag: &saphyr_parser::Tag, expected: &str) -> Stop {
    Box::new(
        Diagnostic::new(
            Code::UnsupportedYaml,
            format!("YAML tag `{}` is not supported", show_tag(tag)),
        )
        .at(file, span)
        .label("tag")
        .expected(expected),
    )
}

/// A tag as written: `!!binary` for the core schema's, else handle and suffix.
fn show_tag(tag: &saphyr_parser::Tag) -> String {
    if tag.is_yaml_core_schema() {
        format!("!!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}

/// Flow brackets (`[`, `{`) open before an offset, skipping quoted text and comments.
struct FlowScan {
    /// Byte offsets and characters of the brackets still open, outermost first.
    open: Vec<(usize, char)>,
    /// Offset of the first bracket that opened a level past the limit.
    too_deep: Option<usize>,
}

/// Scans `text` up to `end` for unclosed flow brackets: a hint for syntax errors, so a quote
/// inside a plain scalar (`don't`) may be misread; it is never used to accept input.
fn flow_scan(text: &str, end: usize, limit: usize) -> FlowScan {
    let mut scan = FlowScan {
        open: Vec::new(),
        too_deep: None,
    };
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut previous = '\n';
    for (i, c) in text.char_indices().take_while(|(i, _)| *i < end) {
        match (quote, c) {
            (_, '\n') => {
                comment = false;
                if quote == Some('\'') {
                    quote = None;
                }
            }
            _ if comment => {}
            (Some(q), c) if c == q && previous != '\\' => quote = None,
            (Some(_), _) => {}
            (None, '#') if previous.is_whitespace() => comment = true,
            (None, '\'' | '"')
                if matches!(previous, ' ' | '\t' | '\n' | '[' | '{' | ',' | ':' | '-') =>
            {
                quote = Some(c)
            }
            (None, '[' | '{') => {
                scan.open.push((i, c));
                if scan.open.len() > limit && scan.too_deep.is_none() {
                    scan.too_deep = Some(i);
                }
            }
            (None, ']' | '}') => {
                scan.open.pop();
            }
            _ => {}
        }
        previous = c;
    }
    scan
}

/// Resolves a plain scalar by the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Number(i.into());
        }
        if let Ok(u) = text.parse::<u64>() {
            return Value::Number(u.into());
        }
    }
    let radix = |prefix: &str, radix: u32| {
        text.strip_prefix(prefix)
            .filter(|d| !d.is_empty())
            .and_then(|d| u64::from_str_radix(d, radix).ok())
    };
    if let Some(n) = radix("0x", 16).or_else(|| radix("0o", 8)) {
        return Value::Number(n.into());
    }
    if looks_like_float(digits)
        && let Ok(f) = text.parse::<f64>()
    {
        // JSON Schema counts `1.0` as an integer; reading it as one keeps the schema and the
        // typed model in agreement.
        if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
            return Value::Number((f as i64).into());
        }
        if let Some(n) = serde_json::Number::from_f64(f) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_owned())
}

/// `[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?` or `\.[0-9]+…`: the core schema's finite floats.
fn looks_like_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = all_digits(int) && all_digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Key comparisons made by duplicate detection on this thread.
        pub(super) static KEY_COMPARISONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// Key comparisons made parsing a one-mapping document of `n` distinct keys.
    fn comparisons_for_keys(n: usize) -> u64 {
        let text: String = (0..n).map(|i| format!("key{i}: {i}\n")).collect();
        KEY_COMPARISONS.with(|c| c.set(0));
        let node = parse("t.yaml", &text).expect("parses");
        assert!(matches!(&node.value, Value::Map(e) if e.len() == n));
        KEY_COMPARISONS.with(|c| c.get())
    }

    #[test]
    fn duplicate_detection_is_linear_in_the_number_of_keys() {
        // Each key is compared with at most a few others (hash collisions), never with all the
        // earlier ones (which would be 200,000,000 comparisons here).
        let n = 20_000;
        let comparisons = comparisons_for_keys(n);
        assert!(
            comparisons <= 2 * n as u64,
            "{comparisons} key comparisons for {n} keys"
        );
    }

    #[test]
    fn a_duplicate_names_both_places() {
        let errors = parse("t.yaml", "a: 1\nb: 2\nc: 3\nb: 4\n").unwrap_err();
        assert_eq!(errors.len(), 1);
        let d = &errors[0];
        assert_eq!(d.message, "duplicate key `b`");
        let at = d.location.as_ref().unwrap().span.unwrap();
        assert_eq!((at.start.line, at.start.column), (4, 1));
        let first = d.related[0].location.span.unwrap();
        assert_eq!((first.start.line, first.start.column), (2, 1));
        assert_eq!(d.related[0].message, "first defined here");
    }

    fn json(text: &str) -> serde_json::Value {
        parse("t.yaml", text).expect("parses").to_json()
    }

    #[test]
    fn resolves_core_schema_scalars() {
        let v = json("a: 1\nb: -2.5\nc: true\nd: ~\ne: '3'\nf: 0x1f\ng: 1e3\nh: v1.2\ni: .5\n");
        assert_eq!(
            v,
            serde_json::json!({"a":1,"b":-2.5,"c":true,"d":null,"e":"3","f":31,"g":1000,"h":"v1.2","i":0.5})
        );
    }

    #[test]
    fn keeps_spans_of_keys_and_values() {
        let node = parse("t.yaml", "spec:\n  steps:\n    - name: parse\n").unwrap();
        let name = node.pointer("/spec/steps/0/name").unwrap();
        assert_eq!(
            (name.node.span.start.line, name.node.span.start.column),
            (3, 13)
        );
        let key = name.key_span.unwrap();
        assert_eq!((key.start.line, key.start.column), (3, 7));
        assert_eq!(
            name.node.span.start.offset,
            "spec:\n  steps:\n    - name: ".len()
        );
    }

    #[test]
    fn block_collections_end_at_their_last_item_flow_ones_at_the_bracket() {
        let node = parse(
            "t.yaml",
            "a:\n  b: 1\n  c: [1, 2]\nd:\n  - x\n  - y\ne: 2\n",
        )
        .unwrap();
        let end = |p: &str| {
            let s = node.pointer(p).unwrap().node.span;
            (s.end.line, s.end.column)
        };
        assert_eq!(end("/a"), (3, 12));
        assert_eq!(end("/a/c"), (3, 12));
        assert_eq!(end("/d"), (6, 6));
    }

    #[test]
    fn points_at_the_unclosed_bracket() {
        let errors = parse("t.yaml", "a: [1, 2\nb: 3\n").unwrap_err();
        let related = &errors[0].related[0];
        assert_eq!(related.message, "this `[` is never closed");
        assert_eq!(related.location.span.unwrap().start.column, 4);
    }

    #[test]
    fn reports_every_duplicate_key() {
        let errors = parse("t.yaml", "a: 1\nb: 2\na: 3\nb: 4\n").unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors.iter().all(|d| d.code == Code::DuplicateKey));
    }

    #[test]
    fn merge_keys_bring_the_anchored_entries_own_keys_win() {
        let text = "\
base: &base {a: 1, b: 2}
other: &other {c: 5, a: 6}
m:
  x: 0
  <<: [*base, *other]
  b: 3
";
        let node = parse("t.yaml", text).expect("parses");
        assert_eq!(
            node.pointer("/m").unwrap().node.to_json(),
            serde_json::json!({"x": 0, "a": 1, "c": 5, "b": 3})
        );
        let Value::Map(entries) = &node.pointer("/m").unwrap().node.value else {
            panic!("a mapping");
        };
        let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            ["x", "a", "c", "b"],
            "merged entries sit where `<<` is"
        );
        // A merged entry keeps the position where it is written: in the anchored mapping.
        let a = node.pointer("/m/a").unwrap().key_span.unwrap();
        assert_eq!((a.start.line, a.start.column), (1, 14));
    }

    #[test]
    fn a_merge_key_needs_mappings() {
        let errors = parse("t.yaml", "s: &s text\nm:\n  <<: *s\n").unwrap_err();
        assert_eq!(errors[0].code, Code::WrongType);
        assert!(
            errors[0].message.contains("merge key"),
            "{}",
            errors[0].message
        );
        let twice = parse("t.yaml", "b: &b {a: 1}\nm:\n  <<: *b\n  <<: *b\n").unwrap_err();
        assert_eq!(twice[0].code, Code::DuplicateKey);
        // Quoted, `<<` is an ordinary key.
        let quoted = json("m:\n  '<<': 1\n");
        assert_eq!(quoted, serde_json::json!({"m": {"<<": 1}}));
    }

    #[test]
    fn alias_expansion_is_bounded() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let errors = parse("t.yaml", &text).unwrap_err();
        assert_eq!(errors[0].code, Code::AliasBomb);
    }

    #[test]
    fn nesting_is_bounded() {
        let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse("t.yaml", &text).unwrap_err()[0].code, Code::TooDeep);
    }

    #[test]
    fn rejects_empty_and_multi_document_files() {
        assert_eq!(
            parse("t.yaml", "# only a comment\n").unwrap_err()[0].code,
            Code::EmptyFile
        );
        assert_eq!(
            parse("t.yaml", "a: 1\n---\nb: 2\n").unwrap_err()[0].code,
            Code::MultipleDocuments
        );
    }

    #[test]
    fn names_tabs_in_indentation() {
        let errors = parse("t.yaml", "a:\n\tb: 1\n").unwrap_err();
        assert_eq!(errors[0].code, Code::Tab);
        let span = errors[0].location.as_ref().unwrap().span.unwrap();
        assert_eq!((span.start.line, span.start.column), (2, 1));
    }
}
