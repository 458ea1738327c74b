//! What TLS and SASL setup share below `security`: a secret that is never printed, and the
//! error a TLS file gives at start-up (the key store reader and the config builder both use
//! them, so they live beneath both).

/// A string that is never printed: `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A TLS setup problem found while reading the files (at start-up).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{what}: {reason}")]
pub struct TlsSetupError {
    pub what: String,
    pub reason: String,
}
