//! Property tests: `etl run` input, however mangled, is read into records or refused with its
//! position.

use crate::edits::{apply, edit};

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_run_input_gives_records_or_a_positioned_error(edits in prop::collection::vec(edit(), 1..8)) {
        let valid = concat!(
            "{\"json\": {\"sensor\": \"t-1\", \"temp_c\": 82.5}, \"key\": \"k\"}\n",
            "{\"payload\": \"text\", \"headers\": {\"a\": \"b\"}}\n",
            "{\"base64\": \"AAEC/w==\"}\n",
        );
        let bytes = apply(valid.as_bytes().to_vec(), &edits);
        let text = String::from_utf8_lossy(&bytes);
        match etl_run::input::parse_lines("in.jsonl", &text) {
            Ok(records) => prop_assert!(records.len() <= text.lines().count()),
            Err(e) => {
                prop_assert!(e.line >= 1 && e.line <= text.lines().count(), "{e}");
                prop_assert!(e.column >= 1, "{e}");
                let prefix = format!("in.jsonl:{}:", e.line);
                prop_assert!(e.to_string().starts_with(&prefix), "{}", e);
            }
        }
    }
}
