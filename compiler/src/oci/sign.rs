//! Signatures: cosign "simple signing" with a key, for the artifacts of an OCI image layout.
//!
//! [`keygen`] makes an ECDSA P-256 key pair: the private key as PKCS#8 PEM (encrypted with a
//! passphrase when one is given: PKCS#5 v2, scrypt + AES-256-CBC), the public key as SPKI PEM,
//! which is what `cosign verify --key` reads. [`sign_layout`] adds to a layout, for every
//! artifact, the signature cosign would push for it: an image manifest tagged `sha256-<hex>.sig`
//! whose one layer ([`PAYLOAD_MEDIA_TYPE`]) is the payload naming the artifact's manifest digest,
//! with the base64 DER ECDSA P-256/SHA-256 signature of the payload bytes in the layer's
//! [`SIGNATURE_ANNOTATION`]. Signatures are RFC 6979 (deterministic), so a signed layout is as
//! reproducible as an unsigned one. [`verify_layout`] checks a layout on disk against a public
//! key. `docs/oci.md` ("Signatures") shows the documents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, Signature};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use serde::{Deserialize, Serialize};

use crate::oci::bundle::{self, BundleError};
use crate::oci::layout::{self, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, REF_NAME};
use crate::oci::manifest::{Descriptor, History, ImageConfig, ImageIndex, ImageManifest, RootFs};
use crate::oci::registry::{self, Session};
use crate::util::digest::sha256;
use crate::util::io::IoError;
use crate::util::json::compact;

/// Media type of the signature's one layer: the simple-signing payload.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Media type of the signature manifest's config (an empty image config, as cosign writes).
pub const SIGNATURE_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Layer annotation holding the base64 DER signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The payload's `critical.type`.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// The environment variable the passphrase of a private key is read from.
pub const PASSPHRASE_ENV: &str = "ETL_KEY_PASSPHRASE";

/// scrypt cost of an encrypted private key: N = 2^15, r = 8, p = 1 (cosign's own choice for its
/// keys; 32 MiB).
const SCRYPT_LOG_N: u8 = 15;

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The private key is encrypted and no passphrase was given.
    #[error("the private key is encrypted: set {PASSPHRASE_ENV} to its passphrase")]
    NeedsPassphrase,
    /// The passphrase does not decrypt the private key.
    #[error("the passphrase in {PASSPHRASE_ENV} does not decrypt the private key")]
    WrongPassphrase,
    /// Not a PKCS#8 PEM ECDSA P-256 private key.
    #[error("not an ECDSA P-256 private key in PKCS#8 PEM (`etl keygen` makes one): {0}")]
    NotAPrivateKey(String),
    /// Not an SPKI PEM ECDSA P-256 public key.
    #[error("not an ECDSA P-256 public key in PEM (SubjectPublicKeyInfo): {0}")]
    NotAPublicKey(String),
    /// Encoding a new key failed.
    #[error("the key cannot be encoded: {0}")]
    Encode(String),
}

/// Why a layout could not be signed (it is not the layout [`layout::layout`] makes).
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// `index.json` is missing or is not an image index.
    #[error("`{0}` is missing or is not an OCI image index")]
    NoIndex(String),
    /// An index entry lacks a manifest in the layout.
    #[error("the index names `{name}` ({digest}), whose manifest is not in the layout")]
    MissingManifest {
        /// The entry's ref name.
        name: String,
        /// Its digest.
        digest: String,
    },
}

