//! SHA-256 digests of plugin files: what a config pins a plugin to (`sha256 = "..."`), what
//! `wasmkafka plugin check` prints, and what names compile-cache entries.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A SHA-256 digest, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    pub fn of(bytes: &[u8]) -> Sha256Digest {
        Sha256Digest(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{self}")
    }
}

impl FromStr for Sha256Digest {
    type Err = String;

    /// 64 hex digits (either case), as `sha256sum` prints them.
    fn from_str(text: &str) -> Result<Sha256Digest, String> {
        let text = text.trim();
        let invalid = || {
            format!(
                "`{text}` is not a SHA-256 digest: 64 hex digits, as `sha256sum FILE` or \
                 `wasmkafka plugin check FILE` print them"
            )
        };
        if text.len() != 64 || !text.is_ascii() {
            return Err(invalid());
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(text.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Ok(Sha256Digest(digest))
    }
}

impl<'de> serde::Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_print_and_parse_as_sha256sum_does() {
        // `printf abc | sha256sum`
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(Sha256Digest::of(b"abc").to_string(), abc);
        assert_eq!(abc.parse::<Sha256Digest>(), Ok(Sha256Digest::of(b"abc")));
        assert_eq!(
            abc.to_uppercase().parse::<Sha256Digest>(),
            Ok(Sha256Digest::of(b"abc"))
        );
        for bad in [
            "",
            "abc",
            &abc[1..],
            &format!("{}g", &abc[1..]),
            "é".repeat(32).as_str(),
        ] {
            let error = bad.parse::<Sha256Digest>().unwrap_err();
            assert!(error.contains("64 hex digits"), "{error}");
        }
    }
}
