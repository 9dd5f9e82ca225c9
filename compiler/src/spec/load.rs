//! Stage `load`: a repo directory → typed specs, each with its YAML tree for source positions.
//!
//! Every file is read, parsed, checked against its JSON Schema and deserialized on its own, so
//! one broken file never hides the problems of another. A file with a problem is left out of the
//! loaded [`Repo`] and reported; except a pipeline whose schema errors all lie inside some of its
//! steps and sinks: it is loaded without them (they become [`Hole`]s), so the rest of it is still
//! checked in the same run.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use crate::diag::{self, Code, Diagnostic, Pos, Sources, Span};
use crate::spec::error::Error;
use crate::spec::model::{API_VERSION, EnvironmentOverride, Pipeline, Project, TestFixture};
use crate::spec::schema::{self, FileKind};
use crate::spec::yaml::{self, Node, Value};
use crate::util::io::IoError;

/// Largest spec file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The project file at the repo root.
pub const PROJECT_FILE: &str = "etl.yaml";

/// A spec file that loaded cleanly: its typed form and its tree for source positions.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// Repo-relative path with `/` separators.
    pub file: String,
    /// The parsed YAML.
    pub tree: Node,
    /// The typed spec.
    pub spec: T,
    /// Steps and sinks left out of `spec` (and `tree`) because the schema rejects them; their
    /// problems are reported. Empty for a file that passed its schema.
    pub holes: Vec<Hole>,
}

/// Which list of a pipeline a [`Hole`] was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoleKind {
    /// `spec.steps`.
    Step,
    /// `spec.sinks`.
    Sink,
}

/// A step or sink of a pipeline that its schema check rejected, with what of it is still well
/// formed: checks of the rest of the pipeline use it to neither miss a problem (its `from` is
/// checked) nor invent one (a name it defines is not "unknown").
#[derive(Debug, Clone, PartialEq)]
pub struct Hole {
    /// A step or a sink.
    pub kind: HoleKind,
    /// Its `name`, when that is text, and where it is.
    pub name: Option<(String, Span)>,
    /// Its `from` entries and where each is, when `from` is a list of text.
    pub from: Option<Vec<(String, Span)>>,
}

impl Hole {
    fn of(kind: HoleKind, item: &Node) -> Self {
        let text = |n: &Node| n.as_str().map(|s| (s.to_owned(), n.span));
        let name = item.child("name").and_then(|c| text(c.node));
        let from = item.child("from").and_then(|c| match &c.node.value {
            Value::Seq(items) => items.iter().map(text).collect(),
            _ => None,
        });
        Hole { kind, name, from }
    }
}

impl<T> Loaded<T> {
    /// The span of the node at a JSON pointer, or of its nearest existing ancestor.
    pub fn span(&self, pointer: &str) -> Span {
        self.tree.nearest_span(pointer)
    }

    /// The span of the key holding the node at a JSON pointer (the node's own span for list
    /// items), or of its nearest existing ancestor.
    pub fn key_span(&self, pointer: &str) -> Span {
        self.tree
            .pointer(pointer)
            .map_or_else(|| self.tree.nearest_span(pointer), |c| c.key_or_node_span())
    }
}

/// A loaded repo: every spec file that passed its schema.
#[derive(Debug, Clone)]
pub struct Repo {
    /// The repo root.
    pub root: PathBuf,
    /// `etl.yaml`, if it loaded.
    pub project: Option<Loaded<Project>>,
    /// `pipelines/*.yaml`, by file name.
    pub pipelines: Vec<Loaded<Pipeline>>,
    /// `environments/*.yaml`, by file name.
    pub environments: Vec<Loaded<EnvironmentOverride>>,
    /// `tests/*.yaml`, by file name.
    pub tests: Vec<Loaded<TestFixture>>,
    /// Files that were found but did not load (their problems are reported).
    pub unloaded: Vec<Unloaded>,
    /// Text of every file read.
    pub sources: Sources,
}

