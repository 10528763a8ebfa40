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

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// Every OpenPGP public key block found anywhere in `text` (a keyring file, or a mail body with
/// prose around "-----BEGIN PGP PUBLIC KEY BLOCK-----" blocks; a block may hold several certs).
/// One entry per cert; a broken cert gives an `Err` entry and does not stop the rest. Text with
/// no armour at all is tried as a binary keyring if it starts like an OpenPGP packet. Never
/// panics on hostile input.
///
/// Certs are validated under the relaxed policy at the current time (or, for keys whose
/// self-signatures are slightly in our future because of clock skew, at their newest
/// self-signature), and only validly self-signed user ids are reported, so that a user id
/// appended by a third party cannot claim a remailer address.
pub fn parse_certs(text: &[u8]) -> Vec<Result<RemailerCert, PgpError>> {
    // As in decrypt_symmetric: a parser panic on hostile input becomes an error entry.
    std::panic::catch_unwind(|| parse_certs_unguarded(text)).unwrap_or_else(|_| {
        vec![Err(PgpError::Malformed("the OpenPGP parser failed on this input".into()))]
    })
}

fn parse_certs_unguarded(text: &[u8]) -> Vec<Result<RemailerCert, PgpError>> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut found = false;
    while let Some(block) = next_armor_block(text, PUBLIC_KEY_BLOCK, pos) {
        found = true;
        pos = block.next;
        match block.data {
            Ok(binary) => parse_binary_certs(&binary, &mut out),
            Err(e) => out.push(Err(PgpError::Malformed(e))),
        }
    }
    if !found && looks_like_binary_openpgp(text) {
        parse_binary_certs(text, &mut out);
    }
    out
}

/// One armoured keyring holding every cert of `armored_certs` (each as stored: an armoured
/// public key block), in order. The certs are copied as they are, packet for packet; a block
/// that does not decode is an error, never silently left out or replaced.
pub fn keyring<'a>(armored_certs: impl IntoIterator<Item = &'a str>) -> Result<String, PgpError> {
    let mut binary = Vec::new();
    for armored in armored_certs {
        let block = next_armor_block(armored.as_bytes(), PUBLIC_KEY_BLOCK, 0)
            .ok_or_else(|| PgpError::Malformed("no public key block".into()))?;
        binary.extend(block.data.map_err(PgpError::Malformed)?);
    }
    let mut sink = armor::Writer::new(Vec::new(), armor::Kind::PublicKey)
        .map_err(|e| PgpError::Malformed(e.to_string()))?;
    sink.write_all(&binary).map_err(|e| PgpError::Malformed(e.to_string()))?;
    let armored = sink.finalize().map_err(|e| PgpError::Malformed(e.to_string()))?;
    String::from_utf8(armored).map_err(|e| PgpError::Malformed(e.to_string()))
}

/// Encrypts `plaintext` (a literal data packet in text mode, as `gpg --textmode` makes it) to
/// the cert's encryption key so that real remailers can read it:
///
/// * relaxed policy evaluated at `now` (old key sizes, SHA-1 self-signatures, old ciphers);
/// * encryption key: a valid, live, unrevoked (sub)key flagged for transport or storage
///   encryption, or, if a key has no Key Flags subpacket at all (Mixmaster, pre-2000 keys), any
///   key whose algorithm can encrypt; subkeys are preferred, then the newest;
/// * cipher: the first entry of the cert's preferred-symmetric list that we can do (IDEA is
///   skipped: nettle lacks it), else 3DES, which every OpenPGP implementation must support;
/// * v3 PKESK + SEIPDv1 with MDC (never SEIPDv2/AEAD), armoured without headers;
/// * RSA through sequoia, ElGamal through `elgamal_pkesk`.
pub fn encrypt_to_cert(
    armored_cert: &str,
    plaintext: &[u8],
    now: SystemTime,
) -> Result<Encrypted, PgpError> {
    let cert = read_one_cert(armored_cert.as_bytes())?;
    let policy = relaxed_policy(now);
    let vc = cert.with_policy(&policy, now).map_err(|e| PgpError::InvalidCert(format!("{e:#}")))?;
    if let RevocationStatus::Revoked(_) = vc.revocation_status() {
        return Err(PgpError::Revoked(format!("certificate {}", cert.keyid().to_hex())));
    }
    if let Err(e) = vc.alive() {
        return Err(PgpError::Expired(format!("certificate {}: {e}", cert.keyid().to_hex())));
    }

    let key = choose_encryption_key(&vc)?;
    let cipher = choose_cipher(vc.preferred_symmetric_algorithms());
    let recipient_key_id = key.keyid().to_hex();

    let mut sink = armor::Writer::new(Vec::new(), armor::Kind::Message).map_err(enc_err)?;
    {
        let message = Message::new(&mut sink);
        let message = if key.pk_algo() == ELGAMAL_ENCRYPT {
            let session_key =
                SessionKey::new(cipher.key_size().map_err(enc_err)?).map_err(enc_err)?;
            let pkesk = elgamal_pkesk(key, cipher, &session_key)?;
            let mut message = message;
            Packet::from(PKESK::from(pkesk)).serialize(&mut message).map_err(enc_err)?;
            Encryptor::with_session_key(message, cipher, session_key).map_err(enc_err)?
        } else {
            // Features without SEIPDv2 force a v3 PKESK and SEIPDv1+MDC, which is what GnuPG
            // 1.4/2.2 and Mixmaster read; the key id (not fingerprint) goes into the PKESK.
            let recipient =
                Recipient::new(Features::empty().set_seipdv1(), KeyHandle::from(key.keyid()), key);
            Encryptor::for_recipients(message, [recipient])
        };
        let message = message.symmetric_algo(cipher).build().map_err(enc_err)?;
        let mut literal = LiteralWriter::new(message)
            .format(DataFormat::from(b't'))
            .date(now)
            .map_err(enc_err)?
            .build()
            .map_err(enc_err)?;
        literal.write_all(&canonical_text(plaintext)).map_err(enc_err)?;
        literal.finalize().map_err(enc_err)?;
    }
    let armored = sink.finalize().map_err(enc_err)?;
    let armored = String::from_utf8(armored).map_err(enc_err)?;
    Ok(Encrypted { armored, cipher: cipher_name(cipher), recipient_key_id })
}

/// Encrypts a ping payload under `password`, shaped like `gpg --symmetric --armor` output: one
/// SKESK4 whose S2K-derived key is the session key itself (no encrypted session key, as gpg
/// does), Iterated+Salted S2K with SHA-256 and a random salt, AES-256, SEIPDv1 with MDC, a ZIP
/// compressed literal packet, armour without headers.
///
/// The S2K count is deliberately small (`S2K_HASH_BYTES`): the password carries 256 bits of
/// entropy, so stretching it adds no security, and [`decrypt_symmetric`] must stay cheap.
pub fn encrypt_symmetric(password: &[u8], plaintext: &[u8]) -> Result<String, PgpError> {
    let mut salt = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
    encrypt_symmetric_salted(password, salt, plaintext)
}

