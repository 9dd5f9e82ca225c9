//! `etl-controller`: see the library's docs.

fn main() {}
