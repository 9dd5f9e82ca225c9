//! What every harness part shares, as macros that expand in the part's own crate (each part
//! gets its own generated types, so a shared function could not take them):
//!
//! - [`generate!`]: the part's bindings, from the one list of WIT packages `etl:platform`
//!   refers to;
//! - [`config_error_text!`]: how a `wasi:config/runtime` error reads in the part's messages;
//! - [`SECRETS`] and [`names`]: the unit's secret setting names, as the deployment lists them;
//! - [`BATCH`], [`BATCH_BYTES`] and [`pack`]: how an `out` part packs a batch into messages,
//!   requests or objects.
//! - [`id`]: records' stable ids, how they are derived and how they travel from the `in` part
//!   to the `out` part of a step.
//!
//! The calling crate depends on `wit-bindgen` itself, and sits beside this one
//! (`harness-components/<part>/`), so that the relative WIT paths below hold for it.
#![no_std]

extern crate alloc;

pub mod id;

use alloc::vec::Vec;
use core::ops::Range;

/// Config key: how an `out` part sends a batch (`none`: one message, request or object per
/// record; otherwise the part's batch format).
pub const BATCH: &str = "etl.out.batch";
/// Config key: the largest message body, request body or object (bytes) an `out` part packs a
/// batch into.
pub const BATCH_BYTES: &str = "etl.out.batch-bytes";

/// Splits items of the given sizes (bytes), in order, into runs of consecutive items whose
/// sizes plus `overhead` per run stay within `max`; an item too large for that travels alone.
/// No run is empty.
pub fn pack(
    sizes: impl IntoIterator<Item = usize>,
    overhead: usize,
    max: usize,
) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let (mut start, mut bytes, mut end) = (0, overhead, 0);
    for size in sizes {
        if end > start && bytes.saturating_add(size) > max {
            runs.push(start..end);
            start = end;
            bytes = overhead;
        }
        bytes = bytes.saturating_add(size);
        end += 1;
    }
    if end > start {
        runs.push(start..end);
    }
    runs
}

/// `payload` as one line of NDJSON: as it is, or, if it holds a line break, with its line
/// breaks made spaces when `is_json` says it is a JSON document (in which they can only be
/// whitespace between tokens). `Err` says why it cannot be one line.
pub fn ndjson_line(
    payload: &[u8],
    is_json: impl FnOnce(&[u8]) -> bool,
) -> Result<alloc::borrow::Cow<'_, [u8]>, &'static str> {
    if !payload.iter().any(|b| matches!(b, b'\n' | b'\r')) {
        return Ok(payload.into());
    }
    if !is_json(payload) {
        return Err("its payload holds a line break and is not JSON");
    }
    Ok(payload
        .iter()
        .map(|b| if matches!(b, b'\n' | b'\r') { b' ' } else { *b })
        .collect::<Vec<u8>>()
        .into())
}

/// The value of the mode setting `key` (`etl.in.batch`, `etl.out.batch`): `modes[0]` (the
/// default) when unset or empty, else the one of `modes` it names. `Err` says what it is and
/// what it may be.
pub fn mode<'a>(
    key: &str,
    setting: Option<&str>,
    modes: &[&'a str],
) -> Result<&'a str, alloc::string::String> {
    let value = setting.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Ok(modes[0]);
    }
    modes.iter().find(|m| **m == value).copied().ok_or_else(|| {
        let names: Vec<alloc::string::String> =
            modes.iter().map(|m| alloc::format!("`{m}`")).collect();
        alloc::format!("config `{key}` is `{value}`, not {}", names.join(" or "))
    })
}

/// The value of [`BATCH_BYTES`]: `default` when unset, else a positive whole number of bytes.
pub fn batch_bytes(setting: Option<&str>, default: usize) -> Result<usize, alloc::string::String> {
    match setting.map(str::trim) {
        None | Some("") => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(alloc::format!(
                "config `{BATCH_BYTES}` is not a positive number of bytes: `{text}`"
            )),
        },
    }
}

/// Config key: the subjects whose messages are a device's bytes rather than envelopes (an `mqtt`
/// source's), a comma list of NATS subject patterns: `in-messaging` reads such a message as one
/// record, the body its payload.
pub const RAW_SUBJECTS: &str = "etl.in.raw-subjects";

/// Whether a message published to `subject` is one a subscription to `pattern` receives, by NATS
/// rules: tokens are separated by `.`, `*` stands for one token and a final `>` for one or more.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
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

