//! What several commands print the same way: diagnostics in each format (colored when asked or
//! on a terminal), notes and warnings, and text on stdout that tolerates a closed pipe.

use std::io::{IsTerminal, Write};
use std::path::Path;

use etl::diag::render::{self, Paths};

use crate::args::{Color, Format};

/// Renders the diagnostics of `validation` in `format`: `human` on stderr (with a summary line,
/// which `done` replaces when given), `json` and `github` on stdout.
pub fn diagnostics(
    validation: &etl::spec::Validation,
    repo: &Path,
    format: Format,
    color: Color,
    done: Option<&str>,
) {
    let paths = Paths::new(&repo.to_string_lossy());
    let diagnostics = &validation.diagnostics;
    match format {
        Format::Human => {
            let color = match color {
                Color::Auto => std::io::stderr().is_terminal(),
                Color::Always => true,
                Color::Never => false,
            };
            let mut text = render::human(diagnostics, validation.sources(), &paths, color);
            match done {
                Some(done) => text.push_str(done),
                None => text.push_str(&render::summary(
                    diagnostics,
                    &format!("`{}`", repo.display()),
                )),
            }
            let _ = writeln!(std::io::stderr(), "{text}");
        }
        Format::Json => print(&render::json(diagnostics)),
        Format::Github => print(&render::github(diagnostics, &paths)),
    }
}

/// Notes the files whose errors were set aside because they belong to other pipelines.
pub fn set_aside(files: &[String]) {
    if files.is_empty() {
        return;
    }
    let files: Vec<String> = files.iter().map(|f| format!("`{f}`")).collect();
    eprintln!(
        "note: set aside the errors in {}, which belong to other pipelines (`etl validate` shows them)",
        files.join(", "),
    );
}

/// Says, once, that the cache could not be written (the command went on without it).
pub fn cache_warning(cache: Option<&etl::store::Cache>) {
    if let Some((path, error)) = cache.and_then(etl::store::Cache::write_failure) {
        eprintln!(
            "warning: the cache `{}` cannot be written (`{}`: {error}): compositions are not kept \
             for the next run; fix its permissions or give --cache-dir",
            cache
                .map(|c| c.dir().display().to_string())
                .unwrap_or_default(),
            path.display()
        );
    }
}

/// Writes to stdout, ignoring a closed pipe (`etl validate --format json | head`).
pub fn print(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}
