//! `etl-controller`: a pull-based GitOps reconciler beside each lattice. It polls the tag of an
//! environment's deployment bundle (`etl::oci::bundle`), verifies the bundle's signature, and
//! brings the lattice to it — wasmCloud 1.x through wadm, v2 through the hosts' workload API —
//! then says what runs (`docs/controller.md`).
//!
//! [`config`] checks the settings; [`source`] polls and verifies; [`lattice`] dispatches to the
//! generation's applier ([`wadm`] or [`workload`]); [`reconcile`] is the loop; [`status`] keeps
//! the status document that [`serve`] answers over HTTP and NATS; [`dashboard`] embeds the
//! dashboard's page and libraries. [`run`] puts them together.

pub mod config;
pub mod dashboard;
pub mod lattice;
pub mod reconcile;
pub mod serve;
pub mod source;
pub mod state;
pub mod status;
pub mod wadm;
pub mod workload;

use std::future::Future;

use etl::build::generation::Generation;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Settings;
use crate::lattice::Lattice;
use crate::reconcile::Controller;
use crate::source::Source;

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The NATS credentials file cannot be used.
    #[error("--nats-creds `{}`: {source}", path.display())]
    NatsCreds {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// NATS cannot be reached.
    #[error("NATS at {url}: {detail}")]
    Nats {
        /// The URL.
        url: String,
        /// The client's words.
        detail: String,
    },
    /// The v2 applier cannot start (its secrets file, the heartbeat subscription).
    #[error(transparent)]
    Workload(#[from] workload::Error),
    /// The status API cannot listen.
    #[error("--listen {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Connects to the lattice's NATS. The first connection is retried in the background, so the
/// controller starts (and answers over HTTP) while NATS is down; requests fail until it is up.
pub async fn connect(settings: &Settings) -> Result<async_nats::Client, Error> {
    let mut options = async_nats::ConnectOptions::new()
        .name("etl-controller")
        .retry_on_initial_connect();
    if let Some(path) = &settings.nats.creds {
        options = options
            .credentials_file(path)
            .await
            .map_err(|source| Error::NatsCreds {
                path: path.clone(),
                source,
            })?;
    }
    options
        .connect(settings.nats.url.as_str())
        .await
        .map_err(|e| Error::Nats {
            url: settings.nats.shown_url(),
            detail: e.to_string(),
        })
}

/// The applier of `settings`' generation, over `nats`.
pub async fn lattice(settings: &Settings, nats: async_nats::Client) -> Result<Lattice, Error> {
    Ok(match settings.generation {
        Generation::V1 => Lattice::V1(wadm::Wadm::new(nats, wadm::Options::default())),
        Generation::V2 => Lattice::V2(
            workload::Workloads::new(
                nats,
                workload::Options {
                    host_labels: settings.labels_by_host(),
                    secrets: settings.secrets.clone(),
                    ..workload::Options::default()
                },
            )
            .await?,
        ),
    })
}

/// Runs the controller of `settings` until `shutdown` completes: the loop, the HTTP status API
/// and the NATS status subject.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    for note in &settings.notes {
        tracing::warn!("{note}");
    }
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: settings.listen,
            source,
        })?;
    let nats = connect(&settings).await?;
    let controller = Controller::new(
        &settings,
        Source::new(&settings),
        lattice(&settings, nats.clone()).await?,
    );
    let status = controller.status();
    let (stop, stopped) = watch::channel(false);
    let http = tokio::spawn(serve::http(
        listener,
        settings.tls.clone(),
        settings.token.clone(),
        status.clone(),
        stopped,
    ));
    let answering = tokio::spawn(serve::nats(nats.clone(), status));
    tracing::info!(
        bundle = %settings.bundle,
        generation = settings.generation.short(),
        nats = %settings.nats.shown_url(),
        listen = %settings.listen,
        https = settings.tls.is_some(),
        token = settings.token.is_some(),
        signer = %settings.key.id(),
        poll = %humantime::format_duration(settings.poll_interval),
        "etl-controller started"
    );
    controller.run(shutdown).await;
    tracing::info!("stopping");
    let _ = stop.send(true);
    let _ = http.await;
    answering.abort();
    if let Err(e) = nats.drain().await {
        tracing::debug!("NATS drain: {e}");
    }
    Ok(())
}
