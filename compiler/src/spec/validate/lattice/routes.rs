//! One HTTP server serves a lattice and routes each request by its path: two pipelines must not
//! ask for one path, nor for one listener address, in one environment; nor may a listener of a
//! pipeline's own bind the port of the shared listener that serves the paths.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::view::{Lattice, Route, Served};
use crate::diag::{Code, Diagnostic};
use crate::spec::validate::findings::Findings;

pub(super) fn check_routes(l: &Lattice<'_>, found: &mut Findings) {
    check_shared_port(l, found);
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

/// An `address` source binds what the environment's shared listener binds (the same port on the
/// same IP, or either on every interface) while another pipeline routes by path: on wasmCloud
/// 1.x both listeners would start on every host, and one would fail.
fn check_shared_port(l: &Lattice<'_>, found: &mut Findings) {
    let Some(routed) = l.served.iter().find(|s| matches!(s.route, Route::Path(_))) else {
        return;
    };
    let Ok(shared) = l.http_address.parse::<SocketAddr>() else {
        return;
    };
    for served in &l.served {
        let Route::Address(address) = &served.route else {
            continue;
        };
        let Ok(own) = address.parse::<SocketAddr>() else {
            continue;
        };
        let same_ip =
            own.ip() == shared.ip() || own.ip().is_unspecified() || shared.ip().is_unspecified();
        if own.port() != shared.port() || !same_ip {
            continue;
        }
        let (this, other) = (l.name(served.pipeline), l.name(routed.pipeline));
        found.add(
            l.env,
            Diagnostic::new(
                Code::HttpRouteClash,
                format!(
                    "`{this}` listens on `{address}`, which the shared HTTP listener of `{other}`'s path binds (`{}`)",
                    l.http_address
                ),
            )
            .at(served.at.file, served.at.span)
            .label(format!("`{this}`'s own listener"))
            .related(
                routed.at.file,
                routed.at.span,
                format!("`{other}` is served by path here"),
            )
            .expected("an `address` on another port than the environment's `http.address` (default `0.0.0.0:8000`)")
            .help(format!("give `{this}` another port, or serve it by `path` from the shared listener")),
        );
    }
}
