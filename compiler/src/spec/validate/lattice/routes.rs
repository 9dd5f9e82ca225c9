//! One HTTP server serves a lattice and routes each request by its path: two pipelines must not
//! ask for one path, nor for one listener address, in one environment.

use std::collections::HashMap;

use super::view::{Findings, Lattice, Route, Served};
use crate::diag::{Code, Diagnostic};

pub(super) fn check_routes(l: &Lattice<'_>, found: &mut Findings) {
    let mut first_at: HashMap<&Route, &Served<'_>> = HashMap::new();
    for served in &l.served {
        let first = *first_at.entry(&served.route).or_insert(served);
        if first.pipeline == served.pipeline {
            continue;
        }
        let (this, other) = (l.name(served.pipeline), l.name(first.pipeline));
        let (what, expected, help) = match &served.route {
            Route::Path(path) => (
                format!("HTTP path `{path}`"),
                "one pipeline per path: the lattice's HTTP server routes each request by its path",
                format!("give `{this}` or `{other}` another `path`"),
            ),
            Route::Address(address) => (
                format!("address `{address}`"),
                "one pipeline per address: two HTTP listeners cannot share one",
                format!(
                    "give `{this}` or `{other}` another `address`, or serve both by `path` from \
                     the lattice's HTTP server"
                ),
            ),
        };
        found.add(
            l.env,
            Diagnostic::new(
                Code::HttpRouteClash,
                format!("pipelines `{other}` and `{this}` are both served on {what}"),
            )
            .at(served.at.file, served.at.span)
            .label(format!("`{this}` is served here"))
            .related(
                first.at.file,
                first.at.span,
                format!("`{other}` is served here"),
            )
            .expected(expected)
            .help(help),
        );
    }
}
