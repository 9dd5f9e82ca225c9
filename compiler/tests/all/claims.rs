//! The wascap claims of wasmCloud 1.x artifacts, read back by wascap 0.16.2: the reader
//! `wasmcloud-host` 0.27.1 runs before it fetches a component's secrets
//! (`wasmcloud_runtime::component::claims_token`: `extract_claims`, then `validate_token`, then
//! not expired, usable now, signature valid).

use std::collections::BTreeMap;

use etl::build::Build;
use etl::build::dist::Plan;
use etl::build::generation::Generation;
use etl::oci::claims::AccountKey;
use sha2::{Digest as _, Sha256};
use wascap::jwt::{self, Component};

use crate::common;

/// A fixed account seed (a test key, nothing else).
const SEED: &str = "SAAPN4W3EG6KCJGUQTKTJ5GSB5NHK5CHAJL4DBGFUM3HHROI4XUEP4OBK4";

fn key() -> AccountKey {
    AccountKey::from_seed(SEED).unwrap()
}

fn build(claims: Option<&AccountKey>) -> (Plan, BTreeMap<String, Vec<u8>>) {
    let Build {
        plan,
        files,
        validation,
        ..
    } = etl::build::build_with(&common::example(), None, &Default::default(), claims).unwrap();
    assert!(
        validation.diagnostics.is_empty(),
        "{:#?}",
        validation.diagnostics
    );
    (plan.expect("the example compiles"), files)
}

/// The host's check of an embedded token (wasmcloud-runtime 0.12 `claims_token`).
fn host_claims(wasm: &[u8]) -> Option<jwt::Token<Component>> {
    let token = wascap::wasm::extract_claims(wasm).expect("claims the host accepts")?;
    let v = jwt::validate_token::<Component>(&token.jwt).unwrap();
    assert!(
        !v.expired && !v.cannot_use_yet && v.signature_valid,
        "{v:?}"
    );
    assert_eq!(v.expires_human, "never");
    Some(token)
}

#[test]
fn every_1x_artifact_carries_claims_the_host_reads_back() {
    let key = key();
    let (plan, files) = build(Some(&key));
    let (unclaimed_plan, unclaimed) = build(None);
    let kp = nkeys::KeyPair::from_seed(SEED).unwrap();
    let mut subjects = Vec::new();
    for (p, u) in plan
        .pipelines
        .iter()
        .flat_map(|p| p.units().map(move |u| (p, u)))
    {
        let artifact = &u.artifact;
        let wasm = &files[&artifact.path];
        let claims = artifact.claims.as_ref().expect("plan.json records them");
        let token = host_claims(wasm).expect("embedded claims");
        assert_eq!(token.claims.issuer, key.public_key());
        assert_eq!(claims.issuer, key.public_key());
        assert_eq!(token.claims.subject, claims.subject);
        assert_eq!(
            claims.subject,
            key.subject(&format!("{}/{}/{}", plan.project, p.name, u.name)),
            "derived from the seed and the unit's name alone"
        );
        assert!(claims.subject.starts_with('M'), "a module key");
        assert_eq!(token.claims.issued_at, 0);
        assert_eq!(token.claims.expires, None);
        assert_eq!(token.claims.not_before, None);
        let meta = token.claims.metadata.as_ref().unwrap();
        assert_eq!(
            meta.name.as_deref(),
            Some(Generation::V1.repository(&p.name, &u.name).as_str())
        );
        assert!(!meta.provider);

        // The claims are all that was added: the component is the one composed without them,
        // whose hash the claims hold.
        let bare = &unclaimed[&unclaimed_plan.pipelines[0]
            .unit(&u.name)
            .unwrap()
            .artifact
            .path];
        assert!(wasm.starts_with(bare));
        assert_eq!(
            meta.module_hash,
            format!("{:X}", Sha256::digest(bare)),
            "{}",
            u.name
        );
        assert_eq!(artifact.size, wasm.len());
        assert_eq!(artifact.digest, etl::util::digest::sha256(wasm));

        // What wascap itself would write: the same JWT, the same bytes.
        assert_eq!(token.claims.encode(&kp).unwrap(), token.jwt);
        let embedded = wascap::wasm::embed_claims(bare, &token.claims, &kp).unwrap();
        assert_eq!(&embedded, wasm, "{}", u.name);

        // The hash is checked: a component changed after signing is refused.
        let mut tampered = wasm.clone();
        tampered[bare.len() / 2] ^= 1;
        assert!(wascap::wasm::extract_claims(&tampered).is_err());

        // v2 hosts need none.
        let v2 = u.artifact_v2.as_ref().unwrap();
        assert!(v2.claims.is_none());
        assert!(host_claims(&files[&v2.path]).is_none());
        subjects.push(claims.subject.clone());
    }
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 5, "one subject per unit");
}

