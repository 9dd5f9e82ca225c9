//! The platform envelope: how records travel between pipeline steps over the broker.
//!
//! A record is the contract's `message` (optional key, payload, ordered headers) plus the W3C
//! trace context `traceparent` and the record's stable `id` (the same on every delivery of the
//! same record, so a consumer can tell a duplicate). The `out-messaging` harness encodes a batch of records into the
//! body of one broker message; the next step's `in-messaging` harness decodes it. The format is
//! specified byte by byte in `docs/envelope.md`; in short:
//!
//! ```text
//! version 2 (a batch):  version (u8 = 2) | record count | (origin | record)*
//! version 1 (one):      version (u8 = 1) | record
//! record:               flags (u8: bit0 key, bit1 traceparent, bit2 id) | [key] | payload
//!                         | header count | (name, value)* | [traceparent] | [id]
//! ```
//!
//! where every length, count and origin is an unsigned LEB128 varint of at most `u32::MAX` in
//! its shortest form, and every string is UTF-8. A record's `origin` is the index, in the batch
//! the producing step received, of the record it came from.
//!
//! Decoding is total: any input gives either records or a [`DecodeError`], never a panic, and
//! it allocates no more than a small multiple of the input's length (every claimed length or
//! count is checked against the bytes that remain before anything is allocated). The encoding is
//! canonical: `encode_batch(&decode_batch(b)?) == b` for every version-2 `b` that decodes, and
//! likewise `encode` / `decode` for version 1.
//!
//! ```
//! use etl_envelope::{Batched, Envelope, decode, decode_batch, encode, encode_batch};
//!
//! let envelope = Envelope {
//!     key: Some(b"sensor-7".to_vec()),
//!     payload: br#"{"t":21.5}"#.to_vec(),
//!     headers: vec![("content-type".into(), "application/json".into())],
//!     traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
//!     id: Some("3f2a9c-0".into()),
//! };
//! let bytes = encode(&envelope);
//! assert_eq!(decode(&bytes), Ok(envelope.clone()));
//!
//! let batch = vec![Batched { origin: 0, envelope }];
//! let bytes = encode_batch(&batch);
//! assert_eq!(decode_batch(&bytes), Ok(batch));
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// The version of a one-record envelope ([`encode`], [`decode`]).
pub const VERSION: u8 = 1;
/// The version of a batch ([`encode_batch`]), which every harness writes; [`decode_batch`]
/// reads both.
pub const BATCH_VERSION: u8 = 2;
/// The fewest bytes a record of a batch takes: origin, flags, payload length, header count.
const MIN_BATCH_RECORD: u64 = 4;

/// Flags bit: a key follows.
const FLAG_KEY: u8 = 0b01;
/// Flags bit: a traceparent follows the headers.
const FLAG_TRACEPARENT: u8 = 0b10;
/// Flags bit: an id ends the record (after the traceparent, if any).
const FLAG_ID: u8 = 0b100;
/// Every flags bit this version defines; the others must be zero.
const KNOWN_FLAGS: u8 = FLAG_KEY | FLAG_TRACEPARENT | FLAG_ID;

/// One record between steps: the contract's `message` plus its trace context and its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Envelope {
    /// The record's key (`message.key`). `Some(vec![])` (an empty key) and `None` are distinct.
    pub key: Option<Vec<u8>>,
    /// The record's payload (`message.payload`).
    pub payload: Vec<u8>,
    /// The record's headers (`message.headers`), in order; names may repeat.
    pub headers: Vec<(String, String)>,
    /// W3C trace context `traceparent` of the record, carried verbatim (not validated here).
    pub traceparent: Option<String>,
    /// The record's stable id: the same on every delivery of the same record (a redelivery, a
    /// client's retry), so a consumer de-duplicates by it. Given at the source and derived
    /// from there on (docs/harness.md#record-ids); carried verbatim (not validated here).
    /// `None`: the record has none (e.g. published to a core NATS source by a client).
    pub id: Option<String>,
}

/// The part of an envelope a [`DecodeError::InvalidUtf8`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The name of the header with this index (0-based).
    HeaderName(u32),
    /// The value of the header with this index (0-based).
    HeaderValue(u32),
    /// The traceparent.
    Traceparent,
    /// The id.
    Id,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::HeaderName(i) => write!(f, "name of header {i}"),
            Field::HeaderValue(i) => write!(f, "value of header {i}"),
            Field::Traceparent => f.write_str("traceparent"),
            Field::Id => f.write_str("id"),
        }
    }
}

/// One record of a batch and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Batched {
    /// The index, in the batch the producing step received, of the record this one came from
    /// (several outputs of one record share it). In a batch a source builds, the record's own
    /// index.
    pub origin: u32,
    /// The record.
    pub envelope: Envelope,
}

