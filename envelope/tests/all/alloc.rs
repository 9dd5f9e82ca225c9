//! Decoding allocates no more than the input could hold: a length or count that claims gigabytes
//! is refused before anything is reserved for it.
//!
//! A global allocator records the largest single allocation request made on the test's own
//! thread while decoding, one record (`decode`) or a batch (`decode_batch`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use etl_envelope::{Batched, DecodeError, decode, decode_batch};

struct Tracking;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    let _ = TRACKING.try_with(|on| {
        if on.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

// SAFETY: defers to `System`; only records sizes in const-initialised thread locals, which
// never allocate.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// Runs `f` and returns its result and the largest allocation made meanwhile.
fn tracked<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    TRACKING.with(|t| t.set(true));
    let result = f();
    TRACKING.with(|t| t.set(false));
    (result, LARGEST.with(Cell::get))
}

/// Decodes `input` and returns the result and the largest allocation made meanwhile.
fn decode_tracked(input: &[u8]) -> (Result<etl_envelope::Envelope, DecodeError>, usize) {
    tracked(|| decode(input))
}

/// Decodes `input` as a batch and returns the result and the largest allocation made meanwhile.
fn decode_batch_tracked(input: &[u8]) -> (Result<Vec<Batched>, DecodeError>, usize) {
    tracked(|| decode_batch(input))
}

#[test]
fn claimed_gigabytes_allocate_nothing() {
    let cases: [(&str, &[u8]); 4] = [
        // Payload length 0xFFFF_FFFF (4 GiB) on a 10-byte input.
        (
            "payload",
            &[0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00, 0x00],
        ),
        // Key length 4 GiB.
        (
            "key",
            &[0x01, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00, 0x00],
        ),
        // 4 G headers (Vec<(String, String)> of 192 GiB).
        (
            "header count",
            &[0x01, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00],
        ),
        // A header value of 4 GiB.
        (
            "header value",
            &[0x01, 0x00, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f],
        ),
    ];
    for (what, input) in cases {
        assert_eq!(input.len(), 10);
        let (result, largest) = decode_tracked(input);
        assert!(
            matches!(result, Err(DecodeError::Truncated { needed, .. }) if needed >= u64::from(u32::MAX)),
            "{what}: {result:?}"
        );
        assert!(largest <= 64, "{what}: allocated {largest} bytes");
    }
}

#[test]
fn a_valid_decode_allocates_about_the_input() {
    let mut input = vec![0x01, 0x00, 0x80, 0x08]; // payload of 1024 bytes
    input.extend([7u8; 1024]);
    input.push(0x00);
    let (result, largest) = decode_tracked(&input);
    assert_eq!(result.unwrap().payload.len(), 1024);
    assert!(largest <= input.len(), "allocated {largest} bytes");
}

#[test]
fn a_batch_claiming_gigarecords_allocates_nothing() {
    let cases: [(&str, &[u8], u64); 3] = [
        // u32::MAX records (a Vec<Batched> of hundreds of GiB) in 10 bytes.
        (
            "record count",
            &[0x02, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00, 0x00, 0x00],
            4 * u64::from(u32::MAX),
        ),
        // 2^28 records.
        (
            "record count 2^28",
            &[0x02, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00, 0x00, 0x00, 0x00],
            4 << 28,
        ),
        // One record that claims a 4 GiB payload.
        (
            "payload of a record",
            &[0x02, 0x01, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00],
            u64::from(u32::MAX),
        ),
    ];
    for (what, input, claimed) in cases {
        assert_eq!(input.len(), 10);
        let (result, largest) = decode_batch_tracked(input);
        assert!(
            matches!(result, Err(DecodeError::Truncated { needed, .. }) if needed == claimed),
            "{what}: {result:?}"
        );
        // Room for one record at most (the last case's), not for what is claimed.
        let bound = size_of::<Batched>();
        assert!(largest <= bound, "{what}: allocated {largest} bytes");
    }
}

#[test]
fn a_valid_batch_allocates_in_proportion_to_the_input() {
    // 1000 empty records, 4 bytes each: room for 1000 `Batched`, nothing more.
    let mut input = vec![0x02, 0xe8, 0x07];
    input.extend([0u8; 4000]);
    let (result, largest) = decode_batch_tracked(&input);
    assert_eq!(result.unwrap().len(), 1000);
    let bound = input.len() / 4 * size_of::<Batched>();
    assert!(
        largest <= bound,
        "allocated {largest} bytes, more than {bound}"
    );
    // One record with a 1024-byte payload: about the input.
    let mut input = vec![0x02, 0x01, 0x00, 0x00, 0x80, 0x08];
    input.extend([7u8; 1024]);
    input.push(0x00);
    let (result, largest) = decode_batch_tracked(&input);
    assert_eq!(result.unwrap()[0].envelope.payload.len(), 1024);
    assert!(largest <= input.len(), "allocated {largest} bytes");
}
