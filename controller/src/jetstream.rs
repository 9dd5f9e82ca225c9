//! The JetStream streams and key-value buckets the controller keeps on the data plane's NATS,
//! made idempotently: a stream is created when missing, updated only when a setting the
//! controller owns differs, and otherwise left alone (the same configuration twice changes
//! nothing).

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

/// Why a stream or bucket cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating or updating a stream failed.
    #[error("JetStream stream `{name}`: {detail}")]
    Stream {
        /// The stream.
        name: String,
        /// The server's or client's words.
        detail: String,
    },
    /// Opening or creating a bucket failed.
    #[error("JetStream key-value bucket `{name}`: {detail}")]
    Bucket {
        /// The bucket.
        name: String,
        /// The server's or client's words.
        detail: String,
    },
}

/// How often a stream being read is checked to be still there, and the same: a stream deleted
/// while an ordered consumer reads it leaves the consumer trying to come back forever, without
/// a word.
pub const STREAM_CHECK: Duration = Duration::from_secs(5);

/// Whether `e` (of a JetStream API request) says the stream does not exist.
pub fn stream_not_found(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(error) = cause {
        if error
            .downcast_ref::<jetstream::Error>()
            .is_some_and(|e| e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
        {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The creation time of a stream, as the controller saves it (RFC 3339).
pub fn created(info: &stream::Info) -> String {
    info.created
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// What a stream being read is, checked now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// It is there, created then (RFC 3339).
    Created(String),
    /// It is gone.
    Gone,
    /// It cannot be told (NATS did not answer).
    Unknown,
}

/// Checks `stream`.
pub async fn check(stream: &mut stream::Stream) -> Checked {
    match stream.info().await {
        Ok(info) => Checked::Created(created(info)),
        Err(e) if stream_not_found(&e) => Checked::Gone,
        Err(e) => {
            tracing::debug!(
                "JetStream stream `{}`: {e}",
                stream.cached_info().config.name
            );
            Checked::Unknown
        }
    }
}

/// What [`ensure_stream`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// The stream did not exist.
    Created,
    /// A setting differed.
    Updated,
    /// It was as wanted.
    Unchanged,
}

/// A stream's settings the controller owns; the rest are the server's defaults (file storage,
/// limits retention, discard old).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// Its name.
    pub name: String,
    /// What it says it is for.
    pub description: String,
    /// The subjects it captures.
    pub subjects: Vec<String>,
    /// How long it keeps a message (zero: forever).
    pub max_age: Duration,
    /// Most bytes it keeps.
    pub max_bytes: i64,
    /// Most messages it keeps per subject (-1: no limit).
    pub max_messages_per_subject: i64,
}

impl StreamSpec {
    fn differs(&self, config: &stream::Config) -> bool {
        config.subjects != self.subjects
            || config.max_age != self.max_age
            || config.max_bytes != self.max_bytes
            || config.max_messages_per_subject != self.max_messages_per_subject
            || config.description.as_deref() != Some(self.description.as_str())
    }

    fn apply(&self, config: &mut stream::Config) {
        config.subjects = self.subjects.clone();
        config.max_age = self.max_age;
        config.max_bytes = self.max_bytes;
        config.max_messages_per_subject = self.max_messages_per_subject;
        config.description = Some(self.description.clone());
    }
}

/// Creates the stream of `spec`, or updates it when a setting it owns differs.
pub async fn ensure_stream(
    js: &jetstream::Context,
    spec: &StreamSpec,
) -> Result<(stream::Stream, Ensured), Error> {
    let failed = |detail: String| Error::Stream {
        name: spec.name.clone(),
        detail,
    };
    match js.get_stream(&spec.name).await {
        Ok(mut existing) => {
            let info = existing
                .info()
                .await
                .map_err(|e| failed(e.to_string()))?
                .clone();
            if !spec.differs(&info.config) {
                return Ok((existing, Ensured::Unchanged));
            }
            let mut config = info.config;
            spec.apply(&mut config);
            js.update_stream(config)
                .await
                .map_err(|e| failed(format!("updating it: {e}")))?;
            let stream = js
                .get_stream(&spec.name)
                .await
                .map_err(|e| failed(e.to_string()))?;
            Ok((stream, Ensured::Updated))
        }
        Err(get)
            if matches!(
                get.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(e)
                    if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            let mut config = stream::Config {
                name: spec.name.clone(),
                storage: stream::StorageType::File,
                discard: stream::DiscardPolicy::Old,
                ..Default::default()
            };
            spec.apply(&mut config);
            match js.create_stream(config).await {
                Ok(stream) => Ok((stream, Ensured::Created)),
                // Created meanwhile by another controller.
                Err(create) => match js.get_stream(&spec.name).await {
                    Ok(stream) => Ok((stream, Ensured::Unchanged)),
                    Err(_) => Err(failed(format!("{get}; creating it: {create}"))),
                },
            }
        }
        Err(get) => Err(failed(get.to_string())),
    }
}

/// A key-value bucket's settings the controller owns (one value per key, file storage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    /// Its name.
    pub name: String,
    /// What it says it is for.
    pub description: String,
    /// Most bytes it keeps.
    pub max_bytes: i64,
    /// How long it keeps an entry (zero: forever).
    pub max_age: Duration,
    /// When full: drop the oldest entries (`true`), or refuse new ones (JetStream's default
    /// for buckets: a bucket of values that must not vanish).
    pub discard_old: bool,
}

impl BucketSpec {
    fn discard(&self) -> stream::DiscardPolicy {
        if self.discard_old {
            stream::DiscardPolicy::Old
        } else {
            stream::DiscardPolicy::New
        }
    }
}

/// Opens the bucket of `spec`, creating it when missing, and updates its stream when a setting
/// of `spec` differs (as [`ensure_stream`] does a stream's).
pub async fn bucket(js: &jetstream::Context, spec: &BucketSpec) -> Result<kv::Store, Error> {
    let failed = |detail: String| Error::Bucket {
        name: spec.name.clone(),
        detail,
    };
    let mut made = false;
    let store = match js.get_key_value(&spec.name).await {
        Ok(store) => store,
        Err(_) => {
            made = true;
            let config = kv::Config {
                bucket: spec.name.clone(),
                description: spec.description.clone(),
                history: 1,
                max_bytes: spec.max_bytes,
                max_age: spec.max_age,
                storage: stream::StorageType::File,
                ..Default::default()
            };
            match js.create_key_value(config).await {
                Ok(store) => store,
                Err(create) => js
                    .get_key_value(&spec.name)
                    .await
                    .map_err(|get| failed(format!("{create}; opening it: {get}")))?,
            }
        }
    };
    // The bucket's stream: `KV_<bucket>`.
    let mut stream = js
        .get_stream(format!("KV_{}", spec.name))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let config = stream
        .info()
        .await
        .map_err(|e| failed(e.to_string()))?
        .config
        .clone();
    if config.max_bytes != spec.max_bytes
        || config.max_age != spec.max_age
        || config.discard != spec.discard()
    {
        let mut config = config;
        config.max_bytes = spec.max_bytes;
        config.max_age = spec.max_age;
        config.discard = spec.discard();
        js.update_stream(config)
            .await
            .map_err(|e| failed(format!("updating it: {e}")))?;
        if !made {
            tracing::info!(bucket = %spec.name, "JetStream key-value bucket updated");
        }
    }
    Ok(store)
}
