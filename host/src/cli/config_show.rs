//! `wasmkafka config show`: the settings this command line would run with, each with the
//! layer that set it (file, environment variable, flag), secrets masked.

use clap::Subcommand;
use toml::Value;

use super::CommonArgs;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting a file, a WASMKAFKA_* variable or a flag sets, with where it came
    /// from (passwords and secrets masked); every other key has its default (README).
    Show(CommonArgs),
}

pub fn config(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Show(args) => show(&args),
    }
}

fn show(args: &CommonArgs) -> anyhow::Result<()> {
    let layered = args.layers()?.load()?;
    match &layered.file {
        Some(path) => println!("# config file: {}", path.display()),
        None => println!(
            "# no config file (none given, no $WASMKAFKA_CONFIG, no {})",
            crate::config::layers::default_file()
                .map_or("default file".to_string(), |p| p.display().to_string())
        ),
    }
    if layered.origins.is_empty() {
        println!("# every setting has its default");
        return Ok(());
    }
    let lines: Vec<(String, String)> = layered
        .origins
        .iter()
        .map(|(key, origin)| {
            let value = layered
                .values
                .get(key)
                .map_or_else(|| "(removed)".to_string(), |v| shown(key, v));
            (format!("{key} = {value}"), origin.to_string())
        })
        .collect();
    let width = lines.iter().map(|(line, _)| line.len()).max().unwrap_or(0);
    for (line, origin) in lines {
        println!("{line:width$}  # {origin}");
    }
    println!("# every other setting has its default");
    Ok(())
}

/// A value as TOML, or `"***"` for a password or secret.
fn shown(key: &str, value: &Value) -> String {
    if key.contains("password") || key.contains("secret") {
        return "\"***\"".to_string();
    }
    match value {
        Value::Table(_) => "{ ... }".to_string(),
        Value::Array(items) if items.iter().any(Value::is_table) => {
            format!("[ {} entries ]", items.len())
        }
        other => other.to_string(),
    }
}
