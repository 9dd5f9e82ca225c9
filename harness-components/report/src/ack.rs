//! At-least-once delivery over NATS JetStream (docs/harness.md#delivery): what `in-messaging`
//! decides for a message a JetStream push consumer delivered, from the message's `reply-to` (the
//! JetStream ack subject) and its settings. The part publishes the answer itself to that
//! subject through `wasmcloud:messaging/consumer`; these are the rules, tested on the host.
//!
//! - [`delivered`]: the delivery count an ack subject carries, or `None` for any other
//!   `reply-to` (replay, core subscriptions, at-most-once mode: no acknowledgement at all);
//! - [`Redelivery`]: the settings [`MAX_DELIVER`] and [`REDELIVERY_BACKOFF`];
//! - [`Redelivery::settle`]: `+ACK`, `-NAK` with the backoff's delay, or, on the last delivery,
//!   dead-letter what still fails and `+ACK`;
//! - [`id_prefix`]: what the ids of the message's records start with when they have none.

use std::fmt;
use std::time::Duration;

/// Config key: the consumer's `max_deliver`, the deliveries of one message; the last one
/// dead-letters what still fails. Unset (or `-1`, unlimited as on NATS): no delivery is the last.
pub const MAX_DELIVER: &str = "etl.in.max-deliver";
/// Config key: the `-NAK` delay after each delivery, a comma list of milliseconds: the n-th
/// entry after the n-th delivery, the last one repeated. Unset or empty: no delay.
pub const REDELIVERY_BACKOFF: &str = "etl.in.redelivery-backoff";
/// Config key: the subject `in-messaging` publishes the last delivery's still-failing records
/// to, as dead letters.
pub const DEAD_LETTER: &str = "etl.in.dead-letter";
/// The header of a dead letter that carries its reason.
pub const ERROR_HEADER: &str = "etl-error";
/// The header of a dead letter of the last delivery: the delivery count, decimal.
pub const DELIVERIES_HEADER: &str = "etl-deliveries";
/// The prefix of a JetStream ack subject.
pub const ACK_PREFIX: &str = "$JS.ACK.";
/// The body that acknowledges a message.
pub const ACK: &[u8] = b"+ACK";

/// The delivery count of the message whose `reply-to` is `reply_to`, when that is a JetStream
/// ack subject:
///
/// - `$JS.ACK.<stream>.<consumer>.<delivered>.<stream-seq>.<consumer-seq>.<timestamp>.<pending>`
///   (9 tokens), or
/// - `$JS.ACK.<domain>.<account-hash>.<stream>.<consumer>.<delivered>.<stream-seq>.<consumer-seq>.<timestamp>.<pending>[.<token>…]`
///   (11 tokens or more, as the server allows).
///
/// Every number must be decimal, `delivered` at least 1, no token empty. Anything else: `None`,
/// the message is not acknowledged (as before JetStream).
pub fn delivered(reply_to: Option<&str>) -> Option<u64> {
    let (_, numbers) = ack_tokens(reply_to?)?;
    numbers[0].parse().ok().filter(|&n| n >= 1)
}

/// What the ids of the records of a message a JetStream consumer delivered start with, when
/// they have none of their own (docs/harness.md#record-ids): `<stream>:<stream-seq>`, from its
/// ack subject ([`delivered`] says which are), the same on every delivery of the message. With
/// `etl_harness_bindings::id::input`, record `i` gets `<stream>:<stream-seq>-<i>`.
pub fn id_prefix(reply_to: Option<&str>) -> Option<String> {
    delivered(reply_to)?;
    let (stream, numbers) = ack_tokens(reply_to?)?;
    let seq: u64 = numbers[1].parse().ok()?;
    Some(format!("{stream}:{seq}"))
}

