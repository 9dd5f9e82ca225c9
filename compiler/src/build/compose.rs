//! Stage `compose`: one component per step, the platform harness pattern.
//!
//! ```text
//!   settings ──types, config──► customer ──transform──► in (messaging | http) ──► exported handler
//!      └───────types──────────► out ──emit────────────────┘
//! ```
//!
//! Parts are instantiated in a fixed order (settings, egress, customer, msg-id, out, in), so the
//! same inputs give the same bytes. The customer is wired to nothing but the contract's `types` and
//! `config` (and, when granted it, the `wasi:config/runtime` the v2 settings part serves, as the
//! 1.x host would) and, when it imports `wasi:http/outgoing-handler`, the egress part's export of
//! it: the guard of its outbound HTTP, whose own import of it is the host's (such a customer
//! without the guard is an error). Its other imports (granted by policy) stay imports of the
//! composed component, never satisfied by a platform part. The out part takes its
//! `wasmcloud:messaging/consumer` from the msg-id part when there is one (wasmCloud 1.x, where
//! `delivery.nats_msg_id` is set). The out part (and the egress part) take what settings exports
//! (`types`, and for wasmCloud v2 the `wasi:config/runtime` that settings serves from the host's
//! `store`); an in part takes `transform` from the customer (and nothing else: a customer exporting
//! a platform interface never serves a platform part), `emit` from out, and the rest from settings.
//! Whatever no part satisfies (WASI, messaging, http, 1.x config) is imported by the composed
//! component, once per name.

use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions, NodeId, PackageId};

/// The contract's types-only interface, served by the settings part.
pub const TYPES: &str = "etl:pipeline/types@0.1.0";
/// The customer's settings interface, served by the settings part.
pub const CONFIG: &str = "etl:pipeline/config@0.1.0";
/// The customer's export.
pub const TRANSFORM: &str = "etl:pipeline/transform@0.1.0";
/// The config interface the platform parts read, and the wasmCloud 1.x host serves; the v2
/// settings part serves it inside a composition.
pub const RUNTIME_CONFIG: &str = "wasi:config/runtime@0.2.0-draft";
/// A customer's outbound HTTP, which only the egress part serves it.
pub const OUTGOING_HANDLER: &str = crate::spec::model::OUTGOING_HANDLER;

/// Why a composition failed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A part is not a component wac can read.
    #[error("cannot read the {part} component: {reason}")]
    Package {
        /// Which part.
        part: String,
        /// Why.
        reason: String,
    },
    /// Wiring one part's import to another's export failed (types differ, missing export).
    #[error("cannot connect `{name}` of the {to} to the {from}: {reason}")]
    Wire {
        /// The interface.
        name: String,
        /// The part that exports it.
        from: String,
        /// The part that imports it.
        to: String,
        /// Why.
        reason: String,
    },
    /// A contract or platform interface that no part provides: it would leak out as an import.
    #[error("nothing provides `{name}` to the {to}")]
    Unsatisfied {
        /// The interface.
        name: String,
        /// The part that imports it.
        to: String,
    },
    /// Encoding or validating the composed component failed.
    #[error("cannot encode the composed component: {0}")]
    Encode(String),
}

/// The components of one step.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    /// Serves `types` and the customer's `config`.
    pub settings: &'a [u8],
    /// The customer transform (a component).
    pub customer: &'a [u8],
    /// Delivers the transform's outputs (`emit`).
    pub outbound: &'a [u8],
    /// The entry points: each imports `transform` and `emit` and exports a handler, which the
    /// composed component exports. At least one.
    pub inbound: &'a [&'a [u8]],
    /// The guard of the customer's outbound HTTP, for a customer that imports
    /// `wasi:http/outgoing-handler`: it serves that import and imports the host's.
    pub egress: Option<&'a [u8]>,
    /// The `msg-id` part, between the out part and the host: it serves the out part's
    /// `wasmcloud:messaging/consumer` import, and its own imports are the host's.
    pub msg_id: Option<&'a [u8]>,
}

struct Graph {
    graph: CompositionGraph,
}

impl Graph {
    fn register(&mut self, part: &str, bytes: &[u8]) -> Result<PackageId, ComposeError> {
        let package = Package::from_bytes(part, None, bytes.to_vec(), self.graph.types_mut())
            .map_err(|e| ComposeError::Package {
                part: part.to_owned(),
                reason: format!("{e:#}"),
            })?;
        self.graph
            .register_package(package)
            .map_err(|e| ComposeError::Package {
                part: part.to_owned(),
                reason: format!("{e:#}"),
            })
    }

