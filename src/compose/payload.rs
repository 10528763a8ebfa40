//! The ping payload: what travels through the remailers and comes back to us.
//!
//! A payload says which ping it is (decision 5) and carries two checks:
//! - `mac`: HMAC-SHA256 under the pinger secret over the ping's identity, send time and tag.
//!   Nobody without the secret can make one, so a return whose MAC fails is *forged*.
//! - `digest`: SHA-256 of every byte above it, padding included. A return whose digest fails
//!   was altered on the way: it is *corrupted* and counts as not delivered (the end points
//!   decide whether a transfer worked, seed `end-to-end-arguments.txt`).
//!
//! Random padding of 0..4 KiB makes every ping a different size, and the whole text is then
//! OpenPGP-encrypted under a key derived from the secret (decision 6, [`payload_password`]),
//! so a remailer sees an ordinary encrypted message and cannot single pings out.
//!
//! Text layout (LF line ends; field order fixed, parsing is strict):
//! ```text
//! fathometer-payload: 1
//! kind: ping | chain | self-check | replay-probe
//! id: <ping row id>
//! hop1: <address> <type> <key id>          (absent for self-check)
//! hop2: <address> <type> <key id>          (chain only)
//! with-from: 0 | 1
//! sent: <unix seconds>
//! tag: <return address tag>
//! mac: <64 hex>
//! -----BEGIN PADDING-----
//! <hex, 64 per line>
//! -----END PADDING-----
//! digest: <64 hex>
//! ```

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};

use crate::model::PingType;

type HmacSha256 = Hmac<Sha256>;

const MAGIC: &str = "fathometer-payload: 1";
/// Padding is 0..MAX_PADDING bytes (hex-encoded: twice that many characters).
pub const MAX_PADDING: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    Ping,
    Chain,
    SelfCheck,
    /// A replay-protection probe: one type II hop, like a single ping, but never a ping.
    ReplayProbe,
}

impl PayloadKind {
    fn as_str(self) -> &'static str {
        match self {
            PayloadKind::Ping => "ping",
            PayloadKind::Chain => "chain",
            PayloadKind::SelfCheck => "self-check",
            PayloadKind::ReplayProbe => "replay-probe",
        }
    }

    fn parse(s: &str) -> Option<PayloadKind> {
        match s {
            "ping" => Some(PayloadKind::Ping),
            "chain" => Some(PayloadKind::Chain),
            "self-check" => Some(PayloadKind::SelfCheck),
            "replay-probe" => Some(PayloadKind::ReplayProbe),
            _ => None,
        }
    }
}

/// One hop of a ping: the remailer's address, the ping type and the key used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub address: String,
    pub ping_type: PingType,
    pub key_id: String,
}

/// What a payload asserts. The MAC covers every field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFields {
    pub kind: PayloadKind,
    pub id: i64,
    pub hops: Vec<Hop>,
    pub with_from: bool,
    pub sent: i64,
    pub tag: String,
}

impl PayloadFields {
    /// The bytes the MAC is computed over: every field, NUL-separated, so no two different
    /// field lists share an encoding (addresses and key ids never contain NUL).
    fn mac_input(&self) -> Vec<u8> {
        let mut s = format!("fathometer-mac-v1\0{}\0{}\0", self.kind.as_str(), self.id);
        for h in &self.hops {
            let _ = write!(s, "{}\0{}\0{}\0", h.address, h.ping_type.as_str(), h.key_id);
        }
        let _ = write!(s, "{}\0{}\0{}", u8::from(self.with_from), self.sent, self.tag);
        s.into_bytes()
    }

    pub fn mac(&self, secret: &[u8]) -> String {
        hex(&hmac(secret, &self.mac_input()))
    }
}

/// Builds the plaintext payload; `rng` supplies the padding (its length and bytes).
pub fn render(fields: &PayloadFields, secret: &[u8], rng: &mut impl RngCore) -> String {
    let mut s = String::with_capacity(400 + 2 * MAX_PADDING);
    let _ = writeln!(s, "{MAGIC}");
    let _ = writeln!(s, "kind: {}", fields.kind.as_str());
    let _ = writeln!(s, "id: {}", fields.id);
    for (i, h) in fields.hops.iter().enumerate() {
        let _ = writeln!(s, "hop{}: {} {} {}", i + 1, h.address, h.ping_type.as_str(), h.key_id);
    }
    let _ = writeln!(s, "with-from: {}", u8::from(fields.with_from));
    let _ = writeln!(s, "sent: {}", fields.sent);
    let _ = writeln!(s, "tag: {}", fields.tag);
    let _ = writeln!(s, "mac: {}", fields.mac(secret));
    s.push_str("-----BEGIN PADDING-----\n");
    let mut padding = vec![0u8; rng.gen_range(0..MAX_PADDING)];
    rng.fill_bytes(&mut padding);
    for chunk in padding.chunks(32) {
        s.push_str(&hex(chunk));
        s.push('\n');
    }
    s.push_str("-----END PADDING-----\n");
    let digest = hex(&Sha256::digest(s.as_bytes()));
    let _ = writeln!(s, "digest: {digest}");
    s
}