/// Why bytes are not a valid envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// The version byte is not one the decoder reads ([`VERSION`] for [`decode`], it and
    /// [`BATCH_VERSION`] for [`decode_batch`]). Carries the version byte found.
    UnknownVersion(u8),
    /// The flags byte has bits set that this version does not define. Carries the flags byte.
    ReservedFlags(u8),
    /// The input ends inside an item: the item starting at byte offset `at` needs at least
    /// `needed` bytes, more than the input has from there. (`needed` is a `u64` because a
    /// claimed header count can need more bytes than a 32-bit `usize` counts.)
    Truncated {
        /// Bytes the item needs, counted from `at`.
        needed: u64,
        /// Byte offset where the item starts.
        at: usize,
    },
    /// A varint is longer than 5 bytes or its value exceeds `u32::MAX`.
    LengthOverflow,
    /// A varint at byte offset `at` is not in its shortest form (it ends in a zero byte after
    /// a continuation byte), so the encoding would not be canonical.
    OverlongVarint {
        /// Byte offset where the varint starts.
        at: usize,
    },
    /// A header name, header value, the traceparent or the id is not valid UTF-8.
    InvalidUtf8 {
        /// Which string.
        field: Field,
    },
    /// The envelope ends before the input does; carries the number of extra bytes.
    TrailingBytes(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnknownVersion(v) => write!(
                f,
                "unknown envelope version {v} (version {VERSION} is one record, {BATCH_VERSION} a batch)"
            ),
            DecodeError::ReservedFlags(flags) => write!(
                f,
                "envelope flags byte 0x{flags:02x} sets reserved bits (only 0x{KNOWN_FLAGS:02x} are defined)"
            ),
            DecodeError::Truncated { needed, at } => write!(
                f,
                "truncated envelope: the item at byte {at} needs {needed} byte(s), past the end of the input"
            ),
            DecodeError::LengthOverflow => {
                f.write_str("envelope length or count does not fit in 32 bits")
            }
            DecodeError::OverlongVarint { at } => {
                write!(
                    f,
                    "envelope varint at byte {at} is not in its shortest form"
                )
            }
            DecodeError::InvalidUtf8 { field } => {
                write!(f, "envelope {field} is not valid UTF-8")
            }
            DecodeError::TrailingBytes(n) => {
                write!(f, "{n} trailing byte(s) after the envelope")
            }
        }
    }
}

impl core::error::Error for DecodeError {}

/// Encodes `envelope` in the current format ([`VERSION`]).
///
/// # Panics
///
/// If the key, the payload, a header name or value, the traceparent or the id is longer than
/// `u32::MAX` bytes, or there are more than `u32::MAX` headers: the format cannot express
/// them (no wasm32 component can hold such a record anyway).
pub fn encode(envelope: &Envelope) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(envelope));
    out.push(VERSION);
    put_record(&mut out, envelope);
    out
}

/// Encodes `batch` as one version-2 envelope ([`BATCH_VERSION`]), records in order.
///
/// # Panics
///
/// As [`encode`], and if the batch has more than `u32::MAX` records.
pub fn encode_batch(batch: &[Batched]) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch_len(batch));
    out.push(BATCH_VERSION);
    put_varint(&mut out, to_u32(batch.len()));
    for b in batch {
        put_varint(&mut out, b.origin);
        put_record(&mut out, &b.envelope);
    }
    out
}

/// The exact length of `encode_batch(batch)`.
pub fn batch_len(batch: &[Batched]) -> usize {
    1 + varint_len(batch.len()) + batch.iter().map(batched_len).sum::<usize>()
}

/// The bytes `b` adds to a batch ([`batch_len`] is 1, the count's varint, and these summed):
/// what a sender that splits a batch by size adds up.
pub fn batched_len(b: &Batched) -> usize {
    varint_len(b.origin as usize) + encoded_len(&b.envelope) - 1
}

/// Writes a record (everything after the version byte of a one-record envelope).
fn put_record(out: &mut Vec<u8>, envelope: &Envelope) {
    let mut flags = 0;
    if envelope.key.is_some() {
        flags |= FLAG_KEY;
    }
    if envelope.traceparent.is_some() {
        flags |= FLAG_TRACEPARENT;
    }
    if envelope.id.is_some() {
        flags |= FLAG_ID;
    }
    out.push(flags);
    if let Some(key) = &envelope.key {
        put_bytes(out, key);
    }
    put_bytes(out, &envelope.payload);
    put_varint(out, to_u32(envelope.headers.len()));
    for (name, value) in &envelope.headers {
        put_bytes(out, name.as_bytes());
        put_bytes(out, value.as_bytes());
    }
    if let Some(traceparent) = &envelope.traceparent {
        put_bytes(out, traceparent.as_bytes());
    }
    if let Some(id) = &envelope.id {
        put_bytes(out, id.as_bytes());
    }
}

/// The exact length of `encode(envelope)`.
pub fn encoded_len(envelope: &Envelope) -> usize {
    fn field(len: usize) -> usize {
        varint_len(len) + len
    }
    2 + envelope.key.as_ref().map_or(0, |k| field(k.len()))
        + field(envelope.payload.len())
        + varint_len(envelope.headers.len())
        + envelope
            .headers
            .iter()
            .map(|(n, v)| field(n.len()) + field(v.len()))
            .sum::<usize>()
        + envelope.traceparent.as_ref().map_or(0, |t| field(t.len()))
        + envelope.id.as_ref().map_or(0, |i| field(i.len()))
}

