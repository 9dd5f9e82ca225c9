//! Capability grants (`policy.allow`, a step's `allow`): a grant of outbound HTTP names its
//! hosts, `hosts` belongs to no other grant, and every host means what it seems to.

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
    match &allow.hosts {
        None if allow.interface.covers_outgoing_handler() => {
            let at = if file.tree.pointer(&format!("{pointer}/interface")).is_some() {
                file.span(&format!("{pointer}/interface"))
            } else {
                file.span(pointer)
            };
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