/// The stream and the five numbers (delivered, stream sequence, consumer sequence, timestamp,
/// pending) of an ack subject, each number at most 20 decimal digits.
fn ack_tokens(reply_to: &str) -> Option<(&str, Vec<&str>)> {
    let subject = reply_to.strip_prefix(ACK_PREFIX)?;
    let tokens: Vec<&str> = subject.split('.').collect();
    if tokens.iter().any(|t| t.is_empty()) {
        return None;
    }
    let (stream, numbers) = match tokens.len() {
        7 => (tokens[0], &tokens[2..7]),
        // nats-server reads the 11 tokens it needs and allows more after them: so does this.
        n if n >= 9 => (tokens[2], &tokens[4..9]),
        _ => return None,
    };
    if !numbers
        .iter()
        .all(|t| t.len() <= 20 && t.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some((stream, numbers.to_vec()))
}

/// A redelivery setting that is not what it may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingError {
    /// [`MAX_DELIVER`], as it is set.
    MaxDeliver(String),
    /// [`REDELIVERY_BACKOFF`], as it is set.
    Backoff(String),
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingError::MaxDeliver(v) => write!(
                f,
                "config `{MAX_DELIVER}` is not a positive number of deliveries (or -1): `{v}`"
            ),
            SettingError::Backoff(v) => write!(
                f,
                "config `{REDELIVERY_BACKOFF}` is not a comma list of whole numbers of \
                 milliseconds: `{v}`"
            ),
        }
    }
}

/// The redelivery settings of a JetStream-fed unit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Redelivery {
    /// Deliveries of one message; `None`: unlimited (no delivery is the last).
    pub max_deliver: Option<u64>,
    /// The `-NAK` delay after the n-th delivery is entry n (1-based), the last one repeated.
    pub backoff: Vec<Duration>,
}

/// What to answer a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Everything was delivered: `+ACK`.
    Ack,
    /// Something still fails and this is not the last delivery: `-NAK`, to be redelivered
    /// after the delay.
    Nak(Duration),
    /// Something still fails and this is the last delivery: dead-letter each still-failing
    /// record, deliver the others, then `+ACK` (`-NAK` if the dead letters cannot be published).
    DeadLetter,
}

impl Redelivery {
    /// From the values of [`MAX_DELIVER`] and [`REDELIVERY_BACKOFF`]: unset or blank are the
    /// defaults (unlimited, no delay).
    pub fn from_settings(
        max_deliver: Option<&str>,
        backoff: Option<&str>,
    ) -> Result<Redelivery, SettingError> {
        let max_deliver = match max_deliver.map(str::trim) {
            None | Some("") | Some("-1") => None,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n >= 1 => Some(n),
                _ => return Err(SettingError::MaxDeliver(v.to_owned())),
            },
        };
        let backoff = backoff
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| t.parse::<u64>().map(Duration::from_millis))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| SettingError::Backoff(backoff.unwrap_or_default().trim().to_owned()))?;
        Ok(Redelivery {
            max_deliver,
            backoff,
        })
    }

    /// Whether delivery `delivered` (1 for the first) is the last one the consumer makes.
    pub fn is_last(&self, delivered: u64) -> bool {
        self.max_deliver.is_some_and(|max| delivered >= max)
    }

    /// The wait before the delivery after delivery `delivered`: entry `delivered` of the
    /// backoff (1-based), the last entry after it runs out, zero without one.
    pub fn delay(&self, delivered: u64) -> Duration {
        let n = usize::try_from(delivered.max(1) - 1).unwrap_or(usize::MAX);
        self.backoff
            .get(n)
            .or(self.backoff.last())
            .copied()
            .unwrap_or_default()
    }

    /// The answer to delivery `delivered`, whether something of it still fails (a record
    /// still `transient`, or a failed delivery).
    pub fn settle(&self, delivered: u64, failing: bool) -> Settle {
        if !failing {
            Settle::Ack
        } else if self.is_last(delivered) {
            Settle::DeadLetter
        } else {
            Settle::Nak(self.delay(delivered))
        }
    }
}

