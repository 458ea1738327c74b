//! `wasmkafka plugin new assignor|reset-policy NAME [--lang rust|python]`: a plugin project of
//! one's own, with a README whose commands build and check it and whose config uses it (the
//! tests run both as they stand).
//!
//! - [`rust`]: a crate on the plugin SDK, built with `cargo build --target wasm32-wasip2`.
//! - [`python`]: a module built with componentize-py against the contract's WIT.

pub mod python;
pub mod rust;

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, ValueEnum};

/// What kind of plugin to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Assignor,
    ResetPolicy,
}

impl Kind {
    /// "an assignor" / "a reset policy".
    fn described(self) -> &'static str {
        match self {
            Kind::Assignor => "an assignor",
            Kind::ResetPolicy => "a reset policy",
        }
    }
}

/// The language the plugin is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    #[arg(value_enum)]
    pub kind: Kind,
    /// The project's name (lowercase letters, digits, `-` and `_`); also the plugin's name.
    pub name: String,
    /// The language: rust (a crate on the plugin SDK) or python (built with componentize-py).
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: Lang,
    /// The folder to create it in (default: the current one).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub path: PathBuf,
    /// Rust: the SDK as a path dependency (default: `plugins/sdk` of the source tree this
    /// binary was built from).
    #[arg(long, value_name = "DIR", conflicts_with = "sdk_git")]
    pub sdk_path: Option<PathBuf>,
    /// Rust: the SDK as a git dependency: the repository URL (with --sdk-rev for a commit or
    /// tag).
    #[arg(long, value_name = "URL")]
    pub sdk_git: Option<String>,
    #[arg(long, value_name = "REV", requires = "sdk_git")]
    pub sdk_rev: Option<String>,
}

/// Creates the project; returns its folder and what to do next.
pub fn new_plugin(args: &NewArgs) -> anyhow::Result<(PathBuf, String)> {
    let name = &args.name;
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!(
            "`{name}` is not a usable crate name: start with a lowercase letter; then lowercase \
             letters, digits, - and _"
        );
    }
    let dir = args.path.join(name);
    if dir.exists() {
        bail!(
            "{} exists already; choose another name or --path",
            dir.display()
        );
    }
    let next = match args.lang {
        Lang::Rust => {
            rust::write_crate(&dir, args)?;
            format!(
                "cd {} && cargo test && cargo build --release --target wasm32-wasip2",
                dir.display()
            )
        }
        Lang::Python => {
            python::write_project(&dir, args)?;
            format!(
                "cd {} and build it as its README.md says (componentize-py)",
                dir.display()
            )
        }
    };
    Ok((dir, next))
}

/// The component file's name for a plugin name (`my-plugin` -> `my_plugin`), as cargo names
/// a crate's output.
fn file_stem(name: &str) -> String {
    name.replace('-', "_")
}
