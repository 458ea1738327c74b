//! `wasmkafka groups`: list the cluster's consumer groups, describe some or all of them,
//! delete groups, delete a group's committed offsets for some partitions (what
//! `kafka-consumer-groups --list --state --type`, `--describe [--all-groups]`, `--delete` and
//! `--delete-offsets` do). Both kinds of group (classic and consumer) are described.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crate::group::admin::{delete_groups, delete_offsets, list_groups, ListedGroup};
use crate::group::coordinator::find_coordinator_patiently;

use super::offsets::{describe_one, parse_topics, partitions_of, print_described, TableOrJson};
use super::CommonArgs;

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Every consumer group of the cluster, with its type (classic or consumer) and state.
    List(ListArgs),
    /// Groups in detail: state, members, and per partition the committed offset, log end and
    /// lag (`--group G`, repeatable, or `--all`).
    Describe(DescribeArgs),
    /// Delete groups and their committed offsets (each must have no members).
    Delete(DeleteArgs),
    /// Delete a group's committed offsets for a topic or some of its partitions (no member
    /// may read the topic).
    DeleteOffsets(DeleteOffsetsArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub format: TableOrJson,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// A group to describe (repeatable).
    #[arg(long = "group", value_name = "G", required_unless_present = "all")]
    pub groups: Vec<String>,
    /// Every consumer group of the cluster.
    #[arg(long, conflicts_with = "groups")]
    pub all: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub format: TableOrJson,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// A group to delete (repeatable).
    #[arg(long = "group", value_name = "G", required = true)]
    pub groups: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DeleteOffsetsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[arg(long, value_name = "G")]
    pub group: String,
    /// A topic, or some of its partitions (`T:0,2`); repeatable.
    #[arg(long = "topic", value_name = "T[:P,...]", required = true)]
    pub topics: Vec<String>,
}

pub async fn groups(command: GroupsCommand) -> anyhow::Result<()> {
    match command {
        GroupsCommand::List(args) => list(args).await,
        GroupsCommand::Describe(args) => describe(args).await,
        GroupsCommand::Delete(args) => delete(args).await,
        GroupsCommand::DeleteOffsets(args) => delete_group_offsets(args).await,
    }
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let config = args.common.load_config()?;
    let client = super::connect(&config).await?;
    let groups = consumer_groups(&client).await?;
    client.close();
    match args.format {
        TableOrJson::Json => println!("{}", serde_json::to_string(&groups)?),
        TableOrJson::Table => {
            let width = groups
                .iter()
                .map(|g| g.group.len())
                .max()
                .unwrap_or(0)
                .max("GROUP".len());
            println!("{:width$}  {:8}  STATE", "GROUP", "TYPE");
            for group in &groups {
                println!("{:width$}  {:8}  {}", group.group, group.kind, group.state);
            }
        }
    }
    Ok(())
}

async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let config = args.common.load_config()?;
    let client = super::connect(&config).await?;
    let groups = if args.all {
        consumer_groups(&client)
            .await?
            .into_iter()
            .map(|g| g.group)
            .collect()
    } else {
        args.groups.clone()
    };
    let mut described = Vec::new();
    for group in &groups {
        described.push(describe_one(&client, group, &[]).await?);
    }
    client.close();
    match args.format {
        TableOrJson::Json => println!("{}", serde_json::to_string_pretty(&described)?),
        TableOrJson::Table => {
            for (index, group) in described.iter().enumerate() {
                if index > 0 {
                    println!();
                }
                print_described(group);
            }
        }
    }
    Ok(())
}

/// The cluster's consumer groups, and groups that only hold committed offsets (no protocol
/// type).
async fn consumer_groups(client: &crate::client::Client) -> anyhow::Result<Vec<ListedGroup>> {
    let listed = list_groups(client)
        .await
        .context("cannot list the groups")?;
    Ok(listed
        .into_iter()
        .filter(|g| g.protocol_type == "consumer" || g.protocol_type.is_empty())
        .collect())
}

async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let config = args.common.load_config()?;
    let client = super::connect(&config).await?;
    let mut failed = Vec::new();
    for group in &args.groups {
        let coordinator = find_coordinator_patiently(&client, group)
            .await
            .with_context(|| format!("cannot find the coordinator of group `{group}`"))?;
        for (name, outcome) in delete_groups(&client, coordinator, std::slice::from_ref(group))
            .await
            .with_context(|| format!("cannot delete group `{group}`"))?
        {
            match outcome {
                None => println!("deleted group {name}"),
                Some((error, hint)) => {
                    println!("group {name} not deleted: {error:?}: {hint}");
                    failed.push(name);
                }
            }
        }
    }
    client.close();
    if !failed.is_empty() {
        bail!(
            "{} of {} groups not deleted: {}",
            failed.len(),
            args.groups.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

async fn delete_group_offsets(args: DeleteOffsetsArgs) -> anyhow::Result<()> {
    let config = args.common.load_config()?;
    let client = super::connect(&config).await?;
    let (topics, only) = parse_topics(&args.topics)?;
    let partitions = partitions_of(&client, &topics, &only).await?;
    let coordinator = find_coordinator_patiently(&client, &args.group)
        .await
        .with_context(|| format!("cannot find the coordinator of group `{}`", args.group))?;
    let (whole, each) = delete_offsets(&client, coordinator, &args.group, &partitions)
        .await
        .with_context(|| format!("cannot delete offsets of group `{}`", args.group))?;
    client.close();
    if let Some((error, hint)) = whole {
        bail!(
            "group {}: offsets not deleted: {error:?}: {hint}",
            args.group
        );
    }
    let mut failed = 0;
    for (tp, outcome) in &each {
        match outcome {
            None => println!(
                "deleted the committed offset of {tp} for group {}",
                args.group
            ),
            Some((error, hint)) => {
                failed += 1;
                println!("{tp}: not deleted: {error:?}: {hint}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} partitions not deleted", each.len());
    }
    Ok(())
}
