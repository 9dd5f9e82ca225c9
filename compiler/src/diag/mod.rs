//! Diagnostics: what went wrong, where, what was expected, and how to fix it.
//!
//! Every stage reports problems as [`Diagnostic`]s; they are rendered once, at the edge
//! (`render`). Codes are stable: tools may match on them (`docs/diagnostics.md` lists them).

pub mod render;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// A position in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub column: u32,
    /// Byte offset from the start of the file.
    #[serde(skip)]
    pub offset: usize,
}

/// A range of a source file: `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Span {
    /// First character.
    pub start: Pos,
    /// One past the last character.
    pub end: Pos,
}

impl Span {
    /// The empty span at the start of a file.
    pub const START: Span = Span {
        start: Pos {
            line: 1,
            column: 1,
            offset: 0,
        },
        end: Pos {
            line: 1,
            column: 1,
            offset: 0,
        },
    };
}

/// A place in the repo: a file (relative to the repo root, `/`-separated) and a span in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// Repo-relative path with `/` separators.
    pub file: String,
    /// Where in the file; `None` for the file as a whole.
    pub span: Option<Span>,
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The repo is invalid.
    Error,
    /// Valid, but probably not what was meant.
    Warning,
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $severity:ident, $title:literal;)*) => {
        /// Stable diagnostic codes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $(#[doc = $title] $variant,)*
        }

        impl Code {
            /// Every code, in order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The stable text form, e.g. `E0201`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// A short title of the problem.
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)* }
            }

            /// The default severity.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$severity,)* }
            }
        }
    };
}

