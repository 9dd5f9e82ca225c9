//! Content digests, as OCI writes them: `sha256:<64 lowercase hex>`.

use sha2::{Digest as _, Sha256};

/// `sha256:<hex>` of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// The hex of a well-formed sha256 digest (`sha256:` and 64 lowercase hex digits, as the OCI
/// image spec writes them), or `None`.
pub fn hex(digest: &str) -> Option<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_oci_form_is_a_digest() {
        let digest = super::sha256(b"x");
        assert_eq!(super::hex(&digest), digest.strip_prefix("sha256:"));
        for bad in [
            "sha256:",
            "sha512:ab",
            "a".repeat(64).as_str(),
            &digest.to_uppercase(),
        ] {
            assert_eq!(super::hex(bad), None, "{bad}");
        }
        assert_eq!(super::hex(&format!("{digest}0")), None);
    }

    #[test]
    fn is_the_oci_form_of_sha256() {
        assert_eq!(
            super::sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
