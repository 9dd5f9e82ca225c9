//! The integration tests of `etl-envelope`, in one test binary (`cargo test -p etl-envelope
//! --test all`): the format byte for byte, its properties under random records, and the
//! allocation bound of decoding (whose tracking allocator counts only its own thread).

mod alloc;
mod format;
mod properties;
