//! The host side of one call into a composed component: what its imports do, and what the
//! call left behind (publishes, captured HTTP requests, logs, limit breaches).
//!
//! `wasmcloud:messaging/consumer` publishes go into the store, not onto a bus: the runner
//! delivers them only if the call succeeds, so a failed or retried call leaves no trace.
//! `wasi:http/outgoing-handler` requests are captured and answered `200` without touching the
//! network. `wasi:config/runtime` serves the unit's configuration from the deployment plan.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use wasmtime::ResourceLimiter;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

wasmtime::component::bindgen!({
    inline: "
        package etl:runner;

        /// What the runner serves a composed unit besides WASI and wasi:http, and the
        /// messaging entry point it calls.
        world unit {
            import wasmcloud:messaging/consumer@0.2.0;
            import wasi:config/runtime@0.2.0-draft;
            import wasi:logging/logging@0.1.0-draft;
            export wasmcloud:messaging/handler@0.2.0;
        }
    ",
    path: [
        "../wit/deps/wasmcloud-messaging-0.2.0",
        "../wit/deps/wasi-config-0.2.0-draft",
        "../wit/deps/wasi-logging-0.1.0-draft",
    ],
});

pub(crate) use wasmcloud::messaging::types::BrokerMessage;

use wasi::config::runtime::ConfigError;
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

/// Captures outgoing requests instead of sending them.
struct CaptureHooks {
    captured: Arc<Mutex<Vec<CapturedRequest>>>,
    /// Requests beyond this many are refused.
    limit: usize,
}

impl WasiHttpHooks for CaptureHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                )>,
            > + Send,
    > {
        let captured = Arc::clone(&self.captured);
        let limit = self.limit;
        Box::new(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            {
                let mut captured = captured.lock().expect("not poisoned");
                if captured.len() >= limit {
                    return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
                }
                captured.push(CapturedRequest {
                    method: parts.method.to_string(),
                    url: parts.uri.to_string(),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.to_string(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect(),
                    body: body.to_vec(),
                });
            }
            let response = http::Response::builder()
                .status(200)
                .body(
                    Empty::<Bytes>::new()
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                )
                .expect("a valid response");
            let done: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// The state of one store: one call of one unit.
pub(crate) struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: CaptureHooks,
    table: ResourceTable,
    /// What `wasi:config/runtime` serves.
    config: Arc<BTreeMap<String, String>>,
    /// Publishes beyond this many are refused.
    max_publishes: usize,
    /// Every accepted publish, in order.
    pub published: Vec<BrokerMessage>,
    /// Whether a publish or request was refused for exceeding the output limit.
    pub output_limit_hit: bool,
    /// Requests captured by `wasi:http/outgoing-handler`.
    pub requests: Arc<Mutex<Vec<CapturedRequest>>>,
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
    /// A host serving `config`, refusing more than `max_outputs` deliveries and memories larger
    /// than `memory` bytes.
    pub fn new(config: Arc<BTreeMap<String, String>>, max_outputs: usize, memory: usize) -> Self {
        let output = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .stdout(output.clone())
            .stderr(output.clone())
            .build();
        let requests = Arc::new(Mutex::new(Vec::new()));
        Host {
            wasi,
            http: WasiHttpCtx::new(),
            hooks: CaptureHooks {
                captured: Arc::clone(&requests),
                limit: max_outputs,
            },
            table: ResourceTable::new(),
            config,
            max_publishes: max_outputs,
            published: Vec::new(),
            output_limit_hit: false,
            requests,
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

    /// Forgets what the previous call on this store left behind, for the next one.
    pub fn begin_call(&mut self) {
        self.published.clear();
        self.output_limit_hit = false;
        self.requests.lock().expect("not poisoned").clear();
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
        self.requests.lock().expect("not poisoned").len() >= self.hooks.limit
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

impl wasmcloud::messaging::types::Host for Host {}

impl wasmcloud::messaging::consumer::Host for Host {
    fn request(
        &mut self,
        subject: String,
        _body: Vec<u8>,
        _timeout_ms: u32,
    ) -> Result<BrokerMessage, String> {
        Err(format!(
            "etl run: request/reply is not available (subject `{subject}`)"
        ))
    }

    fn publish(&mut self, msg: BrokerMessage) -> Result<(), String> {
        if self.published.len() >= self.max_publishes {
            self.output_limit_hit = true;
            return Err(format!(
                "etl run: more than {} publishes for one record (the output limit)",
                self.max_publishes
            ));
        }
        self.published.push(msg);
        Ok(())
    }
}

impl wasi::config::runtime::Host for Host {
    fn get(&mut self, key: String) -> Result<Option<String>, ConfigError> {
        Ok(self.config.get(&key).cloned())
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, ConfigError> {
        Ok(self
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
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

/// A linker serving every import a composed unit may have.
pub(crate) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
    Unit::add_to_linker::<_, HasSelf<Host>>(&mut linker, |host| host)?;
    Ok(linker)
}
