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

/// Opens the bucket `name`, creating it (one value per key, at most `max_bytes`) when missing.
pub async fn bucket(
    js: &jetstream::Context,
    name: &str,
    description: &str,
    max_bytes: i64,
) -> Result<kv::Store, Error> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    let config = kv::Config {
        bucket: name.to_owned(),
        description: description.to_owned(),
        history: 1,
        max_bytes,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    match js.create_key_value(config).await {
        Ok(store) => Ok(store),
        Err(create) => js.get_key_value(name).await.map_err(|get| Error::Bucket {
            name: name.to_owned(),
            detail: format!("{create}; opening it: {get}"),
        }),
    }
}