/// Why a layout on disk could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A file could not be read.
    #[error(transparent)]
    Io(#[from] crate::util::io::IoError),
    /// Neither the directory nor its `oci/` is an OCI image layout.
    #[error("`{}` is not an `etl compile` output or an OCI image layout (no oci-layout file)", .0.display())]
    NotALayout(PathBuf),
    /// `index.json` is not an image index.
    #[error("`{}` is not an OCI image index: {reason}", path.display())]
    BadIndex {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A new key pair, both halves PEM.
#[derive(Clone)]
pub struct KeyPair {
    /// PKCS#8 (`PRIVATE KEY`), or encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`).
    pub private_pem: String,
    /// SubjectPublicKeyInfo (`PUBLIC KEY`).
    pub public_pem: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public_pem", &self.public_pem)
            .finish_non_exhaustive()
    }
}

/// Makes an ECDSA P-256 key pair from the OS's random numbers; the private key is encrypted
/// when `passphrase` is given.
pub fn keygen(passphrase: Option<&str>) -> Result<KeyPair, KeyError> {
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let secret = p256::SecretKey::from(&key);
    let encode = |e: &dyn std::fmt::Display| KeyError::Encode(e.to_string());
    let private_pem = match passphrase {
        None => secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| encode(&e))?,
        Some(passphrase) => {
            let mut salt = [0u8; 16];
            let mut iv = [0u8; 16];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut salt);
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut iv);
            let params = pkcs8::pkcs5::scrypt::Params::new(SCRYPT_LOG_N, 8, 1, 32)
                .map_err(|e| encode(&e))?;
            let params = pkcs8::pkcs5::pbes2::Parameters::scrypt_aes256cbc(params, &salt, &iv)
                .map_err(|e| encode(&e))?;
            let der = secret.to_pkcs8_der().map_err(|e| encode(&e))?;
            let info = pkcs8::PrivateKeyInfo::try_from(der.as_bytes()).map_err(|e| encode(&e))?;
            info.encrypt_with_params(params, passphrase)
                .map_err(|e| encode(&e))?
                .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
                .map_err(|e| encode(&e))?
        }
    };
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| encode(&e))?;
    Ok(KeyPair {
        private_pem: private_pem.to_string(),
        public_pem,
    })
}

/// A private key to sign with.
#[derive(Clone)]
pub struct SigningKey(p256::ecdsa::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(…)")
    }
}

impl SigningKey {
    /// Reads a PKCS#8 PEM private key; an encrypted one needs its `passphrase`.
    pub fn from_pem(pem: &str, passphrase: Option<&str>) -> Result<Self, KeyError> {
        // The PEM parser refuses anything around the armour; a key pasted into a CI secret often
        // has blank lines around it.
        let pem = pem.trim();
        let encrypted = pem
            .trim_start()
            .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----");
        let secret = if encrypted {
            let passphrase = passphrase.ok_or(KeyError::NeedsPassphrase)?;
            p256::SecretKey::from_pkcs8_encrypted_pem(pem, passphrase).map_err(|e| match e {
                pkcs8::Error::EncryptedPrivateKey(_) => KeyError::WrongPassphrase,
                // A wrong passphrase usually shows as garbage after decryption.
                pkcs8::Error::Asn1(_) => KeyError::WrongPassphrase,
                other => KeyError::NotAPrivateKey(other.to_string()),
            })?
        } else {
            p256::SecretKey::from_pkcs8_pem(pem)
                .map_err(|e| KeyError::NotAPrivateKey(e.to_string()))?
        };
        Ok(Self(p256::ecdsa::SigningKey::from(secret)))
    }

    /// The public half, to verify with.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(*self.0.verifying_key())
    }

    /// The public half, SPKI PEM.
    pub fn public_pem(&self) -> String {
        self.0
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 public key encodes")
    }

    /// The base64 DER ECDSA P-256/SHA-256 signature of `payload` (RFC 6979: deterministic).
    pub fn sign(&self, payload: &[u8]) -> String {
        let signature: Signature = self.0.sign(payload);
        BASE64.encode(signature.to_der().as_bytes())
    }
}

/// A public key to verify with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey(p256::ecdsa::VerifyingKey);

impl VerifyingKey {
    /// Reads an SPKI PEM public key (`PUBLIC KEY`), as `etl keygen` and `cosign
    /// generate-key-pair` write.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        p256::ecdsa::VerifyingKey::from_public_key_pem(pem.trim())
            .map(Self)
            .map_err(|e| KeyError::NotAPublicKey(e.to_string()))
    }

    /// The key's id: `sha256:` and the first 16 hex digits of the SHA-256 of its SPKI DER
    /// encoding (the bytes inside the PEM), so that a status or a log can say which key signed
    /// without printing the key.
    pub fn id(&self) -> String {
        use p256::pkcs8::EncodePublicKey as _;
        let der = self
            .0
            .to_public_key_der()
            .expect("a P-256 public key encodes as SPKI");
        let digest = sha256(der.as_bytes());
        digest[..7 + 16].to_owned()
    }

    /// Whether `signature` (base64 DER) is this key's signature of `payload`.
    pub fn verifies(&self, payload: &[u8], signature: &str) -> bool {
        let Ok(der) = BASE64.decode(signature.trim()) else {
            return false;
        };
        let Ok(signature) = DerSignature::try_from(der.as_slice()) else {
            return false;
        };
        self.0.verify(payload, &signature).is_ok()
    }
}