/// [`encrypt_symmetric`] with a chosen S2K salt. The pinger derives the salt from its secret
/// and the ping's tag, so [`decrypt_symmetric_salted`] can tell its own (possibly damaged)
/// messages from ones made without the secret: the salt travels in clear, looks random to
/// everyone else, and cannot be produced for a tag without the secret.
pub fn encrypt_symmetric_salted(
    password: &[u8],
    salt: [u8; 8],
    plaintext: &[u8],
) -> Result<String, PgpError> {
    let algo = SymmetricAlgorithm::AES256;
    let hash_bytes = S2K::new_iterated(HashAlgorithm::SHA256, S2K_HASH_BYTES)
        .ok()
        .and_then(|s| match s {
            S2K::Iterated { hash_bytes, .. } => Some(hash_bytes),
            _ => None,
        })
        .unwrap_or(S2K_HASH_BYTES);
    let s2k = S2K::Iterated { hash: HashAlgorithm::SHA256, salt, hash_bytes };
    let password = Password::from(password);
    let session_key =
        s2k.derive_key(&password, algo.key_size().map_err(enc_err)?).map_err(enc_err)?;
    let skesk = SKESK4::new(algo, s2k, None).map_err(enc_err)?;

    let mut sink = armor::Writer::new(Vec::new(), armor::Kind::Message).map_err(enc_err)?;
    {
        let mut message = Message::new(&mut sink);
        Packet::from(skesk).serialize(&mut message).map_err(enc_err)?;
        let message = Encryptor::with_session_key(message, algo, session_key)
            .map_err(enc_err)?
            .symmetric_algo(algo)
            .build()
            .map_err(enc_err)?;
        let message =
            Compressor::new(message).algo(CompressionAlgorithm::Zip).build().map_err(enc_err)?;
        let mut literal = LiteralWriter::new(message)
            .date(SystemTime::now())
            .map_err(enc_err)?
            .build()
            .map_err(enc_err)?;
        literal.write_all(plaintext).map_err(enc_err)?;
        literal.finalize().map_err(enc_err)?;
    }
    let armored = sink.finalize().map_err(enc_err)?;
    String::from_utf8(armored).map_err(enc_err)
}

/// Finds the first armoured PGP MESSAGE in `text` (a mail body, maybe with text around it and
/// CRLF line ends) and decrypts it with `password`.
///
/// Classification, which the caller turns into FORGED vs CORRUPTED:
/// * armour damage (bad base64, CRC-24 mismatch, missing END line) is [`DecryptError::Damaged`]
///   whatever the contents: a checksum failure proves transit damage. We check the CRC
///   ourselves because sequoia deliberately ignores it;
/// * otherwise [`DecryptError::WrongKey`] unless one of the SKESKs gave a session key that
///   passed sequoia's trial decryption (the 2-byte quick check), tracked in `SymHelper`;
///   unencrypted messages are WrongKey too;
/// * after the session key opened, every failure (MDC mismatch, truncation, parse error,
///   output over [`MAX_PLAINTEXT`]) is [`DecryptError::Damaged`].
///
/// Residual ambiguity: a message made with another password passes the 16-bit quick check
/// with probability 1/65536 and would then be reported as Damaged. Never panics.
pub fn decrypt_symmetric(password: &[u8], text: &[u8]) -> Result<Vec<u8>, DecryptError> {
    // sequoia 2.4.2 can panic on some damaged SEIPD packets (an `unwrap` in parse.rs while
    // setting up the MDC reader; found by `mutated_messages_never_panic`). Mail from the
    // network must never take the daemon down: such a message is damaged, nothing more.
    std::panic::catch_unwind(|| decrypt_symmetric_unguarded(password, text)).unwrap_or_else(|_| {
        Err(DecryptError::Damaged("the OpenPGP parser failed on this message".into()))
    })
}

fn decrypt_symmetric_unguarded(password: &[u8], text: &[u8]) -> Result<Vec<u8>, DecryptError> {
    let block = next_armor_block(text, MESSAGE_BLOCK, 0).ok_or(DecryptError::NoMessage)?;
    let binary = block.data.map_err(DecryptError::Damaged)?;
    if binary.is_empty() {
        return Err(DecryptError::Damaged("empty armour".into()));
    }

    let opened = Cell::new(false);
    let helper = SymHelper { password: Password::from(password), opened: &opened };
    let policy = StandardPolicy::new();
    // `damaged` maps any failure once we know whether our session key opened.
    let classify = |e: String| {
        if opened.get() { DecryptError::Damaged(e) } else { DecryptError::WrongKey }
    };

    let builder =
        DecryptorBuilder::from_bytes(&binary[..]).map_err(|e| classify(format!("{e:#}")))?;
    // The decryptor reads ahead this much before releasing data; keep it at our cap.
    let mut decryptor = builder
        .buffer_size(MAX_PLAINTEXT)
        .with_policy(&policy, None, helper)
        .map_err(|e| classify(format!("{e:#}")))?;

    let mut out = Vec::new();
    let limit = u64::try_from(MAX_PLAINTEXT).unwrap_or(u64::MAX).saturating_add(1);
    let read = (&mut decryptor).take(limit).read_to_end(&mut out);
    if !opened.get() {
        // Plain literal/compressed data, never decrypted: not made with our secret.
        return Err(DecryptError::WrongKey);
    }
    if let Err(e) = read {
        return Err(DecryptError::Damaged(e.to_string()));
    }
    if out.len() > MAX_PLAINTEXT {
        return Err(DecryptError::Damaged(format!("plaintext exceeds {MAX_PLAINTEXT} bytes")));
    }
    if !decryptor.message_processed() {
        return Err(DecryptError::Damaged("message not fully processed".into()));
    }
    Ok(out)
}

/// [`decrypt_symmetric`] for a message that should carry `salt` in its SKESK (see
/// [`encrypt_symmetric_salted`]). Only the exact shape [`encrypt_symmetric_salted`] writes is
/// opened: one SKESK v4 (AES-256, iterated and salted SHA-256 S2K with our count and `salt`)
/// followed directly by the encrypted data packet, and no more base64 than our largest
/// payload needs. Anything else is refused before any hashing or decryption
/// ([`DecryptError::NotOurs`], or [`DecryptError::WrongKey`] for another salt), so a stranger
/// who copies the start of one genuine return cannot make us spend more than one of our own
/// messages costs. A message of that shape is ours, so every failure to open it is transit
/// damage: [`DecryptError::Damaged`].
///
/// The header is read from the first 24 base64 characters even when the armour is damaged
/// elsewhere; damage inside those 24 characters is reported as not ours.
pub fn decrypt_symmetric_salted(
    password: &[u8],
    salt: [u8; 8],
    text: &[u8],
) -> Result<Vec<u8>, DecryptError> {
    let block = next_armor_block(text, MESSAGE_BLOCK, 0).ok_or(DecryptError::NoMessage)?;
    if block.body.len() > MAX_SEALED_BASE64 {
        return Err(DecryptError::NotOurs(format!(
            "{} bytes of armour, more than any payload this pinger sends",
            block.body.len()
        )));
    }
    match sealed_header(&block.body) {
        Some(SealedHeader { salt: found, .. }) if found != salt => {
            return Err(DecryptError::WrongKey);
        }
        Some(header) if header != SealedHeader::ours(salt) => {
            return Err(DecryptError::NotOurs(
                "its key packet is not the one this pinger writes (cipher, S2K, count or \
                 packet sequence)"
                    .into(),
            ));
        }
        Some(_) => {}
        None => return Err(DecryptError::WrongKey),
    }
    // The encrypted packet must end exactly where the message ends: bytes after it are not
    // ours, and would send the packet parser scanning through them for something to read.
    if let Ok(binary) = &block.data {
        match seipd_end(binary, 15) {
            Some(end) if end == binary.len() => {}
            Some(end) if end > binary.len() => {
                return Err(DecryptError::Damaged("truncated encrypted data".into()));
            }
            _ => {
                return Err(DecryptError::NotOurs(
                    "data after the encrypted packet, or a malformed length".into(),
                ));
            }
        }
    }
    decrypt_symmetric(password, text).map_err(|e| match e {
        DecryptError::WrongKey => {
            DecryptError::Damaged("our message, but the session key no longer opens it".into())
        }
        other => other,
    })
}

