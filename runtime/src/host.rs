//! The host side of one call into a composed component: what its imports do, and what the
//! call left behind (publishes, captured HTTP requests, logs, limit breaches).
//!
//! `wasmcloud:messaging/consumer` publishes go into the store, not onto a bus: the runner
//! delivers them only if the call succeeds, so a failed or retried call leaves no trace. A
//! `request` (a publish confirmed with `etl.out.confirm`) is a publish answered with a PubAck;
//! a publish to a JetStream ack subject (`$JS.ACK.…`) is kept apart, as the call's answer to
//! its delivery.
//! `wasi:http/outgoing-handler` requests of a sink are captured and answered `200` without
//! touching the network; those of a step whose customer calls out (what its egress part let
//! through) are sent, as a host would send them; `wasi:blobstore` objects are captured in memory when their value is finished, never
//! uploaded. `wasi:config` (1.x's `runtime`, v2's `store`) serves the unit's configuration from the
//! deployment plan. The unit's secret values are served as each generation's host serves them:
//! through `wasmcloud:secrets` (1.x), and in the config store under their setting names, beneath
//! the configuration (v2: the deployment layers its Secret into the `wasi:config` interface).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use wasmtime::ResourceLimiter;
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};
use wasmtime_wasi::runtime::AbortOnDropJoinHandle;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::outgoing_handler;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Method, RequestOptions, Scheme};
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

wasmtime::component::bindgen!({
    inline: "
        package etl:runner;

        /// What the runner serves a composed unit besides WASI and wasi:http, and the
        /// messaging entry point it calls. The configuration is served both as the 1.x
        /// host does (`runtime`) and as v2 hosts do (`store`), so either artifact runs; so
        /// are secrets (1.x: `wasmcloud:secrets`; v2: in `store`).
        world unit {
            import wasmcloud:messaging/consumer@0.2.0;
            import wasmcloud:messaging/producer@0.3.0;
            import wasmcloud:messaging/request-reply@0.3.0;
            import wasi:config/runtime@0.2.0-draft;
            import wasi:config/store@0.2.0-rc.1;
            import wasi:logging/logging@0.1.0-draft;
            import wasmcloud:secrets/store@0.1.0-draft;
            import wasmcloud:secrets/reveal@0.1.0-draft;
            export wasmcloud:messaging/handler@0.2.0;
        }
    ",
    path: [
        "../wit/deps/wasmcloud-messaging-0.2.0",
        "../wit/deps/wasmcloud-messaging-0.3.0",
        "../wit/deps/wasi-config-0.2.0-draft",
        "../wit/deps/wasi-config-0.2.0-rc.1",
        "../wit/deps/wasi-logging-0.1.0-draft",
        "../wit/deps/wasmcloud-secrets-0.1.0-draft",
    ],
    with: {
        "wasmcloud:secrets/store.secret": SecretName,
        "wasmcloud:messaging/types@0.3.0.client": MessagingClient,
        "wasmcloud:messaging/types@0.3.0.message": MessageV3,
        "wasmcloud:messaging/request-reply@0.3.0.request-options": RequestOptionsV3,
    },
});

/// A `wasmcloud:messaging@0.3.0` client (what the `msg-id` part publishes through, as a 1.x
/// host started with `wasmcloud-messaging-v3` serves it): the runner's one bus.
pub struct MessagingClient;

/// A `wasmcloud:messaging@0.3.0` message: its data and metadata (NATS headers on a 1.x host).
#[derive(Debug, Clone, Default)]
pub struct MessageV3 {
    topic: Option<String>,
    data: Vec<u8>,
    metadata: Vec<(String, String)>,
}

/// `wasmcloud:messaging@0.3.0` request options, which the 1.x host refuses; the runner ignores
/// them.
pub struct RequestOptionsV3;

