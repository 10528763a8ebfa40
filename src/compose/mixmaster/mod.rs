//! Native Mixmaster type II packets (`mixmaster.md` §1, §2.2, §2.3): the builder a
//! pinger uses instead of delegating to the Mixmaster client, and a decoder that behaves like a
//! Mixmaster 3.0.2d remailer, for the tests and the test remailer double.
//!
//! # Building a ping
//! ```no_run
//! # use fathometer::compose::mixmaster::*;
//! # fn f(key1: PublicKey, key2: PublicKey, today_days: i64) -> Result<(), BuildError> {
//! let chain = [
//!     Hop { key: key1, address: "remailer1@example.org".into() }, // where we mail the packet
//!     Hop { key: key2, address: "remailer2@example.org".into() }, // where remailer1 forwards it
//! ];
//! let payload = Payload {
//!     destinations: vec!["pinger@example.net".into()],
//!     headers: vec!["Subject: ping".into()],
//!     user_data: b"ping body\n".to_vec(),
//! };
//! let packet = build_packet(&chain, &payload, today_days, &mut OsRandom)?;
//! let body = armor(&packet); // the body of the mail "To: remailer1@example.org"
//! # Ok(()) }
//! ```
//!
//! # Public API
//! - [`PublicKey`]: [`PublicKey::from_binary`], [`PublicKey::from_entry`],
//!   [`PublicKey::all_from_text`], [`PublicKey::key_id_hex`], accessors.
//! - [`SecretKey`]: [`SecretKey::parse_secring`], [`SecretKey::from_primes`],
//!   [`SecretKey::public`].
//! - [`Hop`], [`Payload`], [`slots_needed`] (a chain fits if it needs at most [`MAX_SLOTS`]).
//! - [`build_packet`] (timestamp = `today_days` minus a random 0..=3 per hop, like the client)
//!   and [`build_packet_dated`] (every hop dated exactly `timestamp_days`, no fuzz drawn).
//! - [`armor`] / [`dearmor`]: the mail body of spec §1.10.
//! - [`decode_packet`] → [`Decoded`] (with every field of the hop in [`HopFields`]),
//!   [`join_parts`] for type 2 parts.
//! - Randomness: every random value is drawn through [`MixRandom::fill`] with a [`Draw`] naming
//!   its purpose, so a recorded sequence can be replayed. [`OsRandom`] is the production source,
//!   [`RngRandom`] wraps any `rand` generator (seeded tests, benchmarks).
//!
//! Time is always a parameter (`today_days` = days since 1970-01-01 UTC); nothing here reads the
//! clock, the disk or the network.
//!
//! # Random draws, in order
//! [`build_packet`] draws: `body_padding` (10240 − 4 − payload length), `message_id` (16); then
//! for each hop from the final one back to the first: `packet_id` (16), `des_key` (24), and
//! - final hop: `body_iv` (8), `other_random` (19 × 512),
//! - intermediate hop: `ivs` (19 × 8; the 19th is the body IV);
//!
//! then `timestamp_fuzz` (1 byte, low two bits; [`build_packet`] only), `pad_328`,
//! `session_key` (24), `header_iv` (8), for a large key also `hmac_key` (64), `aes_pre_key` (32)
//! and, on the final hop, `fake_next_headers_hmac` (32); then one `rsa_pad_byte` per PKCS#1
//! padding byte (a zero byte is drawn again) and `header_pad`. This is the order of vector v6.
//! [`decode_packet`] draws `next_hop_pad` (512) for the new section 20 of a forwarded packet.

mod armor;
pub mod crypto;
pub mod key;
mod packet;

pub use armor::{REMAILER_TYPE, armor, dearmor};
pub use key::PublicKey;
pub use packet::{Hop, Payload, build_packet, build_packet_dated, slots_needed};

/// Every packet is exactly this long: 20 header sections of 512 bytes and a 10240-byte body.
pub const PACKET_LEN: usize = 20480;
/// Length of the header (20 sections of 512 bytes).
pub const HEADER_LEN: usize = 10240;
/// Length of one header slot.
pub const SECTION_LEN: usize = 512;
/// Length of the body.
pub const BODY_LEN: usize = 10240;
/// Largest payload one packet carries (the body minus its 4-byte length field).
pub const MAX_PAYLOAD: usize = 10236;
/// Header slots available to a chain: a 1024-bit hop takes one, a larger key two.
pub const MAX_SLOTS: usize = 20;