/// Where the packet starting at `start` (a new-format packet, as ours are) ends, following
/// partial body lengths; `None` when its header is cut short or malformed.
fn seipd_end(binary: &[u8], start: usize) -> Option<usize> {
    let mut pos = start + 1;
    loop {
        let first = usize::from(*binary.get(pos)?);
        match first {
            0..=191 => return Some(pos + 1 + first),
            192..=223 => {
                let second = usize::from(*binary.get(pos + 1)?);
                return Some(pos + 2 + ((first - 192) << 8) + second + 192);
            }
            255 => {
                let len = binary.get(pos + 1..pos + 5)?;
                let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
                return pos.checked_add(5)?.checked_add(len);
            }
            // A partial body length: a chunk of 2^n bytes, then another length.
            _ => pos = pos.checked_add(1 + (1usize << (first & 0x1F)))?,
        }
    }
}

/// The first packets of a sealed message as [`encrypt_symmetric_salted`] writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SealedHeader {
    /// New-format tag 3 (0xC3) and its one-byte length.
    skesk_tag_and_length: [u8; 2],
    /// SKESK version, cipher, S2K type and hash.
    skesk_params: [u8; 4],
    salt: [u8; 8],
    /// The coded S2K count.
    count: u8,
    /// The tag byte of the packet after the SKESK.
    next_tag: u8,
}

impl SealedHeader {
    fn ours(salt: [u8; 8]) -> SealedHeader {
        SealedHeader {
            skesk_tag_and_length: [0xC3, 13],
            // v4, AES-256 (9), iterated and salted (3), SHA-256 (8).
            skesk_params: [4, 9, 3, 8],
            salt,
            count: S2K_CODED_COUNT,
            // New-format tag 18: SEIPD.
            next_tag: 0xC0 | 18,
        }
    }
}

/// The coded count of [`S2K_HASH_BYTES`] (RFC 4880 3.7.1.3: `(16 + (c & 15)) << ((c >> 4) + 6)`
/// bytes; 65536 = 16 << 12).
const S2K_CODED_COUNT: u8 = 0x60;

/// Reads the leading SKESK and the next packet's tag from the first 24 base64 characters
/// (18 bytes) of an armour body.
fn sealed_header(base64: &[u8]) -> Option<SealedHeader> {
    let head = base64_decode(base64.get(..24)?)?;
    let head: &[u8; 18] = head.get(..18)?.try_into().ok()?;
    Some(SealedHeader {
        skesk_tag_and_length: [head[0], head[1]],
        skesk_params: [head[2], head[3], head[4], head[5]],
        salt: head[6..14].try_into().ok()?,
        count: head[14],
        next_tag: head[15],
    })
}

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

/// The policy for remailer keys: sequoia's standard policy evaluated at `now`, plus the old
/// algorithms real remailers still use. Scoped to key handling and encryption in this module;
/// what we decrypt (our own symmetric returns) stays under the standard policy.
fn relaxed_policy(now: SystemTime) -> StandardPolicy<'static> {
    let mut policy = StandardPolicy::at(now);
    for algo in [
        AsymmetricAlgorithm::RSA1024,
        AsymmetricAlgorithm::DSA1024,
        AsymmetricAlgorithm::DSA2048,
        AsymmetricAlgorithm::DSA3072,
        AsymmetricAlgorithm::DSA4096,
        AsymmetricAlgorithm::ElGamal1024,
        AsymmetricAlgorithm::ElGamal2048,
        AsymmetricAlgorithm::ElGamal3072,
        AsymmetricAlgorithm::ElGamal4096,
    ] {
        policy.accept_asymmetric_algo(algo);
    }
    #[allow(deprecated)]
    for algo in [SymmetricAlgorithm::IDEA, SymmetricAlgorithm::TripleDES, SymmetricAlgorithm::CAST5]
    {
        policy.accept_symmetric_algo(algo);
    }
    for hash in [HashAlgorithm::SHA1, HashAlgorithm::MD5, HashAlgorithm::RipeMD] {
        policy.accept_hash(hash);
    }
    policy
}

fn parse_binary_certs(binary: &[u8], out: &mut Vec<Result<RemailerCert, PgpError>>) {
    match CertParser::from_bytes(binary) {
        Ok(parser) => {
            for cert in parser.take(MAX_CERTS_PER_BLOCK) {
                out.push(
                    cert.map_err(|e| PgpError::Malformed(format!("{e:#}")))
                        .and_then(|c| describe_cert(&c)),
                );
            }
        }
        Err(e) => out.push(Err(PgpError::Malformed(format!("{e:#}")))),
    }
}

/// Binary keyrings start with a packet tag byte: bit 7 set, and for old-format tags a public
/// key (6) or secret key (5) packet; new format 0xC5/0xC6.
fn looks_like_binary_openpgp(text: &[u8]) -> bool {
    matches!(text.first(), Some(0x98..=0x99) | Some(0x94..=0x95) | Some(0xC5) | Some(0xC6))
}

