//! An error with its causes in one line, `outer: cause: root cause`, as `anyhow` prints
//! `{:#}`. Errors keep their causes as typed sources (`#[source]`) instead of text; log lines
//! and messages that gather several errors print them through [`Chain`] so no cause is lost.
//! An I/O cause that must be cloned or compared is an [`IoFailure`].

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// Displays an error followed by each of its sources, separated by `": "`.
pub struct Chain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// An I/O error that can be shared (one connection failure reaches every request that was in
/// flight; a plugin failure is counted and kept) and compared by kind and text.
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct IoFailure(Arc<std::io::Error>);

impl From<std::io::Error> for IoFailure {
    fn from(error: std::io::Error) -> Self {
        IoFailure(Arc::new(error))
    }
}

impl IoFailure {
    pub fn kind(&self) -> std::io::ErrorKind {
        self.0.kind()
    }
}

impl PartialEq for IoFailure {
    fn eq(&self, other: &Self) -> bool {
        self.0.kind() == other.0.kind() && self.0.to_string() == other.0.to_string()
    }
}

impl Eq for IoFailure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_follows_the_error() {
        let error = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert_eq!(
            Chain(&error).to_string(),
            "cannot connect: connection refused"
        );
    }
}
