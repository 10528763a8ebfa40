//! OpenPGP for the type I ("cypherpunk") side of the pinger.
//!
//! Three jobs:
//!
//! * read remailer public keys out of keyrings and mail bodies ([`parse_certs`]);
//! * encrypt a ping to a remailer key the way 1990s-era remailer software can read it
//!   ([`encrypt_to_cert`]): v3 PKESK + SEIPDv1 with MDC, an old cipher from the key's own
//!   preferences, and ElGamal session-key encryption done here because sequoia's nettle backend
//!   has no ElGamal;
//! * seal the payload that comes back to us under a password and open it again
//!   ([`encrypt_symmetric`], [`decrypt_symmetric`]), telling forged returns (made without our
//!   secret) apart from returns damaged in transit.
//!
//! Remailer keys are typically DSA-1024 + ElGamal-1024 with SHA-1 self-signatures and no Key
//! Flags subpacket (Mixmaster 3's built-in OpenPGP), or RSA-1024. Sequoia's standard policy
//! rejects all of that, so key handling runs under `relaxed_policy`, which is scoped to this
//! module and never used for anything we decrypt.

use std::cell::Cell;
use std::io::{Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use num_bigint::BigUint;
use rand::RngCore;
use rand::rngs::OsRng;
use sequoia_openpgp as sq;
use sq::armor;
use sq::cert::prelude::*;
use sq::cert::{CertParser, Preferences};
use sq::crypto::mpi::{self, MPI};
use sq::crypto::{Password, S2K, SessionKey};
use sq::packet::key::{PublicParts, UnspecifiedRole};
use sq::packet::pkesk::PKESK3;
use sq::packet::skesk::SKESK4;
use sq::packet::{Key, PKESK, Packet, SKESK};
use sq::parse::Parse;
use sq::parse::stream::{DecryptionHelper, DecryptorBuilder, MessageStructure, VerificationHelper};
use sq::policy::{AsymmetricAlgorithm, StandardPolicy};
use sq::serialize::Serialize;
use sq::serialize::stream::{Compressor, Encryptor, LiteralWriter, Message, Recipient};
use sq::types::{
    CompressionAlgorithm, DataFormat, Features, HashAlgorithm, PublicKeyAlgorithm,
    RevocationStatus, SymmetricAlgorithm,
};
use sq::{Cert, KeyHandle};

mod armour;
mod certs;
mod encrypt;
mod sealed;
#[cfg(test)]
mod tests;
mod verify;

use armour::*;
use certs::*;
pub use certs::{keyring, parse_certs};
pub use encrypt::encrypt_to_cert;
pub use sealed::{
    decrypt_symmetric, decrypt_symmetric_salted, encrypt_symmetric, encrypt_symmetric_salted,
};
pub use verify::{VerifiedText, VerifyError, signed_block, verify_clearsigned};

/// Largest plaintext [`decrypt_symmetric`] hands back. Our payloads are at most about 9 KiB
/// (4 KiB of padding, hex-encoded); the cap keeps a hostile (e.g. compression-bomb) message
/// from costing more memory or time than one of ours.
pub const MAX_PLAINTEXT: usize = 64 * 1024;

/// Largest armoured message [`decrypt_symmetric_salted`] opens, counted in base64 characters.
/// Ours are at most about 7 KiB of base64 (a chain payload with the most padding: measured
/// 7,044 characters over 3,000 seeds); anything larger was not made by this pinger.
const MAX_SEALED_BASE64: usize = 12 * 1024;

/// S2K work for [`encrypt_symmetric`]: bytes hashed (a valid OpenPGP iteration count). The
/// password is 256 bits of entropy, so key stretching buys nothing, while ingesting hundreds of
/// returns must stay fast.
const S2K_HASH_BYTES: u32 = 65536;

/// The most S2K work [`decrypt_symmetric`] spends on one SKESK. Ours uses `S2K_HASH_BYTES`; a
/// forged message naming the maximum count (~65 MB of hashing) per SKESK, or Argon2 with a huge
/// memory parameter, must not turn mail ingestion into a denial of service.
const MAX_S2K_HASH_BYTES: u32 = 1 << 20;

/// How many SKESKs of one message we try; ours has exactly one.
const MAX_SKESKS: usize = 4;

/// How many certs we read from one key block; real keyrings hold a few hundred at most.
const MAX_CERTS_PER_BLOCK: usize = 10_000;

/// OpenPGP public-key algorithm 16 (sequoia marks it deprecated; remailers still use it).
#[allow(deprecated)]
const ELGAMAL_ENCRYPT: PublicKeyAlgorithm = PublicKeyAlgorithm::ElGamalEncrypt;

const PUBLIC_KEY_BLOCK: &str = "PGP PUBLIC KEY BLOCK";
const MESSAGE_BLOCK: &str = "PGP MESSAGE";

/// Which type I ping a remailer key supports; follows the primary key's algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// RSA primary key: ping type "cpunk-rsa".
    Rsa,
    /// DSA primary key (with an ElGamal encryption subkey): ping type "cpunk-dsa".
    DsaElGamal,
}