fn describe_cert(cert: &Cert) -> Result<RemailerCert, PgpError> {
    let cert = cert.clone().strip_secret_key_material();
    let primary = cert.primary_key().key();
    #[allow(deprecated)]
    let kind = match primary.pk_algo() {
        PublicKeyAlgorithm::RSAEncryptSign
        | PublicKeyAlgorithm::RSAEncrypt
        | PublicKeyAlgorithm::RSASign => KeyKind::Rsa,
        PublicKeyAlgorithm::DSA => KeyKind::DsaElGamal,
        other => return Err(PgpError::UnsupportedAlgorithm(format!("{other} primary key"))),
    };

    let now = SystemTime::now();
    let policy = relaxed_policy(now);
    let vc = match cert.with_policy(&policy, now) {
        Ok(vc) => vc,
        Err(first) => {
            // Freshly made keys from a remailer whose clock runs ahead: validate at the newest
            // self-signature instead of rejecting them.
            let newest = cert
                .userids()
                .flat_map(|u| u.self_signatures())
                .chain(cert.primary_key().self_signatures())
                .filter_map(|s| s.signature_creation_time())
                .max();
            match newest.filter(|t| *t > now).map(|t| cert.with_policy(&policy, t)) {
                Some(Ok(vc)) => vc,
                _ => return Err(PgpError::InvalidCert(format!("{first:#}"))),
            }
        }
    };

    let user_ids: Vec<String> =
        vc.userids().map(|u| String::from_utf8_lossy(u.userid().value()).into_owned()).collect();
    let mut emails = Vec::new();
    for uid in &user_ids {
        if let Some(email) = addr_spec(uid)
            && !emails.contains(&email)
        {
            emails.push(email);
        }
    }
    let expires = vc.primary_key().key_expiration_time().map(unix_seconds);

    let mut sink = armor::Writer::new(Vec::new(), armor::Kind::PublicKey)
        .map_err(|e| PgpError::Malformed(e.to_string()))?;
    cert.serialize(&mut sink).map_err(|e| PgpError::Malformed(format!("{e:#}")))?;
    let armored = sink.finalize().map_err(|e| PgpError::Malformed(e.to_string()))?;
    let armored = String::from_utf8(armored).map_err(|e| PgpError::Malformed(e.to_string()))?;

    Ok(RemailerCert {
        key_id: cert.keyid().to_hex(),
        kind,
        emails,
        user_ids,
        created: unix_seconds(primary.creation_time()),
        expires,
        bits: primary.mpis().bits(),
        armored,
    })
}

/// The lower-cased addr-spec of a user id: the part in the last `<...>`, or the whole user id
/// when it is a bare address. Deliberately simple (no RFC 5322 comments/quoting): remailer user
/// ids look like "Name <addr>", and addresses such as "x@localhost" must pass.
fn addr_spec(user_id: &str) -> Option<String> {
    let candidate = match (user_id.rfind('<'), user_id.rfind('>')) {
        (Some(open), Some(close)) if open < close => &user_id[open + 1..close],
        _ => user_id,
    };
    let candidate = candidate.trim();
    let (local, domain) = candidate.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !candidate.chars().any(|c| c.is_whitespace() || c.is_control() || "<>".contains(c));
    ok.then(|| candidate.to_lowercase())
}

fn read_one_cert(text: &[u8]) -> Result<Cert, PgpError> {
    let binary = match next_armor_block(text, PUBLIC_KEY_BLOCK, 0) {
        Some(block) => block.data.map_err(PgpError::Malformed)?,
        None if looks_like_binary_openpgp(text) => text.to_vec(),
        None => return Err(PgpError::NoKey),
    };
    Cert::from_bytes(&binary).map_err(|e| PgpError::Malformed(format!("{e:#}")))
}

/// Picks the key to encrypt to; see [`encrypt_to_cert`] for the rules. Refuses with a specific
/// error when every encryption-capable key is revoked, expired or of an algorithm we lack.
fn choose_encryption_key<'a>(
    vc: &ValidCert<'a>,
) -> Result<&'a Key<PublicParts, UnspecifiedRole>, PgpError> {
    let capable: Vec<_> = vc
        .keys()
        .filter(|ka| match ka.key_flags() {
            Some(flags) => flags.for_transport_encryption() || flags.for_storage_encryption(),
            None => ka.key().pk_algo().for_encryption(),
        })
        .collect();
    if capable.is_empty() {
        return Err(PgpError::NoEncryptionKey);
    }
    let usable: Vec<_> = capable.iter().filter(|ka| algo_usable(ka.key().pk_algo())).collect();
    let Some(first_usable) = usable.first() else {
        let algo = capable[0].key().pk_algo();
        return Err(PgpError::UnsupportedAlgorithm(format!("{algo} ({})", u8::from(algo))));
    };
    let live: Vec<_> = usable
        .iter()
        .filter(|ka| !matches!(ka.revocation_status(), RevocationStatus::Revoked(_)))
        .filter(|ka| ka.alive().is_ok())
        .collect();
    let best = live.into_iter().max_by_key(|ka| (!ka.primary(), ka.key().creation_time()));
    match best {
        Some(ka) => Ok(ka.key().role_as_unspecified()),
        None => {
            let id = first_usable.key().keyid().to_hex();
            if usable
                .iter()
                .all(|ka| matches!(ka.revocation_status(), RevocationStatus::Revoked(_)))
            {
                Err(PgpError::Revoked(format!("encryption key {id}")))
            } else {
                let why = first_usable.alive().err().map(|e| e.to_string()).unwrap_or_default();
                Err(PgpError::Expired(format!("encryption key {id}: {why}")))
            }
        }
    }
}

/// ElGamal (16) we do ourselves; anything else must be supported by the sequoia backend.
fn algo_usable(algo: PublicKeyAlgorithm) -> bool {
    algo == ELGAMAL_ENCRYPT || algo.is_supported()
}

/// First preferred cipher we can produce, else 3DES (mandatory to implement in RFC 4880).
#[allow(deprecated)]
fn choose_cipher(prefs: Option<&[SymmetricAlgorithm]>) -> SymmetricAlgorithm {
    const USABLE: [SymmetricAlgorithm; 10] = [
        SymmetricAlgorithm::AES256,
        SymmetricAlgorithm::AES192,
        SymmetricAlgorithm::AES128,
        SymmetricAlgorithm::CAST5,
        SymmetricAlgorithm::TripleDES,
        SymmetricAlgorithm::Twofish,
        SymmetricAlgorithm::Blowfish,
        SymmetricAlgorithm::Camellia128,
        SymmetricAlgorithm::Camellia192,
        SymmetricAlgorithm::Camellia256,
    ];
    prefs
        .unwrap_or(&[])
        .iter()
        .copied()
        .find(|a| USABLE.contains(a) && a.is_supported())
        .unwrap_or(SymmetricAlgorithm::TripleDES)
}

/// The names GnuPG uses for the ciphers.
#[allow(deprecated)]
fn cipher_name(algo: SymmetricAlgorithm) -> String {
    match algo {
        SymmetricAlgorithm::IDEA => "IDEA".into(),
        SymmetricAlgorithm::TripleDES => "3DES".into(),
        SymmetricAlgorithm::CAST5 => "CAST5".into(),
        SymmetricAlgorithm::Blowfish => "BLOWFISH".into(),
        SymmetricAlgorithm::AES128 => "AES128".into(),
        SymmetricAlgorithm::AES192 => "AES192".into(),
        SymmetricAlgorithm::AES256 => "AES256".into(),
        SymmetricAlgorithm::Twofish => "TWOFISH".into(),
        SymmetricAlgorithm::Camellia128 => "CAMELLIA128".into(),
        SymmetricAlgorithm::Camellia192 => "CAMELLIA192".into(),
        SymmetricAlgorithm::Camellia256 => "CAMELLIA256".into(),
        other => format!("ALGO{}", u8::from(other)),
    }
}

