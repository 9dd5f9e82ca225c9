//! Random edits of a text, for the property tests that mutate valid input (the spec files in
//! the compiler's tests, `etl run` input in the runtime's): shared by those two test binaries.

use proptest::prelude::*;

/// Characters that matter to YAML, templates and the checks, weighted into random edits.
pub const ALPHABET: &[u8] = b":-[]{}&*!|>'\"#\n\t %@`,?~\\01aZ_.{{}}/\xc3\xa9";

/// One random change to a text.
#[derive(Debug, Clone)]
pub enum Edit {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: Vec<u8> },
    DuplicateLine { line: usize },
    SwapLines { a: usize, b: usize },
    Truncate { at: usize },
}

/// Any one [`Edit`].
pub fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1..16usize).prop_map(|(at, len)| Edit::Delete { at, len }),
        (
            any::<usize>(),
            prop::collection::vec(prop::sample::select(ALPHABET), 1..12)
        )
            .prop_map(|(at, text)| Edit::Insert { at, text }),
        any::<usize>().prop_map(|line| Edit::DuplicateLine { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines { a, b }),
        any::<usize>().prop_map(|at| Edit::Truncate { at }),
    ]
}

/// `bytes` with `edits` applied in order; positions wrap around, so every edit applies.
pub fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len().max(1);
        match e {
            Edit::Delete { at, len } => {
                let at = at % n;
                let end = (at + len).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Edit::Insert { at, text } => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, text.iter().copied());
            }
            Edit::DuplicateLine { line } | Edit::SwapLines { a: line, .. } if bytes.is_empty() => {
                let _ = line;
            }
            Edit::DuplicateLine { line } => {
                let mut lines: Vec<Vec<u8>> =
                    bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                let i = line % lines.len();
                lines.insert(i, lines[i].clone());
                bytes = lines.join(&b'\n');
            }
            Edit::SwapLines { a, b } => {
                let mut lines: Vec<Vec<u8>> =
                    bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                let (i, j) = (a % lines.len(), b % lines.len());
                lines.swap(i, j);
                bytes = lines.join(&b'\n');
            }
            Edit::Truncate { at } => bytes.truncate(at % n),
        }
    }
    bytes
}
