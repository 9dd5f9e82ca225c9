//! wadm 0.21.1 (feature `cli`) for the end-to-end test: its own command line (`--nats-server`,
//! `--help`), the library's `start_wadm`, and a graceful exit on SIGTERM or SIGINT.

use anyhow::Context as _;
use clap::Parser;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;
use wadm::config::WadmConfig;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(false)
        .init();
    let config = WadmConfig::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(run(config))
}

async fn run(config: WadmConfig) -> anyhow::Result<()> {
    let mut wadm = wadm::start_wadm(config)
        .await
        .context("failed to start wadm")?;
    info!("wadm started");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    tokio::select! {
        res = wadm.join_next() => match res {
            Some(Ok(Ok(()))) | None => info!("wadm exited"),
            Some(Ok(Err(e))) => {
                error!("wadm failed: {e:#}");
                return Err(e);
            }
            Some(Err(e)) => {
                error!("wadm task panicked: {e}");
                return Err(e.into());
            }
        },
        _ = tokio::signal::ctrl_c() => info!("SIGINT: stopping"),
        _ = term.recv() => info!("SIGTERM: stopping"),
    }
    wadm.shutdown().await;
    Ok(())
}
