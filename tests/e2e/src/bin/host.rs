//! A wasmCloud 1.x host for the end-to-end test: `wasmcloud-host` 0.27.1 embedded, configured
//! the way the test's lattice needs it, and nothing else.
//!
//! - control interface and RPC on one NATS (`--nats-url`), lattice `--lattice`;
//! - the built-in `http-server`, `http-client` and `messaging-nats` providers, which the
//!   manifests name as `wasmcloud+builtin://…`;
//! - `allow_file_load`, and plain HTTP to the registries given with `--allow-insecure`
//!   (the loopback registry the test pushes to);
//! - with `--secrets-topic-prefix`, secrets from the backends listening under that prefix (the
//!   `nats-kv` one run.sh starts, `etl-e2e-secrets`); without it, a component or link with
//!   secrets is refused.
//!
//! SIGTERM or SIGINT stops it gracefully: components and providers are stopped and the host
//! says goodbye to the lattice before the process exits.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tracing::{error, info};
use wasmcloud_host::url::Url;
use wasmcloud_host::wasmbus::{Features, Host, HostConfig};

#[derive(Parser, Debug)]
#[command(
    name = "etl-e2e-host",
    about = "wasmCloud 1.x host (wasmcloud-host 0.27.1) for etl's e2e test"
)]
struct Args {
    /// NATS server for the control interface and RPC.
    #[arg(
        long,
        env = "WASMCLOUD_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: Url,
    /// The lattice to join.
    #[arg(long, env = "WASMCLOUD_LATTICE", default_value = "default")]
    lattice: String,
    /// A registry (`host:port`) the host may pull from over plain HTTP; repeatable.
    #[arg(long = "allow-insecure")]
    allow_insecure: Vec<String>,
    /// A host label `key=value`; repeatable.
    #[arg(long = "label")]
    labels: Vec<String>,
    /// NATS subject prefix of the secrets backends (`wasmcloud.secrets` for `etl-e2e-secrets`).
    #[arg(long)]
    secrets_topic_prefix: Option<String>,
    /// Timeout of RPC calls between components and providers, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    rpc_timeout_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    etl_e2e::run(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let labels = args
        .labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--label {l}: expected key=value"))
        })
        .collect::<anyhow::Result<HashMap<_, _>>>()?;
    let config = HostConfig {
        ctl_nats_url: args.nats_url.clone(),
        rpc_nats_url: args.nats_url,
        rpc_timeout: Duration::from_millis(args.rpc_timeout_ms),
        lattice: args.lattice.into(),
        labels,
        allow_file_load: true,
        secrets_topic_prefix: args.secrets_topic_prefix,
        oci_opts: wasmcloud_host::OciConfig {
            allowed_insecure: args.allow_insecure,
            ..Default::default()
        },
        // `wasmcloud-messaging-v3`: the `wasmcloud:messaging@0.3.0` the e2e repo's artifacts
        // publish through, with `Nats-Msg-Id` (its `delivery.nats_msg_id`), as a site that
        // turns it on starts `wasmcloud` with `--feature wasmcloud-messaging-v3`.
        experimental_features: Features::new()
            .enable_builtin_http_server()
            .enable_builtin_http_client()
            .enable_builtin_messaging_nats()
            .enable_wasmcloud_messaging_v3(),
        // Quick heartbeats so wadm sees the host, and its inventory, soon after start.
        heartbeat_interval: Some(Duration::from_secs(5)),
        provider_shutdown_delay: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    let (host, shutdown) = Host::new(config)
        .await
        .context("failed to start the host")?;
    info!("host started");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT: stopping"),
        _ = term.recv() => info!("SIGTERM: stopping"),
        stopped = host.stopped() => {
            // Stopped through the control interface (`wash stop host`).
            info!(?stopped, "host stopped by request");
        }
    }
    drop(host);
    if let Err(e) = shutdown.await {
        error!("shutdown: {e:#}");
        return Err(e);
    }
    info!("host stopped");
    Ok(())
}
