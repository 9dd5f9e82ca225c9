//! Properties of the envelope over generated inputs: round trip, canonical form, totality.

use etl_envelope::{DecodeError, Envelope, VERSION, decode, encode, encoded_len};
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        prop::option::of(bytes(64)),
        // Mostly small payloads, sometimes past the 1-, 2- and 3-byte varint boundaries.
        prop_oneof![4 => bytes(200), 1 => bytes(20_000)],
        prop::collection::vec((any::<String>(), any::<String>()), 0..8),
        prop::option::of(any::<String>()),
    )
        .prop_map(|(key, payload, headers, traceparent)| Envelope {
            key,
            payload,
            headers,
            traceparent,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trips(e in envelope()) {
        let bytes = encode(&e);
        prop_assert_eq!(bytes.len(), encoded_len(&e));
        prop_assert_eq!(bytes[0], VERSION);
        prop_assert_eq!(decode(&bytes), Ok(e));
    }

    #[test]
    fn every_truncation_is_an_error(e in envelope()) {
        let bytes = encode(&e);
        // All prefixes of short encodings; a sample of cut points of long ones.
        let step = (bytes.len() / 300).max(1);
        for n in (0..bytes.len()).step_by(step).chain(bytes.len().saturating_sub(8)..bytes.len()) {
            match decode(&bytes[..n]) {
                Err(DecodeError::Truncated { needed, at }) => {
                    prop_assert!(at as u64 + needed > n as u64);
                }
                other => prop_assert!(false, "prefix of {} bytes: {:?}", n, other),
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(input in bytes(256)) {
        if let Ok(e) = decode(&input) {
            prop_assert_eq!(encode(&e), input);
        }
    }

    #[test]
    fn random_bodies_behind_a_valid_header_never_panic(flags in 0u8..4, body in bytes(64)) {
        // Random bytes rarely get past the version byte; these reach the varints and strings.
        let mut input = vec![VERSION, flags];
        input.extend(body);
        if let Ok(e) = decode(&input) {
            prop_assert_eq!(encode(&e), input);
        }
    }

    #[test]
    fn mutated_encodings_decode_canonically_or_fail(
        e in envelope(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        // Whatever a corrupted envelope decodes to, its encoding is the corrupted bytes
        // themselves: the format has one encoding per envelope.
        let mut bytes = encode(&e);
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        if let Ok(d) = decode(&bytes) {
            prop_assert_eq!(encode(&d), bytes);
        }
    }

    #[test]
    fn appended_bytes_are_trailing(e in envelope(), extra in prop::collection::vec(any::<u8>(), 1..16)) {
        let mut bytes = encode(&e);
        bytes.extend_from_slice(&extra);
        prop_assert_eq!(decode(&bytes), Err(DecodeError::TrailingBytes(extra.len())));
    }
}
