//! Where an environment's lattice is: its shared HTTP listener binds an `IP:PORT` (the
//! wasmCloud 1.x `http-server` provider parses `default_address` as a socket address, not a
//! host name), and the shared application that runs it takes a name no pipeline may have.

use crate::diag::{Code, Diagnostic};
use crate::spec::load::Repo;
use crate::spec::model::{HttpListener, SourceConnector};

pub(super) fn check_environments(repo: &Repo, out: &mut Vec<Diagnostic>) {
    let Some(project) = &repo.project else {
        return;
    };
    for (name, env) in &project.spec.spec.environments {
        let Some(http) = &env.http else {
            continue;
        };
        if http.address.parse::<std::net::SocketAddr>().is_ok() {
            continue;
        }
        let pointer = format!("/spec/environments/{name}/http/address");
        out.push(
            Diagnostic::new(
                Code::ListenerAddress,
                format!(
                    "the HTTP listener of environment `{name}` cannot bind `{}`",
                    http.address
                ),
            )
            .at(&project.file, project.span(&pointer))
            .label("not an IP address and port")
            .expected("`IP:PORT` with an IPv4 address or a bracketed IPv6 one and a port up to 65535, e.g. `0.0.0.0:8000` or `[::]:8000`")
            .note("the wasmCloud 1.x http-server provider binds this address as given; it resolves no host names"),
        );
    }
    // The listener exists where a pipeline's `http` source routes by path (has no `address`).
    let shared = repo.pipelines.iter().any(|p| {
        let source = &p.spec.spec.source;
        source.connector == SourceConnector::Http && !source.with.contains_key("address")
    });
    if !shared {
        return;
    }
    let reserved = HttpListener::application(&project.spec.metadata.name);
    for p in &repo.pipelines {
        if *p.spec.metadata.name != *reserved {
            continue;
        }
        out.push(
            Diagnostic::new(
                Code::ReservedName,
                format!("a pipeline cannot be named `{reserved}`"),
            )
            .at(&p.file, p.span("/metadata/name"))
            .label("the name of the project's shared HTTP listener")
            .expected(format!(
                "a pipeline name other than `{reserved}`, which names the wadm application that runs the HTTP listener every pipeline of `{}` shares in an environment",
                project.spec.metadata.name
            ))
            .help("rename the pipeline (and its file)"),
        );
    }
}
