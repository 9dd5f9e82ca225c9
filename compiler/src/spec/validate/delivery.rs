//! `delivery` settings the schema cannot judge: durations too long for the NATS server API (an
//! `i64` of nanoseconds), zeros NATS would read as "the server's default" (`ack_wait`,
//! `duplicate_window`, `max_bytes`), and, in each environment delivered at least once, a
//! de-duplication window longer than the stream keeps messages (the server refuses the stream);
//! and `nats_msg_id` anywhere but the project's `delivery`.

use std::collections::BTreeMap;

use crate::diag::{Code, Diagnostic};
use crate::spec::delivery::DeliverySettings;
use crate::spec::load::{Loaded, Repo};
use crate::spec::model::{Delivery, DurationText, Project};

/// The longest duration the NATS server API carries: `i64::MAX` nanoseconds, in whole hours.
const LONGEST: &str = "2562047h";

pub(super) fn check_delivery(repo: &Repo, out: &mut Vec<Diagnostic>) {
    let Some(project) = &repo.project else {
        return;
    };
    let spec = &project.spec.spec;
    if let Some(d) = &spec.delivery {
        check_fields(project, "/spec/delivery", d, out);
    }
    for (name, env) in &spec.environments {
        if let Some(d) = &env.delivery {
            let at = format!("/spec/environments/{name}/delivery");
            check_fields(project, &at, d, out);
            if d.nats_msg_id.is_some() {
                out.push(
                    Diagnostic::new(
                        Code::NotAllowed,
                        format!("`nats_msg_id` cannot be set for environment `{name}`"),
                    )
                    .at(&project.file, project.span(&format!("{at}/nats_msg_id")))
                    .label("set per environment")
                    .expected("`nats_msg_id` in the project's `spec.delivery`")
                    .note(
                        "it changes the wasmCloud 1.x artifacts, and every environment runs the \
                         same ones (`etl promote` does not rebuild)",
                    ),
                );
            }
        }
    }
    check_windows(project, out);
}

/// Each field of one `delivery` mapping on its own.
fn check_fields(project: &Loaded<Project>, at: &str, d: &Delivery, out: &mut Vec<Diagnostic>) {
    let mut durations: Vec<(String, &DurationText, bool)> = Vec::new();
    if let Some(t) = &d.ack_wait {
        durations.push(("ack_wait".to_owned(), t, true));
    }
    for (i, t) in d.backoff.iter().flatten().enumerate() {
        durations.push((format!("backoff/{i}"), t, false));
    }
    if let Some(t) = &d.max_age {
        durations.push(("max_age".to_owned(), t, false));
    }
    if let Some(t) = &d.duplicate_window {
        durations.push(("duplicate_window".to_owned(), t, true));
    }
    for (field, text, positive) in durations {
        let pointer = format!("{at}/{field}");
        let shown = field_name(&pointer);
        match text.nanos() {
            None => out.push(
                Diagnostic::new(
                    Code::OutOfRange,
                    format!("{shown} is too long: `{text}`"),
                )
                .at(&project.file, project.span(&pointer))
                .label("longer than the NATS server API carries")
                .expected(format!(
                    "a duration of at most `{LONGEST}` (the server counts durations in nanoseconds, in a signed 64-bit integer)"
                )),
            ),
            Some(0) if positive => out.push(
                Diagnostic::new(Code::OutOfRange, format!("{shown} cannot be `{text}`"))
                    .at(&project.file, project.span(&pointer))
                    .label("zero")
                    .expected("a duration of at least `1ms`, e.g. `30s`")
                    .note("the NATS server reads a zero as \"use the server's default\", not as no wait"),
            ),
            Some(_) => {}
        }
    }
    if d.max_bytes == Some(0) {
        let pointer = format!("{at}/max_bytes");
        out.push(
            Diagnostic::new(
                Code::OutOfRange,
                format!("{} cannot be 0", field_name(&pointer)),
            )
            .at(&project.file, project.span(&pointer))
            .label("zero")
            .expected("a positive number of bytes, or -1 for no limit")
            .note("the NATS server reads a zero as no limit"),
        );
    }
}

