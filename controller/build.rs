//! Embeds the dashboard (`dashboard/`: `index.html`, `app.js`, `app.css` and the vendored
//! libraries in `dashboard/vendor/`): writes `$OUT_DIR/dashboard.rs`, the table that
//! `src/dashboard.rs` includes, one entry per file with its name, content type, bytes
//! (`include_bytes!`) and entity tag, so that serving an asset costs a table lookup and the tag
//! is never computed at run time.
//!
//! The tag is the file's length and its 64-bit FNV-1a hash: it only has to change when the file
//! does (a validator for `If-None-Match`, not a security check), and needs no dependency.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

/// The page's own files, at the top of `dashboard/`.
const OWN: [&str; 3] = ["index.html", "app.js", "app.css"];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let dashboard = manifest_dir.join("dashboard");
    let vendor = dashboard.join("vendor");
    let mut files: Vec<(String, PathBuf)> = OWN
        .iter()
        .map(|name| ((*name).to_owned(), dashboard.join(name)))
        .collect();
    let mut vendored: Vec<(String, PathBuf)> = fs::read_dir(&vendor)
        .unwrap_or_else(|e| panic!("{}: {e} (run dashboard/vendor.sh)", vendor.display()))
        .map(|entry| {
            let entry = entry.expect("a directory entry of dashboard/vendor");
            let name = entry.file_name().into_string().expect("a UTF-8 file name");
            (name, entry.path())
        })
        .filter(|(_, path)| path.is_file())
        .collect();
    vendored.sort();
    for (name, _) in &vendored {
        assert!(
            !OWN.contains(&name.as_str()),
            "dashboard/vendor/{name} would shadow the page's own"
        );
    }
    files.extend(vendored);

    println!("cargo::rerun-if-changed=dashboard/vendor");
    let mut table = String::from("&[\n");
    for (name, path) in &files {
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                && !name.starts_with('.'),
            "dashboard/vendor/{name}: an asset's name is [A-Za-z0-9._-], not hidden"
        );
        println!("cargo::rerun-if-changed={}", path.display());
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let content_type = content_type(path);
        let etag = format!("\"{:x}-{:016x}\"", bytes.len(), fnv1a(&bytes));
        writeln!(
            table,
            "    Entry {{ name: {name:?}, content_type: {content_type:?}, \
             bytes: include_bytes!({path:?}), etag: {etag:?} }},",
            path = path.display().to_string(),
        )
        .expect("writing to a String");
    }
    table.push_str("]\n");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("dashboard.rs");
    fs::write(&out, table).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}

/// The content type of a file the dashboard serves, by its extension.
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        _ => panic!(
            "{}: the dashboard serves only .html, .js, .css and .txt files",
            path.display()
        ),
    }
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