/// A spec file that did not load, and the name it declares when that much could be read.
///
/// Checks use it to stay quiet about references to it: the file's own diagnostics say what is
/// wrong, and "unknown pipeline" errors elsewhere would only repeat it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unloaded {
    /// Which kind of file.
    pub kind: FileKind,
    /// Repo-relative path.
    pub file: String,
    /// Its `metadata.name`, if the YAML parsed and has one.
    pub name: Option<String>,
}

impl Repo {
    /// Whether a reference to `name` of `kind` may be to a file that did not load.
    pub fn maybe_unloaded(&self, kind: FileKind, name: &str) -> bool {
        self.unloaded
            .iter()
            .any(|u| u.kind == kind && u.name.as_deref().is_none_or(|n| n == name))
    }
}

/// Loads the repo at `root`. Problems in files are diagnostics; only a root that cannot be read
/// at all is an [`Error`].
pub fn load(root: &Path) -> Result<(Repo, Vec<Diagnostic>), Error> {
    let meta = fs::metadata(root).map_err(IoError::at(root))?;
    if !meta.is_dir() {
        return Err(Error::NotADirectory(root.to_owned()));
    }
    let mut loader = Loader {
        root,
        canonical_root: root.canonicalize().ok(),
        sources: Sources::default(),
        diagnostics: Vec::new(),
        unloaded: Vec::new(),
    };
    let project = if root.join(PROJECT_FILE).exists() {
        loader.file::<Project>(PROJECT_FILE, FileKind::Project)
    } else {
        let mut d = Diagnostic::new(
            Code::NoProject,
            format!("no `{PROJECT_FILE}` in {}", root.display()),
        )
        .expected("an `etl.yaml` (kind Project) at the repo root")
        .help("run `etl init` to create one, or pass the repo with `--repo DIR`");
        if root.join("etl.yml").exists() {
            d = d.help("rename `etl.yml` to `etl.yaml`");
        }
        loader.diagnostics.push(d);
        None
    };
    let pipelines = loader.dir::<Pipeline>("pipelines", FileKind::Pipeline)?;
    let environments = loader.dir::<EnvironmentOverride>("environments", FileKind::Environment)?;
    let tests = loader.dir::<TestFixture>("tests", FileKind::Test)?;
    let repo = Repo {
        root: root.to_owned(),
        project,
        pipelines,
        environments,
        tests,
        unloaded: loader.unloaded,
        sources: loader.sources,
    };
    Ok((repo, loader.diagnostics))
}

struct Loader<'a> {
    root: &'a Path,
    canonical_root: Option<PathBuf>,
    sources: Sources,
    diagnostics: Vec<Diagnostic>,
    unloaded: Vec<Unloaded>,
}

