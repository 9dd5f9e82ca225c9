//! The NATS subjects the compiler derives for records between steps, dead letters, reports,
//! replays and JetStream deliveries, the subject an MQTT topic maps to, and how a NATS
//! subscription matches a subject.
//!
//! Names hold no `.` ([`crate::spec::model::NAME_PATTERN`]), so each derived subject belongs to
//! exactly one step of one pipeline.

/// The subject a step publishes its outputs to: `etl.<project>.<pipeline>.out.<step>`.
pub fn step_subject(project: &str, pipeline: &str, step: &str) -> String {
    format!("etl.{project}.{pipeline}.out.{step}")
}

/// The subject a step publishes its dead letters to: `etl.<project>.<pipeline>.dlq.<step>`.
pub fn dead_letter_subject(project: &str, pipeline: &str, step: &str) -> String {
    format!("etl.{project}.{pipeline}.dlq.{step}")
}

/// The subject a unit publishes its per-batch reports to (`docs/reporting.md`):
/// `etl.<project>.<pipeline>.report.<unit>.<environment>`.
pub fn report_subject(project: &str, pipeline: &str, unit: &str, environment: &str) -> String {
    format!("etl.{project}.{pipeline}.report.{unit}.{environment}")
}

/// The subject a step also listens on, so that its dead letters can be replayed into it alone:
/// `etl.<project>.<pipeline>.replay.<step>`.
pub fn replay_subject(project: &str, pipeline: &str, step: &str) -> String {
    format!("etl.{project}.{pipeline}.replay.{step}")
}

/// The subject the JetStream consumers of a unit deliver its records to, in an at-least-once
/// environment: `etl.<project>.<pipeline>.deliver.<unit>`. The unit subscribes to it instead of
/// the subjects it reads.
pub fn deliver_subject(project: &str, pipeline: &str, unit: &str) -> String {
    format!("etl.{project}.{pipeline}.deliver.{unit}")
}

/// Whether a subscription to `pattern` receives what is published to `subject`, by NATS rules:
/// tokens are separated by `.`, `*` stands for one token and a final `>` for one or more.
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut subject = subject.split('.');
    for token in pattern.split('.') {
        match (token, subject.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (t, Some(s)) if t == s => {}
            _ => return false,
        }
    }
    subject.next().is_none()
}

/// Whether `pattern` holds a wildcard token (`*` or `>`).
pub fn is_wildcard(pattern: &str) -> bool {
    pattern.split('.').any(|t| t == "*" || t == ">")
}

/// The NATS subject the NATS server's MQTT listener publishes an MQTT `topic` to, or that
/// receives what a topic filter names: levels become tokens (`a/b` → `a.b`), `+` becomes `*`
/// and a final `#` becomes `>`. `Err` says why `topic` has no such subject: one the server maps
/// to tokens of its own (an empty level, a `.`), that clashes with NATS wildcards (`*`, `>`), or
/// that MQTT itself refuses (a `+` or `#` inside a level, a `#` before the last level, a `$`
/// topic, which is the server's).
pub fn mqtt_subject(topic: &str) -> Result<String, &'static str> {
    if topic.is_empty() {
        return Err("an empty topic");
    }
    if topic.starts_with('$') {
        return Err("a `$` topic is the server's own");
    }
    let levels: Vec<&str> = topic.split('/').collect();
    let mut tokens = Vec::with_capacity(levels.len());
    for (i, level) in levels.iter().enumerate() {
        let token = match *level {
            "" => return Err("an empty level (a leading, trailing or doubled `/`)"),
            "+" => "*",
            "#" if i + 1 == levels.len() => ">",
            "#" => return Err("`#` before the last level"),
            l if l.contains(['+', '#']) => {
                return Err("`+` or `#` inside a level (a wildcard is a whole level)");
            }
            l if l.contains(['*', '>']) => return Err("`*` or `>`, NATS wildcards"),
            l if l.contains('.') => return Err("a `.`, which NATS maps to a token of its own"),
            l if l.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                return Err("white space or a control character");
            }
            l => l,
        };
        tokens.push(token);
    }
    Ok(tokens.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_topics_map_to_subjects_as_the_nats_server_does() {
        assert_eq!(
            mqtt_subject("plant/line-2/temp").unwrap(),
            "plant.line-2.temp"
        );
        assert_eq!(mqtt_subject("plant/+/temp").unwrap(), "plant.*.temp");
        assert_eq!(mqtt_subject("plant/#").unwrap(), "plant.>");
        assert_eq!(mqtt_subject("#").unwrap(), ">");
        for bad in [
            "", "/plant", "plant/", "a//b", "a/#/b", "a/b+", "a#", "a.b/c", "a/b c", "$SYS/x",
            "a/*", "a/>",
        ] {
            assert!(mqtt_subject(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn derived_subjects() {
        assert_eq!(step_subject("p", "a", "b"), "etl.p.a.out.b");
        assert_eq!(dead_letter_subject("p", "a", "b"), "etl.p.a.dlq.b");
        assert_eq!(report_subject("p", "a", "b", "dev"), "etl.p.a.report.b.dev");
        assert_eq!(replay_subject("p", "a", "b"), "etl.p.a.replay.b");
        assert_eq!(deliver_subject("p", "a", "b"), "etl.p.a.deliver.b");
        // `a-b` + `c` and `a` + `b-c` collide as names (`a-b-c`), never as subjects.
        assert_ne!(step_subject("p", "a-b", "c"), step_subject("p", "a", "b-c"));
    }

    #[test]
    fn wildcards_match_as_nats_does() {
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(!matches("a.b.c", "a.b"));
        assert!(matches("a.*.c", "a.b.c"));
        assert!(!matches("a.*", "a.b.c"));
        assert!(matches("a.>", "a.b.c"));
        assert!(!matches("a.>", "a"));
        assert!(matches(">", "a"));
        assert!(matches("etl.*.*.out.*", "etl.p.a.out.b"));
        assert!(is_wildcard("a.*") && is_wildcard("a.>") && !is_wildcard("a.b*"));
    }
}
