//! wasmkafka: a Kafka consumer whose partition assignors and offset-reset policies are
//! sandboxed WebAssembly components.
//!
//! Layers, bottom up: [`net`] (framing, connections pooled by purpose), [`cluster`] (metadata
//! cache), [`client`] (the two together: send a request to a broker for a purpose), and the
//! command-line front end in [`cli`].

pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod fetch;
pub mod group;
pub mod histogram;
pub mod lab;
pub mod metrics;
pub mod net;
pub mod plugin;
pub mod policy;
pub mod produce;