/// A simple-signing payload: what a signature signs. Read leniently, as the OCI documents.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct Payload {
    critical: Critical,
    /// Whatever the signer adds; etl writes `null`.
    optional: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct Critical {
    identity: Identity,
    image: Image,
    /// [`PAYLOAD_TYPE`].
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct Identity {
    /// The repository signed, without tag or digest.
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct Image {
    /// The manifest digest signed.
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The simple-signing payload naming `manifest_digest` of `docker_reference` (the repository,
/// without tag or digest), canonical JSON.
pub fn payload(docker_reference: &str, manifest_digest: &str) -> Vec<u8> {
    compact(&Payload {
        critical: Critical {
            identity: Identity {
                docker_reference: docker_reference.to_owned(),
            },
            image: Image {
                docker_manifest_digest: manifest_digest.to_owned(),
            },
            kind: PAYLOAD_TYPE.to_owned(),
        },
        optional: None,
    })
}

/// The cosign tag of the signature of `manifest_digest`: `sha256-<hex>.sig`.
pub fn signature_tag(manifest_digest: &str) -> String {
    format!("{}.sig", manifest_digest.replacen(':', "-", 1))
}

/// Whether an index ref name (or a tag) is a signature tag rather than an artifact's name.
pub fn is_signature_tag(name: &str) -> bool {
    name.strip_prefix("sha256-")
        .and_then(|rest| rest.strip_suffix(".sig"))
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A signature's three blobs: its manifest, config and payload, exactly as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureBlobs {
    /// The signature manifest (what `sha256-<hex>.sig` names).
    pub manifest: Vec<u8>,
    /// Its config: an empty image config whose one diff id is the payload's digest.
    pub config: Vec<u8>,
    /// The payload.
    pub payload: Vec<u8>,
}

/// The signature of the artifact `manifest_digest` of `docker_reference`, as cosign stores it.
pub fn signature(
    key: &SigningKey,
    docker_reference: &str,
    manifest_digest: &str,
) -> SignatureBlobs {
    let payload = payload(docker_reference, manifest_digest);
    let payload_digest = sha256(&payload);
    // What go-containerregistry's empty image gets when cosign appends the payload layer: no
    // time, no platform, the layer's digest as its diff id (the payload is not compressed).
    let zero_time = "0001-01-01T00:00:00Z";
    let config = compact(&ImageConfig {
        architecture: String::new(),
        config: BTreeMap::new(),
        created: zero_time.to_owned(),
        history: vec![History {
            created: zero_time.to_owned(),
        }],
        os: String::new(),
        rootfs: RootFs {
            diff_ids: vec![payload_digest.clone()],
            kind: "layers".to_owned(),
        },
    });
    let manifest = compact(&ImageManifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.to_owned()),
        config: Descriptor::of(SIGNATURE_CONFIG_MEDIA_TYPE, &config),
        layers: vec![
            Descriptor::new(PAYLOAD_MEDIA_TYPE, &payload_digest, payload.len() as u64)
                .annotated(SIGNATURE_ANNOTATION, &key.sign(&payload)),
        ],
        annotations: BTreeMap::new(),
    });
    SignatureBlobs {
        manifest,
        config,
        payload,
    }
}

/// Signs every artifact of the layout in `files` (paths under `root`, e.g. `oci/`, as
/// [`layout::layout`] makes them): adds each signature's blobs and an `index.json` entry tagged
/// `sha256-<hex>.sig`, keeping the index sorted by ref name. `registry` is the project's
/// registry: an artifact `name` is signed as `docker-reference` `<registry>/<name>`, the
/// repository it is pushed to. Signing again replaces the signatures.
pub fn sign_layout(
    files: &mut BTreeMap<String, Vec<u8>>,
    root: &str,
    key: &SigningKey,
    registry: &str,
) -> Result<(), SignError> {
    let index_path = format!("{root}index.json");
    let no_index = || SignError::NoIndex(index_path.clone());
    let mut index: ImageIndex = files
        .get(&index_path)
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .ok_or_else(no_index)?;
    let mut kept = Vec::new();
    let mut signatures = Vec::new();
    for entry in std::mem::take(&mut index.manifests) {
        let name = entry.annotation(REF_NAME).unwrap_or_default();
        if is_signature_tag(name) {
            continue;
        }
        let digest = &entry.digest;
        if !files.contains_key(&format!("{root}{}", layout::blob_path(digest))) {
            return Err(SignError::MissingManifest {
                name: name.to_owned(),
                digest: digest.clone(),
            });
        }
        let reference = format!("{}/{name}", registry.trim_end_matches('/'));
        let blobs = signature(key, &reference, digest);
        signatures.push(
            Descriptor::of(MANIFEST_MEDIA_TYPE, &blobs.manifest)
                .annotated(REF_NAME, &signature_tag(digest)),
        );
        for blob in [blobs.manifest, blobs.config, blobs.payload] {
            files.insert(format!("{root}{}", layout::blob_path(&sha256(&blob))), blob);
        }
        kept.push(entry);
    }
    kept.extend(signatures);
    kept.sort_by(|a, b| {
        let name = |e: &Descriptor| e.annotation(REF_NAME).unwrap_or_default().to_owned();
        name(a).cmp(&name(b))
    });
    index.manifests = kept;
    index
        .media_type
        .get_or_insert_with(|| INDEX_MEDIA_TYPE.to_owned());
    files.insert(index_path, compact(&index));
    Ok(())
}

/// Puts `manifest` with its `signature` into the layout held in `files` (paths under `root`, as
/// [`layout::layout`] makes them), replacing the entry of the same name and the signature of the
/// manifest it named; blobs nothing references any more go ([`layout::update`]).
pub fn put_signed(
    files: &mut BTreeMap<String, Vec<u8>>,
    root: &str,
    manifest: layout::Prepackaged<'_>,
    signature: &StoredSignature,
) -> Result<(), layout::OciError> {
    let index_path = format!("{root}index.json");
    let index: ImageIndex = files
        .get(&index_path)
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .ok_or_else(|| layout::OciError::NoIndex(index_path.clone()))?;
    let replaced: Vec<String> = index
        .manifests
        .iter()
        .filter(|e| e.annotation(REF_NAME) == Some(manifest.name))
        .map(|e| signature_tag(&e.digest))
        .collect();
    let tag = signature_tag(&sha256(manifest.manifest));
    let signature = layout::Prepackaged {
        name: &tag,
        manifest: &signature.manifest,
        blobs: &signature.blobs,
    };
    let remove: Vec<&str> = replaced.iter().map(String::as_str).collect();
    layout::update(files, root, &[manifest, signature], &remove)
}

/// What is wrong with one artifact's signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// No `sha256-<hex>.sig` entry for the artifact.
    #[error("not signed (no {tag} in the index)")]
    Unsigned {
        /// The tag looked for.
        tag: String,
    },
    /// A blob's bytes do not hash to its digest, or it is missing.
    #[error("the {what} {digest} is {state}")]
    Blob {
        /// Which blob (`manifest`, `signature manifest`, …).
        what: &'static str,
        /// Its digest.
        digest: String,
        /// `missing` or `corrupt (its bytes hash to …)`.
        state: String,
    },
    /// The signature manifest is not a simple-signing signature.
    #[error("the signature manifest is malformed: {0}")]
    Malformed(String),
    /// No payload names this artifact's digest.
    #[error("the signature is of another image: {0}")]
    WrongImage(String),
    /// The signature does not verify with the key.
    #[error("the signature does not verify with the key")]
    BadSignature,
    /// The registry has no such manifest.
    #[error("the registry has no such manifest")]
    NoManifest,
    /// A deployment bundle whose blobs are intact but whose facts and files disagree.
    #[error("not a valid deployment bundle: {0}")]
    Bundle(Box<BundleError>),
}

/// One artifact as checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The artifact's name (its index ref name).
    pub name: String,
    /// Its manifest digest.
    pub digest: String,
    /// The `docker-reference` of the payload that verified, or why none did.
    pub outcome: Result<String, Problem>,
}

