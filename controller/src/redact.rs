//! What a dead letter may show: values of secret-looking JSON keys and record headers replaced
//! by `"[redacted]"`, at most a preview's length of the payload, and the reason, key and
//! headers cut short and redacted too. A JSON payload (up to [`PARSE_LIMIT`]) is parsed and its
//! secret-looking keys' values replaced at any depth; anything else — text, JSON cut short,
//! JSON nested too deep to parse, payloads too large to parse for a preview — is redacted by
//! pattern ([`text`]), best effort, and never shown raw.

use std::sync::LazyLock;

use regex::Regex;

/// What replaces a secret value.
pub const REDACTED: &str = "[redacted]";
/// The largest payload parsed as JSON for a preview; a larger one is cut to the preview's
/// length first, then redacted by pattern.
pub const PARSE_LIMIT: usize = 64 * 1024;
/// The longest reason shown, in bytes.
pub const MAX_REASON: usize = 1024;
/// The longest key shown, in bytes.
pub const MAX_KEY: usize = 256;
/// The most headers shown.
pub const MAX_HEADERS: usize = 64;
/// The longest header name shown, in bytes.
pub const MAX_HEADER_NAME: usize = 256;
/// The longest header value shown, in bytes.
pub const MAX_HEADER_VALUE: usize = 1024;

/// Parts of names that look secret, lowercase.
const SECRET_PARTS: [&str; 11] = [
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "api-key",
    "api_key",
    "apikey",
    "cookie",
    "credential",
    "private",
];

/// Whether a JSON key's or header's name looks secret (case-insensitive).
pub fn secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARTS.iter().any(|part| name.contains(part))
}

/// The patterns [`text`] replaces, each with what replaces it: a JSON-like member of a
/// secret-looking key (`"password" : "…"`, the value's closing quote optional as in text cut
/// short, or a bare value), a `key=value` of one (value up to `&` or white space, or quoted),
/// and the credential of an `Authorization`-like `Bearer …`/`Basic …`.
static PATTERNS: LazyLock<[(Regex, &'static str); 3]> = LazyLock::new(|| {
    let parts = SECRET_PARTS.join("|");
    let pattern = |p: &str| Regex::new(p).expect("a valid pattern");
    [
        (
            pattern(&format!(
                r#"(?is)("[^"\\]*(?:{parts})[^"\\]*"\s*:\s*)(?:"(?:[^"\\]|\\.)*(?:"|\\?\z)|[^\s,}}\]]+)"#
            )),
            r#"${1}"[redacted]""#,
        ),
        (
            pattern(&format!(
                r#"(?i)([\w.\-]*(?:{parts})[\w.\-]*\s*=\s*)(?:"(?:[^"\\]|\\.)*"?|'[^']*'?|[^&\s]*)"#
            )),
            "${1}[redacted]",
        ),
        (
            pattern(r"(?i)\b(bearer|basic)\s+[\w\-.~+/]+=*"),
            "${1} [redacted]",
        ),
    ]
});

/// `text` with the values of secret-looking keys in it replaced by [`REDACTED`], by pattern:
/// for what is not JSON (or not whole JSON). Best effort: it finds `"key": value` members,
/// `key=value` pairs and `Bearer`/`Basic` credentials, not every way to write a secret.
pub fn text(text: &str) -> String {
    let mut out = std::borrow::Cow::Borrowed(text);
    for (pattern, with) in PATTERNS.iter() {
        if let std::borrow::Cow::Owned(replaced) = pattern.replace_all(&out, *with) {
            out = std::borrow::Cow::Owned(replaced);
        }
    }
    out.into_owned()
}

/// At most `max` bytes of `value`, redacted by pattern ([`text`]), and whether it was cut.
pub fn short(value: &str, max: usize) -> (String, bool) {
    // Cut first (the pattern is run over what is shown only), then again: a redaction may be
    // longer than what it replaced.
    let (value, cut) = truncate(value.to_owned(), max);
    let (value, cut_again) = truncate(self::text(&value), max);
    (value, cut || cut_again)
}

/// `headers` as shown: the first [`MAX_HEADERS`], names cut to [`MAX_HEADER_NAME`], values of
/// secret-looking ones redacted, the others cut to [`MAX_HEADER_VALUE`] and redacted by
/// pattern.
pub fn headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .take(MAX_HEADERS)
        .map(|(name, value)| {
            let value = if secret(name) {
                REDACTED.to_owned()
            } else {
                short(value, MAX_HEADER_VALUE).0
            };
            (truncate(name.clone(), MAX_HEADER_NAME).0, value)
        })
        .collect()
}

/// Replaces the values of secret-looking keys, at any depth.
fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if secret(key) {
                    *value = serde_json::Value::String(REDACTED.to_owned());
                } else {
                    redact_json(value);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

/// The payload as shown, at most `max` bytes, and whether it was cut: JSON (of at most
/// [`PARSE_LIMIT`] bytes) with secret-looking keys' values redacted (compact); anything else,
/// or a larger payload, its start as lossy UTF-8 redacted by pattern ([`text`]).
pub fn payload(bytes: &[u8], max: usize) -> (String, bool) {
    if bytes.len() <= PARSE_LIMIT
        && let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes)
    {
        redact_json(&mut value);
        return truncate(value.to_string(), max);
    }
    // A few bytes more than shown: a character cut at the end is decoded whole.
    let head = &bytes[..bytes.len().min(max.saturating_add(4))];
    let (shown, cut) = short(&String::from_utf8_lossy(head), max);
    (shown, cut || head.len() < bytes.len())
}

