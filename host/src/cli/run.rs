//! `wasmkafka run`: consume and print records.

use super::RunArgs;

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let _config = args.common.load_config()?;
    anyhow::bail!("`run` lands with the fetcher")
}
