//! The envelope format, pinned byte by byte: golden vectors and every error case, for version 1
//! (one record) and version 2 (a batch).

use etl_envelope::{
    BATCH_VERSION, Batched, DecodeError, Envelope, Field, VERSION, batch_len, batched_len, decode,
    decode_batch, encode, encode_batch, encoded_len,
};

/// The golden envelope of `docs/envelope.md`.
fn golden() -> Envelope {
    Envelope {
        key: Some(b"k1".to_vec()),
        payload: br#"{"t":21.5}"#.to_vec(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-id".into(), "7".into()),
        ],
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        id: None,
    }
}

/// Its encoding, written out field by field.
#[rustfmt::skip]
const GOLDEN: &[u8] = &[
    0x01,                                           // version 1
    0x03,                                           // flags: key, traceparent
    0x02, b'k', b'1',                               // key "k1"
    0x0a, b'{', b'"', b't', b'"', b':', b'2', b'1', b'.', b'5', b'}', // payload {"t":21.5}
    0x02,                                           // 2 headers
    0x0c, b'c', b'o', b'n', b't', b'e', b'n', b't', b'-', b't', b'y', b'p', b'e',
    0x10, b'a', b'p', b'p', b'l', b'i', b'c', b'a', b't', b'i', b'o', b'n', b'/',
          b'j', b's', b'o', b'n',
    0x04, b'x', b'-', b'i', b'd',
    0x01, b'7',
    0x37, b'0', b'0', b'-',                         // traceparent, 55 bytes
          b'4', b'b', b'f', b'9', b'2', b'f', b'3', b'5', b'7', b'7', b'b', b'3', b'4', b'd', b'a', b'6',
          b'a', b'3', b'c', b'e', b'9', b'2', b'9', b'd', b'0', b'e', b'0', b'e', b'4', b'7', b'3', b'6',
          b'-', b'0', b'0', b'f', b'0', b'6', b'7', b'a', b'a', b'0', b'b', b'a', b'9', b'0', b'2', b'b', b'7',
          b'-', b'0', b'1',
];

/// The same bytes in hex, as `docs/envelope.md` prints them.
const GOLDEN_HEX: &str = "0103026b310a7b2274223a32312e357d020c636f6e74656e742d74797065106170706c69636174696f6e2f6a736f6e04782d6964013737\
30302d3462663932663335373762333464613661336365393239643065306534373336\
2d303066303637616130626139303262372d3031";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn golden_vector_encodes_and_decodes() {
    assert_eq!(GOLDEN.len(), 110);
    assert_eq!(encode(&golden()), GOLDEN);
    assert_eq!(hex(GOLDEN), GOLDEN_HEX);
    assert_eq!(decode(GOLDEN), Ok(golden()));
    assert_eq!(encoded_len(&golden()), GOLDEN.len());
}

#[test]
fn golden_vector_is_the_one_documented() {
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/envelope.md");
    let doc = std::fs::read_to_string(doc_path).expect("docs/envelope.md");
    assert!(
        one_line(&doc).contains(GOLDEN_HEX),
        "docs/envelope.md does not show the golden vector {GOLDEN_HEX}"
    );
}

#[test]
fn empty_envelope_is_four_bytes() {
    let empty = Envelope::default();
    assert_eq!(encode(&empty), [0x01, 0x00, 0x00, 0x00]);
    assert_eq!(decode(&[0x01, 0x00, 0x00, 0x00]), Ok(empty));
}

#[test]
fn empty_key_and_traceparent_differ_from_absent_ones() {
    let e = Envelope {
        key: Some(vec![]),
        traceparent: Some(String::new()),
        ..Envelope::default()
    };
    assert_eq!(encode(&e), [0x01, 0x03, 0x00, 0x00, 0x00, 0x00]);
    assert_eq!(decode(&encode(&e)), Ok(e));
}

