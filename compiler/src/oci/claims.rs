//! wascap claims: the signed identity a wasmCloud 1.x host reads from a component.
//!
//! A 1.x host fetches a component's secrets only with the JWT embedded in its Wasm (custom
//! section [`SECTION`]), and a secrets backend such as `secrets-nats-kv` answers only for a
//! claims subject it has a mapping for. [`AccountKey::embed`] writes that JWT, in the format of
//! `wascap` 0.16 (what `wasmcloud-host` 0.27 reads, `wascap::wasm::extract_claims`): issued by an
//! nkey account key (`A…`), about a module subject (`M…`) that [`AccountKey::subject`] derives
//! from the account seed and an identity string, so it stays the same across builds and code
//! changes. Everything is deterministic: no `iat` (0), no expiry, a `jti` derived from the
//! subject and the module hash, fixed field order, and Ed25519 signatures. `docs/oci.md`
//! ("Claims") describes the format.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use nkeys::{KeyPair, KeyPairType};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use wasm_encoder::{ComponentSectionId, Encode as _, Section as _};

/// The custom section wascap embeds the JWT in (at the top level of the component).
pub const SECTION: &str = "wasmcloud_jwt";
/// The section of wascap before 0.9, which its readers still take and its hash leaves out.
const LEGACY_SECTION: &str = "jwt";
/// `wascap_revision`: from 3 on, readers check the module hash.
const REVISION: u32 = 3;
/// HKDF salt of a subject: the version of the derivation.
const SUBJECT_SALT: &[u8] = b"etl wascap claims subject v1";
/// The file mode of a written seed.
pub const SEED_MODE: u32 = 0o600;

/// Why an account key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ClaimsKeyError {
    /// Not an nkey seed.
    #[error("not an nkey seed (`etl keygen --claims` writes one, `SA…`): {0}")]
    NotASeed(String),
    /// An nkey seed of another kind than an account.
    #[error(
        "an nkey seed of a {0}, not of an account (`SA…`): wasmCloud hosts accept claims issued by an account"
    )]
    NotAnAccount(String),
}

/// Why claims could not be embedded in a component.
#[derive(Debug, thiserror::Error)]
pub enum ClaimsError {
    /// The bytes are not WebAssembly wascap can read.
    #[error("it is not WebAssembly wascap can read: {0}")]
    Wasm(String),
    /// Signing failed.
    #[error("the claims cannot be signed: {0}")]
    Sign(String),
}

/// Who issued a component's claims and whom they are about: what `plan.json` records of a
/// wasmCloud 1.x artifact, and what a secrets backend maps secrets to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account's public key (`A…`): the `iss`.
    pub issuer: String,
    /// The module's public key (`M…`): the `sub`, stable for one account and identity.
    pub subject: String,
}

/// A component with its claims embedded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The component with its claims section.
    pub bytes: Vec<u8>,
    /// Issuer and subject.
    pub claims: Claims,
    /// The JWT embedded.
    pub jwt: String,
}

