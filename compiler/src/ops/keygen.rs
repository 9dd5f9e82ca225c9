//! Key files: `etl keygen` writes a signing key pair (`PREFIX.key`, `PREFIX.pub`), and `etl
//! compile --sign-key`, `etl verify` and `etl promote` read them back; `etl keygen --claims`
//! writes an nkey account seed (`PREFIX.nk`, `PREFIX.pub`), which `etl compile --claims-key`
//! reads back. Every error names the file.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::oci::claims::{self, AccountKey, ClaimsKeyError};
use crate::oci::sign::{self, KeyError, SigningKey, VerifyingKey};
use crate::util::io::IoError;
use crate::util::out_dir::{self, NewFile, OutputError};

/// The key pair written by [`keygen`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// `PREFIX.key`: the private key (PKCS#8 PEM, mode 0600).
    pub private: PathBuf,
    /// `PREFIX.pub`: the public key (PEM).
    pub public: PathBuf,
    /// Whether the private key is encrypted with the passphrase.
    pub encrypted: bool,
}

/// Why a key pair could not be written.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    /// The key could not be made.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A file exists or cannot be written.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Why a key file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file cannot be read.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The file holds no usable key.
    #[error("`{}`: {source}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: KeyError,
    },
    /// The file holds no nkey account seed.
    #[error("`{}`: {source}", path.display())]
    Claims {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: ClaimsKeyError,
    },
}

/// The account key written by [`keygen_claims`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenClaimsKey {
    /// `PREFIX.nk`: the seed (`SA…`, mode 0600).
    pub seed: PathBuf,
    /// `PREFIX.pub`: the public key (`A…`), the issuer of the claims.
    pub public: PathBuf,
    /// The public key.
    pub public_key: String,
}

/// The two files of prefix `prefix`: `PREFIX.key` and `PREFIX.pub`.
fn key_files(prefix: &Path) -> (PathBuf, PathBuf) {
    let with = |ext: &str| {
        let mut path = prefix.as_os_str().to_owned();
        path.push(OsStr::new(ext));
        PathBuf::from(path)
    };
    (with(".key"), with(".pub"))
}

/// Makes an ECDSA P-256 key pair ([`sign::keygen`]), the private key encrypted with
/// `passphrase` when given, and writes it to `PREFIX.key` and `PREFIX.pub`: both or neither, never
/// replacing an existing file.
pub fn keygen(prefix: &Path, passphrase: Option<&str>) -> Result<Written, KeygenError> {
    let (private, public) = key_files(prefix);
    let pair = sign::keygen(passphrase)?;
    out_dir::create_new(&[
        NewFile {
            path: &private,
            bytes: pair.private_pem.as_bytes(),
            mode: 0o600,
        },
        NewFile {
            path: &public,
            bytes: pair.public_pem.as_bytes(),
            mode: 0o644,
        },
    ])?;
    Ok(Written {
        private,
        public,
        encrypted: passphrase.is_some(),
    })
}

/// Makes an nkey account key ([`AccountKey::generate`]) and writes its seed to `PREFIX.nk`
/// (mode 0600) and its public key to `PREFIX.pub`, each on one line: both or neither, never
/// replacing an existing file. The seed is not encrypted (nkey seeds never are: wash writes them
/// the same way).
pub fn keygen_claims(prefix: &Path) -> Result<WrittenClaimsKey, KeygenError> {
    let with = |ext: &str| {
        let mut path = prefix.as_os_str().to_owned();
        path.push(OsStr::new(ext));
        PathBuf::from(path)
    };
    let (seed_path, public) = (with(".nk"), with(".pub"));
    let key = AccountKey::generate();
    let public_key = key.public_key();
    out_dir::create_new(&[
        NewFile {
            path: &seed_path,
            bytes: format!("{}\n", key.seed()).as_bytes(),
            mode: claims::SEED_MODE,
        },
        NewFile {
            path: &public,
            bytes: format!("{public_key}\n").as_bytes(),
            mode: 0o644,
        },
    ])?;
    Ok(WrittenClaimsKey {
        seed: seed_path,
        public,
        public_key,
    })
}

/// Reads the nkey account seed at `path`.
pub fn read_claims_key(path: &Path) -> Result<AccountKey, KeyFileError> {
    let text = read(path)?;
    AccountKey::from_seed(&text).map_err(|source| KeyFileError::Claims {
        path: path.to_owned(),
        source,
    })
}

/// Reads the private key at `path`, decrypting it with `passphrase` when it is encrypted.
pub fn read_signing_key(path: &Path, passphrase: Option<&str>) -> Result<SigningKey, KeyFileError> {
    let pem = read(path)?;
    SigningKey::from_pem(&pem, passphrase).map_err(|source| KeyFileError::Key {
        path: path.to_owned(),
        source,
    })
}

/// Reads the public key at `path`.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, KeyFileError> {
    let pem = read(path)?;
    VerifyingKey::from_pem(&pem).map_err(|source| KeyFileError::Key {
        path: path.to_owned(),
        source,
    })
}

fn read(path: &Path) -> Result<String, IoError> {
    std::fs::read_to_string(path).map_err(|source| IoError::new(path, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_gets_both_extensions() {
        assert_eq!(
            key_files(Path::new("keys/etl.v2")),
            (
                PathBuf::from("keys/etl.v2.key"),
                PathBuf::from("keys/etl.v2.pub")
            )
        );
    }

    #[test]
    fn a_pair_is_written_once_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("k");
        let written = keygen(&prefix, None).unwrap();
        assert!(!written.encrypted);
        read_signing_key(&written.private, None).unwrap();
        read_public_key(&written.public).unwrap();
        assert!(matches!(
            keygen(&prefix, None),
            Err(KeygenError::Output(OutputError::Exists { .. }))
        ));
    }

    #[test]
    fn an_account_seed_is_written_once_private_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("keys/claims");
        let written = keygen_claims(&prefix).unwrap();
        assert_eq!(written.seed, dir.path().join("keys/claims.nk"));
        let key = read_claims_key(&written.seed).unwrap();
        assert_eq!(key.public_key(), written.public_key);
        assert!(written.public_key.starts_with('A'));
        assert_eq!(
            std::fs::read_to_string(&written.public).unwrap(),
            format!("{}\n", written.public_key)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&written.seed)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let seed = std::fs::read(&written.seed).unwrap();
        assert!(matches!(
            keygen_claims(&prefix),
            Err(KeygenError::Output(OutputError::Exists { .. }))
        ));
        assert_eq!(
            std::fs::read(&written.seed).unwrap(),
            seed,
            "never overwritten"
        );
        let e = read_claims_key(&written.public).unwrap_err();
        assert!(matches!(e, KeyFileError::Claims { .. }), "{e}");
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pub");
        let e = read_public_key(&missing).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("`{}`: ", missing.display()))
        );
        let junk = dir.path().join("junk.pub");
        std::fs::write(&junk, "junk").unwrap();
        let e = read_public_key(&junk).unwrap_err();
        assert!(matches!(e, KeyFileError::Key { .. }));
        assert!(
            e.to_string()
                .starts_with(&format!("`{}`: not an ECDSA", junk.display()))
        );
    }
}