/// The outcome of [`verify_layout`]: every artifact, in index order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The layout checked.
    pub layout: PathBuf,
    /// Every artifact of the index.
    pub artifacts: Vec<Checked>,
}

impl Report {
    /// Whether every artifact is signed, intact, and its signature verifies.
    pub fn ok(&self) -> bool {
        self.artifacts.iter().all(|a| a.outcome.is_ok())
    }
}

/// Where blobs are read from, each checked against its digest: a layout on disk, or the blobs
/// fetched from a registry.
enum Blobs<'a> {
    Layout(&'a Path),
    Fetched(BTreeMap<String, Vec<u8>>),
}

impl Blobs<'_> {
    fn read(&self, what: &'static str, digest: &str) -> Result<Vec<u8>, Problem> {
        let problem = |state: String| Problem::Blob {
            what,
            digest: digest.to_owned(),
            state,
        };
        if crate::util::digest::hex(digest).is_none() {
            return Err(problem("not a sha256 digest".to_owned()));
        }
        let bytes = match self {
            Blobs::Layout(root) => std::fs::read(root.join(layout::blob_path(digest))).ok(),
            Blobs::Fetched(blobs) => blobs.get(digest).cloned(),
        }
        .ok_or_else(|| problem("missing".to_owned()))?;
        let actual = sha256(&bytes);
        if actual != digest {
            return Err(problem(format!("corrupt (its bytes hash to {actual})")));
        }
        Ok(bytes)
    }

    /// Reads the blob of a descriptor, checking its size too.
    fn read_descriptor(
        &self,
        what: &'static str,
        descriptor: &Descriptor,
    ) -> Result<Vec<u8>, Problem> {
        let digest = &descriptor.digest;
        let bytes = self.read(what, digest)?;
        if descriptor.size != bytes.len() as u64 {
            return Err(Problem::Blob {
                what,
                digest: digest.clone(),
                state: format!("{} bytes, not the size its descriptor says", bytes.len()),
            });
        }
        Ok(bytes)
    }
}

