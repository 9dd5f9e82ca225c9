//! The envelope format, pinned byte by byte: golden vectors and every error case.

use etl_envelope::{DecodeError, Envelope, Field, VERSION, decode, encode, encoded_len};

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
    for flags in 0b100..=u8::MAX {
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
            "envelope flags byte 0x84 sets reserved bits (only 0x03 are defined)",
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