/// One publish a call made: its subject, body and NATS headers (those a
/// `wasmcloud:messaging@0.3.0` message set: `Nats-Msg-Id`; none through `consumer`).
#[derive(Debug, Clone)]
pub struct Published {
    pub subject: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// A `wasmcloud:secrets` handle: the name of the secret it reveals (as the 1.x host's is).
pub struct SecretName(String);

/// `wasi:blobstore`, as `out-blobstore` imports it; its streams are WASI's own.
mod blobstore {
    wasmtime::component::bindgen!({
        inline: "
            package etl:blobstore-host;

            world objects {
                import wasi:blobstore/blobstore@0.2.0-draft;
            }
        ",
        path: [
            "../wit/deps/wasi-io-0.2.6",
            "../wit/deps/wasi-blobstore-0.2.0-draft",
        ],
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
            "wasi:blobstore/container.container": super::Container,
            "wasi:blobstore/container.stream-object-names": super::ObjectNames,
            "wasi:blobstore/types.outgoing-value": super::OutgoingValue,
            "wasi:blobstore/types.incoming-value": super::IncomingValue,
        },
    });
}

use blobstore::wasi::blobstore::{
    blobstore as blob_api, container as container_api, types as blob_types,
};

pub(crate) use wasmcloud::messaging0_2_0::types::BrokerMessage;
use wasmcloud::messaging0_3_0::types::Error as MessagingError;

use wasi::config0_2_0_draft::runtime::ConfigError;
use wasi::logging::logging::Level;

/// Bytes of stdout/stderr kept from one call (for trap reports).
const OUTPUT_CAPACITY: usize = 64 * 1024;

/// `wasi:logging` lines kept from one call; later ones are counted, not kept.
pub(crate) const MAX_LOG_LINES: usize = 100;

/// One `wasi:logging` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `trace`, `debug`, `info`, `warn`, `error` or `critical`.
    pub level: &'static str,
    /// The context argument.
    pub context: String,
    /// The message.
    pub message: String,
}

/// One outgoing HTTP request, as the component sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedRequest {
    /// Method.
    pub method: String,
    /// Full URL.
    pub url: String,
    /// Headers in order (values as text, lossily).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// One object a component wrote through `wasi:blobstore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedObject {
    /// The container (the bucket of an `s3` sink).
    pub container: String,
    /// The object's name (its key in the bucket).
    pub name: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// A `wasi:blobstore` container: only its name; objects are captured by the host.
pub struct Container {
    name: String,
}

/// A value being written: the bytes streamed into it, and where `write-data` said they go.
pub struct OutgoingValue {
    body: MemoryOutputPipe,
    body_taken: bool,
    targets: Vec<(String, String)>,
}

/// Never made: reading objects is not served locally.
pub enum IncomingValue {}

/// Never made: listing objects is not served locally.
pub enum ObjectNames {}

/// What the local blobstore answers to anything but writing an object.
fn not_served(what: &str) -> String {
    format!("etl run: `{what}` is not available locally (objects are only captured as written)")
}

/// Limits of one store; also records which one was hit.
pub(crate) struct Limiter {
    /// Largest size of any linear memory, in bytes.
    pub memory: usize,
    /// Whether a memory wanted to grow past `memory`.
    pub memory_hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.memory_hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// What becomes of a unit's outgoing HTTP requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outgoing {
    /// Captured and answered `200` (a sink's deliveries: shown, never sent).
    Capture,
    /// Sent over the network (a step whose customer calls out: its egress part has already
    /// let the request through), with [`DEFAULT_TIMEOUT`]s where the request sets none.
    Send,
}

/// How long a sent request waits to connect, for the first byte of the answer, and between
/// its bytes, unless the component's request options say otherwise.
pub(crate) const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Captures outgoing requests, or sends them (see [`Outgoing`]).
struct CaptureHooks {
    /// Requests beyond this many are refused.
    limit: usize,
    outgoing: Outgoing,
}

/// Sends `request` as a host would, every timeout the request leaves unset at
/// [`DEFAULT_TIMEOUT`].
async fn send(
    request: http::Request<WasiBody>,
    options: Option<wasmtime_wasi_http::RequestOptions>,
) -> wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
)> {
    let options = options.unwrap_or_default();
    let options = wasmtime_wasi_http::RequestOptions {
        connect_timeout: options.connect_timeout.or(Some(DEFAULT_TIMEOUT)),
        first_byte_timeout: options.first_byte_timeout.or(Some(DEFAULT_TIMEOUT)),
        between_bytes_timeout: options.between_bytes_timeout.or(Some(DEFAULT_TIMEOUT)),
    };
    let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
    Ok((response.map(BodyExt::boxed_unsync), Box::new(io)))
}

