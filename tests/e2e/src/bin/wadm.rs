//! wadm 0.21.1 (feature `cli`) for the end-to-end test: its own command line (`--nats-server`,
//! `--help`), the library's `start_wadm`, and a graceful exit on SIGTERM or SIGINT.

use anyhow::Context as _;
use clap::Parser;
use tracing::{error, info};
use wadm::config::WadmConfig;

fn main() -> anyhow::Result<()> {
    let config = WadmConfig::parse();
    etl_e2e::run(run(config))
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