/// Why a decrypted payload is not a genuine return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not our layout at all (or truncated before the digest line).
    #[error("not a fathometer payload: {0}")]
    Malformed(String),
    /// Our layout, but the bytes changed on the way.
    #[error("payload digest does not match: altered in transit")]
    DigestMismatch,
    /// Well-formed and intact, but the MAC is not ours.
    #[error("payload MAC does not verify: not made with this pinger's secret")]
    BadMac,
}

/// Checks a decrypted payload: first the digest (was it altered?), then the MAC (is it
/// ours?), and returns the fields it asserts.
pub fn verify(text: &[u8], secret: &[u8]) -> Result<PayloadFields, PayloadError> {
    let malformed = |m: &str| PayloadError::Malformed(m.to_owned());
    let text = std::str::from_utf8(text).map_err(|_| malformed("not UTF-8"))?;
    let text = text.replace("\r\n", "\n");
    if !text.starts_with(MAGIC) {
        return Err(malformed("missing header line"));
    }
    let body_end = text.rfind("digest: ").ok_or_else(|| malformed("no digest line"))?;
    if body_end > 0 && !text[..body_end].ends_with('\n') {
        return Err(malformed("digest line not at the start of a line"));
    }
    let (covered, digest_line) = text.split_at(body_end);
    let claimed = digest_line["digest: ".len()..].trim_end();
    let actual = hex(&Sha256::digest(covered.as_bytes()));
    if !claimed.eq_ignore_ascii_case(&actual) {
        return Err(PayloadError::DigestMismatch);
    }
    let fields = parse_fields(covered).map_err(PayloadError::Malformed)?;
    let (f, mac) = fields;
    let given = unhex(&mac).ok_or_else(|| malformed("mac is not hex"))?;
    // verify_slice compares in constant time: a MAC check must not leak how much matched.
    let mut check = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    check.update(&f.mac_input());
    if check.verify_slice(&given).is_err() {
        return Err(PayloadError::BadMac);
    }
    Ok(f)
}

fn parse_fields(text: &str) -> Result<(PayloadFields, String), String> {
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err("missing header line".into());
    }
    let mut field = |name: &str| -> Result<String, String> {
        let line = lines.next().ok_or_else(|| format!("missing `{name}`"))?;
        line.strip_prefix(name)
            .and_then(|r| r.strip_prefix(": "))
            .map(str::to_owned)
            .ok_or_else(|| format!("expected `{name}:`, found `{}`", truncate(line)))
    };
    let kind = field("kind")?;
    let kind = PayloadKind::parse(&kind).ok_or_else(|| format!("unknown kind `{kind}`"))?;
    let id = field("id")?.parse::<i64>().map_err(|_| "id is not a number".to_owned())?;
    let hop_count = match kind {
        PayloadKind::SelfCheck => 0,
        PayloadKind::Ping | PayloadKind::ReplayProbe => 1,
        PayloadKind::Chain => 2,
    };
    let mut hops = Vec::new();
    for i in 1..=hop_count {
        let hop = field(&format!("hop{i}"))?;
        let parts: Vec<&str> = hop.split(' ').collect();
        let [address, ping_type, key_id] = parts[..] else {
            return Err(format!("hop{i} needs address, type and key id"));
        };
        let ping_type: PingType = ping_type.parse()?;
        hops.push(Hop { address: address.into(), ping_type, key_id: key_id.into() });
    }
    let with_from = match field("with-from")?.as_str() {
        "0" => false,
        "1" => true,
        other => return Err(format!("with-from must be 0 or 1, not `{}`", truncate(other))),
    };
    let sent = field("sent")?.parse::<i64>().map_err(|_| "sent is not a number".to_owned())?;
    let tag = field("tag")?;
    let mac = field("mac")?;
    Ok((PayloadFields { kind, id, hops, with_from, sent, tag }, mac))
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The password of the symmetric OpenPGP layer: derived from the secret, so only we can
/// open a payload, but never the secret itself (a leaked payload key reveals no MAC key).
pub fn payload_password(secret: &[u8]) -> String {
    hex(&hmac(secret, b"fathometer payload encryption key v1"))
}