impl WasiHttpHooks for CaptureHooks {
    /// Sends the request (a step's customer's, its egress part let through): captured requests
    /// never get here ([`handle`]).
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                )>,
            > + Send,
    > {
        Box::new(send(request, options))
    }

    /// A captured request's body is read only when the call ends: every write the component
    /// makes is buffered, so that none waits for a reader.
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        match self.outgoing {
            Outgoing::Capture => 1 << 20,
            Outgoing::Send => wasmtime_wasi_http::p2::DEFAULT_OUTGOING_BODY_BUFFER_CHUNKS,
        }
    }
}

/// `wasi:http/outgoing-handler.handle`, as the runner serves it. A sink's request is captured on
/// the calling thread: its head at once, its body (which the component finishes after this
/// call) when the call ends ([`Host::take_requests`]), and it is answered `200` at once, with
/// no task and no thread in between. (`wasmtime-wasi-http` runs every request as two tasks on
/// its runtime's worker threads, which cost the runner about 45 µs a captured request.) A
/// step's customer's request is sent as `wasmtime-wasi-http` sends it.
fn handle(
    host: &mut Host,
    request: Resource<HostOutgoingRequest>,
    options: Option<Resource<RequestOptions>>,
) -> wasmtime_wasi_http::p2::HttpResult<Resource<HostFutureIncomingResponse>> {
    if host.hooks.outgoing == Outgoing::Send {
        return outgoing_handler::Host::handle(&mut host.http(), request, options);
    }
    let request = host.table.delete(request)?;
    if host.pending.len() >= host.hooks.limit {
        host.output_limit_hit = true;
        return Err(ErrorCode::HttpRequestDenied.into());
    }
    let scheme = match &request.scheme {
        Some(Scheme::Http) => "http".to_owned(),
        Some(Scheme::Other(s)) => s.clone(),
        Some(Scheme::Https) | None => "https".to_owned(),
    };
    let method = match &request.method {
        Method::Get => "GET".to_owned(),
        Method::Head => "HEAD".to_owned(),
        Method::Post => "POST".to_owned(),
        Method::Put => "PUT".to_owned(),
        Method::Delete => "DELETE".to_owned(),
        Method::Connect => "CONNECT".to_owned(),
        Method::Options => "OPTIONS".to_owned(),
        Method::Trace => "TRACE".to_owned(),
        Method::Patch => "PATCH".to_owned(),
        Method::Other(m) => m.clone(),
    };
    let captured = CapturedRequest {
        method,
        url: format!(
            "{scheme}://{}{}",
            request.authority.as_deref().unwrap_or_default(),
            request.path_with_query.as_deref().unwrap_or("/")
        ),
        headers: request
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: Vec::new(),
    };
    host.pending.push((captured, request.body));
    let response = http::Response::builder()
        .status(200)
        .body(
            Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("a valid response");
    // The response needs no I/O: its worker is a task that has already finished.
    let mut task = IDLE.spawn(async {});
    let _ = IDLE.block_on(&mut task);
    let worker = AbortOnDropJoinHandle::from(task);
    Ok(host
        .table
        .push(HostFutureIncomingResponse::Ready(Ok((response, worker))))?)
}

/// A runtime on the calling thread for [`handle`]'s empty workers, each run to its end at once.
static IDLE: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
});

/// The state of one store: one call of one unit.
pub(crate) struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: CaptureHooks,
    table: ResourceTable,
    /// What `wasi:config/runtime` serves.
    config: Arc<BTreeMap<String, String>>,
    /// The unit's secret values by setting name: what `wasmcloud:secrets` serves, and what the
    /// config store serves beneath `config`.
    secrets: Arc<BTreeMap<String, String>>,
    /// Outputs one record may give: the call's limit is this times its records.
    max_outputs: usize,
    /// Publishes beyond this many are refused in the current call.
    max_publishes: usize,
    /// Every accepted publish, in order (answers to JetStream are in `acks`).
    pub published: Vec<Published>,
    /// The bodies published to a JetStream ack subject (`$JS.ACK.…`) in the current call: how
    /// the `in` part answered a JetStream delivery (`+ACK`, `-NAK …`). Not outputs, not counted
    /// against the output limit.
    pub acks: Vec<Vec<u8>>,
    /// Confirmed publishes so far, for the sequence numbers of their PubAcks.
    confirmed: u64,
    /// Whether a publish or request was refused for exceeding the output limit.
    pub output_limit_hit: bool,
    /// Requests captured by `wasi:http/outgoing-handler` in the current call, each with its
    /// body as the component is writing it ([`handle`]).
    pending: Vec<(CapturedRequest, Option<WasiBody>)>,
    /// Objects captured by `wasi:blobstore`, in the order their values were finished.
    pub objects: Vec<CapturedObject>,
    /// `wasi:logging` lines (at most [`MAX_LOG_LINES`]).
    pub logs: Vec<LogLine>,
    /// Lines beyond [`MAX_LOG_LINES`].
    pub logs_dropped: usize,
    /// The component's stdout and stderr.
    pub output: MemoryOutputPipe,
    /// Bytes of `output` written before the current call.
    output_mark: usize,
    /// Memory limits.
    pub limiter: Limiter,
}

