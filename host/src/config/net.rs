//! `[net]`: connection timeouts, frame limits, reconnect backoff and metadata ages.

use serde::Deserialize;

use crate::cluster::MetadataOptions;
use crate::net::BrokerCompat;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetConfig {
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub max_frame_bytes: usize,
    pub reconnect_backoff_ms: u64,
    pub reconnect_backoff_max_ms: u64,
    pub broker_compat: BrokerCompat,
    pub metadata_min_age_ms: u64,
    pub metadata_max_age_ms: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            idle_timeout_ms: 540_000,
            max_frame_bytes: 100 * 1024 * 1024,
            reconnect_backoff_ms: 50,
            reconnect_backoff_max_ms: 1_000,
            broker_compat: BrokerCompat::Kafka,
            metadata_min_age_ms: MetadataOptions::default().min_age.as_millis() as u64,
            metadata_max_age_ms: MetadataOptions::default().max_age.as_millis() as u64,
        }
    }
}
