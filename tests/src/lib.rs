//! Test support for wasmkafka: the Apache Kafka harness ([`kafka`], the broker of record), the
//! optional Tansu fixture ([`tansu`], a compatibility target) and the scripted fault broker
//! ([`fault_broker`]). Integration tests live in `tests/tests/`.

pub mod bounded;
pub mod browser;
pub mod cache;
pub mod cli_commands;
pub mod cli_member;
pub mod delay;
pub mod fault_broker;
pub mod fault_consumer_group;
pub mod fault_coordinator;
pub mod fault_group;
pub mod fault_log;
pub mod group;
pub mod java;
pub mod kafka;
pub mod librdkafka;
pub mod metrics;
pub mod oidc;
pub mod plugins;
pub mod python;
pub mod readme;
pub mod records;
pub mod tansu;

/// Logs to the test output when `WASMKAFKA_LOG` is set (e.g. `WASMKAFKA_LOG=debug`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WASMKAFKA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .try_init();
}