impl Host {
    /// A host serving `config` and `secrets`, doing `outgoing` with HTTP requests, refusing more
    /// than `max_outputs` deliveries and memories larger than `memory` bytes.
    pub fn new(
        config: Arc<BTreeMap<String, String>>,
        secrets: Arc<BTreeMap<String, String>>,
        outgoing: Outgoing,
        max_outputs: usize,
        memory: usize,
    ) -> Self {
        let output = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .stdout(output.clone())
            .stderr(output.clone())
            .build();
        Host {
            wasi,
            http: WasiHttpCtx::new(),
            hooks: CaptureHooks {
                limit: max_outputs,
                outgoing,
            },
            table: ResourceTable::new(),
            config,
            secrets,
            max_outputs,
            max_publishes: max_outputs,
            published: Vec::new(),
            acks: Vec::new(),
            confirmed: 0,
            output_limit_hit: false,
            pending: Vec::new(),
            objects: Vec::new(),
            logs: Vec::new(),
            logs_dropped: 0,
            output,
            output_mark: 0,
            limiter: Limiter {
                memory,
                memory_hit: false,
            },
        }
    }

    /// Forgets what the previous call on this store left behind, for the next one, which
    /// carries a batch of `records` records (its output limit is that many times one record's).
    pub fn begin_call(&mut self, records: usize) {
        self.max_publishes = self.max_outputs.saturating_mul(records.max(1));
        self.hooks.limit = self.max_publishes;
        self.published.clear();
        self.acks.clear();
        self.output_limit_hit = false;
        self.pending.clear();
        self.objects.clear();
        self.logs.clear();
        self.logs_dropped = 0;
        self.limiter.memory_hit = false;
        self.output_mark = self.output.contents().len();
    }

    /// What the component wrote to stdout and stderr during the current call.
    pub fn call_output(&self) -> bytes::Bytes {
        self.output.contents().slice(self.output_mark..)
    }

    /// Whether the captured requests reached the output limit.
    pub fn requests_at_limit(&self) -> bool {
        self.pending.len() >= self.hooks.limit
    }

    /// The requests the call captured, in order, each with its whole body; `Err` names one
    /// whose body the component did not finish or that failed.
    pub fn take_requests(&mut self) -> Result<Vec<CapturedRequest>, String> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|(mut request, body)| {
                if let Some(body) = body {
                    let mut collect = std::pin::pin!(body.collect());
                    let collected = wasmtime_wasi::runtime::poll_noop(collect.as_mut())
                        .ok_or_else(|| {
                            format!(
                                "the body of its request to {} was not finished",
                                request.url
                            )
                        })?
                        .map_err(|e| {
                            format!("the body of its request to {} failed: {e}", request.url)
                        })?;
                    request.body = collected.to_bytes().to_vec();
                }
                Ok(request)
            })
            .collect()
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl wasmcloud::messaging0_2_0::types::Host for Host {}

impl wasmcloud::messaging0_2_0::consumer::Host for Host {
    /// A confirmed publish (`etl.out.confirm` = `jetstream`): the message is published as by
    /// `publish`, and the reply is the PubAck of a stream that captures every subject, as if the
    /// runner's bus were one JetStream stream. A publish over the output limit is refused, as a
    /// full stream would refuse it.
    fn request(
        &mut self,
        subject: String,
        body: Vec<u8>,
        _timeout_ms: u32,
    ) -> Result<BrokerMessage, String> {
        self.publish(BrokerMessage {
            subject: subject.clone(),
            body,
            reply_to: None,
        })?;
        Ok(self.pub_ack())
    }

