//! The dashboard's static files (`controller/dashboard/`, `docs/dashboard.md`): the page
//! (`index.html`, `app.js`, `app.css`) and the libraries it draws with (`dashboard/vendor/`,
//! vendored from npm by `dashboard/vendor.sh`), embedded in the binary so that the page needs
//! nothing from the network — neither the controller's host at build time nor the browser at
//! run time. The page reads the API's documents (`etl::ops::telemetry`) every 2 s.
//!
//! [`asset`] maps a request path to a file: `/` is the page, `/assets/<file>` the rest. The
//! server decides who may have them, and caching ([`Asset::etag`] is a strong validator,
//! computed when the crate was built by `build.rs`).

/// One embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
    /// Its `ETag`, quoted: `"<length in hex>-<64-bit FNV-1a in hex>"`.
    pub etag: &'static str,
}

/// An entry of the table `build.rs` writes.
struct Entry {
    /// The file's name: `index.html`, or its name under `/assets/`.
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    etag: &'static str,
}

/// Every file, the page's own first, then `dashboard/vendor/`'s by name.
static ENTRIES: &[Entry] = include!(concat!(env!("OUT_DIR"), "/dashboard.rs"));

/// The page's file.
const PAGE: &str = "index.html";

/// The file a request path names: `/` → the page; `/assets/<file>` → `app.js`, `app.css` or a
/// vendored library or its license. `None` for anything else (including `/assets/index.html`:
/// the page has one address).
pub fn asset(path: &str) -> Option<Asset> {
    let name = if path == "/" {
        PAGE
    } else {
        path.strip_prefix("/assets/").filter(|name| *name != PAGE)?
    };
    ENTRIES.iter().find(|e| e.name == name).map(|e| Asset {
        content_type: e.content_type,
        bytes: e.bytes,
        etag: e.etag,
    })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use etl::ops::telemetry::{DeadLetter, Overview, PipelineView, Replay};
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::*;

    fn page() -> &'static str {
        std::str::from_utf8(asset("/").expect("the page").bytes).expect("UTF-8")
    }

    /// The values of every `src="…"` and `href="…"` attribute of `html`.
    fn references(html: &str) -> Vec<&str> {
        let mut refs = Vec::new();
        for attr in [" src=\"", " href=\""] {
            for (at, _) in html.match_indices(attr) {
                let rest = &html[at + attr.len()..];
                refs.push(&rest[..rest.find('"').expect("a closed attribute")]);
            }
        }
        refs
    }

    #[test]
    fn every_file_the_page_names_is_served_with_its_type() {
        let refs = references(page());
        let mut scripts = 0;
        for reference in &refs {
            // `#main` stays on the page, `data:,` (no favicon) is no request; everything else is
            // one of ours.
            if reference.starts_with('#') || *reference == "data:," {
                continue;
            }
            let path = if reference.starts_with('/') {
                reference.to_string()
            } else {
                format!("/{reference}")
            };
            let served = asset(&path).unwrap_or_else(|| panic!("{reference} is not served"));
            let expected = match Path::new(&path).extension().and_then(|e| e.to_str()) {
                Some("js") => {
                    scripts += 1;
                    "text/javascript; charset=utf-8"
                }
                Some("css") => "text/css; charset=utf-8",
                Some("txt") => "text/plain; charset=utf-8",
                other => panic!("{reference}: unexpected extension {other:?}"),
            };
            assert_eq!(served.content_type, expected, "{reference}");
            assert!(!served.bytes.is_empty(), "{reference}");
        }
        // The libraries and the page's script.
        assert!(scripts >= 4, "{refs:?}");
        for library in [
            "/assets/cytoscape.min.js",
            "/assets/cytoscape-dagre.min.js",
            "/assets/uPlot.iife.min.js",
            "/assets/uPlot.min.css",
            "/assets/app.js",
            "/assets/app.css",
        ] {
            let local = library.trim_start_matches('/');
            assert!(
                refs.contains(&library) || refs.contains(&local),
                "the page does not load {library}: {refs:?}"
            );
        }
        assert_eq!(asset("/").unwrap().content_type, "text/html; charset=utf-8");
    }

    #[test]
    fn the_page_needs_nothing_its_content_security_policy_forbids() {
        // `script-src 'self'; style-src 'self'` (`serve::DASHBOARD_CSP`): no inline script,
        // style, style attribute or event handler attribute, no `javascript:` URL, no eval.
        let comments = regex::Regex::new(r"(?s)<!--.*?-->").unwrap();
        let page = comments.replace_all(page(), "");
        let page = page.as_ref();
        let tags = regex::Regex::new(r"(?is)<script\b[^>]*>").unwrap();
        for tag in tags.find_iter(page) {
            assert!(
                tag.as_str().contains(" src=\""),
                "an inline script: {}",
                tag.as_str()
            );
        }
        assert_eq!(
            page.matches("</script>").count(),
            tags.find_iter(page).count()
        );
        for (forbidden, what) in [
            (r"(?i)<style\b", "an inline style"),
            (r#"(?i)\sstyle\s*="#, "a style attribute"),
            (r"(?i)\son[a-z]+\s*=", "an event handler attribute"),
            (r"(?i)javascript:", "a javascript: URL"),
        ] {
            let found = regex::Regex::new(forbidden).unwrap().find(page);
            assert!(found.is_none(), "the page has {what}: {found:?}");
        }
        for e in ENTRIES.iter().filter(|e| e.name.ends_with(".js")) {
            let text = std::str::from_utf8(e.bytes).unwrap();
            for eval in ["eval(", "new Function("] {
                assert!(!text.contains(eval), "{} calls {eval}", e.name);
            }
        }
        // The script builds elements, never HTML text (which could carry inline styles).
        let app = std::str::from_utf8(asset("/assets/app.js").unwrap().bytes).unwrap();
        for html in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(!app.contains(html), "app.js uses {html}");
        }
    }

    #[test]
    fn only_the_page_and_assets_are_served() {
        assert!(asset("/assets/app.js").is_some());
        assert!(asset("/assets/cytoscape.LICENSE.txt").is_some());
        for path in [
            "",
            "/index.html",
            "/assets/index.html",
            "/assets/",
            "/assets",
            "/app.js",
            "/assets/../Cargo.toml",
            "/assets/vendor/cytoscape.min.js",
            "/assets/app.js/",
            "/assets/APP.JS",
        ] {
            assert_eq!(asset(path), None, "{path}");
        }
    }

    #[test]
    fn etags_differ_by_content_and_are_quoted() {
        let mut seen = std::collections::HashSet::new();
        for e in ENTRIES {
            assert!(
                e.etag.len() > 2 && e.etag.starts_with('"') && e.etag.ends_with('"'),
                "{}: {}",
                e.name,
                e.etag
            );
            assert!(
                e.etag[1..e.etag.len() - 1]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b'-')
            );
            // Two files may be alike (two MIT licenses of one text); their tags then are too.
            let fresh = seen.insert(e.etag);
            assert!(
                fresh
                    || ENTRIES
                        .iter()
                        .any(|o| o.name != e.name && o.etag == e.etag && o.bytes == e.bytes),
                "{}",
                e.name
            );
        }
    }

    /// Spans `[start, end)` of `/* … */` comments in `text`.
    fn block_comments(text: &str) -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        let mut from = 0;
        while let Some(start) = text[from..].find("/*").map(|i| from + i) {
            let end = text[start + 2..]
                .find("*/")
                .map_or(text.len(), |i| start + 2 + i + 2);
            spans.push((start, end));
            from = end;
        }
        spans
    }

    #[test]
    fn nothing_is_fetched_from_elsewhere() {
        for e in ENTRIES {
            let text = std::str::from_utf8(e.bytes).unwrap_or_else(|_| panic!("{}", e.name));
            if e.name.ends_with(".txt") {
                continue; // licenses
            }
            let own = matches!(e.name, "index.html" | "app.js" | "app.css");
            let comments = block_comments(text);
            for scheme in ["http://", "https://", "ws://", "wss://"] {
                for (at, _) in text.match_indices(scheme) {
                    if text[..at]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_ascii_alphanumeric())
                    {
                        continue; // `https://` within `whttps://`: not this scheme
                    }
                    // Our own files name no URL at all, not even in a comment; the libraries
                    // only in their license comments.
                    let in_comment = comments.iter().any(|&(start, end)| start < at && at < end);
                    let context = &text[at.saturating_sub(40)..(at + 60).min(text.len())];
                    assert!(!own && in_comment, "{}: a URL: …{context}…", e.name);
                }
            }
            if own {
                for pattern in ["src=\"//", "href=\"//", "url(", "@import", "//cdn"] {
                    assert!(!text.contains(pattern), "{}: {pattern}", e.name);
                }
            }
        }
    }

    #[test]
    fn every_vendored_file_is_served() {
        let vendor = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dashboard/vendor");
        let mut count = 0;
        for entry in std::fs::read_dir(&vendor).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let served = asset(&format!("/assets/{name}")).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(served.bytes, std::fs::read(vendor.join(&name)).unwrap());
            count += 1;
        }
        // The libraries' licenses come along.
        for license in ["cytoscape", "cytoscape-dagre", "dagre", "graphlib", "uPlot"] {
            assert!(asset(&format!("/assets/{license}.LICENSE.txt")).is_some());
        }
        assert_eq!(ENTRIES.len(), count + 3);
    }

    /// Whether two JSON documents are equal, numbers by value (`1` = `1.0`).
    fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    /// Reads a fixture of the dev server as `T` and checks that writing it back gives the same
    /// document: every field named as serde names it, none missing, none extra.
    fn fixture<T: Serialize + DeserializeOwned>(name: &str) -> T {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("dashboard/dev/fixtures")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let typed: T =
            serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let back = serde_json::to_value(&typed).unwrap();
        assert!(
            same(&doc, &back),
            "{name} is not what the Rust type writes:\n{}",
            serde_json::to_string_pretty(&back).unwrap()
        );
        typed
    }

    #[test]
    fn the_dev_fixtures_are_the_apis_documents() {
        let overview: Overview = fixture("overview.json");
        let empty: Overview = fixture("overview-empty.json");
        assert!(empty.deployed.is_none() && empty.pipelines.is_empty());
        for summary in &overview.pipelines {
            let view: PipelineView = fixture(&format!("pipeline-{}.json", summary.name));
            assert_eq!(view.name, summary.name);
            for node in &view.nodes {
                if let Some(counters) = &node.counters {
                    assert!(counters.balanced(), "{}: {}", view.name, node.name);
                }
            }
            for edge in &view.edges {
                assert!(
                    view.nodes.iter().any(|n| n.name == edge.from)
                        && view.nodes.iter().any(|n| n.name == edge.to),
                    "{edge:?}"
                );
            }
        }
        let letters: Vec<DeadLetter> = fixture("dead-letters.json");
        assert!(!letters.is_empty());
        let _: Replay = fixture("replay.json");
    }
}