/// An nkey account key pair: the issuer of claims.
#[derive(Clone)]
pub struct AccountKey {
    pair: KeyPair,
    seed: [u8; 32],
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl AccountKey {
    /// A new account key from the OS's random numbers.
    pub fn generate() -> AccountKey {
        let pair = KeyPair::new_account();
        let seed = pair.seed().expect("a new key pair has its seed");
        AccountKey::from_seed(&seed).expect("a new account seed reads back")
    }

    /// The account key of an nkey seed (`SA…`, surrounding whitespace ignored).
    pub fn from_seed(text: &str) -> Result<AccountKey, ClaimsKeyError> {
        let text = text.trim();
        let (_, seed) =
            nkeys::decode_seed(text).map_err(|e| ClaimsKeyError::NotASeed(e.to_string()))?;
        let pair = KeyPair::from_seed(text).map_err(|e| ClaimsKeyError::NotASeed(e.to_string()))?;
        if pair.key_pair_type() != KeyPairType::Account {
            return Err(ClaimsKeyError::NotAnAccount(
                format!("{:?}", pair.key_pair_type()).to_lowercase(),
            ));
        }
        Ok(AccountKey { pair, seed })
    }

    /// The seed (`SA…`): the secret to keep.
    pub fn seed(&self) -> String {
        self.pair.seed().expect("an account key has its seed")
    }

    /// The public key (`A…`): the issuer of every claims this key signs.
    pub fn public_key(&self) -> String {
        self.pair.public_key()
    }

    /// The module public key (`M…`) of `identity`: HKDF-SHA256 of the account seed (salt
    /// [`SUBJECT_SALT`], info the identity's UTF-8 bytes) is the Ed25519 seed of a module key
    /// pair. The same account and identity always give the same subject; another account or
    /// identity gives another, and the subject reveals nothing of the seed.
    pub fn subject(&self, identity: &str) -> String {
        let hkdf = hkdf::Hkdf::<Sha256>::new(Some(SUBJECT_SALT), &self.seed);
        let mut seed = [0u8; 32];
        hkdf.expand(identity.as_bytes(), &mut seed)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        KeyPair::new_from_raw(KeyPairType::Module, seed)
            .expect("any 32 bytes are an Ed25519 seed")
            .public_key()
    }

    /// `wasm` with claims embedded, as `wascap::wasm::embed_claims` would embed them but with
    /// nothing from the clock or a random source: any claims sections it had are removed
    /// (wascap's strip, which also re-encodes nested modules and components), the module hash is
    /// the upper-case hex SHA-256 of what remains, and the JWT naming `name`, issued by this
    /// account about [`Self::subject`] of `identity`, is appended as the section [`SECTION`].
    pub fn embed(&self, wasm: &[u8], name: &str, identity: &str) -> Result<Claimed, ClaimsError> {
        let mut bytes = strip(wasm)?;
        let module_hash = upper_hex(&Sha256::digest(&bytes));
        let claims = Claims {
            issuer: self.public_key(),
            subject: self.subject(identity),
        };
        let jwt = self.jwt(&claims, name, &module_hash)?;
        wasm_encoder::CustomSection {
            name: SECTION.into(),
            data: jwt.as_bytes().into(),
        }
        .append_to(&mut bytes);
        Ok(Claimed { bytes, claims, jwt })
    }

    /// The signed JWT: header, claims and signature, each base64url without padding, the JSON
    /// of header and claims in wascap's field order.
    fn jwt(&self, claims: &Claims, name: &str, module_hash: &str) -> Result<String, ClaimsError> {
        /// wascap's `ClaimsHeader`.
        #[derive(Serialize)]
        struct Header {
            typ: &'static str,
            alg: &'static str,
        }
        /// wascap's `Claims<Component>`, in its field order, with what etl leaves out omitted
        /// as wascap omits it (`exp`, `nbf`, `tags`, `rev`, `ver`, `call_alias`).
        #[derive(Serialize)]
        struct Body<'a> {
            jti: String,
            iat: u64,
            iss: &'a str,
            sub: &'a str,
            wascap: Metadata<'a>,
            wascap_revision: u32,
        }
        /// wascap's `Component`.
        #[derive(Serialize)]
        struct Metadata<'a> {
            name: &'a str,
            hash: &'a str,
            prov: bool,
        }
        let segment = |json: Vec<u8>| BASE64URL.encode(json);
        let header = Header {
            typ: "jwt",
            alg: "Ed25519",
        };
        let body = Body {
            jti: upper_hex(&Sha256::digest(
                format!("{}\n{module_hash}", claims.subject).as_bytes(),
            )),
            iat: 0,
            iss: &claims.issuer,
            sub: &claims.subject,
            wascap: Metadata {
                name,
                hash: module_hash,
                prov: false,
            },
            wascap_revision: REVISION,
        };
        let signed = format!(
            "{}.{}",
            segment(serde_json::to_vec(&header).expect("the header serializes")),
            segment(serde_json::to_vec(&body).expect("the claims serialize"))
        );
        let signature = self
            .pair
            .sign(signed.as_bytes())
            .map_err(|e| ClaimsError::Sign(e.to_string()))?;
        Ok(format!("{signed}.{}", BASE64URL.encode(signature)))
    }
}