    /// The names a package imports.
    fn imports(&self, package: PackageId) -> Vec<String> {
        let world = self.graph[package].ty();
        self.graph.types()[world].imports.keys().cloned().collect()
    }

    fn exports(&self, package: PackageId) -> Vec<String> {
        let world = self.graph[package].ty();
        self.graph.types()[world].exports.keys().cloned().collect()
    }

    /// Connects `name` exported by instance `from` to the same import of instance `to`.
    /// Connects each `etl:` import of `to` to the first provider exporting it; fails for one
    /// that none does (it would otherwise become an import of the composed component).
    fn wire_all(
        &mut self,
        to: (NodeId, &str),
        imports: &[String],
        providers: &[((NodeId, &str), Vec<String>)],
    ) -> Result<(), ComposeError> {
        for name in imports {
            match providers.iter().find(|(_, exports)| exports.contains(name)) {
                Some((provider, _)) => self.wire(name, *provider, to)?,
                None if name.starts_with("etl:") => {
                    return Err(ComposeError::Unsatisfied {
                        name: name.clone(),
                        to: to.1.to_owned(),
                    });
                }
                None => {}
            }
        }
        Ok(())
    }

    fn wire(
        &mut self,
        name: &str,
        from: (NodeId, &str),
        to: (NodeId, &str),
    ) -> Result<(), ComposeError> {
        self.wire_as(name, from, name, to)
    }

    /// Connects `export` of instance `from` to the import `import` of instance `to` (the same
    /// interface at another version, say).
    fn wire_as(
        &mut self,
        export: &str,
        (from, from_part): (NodeId, &str),
        import: &str,
        (to, to_part): (NodeId, &str),
    ) -> Result<(), ComposeError> {
        let wire_error = |reason: String| ComposeError::Wire {
            name: import.to_owned(),
            from: from_part.to_owned(),
            to: to_part.to_owned(),
            reason,
        };
        let export = self
            .graph
            .alias_instance_export(from, export)
            .map_err(|e| wire_error(format!("{e:#}")))?;
        self.graph
            .set_instantiation_argument(to, import, export)
            .map_err(|e| wire_error(format!("{e:#}")))
    }
}