codes! {
    Io = "E0001", Error, "a file could not be read";
    NotUtf8 = "E0002", Error, "a file is not UTF-8 text";
    TooLarge = "E0003", Error, "a file is larger than a spec file may be";
    NoProject = "E0004", Error, "the repo has no `etl.yaml`";
    NotADirectory = "E0005", Error, "the repo path is not a directory";
    YamlSyntax = "E0010", Error, "malformed YAML";
    Tab = "E0011", Error, "a tab character where YAML needs spaces";
    DuplicateKey = "E0012", Error, "a key appears twice in one mapping";
    TooDeep = "E0013", Error, "YAML nested deeper than allowed";
    AliasBomb = "E0014", Error, "YAML aliases expand beyond the allowed size";
    EmptyFile = "E0015", Error, "a spec file is empty";
    MultipleDocuments = "E0016", Error, "more than one YAML document in a file";
    UnsupportedYaml = "E0017", Error, "a YAML feature spec files do not use";
    ApiVersion = "E0020", Error, "unknown `apiVersion`";
    Kind = "E0021", Error, "wrong `kind` for this file";
    MissingField = "E0101", Error, "a required field is missing";
    UnknownField = "E0102", Error, "an unknown field";
    WrongType = "E0103", Error, "a value of the wrong type";
    NotAllowed = "E0104", Error, "a value that is not one of the allowed values";
    Pattern = "E0105", Error, "a value that does not match the expected form";
    OutOfRange = "E0106", Error, "a number or list size out of range";
    Schema = "E0107", Error, "a value the schema rejects";
    UnknownReference = "E0201", Error, "`from` names nothing that produces records";
    Cycle = "E0202", Error, "the pipeline graph has a cycle";
    Unreachable = "E0203", Error, "a step or sink that no record can reach";
    DuplicateName = "E0204", Error, "a name is used twice";
    InvalidName = "E0205", Error, "a name wadm and OCI cannot use";
    UppercaseName = "W0206", Warning, "a name with upper-case letters";
    DuplicateFrom = "W0207", Warning, "`from` names the same input twice";
    DeadEnd = "W0208", Warning, "a step whose output nothing consumes";
    UpstreamSetting = "E0220", Error, "a `pipeline` source whose `with` is not two plain names, `pipeline` and `from`";
    UpstreamUnreadable = "E0221", Error, "a `pipeline` source that names a node no other pipeline can read";
    UpstreamOverride = "E0222", Error, "an environment file that overrides a `pipeline` source";
    PipelineCycle = "E0223", Error, "pipelines that read each other's records in a cycle";
    HttpRouteClash = "E0224", Error, "two pipelines served on one HTTP path or address in one environment";
    InternalSubject = "E0225", Error, "a subject internal to one step that something else publishes to";
    ImplicitSubPipeline = "W0226", Warning, "a `nats` source that reads another pipeline's internal subject";
    NameClash = "E0227", Error, "two steps or sinks of different pipelines deployed under one name";
    ListenerAddress = "E0240", Error, "an HTTP listener address that is not `IP:PORT`";
    ReservedName = "E0241", Error, "a pipeline named like the project's shared HTTP listener";
    UnknownEnvironment = "E0301", Error, "an environment the project does not define";
    UnknownPipeline = "E0302", Error, "a pipeline the repo does not define";
    UnknownConnector = "E0303", Error, "a source, step or sink the pipeline does not define";
    InvalidDigest = "E0304", Error, "a digest that is not `sha256:` and 64 lowercase hex digits";
    PathEscapes = "E0305", Error, "a path that leaves the repo";
    MissingComponent = "E0306", Error, "a component file that does not exist";
    InvalidOciReference = "E0307", Error, "a malformed `oci://` component reference";
    EnvironmentFileName = "E0309", Error, "an environment file named unlike its environment";
    MissingSetting = "E0311", Error, "a connector without the setting that says where it goes";
    DuplicateGrant = "W0310", Warning, "a capability granted twice";
    MissingProvider = "E0312", Error, "a connector whose provider the project does not configure";
    UnpinnedProvider = "W0313", Warning, "a provider image not pinned by digest";
    BatchMode = "E0314", Error, "a `batch` setting its connector does not take";
    BatchBytes = "E0315", Error, "a `batch-bytes` setting that is not a positive integer";
    BatchKey = "E0316", Error, "an `s3` sink writing NDJSON batches whose `key` has no `{digest}`";
    MqttTopic = "E0317", Error, "an `mqtt` source topic that has no NATS subject";
    TemplateSyntax = "E0401", Error, "a template that does not parse";
    UndefinedVariable = "E0402", Error, "a template uses a variable some environment lacks";
    TemplateRender = "E0403", Error, "a template fails to render";
    InlineSecret = "E0501", Error, "a credential written inline";
    NoSecretBackend = "E0502", Error, "a `secret:` reference with no secret backend";
    InvalidHeader = "E0510", Error, "an HTTP sink header setting that cannot be a request header";
    SecretName = "E0511", Error, "a secret setting whose name a deployment cannot carry";
    UnknownFixtureSecret = "W0512", Warning, "a fixture secret its pipeline does not use";
    BuiltinProviderSecret = "W0513", Warning, "a connector secret for a built-in provider, which gets no secrets";
    UnclaimedSecrets = "W0520", Warning, "secrets wasmCloud 1.x hosts will not fetch: the component carries no claims";
    FixturePayload = "E0601", Error, "a fixture payload that cannot be decoded";
    DigestMismatch = "E0701", Error, "component bytes that do not hash to `digest:`";
    NotWasm = "E0702", Error, "a component file that is not WebAssembly";
    NoMetadata = "E0703", Error, "a core module without component-type metadata";
    ComponentTooLarge = "E0704", Error, "a component larger than allowed";
    InvalidComponent = "E0705", Error, "a component that does not validate or componentize";
    ComponentUnavailable = "E0706", Error, "a component that cannot be fetched";
    ContractExport = "E0707", Error, "a component without the `etl:pipeline/transform` export";
    ContractType = "E0708", Error, "a component whose types differ from the contract";
    ForbiddenImport = "E0709", Error, "a component import the policy does not grant";
    Compose = "E0710", Error, "a step that cannot be composed";
    UnservedImport = "E0711", Error, "a component import one wasmCloud generation's hosts do not serve";
    EgressWithoutHosts = "E0712", Error, "a grant of outbound HTTP that names no hosts";
    HostsWithoutEgress = "E0713", Error, "`hosts` on a grant that is not of outbound HTTP";
    EgressHost = "E0714", Error, "a host an outbound HTTP grant cannot name";
    SocketsGranted = "E0715", Error, "a grant of raw network access (`wasi:sockets`)";
    Emit = "E0801", Error, "a pipeline that cannot be deployed as planned";
    InstancePool = "W0802", Warning, "steps whose messages in flight can exhaust the v2 hosts' instance pool";
    ModelMismatch = "E0901", Error, "internal: the schema accepted what the model rejects";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A secondary place that explains the primary one ("first defined here").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    /// Where.
    pub location: Location,
    /// What is there.
    pub message: String,
}