/// Config key: how an `out` part (and `in-messaging`'s own dead letters) confirm a publish:
/// `jetstream`, each message is a request answered by the JetStream stream that captures its
/// subject (a PubAck), checked with [`pub_ack`]; unset or empty, a plain publish.
pub const CONFIRM: &str = "etl.out.confirm";
/// Config key: how long a confirmed publish waits for its PubAck, in milliseconds.
pub const CONFIRM_TIMEOUT: &str = "etl.out.confirm-timeout";
/// [`CONFIRM_TIMEOUT`] when unset.
pub const DEFAULT_CONFIRM_TIMEOUT_MS: u32 = 5000;

/// How a publish is confirmed: the values of [`CONFIRM`] and [`CONFIRM_TIMEOUT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// A plain publish: sent is done.
    None,
    /// A request whose reply must be a JetStream PubAck, within `timeout_ms`.
    JetStream {
        /// How long the request waits, in milliseconds.
        timeout_ms: u32,
    },
}

impl Confirm {
    /// From the values of [`CONFIRM`] (unset or empty: [`Confirm::None`]; `jetstream`) and
    /// [`CONFIRM_TIMEOUT`] (unset: [`DEFAULT_CONFIRM_TIMEOUT_MS`]; else a positive whole
    /// number). `Err` says which key is wrong and how.
    pub fn from_settings(
        confirm: Option<&str>,
        timeout: Option<&str>,
    ) -> Result<Confirm, alloc::string::String> {
        match confirm.map(str::trim).unwrap_or_default() {
            "" => return Ok(Confirm::None),
            "jetstream" => {}
            other => {
                return Err(alloc::format!(
                    "config `{CONFIRM}` is `{other}`, not `jetstream` (or unset)"
                ));
            }
        }
        let timeout_ms = match timeout.map(str::trim) {
            None | Some("") => DEFAULT_CONFIRM_TIMEOUT_MS,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(alloc::format!(
                        "config `{CONFIRM_TIMEOUT}` is not a positive number of milliseconds: \
                         `{text}`"
                    ));
                }
            },
        };
        Ok(Confirm::JetStream { timeout_ms })
    }
}

/// Whether `reply`, the answer to a confirmed publish, is a JetStream PubAck
/// (`{"stream":"…","seq":…}`, perhaps with `duplicate` and `domain`): `Err` says what it is
/// instead: the stream's error (`{"error":{"code":…,"description":"…"}}`, its description), or
/// not a PubAck at all (a core subscriber answered: the message is in no stream). A minimal
/// reading of the reply's top-level JSON members, without a JSON library in every part.
pub fn pub_ack(reply: &[u8]) -> Result<(), alloc::string::String> {
    let shown = || {
        let text = alloc::string::String::from_utf8_lossy(reply);
        let mut text: alloc::string::String = text.chars().take(200).collect();
        if reply.len() > text.len() {
            text.push('…');
        }
        text
    };
    let Some(members) = json::members(reply) else {
        return Err(alloc::format!(
            "the reply is not a JetStream acknowledgement: `{}`",
            shown()
        ));
    };
    if let Some((_, error)) = members.iter().find(|(k, _)| k == "error") {
        let description = json::members(error).and_then(|inner| {
            let (_, d) = inner.into_iter().find(|(k, _)| k == "description")?;
            json::string(d)
        });
        let text = description
            .unwrap_or_else(|| alloc::string::String::from_utf8_lossy(error).into_owned());
        return Err(alloc::format!("the stream refused it: {text}"));
    }
    if !members.iter().any(|(k, _)| k == "stream") {
        return Err(alloc::format!(
            "the reply is not a JetStream acknowledgement: `{}`",
            shown()
        ));
    }
    Ok(())
}

/// Just enough JSON to read a PubAck's top-level members.
mod json {
    use alloc::string::String;
    use alloc::vec::Vec;