    fn publish(&mut self, msg: BrokerMessage) -> Result<(), String> {
        if msg.subject.starts_with(ACK_PREFIX) {
            self.acks.push(msg.body);
            return Ok(());
        }
        self.publish_with(msg.subject, msg.body, Vec::new())
    }
}

impl Host {
    /// Publishes `body` to `subject` with `headers` (a `wasmcloud:messaging@0.3.0` message's
    /// metadata), unless the call is over its output limit.
    fn publish_with(
        &mut self,
        subject: String,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
    ) -> Result<(), String> {
        if self.published.len() >= self.max_publishes {
            self.output_limit_hit = true;
            return Err(format!(
                "etl run: more than {} publishes for one call (the output limit)",
                self.max_publishes
            ));
        }
        self.published.push(Published {
            subject,
            body,
            headers,
        });
        Ok(())
    }

    /// The PubAck of the confirmed publish just made: a stream that captures every subject, as
    /// if the runner's bus were one JetStream stream.
    fn pub_ack(&mut self) -> BrokerMessage {
        self.confirmed += 1;
        BrokerMessage {
            subject: format!("_INBOX.etl-run.{}", self.confirmed),
            body: format!(r#"{{"stream":"{LOCAL_STREAM}","seq":{}}}"#, self.confirmed).into_bytes(),
            reply_to: None,
        }
    }
}

impl wasmcloud::messaging0_3_0::types::Host for Host {}

impl wasmcloud::messaging0_3_0::types::HostClient for Host {
    fn connect(&mut self, _name: String) -> Result<Resource<MessagingClient>, MessagingError> {
        self.table
            .push(MessagingClient)
            .map_err(|e| MessagingError::Other(e.to_string()))
    }

    fn disconnect(&mut self, _client: Resource<MessagingClient>) -> Result<(), MessagingError> {
        Ok(())
    }

    fn drop(&mut self, client: Resource<MessagingClient>) -> wasmtime::Result<()> {
        self.table.delete(client)?;
        Ok(())
    }
}

impl wasmcloud::messaging0_3_0::types::HostMessage for Host {
    fn new(&mut self, data: Vec<u8>) -> Resource<MessageV3> {
        self.table
            .push(MessageV3 {
                data,
                ..MessageV3::default()
            })
            .expect("the resource table has room")
    }

    fn topic(&mut self, msg: Resource<MessageV3>) -> Option<String> {
        self.table.get(&msg).ok()?.topic.clone()
    }

    fn content_type(&mut self, _msg: Resource<MessageV3>) -> Option<String> {
        None
    }

    fn set_content_type(&mut self, _msg: Resource<MessageV3>, _content_type: String) {}

    fn data(&mut self, msg: Resource<MessageV3>) -> Vec<u8> {
        self.table
            .get(&msg)
            .map(|m| m.data.clone())
            .unwrap_or_default()
    }

    fn set_data(&mut self, msg: Resource<MessageV3>, data: Vec<u8>) {
        if let Ok(m) = self.table.get_mut(&msg) {
            m.data = data;
        }
    }

    fn metadata(&mut self, msg: Resource<MessageV3>) -> Option<Vec<(String, String)>> {
        let m = self.table.get(&msg).ok()?;
        (!m.metadata.is_empty()).then(|| m.metadata.clone())
    }

    fn add_metadata(&mut self, msg: Resource<MessageV3>, key: String, value: String) {
        if let Ok(m) = self.table.get_mut(&msg) {
            m.metadata.retain(|(k, _)| *k != key);
            m.metadata.push((key, value));
        }
    }

    fn set_metadata(&mut self, msg: Resource<MessageV3>, meta: Vec<(String, String)>) {
        if let Ok(m) = self.table.get_mut(&msg) {
            m.metadata = meta;
        }
    }

    fn remove_metadata(&mut self, msg: Resource<MessageV3>, key: String) {
        if let Ok(m) = self.table.get_mut(&msg) {
            m.metadata.retain(|(k, _)| *k != key);
        }
    }

