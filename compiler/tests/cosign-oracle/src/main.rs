//! `cosign-oracle`: verifies cosign simple-signing signatures with the sigstore crate, offline,
//! with a public key, as `cosign verify --key` checks each signature layer.
//!
//! Reads one JSON object a line on stdin: `{"key": "<SPKI PEM>", "signature": "<base64 DER>",
//! "payload": "<base64 of the payload bytes>"}` and prints one line per input: `ok`, or
//! `error: <why>`.

use std::io::BufRead;

use base64::prelude::{BASE64_STANDARD, Engine as _};

use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};

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

fn main() {
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        match verify(&line) {
            Ok(()) => println!("ok"),
            Err(e) => println!("error: {e}"),
        }
    }
}
