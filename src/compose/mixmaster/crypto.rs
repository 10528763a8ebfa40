//! The primitives of the type II packet (spec §1.1, §1.9): 3DES-CBC without padding, AES-256 in
//! CFB-128 with one feedback register shared by consecutive operations, HMAC-SHA256, MD5, and
//! RSA with PKCS#1 v1.5 encryption padding done by hand, so that the padding bytes come from the
//! caller's [`MixRandom`] (this is what lets vector v6 be rebuilt bit for bit).

use aes::Aes256;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockEncrypt, BlockEncryptMut, KeyInit, KeyIvInit};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use num_bigint::BigUint;
use sha2::Sha256;

use super::{Draw, MixRandom};

type TdesCbcEnc = cbc::Encryptor<des::TdesEde3>;

/// A buffer handed to 3DES-CBC was not a multiple of the 8-byte block size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotBlockAligned;

/// 3DES-EDE-CBC encryption in place, no padding (`data.len()` must be a multiple of 8).
pub fn des3_cbc_encrypt(
    key: &[u8; 24],
    iv: &[u8; 8],
    data: &mut [u8],
) -> Result<(), NotBlockAligned> {
    let len = data.len();
    TdesCbcEnc::new(key.into(), iv.into())
        .encrypt_padded_mut::<NoPadding>(data, len)
        .map(|_| ())
        .map_err(|_| NotBlockAligned)
}

/// AES-256-CFB128 whose 16-byte feedback register survives from one operation to the next, as
/// OpenSSL's `AES_cfb128_encrypt` does when the caller passes the same IV buffer each time and a
/// byte counter that restarts at 0 (spec §1.9, "IV chaining quirk"). Every operation starts by
/// encrypting the register; after an operation whose length is not a multiple of 16 the register
/// holds the last ciphertext bytes followed by the unused keystream bytes.
pub struct ChainedCfb {
    register: [u8; 16],
}

impl ChainedCfb {
    pub fn new(iv: [u8; 16]) -> ChainedCfb {
        ChainedCfb { register: iv }
    }

    /// The register as it stands (the next operation's IV).
    pub fn register(&self) -> [u8; 16] {
        self.register
    }

    pub fn encrypt(&mut self, key: &[u8; 32], data: &mut [u8]) {
        self.run(key, data, true);
    }

    pub fn decrypt(&mut self, key: &[u8; 32], data: &mut [u8]) {
        self.run(key, data, false);
    }

    fn run(&mut self, key: &[u8; 32], data: &mut [u8], encrypt: bool) {
        let cipher = Aes256::new(key.into());
        for chunk in data.chunks_mut(16) {
            cipher.encrypt_block((&mut self.register).into());
            for (byte, reg) in chunk.iter_mut().zip(self.register.iter_mut()) {
                let input = *byte;
                *byte = input ^ *reg;
                // The register takes the ciphertext byte in both directions.
                *reg = if encrypt { *byte } else { input };
            }
        }
    }
}

/// HMAC-SHA256 keyed with the 64-byte large-key HMAC key over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8; 64], parts: &[&[u8]]) -> [u8; 32] {
    // A 64-byte key is exactly SHA-256's block size, so `new` (fixed-size key) is the same as
    // `new_from_slice` and cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new(key.into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

pub fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// The three AES keys and the first IV of a large-key hop (spec §1.9).
pub struct AesKeys {
    pub header: [u8; 32],
    pub body: [u8; 32],
    pub tte: [u8; 32],
    pub iv: [u8; 16],
}

pub fn derive_aes_keys(hmac_key: &[u8; 64], pre_key: &[u8; 32]) -> AesKeys {
    let iv_full = hmac_sha256(hmac_key, &[b"aes-iv", pre_key]);
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&iv_full[..16]);
    AesKeys {
        header: hmac_sha256(hmac_key, &[b"header-crypt", pre_key]),
        body: hmac_sha256(hmac_key, &[b"body-crypt", pre_key]),
        tte: hmac_sha256(hmac_key, &[b"tte-crypt", pre_key]),
        iv,
    }
}

/// Constant-time comparison of two MACs.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// PKCS#1 v1.5 encryption padding (block type 2) of `msg` to `k` bytes:
/// `00 02 PS 00 msg`, PS at least 8 nonzero bytes. Each PS byte is one [`Draw::RsaPadByte`];
/// a zero draw is thrown away and drawn again. Returns `None` if `msg` is too long for `k`.
pub fn pkcs1_v15_pad(k: usize, msg: &[u8], rng: &mut dyn MixRandom) -> Option<Vec<u8>> {
    let ps_len = k.checked_sub(msg.len() + 3)?;
    if ps_len < 8 {
        return None;
    }
    let mut em = Vec::with_capacity(k);
    em.extend_from_slice(&[0, 2]);
    for _ in 0..ps_len {
        let mut byte = [0u8; 1];
        while byte[0] == 0 {
            rng.fill(Draw::RsaPadByte, &mut byte);
        }
        em.push(byte[0]);
    }
    em.push(0);
    em.extend_from_slice(msg);
    Some(em)
}

/// `x` as exactly `k` big-endian bytes (leading zeros kept); `None` if it does not fit.
pub fn to_fixed_be(x: &BigUint, k: usize) -> Option<Vec<u8>> {
    let bytes = x.to_bytes_be();
    let bytes: &[u8] = if bytes == [0] { &[] } else { &bytes };
    let pad = k.checked_sub(bytes.len())?;
    let mut out = vec![0u8; pad];
    out.extend_from_slice(bytes);
    Some(out)
}

/// Raw RSA public operation `em^e mod n`, as `k` bytes.
pub fn rsa_public(n: &BigUint, e: &BigUint, em: &[u8], k: usize) -> Option<Vec<u8>> {
    let m = BigUint::from_bytes_be(em);
    if &m >= n {
        return None;
    }
    to_fixed_be(&m.modpow(e, n), k)
}