/// Composes one step. Deterministic: the same parts give the same bytes.
pub fn compose(parts: Parts<'_>) -> Result<Vec<u8>, ComposeError> {
    let mut g = Graph {
        graph: CompositionGraph::new(),
    };
    let settings_pkg = g.register("settings", parts.settings)?;
    let egress_pkg = parts
        .egress
        .map(|bytes| g.register("egress", bytes))
        .transpose()?;
    let customer_pkg = g.register("customer", parts.customer)?;
    let out_pkg = g.register("out", parts.outbound)?;
    let msg_id_pkg = parts
        .msg_id
        .map(|bytes| g.register("msg-id", bytes))
        .transpose()?;
    let in_pkgs = parts
        .inbound
        .iter()
        .enumerate()
        .map(|(i, bytes)| g.register(&format!("in{i}"), bytes))
        .collect::<Result<Vec<_>, _>>()?;

    let settings = (g.graph.instantiate(settings_pkg), "settings part");
    let settings_exports = g.exports(settings_pkg);
    // The guard reads its hosts where the other parts read their configuration; its import of
    // the host's outgoing handler stays an import of the composed component.
    let guard = match egress_pkg {
        Some(pkg) => {
            let node = (g.graph.instantiate(pkg), "egress part");
            let imports = g.imports(pkg);
            g.wire_all(node, &imports, &[(settings, settings_exports.clone())])?;
            let export = g
                .exports(pkg)
                .into_iter()
                .find(|e| is_outgoing_handler(e))
                .ok_or_else(|| {
                    ComposeError::Encode(format!("the egress part exports no `{OUTGOING_HANDLER}`"))
                })?;
            Some((node, export))
        }
        None => None,
    };
    let customer = (g.graph.instantiate(customer_pkg), "customer component");
    // The customer gets the contract's interfaces from settings and nothing else; and, when
    // granted it, the 1.x config interface where settings serves it (wasmCloud v2), so that it
    // reads the same configuration on both generations.
    let for_customer = |n: &String| n == TYPES || n == CONFIG || n == RUNTIME_CONFIG;
    let contract_only: Vec<String> = settings_exports
        .iter()
        .filter(|n| for_customer(n))
        .cloned()
        .collect();
    let customer_imports: Vec<String> = g
        .imports(customer_pkg)
        .into_iter()
        .filter(|n| for_customer(n) && contract_only.contains(n))
        .collect();
    g.wire_all(customer, &customer_imports, &[(settings, contract_only)])?;
    // Its outbound HTTP goes through the guard, whatever 0.2 version it imports; never to the
    // host directly.
    for import in g
        .imports(customer_pkg)
        .into_iter()
        .filter(|i| is_outgoing_handler(i))
    {
        match &guard {
            Some((node, export)) => g.wire_as(export, *node, &import, customer)?,
            None => {
                return Err(ComposeError::Unsatisfied {
                    name: import,
                    to: customer.1.to_owned(),
                });
            }
        }
    }
    // What the out part publishes goes through the msg-id part, when there is one; the msg-id
    // part's own imports are the host's.
    let mut out_providers = Vec::new();
    if let Some(pkg) = msg_id_pkg {
        let node = (g.graph.instantiate(pkg), "msg-id part");
        out_providers.push((node, g.exports(pkg)));
    }
    out_providers.push((settings, settings_exports.clone()));
    let out = (g.graph.instantiate(out_pkg), "out part");
    let out_imports = g.imports(out_pkg);
    g.wire_all(out, &out_imports, &out_providers)?;
    let customer_exports: Vec<String> = g
        .exports(customer_pkg)
        .into_iter()
        .filter(|n| n == TRANSFORM)
        .collect();
    let providers = [
        (customer, customer_exports),
        (out, g.exports(out_pkg)),
        (settings, settings_exports),
    ];
    let mut exported = Vec::new();
    for (i, pkg) in in_pkgs.iter().enumerate() {
        let node = (g.graph.instantiate(*pkg), "in part");
        let imports = g.imports(*pkg);
        g.wire_all(node, &imports, &providers)?;
        for name in g.exports(*pkg) {
            if exported.contains(&name) {
                return Err(ComposeError::Encode(format!(
                    "two in parts (the {i}th and an earlier one) export `{name}`"
                )));
            }
            let alias = g
                .graph
                .alias_instance_export(node.0, &name)
                .map_err(|e| ComposeError::Encode(format!("{e:#}")))?;
            g.graph
                .export(alias, name.clone())
                .map_err(|e| ComposeError::Encode(format!("{e:#}")))?;
            exported.push(name);
        }
    }
    g.graph
        .encode(EncodeOptions {
            define_components: true,
            validate: true,
            processor: None,
        })
        .map_err(|e| ComposeError::Encode(format!("{e:#}")))
}

/// Whether `name` is `wasi:http/outgoing-handler` at some version.
fn is_outgoing_handler(name: &str) -> bool {
    name.split('@').next() == Some(OUTGOING_HANDLER)
}

/// The top-level import and export names of a component, in order.
pub fn interface_of(component: &[u8]) -> Result<(Vec<String>, Vec<String>), String> {
    let mut types = wac_types::Types::default();
    let package = Package::from_bytes("component", None, component.to_vec(), &mut types)
        .map_err(|e| format!("{e:#}"))?;
    let world = &types[package.ty()];
    Ok((
        world.imports.keys().cloned().collect(),
        world.exports.keys().cloned().collect(),
    ))
}

/// How many core module instances one instantiation of `component` takes from wasmtime's
/// instance pool: every core `instantiate` of it and of the nested components it instantiates,
/// and the adapter modules wasmtime adds where one part calls another. This is what a wasmCloud
/// v2 host's pool (`--core-instances`, 1000 by default) counts, and each message a step handles
/// instantiates the whole component anew. Counted by wasmtime's own translator (48), which lays
/// the component out as the engine will.
pub fn core_instances(component: &[u8]) -> Result<u32, String> {
    use wasmtime_environ::component::{ComponentTypesBuilder, Translator};
    use wasmtime_environ::wasmparser::{Validator, WasmFeatures};
    use wasmtime_environ::{ScopeVec, Tunables};

    let tunables = Tunables::default_host();
    let scope = ScopeVec::new();
    let mut validator = Validator::new_with_features(WasmFeatures::all());
    let mut types = ComponentTypesBuilder::new(&validator);
    let (translation, _) = Translator::new(&tunables, &mut validator, &mut types, &scope)
        .translate(component)
        .map_err(|e| format!("{e:#}"))?;
    Ok(translation.component.num_runtime_instances)
}