    /// The members of a JSON object, each key (unescaped) with its value's exact text; `None`
    /// when `text` is not one object.
    pub fn members(text: &[u8]) -> Option<Vec<(String, &[u8])>> {
        let mut p = Parser { s: text, i: 0 };
        p.ws();
        p.eat(b'{')?;
        let mut out = Vec::new();
        p.ws();
        if p.peek() == Some(b'}') {
            p.i += 1;
        } else {
            loop {
                p.ws();
                let key = p.string()?;
                p.ws();
                p.eat(b':')?;
                p.ws();
                let start = p.i;
                p.value()?;
                out.push((key, &text[start..p.i]));
                p.ws();
                match p.next()? {
                    b',' => {}
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        p.ws();
        (p.i == text.len()).then_some(out)
    }

    /// The value of a JSON string's text; `None` if it is not one string.
    pub fn string(text: &[u8]) -> Option<String> {
        let mut p = Parser { s: text, i: 0 };
        p.ws();
        let s = p.string()?;
        p.ws();
        (p.i == text.len()).then_some(s)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn peek(&self) -> Option<u8> {
            self.s.get(self.i).copied()
        }

        fn next(&mut self) -> Option<u8> {
            let b = self.peek()?;
            self.i += 1;
            Some(b)
        }

        fn eat(&mut self, b: u8) -> Option<()> {
            (self.next()? == b).then_some(())
        }

        fn ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.i += 1;
            }
        }

        /// A string, unescaped (a `\u` escape that is no scalar value becomes U+FFFD).
        fn string(&mut self) -> Option<String> {
            self.eat(b'"')?;
            let mut bytes = Vec::new();
            loop {
                match self.next()? {
                    b'"' => return String::from_utf8(bytes).ok(),
                    b'\\' => {
                        let c = match self.next()? {
                            b'"' => '"',
                            b'\\' => '\\',
                            b'/' => '/',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            b'u' => {
                                let hex = self.s.get(self.i..self.i + 4)?;
                                self.i += 4;
                                let hex = core::str::from_utf8(hex).ok()?;
                                let n = u32::from_str_radix(hex, 16).ok()?;
                                char::from_u32(n).unwrap_or('\u{fffd}')
                            }
                            _ => return None,
                        };
                        let mut buf = [0; 4];
                        bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    b if b < 0x20 => return None,
                    b => bytes.push(b),
                }
            }
        }

        /// Skips one value: a string, an object or array (balanced), or a scalar.
        fn value(&mut self) -> Option<()> {
            match self.peek()? {
                b'"' => self.string().map(drop),
                b'{' | b'[' => {
                    let mut depth = 0usize;
                    loop {
                        match self.peek()? {
                            b'"' => {
                                self.string()?;
                                continue;
                            }
                            b'{' | b'[' => depth += 1,
                            b'}' | b']' => {
                                depth -= 1;
                                if depth == 0 {
                                    self.i += 1;
                                    return Some(());
                                }
                            }
                            _ => {}
                        }
                        self.i += 1;
                    }
                }
                _ => {
                    let start = self.i;
                    while self.peek().is_some_and(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')
                    }) {
                        self.i += 1;
                    }
                    (self.i > start).then_some(())
                }
            }
        }
    }
}

/// Defines `publish_to(subject: &str, body: Vec<u8>, confirm: Confirm) -> Result<(), String>`
/// in the calling part, on the `wasmcloud:messaging/consumer@0.2.0` bindings [`generate!`]
/// made there: a plain `publish` ([`Confirm::None`]), or a `request` whose reply must be a
/// JetStream PubAck ([`pub_ack`]). `Err` is the host's error (a timeout, no responders) or
/// what the reply was instead.
#[macro_export]
macro_rules! publish_to {
    () => {
        /// Publishes `body` to `subject`, confirmed as `confirm` says.
        fn publish_to(
            subject: &str,
            body: Vec<u8>,
            confirm: $crate::Confirm,
        ) -> Result<(), String> {
            match confirm {
                $crate::Confirm::None => wasmcloud::messaging::consumer::publish(
                    &wasmcloud::messaging::types::BrokerMessage {
                        subject: subject.to_string(),
                        body,
                        reply_to: None,
                    },
                ),
                $crate::Confirm::JetStream { timeout_ms } => {
                    let reply = wasmcloud::messaging::consumer::request(subject, &body, timeout_ms)
                        .map_err(|e| format!("no JetStream acknowledgement: {e}"))?;
                    $crate::pub_ack(&reply.body)
                }
            }
        }
    };
}

/// Config key: the unit's secret setting names (`authorization`, `header.X-Api-Key`,
/// `step.token`, …), a comma list, written by the deployment. Names only: the values come from
/// the host's secrets (wasmCloud 1.x) or its config store (v2), never from this key.
pub const SECRETS: &str = "etl.secrets";

/// The names of a comma list (e.g. the value of [`SECRETS`]): split on `,`, each trimmed, empty
/// ones left out.
pub fn names(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|n| !n.is_empty())
}

