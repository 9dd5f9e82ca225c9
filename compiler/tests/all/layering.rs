//! The library's architecture, kept: its top-level modules are layers in the order `lib.rs`
//! lists them, a module uses only its own layer and lower ones, and the modules of a layer use
//! each other without a cycle (a parent that uses its children is not used by them).
//!
//! Edges are read from the code (comments and unit-test modules are skipped): every path that
//! starts with `crate::`, `super::` (as many as there are) or `self::`, use trees with groups and
//! globs included, and every path through one of the module's own child modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first, as `lib.rs` declares and documents them.
const LAYERS: [&str; 7] = ["util", "diag", "oci", "store", "spec", "build", "ops"];

/// A module, as its path below the crate root (`["build", "emit"]` for `src/build/emit/`).
type Module = Vec<String>;

/// One source file of the library.
struct Source {
    /// Its path, for messages.
    file: String,
    module: Module,
    text: String,
}

/// A use of `to` by `from`, at `at` (`file:line`).
struct Edge {
    from: Module,
    to: Module,
    at: String,
}

fn name(module: &Module) -> String {
    module.join("::")
}

fn sources() -> Vec<Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(&src).unwrap();
                let mut module: Module = rel
                    .with_extension("")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                    module.pop();
                }
                out.push(Source {
                    file: format!("src/{}", rel.display()),
                    module,
                    text: std::fs::read_to_string(&path).unwrap(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

/// The code of a file by statement, each at the number of its first line: comments removed, a
/// statement that spans lines (a `use` tree, an expression) joined up to its `;`, `{` or `}`,
/// and unit-test modules (`#[cfg(test)] mod tests`, at the end of a file) left out.
fn statements(text: &str) -> Vec<(usize, String)> {
    let text = text
        .find("#[cfg(test)]\nmod tests")
        .map_or(text, |at| &text[..at]);
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut open = false;
    for (i, line) in text.lines().enumerate() {
        let code = match line.find("//") {
            // `//` inside a string literal (a URL) is code; a comment never follows an odd quote.
            Some(at) if line[..at].matches('"').count() % 2 == 0 => &line[..at],
            _ => line,
        };
        let code = code.trim();
        if code.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((_, statement)) if open => {
                statement.push(' ');
                statement.push_str(code);
            }
            _ => out.push((i + 1, code.to_owned())),
        }
        let statement = &out.last().expect("just pushed").1;
        let unfinished_use = statement
            .split_once("use ")
            .is_some_and(|(before, _)| before.is_empty() || before.starts_with("pub"))
            && !statement.contains(';');
        open = unfinished_use || !code.ends_with([';', '{', '}', ',']);
    }
    out
}

/// The paths after each occurrence of `prefix` (`crate::a::b::C` → `[a, b, C]`); a use tree's
/// groups (`crate::{a::b, c}`) give one path each, a glob (`super::*`) the path before it.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find(prefix) {
        let at = from + found;
        let boundary = code[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '$'));
        from = at + prefix.len();
        if boundary {
            tree(&code[from..], Vec::new(), &mut out);
        }
    }
    out
}