/// Checks the layout at `dir` (an `etl compile` output holding `oci/`, or a layout itself):
/// every artifact, with every blob its manifest names, is intact (a deployment bundle's facts
/// name exactly its files, [`bundle::Bundle::read`]), and has a signature whose payload names
/// exactly its manifest digest and verifies with `key`.
pub fn verify_layout(dir: &Path, key: &VerifyingKey) -> Result<Report, VerifyError> {
    let (root, index) = open_layout(dir)?;
    let entries = &index.manifests;
    let signatures: BTreeMap<&str, &Descriptor> = entries
        .iter()
        .filter_map(|e| Some((e.annotation(REF_NAME)?, e)))
        .filter(|(name, _)| is_signature_tag(name))
        .collect();

    let blobs = Blobs::Layout(&root);
    let mut artifacts = Vec::new();
    for entry in entries {
        let name = entry.annotation(REF_NAME).unwrap_or_default();
        if is_signature_tag(name) {
            continue;
        }
        let digest = &entry.digest;
        let outcome = check_artifact(
            &blobs,
            entry,
            signatures.get(signature_tag(digest).as_str()).copied(),
            key,
        );
        artifacts.push(Checked {
            name: name.to_owned(),
            digest: digest.clone(),
            outcome,
        });
    }
    Ok(Report {
        layout: root,
        artifacts,
    })
}

/// The layout of `dir` (an `etl compile` output holding `oci/`, or a layout itself): its root
/// and its index.
fn open_layout(dir: &Path) -> Result<(PathBuf, ImageIndex), VerifyError> {
    let root = if dir.join("oci-layout").is_file() {
        dir.to_owned()
    } else if dir.join("oci/oci-layout").is_file() {
        dir.join("oci")
    } else {
        return Err(VerifyError::NotALayout(dir.to_owned()));
    };
    let index_path = root.join("index.json");
    let bytes = std::fs::read(&index_path).map_err(IoError::at(&index_path))?;
    let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|e| VerifyError::BadIndex {
        path: index_path.clone(),
        reason: e.to_string(),
    })?;
    Ok((root, index))
}

/// A signature as a layout stores it: its manifest and the blobs it names, by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSignature {
    /// The signature manifest.
    pub manifest: Vec<u8>,
    /// Its config and payloads.
    pub blobs: BTreeMap<String, Vec<u8>>,
}

impl From<SignatureBlobs> for StoredSignature {
    fn from(s: SignatureBlobs) -> Self {
        let blobs = [s.config, s.payload]
            .into_iter()
            .map(|b| (sha256(&b), b))
            .collect();
        StoredSignature {
            manifest: s.manifest,
            blobs,
        }
    }
}

