//! Remailer keys: the binary public key and its key ID (spec §2.2), public key entries as found
//! in `pubring.mix`, `key.txt` and remailer-key replies (§2.1), and `secring.mix` (§2.3).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use num_bigint::BigUint;

use super::crypto;
use super::{KeyError, hex};

pub const BEGIN: &str = "-----Begin Mix Key-----";
pub const END: &str = "-----End Mix Key-----";

/// RSA sizes a Mixmaster 3.0.2d key may have.
pub const SIZES: [usize; 4] = [1024, 2048, 3072, 4096];

/// A remailer's RSA public key with its key ID (`MD5(n ‖ e)`, both padded to the modulus length).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key_id: [u8; 16],
    bits: usize,
    n: BigUint,
    e: BigUint,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} bits, key ID {})", self.bits, self.key_id_hex())
    }
}

impl PublicKey {
    /// A public key from its modulus and exponent, checked, with its key ID computed.
    pub fn from_parts(n: BigUint, e: BigUint) -> Result<PublicKey, KeyError> {
        let bits = usize::try_from(n.bits()).map_err(|_| KeyError::BadModulus)?;
        if !SIZES.contains(&bits) {
            return Err(KeyError::UnsupportedSize(bits));
        }
        check_public(&n, &e, bits)?;
        let nb = bits / 8;
        let mut id_input = padded(&n, nb);
        id_input.extend_from_slice(&padded(&e, nb));
        Ok(PublicKey { key_id: crypto::md5(&id_input), bits, n, e })
    }

    /// Parses the binary key of spec §2.2: 2-byte LE size in bits, then `n` and `e`, each
    /// big-endian and `bits/8` bytes long. The size must be 1024, 2048, 3072 or 4096, the length
    /// exactly `2 + 2·bits/8`, the modulus exactly `bits` long and odd, and `e` odd and > 1.
    pub fn from_binary(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        let Some((size, rest)) = bytes.split_first_chunk::<2>() else {
            return Err(KeyError::BadLength { expected: 2, found: bytes.len() });
        };
        let bits = usize::from(u16::from_le_bytes(*size));
        if !SIZES.contains(&bits) {
            return Err(KeyError::UnsupportedSize(bits));
        }
        let nb = bits / 8;
        if rest.len() != 2 * nb {
            return Err(KeyError::BadLength { expected: 2 + 2 * nb, found: bytes.len() });
        }
        let n = BigUint::from_bytes_be(&rest[..nb]);
        let e = BigUint::from_bytes_be(&rest[nb..]);
        check_public(&n, &e, bits)?;
        Ok(PublicKey { key_id: crypto::md5(rest), bits, n, e })
    }

    /// Parses the first `-----Begin Mix Key-----` block in `text` (a `pubring.mix` entry, a
    /// `key.txt` or a remailer-key reply; anything before the marker is ignored). The block is:
    /// the key ID in hex, the length line (informational), base64 up to `-----End Mix Key-----`.
    /// The decoded key must hash to the key ID given in the block.
    pub fn from_entry(text: &str) -> Result<PublicKey, KeyError> {
        let mut lines = text.lines().map(|l| l.trim_end());
        if !lines.by_ref().any(|l| l == BEGIN) {
            return Err(KeyError::NoKeyBlock);
        }
        Self::from_block_lines(&mut lines)
    }

    /// Every `-----Begin Mix Key-----` block in `text`, e.g. a whole `pubring.mix` or a
    /// remailer-key reply carrying several keys. Fails on the first bad block.
    pub fn all_from_text(text: &str) -> Result<Vec<PublicKey>, KeyError> {
        let mut lines = text.lines().map(|l| l.trim_end());
        let mut keys = Vec::new();
        while lines.by_ref().any(|l| l == BEGIN) {
            keys.push(Self::from_block_lines(&mut lines)?);
        }
        if keys.is_empty() {
            return Err(KeyError::NoKeyBlock);
        }
        Ok(keys)
    }

    fn from_block_lines<'a>(
        lines: &mut impl Iterator<Item = &'a str>,
    ) -> Result<PublicKey, KeyError> {
        let id_line = lines.find(|l| !l.is_empty()).ok_or(KeyError::Truncated)?;
        let key_id = parse_key_id(id_line)?;
        // The length line: informational only (the client skips it too).
        lines.next().ok_or(KeyError::Truncated)?;
        let binary = read_base64_to_end(lines)?;
        let key = PublicKey::from_binary(&binary)?;
        if key.key_id != key_id {
            return Err(KeyError::KeyIdMismatch {
                stated: hex(&key_id),
                computed: key.key_id_hex(),
            });
        }
        Ok(key)
    }

    /// The key ID, `MD5(n ‖ e)`.
    pub fn key_id(&self) -> [u8; 16] {
        self.key_id
    }

    /// The key ID as 32 lowercase hex digits, as written in `pubring.mix`.
    pub fn key_id_hex(&self) -> String {
        hex(&self.key_id)
    }

    /// The modulus size in bits: 1024, 2048, 3072 or 4096.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// The modulus.
    pub fn n(&self) -> &BigUint {
        &self.n
    }

    /// The public exponent.
    pub fn e(&self) -> &BigUint {
        &self.e
    }

    /// The binary form of spec §2.2 (the inverse of [`PublicKey::from_binary`]).
    pub fn to_binary(&self) -> Vec<u8> {
        let nb = self.bits / 8;
        let mut out = Vec::with_capacity(2 + 2 * nb);
        // `bits` is one of SIZES, so it fits in a u16.
        out.extend_from_slice(&(self.bits as u16).to_le_bytes());
        out.extend_from_slice(&padded(&self.n, nb));
        out.extend_from_slice(&padded(&self.e, nb));
        out
    }

    /// Slots this key's header section takes: 1 for 1024 bits, 2 for the large-key format.
    pub fn slots(&self) -> usize {
        if self.bits == 1024 { 1 } else { 2 }
    }
}

/// Checks a public key's parts: an odd modulus of exactly `bits` bits, an odd exponent
/// between 1 and the modulus.
pub fn check_public(n: &BigUint, e: &BigUint, bits: usize) -> Result<(), KeyError> {
    let one = BigUint::from(1u8);
    if n.bits() != bits as u64 || !n.bit(0) {
        return Err(KeyError::BadModulus);
    }
    if e <= &one || !e.bit(0) || e >= n {
        return Err(KeyError::BadExponent);
    }
    Ok(())
}

/// `x` as exactly `len` big-endian bytes.
pub fn padded(x: &BigUint, len: usize) -> Vec<u8> {
    // Only called with values known to fit (parsed from `len` bytes or reduced mod n).
    crypto::to_fixed_be(x, len).unwrap_or_default()
}

/// A key ID line: 32 hex digits.
pub fn parse_key_id(line: &str) -> Result<[u8; 16], KeyError> {
    let line = line.trim();
    let bad = || KeyError::BadKeyId(line.chars().take(40).collect());
    if line.len() != 32 {
        return Err(bad());
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = line
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(bad)?;
    }
    Ok(id)
}

/// Concatenates lines up to the end marker and decodes them as base64.
pub fn read_base64_to_end<'a>(
    lines: &mut impl Iterator<Item = &'a str>,
) -> Result<Vec<u8>, KeyError> {
    let mut b64 = String::new();
    for line in lines {
        if line == END {
            return STANDARD.decode(b64.as_bytes()).map_err(|_| KeyError::BadBase64);
        }
        if b64.len() > 16_384 {
            break;
        }
        b64.push_str(line.trim());
    }
    Err(KeyError::Truncated)
}