#[test]
fn lengths_are_shortest_form_leb128() {
    for (len, varint) in [
        (0usize, &[0x00][..]),
        (1, &[0x01]),
        (127, &[0x7f]),
        (128, &[0x80, 0x01]),
        (300, &[0xac, 0x02]),
        (16_383, &[0xff, 0x7f]),
        (16_384, &[0x80, 0x80, 0x01]),
        (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
    ] {
        let e = Envelope {
            payload: vec![0xab; len],
            ..Envelope::default()
        };
        let bytes = encode(&e);
        let mut expected = vec![0x01, 0x00];
        expected.extend_from_slice(varint);
        expected.extend(std::iter::repeat_n(0xab, len));
        expected.push(0x00);
        assert_eq!(bytes, expected, "payload of {len} bytes");
        assert_eq!(encoded_len(&e), bytes.len());
        assert_eq!(decode(&bytes), Ok(e));
    }
}

#[test]
fn headers_keep_their_order_and_duplicates() {
    let e = Envelope {
        headers: vec![
            ("b".into(), "1".into()),
            ("a".into(), "2".into()),
            ("b".into(), "3".into()),
            (String::new(), String::new()),
            ("ünï".into(), "cödé ✓".into()),
        ],
        ..Envelope::default()
    };
    assert_eq!(decode(&encode(&e)), Ok(e));
}

#[test]
fn every_other_version_byte_is_unknown() {
    for v in 0..=u8::MAX {
        let mut bytes = GOLDEN.to_vec();
        bytes[0] = v;
        let got = decode(&bytes);
        if v == VERSION {
            assert_eq!(got, Ok(golden()));
        } else {
            assert_eq!(got, Err(DecodeError::UnknownVersion(v)));
        }
    }
    // Checked first: even a lone version byte says so.
    assert_eq!(decode(&[2]), Err(DecodeError::UnknownVersion(2)));
}

#[test]
fn reserved_flag_bits_are_rejected() {
    for flags in 0b1000..=u8::MAX {
        assert_eq!(
            decode(&[0x01, flags, 0x00, 0x00]),
            Err(DecodeError::ReservedFlags(flags)),
            "flags {flags:#04x}"
        );
    }
}

#[test]
fn empty_input_is_truncated() {
    assert_eq!(
        decode(&[]),
        Err(DecodeError::Truncated { needed: 1, at: 0 })
    );
    assert_eq!(
        decode(&[0x01]),
        Err(DecodeError::Truncated { needed: 1, at: 1 })
    );
}

#[test]
fn every_truncation_of_the_golden_vector_is_truncated() {
    for n in 0..GOLDEN.len() {
        match decode(&GOLDEN[..n]) {
            Err(DecodeError::Truncated { needed, at }) => assert!(
                at as u64 + needed > n as u64,
                "prefix of {n}: Truncated {{ needed: {needed}, at: {at} }} fits"
            ),
            other => panic!("prefix of {n} bytes: {other:?}"),
        }
    }
}

#[test]
fn truncation_errors_say_where_and_how_much() {
    // Payload claims 10 bytes at offset 3, 2 remain.
    assert_eq!(
        decode(&[0x01, 0x00, 0x0a, b'a', b'b']),
        Err(DecodeError::Truncated { needed: 10, at: 3 })
    );
    // A varint cut after its continuation byte.
    assert_eq!(
        decode(&[0x01, 0x00, 0x80]),
        Err(DecodeError::Truncated { needed: 2, at: 2 })
    );
    // Three headers need at least six bytes from offset 4; there are two.
    assert_eq!(
        decode(&[0x01, 0x00, 0x00, 0x03, 0x00, 0x00]),
        Err(DecodeError::Truncated { needed: 6, at: 4 })
    );
    // Traceparent flagged but missing.
    assert_eq!(
        decode(&[0x01, 0x02, 0x00, 0x00]),
        Err(DecodeError::Truncated { needed: 1, at: 4 })
    );
}

#[test]
fn trailing_bytes_are_rejected() {
    for extra in 1..=3 {
        let mut bytes = GOLDEN.to_vec();
        bytes.extend(std::iter::repeat_n(0, extra));
        assert_eq!(decode(&bytes), Err(DecodeError::TrailingBytes(extra)));
    }
    // A traceparent the flags do not announce is trailing too.
    assert_eq!(
        decode(&[0x01, 0x00, 0x00, 0x00, 0x01, b'x']),
        Err(DecodeError::TrailingBytes(2))
    );
}

#[test]
fn varints_beyond_u32_overflow() {
    // u32::MAX itself is a valid length (then truncated: the input does not hold it).
    assert_eq!(
        decode(&[0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        Err(DecodeError::Truncated {
            needed: u64::from(u32::MAX),
            at: 7
        })
    );
    // 2^32: fifth byte carries more than 4 bits.
    assert_eq!(
        decode(&[0x01, 0x00, 0x80, 0x80, 0x80, 0x80, 0x10]),
        Err(DecodeError::LengthOverflow)
    );
    // Six bytes long.
    assert_eq!(
        decode(&[0x01, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
        Err(DecodeError::LengthOverflow)
    );
    // Ten bytes of continuation, as a u64 varint might.
    let mut bytes = vec![0x01, 0x00];
    bytes.extend([0xff; 9]);
    bytes.push(0x01);
    assert_eq!(decode(&bytes), Err(DecodeError::LengthOverflow));
}

#[test]
fn overlong_varints_are_rejected() {
    // 0 as two bytes.
    assert_eq!(
        decode(&[0x01, 0x00, 0x80, 0x00, 0x00]),
        Err(DecodeError::OverlongVarint { at: 2 })
    );
    // 1 as three bytes, in the header count.
    assert_eq!(
        decode(&[0x01, 0x00, 0x00, 0x81, 0x80, 0x00, 0x00, 0x00]),
        Err(DecodeError::OverlongVarint { at: 3 })
    );
    // 2^28 - 1 padded to five bytes.
    assert_eq!(
        decode(&[0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00]),
        Err(DecodeError::OverlongVarint { at: 2 })
    );
}

#[test]
fn strings_must_be_utf8() {
    assert_eq!(
        decode(&[0x01, 0x00, 0x00, 0x01, 0x01, 0xff, 0x00]),
        Err(DecodeError::InvalidUtf8 {
            field: Field::HeaderName(0)
        })
    );
    assert_eq!(
        decode(&[
            0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x01, b'a', 0x02, 0xc3, 0x28
        ]),
        Err(DecodeError::InvalidUtf8 {
            field: Field::HeaderValue(1)
        })
    );
    assert_eq!(
        decode(&[0x01, 0x02, 0x00, 0x00, 0x01, 0x80]),
        Err(DecodeError::InvalidUtf8 {
            field: Field::Traceparent
        })
    );
    // Key and payload are bytes: anything goes.
    let e = Envelope {
        key: Some(vec![0xff, 0x00]),
        payload: vec![0xc3, 0x28],
        ..Envelope::default()
    };
    assert_eq!(decode(&encode(&e)), Ok(e));
}

#[test]
fn errors_read_well() {
    let cases = [
        (
            DecodeError::UnknownVersion(7),
            "unknown envelope version 7 (version 1 is one record, 2 a batch)",
        ),
        (
            DecodeError::ReservedFlags(0x84),
            "envelope flags byte 0x84 sets reserved bits (only 0x07 are defined)",
        ),
        (
            DecodeError::Truncated { needed: 10, at: 3 },
            "truncated envelope: the item at byte 3 needs 10 byte(s), past the end of the input",
        ),
        (
            DecodeError::LengthOverflow,
            "envelope length or count does not fit in 32 bits",
        ),
        (
            DecodeError::OverlongVarint { at: 2 },
            "envelope varint at byte 2 is not in its shortest form",
        ),
        (
            DecodeError::InvalidUtf8 {
                field: Field::HeaderValue(1),
            },
            "envelope value of header 1 is not valid UTF-8",
        ),
        (
            DecodeError::InvalidUtf8 {
                field: Field::Traceparent,
            },
            "envelope traceparent is not valid UTF-8",
        ),
        (
            DecodeError::InvalidUtf8 { field: Field::Id },
            "envelope id is not valid UTF-8",
        ),
        (
            DecodeError::TrailingBytes(2),
            "2 trailing byte(s) after the envelope",
        ),
    ];
    for (error, text) in cases {
        assert_eq!(error.to_string(), text);
    }
    let boxed: Box<dyn std::error::Error> = Box::new(DecodeError::LengthOverflow);
    assert!(boxed.source().is_none());
}

// Version 2: a batch.

/// The golden batch of `docs/envelope.md`: the golden record from record 0 of the batch its
/// step received, and an empty record from record 3.
fn golden_batch() -> Vec<Batched> {
    vec![
        Batched {
            origin: 0,
            envelope: golden(),
        },
        Batched {
            origin: 3,
            envelope: Envelope::default(),
        },
    ]
}

/// Its encoding: the version, the count, then each origin and record (a record is a version-1
/// envelope without its version byte).
fn golden_batch_bytes() -> Vec<u8> {
    #[rustfmt::skip]
    let parts: [&[u8]; 5] = [
        &[0x02],                   // version 2
        &[0x02],                   // 2 records
        &[0x00],                   // origin 0
        &GOLDEN[1..],              // the golden record: flags, key, payload, headers, traceparent
        &[0x03, 0x00, 0x00, 0x00], // origin 3; flags: none; payload, 0 bytes; 0 headers
    ];
    parts.concat()
}

/// The same bytes in hex, as `docs/envelope.md` prints them.
const GOLDEN_BATCH_HEX: &str = "02020003026b310a7b2274223a32312e357d020c636f6e74656e742d74797065106170706c69636174696f6e2f6a736f6e04782d69640137\
3730302d3462663932663335373762333464613661336365393239643065306534373336\
2d303066303637616130626139303262372d3031\
03000000";

#[test]
fn golden_batch_encodes_and_decodes() {
    let bytes = golden_batch_bytes();
    assert_eq!(bytes.len(), 116);
    assert_eq!(encode_batch(&golden_batch()), bytes);
    assert_eq!(hex(&bytes), GOLDEN_BATCH_HEX);
    assert_eq!(decode_batch(&bytes), Ok(golden_batch()));
    assert_eq!(batch_len(&golden_batch()), bytes.len());
    // What a sender splitting by size adds up: the version byte, the count, and each record.
    let [first, second] = &golden_batch()[..] else {
        unreachable!()
    };
    assert_eq!(batched_len(first), 1 + (GOLDEN.len() - 1));
    assert_eq!(batched_len(second), 4);
    assert_eq!(
        1 + 1 + batched_len(first) + batched_len(second),
        bytes.len()
    );
}

#[test]
fn golden_batch_is_the_one_documented() {
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/envelope.md");
    let doc = std::fs::read_to_string(doc_path).expect("docs/envelope.md");
    assert!(
        one_line(&doc).contains(GOLDEN_BATCH_HEX),
        "docs/envelope.md does not show the golden batch {GOLDEN_BATCH_HEX}"
    );
}

#[test]
fn empty_batch_is_two_bytes() {
    assert_eq!(BATCH_VERSION, 2);
    assert_eq!(encode_batch(&[]), [0x02, 0x00]);
    assert_eq!(batch_len(&[]), 2);
    assert_eq!(decode_batch(&[0x02, 0x00]), Ok(vec![]));
}

#[test]
fn a_batch_of_empty_records_takes_four_bytes_a_record() {
    let batch = vec![Batched::default(); 3];
    assert_eq!(
        encode_batch(&batch),
        [0x02, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(decode_batch(&encode_batch(&batch)), Ok(batch));
}

#[test]
fn origins_are_shortest_form_leb128_and_need_not_be_distinct_or_sorted() {
    let batch: Vec<Batched> = [5, 5, 0, 127, 128, 300, u32::MAX]
        .into_iter()
        .map(|origin| Batched {
            origin,
            envelope: Envelope::default(),
        })
        .collect();
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x02, 0x07,
        0x05, 0, 0, 0,
        0x05, 0, 0, 0,
        0x00, 0, 0, 0,
        0x7f, 0, 0, 0,
        0x80, 0x01, 0, 0, 0,
        0xac, 0x02, 0, 0, 0,
        0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0,
    ];
    assert_eq!(encode_batch(&batch), expected);
    assert_eq!(batch_len(&batch), expected.len());
    assert_eq!(decode_batch(expected), Ok(batch));
}

#[test]
fn a_record_count_is_shortest_form_leb128() {
    // 128 empty records: the count takes two bytes.
    let batch = vec![Batched::default(); 128];
    let bytes = encode_batch(&batch);
    assert_eq!(bytes[..3], [0x02, 0x80, 0x01]);
    assert_eq!(bytes.len(), 3 + 128 * 4);
    assert_eq!(batch_len(&batch), bytes.len());
    assert_eq!(decode_batch(&bytes), Ok(batch));
}

#[test]
fn decode_batch_reads_version_1_as_one_record_from_origin_0() {
    assert_eq!(
        decode_batch(GOLDEN),
        Ok(vec![Batched {
            origin: 0,
            envelope: golden()
        }])
    );
    assert_eq!(
        decode_batch(&[0x01, 0x00, 0x00, 0x00]),
        Ok(vec![Batched::default()])
    );
    // Version 1 keeps its own errors there.
    let mut bytes = GOLDEN.to_vec();
    bytes.push(0);
    assert_eq!(decode_batch(&bytes), Err(DecodeError::TrailingBytes(1)));
    assert_eq!(
        decode_batch(&GOLDEN[..7]),
        Err(DecodeError::Truncated { needed: 10, at: 6 })
    );
}

#[test]
fn decode_reads_only_version_1() {
    assert_eq!(
        decode(&golden_batch_bytes()),
        Err(DecodeError::UnknownVersion(2))
    );
    assert_eq!(decode(&[0x02, 0x00]), Err(DecodeError::UnknownVersion(2)));
}

#[test]
fn every_other_version_byte_is_unknown_to_decode_batch() {
    for v in 0..=u8::MAX {
        let mut bytes = golden_batch_bytes();
        bytes[0] = v;
        let got = decode_batch(&bytes);
        match v {
            BATCH_VERSION => assert_eq!(got, Ok(golden_batch())),
            // Read as a version-1 record: flags 0x02 (a traceparent), an empty payload, 3
            // headers: ("k1", {"t":21.5}), then a 2-byte name and a value claiming 111 bytes.
            VERSION => assert_eq!(
                got,
                Err(DecodeError::Truncated {
                    needed: 111,
                    at: 22
                })
            ),
            _ => assert_eq!(got, Err(DecodeError::UnknownVersion(v))),
        }
        // Checked first: even a lone version byte says so.
        let lone = decode_batch(&[v]);
        if v == VERSION || v == BATCH_VERSION {
            assert_eq!(lone, Err(DecodeError::Truncated { needed: 1, at: 1 }));
        } else {
            assert_eq!(lone, Err(DecodeError::UnknownVersion(v)));
        }
    }
    assert_eq!(
        decode_batch(&[]),
        Err(DecodeError::Truncated { needed: 1, at: 0 })
    );
}

#[test]
fn every_truncation_of_the_golden_batch_is_truncated() {
    let bytes = golden_batch_bytes();
    for n in 0..bytes.len() {
        match decode_batch(&bytes[..n]) {
            Err(DecodeError::Truncated { needed, at }) => assert!(
                at as u64 + needed > n as u64,
                "prefix of {n}: Truncated {{ needed: {needed}, at: {at} }} fits"
            ),
            other => panic!("prefix of {n} bytes: {other:?}"),
        }
    }
}

#[test]
fn a_count_needs_four_bytes_a_record() {
    // Three records need at least 12 bytes from offset 2; there are 8.
    assert_eq!(
        decode_batch(&[0x02, 0x03, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(DecodeError::Truncated { needed: 12, at: 2 })
    );
    // Exactly enough: two empty records.
    assert_eq!(
        decode_batch(&[0x02, 0x02, 0, 0, 0, 0, 0, 0, 0, 0]),
        Ok(vec![Batched::default(); 2])
    );
    // A two-byte count (128) needs 512 bytes from offset 3.
    let mut bytes = vec![0x02, 0x80, 0x01];
    bytes.extend([0; 511]);
    assert_eq!(
        decode_batch(&bytes),
        Err(DecodeError::Truncated { needed: 512, at: 3 })
    );
    // u32::MAX records: the claim is refused whatever follows.
    assert_eq!(
        decode_batch(&[0x02, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0]),
        Err(DecodeError::Truncated {
            needed: 4 * u64::from(u32::MAX),
            at: 6
        })
    );
    // The count check passes, then a record claims more than is left: a payload of 5 bytes at
    // offset 5, two left.
    assert_eq!(
        decode_batch(&[0x02, 0x01, 0x00, 0x00, 0x05, 0x00, 0x00]),
        Err(DecodeError::Truncated { needed: 5, at: 5 })
    );
    // The record count is cut short.
    assert_eq!(
        decode_batch(&[0x02, 0x80]),
        Err(DecodeError::Truncated { needed: 2, at: 1 })
    );
}

#[test]
fn trailing_bytes_after_a_batch_are_rejected() {
    for extra in 1..=3 {
        let mut bytes = golden_batch_bytes();
        bytes.extend(std::iter::repeat_n(0, extra));
        assert_eq!(decode_batch(&bytes), Err(DecodeError::TrailingBytes(extra)));
    }
    assert_eq!(
        decode_batch(&[0x02, 0x00, 0x00]),
        Err(DecodeError::TrailingBytes(1))
    );
    // A record the count does not announce is trailing too.
    assert_eq!(
        decode_batch(&[0x02, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(DecodeError::TrailingBytes(4))
    );
}

#[test]
fn batch_varints_must_be_shortest_and_fit_in_32_bits() {
    // A count of 0 as two bytes.
    assert_eq!(
        decode_batch(&[0x02, 0x80, 0x00]),
        Err(DecodeError::OverlongVarint { at: 1 })
    );
    // A count of 1 as three bytes.
    assert_eq!(
        decode_batch(&[0x02, 0x81, 0x80, 0x00, 0, 0, 0, 0]),
        Err(DecodeError::OverlongVarint { at: 1 })
    );
    // An origin of 0 as two bytes.
    assert_eq!(
        decode_batch(&[0x02, 0x01, 0x80, 0x00, 0, 0, 0]),
        Err(DecodeError::OverlongVarint { at: 2 })
    );
    // The second record's origin, 3 as five bytes.
    assert_eq!(
        decode_batch(&[
            0x02, 0x02, 0, 0, 0, 0, 0x83, 0x80, 0x80, 0x80, 0x00, 0, 0, 0
        ]),
        Err(DecodeError::OverlongVarint { at: 6 })
    );
    // A count and an origin of 2^32.
    assert_eq!(
        decode_batch(&[0x02, 0x80, 0x80, 0x80, 0x80, 0x10]),
        Err(DecodeError::LengthOverflow)
    );
    assert_eq!(
        decode_batch(&[0x02, 0x01, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0, 0]),
        Err(DecodeError::LengthOverflow)
    );
}

#[test]
fn records_of_a_batch_are_checked_as_in_version_1() {
    // Reserved flags in the second record.
    assert_eq!(
        decode_batch(&[0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0, 0]),
        Err(DecodeError::ReservedFlags(0x08))
    );
    // An id that is not UTF-8.
    assert_eq!(
        decode_batch(&[0x02, 0x01, 0x00, 0x04, 0x00, 0x00, 0x01, 0xff]),
        Err(DecodeError::InvalidUtf8 { field: Field::Id })
    );
    // A header name that is not UTF-8 (its index counts within its record).
    assert_eq!(
        decode_batch(&[
            0x02, 0x02, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x01, 0x01, 0xff, 0x00
        ]),
        Err(DecodeError::InvalidUtf8 {
            field: Field::HeaderName(0)
        })
    );
    // A traceparent that is not UTF-8.
    assert_eq!(
        decode_batch(&[0x02, 0x01, 0x00, 0x02, 0x00, 0x00, 0x01, 0x80]),
        Err(DecodeError::InvalidUtf8 {
            field: Field::Traceparent
        })
    );
}

// The id (flags bit 2): the last field of a record.

/// The golden record with an id of `docs/envelope.md`: output 0 of record 0 of the request
/// whose client sent `Idempotency-Key: order-17`, from record 2 of the step's batch.
fn golden_with_id() -> Vec<Batched> {
    vec![Batched {
        origin: 2,
        envelope: Envelope {
            key: None,
            payload: br#"{"t":21.5}"#.to_vec(),
            headers: vec![],
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            id: Some("order-17-0.0".into()),
        },
    }]
}

/// Its encoding: the id follows the traceparent.
fn golden_with_id_bytes() -> Vec<u8> {
    #[rustfmt::skip]
    let parts: [&[u8]; 8] = [
        &[0x02],                   // version 2
        &[0x01],                   // 1 record
        &[0x02],                   // origin 2
        &[0x06],                   // flags: traceparent, id
        &GOLDEN[5..16],            // payload, 10 bytes: {"t":21.5}
        &[0x00],                   // 0 headers
        &GOLDEN[54..],             // traceparent, 55 bytes
        &[0x0c],                   // id, 12 bytes: order-17-0.0
    ];
    let mut bytes = parts.concat();
    bytes.extend_from_slice(b"order-17-0.0");
    bytes
}

/// The same bytes in hex, as `docs/envelope.md` prints them.
const GOLDEN_WITH_ID_HEX: &str = "020102060a7b2274223a32312e357d00\
3730302d3462663932663335373762333464613661336365393239643065306534373336\
2d303066303637616130626139303262372d3031\
0c6f726465722d31372d302e30";

#[test]
fn golden_record_with_an_id_encodes_and_decodes() {
    let bytes = golden_with_id_bytes();
    assert_eq!(bytes.len(), 85);
    assert_eq!(encode_batch(&golden_with_id()), bytes);
    assert_eq!(hex(&bytes), GOLDEN_WITH_ID_HEX);
    assert_eq!(decode_batch(&bytes), Ok(golden_with_id()));
    assert_eq!(batch_len(&golden_with_id()), bytes.len());
}

#[test]
fn golden_record_with_an_id_is_the_one_documented() {
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/envelope.md");
    let doc = std::fs::read_to_string(doc_path).expect("docs/envelope.md");
    assert!(
        one_line(&doc).contains(GOLDEN_WITH_ID_HEX),
        "docs/envelope.md does not show the golden record with an id {GOLDEN_WITH_ID_HEX}"
    );
}

#[test]
fn a_record_without_an_id_encodes_as_before_ids_existed() {
    // Flags bit 2 is clear and nothing follows the traceparent: the golden vectors above.
    assert_eq!(encode(&golden())[1], 0x03);
    assert_eq!(encode(&Envelope::default()), [0x01, 0x00, 0x00, 0x00]);
}

#[test]
fn an_id_is_the_last_field_of_a_record_in_both_versions() {
    let e = Envelope {
        id: Some("k-0".into()),
        ..Envelope::default()
    };
    assert_eq!(encode(&e), [0x01, 0x04, 0x00, 0x00, 0x03, b'k', b'-', b'0']);
    assert_eq!(decode(&encode(&e)), Ok(e.clone()));
    assert_eq!(encoded_len(&e), 8);
    // After the traceparent.
    let both = Envelope {
        traceparent: Some("t".into()),
        ..e.clone()
    };
    assert_eq!(
        encode(&both),
        [0x01, 0x06, 0x00, 0x00, 0x01, b't', 0x03, b'k', b'-', b'0']
    );
    assert_eq!(decode(&encode(&both)), Ok(both));
    // The golden record with an id.
    let mut golden = golden();
    golden.id = Some("order-17-0".into());
    let bytes = encode(&golden);
    assert_eq!(bytes[1], 0x07);
    assert_eq!(
        &bytes[..GOLDEN.len()],
        &[&[0x01, 0x07][..], &GOLDEN[2..]].concat()[..]
    );
    assert_eq!(&bytes[GOLDEN.len()..], b"\x0aorder-17-0");
    assert_eq!(decode(&bytes), Ok(golden.clone()));
    // In a batch.
    let batch = vec![Batched {
        origin: 1,
        envelope: golden,
    }];
    assert_eq!(decode_batch(&encode_batch(&batch)), Ok(batch));
}

#[test]
fn an_empty_id_differs_from_no_id() {
    let e = Envelope {
        id: Some(String::new()),
        ..Envelope::default()
    };
    assert_eq!(encode(&e), [0x01, 0x04, 0x00, 0x00, 0x00]);
    assert_eq!(decode(&encode(&e)), Ok(e));
}

#[test]
fn a_flagged_id_that_is_missing_is_truncated_and_one_not_flagged_is_trailing() {
    assert_eq!(
        decode(&[0x01, 0x04, 0x00, 0x00]),
        Err(DecodeError::Truncated { needed: 1, at: 4 })
    );
    assert_eq!(
        decode(&[0x01, 0x04, 0x00, 0x00, 0x05, b'a']),
        Err(DecodeError::Truncated { needed: 5, at: 5 })
    );
    assert_eq!(
        decode(&[0x01, 0x00, 0x00, 0x00, 0x01, b'a']),
        Err(DecodeError::TrailingBytes(2))
    );
    assert_eq!(
        decode(&[0x01, 0x04, 0x00, 0x00, 0x01, 0x80]),
        Err(DecodeError::InvalidUtf8 { field: Field::Id })
    );
}

#[test]
fn every_truncation_of_the_golden_record_with_an_id_is_truncated() {
    let bytes = golden_with_id_bytes();
    for n in 0..bytes.len() {
        match decode_batch(&bytes[..n]) {
            Err(DecodeError::Truncated { needed, at }) => assert!(
                at as u64 + needed > n as u64,
                "prefix of {n}: Truncated {{ needed: {needed}, at: {at} }} fits"
            ),
            other => panic!("prefix of {n} bytes: {other:?}"),
        }
    }
}
