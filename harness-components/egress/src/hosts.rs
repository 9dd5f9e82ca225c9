//! The hosts policy: entries of `etl.egress.hosts`, and whether a request's scheme and
//! authority match one of them.
//!
//! The forms and the matching are those of a wasmCloud v2 host's `localResources.allowedHosts`
//! (wash-runtime's `AllowedHost`), so a request is allowed or denied alike on both generations:
//!
//! | entry | matches a request to |
//! | --- | --- |
//! | `host` | that host (ASCII case-insensitive), any scheme, any port |
//! | `host:port` | that host with that port written in the URL |
//! | `scheme://host` | that host with that scheme, any port |
//! | `scheme://host:port` | that host, scheme and port; a scheme's default port (`https://h:443`) is dropped, as the URL parser v2 hosts use drops it: any port |
//! | `*.suffix`, `scheme://*.suffix`, with `:port` | a host ending in `.suffix` with at least one character before it (`suffix` itself is not matched); scheme and port as above |
//! | `*` | every request |
//!
//! A request without a scheme is matched as `https`, the scheme wasmtime-based hosts send it
//! with. A port counts only when the URL writes it: `h:443` does not match `https://h/`. Paths,
//! queries and fragments are never looked at: an entry may end in a bare `/` and nothing else.

use std::fmt;

/// One entry of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `*`: every request.
    Any,
    /// `host[:port]`.
    Authority {
        /// Lower-cased.
        host: String,
        /// `None`: any port.
        port: Option<u16>,
    },
    /// `scheme://host[:port][/]`.
    Url {
        /// Lower-cased.
        scheme: String,
        /// Lower-cased.
        host: String,
        /// `None`: any port (also when the entry names the scheme's default port).
        port: Option<u16>,
    },
    /// `[scheme://]*.suffix[:port][/]`.
    Suffix {
        /// Lower-cased, with its leading dot: `.acme.example`.
        suffix: String,
        /// Lower-cased; `None`: any scheme.
        scheme: Option<String>,
        /// `None`: any port.
        port: Option<u16>,
    },
}

/// The scheme and authority of one request, as `wasi:http/types.outgoing-request` gives them.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `None` when the request sets none.
    pub scheme: Option<&'a str>,
    /// `None` when the request sets none.
    pub authority: Option<&'a str>,
}

/// `scheme://host[:port]`: any `user:password@` of the authority is left out, so that what a
/// denial logs never carries a credential.
impl fmt::Display for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let authority = self.authority.unwrap_or("");
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        write!(f, "{}://{host}", self.scheme.unwrap_or("https"))
    }
}

/// Every entry of a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// In the order written.
    pub entries: Vec<Entry>,
}