/// Parses the use tree (or path) at the start of `text`, below `base`, into `out`; returns how
/// much of `text` it took.
fn tree<'a>(text: &'a str, base: Vec<&'a str>, out: &mut Vec<Vec<&'a str>>) -> usize {
    let mut path = base;
    let mut at = 0;
    loop {
        let rest = &text[at..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut inner = group;
            loop {
                inner = inner.trim_start_matches([' ', ',']);
                if inner.is_empty() {
                    return text.len();
                }
                if let Some(after) = inner.strip_prefix('}') {
                    return text.len() - after.len();
                }
                let used = tree(inner, path.clone(), out);
                inner = &inner[used.max(1)..];
            }
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 && &rest[..end] != "self" {
            path.push(&rest[..end]);
        }
        at += end;
        if text[at..].starts_with("::") {
            at += 2;
        } else {
            out.push(path);
            return at + usize::from(text[at..].starts_with('*'));
        }
    }
}

/// The deepest module `path` (below the crate root) names.
fn module_of(path: &[&str], modules: &BTreeSet<Module>) -> Module {
    let mut module = Module::new();
    for segment in path {
        let mut deeper = module.clone();
        deeper.push((*segment).to_owned());
        if !modules.contains(&deeper) {
            break;
        }
        module = deeper;
    }
    module
}

/// Every use of one module by another.
fn edges(sources: &[Source]) -> Vec<Edge> {
    let modules: BTreeSet<Module> = sources.iter().map(|s| s.module.clone()).collect();
    let mut out = Vec::new();
    for source in sources {
        /// `path` below `module`.
        fn own<'a>(module: &'a Module, path: &[&'a str]) -> Vec<&'a str> {
            module
                .iter()
                .map(String::as_str)
                .chain(path.iter().copied())
                .collect()
        }
        let children: Vec<&String> = modules
            .iter()
            .filter(|m| m.len() == source.module.len() + 1 && m.starts_with(&source.module))
            .filter_map(|m| m.last())
            .collect();
        for (line, code) in statements(&source.text) {
            let mut targets = Vec::new();
            for path in paths_after(&code, "crate::") {
                targets.push(module_of(&path, &modules));
            }
            for path in paths_after(&code, "super::") {
                // `super::super::x`: one level up per `super`.
                let ups = 1 + path.iter().take_while(|s| **s == "super").count();
                let mut full: Vec<&str> = source.module.iter().map(String::as_str).collect();
                full.truncate(full.len().saturating_sub(ups));
                full.extend(path.iter().skip(ups - 1));
                targets.push(module_of(&full, &modules));
            }
            for path in paths_after(&code, "self::") {
                targets.push(module_of(&own(&source.module, &path), &modules));
            }
            for child in &children {
                for path in paths_after(&code, &format!("{child}::")) {
                    let mut full = own(&source.module, &[child.as_str()]);
                    full.extend(path);
                    targets.push(module_of(&full, &modules));
                }
            }
            for to in targets {
                if to != source.module && !to.is_empty() {
                    out.push(Edge {
                        from: source.module.clone(),
                        to,
                        at: format!("{}:{line}", source.file),
                    });
                }
            }
        }
    }
    out
}

fn layer(module: &Module) -> Option<usize> {
    LAYERS
        .iter()
        .position(|l| module.first() == Some(&(*l).to_owned()))
}

/// The uses of a higher layer (or of no layer), one message each.
fn upward(edges: &[Edge]) -> Vec<String> {
    edges
        .iter()
        .filter(|e| !e.from.is_empty())
        .filter(|e| match (layer(&e.from), layer(&e.to)) {
            (Some(from), Some(to)) => to > from,
            _ => true,
        })
        .map(|e| {
            let at = |m: &Module| layer(m).map_or("none", |l| LAYERS[l]);
            format!(
                "{}: `{}` (layer {}) uses `{}` (layer {})",
                e.at,
                name(&e.from),
                at(&e.from),
                name(&e.to),
                at(&e.to)
            )
        })
        .collect()
}

/// The uses inside a layer that close a cycle, one message each.
fn cycles(edges: &[Edge]) -> Vec<String> {
    let mut graph: BTreeMap<&Module, BTreeMap<&Module, &str>> = BTreeMap::new();
    for e in edges {
        if !e.from.is_empty() && e.from.first() == e.to.first() {
            graph
                .entry(&e.from)
                .or_default()
                .entry(&e.to)
                .or_insert(&e.at);
        }
    }
    // An edge is on a cycle when its target reaches its source again.
    let reaches = |from: &Module, to: &Module| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(node) = todo.pop() {
            if node == to {
                return true;
            }
            if seen.insert(node) {
                todo.extend(graph.get(node).into_iter().flat_map(|t| t.keys().copied()));
            }
        }
        false
    };
    graph
        .iter()
        .flat_map(|(from, targets)| targets.iter().map(move |(to, at)| (*from, *to, *at)))
        .filter(|(from, to, _)| reaches(to, from))
        .map(|(from, to, at)| format!("{at}: `{}` uses `{}`", name(from), name(to)))
        .collect()
}

#[test]
fn lib_declares_and_documents_the_layers_in_order() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';'))
        .collect();
    assert_eq!(declared, LAYERS, "lib.rs declares the layers in order");
    let documented: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.split_once(". [`")?.1.split_once('`').map(|(m, _)| m))
        .collect();
    assert_eq!(
        documented, LAYERS,
        "lib.rs's overview lists the layers in order"
    );
    for source in sources().iter().filter(|s| !s.module.is_empty()) {
        assert!(
            source.text.starts_with("//!"),
            "{} says its job in a `//!` comment",
            source.file
        );
    }
}

