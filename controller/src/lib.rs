//! `etl-controller`: a pull-based GitOps reconciler beside each lattice. It polls the tag of an
//! environment's deployment bundle (`etl::oci::bundle`), verifies the bundle's signature, and
//! brings the lattice to it — wasmCloud 1.x through wadm, v2 through the hosts' workload API —
//! then says what runs (`docs/controller.md`).
//!
//! [`config`] checks the settings; [`source`] polls and verifies; [`lattice`] dispatches to the
//! generation's applier ([`wadm`] or [`workload`]); [`reconcile`] is the loop; [`status`] keeps
//! the status document that [`serve`] answers over HTTP and NATS. On the data plane's NATS,
//! [`telemetry`] counts what steps report and exports it, [`deadletters`] keeps and replays
//! dead letters ([`redact`]ed when shown, each replay in the [`audit`]); [`api`] answers the
//! dashboard ([`dashboard`]) and the CLI, behind [`auth`]. [`run`] puts them together.

pub mod api;
pub mod audit;
pub mod auth;
pub mod config;
pub mod dashboard;
pub mod deadletters;
pub mod delivery;
pub mod jetstream;
pub mod lattice;
pub mod reconcile;
pub mod redact;
pub mod serve;
pub mod source;
pub mod state;
pub mod status;
pub mod telemetry;
pub mod wadm;
pub mod workload;

use std::future::Future;

use etl::build::generation::Generation;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Nats, Settings};
use crate::lattice::Lattice;
use crate::reconcile::Controller;
use crate::source::Source;
use crate::telemetry::Telemetry;

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The NATS credentials file cannot be used.
    #[error("--{flag} `{}`: {source}", path.display())]
    NatsCreds {
        /// The flag that names it.
        flag: &'static str,
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
    connect_to(&settings.nats, "nats-creds").await
}

/// Connects to the data plane's NATS, when it is not the lattice's (`--data-nats-url`).
pub async fn connect_data(settings: &Settings) -> Result<Option<async_nats::Client>, Error> {
    match &settings.data_nats_url {
        Some(nats) => connect_to(nats, "data-nats-creds").await.map(Some),
        None => Ok(None),
    }
}

async fn connect_to(nats: &Nats, creds_flag: &'static str) -> Result<async_nats::Client, Error> {
    let mut options = async_nats::ConnectOptions::new()
        .name("etl-controller")
        .retry_on_initial_connect();
    if let Some(path) = &nats.creds {
        options = options
            .credentials_file(path)
            .await
            .map_err(|source| Error::NatsCreds {
                flag: creds_flag,
                path: path.clone(),
                source,
            })?;
    }
    options
        .connect(nats.url.as_str())
        .await
        .map_err(|e| Error::Nats {
            url: nats.shown_url(),
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

/// Runs the controller of `settings` until `shutdown` completes: the loop, the HTTP API, the
/// NATS status subject and the telemetry.
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
    let data = connect_data(&settings).await?;
    // At-least-once delivery's streams and consumers, and its dead letters, live on the data
    // plane's NATS.
    let delivery = delivery::Delivery::new(data.clone().unwrap_or_else(|| nats.clone()));
    let controller = Controller::new(
        &settings,
        Source::new(&settings),
        lattice(&settings, nats.clone()).await?,
    )
    .with_delivery(delivery.clone());
    let status = controller.status();
    let telemetry = Telemetry::new(settings.telemetry.clone(), controller.taken());
    let (stop, stopped) = watch::channel(false);
    let counting = tokio::spawn(telemetry.clone().run(
        data.clone().unwrap_or_else(|| nats.clone()),
        stopped.clone(),
    ));
    let advisories = tokio::spawn(delivery.advisories(stopped.clone()));
    let api =
        serve::Api::new(status.clone(), settings.token.as_ref()).with_telemetry(telemetry.clone());
    let http = tokio::spawn(serve::http(listener, settings.tls.clone(), api, stopped));
    let answering = tokio::spawn(serve::nats(nats.clone(), status, Some(telemetry)));
    tracing::info!(
        bundle = %settings.bundle,
        generation = settings.generation.short(),
        nats = %settings.nats.shown_url(),
        data_nats_url = %settings.data_nats_url.as_ref().map_or("(the lattice's)".to_owned(), Nats::shown_url),
        otlp = settings.telemetry.otlp.as_ref().map_or("(off)", |o| o.endpoint.as_str()),
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
    let _ = advisories.await;
    // The counts are saved on the way out.
    let _ = counting.await;
    answering.abort();
    if let Err(e) = nats.drain().await {
        tracing::debug!("NATS drain: {e}");
    }
    if let Some(data) = data
        && let Err(e) = data.drain().await
    {
        tracing::debug!("data NATS drain: {e}");
    }
    Ok(())
}
