//! Capability grants (`policy.allow`, a step's `allow`): a grant of outbound HTTP names its
//! hosts, `hosts` belongs to no other grant, every host means what it seems to, and no grant
//! gives raw sockets.

use crate::diag::Diagnostic;
use crate::spec::egress;
use crate::spec::load::{Loaded, Repo};
use crate::spec::model::Allow;

pub(super) fn check_policy(repo: &Repo, out: &mut Vec<Diagnostic>) {
    if let Some(project) = &repo.project {
        for (i, allow) in project.spec.spec.policy.allow.iter().enumerate() {
            check_grant(project, &format!("/spec/policy/allow/{i}"), allow, out);
        }
    }
    for p in &repo.pipelines {
        for (s, step) in p.spec.spec.steps.iter().enumerate() {
            for (i, allow) in step.allow.iter().enumerate() {
                check_grant(p, &format!("/spec/steps/{s}/allow/{i}"), allow, out);
            }
        }
    }
}

/// The problems of one grant, written at `pointer` of `file`.
fn check_grant<T>(file: &Loaded<T>, pointer: &str, allow: &Allow, out: &mut Vec<Diagnostic>) {
    let interface = allow.interface.as_str();
    // The interface as written: the grant itself, or its `interface:`.
    let written = format!("{pointer}/interface");
    let at = if file.tree.pointer(&written).is_some() {
        file.span(&written)
    } else {
        file.span(pointer)
    };
    if egress::is_sockets(interface) {
        // Whatever its hosts, which could not bound it anyway.
        out.push(egress::sockets_granted(&file.file, at, interface));
        return;
    }
    match &allow.hosts {
        None if allow.interface.covers_outgoing_handler() => {
            out.push(egress::no_hosts(&file.file, at, interface, false));
        }
        None => {}
        Some(_) if !allow.interface.covers_outgoing_handler() => {
            out.push(egress::hosts_without_egress(
                &file.file,
                file.key_span(&format!("{pointer}/hosts")),
                interface,
            ));
        }
        Some(hosts) => {
            // The schema has checked each host's form; what it cannot see is checked here.
            for (j, host) in hosts.iter().enumerate() {
                if egress::host_problem(host).is_some() {
                    out.push(egress::bad_host(
                        host,
                        &file.file,
                        file.span(&format!("{pointer}/hosts/{j}")),
                    ));
                }
            }
        }
    }
}
