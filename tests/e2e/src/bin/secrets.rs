//! A wasmCloud 1.x secrets backend for the end-to-end test: `secrets-nats-kv` 0.2.0 embedded,
//! the `nats-kv` backend that wadm's `policy.secret.wasmcloud.dev/v1alpha1` policies name (etl
//! emits `backend: nats-kv` for the example).
//!
//! - one NATS (`--nats-url`, JetStream): requests on `<subject-base>.v1alpha1.nats-kv.>` (the
//!   host's `secrets_topic_prefix` is the subject base), values in the KV bucket
//!   `WASMCLOUD_SECRETS`, which component may read which secret in `SECRETS_nats-kv_state`;
//! - its two xkeys, as the crate's own binary takes them, from `TRANSIT_XKEY_SEED` (clients seal
//!   requests to it) and `ENCRYPTION_XKEY_SEED` (values at rest), or made fresh at start when
//!   unset: clients learn the transit public key from the backend (`server_xkey`), and each run
//!   of the test has a fresh JetStream store, so nothing else needs them.
//!
//! It logs "secrets backend started" once it answers and its buckets exist; SIGTERM or SIGINT
//! stop it.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_nats::jetstream;
use clap::Parser;
use nkeys::XKey;
use secrets_nats_kv::Api;
use secrets_nats_kv::client::SECRETS_API_VERSION;
use tracing::{error, info};

#[derive(Parser, Debug)]
#[command(
    name = "etl-e2e-secrets",
    about = "wasmCloud secrets backend (secrets-nats-kv 0.2.0) for etl's e2e test"
)]
struct Args {
    /// NATS server (JetStream enabled).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Subject prefix of every request: the hosts' secrets topic prefix.
    #[arg(long, default_value = "wasmcloud.secrets")]
    subject_base: String,
    /// The backend's name: what a secret policy's `backend` property names.
    #[arg(long, default_value = "nats-kv")]
    name: String,
    /// KV bucket of the secrets' values.
    #[arg(long, default_value = "WASMCLOUD_SECRETS")]
    bucket: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    etl_e2e::run(run(args))
}

/// An xkey from the seed in `var`, or a fresh one.
fn xkey(var: &str) -> anyhow::Result<XKey> {
    match std::env::var(var) {
        Ok(seed) => XKey::from_seed(&seed).with_context(|| format!("{var} is not an xkey seed")),
        Err(_) => Ok(XKey::new()),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let nats = async_nats::connect(&args.nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {}", args.nats_url))?;
    let api = Api::new(
        xkey("TRANSIT_XKEY_SEED")?,
        xkey("ENCRYPTION_XKEY_SEED")?,
        nats.clone(),
        args.subject_base.clone(),
        args.name.clone(),
        args.bucket.clone(),
        64,
        "wasmcloud_secrets".to_owned(),
        SECRETS_API_VERSION.to_owned(),
    );
    let state_bucket = api.state_bucket_name();
    let subject = api.subject();
    let mut backend = tokio::spawn(async move { api.run().await });

    // `Api::run` subscribes, then makes its buckets and lock stream: started once it answers
    // `server_xkey` and both buckets exist.
    let deadline = Instant::now() + Duration::from_secs(30);
    let js = jetstream::new(nats.clone());
    loop {
        if backend.is_finished() {
            return match backend.await {
                Ok(Ok(())) => bail!("the backend stopped during start-up"),
                Ok(Err(e)) => Err(e).context("the backend failed during start-up"),
                Err(e) => Err(e).context("the backend panicked during start-up"),
            };
        }
        let answers = tokio::time::timeout(
            Duration::from_millis(500),
            nats.request(format!("{subject}.server_xkey"), "".into()),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if answers
            && js.get_key_value(&args.bucket).await.is_ok()
            && js.get_key_value(&state_bucket).await.is_ok()
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("not ready within 30 s (subject {subject}.>)");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    info!(subject = %format!("{subject}.>"), bucket = %args.bucket, "secrets backend started");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT: stopping"),
        _ = term.recv() => info!("SIGTERM: stopping"),
        res = &mut backend => match res {
            Ok(Ok(())) => bail!("the backend stopped: its NATS connection closed"),
            Ok(Err(e)) => {
                error!("the backend failed: {e:#}");
                return Err(e);
            }
            Err(e) => return Err(e).context("the backend panicked"),
        },
    }
    backend.abort();
    nats.drain().await.context("draining the NATS connection")?;
    info!("secrets backend stopped");
    Ok(())
}