/// One problem found in a repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable code.
    pub code: Code,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, in one sentence.
    pub message: String,
    /// Where; `None` for the repo as a whole.
    pub location: Option<Location>,
    /// Short text under the caret.
    pub label: Option<String>,
    /// What was expected there.
    pub expected: Option<String>,
    /// How to fix it, e.g. "did you mean `parse`?".
    pub help: Option<String>,
    /// Further context.
    pub notes: Vec<String>,
    /// Other places involved.
    pub related: Vec<Related>,
}

impl Diagnostic {
    /// A diagnostic with the code's default severity.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            location: None,
            label: None,
            expected: None,
            help: None,
            notes: Vec::new(),
            related: Vec::new(),
        }
    }

    /// Points at a span of a file.
    pub fn at(mut self, file: &str, span: Span) -> Self {
        self.location = Some(Location {
            file: file.to_owned(),
            span: Some(span),
        });
        self
    }

    /// Points at a whole file.
    pub fn in_file(mut self, file: &str) -> Self {
        self.location = Some(Location {
            file: file.to_owned(),
            span: None,
        });
        self
    }

    /// Sets the caret label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Sets what was expected.
    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    /// Sets the help text.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the help text when there is one.
    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Adds a related place.
    pub fn related(mut self, file: &str, span: Span, message: impl Into<String>) -> Self {
        self.related.push(Related {
            location: Location {
                file: file.to_owned(),
                span: Some(span),
            },
            message: message.into(),
        });
        self
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    fn sort_key(&self) -> (Option<(&str, usize)>, Code, &str) {
        let place = self
            .location
            .as_ref()
            .map(|l| (l.file.as_str(), l.span.map_or(0, |s| s.start.offset)));
        (place, self.code, self.message.as_str())
    }
}

/// Byte offset of the start of each line of `text`: 0 first, and after each `\n` (so a text
/// ending in a newline has an empty last line).
pub(crate) fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// Sorts diagnostics into their reporting order: by file, then position, then code.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
}

/// Names as a readable list: `` `a`, `b`, `c` ``, or "(none defined)".
pub fn quoted_list<S: AsRef<str>>(names: &[S]) -> String {
    if names.is_empty() {
        return "(none defined)".to_owned();
    }
    names
        .iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The closest candidate to a misspelt `word`, as a help text, if any is close enough.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The closest candidate to `word` by edit distance, if close enough to be a typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1) + 1;
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| {
            (
                strsim::damerau_levenshtein(&word.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= limit || is_abbreviation(word, c))
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)))
        .map(|(_, c)| c)
}

/// Whether `word` (at least 3 characters) is the start of `candidate`, ignoring case, allowing
/// one wrong last character (`stage` for `staging`).
fn is_abbreviation(word: &str, candidate: &str) -> bool {
    let (word, candidate) = (word.to_lowercase(), candidate.to_lowercase());
    let n = word.chars().count();
    n >= 3
        && n < candidate.chars().count()
        && word
            .chars()
            .zip(candidate.chars())
            .take(n - 1)
            .all(|(a, b)| a == b)
}

/// The text of every file read, by repo-relative path, for rendering snippets.
#[derive(Debug, Clone, Default)]
pub struct Sources(BTreeMap<String, String>);

impl Sources {
    /// The text of a file, if it was read as text.
    pub fn get(&self, file: &str) -> Option<&str> {
        self.0.get(file).map(String::as_str)
    }

    /// Records the text of a file.
    pub fn insert(&mut self, file: &str, text: String) {
        self.0.insert(file.to_owned(), text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(closest("prase", ["parse", "enrich"]), Some("parse"));
        assert_eq!(closest("stage", ["dev", "staging"]), Some("staging"));
        assert_eq!(closest("pro", ["dev", "production"]), Some("production"));
        assert_eq!(closest("st", ["dev", "staging"]), None);
        assert_eq!(
            closest("conector", ["connector", "component"]),
            Some("connector")
        );
        assert_eq!(closest("xyz", ["parse", "enrich"]), None);
        assert_eq!(closest("parse", ["parse"]), None);
    }

    #[test]
    fn every_code_is_documented() {
        let doc = include_str!("../../../docs/diagnostics.md");
        for code in Code::ALL {
            assert!(
                doc.contains(&format!("| `{code}` |")),
                "{code} missing from docs/diagnostics.md"
            );
        }
    }

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            let first = if code.severity() == Severity::Error {
                'E'
            } else {
                'W'
            };
            assert!(text.starts_with(first) && text.len() == 5, "{text}");
        }
    }
}