#[test]
fn no_module_uses_a_higher_layer() {
    let edges = edges(&sources());
    assert!(edges.len() > 100, "the reader finds the library's uses");
    let upward = upward(&edges);
    assert!(
        upward.is_empty(),
        "uses against the layering:\n{}",
        upward.join("\n")
    );
}

#[test]
fn modules_of_a_layer_form_no_cycle() {
    let cycles = cycles(&edges(&sources()));
    assert!(
        cycles.is_empty(),
        "uses that close an import cycle:\n{}",
        cycles.join("\n")
    );
}

/// A library in memory: (file, text), the module taken from the file's path.
fn library(files: &[(&str, &str)]) -> Vec<Source> {
    files
        .iter()
        .map(|(file, text)| {
            let mut module: Module = file
                .trim_end_matches(".rs")
                .split('/')
                .map(str::to_owned)
                .collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            Source {
                file: (*file).to_owned(),
                module,
                text: (*text).to_owned(),
            }
        })
        .collect()
}

#[test]
fn the_checks_find_every_form_of_use() {
    let lib = library(&[
        ("util/mod.rs", "//! u\npub mod a;\npub mod b;\n"),
        // Upward, in forms a reader could miss: in an attribute's string, in a use tree over
        // several lines.
        (
            "util/a.rs",
            "//! a\n#[serde(with = \"crate::ops::x\")]\nstruct S;\n",
        ),
        (
            "util/b.rs",
            "//! b\npub(crate) use crate::{\n    util::a,\n    spec::y,\n};\n",
        ),
        ("ops/mod.rs", "//! o\npub mod x;\n"),
        ("ops/x.rs", "//! x\nuse super::super::spec::z;\n"),
        // A cycle: the parent calls a child's function, the child imports the parent's glob.
        (
            "spec/mod.rs",
            "//! s\npub mod w;\npub mod y;\npub mod z;\nfn h() { y::g() }\n",
        ),
        ("spec/y.rs", "//! y\nuse super::*;\npub fn g() {}\n"),
        ("spec/z.rs", "//! z\npub fn f() {}\n"),
        (
            "spec/w.rs",
            "//! w\n// crate::ops is a comment\nfn g() { crate::spec::z::f() }\n",
        ),
    ]);
    let edges = edges(&lib);
    assert_eq!(
        upward(&edges),
        [
            "util/a.rs:2: `util::a` (layer util) uses `ops::x` (layer ops)",
            "util/b.rs:2: `util::b` (layer util) uses `spec::y` (layer spec)",
        ]
    );
    assert_eq!(
        cycles(&edges),
        [
            "spec/mod.rs:5: `spec` uses `spec::y`",
            "spec/y.rs:2: `spec::y` uses `spec`",
        ]
    );
    let found: Vec<String> = edges
        .iter()
        .map(|e| format!("{} -> {}", name(&e.from), name(&e.to)))
        .collect();
    for expected in [
        "util::b -> util::a",
        "ops::x -> spec::z",
        "spec::w -> spec::z",
    ] {
        assert!(
            found.iter().any(|f| f == expected),
            "{expected} in {found:#?}"
        );
    }
    assert!(
        !found.iter().any(|f| f.ends_with("-> ops")),
        "comments are not code"
    );
}
