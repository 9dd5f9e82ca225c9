//! What a dead letter may show: values of secret-looking JSON keys and record headers replaced
//! by `"[redacted]"`, and at most a preview's length of the payload.

/// What replaces a secret value.
pub const REDACTED: &str = "[redacted]";

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

/// `headers` with the values of secret-looking ones redacted.
pub fn headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = if secret(name) {
                REDACTED.to_owned()
            } else {
                value.clone()
            };
            (name.clone(), value)
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

/// The payload as text: JSON with secret-looking keys' values redacted (compact), anything
/// else as lossy UTF-8.
pub fn payload(bytes: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(mut value) => {
            redact_json(&mut value);
            value.to_string()
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
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

    #[test]
    fn json_values_are_redacted_at_any_depth() {
        let body = br#"{"user":"ann","password":"hunter2","nested":{"apiKey":{"id":1},"list":[{"token":"t"},2]},"n":1}"#;
        assert_eq!(
            payload(body),
            r#"{"user":"ann","password":"[redacted]","nested":{"apiKey":"[redacted]","list":[{"token":"[redacted]"},2]},"n":1}"#
        );
        assert_eq!(payload(b"not json \xff"), "not json \u{fffd}");
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
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("abc".into(), 3), ("abc".to_owned(), false));
        assert_eq!(truncate("aé".into(), 2), ("a".to_owned(), true));
        assert_eq!(truncate("abcd".into(), 2), ("ab".to_owned(), true));
    }
}
