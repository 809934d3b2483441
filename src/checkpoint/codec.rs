//! How sluice encodes its own records in checkpoint files: state parts, batch plans, the
//! receiver's write-ahead log and the completed-batch marker.
//!
//! The encoding is [postcard] (compact, `serde`-based, maintained), wrapped here so that every
//! file of a checkpoint uses one format; changing it bumps [`file::VERSION`](super::file::VERSION).
//!
//! [postcard]: https://docs.rs/postcard

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::error::CodecError;

/// Encodes `value`.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(postcard::to_stdvec(value)?)
}

/// Encodes `value` at the end of `bytes` (several values so appended are their encodings one
/// after the other: a list's items, say).
pub fn encode_onto<T: Serialize + ?Sized>(
    value: &T,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, CodecError> {
    Ok(postcard::to_extend(value, bytes)?)
}

/// Decodes what [`encode`] wrote; an error if `bytes` is not a whole `T`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    Ok(postcard::from_bytes(bytes)?)
}

#[cfg(test)]
mod examples {
    //! What the items' examples showed before they became crate-private, kept as tests.

    #[test]
    fn encode_example() -> Result<(), Box<dyn std::error::Error>> {
        use crate::checkpoint::codec::{decode, encode};
        let bytes = encode(&(7u64, "seven".to_owned()))?;
        assert_eq!(decode::<(u64, String)>(&bytes)?, (7, "seven".to_owned()));
        Ok(())
    }

    #[test]
    fn encode_onto_example() -> Result<(), Box<dyn std::error::Error>> {
        use crate::checkpoint::codec::{encode, encode_onto};
        let bytes = encode_onto(&7u64, encode(&2u8)?)?;
        assert_eq!(bytes, [encode(&2u8)?, encode(&7u64)?].concat());
        Ok(())
    }
}
