//! The decrypting half of the packet's primitives (the encrypting half is the pinger's,
//! `crate::compose::mixmaster::crypto`).

use crate::compose::mixmaster::crypto::{NotBlockAligned, to_fixed_be};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use num_bigint::BigUint;

type TdesCbcDec = cbc::Decryptor<des::TdesEde3>;

/// 3DES-EDE-CBC decryption in place, no padding (`data.len()` must be a multiple of 8).
pub fn des3_cbc_decrypt(
    key: &[u8; 24],
    iv: &[u8; 8],
    data: &mut [u8],
) -> Result<(), NotBlockAligned> {
    TdesCbcDec::new(key.into(), iv.into())
        .decrypt_padded_mut::<NoPadding>(data)
        .map(|_| ())
        .map_err(|_| NotBlockAligned)
}

/// Removes PKCS#1 v1.5 block type 2 padding; `None` if the block is malformed.
pub fn pkcs1_v15_unpad(em: &[u8]) -> Option<&[u8]> {
    if em.len() < 11 || em[0] != 0 || em[1] != 2 {
        return None;
    }
    let zero = em[2..].iter().position(|&b| b == 0)? + 2;
    if zero - 2 < 8 {
        return None;
    }
    Some(&em[zero + 1..])
}

/// The CRT components of an RSA private key.
pub struct CrtKey<'a> {
    pub n: &'a BigUint,
    pub p: &'a BigUint,
    pub q: &'a BigUint,
    pub dmp1: &'a BigUint,
    pub dmq1: &'a BigUint,
    pub iqmp: &'a BigUint,
}

/// Raw RSA private operation with the CRT, as `k` bytes; `None` if `c >= n`.
///
/// This is variable-time bignum arithmetic (num-bigint). It is acceptable here because the
/// private operation serves only the tests and the test remailer double, never secret keys that
/// protect anything: a pinger only ever builds packets (public operation).
pub fn rsa_private_crt(key: &CrtKey<'_>, c: &[u8], k: usize) -> Option<Vec<u8>> {
    let c = BigUint::from_bytes_be(c);
    if &c >= key.n {
        return None;
    }
    let m1 = (&c % key.p).modpow(key.dmp1, key.p);
    let m2 = (&c % key.q).modpow(key.dmq1, key.q);
    // h = iqmp * (m1 - m2) mod p, computed without going negative.
    let m2_mod_p = &m2 % key.p;
    let diff = if m1 >= m2_mod_p { m1 - m2_mod_p } else { m1 + key.p - m2_mod_p };
    let h = (key.iqmp * diff) % key.p;
    let m = m2 + h * key.q;
    to_fixed_be(&m, k)
}
