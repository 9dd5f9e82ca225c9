//! Requests to a host's workload API: protojson over NATS request/reply on
//! `runtime.host.<hostId>.<command>` (`host_client.go` in the runtime operator).

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::proto::{self, StatusReply, WorkloadIdRequest, WorkloadStatus};

/// Why a host did not answer as expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// No answer in time.
    #[error(
        "{subject}: no answer within {timeout:?} (a wash host logs a request it cannot decode, \
         e.g. one with a field it does not know, and does not answer it: see the host's log)"
    )]
    Timeout {
        /// The request's subject.
        subject: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// Nobody subscribes to the subject: the host is gone (or not connected).
    #[error("{subject}: no host listens there (gone, or not connected to this NATS)")]
    NoResponders {
        /// The request's subject.
        subject: String,
    },
    /// NATS failed the request.
    #[error("{subject}: {message}")]
    Nats {
        /// The request's subject.
        subject: String,
        /// NATS's error.
        message: String,
    },
    /// The answer is not the message expected.
    #[error("{subject}: unexpected answer ({message}): {answer}")]
    Answer {
        /// The request's subject.
        subject: String,
        /// Why it does not decode.
        message: String,
        /// The answer's start.
        answer: String,
    },
}

/// A subject of host `host_id`'s API.
pub fn subject(host_id: &str, command: &str) -> String {
    format!("runtime.host.{host_id}.{command}")
}

/// One request and its decoded answer.
pub async fn request<T: DeserializeOwned>(
    nats: &async_nats::Client,
    subject: String,
    payload: Vec<u8>,
    timeout: Duration,
) -> Result<T, HostError> {
    let request = async_nats::Request::new()
        .payload(payload.into())
        .timeout(Some(timeout));
    let msg = match nats.send_request(subject.clone(), request).await {
        Ok(msg) => msg,
        Err(e) => {
            return Err(match e.kind() {
                async_nats::RequestErrorKind::TimedOut => HostError::Timeout { subject, timeout },
                async_nats::RequestErrorKind::NoResponders => HostError::NoResponders { subject },
                _ => HostError::Nats {
                    subject,
                    message: e.to_string(),
                },
            });
        }
    };
    serde_json::from_slice(&msg.payload).map_err(|e| HostError::Answer {
        subject,
        message: e.to_string(),
        answer: String::from_utf8_lossy(&msg.payload)
            .chars()
            .take(300)
            .collect(),
    })
}

/// `workload.status`.
pub async fn status(
    nats: &async_nats::Client,
    host_id: &str,
    workload_id: &str,
    timeout: Duration,
) -> Result<WorkloadStatus, HostError> {
    let body = serde_json::to_vec(&WorkloadIdRequest { workload_id }).expect("serializes");
    let reply: StatusReply =
        request(nats, subject(host_id, "workload.status"), body, timeout).await?;
    Ok(reply.workload_status.unwrap_or_default())
}

/// `workload.start` with a request [`super::request::Template::request`] made.
pub async fn start(
    nats: &async_nats::Client,
    host_id: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<WorkloadStatus, HostError> {
    let reply: StatusReply =
        request(nats, subject(host_id, "workload.start"), body, timeout).await?;
    Ok(reply.workload_status.unwrap_or_default())
}

/// How a stop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The host no longer has the workload.
    Gone,
    /// The host keeps it in error (the next stop drops it).
    InError(String),
}

/// `finalize`: `workload.stop`, then `workload.status` until the host no longer has it (a
/// stopping workload keeps its id until its teardown is done, and may still take messages).
pub async fn stop(
    nats: &async_nats::Client,
    host_id: &str,
    workload_id: &str,
    stop_timeout: Duration,
    status_timeout: Duration,
) -> Result<Stopped, String> {
    let body = serde_json::to_vec(&WorkloadIdRequest { workload_id }).expect("serializes");
    let t = Instant::now();
    let _: StatusReply = request(nats, subject(host_id, "workload.stop"), body, stop_timeout)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let status = status(nats, host_id, workload_id, status_timeout)
            .await
            .map_err(|e| e.to_string())?;
        match status.workload_state.as_str() {
            proto::state::NOT_FOUND | "" => return Ok(Stopped::Gone),
            proto::state::ERROR => return Ok(Stopped::InError(status.message)),
            state if t.elapsed() > stop_timeout => {
                return Err(format!(
                    "workload {workload_id} still {state} {stop_timeout:?} after workload.stop"
                ));
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

/// How often a starting or stopping workload's status is asked.
pub const POLL: Duration = Duration::from_millis(200);
