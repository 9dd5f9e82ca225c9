//! Canonical JSON: object keys sorted at every level, so the same value always gives the same
//! bytes. [`pretty`] for files people read (`plan.json`, manifests), [`compact`] for OCI
//! documents, whose digests are of their exact bytes.

use serde::Serialize;
use serde_json::Value as Json;

/// Two-space indented, ending in a newline.
pub fn pretty<T: Serialize>(value: &T) -> String {
    let value = serde_json::to_value(value).expect("the documents etl writes serialize");
    let mut text =
        serde_json::to_string_pretty(&sorted_keys(&value)).expect("JSON values serialize");
    text.push('\n');
    text
}

/// No insignificant whitespace, no trailing newline.
pub fn compact<T: Serialize>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("the documents etl writes serialize");
    serde_json::to_vec(&sorted_keys(&value)).expect("JSON values serialize")
}

/// The same value with the keys of every object in sorted order.
pub fn sorted_keys(value: &Json) -> Json {
    match value {
        Json::Object(map) => {
            let mut entries: Vec<(&String, &Json)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Json::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted_keys(v)))
                    .collect(),
            )
        }
        Json::Array(items) => Json::Array(items.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn sorts_keys_at_every_level_in_both_forms() {
        let value = json!({"b": [{"d": 1, "c": 2}], "a": null});
        assert_eq!(
            String::from_utf8(super::compact(&value)).unwrap(),
            r#"{"a":null,"b":[{"c":2,"d":1}]}"#
        );
        assert_eq!(
            super::pretty(&value),
            "{\n  \"a\": null,\n  \"b\": [\n    {\n      \"c\": 2,\n      \"d\": 1\n    }\n  ]\n}\n"
        );
    }
}
