//! wasmkafka: a Kafka consumer whose partition assignors and offset-reset policies are
//! sandboxed WebAssembly components.
//!
//! Layers, bottom up (no module imports one above it; ARCHITECTURE.md draws them):
//! - [`net`] (framing, TLS and SASL, connections pooled by purpose), [`cluster`] (the
//!   metadata cache), [`policy`] (reset policies behind one trait), [`histogram`], [`html`]
//!   (escaping, pages and SVG charts for the reports), [`error_chain`] (an error with its causes
//!   in one line);
//! - [`client`]: the two first together (send a request to a broker for a purpose, the one
//!   metadata refresh);
//! - [`fetch`] (the consumer: partitions, fetch plan and loop, resets, the record buffer) and
//!   [`produce`] (a small producer for samples and tests);
//! - [`group`] (consumer-group membership, commits, assignors, group admin);
//! - [`plugin`] (Wasm assignors and reset policies) and [`lab`] (the policy lab's
//!   simulation);
//! - [`config`] and [`metrics`];
//! - `cli`: the `wasmkafka` command line (hidden here: it is the binary's, not an API).
//!
//! # What a library user needs
//! The crate root re-exports it: [`Config`] (TOML or Java property names), [`Client`],
//! [`Consumer`] (assigned partitions) and [`GroupConsumer`] (a consumer group) with their
//! options, [`ConsumerRecord`], and the errors ([`ConsumerError`], [`PartitionError`],
//! [`GroupError`] sorted by who acts on it, [`ClientError`], [`NetError`], [`ConfigError`]).
//! Errors and records are `#[non_exhaustive]`: a new variant or field is not a breaking
//! change, so matches on them keep a wildcard arm. The modules stay public for the binary,
//! the integration tests and the benchmarks, and are documented for contributors; items
//! reached only through them may change between releases.
//!
//! # Example
//!
//! A config as `wasmkafka run` reads it: TOML, or the Java client's property names, which
//! map onto the same keys.
//!
//! ```
//! use wasmkafka::Config;
//!
//! let toml = Config::parse("brokers = [\"kafka-1:9092\"]\n[consumer]\ngroup = \"orders-audit\"")?;
//! let properties = [
//!     ("bootstrap.servers".to_string(), "kafka-1:9092".to_string()),
//!     ("group.id".to_string(), "orders-audit".to_string()),
//! ];
//! let java = Config::parse_with("", &properties)?;
//! assert_eq!(toml.brokers, java.brokers);
//! assert_eq!(toml.consumer.group, java.consumer.group);
//! assert_eq!(java.consumer.group.as_deref(), Some("orders-audit"));
//! # Ok::<(), wasmkafka::ConfigError>(())
//! ```
//!
//! Reading a topic from its start without a group (`wasmkafka run --topic events --from
//! earliest`) as a library:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use wasmkafka::{Client, Consumer, PoolOptions, ResetPolicySpec};
//!
//! # async fn read() -> anyhow::Result<()> {
//! let client = Client::new(vec!["127.0.0.1:9092".into()], PoolOptions::default());
//! let reset = ResetPolicySpec::Earliest.into_policy();
//! let consumer = Consumer::new(client, Default::default(), reset);
//! consumer.assign_topics(&["events".to_string()]).await?;
//! loop {
//!     for record in consumer.poll(500, Duration::from_secs(1)).await? {
//!         let value = record.value.as_deref().unwrap_or_default();
//!         println!("{} {}", record.offset, String::from_utf8_lossy(value));
//!     }
//! }
//! # }
//! ```

#[doc(hidden)]
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod error_chain;
pub mod fetch;
pub mod group;
pub mod histogram;
pub mod html;
pub mod lab;
pub mod metrics;
pub mod net;
pub mod plugin;
pub mod policy;
pub mod produce;

pub use client::{Client, ClientError};
pub use config::{Config, ConfigError};
pub use fetch::{
    Consumer, ConsumerError, ConsumerRecord, FetchOptions, PartitionError, TopicPartition,
};
pub use group::{
    GroupConsumer, GroupError, GroupOptions, GroupProtocol, LoggingListener, RebalanceListener,
};
pub use net::{NetError, PoolOptions};
pub use policy::ResetPolicySpec;