/// Text-mode literal data is stored with CRLF line ends (RFC 4880 §5.9), as `gpg --textmode`
/// writes it; bare LFs become CRLF, existing CRLFs stay.
fn canonical_text(plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + plaintext.len() / 32);
    let mut prev = 0u8;
    for &b in plaintext {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// ElGamal PKESK
// ---------------------------------------------------------------------------------------------

/// Builds a v3 PKESK that encrypts `session_key` for `cipher` to an ElGamal (algo 16) key,
/// because sequoia's nettle backend cannot (RFC 4880 §5.1, §13.1):
///
/// m = EME-PKCS1-v1_5(cipher byte ‖ session key ‖ 16-bit checksum), padded to the byte length
/// of p; k random in [1, p-2]; e = g^k mod p; c = m·y^k mod p.
///
/// `BigUint::modpow` is not constant time. That is acceptable here because this is
/// encrypt-only with a fresh random k per message and no secret key ever passes through it:
/// the timing can at most leak something about k (and so about this one session key) to an
/// observer who can time our CPU, which for a pinger sending to public keys is negligible.
/// Never reuse this code for decryption or signing.
fn elgamal_pkesk(
    key: &Key<PublicParts, UnspecifiedRole>,
    cipher: SymmetricAlgorithm,
    session_key: &SessionKey,
) -> Result<PKESK3, PgpError> {
    let (p, g, y) = match key.mpis() {
        mpi::PublicKey::ElGamal { p, g, y } => (
            BigUint::from_bytes_be(p.value()),
            BigUint::from_bytes_be(g.value()),
            BigUint::from_bytes_be(y.value()),
        ),
        _ => return Err(PgpError::UnsupportedAlgorithm("ElGamal key without ElGamal MPIs".into())),
    };
    let bits = usize::try_from(p.bits()).unwrap_or(usize::MAX);
    if !(1024..=4096).contains(&bits) {
        return Err(PgpError::UnsupportedAlgorithm(format!("ElGamal-{bits}")));
    }
    let two = BigUint::from(2u32);
    if !p.bit(0) || g < two || g >= p || y < two || y >= p {
        return Err(PgpError::InvalidCert("ElGamal key with invalid parameters".into()));
    }
    let k_len = bits.div_ceil(8);

    // algo ‖ key ‖ checksum (sum of the key bytes mod 65536).
    let checksum = session_key.iter().fold(0u16, |acc, b| acc.wrapping_add(u16::from(*b)));
    let mut m = Vec::with_capacity(session_key.len() + 3);
    m.push(u8::from(cipher));
    m.extend_from_slice(session_key);
    m.extend_from_slice(&checksum.to_be_bytes());
    if m.len() + 11 > k_len {
        return Err(PgpError::Encrypt("session key too long for the ElGamal key".into()));
    }

    // EME-PKCS1-v1_5: 0x00 0x02 PS 0x00 M, PS non-zero random, at least 8 bytes.
    let mut em = vec![0u8; k_len];
    em[1] = 2;
    let ps_end = k_len - m.len() - 1;
    fill_nonzero(&mut em[2..ps_end])?;
    em[ps_end] = 0;
    em[ps_end + 1..].copy_from_slice(&m);
    let m_int = BigUint::from_bytes_be(&em);
    em.iter_mut().for_each(|b| *b = 0);
    m.iter_mut().for_each(|b| *b = 0);

    // k uniform enough in [1, p-2]: 64 extra random bits make the modulo bias negligible.
    let mut k_bytes = vec![0u8; k_len + 8];
    OsRng.try_fill_bytes(&mut k_bytes).map_err(enc_err)?;
    let k = BigUint::from_bytes_be(&k_bytes) % (&p - &two) + 1u32;
    k_bytes.iter_mut().for_each(|b| *b = 0);

    let e = g.modpow(&k, &p);
    let c = (m_int * y.modpow(&k, &p)) % &p;
    PKESK3::new(
        Some(key.keyid()),
        ELGAMAL_ENCRYPT,
        mpi::Ciphertext::ElGamal { e: MPI::new(&e.to_bytes_be()), c: MPI::new(&c.to_bytes_be()) },
    )
    .map_err(enc_err)
}

fn fill_nonzero(buf: &mut [u8]) -> Result<(), PgpError> {
    OsRng.try_fill_bytes(buf).map_err(enc_err)?;
    let mut one = [0u8; 1];
    for b in buf.iter_mut() {
        while *b == 0 {
            OsRng.try_fill_bytes(&mut one).map_err(enc_err)?;
            *b = one[0];
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Symmetric decryption helper
// ---------------------------------------------------------------------------------------------

/// Tries our password on the message's SKESKs and records in `opened` whether one produced a
/// session key that passed sequoia's trial decryption: that is the WrongKey/Damaged boundary.
struct SymHelper<'a> {
    password: Password,
    opened: &'a Cell<bool>,
}

impl SymHelper<'_> {
    /// Refuses S2K parameters that would cost more than our own messages ever do.
    fn affordable(skesk: &SKESK) -> bool {
        #[allow(deprecated)]
        match skesk {
            SKESK::V4(s) => match s.s2k() {
                S2K::Iterated { hash_bytes, .. } => *hash_bytes <= MAX_S2K_HASH_BYTES,
                S2K::Salted { .. } | S2K::Simple { .. } => true,
                _ => false,
            },
            _ => false,
        }
    }
}

impl VerificationHelper for SymHelper<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> sq::Result<Vec<Cert>> {
        Ok(Vec::new())
    }

    fn check(&mut self, _structure: MessageStructure) -> sq::Result<()> {
        // Returns are not signed; authenticity comes from the password (and the caller's MAC).
        Ok(())
    }
}

impl DecryptionHelper for SymHelper<'_> {
    fn decrypt(
        &mut self,
        _pkesks: &[PKESK],
        skesks: &[SKESK],
        _sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> sq::Result<Option<Cert>> {
        for skesk in skesks.iter().filter(|s| Self::affordable(s)).take(MAX_SKESKS) {
            if let Ok((algo, session_key)) = skesk.decrypt(&self.password)
                && decrypt(algo, &session_key)
            {
                self.opened.set(true);
                return Ok(None);
            }
        }
        Err(anyhow::anyhow!("no SKESK opens with our password"))
    }
}

// ---------------------------------------------------------------------------------------------
// ASCII armour
// ---------------------------------------------------------------------------------------------

/// One armour block found in a text.
struct ArmorBlock {
    /// Decoded contents, or why the armour is broken.
    data: Result<Vec<u8>, String>,
    /// The base64 text as found (CRC line excluded), for a look at damaged armour.
    body: Vec<u8>,
    /// Where to continue searching for the next block.
    next: usize,
}

/// Finds the next "-----BEGIN <label>-----" at or after `from` and decodes its body.
///
/// Our own decoder instead of sequoia's armour reader, because we need the CRC-24 verified
/// (sequoia ignores it, per RFC 9580) to call transit damage Damaged, and because mail bodies
/// bring CRLF line ends, trailing blanks and prose around the block. Headers ("Version:" etc.)
/// are skipped; the CRC line is optional; a missing END line is an error.
fn next_armor_block(text: &[u8], label: &str, from: usize) -> Option<ArmorBlock> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = from + find(text.get(from..)?, begin.as_bytes())?;
    let after_begin = start + begin.len();

    let mut base64: Vec<u8> = Vec::new();
    let mut crc_line: Option<Vec<u8>> = None;
    let mut in_headers = true;
    let mut pos = after_begin;
    // Rest of the BEGIN line (normally empty).
    let first_nl = text[pos..].iter().position(|&b| b == b'\n');
    pos = match first_nl {
        Some(i) => pos + i + 1,
        None => {
            return Some(ArmorBlock {
                data: Err("truncated armour: nothing after BEGIN line".into()),
                next: text.len(),
                body: Vec::new(),
            });
        }
    };
    while pos < text.len() {
        let line_end = text[pos..].iter().position(|&b| b == b'\n').map_or(text.len(), |i| pos + i);
        let next_line = (line_end + 1).min(text.len());
        let line = text[pos..line_end].trim_ascii();
        if line.starts_with(b"-----") {
            if line == end.as_bytes() {
                let data = decode_body(&base64, crc_line.as_deref());
                return Some(ArmorBlock { data, next: next_line, body: base64 });
            }
            // Another armour line before our END: this block was cut off. Resume there.
            return Some(ArmorBlock {
                data: Err("truncated armour: no END line".into()),
                next: pos,
                body: base64,
            });
        }
        if in_headers {
            if line.is_empty() {
                in_headers = false;
                pos = next_line;
                continue;
            }
            if line.contains(&b':') {
                pos = next_line;
                continue;
            }
            // No blank line after BEGIN: tolerate, this is already body.
            in_headers = false;
        }
        if line.first() == Some(&b'=') {
            crc_line = Some(line[1..].to_vec());
        } else if crc_line.is_none() {
            base64.extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
        } else if !line.is_empty() {
            return Some(ArmorBlock {
                data: Err("bad armour: data after the checksum line".into()),
                next: next_line,
                body: base64,
            });
        }
        pos = next_line;
    }
    Some(ArmorBlock {
        data: Err("truncated armour: no END line".into()),
        next: text.len(),
        body: base64,
    })
}

