//! Outbound HTTP by policy: a grant of `wasi:http/outgoing-handler` names the hosts a step may
//! call (`{interface: wasi:http/outgoing-handler, hosts: [...]}`), in the forms of a wasmCloud v2
//! `allowedHosts` entry; what is wrong with a grant or a host, said precisely; and which hosts a
//! step's grants give it.
//!
//! Grants add up: a step may import what `policy.allow` or its own `allow` grants, and may call
//! every host of every grant (project or step) that covers its `outgoing-handler` import. No
//! grant may give raw sockets (`wasi:sockets`): they would reach any address, around the hosts.

use crate::diag::{Code, Diagnostic, Span};
use crate::spec::model::{Allow, EGRESS_HOST_PATTERN, OUTGOING_HANDLER};

/// The forms a host entry takes, for diagnostics.
pub const HOST_FORMS: &str = "`host[:port]`, `scheme://host[:port]`, `*.domain[:port]` or \
     `scheme://*.domain[:port]` (wasmCloud v2's `allowedHosts` forms, without `*`)";

/// An example of the extended form, for diagnostics.
const EXAMPLE: &str = "{interface: wasi:http/outgoing-handler, hosts: [api.acme.example]}";

/// The hosts `grants` give to a customer import `import` (versioned, e.g.
/// `wasi:http/outgoing-handler@0.2.12`): those of every grant that covers it, in grant order,
/// each once. Empty for any other import.
pub fn hosts_for<'a>(grants: impl IntoIterator<Item = &'a Allow>, import: &str) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    if import.split('@').next() != Some(OUTGOING_HANDLER) {
        return hosts;
    }
    for grant in grants {
        if !grant.interface.covers(import) {
            continue;
        }
        for host in grant.hosts.iter().flatten() {
            if !hosts.iter().any(|h| h == host.as_str()) {
                hosts.push(host.to_string());
            }
        }
    }
    hosts
}

/// E0712 for a grant of outbound HTTP that names no hosts: `interface` written alone, or
/// `hosts` empty (`empty`), at `span`.
pub fn no_hosts(file: &str, span: Span, interface: &str, empty: bool) -> Diagnostic {
    let (message, label) = if empty {
        (
            format!("the grant of `{interface}` names an empty list of hosts"),
            "no hosts",
        )
    } else {
        (
            format!("`{interface}` is granted without hosts"),
            "which hosts?",
        )
    };
    let mut d = Diagnostic::new(Code::EgressWithoutHosts, message)
        .at(file, span)
        .label(label)
        .expected(format!(
            "`{{interface: {interface}, hosts: [HOST, …]}}`: a step calls out only to the hosts \
             its grant names"
        ));
    if interface.ends_with("/*") {
        d = d
            .note(format!("`{interface}` grants `{OUTGOING_HANDLER}` too"))
            .help(format!(
                "grant `wasi:http/types` alone and outbound HTTP as `{EXAMPLE}`, or give this \
                 grant its hosts"
            ));
    } else {
        d = d.help(format!(
            "write `{{interface: {interface}, hosts: [api.acme.example]}}` with the hosts the \
             step calls: {HOST_FORMS}"
        ));
    }
    d
}

/// E0713 for `hosts` on a grant of `interface`, which is not outbound HTTP, at `span`.
pub fn hosts_without_egress(file: &str, span: Span, interface: &str) -> Diagnostic {
    let near = crate::diag::closest(
        interface.split('@').next().unwrap_or(interface),
        [OUTGOING_HANDLER],
    );
    Diagnostic::new(
        Code::HostsWithoutEgress,
        format!("`hosts` is given for `{interface}`, which is not outbound HTTP"),
    )
    .at(file, span)
    .label("hosts of what?")
    .expected(format!(
        "`hosts` only on a grant of `{OUTGOING_HANDLER}` (or `wasi:http/*`)"
    ))
    .help(match near {
        Some(fix) => format!("did you mean `{fix}`?"),
        None => format!("grant `{interface}` alone: `- {interface}`"),
    })
}

/// E0715 for a grant of `interface`, of the package `wasi:sockets`, at `span`: raw sockets would
/// reach any address, around the hosts of the egress policy.
pub fn sockets_granted(file: &str, span: Span, interface: &str) -> Diagnostic {
    Diagnostic::new(
        Code::SocketsGranted,
        format!("`{interface}` would give the step raw network access, around the hosts its grants name"),
    )
    .at(file, span)
    .label("raw sockets")
    .expected("no grant of `wasi:sockets`: a step reaches the network only by outbound HTTP to the hosts its grant names")
    .help(format!("grant outbound HTTP with its hosts instead: `{EXAMPLE}`"))
}

