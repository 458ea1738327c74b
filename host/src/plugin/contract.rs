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

/// Import prefixes a plugin may use: the WASI pieces Rust's standard library links (stdio,
/// environment, exit, streams, random, clocks). The host grants them with nothing behind
/// them: no environment variables, no arguments, stdio discarded.
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