fn decode_body(base64: &[u8], crc_line: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let data = base64_decode(base64).ok_or("bad armour: invalid base64")?;
    if let Some(crc) = crc_line {
        let expected = base64_decode(crc)
            .filter(|c| c.len() == 3)
            .ok_or("bad armour: malformed checksum line")?;
        let expected = u32::from_be_bytes([0, expected[0], expected[1], expected[2]]);
        if crc24(&data) != expected {
            return Err("bad armour: CRC-24 checksum mismatch".into());
        }
    }
    Ok(data)
}

/// Strict standard base64: '=' padding only at the end, and the unused low bits of a final
/// partial group must be zero, so that every changed character is noticed.
fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    // Strict about the unused bits of the last character (no encoder sets them: a set bit
    // is a changed character). Padding, when present, must be exact; some armour writers
    // leave it out altogether.
    const fn engine(padding: DecodePaddingMode) -> GeneralPurpose {
        GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new()
                .with_decode_allow_trailing_bits(false)
                .with_decode_padding_mode(padding),
        )
    }
    const PADDED: GeneralPurpose = engine(DecodePaddingMode::RequireCanonical);
    const UNPADDED: GeneralPurpose = engine(DecodePaddingMode::RequireNone);
    let engine = if input.ends_with(b"=") { &PADDED } else { &UNPADDED };
    engine.decode(input).ok()
}

