//! `egress`: the guard of a customer component's outbound HTTP, world `etl:platform/egress`.
//!
//! A step whose customer imports `wasi:http/outgoing-handler` (which the policy grants only with
//! a list of hosts) is composed with this part between the customer and the host: the
//! customer's import is this part's export, and this part's own import is the host's. For each
//! request, `handle` reads the comma list `etl.egress.hosts` from `wasi:config/runtime` (the
//! hosts the deployment plan wrote from the grant) and:
//!
//! - forwards the request unchanged (the same resource, its options as given) when its scheme
//!   and authority match an entry ([`hosts`]): the host's answer is the customer's;
//! - otherwise answers `error-code::HTTP-request-denied` without calling the host, and writes
//!   one line to stderr naming the scheme and authority (never the path or query, which may
//!   carry credentials). An unset or empty list denies every request.
//!
//! A configuration it cannot read, or an entry of no accepted form, denies the request too, as
//! `error-code::internal-error` with the reason.

mod hosts;

etl_harness_bindings::generate!("etl:platform/egress");
etl_harness_bindings::config_error_text!();

use exports::wasi::http::outgoing_handler::Guest;
use wasi::config::runtime;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, FutureIncomingResponse, OutgoingRequest, RequestOptions, Scheme,
};

/// Config key: the hosts the step may call, a comma list of `allowedHosts` entries.
const HOSTS: &str = "etl.egress.hosts";

struct Egress;

impl Guest for Egress {
    fn handle(
        request: OutgoingRequest,
        options: Option<RequestOptions>,
    ) -> Result<FutureIncomingResponse, ErrorCode> {
        let listed = runtime::get(HOSTS).map_err(|e| {
            ErrorCode::InternalError(Some(format!(
                "etl egress: cannot read `{HOSTS}` from wasi:config/runtime ({}): the request \
                 was not sent",
                config_error_text(&e)
            )))
        })?;
        let policy =
            hosts::Policy::parse(listed.as_deref().unwrap_or_default()).map_err(|why| {
                ErrorCode::InternalError(Some(format!(
                    "etl egress: config `{HOSTS}`: {why}: the request was not sent"
                )))
            })?;
        let scheme = request.scheme().map(|s| match s {
            Scheme::Http => "http".to_string(),
            Scheme::Https => "https".to_string(),
            Scheme::Other(other) => other,
        });
        let authority = request.authority();
        let target = hosts::Request {
            scheme: scheme.as_deref(),
            authority: authority.as_deref(),
        };
        if policy.allows(target) {
            return outgoing_handler::handle(request, options);
        }
        eprintln!(
            "etl egress: denied a request to {target}: not among the hosts granted to this step \
             (`{HOSTS}`: {})",
            listed
                .as_deref()
                .filter(|l| !l.trim().is_empty())
                .unwrap_or("none")
        );
        Err(ErrorCode::HttpRequestDenied)
    }
}

export!(Egress);
