//! An environment's delivery settings: its `delivery`, field by field over the project's
//! `spec.delivery`, over the defaults ([`DeliverySettings::DEFAULT`]).
//!
//! The values here are the ones the compiler emits: counts as given, durations in nanoseconds
//! (the NATS server API's unit) and the redelivery waits in milliseconds (what the `in` harness
//! reads, `etl.in.redelivery-backoff`). A duration too long for the NATS API is reported by
//! `etl validate`; here it falls back to the default.

use crate::spec::model::{Delivery, DurationText, Guarantee};

/// The delivery settings of one environment, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// At least once (JetStream) or at most once (core NATS).
    pub guarantee: Guarantee,
    /// Deliveries of one message; the last one dead-letters what still fails.
    pub max_deliver: u32,
    /// How long a delivery may stay unacknowledged, in nanoseconds.
    pub ack_wait: i64,
    /// The wait before a redelivery after the n-th failed delivery, in milliseconds.
    pub backoff: Vec<u64>,
    /// Unacknowledged messages per consumer.
    pub max_ack_pending: u32,
    /// Stream limit: the oldest message's age, in nanoseconds (0: none).
    pub max_age: i64,
    /// Stream limit in bytes (-1: none).
    pub max_bytes: i64,
    /// `Nats-Msg-Id` de-duplication window, in nanoseconds.
    pub duplicate_window: i64,
}

const SECOND: i64 = 1_000_000_000;

impl DeliverySettings {
    /// What an environment gets when neither it nor the project says: at least once, 5
    /// deliveries, 30 s to acknowledge, waits of 1 s, 5 s, then 30 s, 1000 messages in flight
    /// per consumer, messages kept up to 24 h, no byte limit, a 2 min de-duplication window.
    pub const DEFAULT: DeliverySettings = DeliverySettings {
        guarantee: Guarantee::AtLeastOnce,
        max_deliver: 5,
        ack_wait: 30 * SECOND,
        backoff: Vec::new(),
        max_ack_pending: 1000,
        max_age: 24 * 3600 * SECOND,
        max_bytes: -1,
        duplicate_window: 120 * SECOND,
    };

    /// The default redelivery waits, in milliseconds.
    pub const DEFAULT_BACKOFF: [u64; 3] = [1000, 5000, 30_000];

    /// The settings of an environment whose `delivery` is `env`, in a project whose
    /// `spec.delivery` is `project`: each field the environment's, else the project's, else the
    /// default.
    pub fn of(project: Option<&Delivery>, env: Option<&Delivery>) -> DeliverySettings {
        let pick = |field: fn(&Delivery) -> Option<&DurationText>, default: i64| {
            [env, project]
                .into_iter()
                .flatten()
                .find_map(field)
                .and_then(DurationText::nanos)
                .unwrap_or(default)
        };
        let d = Self::DEFAULT;
        let first = |field: fn(&Delivery) -> Option<u32>| {
            [env, project].into_iter().flatten().find_map(field)
        };
        let backoff = [env, project]
            .into_iter()
            .flatten()
            .find_map(|d| d.backoff.as_ref())
            .and_then(|list| {
                list.iter()
                    .map(|t| t.nanos().map(|n| n.unsigned_abs() / 1_000_000))
                    .collect::<Option<Vec<u64>>>()
            })
            .unwrap_or_else(|| Self::DEFAULT_BACKOFF.to_vec());
        DeliverySettings {
            guarantee: [env, project]
                .into_iter()
                .flatten()
                .find_map(|d| d.guarantee)
                .unwrap_or(d.guarantee),
            max_deliver: first(|d| d.max_deliver.map(|n| n.get())).unwrap_or(d.max_deliver),
            ack_wait: pick(|d| d.ack_wait.as_ref(), d.ack_wait),
            backoff,
            max_ack_pending: first(|d| d.max_ack_pending.map(|n| n.get()))
                .unwrap_or(d.max_ack_pending),
            max_age: pick(|d| d.max_age.as_ref(), d.max_age),
            max_bytes: [env, project]
                .into_iter()
                .flatten()
                .find_map(|d| d.max_bytes)
                .unwrap_or(d.max_bytes),
            duplicate_window: pick(|d| d.duplicate_window.as_ref(), d.duplicate_window),
        }
    }

    /// Whether units fed over the pipeline's subjects read them through JetStream.
    pub fn at_least_once(&self) -> bool {
        self.guarantee == Guarantee::AtLeastOnce
    }

    /// `etl.in.redelivery-backoff`: the waits as a comma list of milliseconds.
    pub fn backoff_list(&self) -> String {
        let waits: Vec<String> = self.backoff.iter().map(u64::to_string).collect();
        waits.join(",")
    }
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings::of(None, None)
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn duration(text: &str) -> DurationText {
        DurationText::try_from(text.to_owned()).unwrap()
    }

    #[test]
    fn durations_in_nanoseconds() {
        assert_eq!(duration("0s").nanos(), Some(0));
        assert_eq!(duration("250ms").nanos(), Some(250_000_000));
        assert_eq!(duration("30s").nanos(), Some(30 * SECOND));
        assert_eq!(duration("2m").nanos(), Some(120 * SECOND));
        assert_eq!(duration("24h").nanos(), Some(86_400 * SECOND));
        // i64 nanoseconds end after about 292 years.
        assert_eq!(
            duration("2562047h").nanos(),
            Some(2_562_047 * 3600 * SECOND)
        );
        assert_eq!(duration("2562048h").nanos(), None);
        assert_eq!(duration("99999999999999999999ms").nanos(), None);
        for bad in ["", "1", "s", "1.5s", "-1s", "1 s", "1d", "1S", "1us"] {
            assert!(DurationText::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let d = DeliverySettings::default();
        assert!(d.at_least_once());
        assert_eq!(
            (d.max_deliver, d.ack_wait, d.max_ack_pending),
            (5, 30 * SECOND, 1000)
        );
        assert_eq!(d.backoff_list(), "1000,5000,30000");
        assert_eq!(
            (d.max_age, d.max_bytes, d.duplicate_window),
            (86_400 * SECOND, -1, 120 * SECOND)
        );
    }

    #[test]
    fn an_environment_overrides_the_project_field_by_field() {
        let project = Delivery {
            max_deliver: NonZeroU32::new(3),
            ack_wait: Some(duration("10s")),
            backoff: Some(vec![duration("100ms"), duration("2s")]),
            max_bytes: Some(1 << 20),
            ..Delivery::default()
        };
        let env = Delivery {
            guarantee: Some(Guarantee::AtMostOnce),
            ack_wait: Some(duration("1m")),
            ..Delivery::default()
        };
        let d = DeliverySettings::of(Some(&project), Some(&env));
        assert!(!d.at_least_once());
        assert_eq!(d.max_deliver, 3);
        assert_eq!(d.ack_wait, 60 * SECOND);
        assert_eq!(d.backoff_list(), "100,2000");
        assert_eq!(d.max_bytes, 1 << 20);
        assert_eq!(d.max_age, DeliverySettings::DEFAULT.max_age);
        // Without the environment's: the project's, then the defaults.
        let p = DeliverySettings::of(Some(&project), None);
        assert!(p.at_least_once());
        assert_eq!(p.ack_wait, 10 * SECOND);
    }
}
