//! `msg-id`: the `Nats-Msg-Id` header on what a unit publishes, world
//! `etl:platform-msg-id/msg-id` (wasmCloud 1.x, where the project sets `delivery.nats_msg_id`).
//!
//! Composed between the `out` part and the host: the out part's `wasmcloud:messaging/consumer`
//! import is this part's export. A message whose body is an etl envelope (`docs/envelope.md`)
//! whose records all carry an id gets the header `Nats-Msg-Id` = `<id>@<subject>`, `<id>` being
//! the record's (one record) or `<first id>+<count>` (`etl_harness_bindings::id::message`): a
//! `publish` goes out through `wasmcloud:messaging/producer@0.3.0`, a `request` (a publish
//! JetStream confirms) through `request-reply@0.3.0`, whose host publishes the message's
//! metadata as NATS headers. The same records give the same id on every delivery of the message
//! that produced them, so a JetStream stream drops a message published again within its
//! `duplicate_window`. Anything else (not an envelope, a record without id, a message with a
//! `reply-to`) goes to the host's `wasmcloud:messaging/consumer` unchanged.
//!
//! The 1.x host serves `@0.3.0` only when started with the experimental feature
//! `wasmcloud-messaging-v3`, publishes through the link named `default`, and takes no request
//! options: a request waits as long as the host's NATS client does (10 s), not `timeout-ms`.

etl_harness_bindings::generate!(messaging_0_3 "etl:platform-msg-id/msg-id");

use etl_harness_bindings::id;
use exports::wasmcloud::messaging0_2_0::consumer::Guest;
use wasmcloud::messaging0_2_0::consumer;
use wasmcloud::messaging0_2_0::types::BrokerMessage;
use wasmcloud::messaging0_3_0::{producer, request_reply, types};

struct MsgId;

impl Guest for MsgId {
    fn request(subject: String, body: Vec<u8>, timeout_ms: u32) -> Result<BrokerMessage, String> {
        let Some(msg_id) = message_id(&body, &subject) else {
            return consumer::request(&subject, &body, timeout_ms);
        };
        let client = connect(&subject)?;
        let message = with_id(&body, &msg_id);
        let replies = request_reply::request(&client, &subject, &message, None)
            .map_err(|e| failed("request", &subject, &e))?;
        let reply = replies
            .into_iter()
            .next()
            .ok_or_else(|| format!("etl msg-id: the request to `{subject}` got no reply"))?;
        Ok(BrokerMessage {
            subject: reply.topic().unwrap_or_default(),
            body: reply.data(),
            reply_to: None,
        })
    }

    fn publish(msg: BrokerMessage) -> Result<(), String> {
        let msg_id = msg
            .reply_to
            .is_none()
            .then(|| message_id(&msg.body, &msg.subject))
            .flatten();
        let Some(msg_id) = msg_id else {
            return consumer::publish(&msg);
        };
        let client = connect(&msg.subject)?;
        producer::send(&client, &msg.subject, with_id(&msg.body, &msg_id))
            .map_err(|e| failed("publish", &msg.subject, &e))
    }
}

/// The `Nats-Msg-Id` of a message to `subject` with body `body`, when it is an envelope whose
/// records all carry an id.
fn message_id(body: &[u8], subject: &str) -> Option<String> {
    let batch = etl_envelope::decode_batch(body).ok()?;
    id::message(batch.iter().map(|b| b.envelope.id.as_deref()), subject)
}

/// A `wasmcloud:messaging@0.3.0` message of `body` with the header `Nats-Msg-Id: <msg_id>`.
fn with_id(body: &[u8], msg_id: &str) -> types::Message {
    let message = types::Message::new(body);
    message.add_metadata(id::NATS_MSG_ID, msg_id);
    message
}

/// The host's client of the component's `default` messaging link.
fn connect(subject: &str) -> Result<types::Client, String> {
    types::Client::connect("").map_err(|e| failed("connect for", subject, &e))
}

/// The error of `what` on `subject`.
fn failed(what: &str, subject: &str, e: &types::Error) -> String {
    let why = match e {
        types::Error::Timeout => "timed out".to_string(),
        types::Error::Connection(s) => format!("connection: {s}"),
        types::Error::PermissionDenied(s) => format!("permission denied: {s}"),
        types::Error::Other(s) => s.clone(),
    };
    format!("etl msg-id: {what} `{subject}` with a `Nats-Msg-Id` failed: {why}")
}

export!(MsgId);
