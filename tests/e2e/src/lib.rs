//! What the end-to-end test's binaries (`etl-e2e-host`, `etl-e2e-wadm`) share, and the v2 hosts
//! as their heartbeats describe them.

use std::future::Future;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

pub mod hosts;

/// Logs to stderr without colour (`RUST_LOG`, default `info`), then runs `main` to completion
/// on a multi-threaded runtime.
pub fn run(main: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(false)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(main)
}