/// At most `max` bytes of `text` (cut at a character boundary), and whether it was cut.
pub fn truncate(mut text: String, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    (text, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for name in [
            "password",
            "DB_PASSWD",
            "clientSecret",
            "access_token",
            "Authorization",
            "x-api-key",
            "API_KEY",
            "apiKey",
            "Set-Cookie",
            "credentials",
            "private_key",
        ] {
            assert!(secret(name), "{name}");
        }
        for name in ["user", "content-type", "traceparent", "key", "pass"] {
            assert!(!secret(name), "{name}");
        }
    }

    fn shown(bytes: &[u8]) -> String {
        payload(bytes, 1 << 20).0
    }

    #[test]
    fn json_values_are_redacted_at_any_depth() {
        let body = br#"{"user":"ann","password":"hunter2","nested":{"apiKey":{"id":1},"list":[{"token":"t"},2]},"n":1}"#;
        assert_eq!(
            shown(body),
            r#"{"user":"ann","password":"[redacted]","nested":{"apiKey":"[redacted]","list":[{"token":"[redacted]"},2]},"n":1}"#
        );
        assert_eq!(shown(b"not json \xff"), "not json \u{fffd}");
        assert_eq!(
            headers(&[
                ("Authorization".into(), "Bearer x".into()),
                ("content-type".into(), "text/plain".into())
            ]),
            [
                ("Authorization".to_owned(), REDACTED.to_owned()),
                ("content-type".to_owned(), "text/plain".to_owned())
            ]
        );
    }

    #[test]
    fn what_is_not_json_is_redacted_by_pattern() {
        for (raw, expected) in [
            (
                r#"{"user":"ann", "Password" : "hunter2", "n": 1, "#,
                r#"{"user":"ann", "Password" : "[redacted]", "n": 1, "#,
            ),
            (
                r#"bad {"db_password":"a \"quoted\" one","x":1"#,
                r#"bad {"db_password":"[redacted]","x":1"#,
            ),
            (
                r#"{"api_key": 12345, "pin": 7}"#,
                r#"{"api_key": "[redacted]", "pin": 7}"#,
            ),
            (
                "GET /x?user=ann&access_token=abc.def&n=1 HTTP/1.1",
                "GET /x?user=ann&access_token=[redacted]&n=1 HTTP/1.1",
            ),
            (
                "password = hunter2 and SECRET=\"two words\" rest",
                "password = [redacted] and SECRET=[redacted] rest",
            ),
            (
                "upstream said 401 to Authorization: Bearer eyJhbGciOi.x-y_z==",
                "upstream said 401 to Authorization: Bearer [redacted]",
            ),
            ("nothing secret: x=1", "nothing secret: x=1"),
        ] {
            assert_eq!(text(raw), expected, "{raw}");
        }
    }

    #[test]
    fn json_cut_short_or_nested_too_deep_is_never_shown_raw() {
        // Cut inside the secret's value: the rest of it is not shown either.
        let cut = br#"{"n":1,"password":"hunter2hunter2"}"#;
        let (preview, truncated) = payload(&cut[..22], 100);
        assert_eq!(
            (preview.as_str(), truncated),
            (r#"{"n":1,"password":"[redacted]""#, false)
        );
        // Deeper than serde_json parses.
        let deep = format!(
            r#"{}{{"token":"s3cret"}}{}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let (preview, _) = payload(deep.as_bytes(), 1 << 20);
        assert!(!preview.contains("s3cret"), "{preview}");
        assert!(preview.contains(r#""token":"[redacted]""#));
        // Too large to parse for a preview: cut first, then redacted by pattern.
        let large = format!(
            r#"{{"password":"hunter2","pad":"{}"}}"#,
            "x".repeat(PARSE_LIMIT)
        );
        let (preview, truncated) = payload(large.as_bytes(), 40);
        assert!(
            preview.starts_with(r#"{"password":"[redacted]","pad":"xxx"#),
            "{preview}"
        );
        assert!(preview.len() == 40 && truncated);
        // A redaction cut by the preview's length.
        let (preview, truncated) = payload(br#"{"token":"abc""#, 12);
        assert_eq!((preview.as_str(), truncated), (r#"{"token":"[r"#, true));
    }

    #[test]
    fn reasons_keys_and_headers_are_bounded() {
        let (reason, cut) = short(&format!("bad: token=abc {}", "y".repeat(2000)), MAX_REASON);
        assert!(cut && reason.len() <= MAX_REASON && reason.starts_with("bad: token=[redacted] "));
        let many: Vec<(String, String)> = (0..100)
            .map(|i| (format!("h{i}"), "v".repeat(5000)))
            .collect();
        let shown = headers(&many);
        assert_eq!(shown.len(), MAX_HEADERS);
        assert_eq!(shown[0].1.len(), MAX_HEADER_VALUE);
        assert_eq!(
            headers(&[("x-trace".into(), "id=1; session_token=abc".into())])[0].1,
            "id=1; session_token=[redacted]"
        );
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("abc".into(), 3), ("abc".to_owned(), false));
        assert_eq!(truncate("aé".into(), 2), ("a".to_owned(), true));
        assert_eq!(truncate("abcd".into(), 2), ("ab".to_owned(), true));
        assert_eq!(payload("aé".as_bytes(), 2), ("a".to_owned(), true));
    }
}