/// The body of a `-NAK` that asks for redelivery after `delay`: `-NAK {"delay":<nanoseconds>}`,
/// or `-NAK` alone for none (at once).
pub fn nak(delay: Duration) -> Vec<u8> {
    if delay.is_zero() {
        return b"-NAK".to_vec();
    }
    let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
    format!("-NAK {{\"delay\":{nanos}}}").into_bytes()
}

/// The `etl-error` of a record dead-lettered on the last delivery because its transform still
/// answered `transient`.
pub fn transient_reason(reason: &str) -> String {
    format!("transient: {reason}")
}

/// The `etl-error` of a record dead-lettered on the last delivery because the batch's delivery
/// failed.
pub fn delivery_reason(error: &str) -> String {
    format!("delivery: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_delivery_count_comes_from_both_forms_of_ack_subject() {
        let old = "$JS.ACK.ETL_DATA_p_q.parse.3.1042.17.1796650000123456789.5";
        assert_eq!(delivered(Some(old)), Some(3));
        let new = "$JS.ACK._.ACCHASH.ETL_DATA_p_q.parse.2.1042.17.1796650000123456789.0";
        assert_eq!(delivered(Some(new)), Some(2));
        let token = "$JS.ACK.hub.ACCHASH.ETL_DATA_p_q.parse.1.1.1.1796650000123456789.0.xyz";
        assert_eq!(delivered(Some(token)), Some(1));
        // Tokens after the eleventh are the server's to add: read past, as it does.
        let more = "$JS.ACK.hub.ACCHASH.ETL_DATA_p_q.parse.4.1.1.1796650000123456789.0.xyz.w";
        assert_eq!(delivered(Some(more)), Some(4));
    }

    #[test]
    fn an_id_prefix_is_the_stream_and_its_sequence_the_same_on_every_delivery() {
        let first = "$JS.ACK.ETL_DATA_p_q.parse.1.1042.17.1796650000123456789.5";
        let third = "$JS.ACK.ETL_DATA_p_q.parse.3.1042.19.1796650009999999999.0";
        assert_eq!(id_prefix(Some(first)).as_deref(), Some("ETL_DATA_p_q:1042"));
        assert_eq!(id_prefix(Some(third)), id_prefix(Some(first)));
        let new = "$JS.ACK._.ACCHASH.ETL_DATA_p_q.parse.2.1042.17.1796650000123456789.0.tok";
        assert_eq!(id_prefix(Some(new)).as_deref(), Some("ETL_DATA_p_q:1042"));
        // Leading zeros are not part of the sequence.
        let padded = "$JS.ACK.S.C.1.007.1.1.0";
        assert_eq!(id_prefix(Some(padded)).as_deref(), Some("S:7"));
        for other in [
            None,
            Some("_INBOX.abc"),
            Some("$JS.ACK.S.C.0.1.1.1.0"),
            Some("$JS.ACK.S.C.1.x.1.1.0"),
            Some("$JS.ACK.S.C.1.99999999999999999999.1.1.0"),
        ] {
            assert_eq!(id_prefix(other), None, "{other:?}");
        }
    }

    #[test]
    fn any_other_reply_to_is_not_acknowledged() {
        for other in [
            None,
            Some(""),
            Some("_INBOX.abc.def"),
            Some("etl.p.q.replay.parse"),
            // Not the prefix exactly.
            Some("$JS.API.CONSUMER.INFO.S.C"),
            Some("$js.ack.S.C.1.1.1.1.0"),
            // 8 and 10 tokens.
            Some("$JS.ACK.S.C.1.1.1.1"),
            Some("$JS.ACK.d.h.S.C.1.1.1.1"),
            // A number that is not one, an empty token, delivery 0.
            Some("$JS.ACK.S.C.x.1.1.1.0"),
            Some("$JS.ACK.S.C.1.1.-1.1.0"),
            Some("$JS.ACK.S..1.1.1.1.0"),
            Some("$JS.ACK.S.C.0.1.1.1.0"),
            Some("$JS.ACK.S.C.99999999999999999999999.1.1.1.0"),
        ] {
            assert_eq!(delivered(other), None, "{other:?}");
        }
    }

    #[test]
    fn settings_default_to_unlimited_deliveries_without_delay() {
        let r = Redelivery::from_settings(None, Some(" ")).unwrap();
        assert_eq!(r, Redelivery::default());
        assert!(!r.is_last(1_000_000));
        assert_eq!(r.delay(1), Duration::ZERO);
        assert_eq!(
            Redelivery::from_settings(Some("-1"), None)
                .unwrap()
                .max_deliver,
            None
        );
    }

    #[test]
    fn settings_that_are_not_numbers_are_errors() {
        for bad in ["0", "x", "1.5", "-2"] {
            assert_eq!(
                Redelivery::from_settings(Some(bad), None),
                Err(SettingError::MaxDeliver(bad.to_owned()))
            );
        }
        let e = Redelivery::from_settings(Some("5"), Some(" 1000, 5s ")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config `etl.in.redelivery-backoff` is not a comma list of whole numbers of \
             milliseconds: `1000, 5s`"
        );
        assert_eq!(
            SettingError::MaxDeliver("0".to_owned()).to_string(),
            "config `etl.in.max-deliver` is not a positive number of deliveries (or -1): `0`"
        );
    }

    #[test]
    fn the_nth_backoff_entry_follows_the_nth_delivery_and_the_last_repeats() {
        let r = Redelivery::from_settings(Some("5"), Some("1000, 5000,,30000")).unwrap();
        assert_eq!(r.backoff, [ms(1000), ms(5000), ms(30000)]);
        let delays: Vec<Duration> = (1..=6).map(|n| r.delay(n)).collect();
        assert_eq!(
            delays,
            [
                ms(1000),
                ms(5000),
                ms(30000),
                ms(30000),
                ms(30000),
                ms(30000)
            ]
        );
        // A count of 0 never comes from an ack subject; it reads as the first.
        assert_eq!(r.delay(0), ms(1000));
        assert_eq!(r.delay(u64::MAX), ms(30000));
    }

    #[test]
    fn the_last_delivery_dead_letters_what_still_fails() {
        let r = Redelivery::from_settings(Some("3"), Some("10,20")).unwrap();
        assert_eq!(r.settle(1, false), Settle::Ack);
        assert_eq!(r.settle(1, true), Settle::Nak(ms(10)));
        assert_eq!(r.settle(2, true), Settle::Nak(ms(20)));
        assert_eq!(r.settle(3, true), Settle::DeadLetter);
        assert_eq!(r.settle(3, false), Settle::Ack);
        // Delivered more often than it may be (the setting was lowered meanwhile): the last.
        assert_eq!(r.settle(7, true), Settle::DeadLetter);
        // One delivery only: the first is the last.
        let once = Redelivery::from_settings(Some("1"), None).unwrap();
        assert_eq!(once.settle(1, true), Settle::DeadLetter);
        // Unlimited: never the last.
        let unlimited = Redelivery::from_settings(None, Some("5")).unwrap();
        assert_eq!(unlimited.settle(1000, true), Settle::Nak(ms(5)));
    }

    #[test]
    fn a_nak_carries_its_delay_in_nanoseconds() {
        assert_eq!(nak(ms(1500)), b"-NAK {\"delay\":1500000000}");
        assert_eq!(nak(Duration::ZERO), b"-NAK");
        assert_eq!(nak(Duration::from_nanos(1)), b"-NAK {\"delay\":1}");
    }

    #[test]
    fn dead_letter_reasons_have_their_class() {
        assert_eq!(transient_reason("busy"), "transient: busy");
        assert_eq!(crate::reason_class(&transient_reason("busy")), "transient");
        assert_eq!(delivery_reason("x: y"), "delivery: x: y");
        assert_eq!(crate::reason_class(&delivery_reason("x: y")), "delivery");
    }
}