/// The signature of the manifest `digest` named `name` in the layout at `dir` (as for
/// [`verify_layout`]), when the layout holds exactly that manifest, intact, and a signature of
/// it that verifies with `key`; `None` otherwise (no such entry, another digest, unsigned,
/// tampered or signed with another key).
pub fn signature_in_layout(
    dir: &Path,
    name: &str,
    digest: &str,
    key: &VerifyingKey,
) -> Result<Option<StoredSignature>, VerifyError> {
    let (root, index) = open_layout(dir)?;
    let named = |n: &str| {
        index
            .manifests
            .iter()
            .find(|e| e.annotation(REF_NAME) == Some(n))
    };
    let Some(entry) = named(name).filter(|e| e.digest == digest) else {
        return Ok(None);
    };
    let signature = named(&signature_tag(digest));
    let blobs = Blobs::Layout(&root);
    if check_artifact(&blobs, entry, signature, key).is_err() {
        return Ok(None);
    }
    let signature = signature.expect("a verified artifact has its signature");
    let read = |d: &Descriptor| blobs.read_descriptor("signature blob", d).ok();
    let Some(manifest) = read(signature) else {
        return Ok(None);
    };
    let Ok(parsed) = serde_json::from_slice::<ImageManifest>(&manifest) else {
        return Ok(None);
    };
    let mut stored = BTreeMap::new();
    for d in std::iter::once(&parsed.config).chain(&parsed.layers) {
        let Some(bytes) = read(d) else {
            return Ok(None);
        };
        stored.insert(d.digest.clone(), bytes);
    }
    Ok(Some(StoredSignature {
        manifest,
        blobs: stored,
    }))
}

/// One artifact: its blobs, then its signature.
fn check_artifact(
    blobs: &Blobs,
    entry: &Descriptor,
    signature: Option<&Descriptor>,
    key: &VerifyingKey,
) -> Result<String, Problem> {
    let digest = &entry.digest;
    let bytes = blobs.read_descriptor("manifest", entry)?;
    let manifest: ImageManifest = serde_json::from_slice(&bytes)
        .map_err(|e| Problem::Malformed(format!("the artifact's manifest: {e}")))?;
    if manifest.config.media_type == bundle::CONFIG_MEDIA_TYPE {
        bundle::Bundle::read(&bytes, |d| {
            let what = if d.digest == manifest.config.digest {
                "config"
            } else {
                "layer"
            };
            blobs.read_descriptor(what, d)
        })?
        .map_err(|e| Problem::Bundle(Box::new(e)))?;
    } else {
        blobs.read_descriptor("config", &manifest.config)?;
        for layer in &manifest.layers {
            blobs.read_descriptor("layer", layer)?;
        }
    }

    let signature = signature.ok_or_else(|| Problem::Unsigned {
        tag: signature_tag(digest),
    })?;
    let sig_manifest = blobs.read_descriptor("signature manifest", signature)?;
    let sig_manifest: ImageManifest =
        serde_json::from_slice(&sig_manifest).map_err(|e| Problem::Malformed(e.to_string()))?;
    blobs.read_descriptor("signature config", &sig_manifest.config)?;
    check_signature(blobs, digest, &sig_manifest, key)
}

/// The payload layers of a signature manifest.
fn payload_layers(sig_manifest: &ImageManifest) -> Vec<&Descriptor> {
    sig_manifest
        .layers
        .iter()
        .filter(|l| l.media_type == PAYLOAD_MEDIA_TYPE)
        .collect()
}

/// Whether a signature manifest signs the artifact `digest` with `key`: the `docker-reference`
/// signed, or the most telling problem.
fn check_signature(
    blobs: &Blobs,
    digest: &str,
    sig_manifest: &ImageManifest,
    key: &VerifyingKey,
) -> Result<String, Problem> {
    let layers = payload_layers(sig_manifest);
    if layers.is_empty() {
        return Err(Problem::Malformed(format!("no {PAYLOAD_MEDIA_TYPE} layer")));
    }
    // As cosign: the artifact is signed when any one signature layer verifies. Report the most
    // telling problem otherwise.
    let mut problem = Problem::Malformed(format!("no {SIGNATURE_ANNOTATION} annotation"));
    for layer in layers {
        let payload = blobs.read_descriptor("signature payload", layer)?;
        let Some(signature) = layer.annotation(SIGNATURE_ANNOTATION) else {
            continue;
        };
        let parsed: Payload = match serde_json::from_slice(&payload) {
            Ok(p) => p,
            Err(e) => {
                problem = Problem::Malformed(format!("the payload: {e}"));
                continue;
            }
        };
        let critical = parsed.critical;
        let named = &critical.image.docker_manifest_digest;
        if critical.kind != PAYLOAD_TYPE || named != digest {
            problem = Problem::WrongImage(format!(
                "its payload names {}",
                if named.is_empty() { "no digest" } else { named }
            ));
            continue;
        }
        if !key.verifies(&payload, signature) {
            problem = Problem::BadSignature;
            continue;
        }
        return Ok(critical.identity.docker_reference);
    }
    Err(problem)
}

/// Largest signature payload fetched from a registry, in bytes.
const MAX_PAYLOAD_BYTES: u64 = 1024 * 1024;

