//! Properties of the envelope over generated inputs: round trip, canonical form, totality, for
//! one record (version 1) and for batches (version 2).

use etl_envelope::{
    BATCH_VERSION, Batched, DecodeError, Envelope, VERSION, batch_len, batched_len, decode,
    decode_batch, encode, encode_batch, encoded_len,
};
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
        prop::option::of(any::<String>()),
    )
        .prop_map(|(key, payload, headers, traceparent, id)| Envelope {
            key,
            payload,
            headers,
            traceparent,
            id,
        })
}

fn batch() -> impl Strategy<Value = Vec<Batched>> {
    let origin = prop_oneof![3 => 0u32..16, 1 => any::<u32>()];
    prop::collection::vec(
        (origin, envelope()).prop_map(|(origin, envelope)| Batched { origin, envelope }),
        0..8,
    )
}

/// Short runs of a few byte values, mostly zero and small (flags, lengths, counts), sometimes a
/// varint continuation byte, a non-UTF-8 byte or a letter: random input that decodes often enough
/// to exercise the canonical form, not just the errors.
fn batch_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        8 => Just(0x00u8),
        3 => Just(0x01),
        2 => Just(0x02),
        1 => Just(0x03),
        1 => Just(0x04),
        1 => Just(0x7f),
        1 => Just(0x80),
        1 => Just(0xff),
        1 => Just(b'a'),
    ];
    prop::collection::vec(byte, 0..12)
}

/// Whatever `decode_batch` accepts re-encodes to the same bytes (version 2), or is one version-1
/// record at origin 0 that `encode` gives back.
fn assert_canonical_batch(input: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(batch) = decode_batch(input) {
        if input[0] == BATCH_VERSION {
            prop_assert_eq!(encode_batch(&batch), input);
        } else {
            prop_assert_eq!(input[0], VERSION);
            prop_assert_eq!(batch.len(), 1);
            prop_assert_eq!(batch[0].origin, 0);
            prop_assert_eq!(encode(&batch[0].envelope), input);
        }
    }
    Ok(())
}

/// Random decisions for [`sloppy_batch`]: mostly "encode this right", sometimes a mistake.
struct Noise<'a>(std::slice::Iter<'a, u8>);

