//! `cosign-oracle`: verifies cosign simple-signing signatures with the sigstore crate and a public
//! key, as `cosign verify --key` does. Two modes:
//!
//! - `cosign-oracle` (no arguments), offline: reads one JSON object a line on stdin:
//!   `{"key": "<SPKI PEM>", "signature": "<base64 DER>", "payload": "<base64 of the payload
//!   bytes>"}` and prints one line per input: `ok`, or `error: <why>` (the check cosign makes of
//!   each signature layer).
//! - `cosign-oracle registry <image> <key.pem>`, in a registry: `<image>` is
//!   `host[:port]/repository:tag` (or `@sha256:…`). sigstore's cosign client resolves it to a
//!   manifest digest, fetches the `sha256-<hex>.sig` signature image of that digest from the same
//!   repository, keeps the signature layers whose payload names that digest, and requires one of
//!   them to verify with the key (SPKI PEM). The manifest itself is then fetched by digest and must
//!   hash to it (sigstore takes the digest of a HEAD on trust). Prints
//!   `ok <manifest digest> <docker-reference of the verified payload>` and exits 0, or
//!   `error: <why>` and exits 1. Loopback hosts (127.0.0.1, localhost, [::1]) are spoken to in
//!   plain HTTP, others in HTTPS; anonymously.

use std::io::BufRead;

use base64::prelude::{BASE64_STANDARD, Engine as _};

use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{ClientBuilder, CosignCapabilities, verify_constraints};
use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};

fn verify(line: &str) -> Result<(), String> {
    let input: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("input: {e}"))?;
    let field = |name: &str| {
        input[name]
            .as_str()
            .map(str::to_owned)
            .ok_or(format!("input: no `{name}`"))
    };
    let key = CosignVerificationKey::from_pem(
        field("key")?.as_bytes(),
        &SigningScheme::ECDSA_P256_SHA256_ASN1,
    )
    .map_err(|e| format!("key: {e}"))?;
    let payload = BASE64_STANDARD
        .decode(field("payload")?)
        .map_err(|e| format!("payload: {e}"))?;
    key.verify_signature(
        Signature::Base64Encoded(field("signature")?.as_bytes()),
        &payload,
    )
    .map_err(|e| format!("signature: {e}"))
}

/// `cosign verify --key <key> <image>`: the verified manifest digest and the docker-reference
/// the verified signature payload names.
async fn verify_in_registry(image: &str, key_pem: &[u8]) -> Result<(String, String), String> {
    let image: OciReference = image.parse().map_err(|e| format!("image: {e}"))?;
    let host = image.registry().to_owned();
    let loopback = ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .any(|h| host == *h || host.starts_with(&format!("{h}:")));
    let config = ClientConfig {
        protocol: if loopback {
            ClientProtocol::HttpsExcept(vec![host.clone()])
        } else {
            ClientProtocol::Https
        },
        ..Default::default()
    };
    let mut client = ClientBuilder::default()
        .with_oci_client_config(config.clone())
        .build()
        .map_err(|e| format!("client: {e}"))?;
    let auth = Auth::Anonymous;

    let (signature_image, digest) = client
        .triangulate(&image, &auth)
        .await
        .map_err(|e| format!("resolving {image}: {e}"))?;
    // Triangulates again, fetches the signature image and keeps the layers whose payload names
    // `digest` (registry errors are logged by sigstore and leave no layer).
    let layers = client
        .trusted_signature_layers(&auth, &image)
        .await
        .map_err(|e| format!("fetching {signature_image}: {e}"))?;
    if layers.is_empty() {
        return Err(format!(
            "no signature of {digest}: {signature_image} is missing or has no layer naming it"
        ));
    }
    let verifier = PublicKeyVerifier::new(key_pem, &SigningScheme::ECDSA_P256_SHA256_ASN1)
        .map_err(|e| format!("key: {e}"))?;
    let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
    verify_constraints(&layers, constraints.iter()).map_err(|e| {
        format!(
            "{signature_image}: none of its {} signature layer(s) of {digest} verifies with the \
             key ({e})",
            layers.len()
        )
    })?;
    let references: Vec<String> = layers
        .iter()
        .filter(|layer| matches!(constraints[0].verify(layer), Ok(true)))
        .map(|layer| {
            layer
                .simple_signing
                .critical
                .identity
                .docker_reference
                .clone()
        })
        .collect();

    // What a pull by digest gets must be what was verified.
    let by_digest =
        oci_client::Reference::with_digest(host, image.repository().to_owned(), digest.clone());
    oci_client::Client::new(config.into())
        .pull_manifest_raw(
            &by_digest,
            &oci_client::secrets::RegistryAuth::Anonymous,
            &[
                oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
                oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
                oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
            ],
        )
        .await
        .map_err(|e| format!("the manifest served as {by_digest}: {e}"))?;
    Ok((digest, references.join(",")))
}

fn registry(args: &[String]) -> i32 {
    let [image, key] = args else {
        eprintln!("usage: cosign-oracle registry <image> <key.pem>");
        return 2;
    };
    let key = match std::fs::read(key) {
        Ok(key) => key,
        Err(e) => {
            println!("error: {key}: {e}");
            return 1;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(verify_in_registry(image, &key)) {
        Ok((digest, reference)) => {
            println!("ok {digest} {reference}");
            0
        }
        Err(e) => {
            println!("error: {e}");
            1
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        None => {
            for line in std::io::stdin().lock().lines() {
                let line = line.expect("stdin");
                match verify(&line) {
                    Ok(()) => println!("ok"),
                    Err(e) => println!("error: {e}"),
                }
            }
        }
        Some((mode, rest)) if mode == "registry" => std::process::exit(registry(rest)),
        Some(_) => {
            eprintln!("usage: cosign-oracle < lines | cosign-oracle registry <image> <key.pem>");
            std::process::exit(2);
        }
    }
}