    fn drop(&mut self, msg: Resource<MessageV3>) -> wasmtime::Result<()> {
        self.table.delete(msg)?;
        Ok(())
    }
}

impl wasmcloud::messaging0_3_0::producer::Host for Host {
    /// A publish, as `consumer.publish`; its metadata (`Nats-Msg-Id`) is kept beside it.
    fn send(
        &mut self,
        _client: Resource<MessagingClient>,
        topic: String,
        msg: Resource<MessageV3>,
    ) -> Result<(), MessagingError> {
        let m = self
            .table
            .delete(msg)
            .map_err(|e| MessagingError::Other(e.to_string()))?;
        self.publish_with(topic, m.data, m.metadata)
            .map_err(MessagingError::Other)
    }
}

impl wasmcloud::messaging0_3_0::request_reply::HostRequestOptions for Host {
    fn new(&mut self) -> Resource<RequestOptionsV3> {
        self.table
            .push(RequestOptionsV3)
            .expect("the resource table has room")
    }

    fn set_timeout_ms(&mut self, _options: Resource<RequestOptionsV3>, _timeout_ms: u32) {}

    fn set_expected_replies(&mut self, _options: Resource<RequestOptionsV3>, _replies: u32) {}

    fn drop(&mut self, options: Resource<RequestOptionsV3>) -> wasmtime::Result<()> {
        self.table.delete(options)?;
        Ok(())
    }
}

impl wasmcloud::messaging0_3_0::request_reply::Host for Host {
    /// A confirmed publish, as `consumer.request`: one reply, the PubAck.
    fn request(
        &mut self,
        _client: Resource<MessagingClient>,
        topic: String,
        msg: Resource<MessageV3>,
        options: Option<Resource<RequestOptionsV3>>,
    ) -> Result<Vec<Resource<MessageV3>>, MessagingError> {
        if let Some(options) = options {
            let _ = self.table.delete(options);
        }
        let m = self
            .table
            .get(&msg)
            .map_err(|e| MessagingError::Other(e.to_string()))?
            .clone();
        self.publish_with(topic, m.data, m.metadata)
            .map_err(MessagingError::Other)?;
        let ack = self.pub_ack();
        let reply = self
            .table
            .push(MessageV3 {
                topic: Some(ack.subject),
                data: ack.body,
                metadata: Vec::new(),
            })
            .map_err(|e| MessagingError::Other(e.to_string()))?;
        Ok(vec![reply])
    }