/// In each environment delivered at least once, `duplicate_window` within `max_age` (when the
/// stream limits age at all). One diagnostic per setting blamed, naming every environment.
fn check_windows(project: &Loaded<Project>, out: &mut Vec<Diagnostic>) {
    let spec = &project.spec.spec;
    // (The setting blamed, the other one: pointer (`None` for a default) and text) → the
    // environments where the two conflict.
    type Written = (Option<String>, String);
    let mut found: BTreeMap<(Written, Written), Vec<String>> = BTreeMap::new();
    for (name, env) in &spec.environments {
        let settings = DeliverySettings::of(spec.delivery.as_ref(), env.delivery.as_ref());
        if !settings.at_least_once()
            || settings.max_age == 0
            || settings.duplicate_window <= settings.max_age
        {
            continue;
        }
        let window = written(
            spec.delivery.as_ref(),
            env.delivery.as_ref(),
            name,
            "duplicate_window",
            |d| d.duplicate_window.as_ref(),
        );
        let age = written(
            spec.delivery.as_ref(),
            env.delivery.as_ref(),
            name,
            "max_age",
            |d| d.max_age.as_ref(),
        );
        // Blame the window when it is written; else the age, too short for the default window.
        let key = match (window, age) {
            (Some((p, w)), age) => (
                (Some(p), w),
                age.map_or_else(|| (None, "24h".to_owned()), |(p, a)| (Some(p), a)),
            ),
            (None, Some((p, a))) => ((Some(p), a), (None, "2m".to_owned())),
            (None, None) => continue,
        };
        found.entry(key).or_default().push(name.to_string());
    }
    for (((pointer, blamed), (other_at, other)), envs) in found {
        let Some(pointer) = pointer else { continue };
        let envs: Vec<String> = envs.iter().map(|e| format!("`{e}`")).collect();
        let noun = if envs.len() == 1 {
            "environment"
        } else {
            "environments"
        };
        let default = if other_at.is_none() {
            " the default"
        } else {
            ""
        };
        let mut d = if pointer.ends_with("/duplicate_window") {
            Diagnostic::new(
                Code::OutOfRange,
                format!(
                    "`duplicate_window` `{blamed}` is longer than{default} `max_age` `{other}` in {noun} {}",
                    envs.join(", ")
                ),
            )
            .label("longer than the stream keeps messages")
            .expected(format!(
                "a `duplicate_window` of at most `max_age` (`{other}`)"
            ))
        } else {
            Diagnostic::new(
                Code::OutOfRange,
                format!(
                    "`max_age` `{blamed}` is shorter than{default} `duplicate_window` `{other}` in {noun} {}",
                    envs.join(", ")
                ),
            )
            .label("shorter than the de-duplication window")
            .expected(format!(
                "a `max_age` of at least `{other}`, `0s` for no limit, or a `duplicate_window` of at most `{blamed}`"
            ))
        };
        d = d.at(&project.file, project.span(&pointer));
        if let Some(at) = other_at {
            let field = at.rsplit('/').next().unwrap_or_default().to_owned();
            d = d.related(
                &project.file,
                project.span(&at),
                format!("the `{field}` it exceeds"),
            );
        }
        out.push(d.note(
            "the NATS server refuses a stream whose de-duplication window outlasts its messages",
        ));
    }
}

/// Where `field` of environment `env` is set, and its text: the environment's own `delivery`,
/// else the project's.
fn written(
    project: Option<&Delivery>,
    own: Option<&Delivery>,
    env: &str,
    field: &str,
    get: fn(&Delivery) -> Option<&DurationText>,
) -> Option<(String, String)> {
    if let Some(t) = own.and_then(get) {
        return Some((
            format!("/spec/environments/{env}/delivery/{field}"),
            t.to_string(),
        ));
    }
    project
        .and_then(get)
        .map(|t| (format!("/spec/delivery/{field}"), t.to_string()))
}

/// `spec.environments.dev.delivery.backoff[1]` for its JSON pointer, as schema diagnostics
/// name fields.
fn field_name(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    format!("`{out}`")
}