impl Noise<'_> {
    /// The next decision; once the noise runs out, every decision is "right" (0).
    fn next(&mut self) -> u8 {
        self.0.next().copied().unwrap_or(0)
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u32) {
    while n >= 0x80 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// `n` as a varint, or now and then off by one, overlong, or a raw byte instead.
fn sloppy_varint(out: &mut Vec<u8>, n: u32, noise: &mut Noise) {
    match noise.next() {
        0..=247 => put_varint(out, n),
        248 | 249 => put_varint(out, n.wrapping_add(1)),
        250 | 251 => put_varint(out, n.wrapping_sub(1)),
        252 | 253 => {
            // The same value with a needless 0x00 group.
            put_varint(out, n);
            *out.last_mut().unwrap() |= 0x80;
            out.push(0x00);
        }
        _ => out.push(noise.next()),
    }
}

/// A length-prefixed field, its length or its last byte now and then wrong.
fn sloppy_field(out: &mut Vec<u8>, bytes: &[u8], noise: &mut Noise) {
    sloppy_varint(out, bytes.len() as u32, noise);
    out.extend_from_slice(bytes);
    if noise.next() >= 254 {
        match out.last_mut() {
            Some(last) if !bytes.is_empty() => *last = 0xff, // not UTF-8 in a string
            _ => out.push(0x00),
        }
    }
}

/// `batch` encoded by hand as version 2, with a few mistakes where `noise` says: a
/// structure-aware fuzz input, mostly valid, near the edges of what the decoder accepts.
fn sloppy_batch(batch: &[Batched], noise: &[u8]) -> Vec<u8> {
    let noise = &mut Noise(noise.iter());
    let mut out = vec![BATCH_VERSION];
    sloppy_varint(&mut out, batch.len() as u32, noise);
    for Batched { origin, envelope } in batch {
        sloppy_varint(&mut out, *origin, noise);
        let mut flags = u8::from(envelope.key.is_some())
            | u8::from(envelope.traceparent.is_some()) << 1
            | u8::from(envelope.id.is_some()) << 2;
        if noise.next() >= 252 {
            flags ^= 1 << (noise.next() % 8);
        }
        out.push(flags);
        if let Some(key) = &envelope.key {
            sloppy_field(&mut out, key, noise);
        }
        sloppy_field(&mut out, &envelope.payload, noise);
        sloppy_varint(&mut out, envelope.headers.len() as u32, noise);
        for (name, value) in &envelope.headers {
            sloppy_field(&mut out, name.as_bytes(), noise);
            sloppy_field(&mut out, value.as_bytes(), noise);
        }
        if let Some(traceparent) = &envelope.traceparent {
            sloppy_field(&mut out, traceparent.as_bytes(), noise);
        }
        if let Some(id) = &envelope.id {
            sloppy_field(&mut out, id.as_bytes(), noise);
        }
    }
    if noise.next() >= 252 {
        out.push(noise.next());
    }
    out
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn batches_round_trip(b in batch()) {
        let bytes = encode_batch(&b);
        prop_assert_eq!(bytes.len(), batch_len(&b));
        // The version byte, the count (one byte for fewer than 128 records), and each record.
        prop_assert_eq!(bytes.len(), 1 + 1 + b.iter().map(batched_len).sum::<usize>());
        prop_assert_eq!(bytes[0], BATCH_VERSION);
        prop_assert_eq!(decode_batch(&bytes), Ok(b));
    }

    #[test]
    fn a_batch_of_one_holds_the_version_1_record(e in envelope(), origin in any::<u32>()) {
        // A batch's record is the version-1 envelope without its version byte.
        let b = [Batched { origin, envelope: e.clone() }];
        let bytes = encode_batch(&b);
        let v1 = encode(&e);
        prop_assert!(bytes.ends_with(&v1[1..]));
        prop_assert_eq!(batched_len(&b[0]), bytes.len() - 2);
        prop_assert_eq!(decode_batch(&v1), Ok(vec![Batched { origin: 0, envelope: e }]));
    }

    #[test]
    fn every_truncation_of_a_batch_is_an_error(b in batch()) {
        let bytes = encode_batch(&b);
        let step = (bytes.len() / 300).max(1);
        for n in (0..bytes.len()).step_by(step).chain(bytes.len().saturating_sub(8)..bytes.len()) {
            match decode_batch(&bytes[..n]) {
                Err(DecodeError::Truncated { needed, at }) => {
                    prop_assert!(at as u64 + needed > n as u64);
                }
                other => prop_assert!(false, "prefix of {} bytes: {:?}", n, other),
            }
        }
    }

    #[test]
    fn random_bytes_never_panic_decode_batch(input in bytes(256)) {
        assert_canonical_batch(&input)?;
    }

    #[test]
    fn random_batch_bodies_never_panic(body in bytes(256)) {
        // Behind the version-2 byte, so the count and the records are reached.
        let mut input = vec![BATCH_VERSION];
        input.extend(body);
        assert_canonical_batch(&input)?;
    }

    #[test]
    fn batch_like_bodies_decode_canonically_or_fail(version in 1u8..=2, body in batch_like_bytes()) {
        let mut input = vec![version];
        input.extend(body);
        assert_canonical_batch(&input)?;
    }

    #[test]
    fn sloppy_batches_decode_canonically_or_fail(b in batch(), noise in bytes(256)) {
        let input = sloppy_batch(&b, &noise);
        if noise.iter().all(|&n| n < 248) {
            prop_assert_eq!(&input, &encode_batch(&b));
        }
        assert_canonical_batch(&input)?;
    }

    #[test]
    fn mutated_batches_decode_canonically_or_fail(
        b in batch(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut bytes = encode_batch(&b);
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        assert_canonical_batch(&bytes)?;
    }

    #[test]
    fn appended_bytes_after_a_batch_are_trailing(
        b in batch(),
        extra in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        let mut bytes = encode_batch(&b);
        bytes.extend_from_slice(&extra);
        prop_assert_eq!(decode_batch(&bytes), Err(DecodeError::TrailingBytes(extra.len())));
    }
}

#[test]
fn every_short_input_over_a_few_bytes_decodes_canonically_or_fails() {
    // Exhaustively: a version byte, then up to 7 bytes over values that matter to the decoder
    // (zero, small counts and lengths, flags, reserved flags, a varint's continuation and last
    // group, a non-UTF-8 byte). This covers empty and short records, two-byte origins and
    // counts, overlong varints and trailing bytes in every position.
    const ALPHABET: [u8; 8] = [0x00, 0x01, 0x02, 0x03, 0x04, 0x7f, 0x80, 0xff];
    let mut accepted = [0usize; 2];
    for version in [VERSION, BATCH_VERSION] {
        for len in 0..=7u32 {
            for i in 0..ALPHABET.len().pow(len) {
                let mut input = vec![version];
                let mut rest = i;
                for _ in 0..len {
                    input.push(ALPHABET[rest % ALPHABET.len()]);
                    rest /= ALPHABET.len();
                }
                if assert_canonical_batch(&input).is_err() {
                    panic!("{input:02x?} decodes to {:?}", decode_batch(&input));
                }
                accepted[usize::from(version - 1)] += usize::from(decode_batch(&input).is_ok());
            }
        }
    }
    // Enough of them decode for the check to mean something (9195 and 773).
    assert!(accepted[0] > 5000 && accepted[1] > 500, "{accepted:?}");
}
