//! wasmkafka: a Kafka consumer whose partition assignors and offset-reset policies are
//! sandboxed WebAssembly components.
//!
//! Layers, bottom up (no module imports one above it; ARCHITECTURE.md draws them):
//! - [`net`] (framing, TLS and SASL, connections pooled by purpose), [`cluster`] (the
//!   metadata cache), [`policy`] (reset policies behind one trait), [`histogram`];
//! - [`client`]: the two first together (send a request to a broker for a purpose, the one
//!   metadata refresh);
//! - [`fetch`] (the consumer: partitions, fetch plan and loop, resets, the record buffer) and
//!   [`produce`] (a small producer for samples and tests);
//! - [`group`] (consumer-group membership, commits, assignors, group admin);
//! - [`plugin`] (Wasm assignors and reset policies) and [`lab`] (the policy lab's
//!   simulation);
//! - [`config`] and [`metrics`];
//! - [`cli`]: the `wasmkafka` command line.

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