fn upper_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// `wasm` without its claims sections (`wasmcloud_jwt`, `jwt`, at any depth), exactly as
/// wascap's `strip_custom_section` writes it: the bytes its readers hash. Every other section
/// is copied as it is; nested modules and components are written again with the headers and
/// size prefixes wasm-encoder gives them.
fn strip(wasm: &[u8]) -> Result<Vec<u8>, ClaimsError> {
    use wasmparser::Payload::{ComponentSection, CustomSection, End, ModuleSection, Version};

    let mut output: Vec<u8> = Vec::new();
    let mut stack: Vec<Vec<u8>> = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| ClaimsError::Wasm(e.to_string()))?;
        match &payload {
            Version { encoding, .. } => output.extend_from_slice(match encoding {
                wasmparser::Encoding::Component => &wasm_encoder::Component::HEADER,
                wasmparser::Encoding::Module => &wasm_encoder::Module::HEADER,
            }),
            ModuleSection { .. } | ComponentSection { .. } => {
                stack.push(std::mem::take(&mut output));
                continue;
            }
            End(_) => {
                let Some(mut parent) = stack.pop() else {
                    break;
                };
                let id = if output.starts_with(&wasm_encoder::Component::HEADER) {
                    ComponentSectionId::Component
                } else {
                    ComponentSectionId::CoreModule
                };
                parent.push(id as u8);
                output.as_slice().encode(&mut parent);
                output = parent;
            }
            _ => {}
        }
        match &payload {
            CustomSection(c) if c.name() == SECTION || c.name() == LEGACY_SECTION => {}
            _ => {
                if let Some((id, range)) = payload.as_section() {
                    let data = usize::try_from(range.start)
                        .ok()
                        .zip(usize::try_from(range.end).ok())
                        .and_then(|(start, end)| wasm.get(start..end))
                        .ok_or_else(|| ClaimsError::Wasm("a section runs past the end".into()))?;
                    wasm_encoder::RawSection { id, data }.append_to(&mut output);
                }
            }
        }
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "SAAPN4W3EG6KCJGUQTKTJ5GSB5NHK5CHAJL4DBGFUM3HHROI4XUEP4OBK4";

    #[test]
    fn subjects_are_stable_and_distinct() {
        let key = AccountKey::from_seed(SEED).unwrap();
        let a = key.subject("acme/p/parse");
        assert!(a.starts_with('M') && a.len() == 56, "{a}");
        assert_eq!(
            a,
            AccountKey::from_seed(SEED).unwrap().subject("acme/p/parse")
        );
        assert_ne!(a, key.subject("acme/p/enrich"));
        assert_ne!(a, AccountKey::generate().subject("acme/p/parse"));
    }

    #[test]
    fn only_account_seeds_are_keys() {
        let module = KeyPair::new_module().seed().unwrap();
        let e = AccountKey::from_seed(&module).unwrap_err();
        assert!(
            matches!(e, ClaimsKeyError::NotAnAccount(ref k) if k == "module"),
            "{e}"
        );
        let e = AccountKey::from_seed("not a seed").unwrap_err();
        assert!(matches!(e, ClaimsKeyError::NotASeed(_)), "{e}");
        let key = AccountKey::from_seed(&format!("  {SEED}\n")).unwrap();
        assert_eq!(key.seed(), SEED);
        assert!(key.public_key().starts_with('A'));
        assert!(!format!("{key:?}").contains(SEED));
    }

    #[test]
    fn strip_removes_claims_sections_at_any_depth() {
        let wat = r#"(component
            (core module (@custom "jwt" "old") (@custom "keep" "x"))
            (component (@custom "wasmcloud_jwt" "inner"))
        )"#;
        let wasm = wat::parse_str(wat).unwrap();
        let stripped = strip(&wasm).unwrap();
        let names: Vec<String> = wasmparser::Parser::new(0)
            .parse_all(&stripped)
            .filter_map(|p| match p.unwrap() {
                wasmparser::Payload::CustomSection(c) => Some(c.name().to_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["keep"]);
        assert_eq!(strip(&stripped).unwrap(), stripped, "idempotent");
    }
}
