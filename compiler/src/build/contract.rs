//! The customer contract and the capability policy, checked on a component's own types before
//! anything is composed with it.
//!
//! The contract is `etl:pipeline/transformer@0.1.0` (`wit/etl-pipeline`, embedded): a customer
//! component must export `etl:pipeline/transform@0.1.0` with exactly the contract's types. It may
//! import the contract's own interfaces and what the policy grants, nothing else: composition
//! merges same-named imports, so an ungranted import of, say, `wasmcloud:messaging/consumer`
//! would silently share the platform harness's capability.

use std::sync::LazyLock;

use wac_types::{ItemKind, Package, Type, Types};

use crate::spec::model::Grant;

/// The contract's WIT, as customers compile against it.
pub const CONTRACT_WIT: &str = include_str!("../../../wit/etl-pipeline/pipeline.wit");
/// The interface a customer component must export.
pub const TRANSFORM_EXPORT: &str = "etl:pipeline/transform@0.1.0";
/// Imports every customer component may have.
pub const ALWAYS_ALLOWED: [&str; 2] = ["etl:pipeline/types@0.1.0", "etl:pipeline/config@0.1.0"];

/// The contract encoded as a WIT package component, once.
static CONTRACT_PACKAGE: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut resolve = wit_parser::Resolve::new();
    let pkg = resolve
        .push_str("pipeline.wit", CONTRACT_WIT)
        .expect("the embedded contract parses");
    wit_component::encode(&resolve, pkg, false).expect("the embedded contract encodes")
});

/// How a component measures up to the contract.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContractReport {
    /// The transform export is missing.
    pub missing_transform: bool,
    /// Items whose types differ from the contract's, with the reason.
    pub mismatched: Vec<(String, String)>,
    /// Imports beyond the contract's own interfaces, by name, sorted.
    pub extra_imports: Vec<String>,
    /// Every import of the component, by name, in its order.
    pub imports: Vec<String>,
    /// Every export of the component, by name, in its order.
    pub exports: Vec<String>,
}

impl ContractReport {
    /// Whether exports and types fit (imports are judged by the policy).
    pub fn types_fit(&self) -> bool {
        !self.missing_transform && self.mismatched.is_empty()
    }
}

/// Checks a component (not a core module) against the contract world.
pub fn inspect(component: &[u8]) -> Result<ContractReport, String> {
    let mut types = Types::default();
    let contract = Package::from_bytes(
        "etl:pipeline",
        None,
        CONTRACT_PACKAGE.as_slice(),
        &mut types,
    )
    .map_err(|e| format!("{e:#}"))?;
    let world = match contract.definitions().get("transformer") {
        Some(ItemKind::Type(Type::World(id))) => *id,
        _ => return Err("the contract has no `transformer` world".to_owned()),
    };
    let package = Package::from_bytes("customer", None, component.to_vec(), &mut types)
        .map_err(|e| format!("{e:#}"))?;
    let world_of_package = &types[package.ty()];
    let mut report = ContractReport {
        imports: world_of_package.imports.keys().cloned().collect(),
        exports: world_of_package.exports.keys().cloned().collect(),
        ..ContractReport::default()
    };
    if let Err(found) = wac_types::validate_target(&types, world, package.ty()) {
        report.missing_transform = found.missing_exports().next().is_some();
        report.mismatched = found
            .mismatched_types()
            .map(|(name, _, e)| (name.to_owned(), format!("{e:#}")))
            .collect();
        report.extra_imports = found.imports_not_in_target().map(str::to_owned).collect();
    }
    Ok(report)
}

/// Whether a grant covers an import: `ns:pkg/iface` any version, `ns:pkg/iface@v` exactly,
/// `ns:pkg/*` every interface of the package.
pub fn grants(grant: &Grant, import: &str) -> bool {
    grant.covers(import)
}

/// The imports no grant covers.
pub fn forbidden<'a>(imports: &'a [String], granted: &[&Grant]) -> Vec<&'a str> {
    imports
        .iter()
        .map(String::as_str)
        .filter(|import| !ALWAYS_ALLOWED.contains(import))
        .filter(|import| !granted.iter().any(|g| grants(g, import)))
        .collect()
}

/// Whether the imports look like those of a Rust std build for `wasm32-wasip2`, which always
/// imports `wasi:cli` (`wasi:io` alone is a component's own streams, of `wasi:http` say).
pub fn looks_like_wasip2_std(imports: &[&str]) -> bool {
    imports.iter().any(|i| i.starts_with("wasi:cli/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(text: &str) -> Grant {
        Grant::try_from(text.to_owned()).unwrap()
    }

    #[test]
    fn grants_match_by_name_version_and_package() {
        assert!(grants(
            &grant("wasi:logging/logging"),
            "wasi:logging/logging@0.1.0-draft"
        ));
        assert!(grants(
            &grant("wasi:logging/logging@0.1.0-draft"),
            "wasi:logging/logging@0.1.0-draft"
        ));
        assert!(!grants(
            &grant("wasi:logging/logging@0.2.0"),
            "wasi:logging/logging@0.1.0-draft"
        ));
        assert!(grants(&grant("wasi:sockets/*"), "wasi:sockets/tcp@0.2.0"));
        assert!(!grants(&grant("wasi:sockets/*"), "wasi:socketsx/tcp@0.2.0"));
        assert!(!grants(
            &grant("wasi:logging/logging"),
            "wasi:logging/logger"
        ));
    }

    #[test]
    fn the_contract_is_always_allowed() {
        let imports = vec![
            "etl:pipeline/config@0.1.0".to_owned(),
            "wasi:sockets/tcp@0.2.0".to_owned(),
        ];
        assert_eq!(forbidden(&imports, &[]), ["wasi:sockets/tcp@0.2.0"]);
    }

    #[test]
    fn a_component_without_the_export_is_reported() {
        // The contract package itself exports no `transform` instance: it only defines types.
        let report = inspect(&CONTRACT_PACKAGE).unwrap();
        assert!(report.missing_transform);
    }
}