/// Manifest media types accepted from a registry (cosign writes OCI or Docker v2 manifests).
const MANIFEST_TYPES: [&str; 2] = [
    MANIFEST_MEDIA_TYPE,
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// An artifact in a registry, checked: what [`verify_in_registry`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InRegistry {
    /// The check: `name` is `<host>/<repository>:<tag>` (or `@<digest>`).
    pub checked: Checked,
    /// The artifact's manifest, exactly as served (it hashes to `checked.digest`).
    pub manifest: Option<Vec<u8>>,
}

/// Checks the artifact `reference` (a tag or `sha256:` digest) of `repository` in the registry
/// `session` speaks to, as `cosign verify --key` does: its manifest, then the signature tagged
/// `sha256-<hex>.sig` in the same repository, whose payload must name exactly that manifest's
/// digest and verify with `key`. Registry failures are errors; what is wrong with the artifact
/// is the outcome.
pub async fn verify_in_registry(
    session: &Session,
    repository: &str,
    reference: &str,
    key: &VerifyingKey,
) -> Result<InRegistry, registry::Error> {
    let separator = if reference.starts_with("sha256:") {
        '@'
    } else {
        ':'
    };
    let name = format!("{}/{repository}{separator}{reference}", session.host());
    let unchecked = |name, digest, problem| InRegistry {
        checked: Checked {
            name,
            digest,
            outcome: Err(problem),
        },
        manifest: None,
    };
    let manifest = match session
        .manifest(repository, reference, &MANIFEST_TYPES)
        .await
    {
        Ok(Some(manifest)) => manifest,
        Ok(None) => return Ok(unchecked(name, String::new(), Problem::NoManifest)),
        // Served, but not the bytes the digest names: a verdict on the artifact, not a failure
        // to reach it.
        Err(registry::Error::DigestMismatch {
            expected, actual, ..
        }) => {
            let problem = Problem::Blob {
                what: "manifest",
                digest: expected.clone(),
                state: format!("corrupt (its bytes hash to {actual})"),
            };
            return Ok(unchecked(name, expected, problem));
        }
        Err(e) => return Err(e),
    };
    let digest = sha256(&manifest);
    let outcome = match signature_in_registry(session, repository, &digest).await? {
        Ok((sig_manifest, blobs)) => check_signature(&blobs, &digest, &sig_manifest, key),
        Err(problem) => Err(problem),
    };
    Ok(InRegistry {
        checked: Checked {
            name,
            digest,
            outcome,
        },
        manifest: Some(manifest),
    })
}