/// The S2K salt of a ping's symmetric layer: bound to its tag under the secret, so a return
/// can be recognised as ours even when transit damage keeps it from being opened.
pub fn payload_salt(secret: &[u8], tag: &str) -> [u8; 8] {
    let mut salt = [0u8; 8];
    salt.copy_from_slice(&hmac(secret, format!("fathometer s2k salt v1\0{tag}").as_bytes())[..8]);
    salt
}

/// A fresh opaque tag for a return address: 80 random bits in lowercase base-32 (16
/// characters), safe in any local part and unguessable, so a tag cannot be forged.
pub fn new_tag(rng: &mut impl RngCore) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; 10];
    rng.fill_bytes(&mut bytes);
    let mut bits: u128 = 0;
    for b in bytes {
        bits = (bits << 8) | u128::from(b);
    }
    (0..16).map(|i| ALPHABET[((bits >> (75 - 5 * i)) & 31) as usize] as char).collect()
}

/// Whether `s` has the shape [`new_tag`] produces (cheap filter before a database lookup).
pub fn looks_like_tag(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Hex (either case) to bytes; None unless every pair is hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const SECRET: &[u8] = &[7u8; 32];

    fn fields() -> PayloadFields {
        PayloadFields {
            kind: PayloadKind::Chain,
            id: 42,
            hops: vec![
                Hop {
                    address: "a@x.example".into(),
                    ping_type: PingType::CpunkDsa,
                    key_id: "0123456789ABCDEF".into(),
                },
                Hop {
                    address: "b@y.example".into(),
                    ping_type: PingType::CpunkClear,
                    key_id: "none".into(),
                },
            ],
            with_from: false,
            sent: 1_795_228_376,
            tag: "abcdefghijklmnop".into(),
        }
    }

    #[test]
    fn round_trip() {
        let text = render(&fields(), SECRET, &mut StdRng::seed_from_u64(1));
        assert_eq!(verify(text.as_bytes(), SECRET), Ok(fields()));
        // CRLF line ends from a mail system do not matter.
        let crlf = text.replace('\n', "\r\n");
        assert_eq!(verify(crlf.as_bytes(), SECRET), Ok(fields()));
    }

    #[test]
    fn a_changed_byte_is_corruption_and_a_foreign_secret_is_forgery() {
        let text = render(&fields(), SECRET, &mut StdRng::seed_from_u64(2));
        let altered = text.replacen("sent: 1795228376", "sent: 1795228377", 1);
        assert_eq!(verify(altered.as_bytes(), SECRET), Err(PayloadError::DigestMismatch));
        let foreign = render(&fields(), &[8u8; 32], &mut StdRng::seed_from_u64(2));
        assert_eq!(verify(foreign.as_bytes(), SECRET), Err(PayloadError::BadMac));
    }

    #[test]
    fn garbage_is_malformed() {
        for junk in ["", "digest: 00", "hello\nworld", MAGIC] {
            assert!(matches!(verify(junk.as_bytes(), SECRET), Err(PayloadError::Malformed(_))));
        }
    }

    #[test]
    fn tags_are_16_base32_characters() {
        let mut rng = StdRng::seed_from_u64(3);
        let a = new_tag(&mut rng);
        let b = new_tag(&mut rng);
        assert!(looks_like_tag(&a) && looks_like_tag(&b));
        assert_ne!(a, b);
        assert!(!looks_like_tag("ABCDEFGHIJKLMNOP"));
        assert!(!looks_like_tag("abc"));
    }

    #[test]
    fn padding_lengths_vary_within_bounds() {
        let mut rng = StdRng::seed_from_u64(4);
        let lens: Vec<usize> = (0..50).map(|_| render(&fields(), SECRET, &mut rng).len()).collect();
        let (min, max) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
        assert!(max - min > 1000, "padding should vary: {min}..{max}");
        assert!(*max < 400 + 2 * MAX_PADDING + MAX_PADDING / 16);
    }

    proptest! {
        #[test]
        fn verify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = verify(&bytes, SECRET);
        }

        #[test]
        fn any_single_byte_change_is_detected(pos in 0usize..300, delta in 1u8..=255) {
            let text = render(&fields(), SECRET, &mut StdRng::seed_from_u64(5));
            let mut bytes = text.into_bytes();
            let pos = pos % bytes.len();
            bytes[pos] = bytes[pos].wrapping_add(delta);
            prop_assert!(verify(&bytes, SECRET).is_err());
        }
    }
}
