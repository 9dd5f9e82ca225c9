//! wasmCloud 1.x secrets: the `nats-kv` backend run.sh starts next to the hosts
//! (`etl-e2e-secrets`, `secrets-nats-kv` 0.2.0), driven through its client API.
//!
//! How a secret reaches a component on 1.x: wadm writes each `secrets:` entry of a component as a
//! secret reference (`SECRET_…`, backend and key from the entry and its policy); when it starts
//! the component, the host asks the policy's backend (`<prefix>.v1alpha1.nats-kv.get`, the request
//! sealed to the backend's transit xkey) with the component's entity JWT — the wascap claims
//! embedded in the Wasm — and its own host JWT. The backend answers only for a component whose
//! claims' subject it has a mapping for (`add_mapping`), and the host refuses to start a component
//! with secrets but without embedded claims ("entity did not have an embedded JWT, required to
//! fetch secrets (was this entity signed during build?)").

use std::collections::{BTreeSet, HashMap};

use anyhow::{Context as _, ensure};
use nkeys::{KeyPair, XKey};
use secrets_nats_kv::PutSecretRequest;
use secrets_nats_kv::client::{self, SECRETS_API_VERSION};
use wascap::jwt::{Claims, Host};
use wasmcloud_secrets_types::SecretConfig;

/// The backend's name: what etl's secret policy names (`backend: nats-kv`).
pub const BACKEND: &str = "nats-kv";

/// The backend run.sh started, on the test's NATS.
pub struct SecretsBackend {
    nats: async_nats::Client,
    /// The hosts' secrets topic prefix (`ETL_E2E_SECRETS_PREFIX`).
    prefix: String,
    /// The backend's transit public key: what a request is sealed to.
    transit: XKey,
}

impl SecretsBackend {
    /// The backend under `ETL_E2E_SECRETS_PREFIX`, asked for its transit key.
    pub async fn connect(nats: &async_nats::Client) -> anyhow::Result<Self> {
        let prefix = std::env::var("ETL_E2E_SECRETS_PREFIX").context(
            "ETL_E2E_SECRETS_PREFIX is not set: run this test through tests/e2e/run.sh v1",
        )?;
        let subject = format!("{prefix}.{SECRETS_API_VERSION}.{BACKEND}.server_xkey");
        let reply = nats
            .request(subject.clone(), "".into())
            .await
            .with_context(|| format!("{subject}: no secrets backend answered"))?;
        let transit = XKey::from_public_key(std::str::from_utf8(&reply.payload)?)
            .with_context(|| format!("{subject}: not an xkey"))?;
        Ok(Self {
            nats: nats.clone(),
            prefix,
            transit,
        })
    }

    /// Puts `value` as the latest version of secret `key` (sealed to the backend's transit key
    /// by `secrets_nats_kv::client::put_secret`).
    pub async fn put(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let secret = PutSecretRequest {
            key: key.to_owned(),
            version: String::new(),
            string_secret: Some(value.to_owned()),
            binary_secret: None,
        };
        client::put_secret(&self.nats, &self.prefix, &self.transit, secret)
            .await
            .with_context(|| format!("putting secret {key}"))
    }

    /// Lets the component (or provider) whose claims' subject is `entity` read `keys`.
    ///
    /// The request `secrets_nats_kv::client::add_mapping` sends, but its answer checked (the
    /// client drops it).
    pub async fn allow(&self, entity: &str, keys: &[&str]) -> anyhow::Result<()> {
        let subject = format!(
            "{}.{SECRETS_API_VERSION}.{BACKEND}.add_mapping.{entity}",
            self.prefix
        );
        let keys: BTreeSet<&str> = keys.iter().copied().collect();
        let reply = self
            .nats
            .request(subject.clone(), serde_json::to_vec(&keys)?.into())
            .await
            .with_context(|| format!("{subject}: no answer"))?;
        ensure!(
            reply.payload.as_ref() == b"ok",
            "{subject}: {}",
            String::from_utf8_lossy(&reply.payload)
        );
        Ok(())
    }

    /// Secret `key` as the host gets it for `component` (in application `app`): the host's own
    /// client (`wasmcloud-secrets-client` 0.9) and request, with the component's claims and a
    /// host JWT of a fresh host key.
    pub async fn get_as_host(
        &self,
        component: &Signed,
        app: &str,
        key: &str,
    ) -> anyhow::Result<String> {
        let (issuer, host) = (KeyPair::new_account(), KeyPair::new_server());
        let host_jwt = Claims::<Host>::new(
            "etl-e2e".to_owned(),
            issuer.public_key(),
            host.public_key(),
            None,
        )
        .encode(&issuer)?;
        let request = SecretConfig::new(
            key.to_owned(),
            BACKEND.to_owned(),
            key.to_owned(),
            None,
            None,
            HashMap::new(),
        )
        .try_into_request(&component.jwt, &host_jwt, Some(&app.to_owned()))?;
        let client =
            wasmcloud_secrets_client::Client::new(BACKEND, &self.prefix, self.nats.clone()).await?;
        let secret = client
            .get(request, XKey::new())
            .await
            .with_context(|| format!("getting secret {key}"))?;
        secret
            .string_secret
            .with_context(|| format!("secret {key} is not a string"))
    }
}

/// A component with embedded wascap claims.
pub struct Signed {
    pub wasm: Vec<u8>,
    /// The claims' subject (a module public key `M…`): whom the backend maps secrets to.
    pub subject: String,
    /// The claims as a JWT: the host's entity JWT for the component.
    pub jwt: String,
}

impl Signed {
    /// `wasm`'s own embedded claims, if it has any.
    pub fn embedded(wasm: &[u8]) -> anyhow::Result<Option<Self>> {
        let token = wascap::wasm::extract_claims(wasm).context("reading wascap claims")?;
        Ok(token.map(|t| Self {
            wasm: wasm.to_vec(),
            subject: t.claims.subject,
            jwt: t.jwt,
        }))
    }

    /// `wasm` with wascap claims embedded: subject a fresh module key, signed by a fresh account
    /// key (what `wash build` does with generated keys). wascap 0.16.2 prints "BEFORE STRIP!"
    /// and the like to stderr while it embeds them: its own debugging lines, harmless.
    pub fn sign(name: &str, wasm: &[u8]) -> anyhow::Result<Self> {
        let (module, account) = (KeyPair::new_module(), KeyPair::new_account());
        let signed = wascap::wasm::sign_buffer_with_claims(
            name.to_owned(),
            wasm,
            &module,
            &account,
            None,
            None,
            Vec::new(),
            false,
            None,
            None,
            None,
        )
        .with_context(|| format!("embedding claims in {name}"))?;
        let signed = Self::embedded(&signed)?.context("no claims after signing")?;
        ensure!(signed.subject == module.public_key(), "claims' subject");
        Ok(signed)
    }
}