/// The purpose of a random draw. [`Draw::name`] gives the name used in the v6 encoder record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Draw {
    /// Random padding of the body after the payload.
    BodyPadding,
    /// Message ID of the final hop (shared by all parts of one message).
    MessageId,
    /// Packet ID of a hop (replay detection).
    PacketId,
    /// 3DES body key of a hop.
    DesKey,
    /// Body IV of the final hop.
    BodyIv,
    /// The 19 IVs of an intermediate hop.
    Ivs,
    /// The 19 random sections following the final hop's section.
    OtherRandom,
    /// Random day offset (0..=3) subtracted from the timestamp.
    TimestampFuzz,
    /// Random tail of the 328-byte block.
    Pad328,
    /// 3DES key of the 328-byte block (RSA-encrypted).
    SessionKey,
    /// IV of the 328-byte block.
    HeaderIv,
    /// Large keys: HMAC key.
    HmacKey,
    /// Large keys: AES pre-key.
    AesPreKey,
    /// Large keys, final hop: the random stand-in for the next-headers HMAC.
    FakeNextHeadersHmac,
    /// One nonzero byte of PKCS#1 v1.5 padding.
    RsaPadByte,
    /// Random tail of a header section after the encrypted block.
    HeaderPad,
    /// Decoder: the random section 20 appended to a forwarded packet.
    NextHopPad,
}

impl Draw {
    /// The snake_case name of the draw (`"body_padding"`, `"rsa_pad_byte"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Draw::BodyPadding => "body_padding",
            Draw::MessageId => "message_id",
            Draw::PacketId => "packet_id",
            Draw::DesKey => "des_key",
            Draw::BodyIv => "body_iv",
            Draw::Ivs => "ivs",
            Draw::OtherRandom => "other_random",
            Draw::TimestampFuzz => "timestamp_fuzz",
            Draw::Pad328 => "pad_328",
            Draw::SessionKey => "session_key",
            Draw::HeaderIv => "header_iv",
            Draw::HmacKey => "hmac_key",
            Draw::AesPreKey => "aes_pre_key",
            Draw::FakeNextHeadersHmac => "fake_next_headers_hmac",
            Draw::RsaPadByte => "rsa_pad_byte",
            Draw::HeaderPad => "header_pad",
            Draw::NextHopPad => "next_hop_pad",
        }
    }
}

/// A source of random bytes whose every draw is named, so that a recorded sequence can be
/// replayed (the v6 vector) and tests can be deterministic.
pub trait MixRandom {
    /// Fills `buf` with random bytes for the purpose `draw`.
    fn fill(&mut self, draw: Draw, buf: &mut [u8]);
}

/// The operating system's random source (`rand::rngs::OsRng`), for real pings.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl MixRandom for OsRandom {
    fn fill(&mut self, _draw: Draw, buf: &mut [u8]) {
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, buf);
    }
}

/// Any `rand` generator as a [`MixRandom`] (e.g. a seeded `StdRng` in tests and benchmarks).
#[derive(Debug, Clone)]
pub struct RngRandom<R>(pub R);

impl<R: rand::RngCore> MixRandom for RngRandom<R> {
    fn fill(&mut self, _draw: Draw, buf: &mut [u8]) {
        self.0.fill_bytes(buf);
    }
}

/// Errors reading keys.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("no -----Begin Mix Key----- block")]
    NoKeyBlock,
    #[error("key block ends early")]
    Truncated,
    #[error("bad key ID line {0:?}")]
    BadKeyId(String),
    #[error("bad base64 in key block")]
    BadBase64,
    #[error("binary key is {found} bytes, expected {expected}")]
    BadLength { expected: usize, found: usize },
    #[error("unsupported RSA key size {0} (1024, 2048, 3072 or 4096)")]
    UnsupportedSize(usize),
    #[error("bad RSA modulus")]
    BadModulus,
    #[error("bad RSA public exponent")]
    BadExponent,
    #[error("key ID mismatch: block says {stated}, MD5(n||e) is {computed}")]
    KeyIdMismatch { stated: String, computed: String },
    #[error("unsupported secring.mix block (line {0:?} where 0 was expected)")]
    UnsupportedSecring(String),
    #[error("secret key does not decrypt to a valid key (wrong passphrase?)")]
    BadSecretKey,
}

/// Errors building a packet.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("empty chain")]
    EmptyChain,
    #[error("chain too long: {slots} header slots, at most 20")]
    ChainTooLong { slots: usize },
    #[error("bad address for hop {hop}: {reason}")]
    BadAddress { hop: usize, reason: &'static str },
    #[error("bad payload field {field:?}: {reason}")]
    BadField { field: String, reason: &'static str },
    #[error("too many {0} fields (at most 255)")]
    TooManyFields(&'static str),
    #[error("payload is {0} bytes, at most 10236 fit in one packet")]
    PayloadTooLarge(usize),
    #[error("timestamp {0} is outside 0..=65535 days")]
    BadTimestamp(i64),
    #[error("RSA encryption failed for key {0}")]
    Rsa(String),
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// Errors reading the mail wrapper.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArmorError {
    #[error("no Remailer-Type: Mixmaster header")]
    NotMixmaster,
    #[error("no -----BEGIN REMAILER MESSAGE----- line")]
    NoBeginMarker,
    #[error("no 24-character MD5 line")]
    NoChecksum,
    #[error("the base64 is not followed by -----END REMAILER MESSAGE-----")]
    NoEndMarker,
    #[error("bad base64")]
    BadBase64,
    #[error("packet is {0} bytes, expected 20480")]
    BadLength(usize),
    #[error("MD5 checksum mismatch")]
    ChecksumMismatch,
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
