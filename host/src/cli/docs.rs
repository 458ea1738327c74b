//! `wasmkafka completions SHELL` and `wasmkafka man`: shell completion scripts and man pages
//! rendered from the same clap definition that parses the command line, so they name exactly
//! the subcommands and flags of the binary that prints them. `scripts/release.sh` puts both in
//! the release archives.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, CommandFactory};

use super::Cli;

/// The binary's name in scripts and pages.
const NAME: &str = "wasmkafka";

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command into DIR (wasmkafka.1, wasmkafka-run.1,
    /// wasmkafka-groups-list.1, ...) instead of printing the main page to stdout.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Prints the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell) {
    clap_complete::generate(shell, &mut Cli::command(), NAME, &mut std::io::stdout());
}

/// Prints the main man page (roff) to stdout, or writes every command's page into a directory.
pub fn man(args: ManArgs) -> anyhow::Result<()> {
    match args.out_dir {
        None => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout().lock())
            .context("cannot write the man page to stdout"),
        Some(dir) => write_pages(&dir),
    }
}

/// One page per command, subcommands named `wasmkafka-<sub>[-<sub>].1` as git's are.
fn write_pages(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("cannot write the man pages into {}", dir.display()))
}
