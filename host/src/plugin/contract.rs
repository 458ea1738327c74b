//! Reading a plugin before compiling it: which contract it implements, at which version, and
//! what it imports. A plugin may import only what the host grants.

use std::fmt;

use wasmparser::{Encoding, Parser, Payload};

/// The contract package and the version this host implements.
pub const PACKAGE: &str = "wasmkafka:plugin";
/// The contract this host's plugins are built against (`wit/plugin.wit`).
pub const CONTRACT_VERSION: &str = "0.3.0";
/// Every contract version this host runs, newest first (frozen ones under `wit/since_v*/`).
pub const CONTRACT_VERSIONS: &[&str] = &["0.3.0", "0.2.0", "0.1.0"];
/// The contract's own imports, by the version that introduced them: its type-only interface
/// (every version) and the host's log (0.3.0 on).
const CONTRACT_IMPORTS: &[(&str, &str)] = &[("types", "0.1.0"), ("log", "0.3.0")];

/// Import prefixes a plugin may use: WASI 0.2, which every component toolchain links (Rust's
/// standard library: stdio, environment, exit, streams, random, clocks; Python's and
/// JavaScript's runtimes also the filesystem and sockets). The host grants them with nothing
/// behind them ([`super::runtime`]'s deny-all context): no environment variables, no
/// arguments, stdio discarded, no preopened directory (every path is unreachable), every
/// socket address and name lookup refused. A plugin can link them; it cannot reach anything
/// through them.
const GRANTED: &[&str] = &[
    "wasi:cli/environment@",
    "wasi:cli/exit@",
    "wasi:cli/stdin@",
    "wasi:cli/stdout@",
    "wasi:cli/stderr@",
    "wasi:cli/terminal-",
    "wasi:io/",
    "wasi:random/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// What kind of plugin a component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    Assignor,
    ResetPolicy,
}

impl PluginKind {
    /// "an assignor" / "a reset policy", for messages.
    pub fn described(self) -> &'static str {
        match self {
            PluginKind::Assignor => "an assignor",
            PluginKind::ResetPolicy => "a reset policy",
        }
    }

    pub fn interface(self) -> &'static str {
        match self {
            PluginKind::Assignor => "assignor",
            PluginKind::ResetPolicy => "reset-policy",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.interface())
    }
}

/// What the component says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub kind: PluginKind,
    pub version: String,
    pub exports: Vec<String>,
    pub imports: Vec<String>,
}

/// Why a file is not a usable plugin (before any code of it runs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("not a WebAssembly component ({0}); build plugins with `cargo build --target wasm32-wasip2`")]
    NotAComponent(String),
    #[error(
        "exports no wasmkafka plugin interface (expected `{PACKAGE}/assignor@{CONTRACT_VERSION}` \
         or `{PACKAGE}/reset-policy@{CONTRACT_VERSION}`; it exports: {0})"
    )]
    NoPluginExport(String),
    #[error(
        "implements contract version {found} of `{PACKAGE}`, but this host runs versions \
         {supported}; rebuild the plugin against wit/plugin.wit of this wasmkafka"
    )]
    UnsupportedVersion { found: String, supported: String },
    #[error("exports both an assignor and a reset policy; a plugin is one or the other")]
    TwoKinds,
    #[error(
        "imports {0}, which plugins are not granted (no filesystem, network or other host \
         access: plugins decide from their inputs alone)"
    )]
    ForbiddenImport(String),
}

/// `version` is `since` or later (both `major.minor.patch`).
fn version_at_least(version: &str, since: &str) -> bool {
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().unwrap_or(0)).collect() };
    parse(version) >= parse(since)
}