impl Loader<'_> {
    /// Loads every `*.yaml` / `*.yml` file directly under `dir`, in file-name order.
    fn dir<T: DeserializeOwned>(
        &mut self,
        dir: &str,
        kind: FileKind,
    ) -> Result<Vec<Loaded<T>>, Error> {
        let path = self.root.join(dir);
        if !path.is_dir() {
            return Ok(Vec::new());
        }
        let entries = fs::read_dir(&path).map_err(IoError::at(&path))?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| !e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
            .collect();
        names.sort();
        Ok(names
            .iter()
            .filter_map(|name| self.file::<T>(&format!("{dir}/{name}"), kind))
            .collect())
    }

    fn file<T: DeserializeOwned>(&mut self, file: &str, kind: FileKind) -> Option<Loaded<T>> {
        let (tree, problems) = self.parse_checked(file, kind);
        if problems.is_empty()
            && let Some(tree) = tree
        {
            return Some(Loaded {
                file: file.to_owned(),
                spec: self.typed(file, &tree)?,
                tree,
                holes: Vec::new(),
            });
        }
        if kind == FileKind::Pipeline
            && let Some((pruned, holes)) = tree.as_ref().and_then(without_broken_items)
            && let Ok(spec) = serde_json::from_value::<T>(pruned.to_json())
        {
            self.diagnostics.extend(problems);
            return Some(Loaded {
                file: file.to_owned(),
                tree: pruned,
                spec,
                holes,
            });
        }
        let name = tree.as_ref().and_then(|t| {
            t.pointer("/metadata/name")?
                .node
                .as_str()
                .map(str::to_owned)
        });
        self.unloaded.push(Unloaded {
            kind,
            file: file.to_owned(),
            name,
        });
        self.diagnostics.extend(problems);
        None
    }

    /// Reads, parses and schema-checks a file: its tree when it parsed, and its problems.
    fn parse_checked(&mut self, file: &str, kind: FileKind) -> (Option<Node>, Vec<Diagnostic>) {
        let Some(text) = self.read(file) else {
            return (None, Vec::new());
        };
        let parsed = yaml::parse(file, &text);
        self.sources.insert(file, text);
        let tree = match parsed {
            Ok(tree) => tree,
            Err(problems) => return (None, problems),
        };
        if let Err(d) = check_header(file, kind, &tree) {
            return (Some(tree), vec![*d]);
        }
        let problems = schema::violations(kind, file, &tree, &tree.to_json());
        (Some(tree), problems)
    }

    /// Deserializes a schema-valid tree into its typed spec.
    fn typed<T: DeserializeOwned>(&mut self, file: &str, tree: &Node) -> Option<T> {
        match serde_json::from_value::<T>(tree.to_json()) {
            Ok(spec) => Some(spec),
            Err(e) => {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::ModelMismatch,
                        format!(
                            "the schema accepts this file but the compiler cannot read it: {e}"
                        ),
                    )
                    .in_file(file)
                    .note("this is a bug in etl: please report it with this file"),
                );
                None
            }
        }
    }

    /// Reads a file as UTF-8 text within the size limit. A file that resolves outside the repo
    /// (a symbolic link out) is refused unread, so its content never reaches a diagnostic.
    fn read(&mut self, file: &str) -> Option<String> {
        let path = self.root.join(file);
        let io_error = |e: std::io::Error| {
            Diagnostic::new(Code::Io, format!("cannot read `{file}`: {e}")).in_file(file)
        };
        if let (Some(root), Ok(target)) = (&self.canonical_root, path.canonicalize())
            && !target.starts_with(root)
        {
            self.diagnostics.push(
                Diagnostic::new(
                    Code::PathEscapes,
                    format!("`{file}` is a symbolic link out of the repo"),
                )
                .in_file(file)
                .expected("spec files inside the repo")
                .help("copy the file into the repo instead of linking to it"),
            );
            return None;
        }
        let mut bytes = Vec::new();
        let read =
            fs::File::open(&path).and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes));
        if let Err(e) = read {
            self.diagnostics.push(io_error(e));
            return None;
        }
        if bytes.len() as u64 > MAX_FILE_BYTES {
            let size = fs::metadata(&path).map_or(bytes.len() as u64, |m| m.len());
            self.diagnostics.push(
                Diagnostic::new(
                    Code::TooLarge,
                    format!("`{file}` is {:.1} MiB", size as f64 / 1048576.0),
                )
                .in_file(file)
                .expected(format!(
                    "a spec file of at most {} MiB",
                    MAX_FILE_BYTES / 1024 / 1024
                ))
                .help("split it: one pipeline per file under `pipelines/`"),
            );
            return None;
        }
        match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(e) => {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let valid = std::str::from_utf8(valid).unwrap_or_default();
                let line = valid.matches('\n').count() as u32 + 1;
                let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
                let column = valid[line_start..].chars().count() as u32 + 1;
                let offset = valid.len();
                let byte = e.as_bytes()[offset];
                let start = Pos {
                    line,
                    column,
                    offset,
                };
                self.diagnostics.push(
                    Diagnostic::new(Code::NotUtf8, format!("`{file}` is not UTF-8: byte 0x{byte:02x} at line {line}, column {column}"))
                        .at(file, Span { start, end: Pos { column: column + 1, offset: offset + 1, ..start } })
                        .expected("UTF-8 text")
                        .help("re-save the file as UTF-8"),
                );
                None
            }
        }
    }
}

