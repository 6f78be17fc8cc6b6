//! [`Codec`]: how keys and values cross the wire.

use std::fmt;

/// Turns a key or value into bytes for Redis and back.
///
/// Every process of a fleet must use the same encoding for a namespace: it
/// is the wire format of the shared tier. Implemented for [`String`] (UTF-8),
/// [`Vec<u8>`] (as is), [`bool`] and the integer types (decimal ASCII, so
/// `redis-cli` shows them as numbers and other languages can read them).
///
/// larder has no serde feature: which serde format to use (JSON, bincode,
/// MessagePack, ...) is a wire-format decision the fleet has to own, and it
/// keeps this crate's dependency list to the `redis` crate. A serde type
/// needs a few lines, as below.
///
/// # Examples
///
/// ```
/// use larder::redis::{Codec, DecodeError};
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct User { id: u64, name: String }
///
/// // With serde it would be `serde_json::to_writer(out, self)` and
/// // `serde_json::from_slice(bytes).map_err(|e| DecodeError::new(e.to_string()))`.
/// impl Codec for User {
///     fn encode(&self, out: &mut Vec<u8>) {
///         self.id.encode(out);
///         out.push(b':');
///         self.name.encode(out);
///     }
///     fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
///         let colon = bytes.iter().position(|&b| b == b':').ok_or_else(|| DecodeError::new("no ':'"))?;
///         Ok(User { id: u64::decode(&bytes[..colon])?, name: String::decode(&bytes[colon + 1..])? })
///     }
/// }
///
/// let ada = User { id: 7, name: "Ada".into() };
/// let mut buf = Vec::new();
/// ada.encode(&mut buf);
/// assert_eq!(buf, b"7:Ada");
/// assert_eq!(User::decode(&buf).unwrap(), ada);
/// ```
pub trait Codec: Sized {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Reads a value back from its encoding.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] if `bytes` is not a valid encoding (a value written
    /// by another version of the program, say). The tier then treats the
    /// entry as missing, counts an error and loads the value again.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError>;
}

/// Bytes that a [`Codec`] could not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    message: String,
}

impl DecodeError {
    /// An error with this description.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot decode: {}", self.message)
    }
}

impl std::error::Error for DecodeError {}

impl Codec for String {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::new("not UTF-8"))
    }
}

impl Codec for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(bytes.to_vec())
    }
}

impl Codec for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(if *self { b'1' } else { b'0' });
    }
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        match bytes {
            b"1" => Ok(true),
            b"0" => Ok(false),
            _ => Err(DecodeError::new("not 0 or 1")),
        }
    }
}

macro_rules! decimal_codec {
    ($($t:ty),*) => {$(
        impl Codec for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                use std::io::Write;
                // Writing to a Vec cannot fail.
                let _ = write!(out, "{self}");
            }
            fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
                std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| DecodeError::new(concat!("not a ", stringify!($t))))
            }
        }
    )*};
}

decimal_codec!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Codec + PartialEq + fmt::Debug>(v: T) {
        let mut buf = Vec::new();
        v.encode(&mut buf);
        assert_eq!(T::decode(&buf).unwrap(), v);
    }

    #[test]
    fn round_trips() {
        round_trip(String::new());
        round_trip("héllo {world}".to_string());
        round_trip(vec![0u8, 255, b'{', b'}']);
        round_trip(Vec::<u8>::new());
        round_trip(true);
        round_trip(false);
        round_trip(u64::MAX);
        round_trip(i64::MIN);
        round_trip(u128::MAX);
        round_trip(0u8);
        round_trip(-1isize);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(String::decode(&[0xff, 0xfe]).is_err());
        assert!(u8::decode(b"256").is_err());
        assert!(u64::decode(b"").is_err());
        assert!(u64::decode(b"-1").is_err());
        assert!(u64::decode(b" 1").is_err());
        assert!(i32::decode(b"1.5").is_err());
        assert!(bool::decode(b"true").is_err());
        assert!(DecodeError::new("x").to_string().contains('x'));
    }
}