/// Reads the top-level imports and exports of a component and checks them.
pub fn inspect(bytes: &[u8]) -> Result<PluginInfo, ContractError> {
    let mut depth = 0usize;
    let mut is_component = false;
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| ContractError::NotAComponent(e.to_string()))?;
        match payload {
            Payload::Version { encoding, .. } => {
                if depth == 0 {
                    is_component = encoding == Encoding::Component;
                    if !is_component {
                        return Err(ContractError::NotAComponent("it is a core module".into()));
                    }
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(|e| ContractError::NotAComponent(e.to_string()))?;
                    imports.push(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(|e| ContractError::NotAComponent(e.to_string()))?;
                    exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    if !is_component {
        return Err(ContractError::NotAComponent("empty file".into()));
    }
    let mut found: Vec<(PluginKind, String)> = Vec::new();
    for export in &exports {
        let Some(rest) = export
            .strip_prefix(PACKAGE)
            .and_then(|r| r.strip_prefix('/'))
        else {
            continue;
        };
        let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
        let kind = match interface {
            "assignor" => PluginKind::Assignor,
            "reset-policy" => PluginKind::ResetPolicy,
            _ => continue,
        };
        found.push((kind, version.to_string()));
    }
    let (kind, version) = match found.as_slice() {
        [] => return Err(ContractError::NoPluginExport(exports.join(", "))),
        [(kind, version)] => (*kind, version.clone()),
        _ => return Err(ContractError::TwoKinds),
    };
    if !CONTRACT_VERSIONS.contains(&version.as_str()) {
        return Err(ContractError::UnsupportedVersion {
            found: version,
            supported: CONTRACT_VERSIONS.join(", "),
        });
    }
    // The contract's own imports of the plugin's version.
    let own: Vec<String> = CONTRACT_IMPORTS
        .iter()
        .filter(|(_, since)| version_at_least(&version, since))
        .map(|(interface, _)| format!("{PACKAGE}/{interface}@{version}"))
        .collect();
    let forbidden: Vec<&str> = imports
        .iter()
        .filter(|import| {
            !own.contains(import) && !GRANTED.iter().any(|granted| import.starts_with(granted))
        })
        .map(String::as_str)
        .collect();
    if !forbidden.is_empty() {
        return Err(ContractError::ForbiddenImport(forbidden.join(", ")));
    }
    Ok(PluginInfo {
        kind,
        version,
        exports,
        imports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{
        Component, ComponentExportKind, ComponentExportSection, ComponentImportSection,
        ComponentTypeRef, ComponentTypeSection, InstanceType,
    };

    /// A component importing `imports` (empty instances) and exporting the first of them as
    /// `export`: enough for `inspect`, which reads names only.
    fn component_exporting(export: &str, imports: &[&str]) -> Vec<u8> {
        let mut component = Component::new();
        let mut types = ComponentTypeSection::new();
        types.instance(&InstanceType::new());
        component.section(&types);
        let mut section = ComponentImportSection::new();
        for name in imports {
            section.import(*name, ComponentTypeRef::Instance(0));
        }
        component.section(&section);
        let mut exports = ComponentExportSection::new();
        exports.export(export, ComponentExportKind::Instance, 0, None);
        component.section(&exports);
        component.finish()
    }

    /// [`component_exporting`] a 0.3.0 assignor.
    fn component(imports: &[&str]) -> Vec<u8> {
        component_exporting("wasmkafka:plugin/assignor@0.3.0", imports)
    }

    #[test]
    fn wasi_is_granted_with_nothing_behind_it_and_anything_else_is_refused() {
        // What Python's and JavaScript's runtimes link: loads (the runtime denies the rest).
        let granted = component(&[
            "wasi:cli/stdout@0.2.9",
            "wasi:filesystem/preopens@0.2.9",
            "wasi:sockets/tcp@0.2.9",
            "wasmkafka:plugin/log@0.3.0",
        ]);
        let info = inspect(&granted).unwrap();
        assert_eq!(info.kind, PluginKind::Assignor);
        assert_eq!(info.version, "0.3.0");
        // Outgoing HTTP and anything not WASI: refused before compiling, named.
        let refused = component(&[
            "wasi:cli/stdout@0.2.9",
            "wasi:http/outgoing-handler@0.2.9",
            "acme:spy/telemetry@1.0.0",
        ]);
        match inspect(&refused) {
            Err(ContractError::ForbiddenImport(names)) => {
                assert!(
                    names.contains("wasi:http/outgoing-handler")
                        && names.contains("acme:spy/telemetry")
                        && !names.contains("stdout"),
                    "{names}"
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // The log import belongs to 0.3.0: a 0.2.0 plugin may not name a later contract.
        let older = component_exporting(
            "wasmkafka:plugin/assignor@0.2.0",
            &["wasmkafka:plugin/log@0.3.0"],
        );
        assert!(matches!(
            inspect(&older),
            Err(ContractError::ForbiddenImport(_))
        ));
    }
}