/// The signature manifest of `digest` in `repository` and its payload blobs.
async fn signature_in_registry(
    session: &Session,
    repository: &str,
    digest: &str,
) -> Result<Result<(ImageManifest, Blobs<'static>), Problem>, registry::Error> {
    let tag = signature_tag(digest);
    let Some(bytes) = session.manifest(repository, &tag, &MANIFEST_TYPES).await? else {
        return Ok(Err(Problem::Unsigned { tag }));
    };
    let sig_manifest: ImageManifest = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => return Ok(Err(Problem::Malformed(e.to_string()))),
    };
    let mut blobs = BTreeMap::new();
    for layer in payload_layers(&sig_manifest) {
        let payload = layer.digest.as_str();
        if payload.is_empty() {
            continue;
        }
        match session.blob(repository, payload, MAX_PAYLOAD_BYTES).await {
            Ok(bytes) => {
                blobs.insert(payload.to_owned(), bytes);
            }
            Err(registry::Error::DigestMismatch { actual, .. }) => {
                return Ok(Err(Problem::Blob {
                    what: "signature payload",
                    digest: payload.to_owned(),
                    state: format!("corrupt (its bytes hash to {actual})"),
                }));
            }
            Err(registry::Error::TooLarge { limit, .. }) => {
                return Ok(Err(Problem::Blob {
                    what: "signature payload",
                    digest: payload.to_owned(),
                    state: format!("larger than a payload may be ({limit} bytes)"),
                }));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Ok((sig_manifest, Blobs::Fetched(blobs))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::bundle::{Bundle, Packaged};
    use crate::oci::layout::Prepackaged;

    const NAME: &str = "bundles/p/dev";
    const REGISTRY: &str = "r.example/etl";

    fn key() -> SigningKey {
        SigningKey::from_pem(&keygen(None).unwrap().private_pem, None).unwrap()
    }

    /// The bundle of `dev` whose wadm file is `wadm`, and with a file its facts do not name
    /// when `stray`.
    fn packaged(wadm: &[u8], stray: bool) -> Packaged {
        let mut files = BTreeMap::from([("wadm/a.yaml".to_owned(), wadm.to_vec())]);
        if stray {
            files.insert("wadm/b.yaml".to_owned(), b"b".to_vec());
        }
        Bundle {
            files,
            ..crate::oci::bundle::sample("dev", REGISTRY, wadm)
        }
        .package(NAME)
    }

    /// A signed layout holding `p` as [`NAME`], written to a new directory.
    fn signed_layout(p: &Packaged, key: &SigningKey) -> tempfile::TempDir {
        let mut files = layout::layout(
            &[],
            &BTreeMap::new(),
            &[Prepackaged {
                name: NAME,
                manifest: &p.manifest,
                blobs: &p.blobs,
            }],
        )
        .unwrap();
        sign_layout(&mut files, "", key, REGISTRY).unwrap();
        write(&files)
    }

    fn write(files: &BTreeMap<String, Vec<u8>>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, bytes) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        dir
    }

    fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let path = e.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let relative = path.strip_prefix(dir).unwrap().to_str().unwrap().to_owned();
                    files.insert(relative, std::fs::read(&path).unwrap());
                }
            }
        }
        files
    }

    #[test]
    fn a_bundle_is_signed_and_checked_like_an_artifact_and_its_facts_too() {
        let key = key();
        let public = key.verifying_key();
        let p = packaged(b"a", false);
        let dir = signed_layout(&p, &key);
        let report = verify_layout(dir.path(), &public).unwrap();
        assert_eq!(
            report.artifacts,
            [Checked {
                name: NAME.to_owned(),
                digest: p.manifest_digest.clone(),
                outcome: Ok(format!("{REGISTRY}/{NAME}")),
            }]
        );
        // Intact blobs, but a file the facts do not name.
        let stray = packaged(b"a", true);
        let dir = signed_layout(&stray, &key);
        let report = verify_layout(dir.path(), &public).unwrap();
        assert_eq!(
            report.artifacts[0].outcome,
            Err(Problem::Bundle(Box::new(BundleError::UnnamedFile(
                "wadm/b.yaml".to_owned()
            ))))
        );
        assert!(
            report.artifacts[0]
                .outcome
                .as_ref()
                .unwrap_err()
                .to_string()
                .starts_with("not a valid deployment bundle: the bundle has `wadm/b.yaml`")
        );
    }

    #[test]
    fn the_signature_a_layout_holds_is_found_only_for_that_bundle_and_key() {
        let key = key();
        let public = key.verifying_key();
        let p = packaged(b"a", false);
        let dir = signed_layout(&p, &key);
        let found = signature_in_layout(dir.path(), NAME, &p.manifest_digest, &public)
            .unwrap()
            .expect("signed");
        let made = StoredSignature::from(signature(
            &key,
            &format!("{REGISTRY}/{NAME}"),
            &p.manifest_digest,
        ));
        assert_eq!(
            found, made,
            "deterministic: the same bytes as signing again"
        );
        let other = packaged(b"b", false);
        assert_eq!(
            signature_in_layout(dir.path(), NAME, &other.manifest_digest, &public).unwrap(),
            None
        );
        assert_eq!(
            signature_in_layout(dir.path(), "bundles/p/prod", &p.manifest_digest, &public).unwrap(),
            None
        );
        let stranger = self::key().verifying_key();
        assert_eq!(
            signature_in_layout(dir.path(), NAME, &p.manifest_digest, &stranger).unwrap(),
            None
        );
        assert!(matches!(
            signature_in_layout(&dir.path().join("nowhere"), NAME, "", &public),
            Err(VerifyError::NotALayout(_))
        ));
    }

    #[test]
    fn put_signed_replaces_a_bundle_and_its_signature() {
        let key = key();
        let public = key.verifying_key();
        let old = packaged(b"a", false);
        let dir = signed_layout(&old, &key);
        let mut files = read_dir(dir.path());
        let new = packaged(b"b", false);
        let stored = StoredSignature::from(signature(
            &key,
            &format!("{REGISTRY}/{NAME}"),
            &new.manifest_digest,
        ));
        let manifest = Prepackaged {
            name: NAME,
            manifest: &new.manifest,
            blobs: &new.blobs,
        };
        put_signed(&mut files, "", manifest, &stored).unwrap();
        // The same files as a layout of the new bundle signed from scratch.
        assert_eq!(files, read_dir(signed_layout(&new, &key).path()));
        let dir = write(&files);
        assert!(verify_layout(dir.path(), &public).unwrap().ok());
    }
}
