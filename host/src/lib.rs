//! wasmkafka: a Kafka consumer whose partition assignors and offset-reset policies are
//! sandboxed WebAssembly components.
//!
//! Layers, bottom up (no module imports one above it; ARCHITECTURE.md draws them):
//! - [`net`] (framing, TLS and SASL, connections pooled by purpose), [`cluster`] (the
//!   metadata cache), [`policy`] (reset policies behind one trait), [`histogram`], [`html`]
//!   (escaping, pages and SVG charts for the reports);
//! - [`client`]: the two first together (send a request to a broker for a purpose, the one
//!   metadata refresh);
//! - [`fetch`] (the consumer: partitions, fetch plan and loop, resets, the record buffer) and
//!   [`produce`] (a small producer for samples and tests);
//! - [`group`] (consumer-group membership, commits, assignors, group admin);
//! - [`plugin`] (Wasm assignors and reset policies) and [`lab`] (the policy lab's
//!   simulation);
//! - [`config`] and [`metrics`];
//! - [`cli`]: the `wasmkafka` command line.
//!
//! # Example
//!
//! A config as `wasmkafka run` reads it: TOML, or the Java client's property names, which
//! map onto the same keys.
//!
//! ```
//! use wasmkafka::config::Config;
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
//! # Ok::<(), wasmkafka::config::ConfigError>(())
//! ```
//!
//! Reading a topic from its start without a group (`wasmkafka run --topic events --from
//! earliest`) as a library:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use wasmkafka::client::Client;
//! use wasmkafka::fetch::Consumer;
//! use wasmkafka::net::PoolOptions;
//! use wasmkafka::policy::ResetPolicySpec;
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

pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
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