/// Decodes one envelope that must span all of `bytes`.
///
/// Never panics, and allocates at most about `bytes.len()` bytes in all.
/// A version-2 batch is an `UnknownVersion` error here: read what steps publish with
/// [`decode_batch`].
pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.byte()?;
    if version != VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let envelope = r.record()?;
    r.end()?;
    Ok(envelope)
}

/// Decodes a batch that must span all of `bytes`: a version-2 envelope, or a version-1 one as
/// a batch of that one record (origin 0).
///
/// Never panics, and allocates at most a small multiple of `bytes.len()`: a claimed record
/// count is checked against the bytes left (at least 4 a record) before room is reserved, so at
/// worst one `Batched` of about 100 bytes is reserved for each 4 input bytes.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Batched>, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.byte()?;
    let batch = match version {
        VERSION => {
            let envelope = r.record()?;
            alloc::vec![Batched {
                origin: 0,
                envelope
            }]
        }
        BATCH_VERSION => {
            let count = r.count(MIN_BATCH_RECORD)?;
            let mut batch = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let origin = r.varint()?;
                let envelope = r.record()?;
                batch.push(Batched { origin, envelope });
            }
            batch
        }
        v => return Err(DecodeError::UnknownVersion(v)),
    };
    r.end()?;
    Ok(batch)
}

impl Reader<'_> {
    /// No bytes may follow the envelope.
    fn end(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    /// A count of items that take at least `min_each` bytes each: one the rest of the input
    /// cannot hold is refused before anything is reserved for it.
    fn count(&mut self, min_each: u64) -> Result<u32, DecodeError> {
        let count = self.varint()?;
        let needed = u64::from(count) * min_each;
        if needed > self.remaining() as u64 {
            return Err(DecodeError::Truncated {
                needed,
                at: self.pos,
            });
        }
        Ok(count)
    }

    /// A record: flags, key, payload, headers, traceparent, id.
    fn record(&mut self) -> Result<Envelope, DecodeError> {
        let r = self;
        let flags = r.byte()?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(DecodeError::ReservedFlags(flags));
        }
        let key = if flags & FLAG_KEY != 0 {
            Some(r.field()?.to_vec())
        } else {
            None
        };
        let payload = r.field()?.to_vec();
        // Every header takes at least two bytes (two one-byte lengths).
        let count = r.count(2)?;
        let mut headers = Vec::with_capacity(count as usize);
        for i in 0..count {
            let name = r.string(Field::HeaderName(i))?;
            let value = r.string(Field::HeaderValue(i))?;
            headers.push((name, value));
        }
        let traceparent = if flags & FLAG_TRACEPARENT != 0 {
            Some(r.string(Field::Traceparent)?)
        } else {
            None
        };
        let id = if flags & FLAG_ID != 0 {
            Some(r.string(Field::Id)?)
        } else {
            None
        };
        Ok(Envelope {
            key,
            payload,
            headers,
            traceparent,
            id,
        })
    }
}

fn to_u32(len: usize) -> u32 {
    u32::try_from(len).expect("envelope field longer than u32::MAX")
}

fn varint_len(value: usize) -> usize {
    let mut value = to_u32(value);
    let mut n = 1;
    while value >= 0x80 {
        value >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, to_u32(bytes.len()));
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.bytes.get(self.pos).ok_or(DecodeError::Truncated {
            needed: 1,
            at: self.pos,
        })?;
        self.pos += 1;
        Ok(b)
    }

    /// An unsigned LEB128 varint: at most 5 bytes, value at most `u32::MAX`, shortest form.
    fn varint(&mut self) -> Result<u32, DecodeError> {
        let at = self.pos;
        let mut value: u32 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(DecodeError::Truncated {
                    needed: (self.pos - at) as u64 + 1,
                    at,
                });
            };
            self.pos += 1;
            let low = u32::from(b & 0x7f);
            if shift == 28 && (b & 0x80 != 0 || low > 0x0f) {
                // A 5th byte may carry only the top 4 bits of a u32 and must end the varint.
                return Err(DecodeError::LengthOverflow);
            }
            value |= low << shift;
            if b & 0x80 == 0 {
                if b == 0 && shift > 0 {
                    return Err(DecodeError::OverlongVarint { at });
                }
                return Ok(value);
            }
            shift += 7;
        }
    }

    /// A length-prefixed byte string, borrowed from the input.
    fn field(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        let at = self.pos;
        let truncated = DecodeError::Truncated {
            needed: u64::from(len),
            at,
        };
        if u64::from(len) > self.remaining() as u64 {
            return Err(truncated);
        }
        let bytes = self.bytes;
        let field = bytes
            .get(at..)
            .and_then(|rest| rest.get(..len as usize))
            .ok_or(truncated)?;
        self.pos = at + field.len();
        Ok(field)
    }

    fn string(&mut self, field: Field) -> Result<String, DecodeError> {
        let bytes = self.field()?;
        core::str::from_utf8(bytes)
            .map(String::from)
            .map_err(|_| DecodeError::InvalidUtf8 { field })
    }
}