/// A pipeline's tree without the steps and sinks its schema rejects, and what of them is still
/// well formed; `None` unless every schema error lies inside a step or sink and the rest passes
/// the schema (a pipeline needs at least one step and one sink).
fn without_broken_items(tree: &Node) -> Option<(Node, Vec<Hole>)> {
    let mut broken: BTreeSet<(&'static str, usize)> = BTreeSet::new();
    for pointer in schema::error_pointers(FileKind::Pipeline, &tree.to_json()) {
        let mut segments = pointer.split('/').skip(1);
        let (Some("spec"), Some(list), Some(index)) =
            (segments.next(), segments.next(), segments.next())
        else {
            return None;
        };
        let list = match list {
            "steps" => "steps",
            "sinks" => "sinks",
            _ => return None,
        };
        broken.insert((list, index.parse().ok()?));
    }
    if broken.is_empty() {
        return None;
    }
    let holes = broken
        .iter()
        .map(|&(list, i)| {
            let kind = if list == "steps" {
                HoleKind::Step
            } else {
                HoleKind::Sink
            };
            Some(Hole::of(
                kind,
                tree.pointer(&format!("/spec/{list}/{i}"))?.node,
            ))
        })
        .collect::<Option<Vec<Hole>>>()?;
    let mut pruned = tree.clone();
    for &(list, i) in broken.iter().rev() {
        if let Some(Value::Seq(items)) = entry_mut(&mut pruned, "spec")
            .and_then(|spec| entry_mut(spec, list))
            .map(|n| &mut n.value)
        {
            items.remove(i);
        }
    }
    schema::is_valid(FileKind::Pipeline, &pruned.to_json()).then_some((pruned, holes))
}

/// The value of a mapping's entry, to change it.
fn entry_mut<'a>(node: &'a mut Node, key: &str) -> Option<&'a mut Node> {
    match &mut node.value {
        Value::Map(entries) => entries
            .iter_mut()
            .find(|e| e.key == key)
            .map(|e| &mut e.value),
        _ => None,
    }
}

/// Checks the root is a mapping whose `apiVersion` and `kind` fit the file's place.
fn check_header(file: &str, kind: FileKind, tree: &Node) -> Result<(), Box<Diagnostic>> {
    let Value::Map(_) = tree.value else {
        return Err(Box::new(
            Diagnostic::new(Code::WrongType, "a spec file must be a YAML mapping")
                .at(file, tree.span)
                .expected(format!(
                    "a mapping with `apiVersion: {API_VERSION}`, `kind: {}`, `metadata` and `spec`",
                    kind.name()
                )),
        ));
    };
    if let Some(found) = tree.pointer("/apiVersion") {
        let text = found.node.as_str().unwrap_or_default();
        if text != API_VERSION {
            let shown = match found.node.to_json() {
                Json::String(s) => s,
                other => other.to_string(),
            };
            return Err(Box::new(
                Diagnostic::new(Code::ApiVersion, format!("unknown apiVersion `{shown}`"))
                    .at(file, found.node.span)
                    .label("not an etl apiVersion")
                    .expected(format!("`{API_VERSION}`"))
                    .help(format!("use `apiVersion: {API_VERSION}`")),
            ));
        }
    }
    if let Some(found) = tree.pointer("/kind") {
        let text = found.node.as_str().unwrap_or_default();
        if text != kind.name() {
            let place = match kind {
                FileKind::Project => format!("`{PROJECT_FILE}`"),
                FileKind::Pipeline => "a file under `pipelines/`".to_owned(),
                FileKind::Environment => "a file under `environments/`".to_owned(),
                FileKind::Test => "a file under `tests/`".to_owned(),
            };
            let mut d = Diagnostic::new(Code::Kind, format!("`kind: {text}` in {place}"))
                .at(file, found.node.span)
                .label(format!("expected `{}`", kind.name()))
                .expected(format!("`{}`", kind.name()));
            let elsewhere = FileKind::ALL.iter().find(|k| k.name() == text);
            d = match elsewhere {
                Some(FileKind::Project) => d.help(format!(
                    "a Project belongs in `{PROJECT_FILE}` at the repo root"
                )),
                Some(FileKind::Pipeline) => d.help("move this file to `pipelines/`"),
                Some(FileKind::Environment) => d.help("move this file to `environments/`"),
                Some(FileKind::Test) => d.help("move this file to `tests/`"),
                None => d.maybe_help(diag::did_you_mean(text, [kind.name()])),
            };
            return Err(Box::new(d));
        }
    }
    Ok(())
}