#[test]
fn claims_are_byte_identical_across_builds() {
    let (plan, files) = build(Some(&key()));
    let (again, files_again) = build(Some(&key()));
    assert_eq!(plan, again);
    assert_eq!(files, files_again);
    // Only what is deployed is written: no 1.x composition without its claims.
    let components: Vec<&String> = files
        .keys()
        .filter(|p| p.starts_with("components/"))
        .collect();
    let used: Vec<&String> = plan
        .pipelines
        .iter()
        .flat_map(|p| p.units())
        .flat_map(|u| u.artifacts())
        .map(|(_, a)| &a.path)
        .collect();
    assert_eq!(components.len(), used.len());
    assert!(used.iter().all(|p| files.contains_key(*p)));
    // Another account: other subjects and other artifacts, the same v2 ones.
    let other = AccountKey::generate();
    let (other_plan, _) = build(Some(&other));
    for (a, b) in plan.pipelines[0]
        .units()
        .zip(other_plan.pipelines[0].units())
    {
        assert_ne!(a.artifact.digest, b.artifact.digest);
        assert_ne!(a.artifact.claims, b.artifact.claims);
        assert_eq!(a.artifact_v2, b.artifact_v2);
    }
}

#[test]
fn without_a_key_no_artifact_has_claims() {
    let (plan, files) = build(None);
    for u in plan.pipelines.iter().flat_map(|p| p.units()) {
        for (_, a) in u.artifacts() {
            assert!(a.claims.is_none());
            assert!(host_claims(&files[&a.path]).is_none());
        }
    }
    let json = String::from_utf8(files["plan.json"].clone()).unwrap();
    assert!(!json.contains("\"claims\""));
}

#[test]
fn nested_claims_and_padded_sizes_are_stripped_as_wascap_strips_them() {
    // A customer component signed by `wash build` nests its own claims; a toolchain may pad a
    // section size. Both change what wascap hashes, and the claims must still validate.
    let inner = wat::parse_str(r#"(module (@custom "jwt" "old claims") (func))"#).unwrap();
    let mut wasm = wat::parse_str(
        r#"(component (component (@custom "wasmcloud_jwt" "a customer's claims")))"#,
    )
    .unwrap();
    // A core module section (id 1) whose size is a 5-byte LEB128.
    let size = u32::try_from(inner.len()).unwrap();
    wasm.push(1);
    wasm.extend([
        (size & 0x7f) as u8 | 0x80,
        ((size >> 7) & 0x7f) as u8 | 0x80,
        ((size >> 14) & 0x7f) as u8 | 0x80,
        ((size >> 21) & 0x7f) as u8 | 0x80,
        (size >> 28) as u8,
    ]);
    wasm.extend(&inner);
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&wasm)
        .unwrap();

    let key = key();
    let claimed = key.embed(&wasm, "p-u", "acme/p/u").unwrap();
    let token = host_claims(&claimed.bytes).expect("our claims, not the customer's");
    assert_eq!(token.claims.subject, key.subject("acme/p/u"));
    assert!(!claimed.bytes.starts_with(&wasm), "stripped and re-encoded");
    let kp = nkeys::KeyPair::from_seed(SEED).unwrap();
    assert_eq!(
        wascap::wasm::embed_claims(&wasm, &token.claims, &kp).unwrap(),
        claimed.bytes
    );
    // Claiming a claimed component again gives the same bytes.
    assert_eq!(
        key.embed(&claimed.bytes, "p-u", "acme/p/u").unwrap(),
        claimed
    );
}