/// Generates the bindings of a world of `etl:platform` (e.g. `"etl:platform/out-http"`) in the
/// calling crate, with every package it refers to, in dependency order (../wit/deps/README.md),
/// and `generate_all`: the worlds use other packages' interfaces (`etl:pipeline`, `wasi:…`).
///
/// `generate!(v2 "etl:platform-v2/settings")`: a world of `../wit/etl-platform-v2`, with
/// `wasi:config@0.2.0-rc.1` too. With two versions of `wasi:config`, the modules of both carry
/// the version (`wasi::config0_2_0_rc_1`, `wasi::config0_2_0_draft`), which is why the other
/// parts are generated without it.
#[macro_export]
macro_rules! generate {
    // `generate!(messaging_0_3 "etl:platform-msg-id/msg-id")`: the `msg-id` part alone sees
    // `wasmcloud:messaging@0.3.0` (its own package, as `v2` below and for the same reason).
    (messaging_0_3 $world:tt) => {
        $crate::generate!(@with $world [
            "../../wit/deps/wasmcloud-messaging-0.3.0",
            "../../wit/etl-platform-msg-id",
        ]);
    };
    (v2 $world:tt) => {
        $crate::generate!(@with $world [
            "../../wit/deps/wasi-config-0.2.0-rc.1",
            "../../wit/etl-platform-v2",
        ]);
    };
    ($world:tt) => {
        $crate::generate!(@with $world []);
    };
    (@with $world:tt [$($more:literal,)*]) => {
        wit_bindgen::generate!({
            path: [
                "../../wit/deps/wasi-io-0.2.12",
                "../../wit/deps/wasi-clocks-0.2.12",
                "../../wit/deps/wasi-random-0.2.12",
                "../../wit/deps/wasi-filesystem-0.2.12",
                "../../wit/deps/wasi-sockets-0.2.12",
                "../../wit/deps/wasi-cli-0.2.12",
                "../../wit/deps/wasi-http-0.2.12",
                "../../wit/deps/wasi-config-0.2.0-draft",
                "../../wit/deps/wasmcloud-messaging-0.2.0",
                "../../wit/deps/wasi-io-0.2.6",
                "../../wit/deps/wasi-blobstore-0.2.0-draft",
                "../../wit/deps/wasmcloud-secrets-0.1.0-draft",
                "../../wit/etl-pipeline",
                "../../wit/etl-platform",
                $($more,)*
            ],
            world: $world,
            generate_all,
        });
    };
}

/// Defines `config_error_text(&ConfigError) -> String` in the calling crate, for the
/// `wasi:config/runtime` bindings [`generate!`] made there: `upstream: …` or `i/o: …`.
#[macro_export]
macro_rules! config_error_text {
    () => {
        /// How a `wasi:config/runtime` error reads in this part's messages.
        fn config_error_text(error: &wasi::config::runtime::ConfigError) -> String {
            match error {
                wasi::config::runtime::ConfigError::Upstream(t) => format!("upstream: {t}"),
                wasi::config::runtime::ConfigError::Io(t) => format!("i/o: {t}"),
            }
        }
    };
}

