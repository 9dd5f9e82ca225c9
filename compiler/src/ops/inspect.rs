//! `etl inspect`: a component's imports and exports in WIT terms, and whether it satisfies the
//! customer contract under a policy.

use std::fmt::Write;
use std::path::Path;

use crate::build::contract;
use crate::build::resolve::{self, Origin, Resolved};
use crate::spec::model::Grant;
use crate::store::ResolveError;
use crate::util::io::IoError;

/// Why a file could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The file cannot be read.
    #[error(transparent)]
    Io(#[from] IoError),
    /// It is not a usable component.
    #[error(transparent)]
    Component(#[from] ResolveError),
}

/// What `etl inspect` found in a file.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The readable report ([`describe`]).
    pub report: String,
    /// Whether the component satisfies the contract under the grants ([`satisfies`]).
    pub satisfied: bool,
}

/// Reads, componentizes and checks the component in `file`, judged with `grants`.
pub fn inspect(file: &Path, grants: &[Grant]) -> Result<Inspection, InspectError> {
    let bytes = std::fs::read(file).map_err(IoError::at(file))?;
    let name = file.display().to_string();
    let resolved = resolve::prepare(&name, bytes, None)?;
    Ok(Inspection {
        report: describe(&name, &resolved, grants),
        satisfied: satisfies(&resolved, grants),
    })
}

/// A readable report of a resolved component, judged with the given grants.
pub fn describe(name: &str, r: &Resolved, grants: &[Grant]) -> String {
    let mut out = String::new();
    let origin = match r.origin {
        Origin::Component => "a component",
        Origin::CoreModule => "a core module with component-type metadata, componentized by etl",
    };
    let _ = writeln!(out, "{name}: {origin}");
    let _ = writeln!(out, "  digest            {}", r.digest);
    if r.origin == Origin::CoreModule {
        let _ = writeln!(out, "  component digest  {}", r.component_digest);
    }
    let _ = writeln!(out, "  size              {} bytes", r.component.len());
    let list = |out: &mut String, title: &str, items: &[String]| {
        let _ = writeln!(out, "\n{title}:");
        if items.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for item in items {
            let _ = writeln!(out, "  {item}");
        }
    };
    list(&mut out, "imports", &r.contract.imports);
    list(&mut out, "exports", &r.contract.exports);
    if let Some(wit) = wit_of(&r.component) {
        let _ = writeln!(out, "\nWIT:\n{}", indent(&wit));
    }
    let granted: Vec<&Grant> = grants.iter().collect();
    let forbidden = contract::forbidden(&r.contract.extra_imports, &granted);
    let _ = writeln!(out, "\ncontract etl:pipeline/transformer@0.1.0:");
    if r.contract.missing_transform {
        let _ = writeln!(out, "  ✗ does not export {}", contract::TRANSFORM_EXPORT);
    }
    for (item, reason) in &r.contract.mismatched {
        let _ = writeln!(
            out,
            "  ✗ `{item}` has other types than the contract: {reason}"
        );
    }
    for import in &forbidden {
        let _ = writeln!(out, "  ✗ imports {import}, which the policy does not grant");
    }
    if contract::looks_like_wasip2_std(&forbidden) {
        let _ = writeln!(
            out,
            "  hint: a Rust std build for wasm32-wasip2 imports these; build for wasm32-unknown-unknown with wit-bindgen"
        );
    }
    if r.contract.types_fit() && forbidden.is_empty() {
        let policy = if grants.is_empty() {
            "an empty policy".to_owned()
        } else {
            format!("the grants {}", crate::diag::quoted_list(grants))
        };
        let _ = writeln!(out, "  ✓ satisfied under {policy}");
    }
    out
}

/// Whether the component fits the contract under the grants.
pub fn satisfies(r: &Resolved, grants: &[Grant]) -> bool {
    let granted: Vec<&Grant> = grants.iter().collect();
    r.contract.types_fit() && contract::forbidden(&r.contract.extra_imports, &granted).is_empty()
}

/// The component's world as WIT text.
fn wit_of(component: &[u8]) -> Option<String> {
    let wit_parser::decoding::DecodedWasm::Component(resolve, world) =
        wit_component::decode(component).ok()?
    else {
        return None;
    };
    let package = resolve.worlds[world].package?;
    let mut printer = wit_component::WitPrinter::default();
    printer.print(&resolve, package, &[]).ok()?;
    Some(printer.output.to_string())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("  {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