/// Whether `interface` (a grant) is of the package `wasi:sockets`.
pub fn is_sockets(interface: &str) -> bool {
    interface.starts_with("wasi:sockets/")
}

/// E0714 for host entry `value` (of no accepted form, or misleading), at `span`.
pub fn bad_host(value: &str, file: &str, span: Span) -> Diagnostic {
    let problem = host_problem(value).unwrap_or_else(|| HostProblem {
        why: format!("it does not match `{EGRESS_HOST_PATTERN}`"),
        fix: None,
    });
    Diagnostic::new(
        Code::EgressHost,
        format!("`{value}` is not a host a grant can name: {}", problem.why),
    )
    .at(file, span)
    .label("not a host")
    .expected(HOST_FORMS)
    .maybe_help(problem.fix)
}

/// What is wrong with a host entry of an outbound HTTP grant, and how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostProblem {
    /// Why the entry cannot stand, e.g. "it has a path (`/v1`)".
    pub why: String,
    /// The entry to write, or what to do, when there is one.
    pub fix: Option<String>,
}

/// The problem of host entry `text`, or `None` when it is fine: not of an [`EGRESS_HOST_PATTERN`]
/// form (said precisely), a port above 65535, or `scheme://host:port` with the scheme's default
/// port, which a wasmCloud v2 host drops, so that the entry matches every port.
pub fn host_problem(text: &str) -> Option<HostProblem> {
    let problem = |why: String, fix: Option<String>| Some(HostProblem { why, fix });
    if text == "*" {
        return problem(
            "`*` would let the step call every host".to_owned(),
            Some(
                "list the hosts it calls; `*.acme.example` names the subdomains of one domain"
                    .to_owned(),
            ),
        );
    }
    if text.is_empty() || text.chars().any(char::is_whitespace) {
        return problem("it is empty or holds spaces".to_owned(), None);
    }
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, text),
    };
    if let Some(scheme) = scheme {
        let ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
        if !ok {
            return problem(format!("`{scheme}` is not a URL scheme"), None);
        }
    }
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    let written = |authority: &str| match scheme {
        Some(scheme) => format!("`{scheme}://{authority}`"),
        None => format!("`{authority}`"),
    };
    // A bare trailing `/` is allowed after a scheme, nothing else.
    let root_only = tail.is_empty() || (scheme.is_some() && tail == "/");
    if !root_only {
        let what = if tail.starts_with('?') || (tail.contains('?') && !tail.contains('#')) {
            "a query".to_owned()
        } else if tail.starts_with('#') {
            "a fragment".to_owned()
        } else {
            format!("a path (`{tail}`)")
        };
        return problem(
            format!("it has {what}: a grant names hosts, not URLs"),
            Some(format!("write {}", written(authority))),
        );
    }
    if let Some((_, host)) = authority.rsplit_once('@') {
        return problem(
            "it has user information (`…@`)".to_owned(),
            Some(format!("write {}", written(host))),
        );
    }
    if authority.starts_with('[') {
        return problem(
            "an IPv6 address cannot be named: wasmCloud v2's `allowedHosts` have no form for it"
                .to_owned(),
            Some("call the API by a host name or an IPv4 address".to_owned()),
        );
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if let Some(suffix) = host.strip_prefix('*')
        && !suffix.starts_with('.')
    {
        return problem(
            "a wildcard must be `*.` and a domain: it matches that domain's subdomains".to_owned(),
            Some(format!("write {}", written(&format!("*.{suffix}")))),
        );
    }
    let wildcard = host.starts_with("*.");
    let host = host.strip_prefix("*.").unwrap_or(host);
    if host.contains('*') {
        return problem(
            "a wildcard may only open the host, as `*.` and a domain".to_owned(),
            None,
        );
    }
    if let Some(port) = port {
        if port.is_empty() {
            return problem("the port after `:` is missing".to_owned(), None);
        }
        if port.len() > 5 || !port.chars().all(|c| c.is_ascii_digit()) {
            return problem(format!("`{port}` is not a port number"), None);
        }
        if port.parse::<u32>().is_ok_and(|p| p > 65535) {
            return problem(format!("port {port} is above 65535"), None);
        }
    }
    let bad_label = host.split('.').find(|label| {
        label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if let Some(label) = bad_label {
        return problem(
            format!(
                "`{label}` is not a part of a host name: letters, digits and `-` (not first or \
                 last), at most 63, between dots"
            ),
            None,
        );
    }
    let default_port = match scheme.map(str::to_ascii_lowercase).as_deref() {
        Some("http") => Some("80"),
        Some("https") => Some("443"),
        _ => None,
    };
    if let (Some(port), Some(default)) = (port, default_port)
        && !wildcard
        && port.trim_start_matches('0') == default
    {
        let without = written(host);
        return problem(
            format!(
                "port {port} is the scheme's default, which wasmCloud v2 hosts drop: the entry \
                 would match {without} on every port"
            ),
            Some(format!("write {without}, which says so")),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::model::{EgressHost, Grant};

    fn allow(interface: &str, hosts: Option<&[&str]>) -> Allow {
        Allow {
            interface: Grant::try_from(interface.to_owned()).unwrap(),
            hosts: hosts.map(|h| {
                h.iter()
                    .map(|h| EgressHost::try_from((*h).to_owned()).unwrap())
                    .collect()
            }),
        }
    }

    #[test]
    fn hosts_add_up_over_the_grants_that_cover_the_import() {
        let project = allow(
            "wasi:http/outgoing-handler",
            Some(&["a.example", "b.example"]),
        );
        let step = allow(
            "wasi:http/outgoing-handler",
            Some(&["b.example", "c.example:81"]),
        );
        let pinned = allow("wasi:http/outgoing-handler@0.2.0", Some(&["old.example"]));
        let package = allow("wasi:http/*", Some(&["*.d.example"]));
        let other = allow("wasi:logging/logging", None);
        let grants = [&project, &step, &pinned, &package, &other];
        assert_eq!(
            hosts_for(grants, "wasi:http/outgoing-handler@0.2.12"),
            ["a.example", "b.example", "c.example:81", "*.d.example"]
        );
        assert_eq!(
            hosts_for(grants, "wasi:http/outgoing-handler@0.2.0"),
            [
                "a.example",
                "b.example",
                "c.example:81",
                "old.example",
                "*.d.example"
            ]
        );
        // Only outbound HTTP has hosts, whatever else a grant with hosts covers.
        assert!(hosts_for(grants, "wasi:http/types@0.2.12").is_empty());
        assert!(hosts_for(grants, "wasi:logging/logging").is_empty());
    }

    #[test]
    fn every_form_of_the_crd_is_fine_but_star() {
        for ok in [
            "api.acme.example",
            "api.acme.example:8443",
            "127.0.0.1:8080",
            "https://x.example:8443",
            "https://x.example/",
            "http://x.example",
            "*.acme.example",
            "*.acme.example:81",
            "https://*.acme.example",
            "http://*.acme.example:80",
        ] {
            assert_eq!(host_problem(ok), None, "{ok}");
            assert!(EgressHost::try_from(ok.to_owned()).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("*", "every host"),
            ("https://x.example/v1", "a path (`/v1`)"),
            ("https://x.example?a=1", "a query"),
            ("https://x.example#f", "a fragment"),
            ("x.example/", "a path (`/`)"),
            ("https://u:p@x.example", "user information"),
            ("*x.example", "a wildcard must be"),
            ("a.*.example", "may only open the host"),
            ("[::1]:80", "IPv6"),
            ("x_y.example", "`x_y` is not a part"),
            ("x.example:", "port after `:` is missing"),
            ("x.example:99999", "above 65535"),
            ("https://x.example:443", "default"),
            ("http://x.example:0080", "default"),
            ("1http://x", "not a URL scheme"),
            ("x .example", "spaces"),
        ] {
            let problem = host_problem(bad).unwrap_or_else(|| panic!("{bad} passed"));
            assert!(problem.why.contains(why), "{bad}: {}", problem.why);
        }
        // What the pattern accepts and still misleads is caught here, not by the pattern.
        for misleading in ["https://x.example:443", "x.example:99999"] {
            assert!(EgressHost::try_from(misleading.to_owned()).is_ok());
        }
        assert_eq!(
            host_problem("https://x.example:443")
                .unwrap()
                .fix
                .as_deref(),
            Some("write `https://x.example`, which says so")
        );
    }
}
