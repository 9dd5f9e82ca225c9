//! The NATS subjects the compiler derives for records between steps, dead letters, reports,
//! replays and JetStream deliveries, and how a NATS subscription matches a subject.
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

#[cfg(test)]
mod tests {
    use super::*;

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
