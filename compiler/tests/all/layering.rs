//! The library's architecture, kept: its top-level modules are layers in the order `lib.rs`
//! lists them, a module uses only its own layer and lower ones, and inside a layer the modules'
//! uses form no cycle. Edges are read from the sources: every `crate::`, `super::` and
//! `self::` path in code, and `use` of a child module by its bare name (comments are skipped).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first, as `lib.rs` declares and documents them.
const LAYERS: [&str; 7] = ["util", "diag", "oci", "store", "spec", "build", "ops"];

/// A module, as its path below the crate root (`["build", "emit"]` for `src/build/emit/`).
type Module = Vec<String>;

struct Source {
    file: PathBuf,
    module: Module,
    text: String,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn sources() -> Vec<Source> {
    let mut out = Vec::new();
    let mut dirs = vec![src()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src()).unwrap().with_extension("");
                let mut module: Module = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                    module.pop();
                }
                let mut text = std::fs::read_to_string(&path).unwrap();
                // Unit tests are not part of the architecture (and their `super` is the file).
                if let Some(at) = text.find("#[cfg(test)]\nmod tests") {
                    text.truncate(at);
                }
                out.push(Source {
                    file: path,
                    module,
                    text,
                });
            }
        }
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

/// Code without comments (line and doc comments; the library has no block comments), by line
/// number; a `use` statement over several lines is one line, at its first.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut open_use = false;
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
            Some((_, statement)) if open_use => statement.push_str(code),
            _ => out.push((i + 1, code.to_owned())),
        }
        let statement = &out.last().expect("just pushed").1;
        open_use = (statement.starts_with("use ") || statement.starts_with("pub use "))
            && !statement.contains(';');
    }
    out
}

/// The paths after each occurrence of `prefix` (`crate::a::b::C` → `[a, b, C]`); a use tree's
/// groups (`crate::{a::b, c}`) give one path each.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let boundary = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '"'));
        rest = &rest[at + prefix.len()..];
        if boundary {
            tree(rest, Vec::new(), &mut out);
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
            if !path.is_empty() {
                out.push(path);
            }
            return at;
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

/// Every module each module uses (other than itself), with where.
fn edges(sources: &[Source]) -> Vec<(Module, Module, String)> {
    let modules: BTreeSet<Module> = sources.iter().map(|s| s.module.clone()).collect();
    let mut out = Vec::new();
    for source in sources {
        let at = |line: usize| {
            let rel = source
                .file
                .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap();
            format!("{}:{line}", rel.display())
        };
        for (line, code) in code_lines(&source.text) {
            let code = code.as_str();
            let mut targets = Vec::new();
            for path in paths_after(code, "crate::") {
                targets.push(module_of(&path, &modules));
            }
            for path in paths_after(code, "super::") {
                let mut base = source.module.clone();
                base.pop();
                let mut full: Vec<&str> = base.iter().map(String::as_str).collect();
                full.extend(path);
                targets.push(module_of(&full, &modules));
            }
            let mut children = paths_after(code, "self::");
            if let Some(rest) = code.strip_prefix("use ").or(code.strip_prefix("pub use ")) {
                tree(rest, Vec::new(), &mut children);
            }
            for child in modules
                .iter()
                .filter(|m| m.len() == source.module.len() + 1)
            {
                if child.starts_with(&source.module) {
                    let name = child.last().expect("a child has a name");
                    children.extend(paths_after(code, &format!("{name}::")).into_iter().map(
                        |mut p| {
                            p.insert(0, name);
                            p
                        },
                    ));
                }
            }
            for path in children {
                let mut full: Vec<&str> = source.module.iter().map(String::as_str).collect();
                full.extend(path);
                let target = module_of(&full, &modules);
                if target.len() > source.module.len() {
                    targets.push(target);
                }
            }
            for target in targets {
                if target != source.module && !target.is_empty() {
                    out.push((source.module.clone(), target, at(line)));
                }
            }
        }
    }
    out
}

fn layer(module: &Module) -> usize {
    LAYERS
        .iter()
        .position(|l| module.first().is_some_and(|m| m == l))
        .unwrap_or_else(|| panic!("`{}` is in no layer", module.join("::")))
}

#[test]
fn lib_declares_and_documents_the_layers_in_order() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
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
    for module in sources().iter().filter(|s| s.module.len() == 1) {
        assert!(
            module.text.starts_with("//!"),
            "{} says its job in a `//!` comment",
            module.file.display()
        );
    }
}

#[test]
fn no_module_uses_a_higher_layer() {
    let sources = sources();
    let upward: Vec<String> = edges(&sources)
        .into_iter()
        .filter(|(from, to, _)| !from.is_empty() && layer(to) > layer(from))
        .map(|(from, to, at)| {
            format!(
                "{at}: `{}` (layer {}) uses `{}` (layer {})",
                from.join("::"),
                LAYERS[layer(&from)],
                to.join("::"),
                LAYERS[layer(&to)]
            )
        })
        .collect();
    assert!(
        upward.is_empty(),
        "edges against the layering:\n{}",
        upward.join("\n")
    );
}

#[test]
fn modules_of_a_layer_form_no_cycle() {
    let sources = sources();
    let mut graph: BTreeMap<Module, BTreeMap<Module, String>> = BTreeMap::new();
    for (from, to, at) in edges(&sources) {
        let inside = !from.is_empty() && from.first() == to.first();
        if inside {
            graph.entry(from).or_default().entry(to).or_insert(at);
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
                todo.extend(graph.get(node).into_iter().flat_map(BTreeMap::keys));
            }
        }
        false
    };
    let on_cycles: Vec<String> = graph
        .iter()
        .flat_map(|(from, targets)| targets.iter().map(move |(to, at)| (from, to, at)))
        .filter(|(from, to, _)| reaches(to, from))
        .map(|(from, to, at)| format!("{at}: `{}` uses `{}`", from.join("::"), to.join("::")))
        .collect();
    assert!(
        on_cycles.is_empty(),
        "uses that close an import cycle:\n{}",
        on_cycles.join("\n")
    );
}

#[test]
fn the_reader_finds_the_edges_it_must() {
    let modules: BTreeSet<Module> = [vec!["a"], vec!["a", "b"], vec!["c"]]
        .into_iter()
        .map(|m| m.into_iter().map(str::to_owned).collect())
        .collect();
    let found = |code: &str| -> Vec<Module> {
        paths_after(code, "crate::")
            .iter()
            .map(|p| module_of(p, &modules))
            .collect()
    };
    assert_eq!(found("use crate::a::b::Thing;"), [vec!["a", "b"]]);
    assert_eq!(found("use crate::{a::b, c};"), [vec!["a", "b"], vec!["c"]]);
    assert_eq!(
        found("let x = crate::c::f(crate::a::X);"),
        [vec!["c"], vec!["a"]]
    );
    assert!(found("let s = \"not_crate::a\";").is_empty());
    assert_eq!(
        code_lines("/// crate::a\nuse crate::{\n    a::b,\n    c,\n};\nx // crate::c\n"),
        [(2, "use crate::{a::b,c,};".to_owned()), (6, "x".to_owned())]
    );
    assert_eq!(
        found("use crate::{a::{b, X}, c::{self, Y}};"),
        [vec!["a", "b"], vec!["a"], vec!["c"], vec!["c"]]
    );
}