    fn reply(
        &mut self,
        _reply_to: Resource<MessageV3>,
        msg: Resource<MessageV3>,
    ) -> Result<(), MessagingError> {
        let _ = self.table.delete(msg);
        Err(MessagingError::Other(
            "etl run: a unit does not reply to messages".to_owned(),
        ))
    }
}

/// The prefix of a JetStream ack subject: a publish there answers a delivery.
pub(crate) const ACK_PREFIX: &str = "$JS.ACK.";

/// The stream the PubAcks of confirmed publishes name.
const LOCAL_STREAM: &str = "ETL_RUN";

impl Host {
    /// Every configuration entry, in key order.
    fn config_entries(&self) -> Vec<(String, String)> {
        self.config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The config store's view, as a v2 host layers it: the secrets (the `wasi:config`
    /// interface's config, where the deployment's Secret goes), then the configuration over
    /// them; in key order.
    fn store_entries(&self) -> Vec<(String, String)> {
        let mut all: BTreeMap<&String, &String> = self.secrets.iter().collect();
        all.extend(self.config.iter());
        all.into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl wasi::config0_2_0_draft::runtime::Host for Host {
    fn get(&mut self, key: String) -> Result<Option<String>, ConfigError> {
        Ok(self.config.get(&key).cloned())
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, ConfigError> {
        Ok(self.config_entries())
    }
}

impl wasi::config0_2_0_rc_1::store::Host for Host {
    fn get(&mut self, key: String) -> Result<Option<String>, wasi::config0_2_0_rc_1::store::Error> {
        Ok(self
            .config
            .get(&key)
            .or_else(|| self.secrets.get(&key))
            .cloned())
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, wasi::config0_2_0_rc_1::store::Error> {
        Ok(self.store_entries())
    }
}

impl wasmcloud::secrets::store::Host for Host {
    fn get(
        &mut self,
        key: String,
    ) -> Result<Resource<SecretName>, wasmcloud::secrets::store::SecretsError> {
        if !self.secrets.contains_key(&key) {
            return Err(wasmcloud::secrets::store::SecretsError::NotFound);
        }
        self.table
            .push(SecretName(key))
            .map_err(|e| wasmcloud::secrets::store::SecretsError::Io(format!("etl run: {e}")))
    }
}

impl wasmcloud::secrets::store::HostSecret for Host {
    fn drop(&mut self, rep: Resource<SecretName>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl wasmcloud::secrets::reveal::Host for Host {
    fn reveal(&mut self, s: Resource<SecretName>) -> wasmcloud::secrets::store::SecretValue {
        let value = self
            .table
            .get(&s)
            .ok()
            .and_then(|SecretName(name)| self.secrets.get(name))
            .cloned()
            .unwrap_or_default();
        wasmcloud::secrets::store::SecretValue::String(value)
    }
}

impl wasi::logging::logging::Host for Host {
    fn log(&mut self, level: Level, context: String, message: String) {
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Critical => "critical",
        };
        if self.logs.len() >= MAX_LOG_LINES {
            self.logs_dropped += 1;
            return;
        }
        self.logs.push(LogLine {
            level,
            context,
            message,
        });
    }
}

impl blob_api::Host for Host {
    fn create_container(&mut self, name: String) -> Result<Resource<Container>, String> {
        self.get_container(name)
    }

    fn get_container(&mut self, name: String) -> Result<Resource<Container>, String> {
        self.table
            .push(Container { name })
            .map_err(|e| format!("etl run: {e}"))
    }

    fn delete_container(&mut self, _name: String) -> Result<(), String> {
        Err(not_served("delete-container"))
    }

    fn container_exists(&mut self, _name: String) -> Result<bool, String> {
        Ok(true)
    }

    fn copy_object(
        &mut self,
        _src: blob_types::ObjectId,
        _dest: blob_types::ObjectId,
    ) -> Result<(), String> {
        Err(not_served("copy-object"))
    }

    fn move_object(
        &mut self,
        _src: blob_types::ObjectId,
        _dest: blob_types::ObjectId,
    ) -> Result<(), String> {
        Err(not_served("move-object"))
    }
}

impl container_api::Host for Host {}

impl container_api::HostContainer for Host {
    fn name(&mut self, this: Resource<Container>) -> Result<String, String> {
        self.table
            .get(&this)
            .map(|c| c.name.clone())
            .map_err(|e| format!("etl run: {e}"))
    }

    fn info(&mut self, this: Resource<Container>) -> Result<blob_types::ContainerMetadata, String> {
        Ok(blob_types::ContainerMetadata {
            name: self.name(this)?,
            created_at: 0,
        })
    }

    fn get_data(
        &mut self,
        _this: Resource<Container>,
        _name: String,
        _start: u64,
        _end: u64,
    ) -> Result<Resource<IncomingValue>, String> {
        Err(not_served("get-data"))
    }

    fn write_data(
        &mut self,
        this: Resource<Container>,
        name: String,
        data: Resource<OutgoingValue>,
    ) -> Result<(), String> {
        let container = self.name(this)?;
        let value = self
            .table
            .get_mut(&data)
            .map_err(|e| format!("etl run: {e}"))?;
        value.targets.push((container, name));
        Ok(())
    }

    fn list_objects(
        &mut self,
        _this: Resource<Container>,
    ) -> Result<Resource<ObjectNames>, String> {
        Err(not_served("list-objects"))
    }

    fn delete_object(&mut self, _this: Resource<Container>, _name: String) -> Result<(), String> {
        Err(not_served("delete-object"))
    }

    fn delete_objects(
        &mut self,
        _this: Resource<Container>,
        _names: Vec<String>,
    ) -> Result<(), String> {
        Err(not_served("delete-objects"))
    }

    fn has_object(&mut self, _this: Resource<Container>, _name: String) -> Result<bool, String> {
        Err(not_served("has-object"))
    }

    fn object_info(
        &mut self,
        _this: Resource<Container>,
        _name: String,
    ) -> Result<blob_types::ObjectMetadata, String> {
        Err(not_served("object-info"))
    }

    fn clear(&mut self, _this: Resource<Container>) -> Result<(), String> {
        Err(not_served("clear"))
    }

    fn drop(&mut self, rep: Resource<Container>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl container_api::HostStreamObjectNames for Host {
    fn read_stream_object_names(
        &mut self,
        this: Resource<ObjectNames>,
        _len: u64,
    ) -> Result<(Vec<String>, bool), String> {
        match *self.table.get(&this).map_err(|e| e.to_string())? {}
    }

    fn skip_stream_object_names(
        &mut self,
        this: Resource<ObjectNames>,
        _num: u64,
    ) -> Result<(u64, bool), String> {
        match *self.table.get(&this).map_err(|e| e.to_string())? {}
    }

    fn drop(&mut self, rep: Resource<ObjectNames>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl blob_types::Host for Host {}

impl blob_types::HostOutgoingValue for Host {
    fn new_outgoing_value(&mut self) -> Resource<OutgoingValue> {
        self.table
            .push(OutgoingValue {
                body: MemoryOutputPipe::new(self.limiter.memory),
                body_taken: false,
                targets: Vec::new(),
            })
            .expect("the resource table has room")
    }

    fn outgoing_value_write_body(
        &mut self,
        this: Resource<OutgoingValue>,
    ) -> Result<Resource<DynOutputStream>, ()> {
        let value = self.table.get_mut(&this).map_err(drop)?;
        if std::mem::replace(&mut value.body_taken, true) {
            return Err(());
        }
        let stream: DynOutputStream = Box::new(value.body.clone());
        self.table.push_child(stream, &this).map_err(drop)
    }

    fn finish(&mut self, this: Resource<OutgoingValue>) -> Result<(), String> {
        let value = self
            .table
            .delete(this)
            .map_err(|e| format!("etl run: the value cannot be finished: {e}"))?;
        let data = value.body.contents().to_vec();
        for (container, name) in value.targets {
            if self.published.len() + self.objects.len() >= self.max_publishes {
                self.output_limit_hit = true;
                return Err(format!(
                    "etl run: more than {} objects for one call (the output limit)",
                    self.max_publishes
                ));
            }
            self.objects.push(CapturedObject {
                container,
                name,
                data: data.clone(),
            });
        }
        Ok(())
    }

    fn drop(&mut self, rep: Resource<OutgoingValue>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl blob_types::HostIncomingValue for Host {
    fn incoming_value_consume_sync(
        &mut self,
        this: Resource<IncomingValue>,
    ) -> Result<Vec<u8>, String> {
        match *self.table.get(&this).map_err(|e| e.to_string())? {}
    }

    fn incoming_value_consume_async(
        &mut self,
        this: Resource<IncomingValue>,
    ) -> Result<Resource<DynInputStream>, String> {
        match *self.table.get(&this).map_err(|e| e.to_string())? {}
    }

    fn size(&mut self, this: Resource<IncomingValue>) -> u64 {
        match *self.table.get(&this).expect("a live value") {}
    }

    fn drop(&mut self, rep: Resource<IncomingValue>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

/// A linker serving every import a composed unit may have.
pub(crate) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
    // The runner's own `handle`, in place of wasmtime-wasi-http's.
    linker.allow_shadowing(true);
    linker
        .instance("wasi:http/outgoing-handler@0.2.12")?
        .func_wrap(
            "handle",
            |mut store: wasmtime::StoreContextMut<'_, Host>,
             (request, options): (
                Resource<HostOutgoingRequest>,
                Option<Resource<RequestOptions>>,
            )| {
                let answer = match handle(store.data_mut(), request, options) {
                    Ok(future) => Ok(future),
                    Err(e) => Err(e.downcast()?),
                };
                Ok((answer,))
            },
        )?;
    linker.allow_shadowing(false);
    Unit::add_to_linker::<_, HasSelf<Host>>(&mut linker, |host| host)?;
    blob_types::add_to_linker::<_, HasSelf<Host>>(&mut linker, |host| host)?;
    container_api::add_to_linker::<_, HasSelf<Host>>(&mut linker, |host| host)?;
    blob_api::add_to_linker::<_, HasSelf<Host>>(&mut linker, |host| host)?;
    Ok(linker)
}