/// Defines, in `settings` and `settings-v2`, `PREFIX` (the namespace of the step's own settings
/// in the runtime configuration, `step.`) and `visible(all)`: the step's own settings among all
/// of them, the `step.` keys with the prefix stripped, sorted by key (and value, for a key given
/// twice).
#[macro_export]
macro_rules! step_settings {
    () => {
        /// The namespace of the step's own settings in the runtime configuration.
        const PREFIX: &str = "step.";

        /// The step's own settings among all of them: the `step.` keys with the prefix stripped,
        /// sorted by key (and value, for a key given twice).
        fn visible(all: Vec<(String, String)>) -> Vec<(String, String)> {
            let mut visible: Vec<(String, String)> = all
                .into_iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(PREFIX)?.to_string(), v)))
                .collect();
            visible.sort();
            visible
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_patterns_as_nats_does() {
        assert!(subject_matches(
            "plant.*.telemetry",
            "plant.line-1.telemetry"
        ));
        assert!(!subject_matches("plant.*.telemetry", "plant.line-1.status"));
        assert!(!subject_matches("plant.*", "plant.a.b"));
        assert!(subject_matches("plant.>", "plant.a.b"));
        assert!(!subject_matches("plant.>", "plant"));
        assert!(subject_matches("a.b", "a.b") && !subject_matches("a.b", "a.b.c"));
    }
    use alloc::vec;

    #[test]
    fn a_batch_is_packed_in_order_within_the_limit() {
        assert_eq!(pack([4, 4, 4, 4], 2, 10), vec![0..2, 2..4]);
        assert_eq!(pack([4, 4, 4, 4], 0, 100), vec![0..4]);
        // A record larger than the limit travels alone; nothing is ever dropped.
        assert_eq!(pack([3, 50, 3], 1, 10), vec![0..1, 1..2, 2..3]);
        assert!(pack([], 1, 10).is_empty());
    }

    #[test]
    fn an_ndjson_line_has_no_line_break() {
        assert_eq!(
            &*ndjson_line(b"{\"a\":1}", |_| false).unwrap(),
            b"{\"a\":1}"
        );
        assert_eq!(
            &*ndjson_line(b"{\n\"a\":1\r\n}", |_| true).unwrap(),
            b"{ \"a\":1  }"
        );
        assert!(ndjson_line(b"two\nlines", |_| false).is_err());
    }

    #[test]
    fn a_mode_is_one_of_its_values_the_first_by_default() {
        let modes = ["none", "ndjson", "json-array"];
        assert_eq!(mode(BATCH, None, &modes), Ok("none"));
        assert_eq!(mode(BATCH, Some(" "), &modes), Ok("none"));
        assert_eq!(mode(BATCH, Some(" json-array "), &modes), Ok("json-array"));
        assert_eq!(
            mode(BATCH, Some("NDJSON"), &modes).unwrap_err(),
            "config `etl.out.batch` is `NDJSON`, not `none` or `ndjson` or `json-array`"
        );
    }

    #[test]
    fn batch_bytes_is_a_positive_number() {
        assert_eq!(batch_bytes(None, 7), Ok(7));
        assert_eq!(batch_bytes(Some(" 1024 "), 7), Ok(1024));
        assert!(batch_bytes(Some("0"), 7).is_err());
        assert!(batch_bytes(Some("1k"), 7).is_err());
    }

    #[test]
    fn confirm_is_jetstream_or_nothing() {
        assert_eq!(Confirm::from_settings(None, Some("x")), Ok(Confirm::None));
        assert_eq!(Confirm::from_settings(Some(" "), None), Ok(Confirm::None));
        assert_eq!(
            Confirm::from_settings(Some("jetstream"), None),
            Ok(Confirm::JetStream { timeout_ms: 5000 })
        );
        assert_eq!(
            Confirm::from_settings(Some(" jetstream "), Some(" 250 ")),
            Ok(Confirm::JetStream { timeout_ms: 250 })
        );
        assert_eq!(
            Confirm::from_settings(Some("core"), None).unwrap_err(),
            "config `etl.out.confirm` is `core`, not `jetstream` (or unset)"
        );
        assert_eq!(
            Confirm::from_settings(Some("jetstream"), Some("0")).unwrap_err(),
            "config `etl.out.confirm-timeout` is not a positive number of milliseconds: `0`"
        );
    }

    #[test]
    fn a_pub_ack_names_its_stream_and_has_no_error() {
        assert_eq!(pub_ack(br#"{"stream":"ETL_DATA_p_q","seq":42}"#), Ok(()));
        assert_eq!(
            pub_ack(b" {\"stream\" : \"S\", \"domain\":\"hub\", \"seq\":1, \"duplicate\":true} "),
            Ok(())
        );
        assert_eq!(
            pub_ack(
                br#"{"error":{"code":503,"err_code":10077,"description":"maximum bytes exceeded"},"stream":"S","seq":0}"#
            )
            .unwrap_err(),
            "the stream refused it: maximum bytes exceeded"
        );
        assert_eq!(
            pub_ack(br#"{"error":"nope \"x\""}"#).unwrap_err(),
            "the stream refused it: \"nope \\\"x\\\"\""
        );
        for not_ack in [
            &b""[..],
            b"+OK",
            b"{}",
            br#"{"seq":1}"#,
            br#"{"stream":"S","seq":1"#,
            br#"{"stream":"S"} x"#,
            br#"["stream"]"#,
        ] {
            let e = pub_ack(not_ack).unwrap_err();
            assert!(
                e.starts_with("the reply is not a JetStream acknowledgement"),
                "{e}"
            );
        }
        // Nested values, escapes and strings holding brackets are skipped whole.
        assert_eq!(
            pub_ack(br#"{"a":[1,{"b":"}]"}],"k\u0065y":"\"","stream":"S","seq":-1.5e3}"#),
            Ok(())
        );
    }
}