impl Policy {
    /// The comma list `text` (items trimmed, empty items ignored). An empty list denies every
    /// request. An entry of no accepted form is an error naming it.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let entries = text
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| Entry::parse(e).map_err(|why| format!("`{e}` is not a host entry: {why}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy { entries })
    }

    /// Whether an entry matches `request`.
    pub fn allows(&self, request: Request<'_>) -> bool {
        let Some(authority) = request.authority else {
            return false;
        };
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let Ok((host, port)) = split_host_port(authority) else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let scheme = request.scheme.unwrap_or("https").to_ascii_lowercase();
        self.entries.iter().any(|e| e.matches(&scheme, &host, port))
    }
}

impl Entry {
    /// One entry, as wasmCloud v2 parses an `allowedHosts` item.
    pub fn parse(text: &str) -> Result<Entry, &'static str> {
        let text = text.trim();
        if text.is_empty() {
            return Err("it is empty");
        }
        if text == "*" {
            return Ok(Entry::Any);
        }
        if let Some((scheme, rest)) = text.split_once("://") {
            let scheme_ok = scheme
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-'));
            if !scheme_ok {
                return Err("its scheme is not a URL scheme");
            }
            let scheme = scheme.to_ascii_lowercase();
            let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(split);
            if !tail.is_empty() && tail != "/" {
                return Err("it has a path, query or fragment: it names hosts, not URLs");
            }
            if let Some(suffix) = authority.strip_prefix("*.") {
                let (suffix, port) = split_host_port(suffix)?;
                return Ok(Entry::Suffix {
                    suffix: format!(".{}", suffix.to_ascii_lowercase()),
                    scheme: Some(scheme),
                    port,
                });
            }
            if authority.contains('@') {
                return Err("it has user information");
            }
            let (host, port) = split_host_port(authority)?;
            let port = port.filter(|p| Some(*p) != default_port(&scheme));
            return Ok(Entry::Url {
                scheme,
                host: host.to_ascii_lowercase(),
                port,
            });
        }
        if let Some(suffix) = text.strip_prefix("*.") {
            let (suffix, port) = split_host_port(suffix)?;
            return Ok(Entry::Suffix {
                suffix: format!(".{}", suffix.to_ascii_lowercase()),
                scheme: None,
                port,
            });
        }
        if text.starts_with('*') {
            return Err("a wildcard must be `*.<suffix>`");
        }
        if text.contains(['/', '?', '#', '@']) {
            return Err("it is not `host[:port]`");
        }
        let (host, port) = split_host_port(text)?;
        Ok(Entry::Authority {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn matches(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let port_ok = |want: &Option<u16>| want.is_none_or(|p| Some(p) == port);
        match self {
            Entry::Any => true,
            Entry::Authority { host: h, port: p } => h == host && port_ok(p),
            Entry::Url {
                scheme: s,
                host: h,
                port: p,
            } => h == host && s == scheme && port_ok(p),
            Entry::Suffix {
                suffix,
                scheme: s,
                port: p,
            } => {
                host.strip_suffix(suffix.as_str())
                    .is_some_and(|prefix| !prefix.is_empty())
                    && s.as_ref().is_none_or(|s| s == scheme)
                    && port_ok(p)
            }
        }
    }
}

/// The default port of the schemes whose default a URL parser drops (WHATWG URL).
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "ftp" => Some(21),
        _ => None,
    }
}

/// `host[:port]`, or `[v6]:port`: the host as written and the port, when written.
fn split_host_port(text: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (host, port) = if text.starts_with('[') {
        let end = text.find(']').ok_or("its IPv6 address has no `]`")?;
        let (host, rest) = text.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (
                host,
                Some(
                    rest.strip_prefix(':')
                        .ok_or("text follows its IPv6 address")?,
                ),
            ),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'[' | b']' | b':'));
    if !host_ok {
        return Err("its host is not a host name or address");
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| "its port is above 65535")?)
        }
        Some(_) => return Err("its port is not a number"),
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(policy: &str, scheme: Option<&str>, authority: &str) -> bool {
        Policy::parse(policy).unwrap().allows(Request {
            scheme,
            authority: Some(authority),
        })
    }

    #[test]
    fn a_request_shows_without_its_credentials() {
        let r = |authority| Request {
            scheme: Some("http"),
            authority: Some(authority),
        };
        assert_eq!(
            r("user:pw@api.acme.example:8080").to_string(),
            "http://api.acme.example:8080"
        );
        assert_eq!(r("api.acme.example").to_string(), "http://api.acme.example");
    }

    #[test]
    fn an_exact_host_matches_any_scheme_and_port_case_insensitively() {
        let p = "api.acme.example";
        assert!(allows(p, Some("https"), "api.acme.example"));
        assert!(allows(p, Some("http"), "API.Acme.Example:8080"));
        assert!(!allows(p, Some("https"), "api.acme.example.evil"));
        assert!(!allows(p, Some("https"), "x.api.acme.example"));
        assert!(!allows(p, Some("https"), "acme.example"));
    }

    #[test]
    fn a_port_counts_only_when_the_request_writes_it() {
        let p = "127.0.0.1:8080";
        assert!(allows(p, Some("http"), "127.0.0.1:8080"));
        assert!(!allows(p, Some("http"), "127.0.0.1:8081"));
        assert!(!allows(p, Some("http"), "127.0.0.1"));
        // As on wasmCloud v2: the default port is not implied.
        assert!(!allows("h.example:443", Some("https"), "h.example"));
    }

    #[test]
    fn a_scheme_must_be_the_requests() {
        let p = "https://x.example:8443";
        assert!(allows(p, Some("https"), "x.example:8443"));
        assert!(allows(p, Some("HTTPS"), "X.example:8443"));
        assert!(!allows(p, Some("http"), "x.example:8443"));
        assert!(!allows(p, Some("https"), "x.example"));
        assert!(!allows(p, Some("https"), "x.example:443"));
        // A URL entry without a port: any port, that scheme only.
        assert!(allows("http://x.example", Some("http"), "x.example:9000"));
        assert!(!allows("http://x.example", Some("https"), "x.example"));
        // A trailing `/` is allowed; a request without a scheme is `https`.
        assert!(allows("https://x.example/", None, "x.example"));
        assert!(!allows("http://x.example/", None, "x.example"));
    }

    #[test]
    fn a_default_port_in_a_url_entry_is_dropped_as_v2_drops_it() {
        assert_eq!(
            Entry::parse("https://x.example:443"),
            Entry::parse("https://x.example")
        );
        assert!(allows(
            "https://x.example:443",
            Some("https"),
            "x.example:9443"
        ));
        assert!(allows("http://x.example:80", Some("http"), "x.example"));
    }

    #[test]
    fn a_wildcard_matches_subdomains_only() {
        let p = "*.acme.example";
        assert!(allows(p, Some("https"), "api.acme.example"));
        assert!(allows(p, Some("http"), "a.b.ACME.example:81"));
        assert!(!allows(p, Some("https"), "acme.example"));
        assert!(!allows(p, Some("https"), "evilacme.example"));
        assert!(!allows(p, Some("https"), "acme.example.evil"));
        let pinned = "https://*.acme.example:8443";
        assert!(allows(pinned, Some("https"), "api.acme.example:8443"));
        assert!(!allows(pinned, Some("http"), "api.acme.example:8443"));
        assert!(!allows(pinned, Some("https"), "api.acme.example"));
        assert!(allows("*.acme.example:81", None, "a.acme.example:81"));
    }

    #[test]
    fn several_entries_any_and_none() {
        let p = " api.acme.example , ,https://x.example:8443,*.b.example ";
        assert_eq!(Policy::parse(p).unwrap().entries.len(), 3);
        assert!(allows(p, Some("https"), "x.example:8443"));
        assert!(allows(p, Some("http"), "c.b.example"));
        assert!(!allows(p, Some("https"), "other.example"));
        // Empty or unset: every request denied.
        assert!(!allows("", Some("https"), "api.acme.example"));
        assert!(!allows(" , ", Some("https"), "api.acme.example"));
        assert!(allows("*", Some("http"), "anything:1"));
    }

    #[test]
    fn a_request_without_a_usable_authority_is_denied() {
        let p = Policy::parse("*").unwrap();
        let no_authority = Request {
            scheme: Some("https"),
            authority: None,
        };
        assert!(!p.allows(no_authority));
        for bad in ["", "h:", "h:x", "h:99999", "[::1", "a b"] {
            assert!(!allows("*", Some("https"), bad), "{bad}");
        }
        // User information is not part of the host.
        assert!(allows("h.example", Some("https"), "user:pw@h.example"));
        assert!(!allows("user", Some("https"), "user@h.example"));
        // IPv6 literals compare with their brackets.
        assert!(allows("[::1]:8080", Some("http"), "[::1]:8080"));
        assert!(!allows("[::1]:8080", Some("http"), "[::2]:8080"));
    }

    #[test]
    fn entries_of_no_accepted_form_are_errors() {
        for bad in [
            "*foo.example",
            "https://x.example/v1",
            "https://x.example?q=1",
            "x.example/v1",
            "https://u@x.example",
            "x.example:port",
            "x.example:70000",
            "1http://x.example",
            "https://",
        ] {
            assert!(Entry::parse(bad).is_err(), "{bad}");
        }
        let e = Policy::parse("a.example,https://b.example/path").unwrap_err();
        assert!(e.contains("`https://b.example/path`"), "{e}");
    }
}
