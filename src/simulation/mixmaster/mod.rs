//! A Mixmaster 3.0.2d remailer's side of a type II packet (`mixmaster.md` §1.6, §1.9, §2.3):
//! its secret keys (`secring.mix`, or generated), and the decoder that reads a packet with
//! them. The pinger never decodes; the simulated remailers and the tests' remailer doubles do
//! (no real remailer runs where they run), and the v1-v6 vectors check it against the real
//! remailers' output.

mod crypto;
mod decode;
pub mod keygen;
mod secret;

pub use crypto::pkcs1_v15_unpad;
pub use decode::{
    Decoded, DecodedPayload, HopFields, LargeKeyFields, MAX_INFLATED, decode_packet, join_parts,
    parse_payload,
};
pub use secret::SecretKey;

/// Why a packet was rejected (spec §1.6), or a type 2 set could not be joined.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("packet is {0} bytes, expected 20480")]
    BadLength(usize),
    #[error("no secret key with ID {0}")]
    UnknownKey(String),
    #[error("RSA length byte {byte} does not fit the {bits}-bit key")]
    BadRsaLengthByte { byte: u8, bits: usize },
    #[error("RSA decryption failed")]
    BadRsa,
    #[error("RSA plaintext is {found} bytes, expected {expected}")]
    BadSessionKeyLength { expected: usize, found: usize },
    #[error("antitagging test failed: {0} HMAC mismatch")]
    Antitagging(&'static str),
    #[error("unknown packet type {0}")]
    UnknownPacketType(u8),
    #[error("ignoring message without timestamp")]
    MissingTimestamp,
    #[error("future timestamp: day {days}, today is {today}")]
    FutureTimestamp { days: u16, today: i64 },
    #[error("message digest does not match")]
    DigestMismatch,
    #[error("bad next-hop address")]
    BadAddress,
    #[error("bad body length field {0}")]
    BadBodyLength(u32),
    #[error("bad payload: {0}")]
    BadPayload(&'static str),
    #[error("bad compressed user data: {0}")]
    Inflate(String),
    #[error("bad chunk {chunk} of {nchunks}")]
    BadChunk { chunk: u8, nchunks: u8 },
    #[error("cannot join parts: {0}")]
    Join(&'static str),
}