impl KeyKind {
    /// The ping type name used in stats output ("cpunk-rsa" / "cpunk-dsa").
    pub fn ping_type(self) -> &'static str {
        match self {
            KeyKind::Rsa => "cpunk-rsa",
            KeyKind::DsaElGamal => "cpunk-dsa",
        }
    }
}

/// What the pinger keeps about one remailer OpenPGP key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemailerCert {
    /// Primary key id, 16 upper-case hex digits.
    pub key_id: String,
    pub kind: KeyKind,
    /// Lower-cased addr-spec of every (validly self-signed) user id that has one.
    pub emails: Vec<String>,
    /// Every validly self-signed user id, lossily decoded as UTF-8.
    pub user_ids: Vec<String>,
    /// Unix seconds of the primary key's creation.
    pub created: i64,
    /// Unix seconds at which the primary key expires, under the relaxed policy.
    pub expires: Option<i64>,
    /// Primary key size in bits.
    pub bits: Option<usize>,
    /// The public cert only (secret key material is stripped), ASCII armoured, no headers.
    pub armored: String,
}

#[derive(thiserror::Error, Debug)]
pub enum PgpError {
    #[error("no OpenPGP public key block found")]
    NoKey,
    #[error("malformed OpenPGP data: {0}")]
    Malformed(String),
    #[error("invalid certificate: {0}")]
    InvalidCert(String),
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("no encryption-capable key")]
    NoEncryptionKey,
    #[error("key expired: {0}")]
    Expired(String),
    #[error("key revoked: {0}")]
    Revoked(String),
    #[error("encryption failed: {0}")]
    Encrypt(String),
}

/// Result of [`encrypt_to_cert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encrypted {
    /// ASCII-armoured PGP MESSAGE without Version/Comment headers.
    pub armored: String,
    /// Symmetric cipher used: "3DES", "CAST5", "AES128", "AES256", ...
    pub cipher: String,
    /// 16 upper-case hex digits of the (sub)key the session key was encrypted to.
    pub recipient_key_id: String,
}

#[derive(thiserror::Error, Debug)]
pub enum DecryptError {
    /// No "-----BEGIN PGP MESSAGE-----" armour in the text.
    #[error("no armoured PGP message found")]
    NoMessage,
    /// An OpenPGP message that our password does not open: made without our secret.
    #[error("message not encrypted with our password")]
    WrongKey,
    /// Damaged in transit: bad or truncated armour, or our password opened the session key but
    /// the data after it is broken (MDC mismatch, truncation, parse error, oversize).
    #[error("damaged message: {0}")]
    Damaged(String),
    /// Refused unopened: its shape is not one this pinger ever produces (another S2K, more
    /// than one key packet, too large). Checked before any expensive step.
    #[error("not a message of this pinger: {0}")]
    NotOurs(String),
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

fn enc_err(e: impl std::fmt::Display) -> PgpError {
    PgpError::Encrypt(format!("{e:#}"))
}