/// OpenPGP's CRC-24 (RFC 4880 §6.1).
fn crc24(data: &[u8]) -> u32 {
    let mut crc: u32 = 0x00B7_04CE;
    for &b in data {
        crc ^= u32::from(b) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x0100_0000 != 0 {
                crc ^= 0x0186_4CFB;
            }
        }
    }
    crc & 0x00FF_FFFF
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PASSWORD: &[u8] = b"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn sealed(plaintext: &[u8]) -> String {
        encrypt_symmetric(PASSWORD, plaintext).expect("encrypt_symmetric")
    }

    /// Indices (into the armoured text) of every base64 body character, CRC line excluded.
    fn body_char_positions(armored: &str) -> Vec<usize> {
        let mut out = Vec::new();
        let mut offset = 0;
        let mut in_body = false;
        for line in armored.split_inclusive('\n') {
            let trimmed = line.trim_end();
            if in_body && !trimmed.starts_with('=') && !trimmed.starts_with("-----") {
                out.extend(
                    trimmed.char_indices().filter(|(_, c)| *c != '=').map(|(i, _)| offset + i),
                );
            }
            if trimmed.is_empty() {
                in_body = true;
            }
            offset += line.len();
        }
        out
    }

    fn flip(armored: &str, pos: usize) -> String {
        let mut bytes = armored.as_bytes().to_vec();
        bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).expect("ascii")
    }

    #[test]
    fn symmetric_round_trip_in_mail_body() {
        let plaintext = b"ping 1234\nline two\n\x00\xffbinary";
        let armored = sealed(plaintext);
        assert!(armored.starts_with("-----BEGIN PGP MESSAGE-----\n\n"), "{armored}");
        assert!(!armored.contains("Version:") && !armored.contains("Comment:"));
        let body = format!(
            "Some prose before.\r\n\r\n{}\r\nand after\r\n",
            armored.replace('\n', "\r\n").trim_end()
        );
        assert_eq!(decrypt_symmetric(PASSWORD, body.as_bytes()).expect("decrypt"), plaintext);
        assert_eq!(decrypt_symmetric(PASSWORD, armored.as_bytes()).expect("decrypt"), plaintext);
        assert_eq!(decrypt_symmetric(PASSWORD, sealed(b"").as_bytes()).expect("empty"), b"");
    }

    #[test]
    fn symmetric_uses_small_s2k_and_no_esk() {
        let armored = sealed(b"x");
        let block = next_armor_block(armored.as_bytes(), MESSAGE_BLOCK, 0).expect("armour");
        let binary = block.data.expect("decodes");
        // SKESK: new CTB tag 3 (0xc3), len 13, v4, AES256 (9), S2K 3, SHA256 (8), salt, count
        // 0x60 = 65536 bytes.
        assert_eq!(&binary[..6], &[0xc3, 13, 4, 9, 3, 8]);
        assert_eq!(binary[14], 0x60);
    }

    #[test]
    fn wrong_password_is_wrong_key() {
        let armored = sealed(b"hello");
        let other = b"ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
        assert!(matches!(
            decrypt_symmetric(other, armored.as_bytes()),
            Err(DecryptError::WrongKey)
        ));
        let forged = encrypt_symmetric(other, b"forged").expect("encrypt");
        assert!(matches!(
            decrypt_symmetric(PASSWORD, forged.as_bytes()),
            Err(DecryptError::WrongKey)
        ));
    }

    #[test]
    fn unencrypted_message_is_wrong_key() {
        let mut sink = armor::Writer::new(Vec::new(), armor::Kind::Message).expect("armor");
        {
            let message = Message::new(&mut sink);
            let mut literal = LiteralWriter::new(message).build().expect("literal");
            literal.write_all(b"not encrypted").expect("write");
            literal.finalize().expect("finalize");
        }
        let armored = sink.finalize().expect("armor");
        assert!(matches!(decrypt_symmetric(PASSWORD, &armored), Err(DecryptError::WrongKey)));
    }

    #[test]
    fn flipped_base64_is_damaged_everywhere() {
        // Long enough for several body lines.
        let plaintext: Vec<u8> = (0..400u32).map(|i| (i * 7 % 251) as u8).collect();
        let armored = sealed(&plaintext);
        let positions = body_char_positions(&armored);
        assert!(positions.len() > 300);
        let mut tried = 0;
        for (n, &pos) in positions.iter().enumerate() {
            // First line (SKESK), every 13th char, and all of the last two lines.
            if n < 64 || n % 13 == 0 || n + 130 > positions.len() {
                let damaged = flip(&armored, pos);
                match decrypt_symmetric(PASSWORD, damaged.as_bytes()) {
                    Err(DecryptError::Damaged(_)) => {}
                    other => panic!("flip at {pos}: {other:?}"),
                }
                tried += 1;
            }
        }
        assert!(tried > 150);
        // The CRC line itself.
        let crc_pos = armored.find("\n=").expect("crc line") + 2;
        assert!(matches!(
            decrypt_symmetric(PASSWORD, flip(&armored, crc_pos).as_bytes()),
            Err(DecryptError::Damaged(_))
        ));
    }

    #[test]
    fn flipped_without_crc_is_damaged_after_session_key() {
        // Without the CRC line, damage past the SKESK must still be Damaged (MDC / parse).
        let plaintext: Vec<u8> = (0..300u32).map(|i| (i % 256) as u8).collect();
        let armored = sealed(&plaintext);
        let no_crc: String =
            armored.lines().filter(|l| !l.starts_with('=')).map(|l| format!("{l}\n")).collect();
        assert_eq!(decrypt_symmetric(PASSWORD, no_crc.as_bytes()).expect("no crc ok"), plaintext);
        let positions = body_char_positions(&no_crc);
        // Skip the SKESK (first 20 base64 chars = 15 bytes) and the SEIPD header/IV region:
        // damage there is indistinguishable from another password without a CRC.
        for &pos in positions.iter().skip(60).step_by(11) {
            match decrypt_symmetric(PASSWORD, flip(&no_crc, pos).as_bytes()) {
                Err(DecryptError::Damaged(_)) => {}
                other => panic!("flip at {pos}: {other:?}"),
            }
        }
    }

    #[test]
    fn truncated_armour_is_damaged() {
        // Incompressible, so the armour has many lines.
        let plaintext: Vec<u8> =
            (0..600u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let armored = sealed(&plaintext);
        let lines: Vec<&str> = armored.lines().collect();
        // Cut off: no END line.
        for keep in [3, lines.len() / 2, lines.len() - 2, lines.len() - 1] {
            let cut = lines[..keep].join("\n");
            assert!(
                matches!(
                    decrypt_symmetric(PASSWORD, cut.as_bytes()),
                    Err(DecryptError::Damaged(_))
                ),
                "keep {keep}"
            );
        }
        // Middle lines lost, END present (CRC catches it).
        let mut missing = lines.clone();
        missing.remove(4);
        let missing = missing.join("\n");
        assert!(matches!(
            decrypt_symmetric(PASSWORD, missing.as_bytes()),
            Err(DecryptError::Damaged(_))
        ));
        // Same without the CRC line: MDC / truncation after the session key opened.
        let no_crc: Vec<&str> =
            lines.iter().copied().filter(|l| !l.starts_with('=')).collect::<Vec<_>>();
        let mut short = no_crc.clone();
        short.remove(no_crc.len() - 3);
        assert!(matches!(
            decrypt_symmetric(PASSWORD, short.join("\n").as_bytes()),
            Err(DecryptError::Damaged(_))
        ));
        // A following armour block before our END.
        let two = format!("{}\n{}", lines[..5].join("\n"), armored);
        assert!(matches!(
            decrypt_symmetric(PASSWORD, two.as_bytes()),
            Err(DecryptError::Damaged(_))
        ));
    }

    #[test]
    fn no_message() {
        for text in [
            &b""[..],
            b"hello world, no armour here\n",
            b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n",
            b"\x00\x01\x02\xff\xfe random",
        ] {
            assert!(matches!(decrypt_symmetric(PASSWORD, text), Err(DecryptError::NoMessage)));
        }
    }

    #[test]
    fn garbage_inside_valid_armour_is_not_ours() {
        let mut sink = armor::Writer::new(Vec::new(), armor::Kind::Message).expect("armor");
        sink.write_all(b"\x01\x02\x03 not openpgp at all").expect("write");
        let armored = sink.finalize().expect("armor");
        assert!(matches!(decrypt_symmetric(PASSWORD, &armored), Err(DecryptError::WrongKey)));
    }

    #[test]
    fn expensive_s2k_is_not_tried() {
        // A message with gpg's usual 65 MB S2K count is refused without hashing it.
        let s2k = S2K::new_iterated(HashAlgorithm::SHA256, 0x3e0_0000).expect("s2k");
        let skesk = SKESK4::new(SymmetricAlgorithm::AES256, s2k, None).expect("skesk");
        let mut sink = armor::Writer::new(Vec::new(), armor::Kind::Message).expect("armor");
        {
            let mut message = Message::new(&mut sink);
            Packet::from(skesk).serialize(&mut message).expect("skesk");
            let key = SessionKey::new(32).expect("key");
            let message = Encryptor::with_session_key(message, SymmetricAlgorithm::AES256, key)
                .expect("enc")
                .build()
                .expect("build");
            let mut literal = LiteralWriter::new(message).build().expect("literal");
            literal.write_all(b"x").expect("write");
            literal.finalize().expect("finalize");
        }
        let armored = sink.finalize().expect("armor");
        let started = std::time::Instant::now();
        assert!(matches!(decrypt_symmetric(PASSWORD, &armored), Err(DecryptError::WrongKey)));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    /// Re-armours a sealed message after `edit` changed its binary form (no CRC line, which
    /// our decoder accepts, as a forger would leave it).
    fn rearmoured(armored: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
        let block = next_armor_block(armored.as_bytes(), MESSAGE_BLOCK, 0).expect("block");
        let mut binary = block.data.expect("intact");
        edit(&mut binary);
        let body = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &binary);
        format!("-----BEGIN PGP MESSAGE-----\n\n{body}\n-----END PGP MESSAGE-----\n")
    }

    #[test]
    fn the_coded_count_is_the_one_sequoia_writes() {
        let salt = [9u8; 8];
        let armored = encrypt_symmetric_salted(PASSWORD, salt, b"x").expect("seal");
        let block = next_armor_block(armored.as_bytes(), MESSAGE_BLOCK, 0).expect("block");
        assert_eq!(sealed_header(&block.body), Some(SealedHeader::ours(salt)));
        assert_eq!(decrypt_symmetric_salted(PASSWORD, salt, armored.as_bytes()).unwrap(), b"x");
    }

    #[test]
    fn a_copied_header_with_another_shape_is_refused_unopened() {
        let salt = [3u8; 8];
        let armored = encrypt_symmetric_salted(PASSWORD, salt, b"payload").expect("seal");
        type Edit = fn(&mut Vec<u8>);
        let edits: [(&str, Edit); 4] = [
            // The count that made one return cost 3 ms of hashing per copy.
            ("largest affordable count", |b| b[14] = 0x80),
            ("the maximum count", |b| b[14] = 0xff),
            ("AES-128", |b| b[3] = 7),
            ("a second SKESK", |b| {
                let skesk = b[..15].to_vec();
                b.splice(15..15, skesk);
            }),
        ];
        for (what, edit) in edits {
            let crafted = rearmoured(&armored, edit);
            let started = std::time::Instant::now();
            let result = decrypt_symmetric_salted(PASSWORD, salt, crafted.as_bytes());
            assert!(matches!(result, Err(DecryptError::NotOurs(_))), "{what}: {result:?}");
            assert!(started.elapsed() < std::time::Duration::from_millis(50), "{what}");
        }
        let other_salt = rearmoured(&armored, |b| b[6] ^= 1);
        assert!(matches!(
            decrypt_symmetric_salted(PASSWORD, salt, other_salt.as_bytes()),
            Err(DecryptError::WrongKey)
        ));
    }

    #[test]
    fn an_armour_larger_than_any_payload_is_refused_unopened() {
        let salt = [4u8; 8];
        let armored = encrypt_symmetric_salted(PASSWORD, salt, b"p").expect("seal");
        let padded = rearmoured(&armored, |b| b.extend(std::iter::repeat_n(0u8, 40 * 1024)));
        assert!(matches!(
            decrypt_symmetric_salted(PASSWORD, salt, padded.as_bytes()),
            Err(DecryptError::NotOurs(_))
        ));
    }

    #[test]
    fn oversize_plaintext_is_capped() {
        let big = vec![0u8; MAX_PLAINTEXT + 10];
        let armored = sealed(&big);
        assert!(armored.len() < 64 * 1024, "compressed");
        match decrypt_symmetric(PASSWORD, armored.as_bytes()) {
            Err(DecryptError::Damaged(e)) => assert!(e.contains("exceeds"), "{e}"),
            other => panic!("{:?}", other.map(|v| v.len())),
        }
    }

    #[test]
    fn armour_decoder() {
        assert_eq!(crc24(b""), 0xB704CE);
        assert_eq!(base64_decode(b"SGVsbG8gd29ybGQh").as_deref(), Some(&b"Hello world!"[..]));
        assert_eq!(base64_decode(b"SGk=").as_deref(), Some(&b"Hi"[..]));
        assert_eq!(base64_decode(b"SA==").as_deref(), Some(&b"H"[..]));
        assert_eq!(base64_decode(b"SA=").as_deref(), None);
        assert_eq!(base64_decode(b"S").as_deref(), None);
        assert_eq!(base64_decode(b"S*==").as_deref(), None);
        assert_eq!(base64_decode(b"SB==").as_deref(), None, "non-zero pad bits");
        assert_eq!(base64_decode(b"SGl=").as_deref(), None, "non-zero pad bits");
        // Sequoia's own armour, with a header, decodes and its CRC checks.
        let mut w = armor::Writer::with_headers(Vec::new(), armor::Kind::File, [("Key", "Value")])
            .expect("armor");
        w.write_all(&[7u8; 100]).expect("write");
        let text = w.finalize().expect("armor");
        let block = next_armor_block(&text, "PGP ARMORED FILE", 0).expect("found");
        assert_eq!(block.data.expect("decodes"), vec![7u8; 100]);
    }

    #[test]
    fn user_id_addresses() {
        assert_eq!(
            addr_spec("Test Remailer testmix1 <testmix1@localhost>").as_deref(),
            Some("testmix1@localhost")
        );
        assert_eq!(addr_spec("Remailer@Example.ORG").as_deref(), Some("remailer@example.org"));
        assert_eq!(addr_spec("<a@b> (comment)").as_deref(), Some("a@b"));
        assert_eq!(addr_spec("no address here"), None);
        assert_eq!(addr_spec("Name <not an address>"), None);
        assert_eq!(addr_spec("Name <a@b@c>"), None);
    }

    #[test]
    fn text_mode_line_ends() {
        assert_eq!(canonical_text(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
        assert_eq!(canonical_text(b""), b"");
    }

    #[test]
    #[allow(deprecated)]
    fn cipher_choice() {
        use SymmetricAlgorithm::*;
        assert_eq!(choose_cipher(None), TripleDES);
        assert_eq!(choose_cipher(Some(&[IDEA])), TripleDES);
        assert_eq!(choose_cipher(Some(&[IDEA, CAST5, TripleDES])), CAST5);
        assert_eq!(choose_cipher(Some(&[CAST5, AES128, TripleDES])), CAST5);
        assert_eq!(choose_cipher(Some(&[AES256, AES192])), AES256);
        assert_eq!(choose_cipher(Some(&[Unknown(99), AES128])), AES128);
        assert_eq!(cipher_name(TripleDES), "3DES");
    }

    #[test]
    fn parse_certs_ignores_non_keys() {
        assert!(parse_certs(b"").is_empty());
        assert!(parse_certs(b"just some text").is_empty());
        let broken =
            b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n";
        let parsed = parse_certs(broken);
        assert_eq!(parsed.len(), 1);
        assert!(parsed[0].is_err());
    }

    #[test]
    fn encrypt_to_non_key_fails_cleanly() {
        let now = SystemTime::now();
        assert!(matches!(encrypt_to_cert("", b"x", now), Err(PgpError::NoKey)));
        assert!(
            encrypt_to_cert("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n", b"x", now).is_err()
        );
    }

    /// Random bytes, base64-armoured with a valid CRC so they reach the OpenPGP parsers.
    fn armour(kind: armor::Kind, data: &[u8]) -> Vec<u8> {
        let mut w = armor::Writer::new(Vec::new(), kind).expect("armor");
        w.write_all(data).expect("write");
        w.finalize().expect("armor")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_certs(&data);
            let _ = decrypt_symmetric(PASSWORD, &data);
            let _ = encrypt_to_cert(&String::from_utf8_lossy(&data), b"x", SystemTime::now());
        }

        #[test]
        fn armoured_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_certs(&armour(armor::Kind::PublicKey, &data));
            let result = decrypt_symmetric(PASSWORD, &armour(armor::Kind::Message, &data));
            prop_assert!(result.is_err());
        }

        #[test]
        fn mutated_messages_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)
        ) {
            let message = sealed(b"payload payload payload");
            let block = next_armor_block(message.as_bytes(), MESSAGE_BLOCK, 0).expect("armour");
            let mut binary = block.data.expect("decodes");
            for (at, byte) in edits {
                let i = at.index(binary.len());
                binary[i] = byte;
            }
            // Re-armoured with a fresh CRC: only the OpenPGP layer can notice.
            let _ = decrypt_symmetric(PASSWORD, &armour(armor::Kind::Message, &binary));
        }
    }
}
