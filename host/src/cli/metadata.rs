//! `wasmkafka metadata`: brokers, topics and partitions with leaders.

use std::fmt::Write;

use crate::cluster::Metadata;

use super::CommonArgs;

pub async fn metadata(args: CommonArgs) -> anyhow::Result<()> {
    let config = args.load_config()?;
    let client = super::connect(&config).await?;
    print!("{}", render(&client.metadata()));
    client.close();
    Ok(())
}

/// The human-readable listing.
pub fn render(metadata: &Metadata) -> String {
    let mut out = String::new();
    let cluster = metadata.cluster_id.as_deref().unwrap_or("-");
    let _ = writeln!(out, "cluster {cluster} controller {}", metadata.controller);
    let _ = writeln!(out, "brokers:");
    for broker in metadata.brokers.values() {
        let rack = broker
            .rack
            .as_deref()
            .map(|r| format!(" rack {r}"))
            .unwrap_or_default();
        let _ = writeln!(out, "  broker {} at {}{rack}", broker.id, broker.address());
    }
    let _ = writeln!(out, "topics:");
    for topic in metadata.topics.values() {
        let error = topic
            .error
            .map(|e| format!(" error {e:?}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} ({} partitions){error}",
            topic.name,
            topic.partitions.len()
        );
        for p in topic.partitions.values() {
            let error = p.error.map(|e| format!(" error {e:?}")).unwrap_or_default();
            let _ = writeln!(
                out,
                "    partition {} leader {} replicas {:?} isr {:?}{error}",
                p.partition, p.leader, p.replicas, p.isr
            );
        }
    }
    out
}
