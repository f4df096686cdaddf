//! How entries, votes and log ids are stored: postcard, one applog record per entry.
//!
//! postcard is compact (varints, no field names), has a documented, stable wire format, and
//! needs nothing but serde: a Raft entry of a small command costs a few dozen bytes. It is not
//! self-describing, so the type of what is stored must stay what it was written with (as with
//! any binary serde format); change a command type the way you would change a protocol.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A value that could not be encoded or decoded, with what it was.
#[derive(Debug)]
pub(crate) struct CodecError {
    what: String,
    source: postcard::Error,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Encodes `value` (`what` says what it is, for the error).
pub(crate) fn encode<T: Serialize>(
    value: &T,
    what: impl FnOnce() -> String,
) -> Result<Vec<u8>, CodecError> {
    postcard::to_stdvec(value).map_err(|source| CodecError {
        what: format!("could not encode {}", what()),
        source,
    })
}

/// Decodes a value that [`encode`] wrote (`what` says where it was read from, for the error).
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: impl FnOnce() -> String,
) -> Result<T, CodecError> {
    postcard::from_bytes(bytes).map_err(|source| CodecError {
        what: format!("could not decode {}", what()),
        source,
    })
}
