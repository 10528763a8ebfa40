//! YAMN's primitives (`yamn.md` §1): BLAKE2s-256 and BLAKE2s-16, AES-256-CTR with a 128-bit
//! big-endian counter, and the NaCl box (X25519, XSalsa20-Poly1305) of a header slot.

use blake2::digest::{Update, VariableOutput};
use blake2::{Blake2s256, Blake2sVar, Digest};
use crypto_box::aead::AeadInPlace;
use crypto_box::aead::generic_array::GenericArray;
use ctr::cipher::{KeyIvInit, StreamCipher};

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// BLAKE2s-256, unkeyed (the anti-tag and the armour digest).
pub fn blake2s256(data: &[u8]) -> [u8; 32] {
    Blake2s256::digest(data).into()
}

/// A key ID: BLAKE2s with a 16-byte digest length in its parameter block (not a truncated
/// BLAKE2s-256) of the 32-byte public key (`keymgr/public.go: makeKeyID`).
pub fn key_id(public: &[u8; 32]) -> [u8; 16] {
    let mut hash = Blake2sVar::new(16).expect("16 is a valid BLAKE2s output length");
    hash.update(public);
    let mut out = [0u8; 16];
    hash.finalize_variable(&mut out).expect("the buffer is the requested length");
    out
}

/// XORs `buf` with the AES-256-CTR keystream for `key` and the first counter block `iv`.
pub fn aes_ctr(key: &[u8; 32], iv: &[u8; 16], buf: &mut [u8]) {
    let mut cipher = Aes256Ctr::new(key.into(), iv.into());
    cipher.apply_keystream(buf);
}

/// The 16-byte IV of counter `c` from a 12-byte partial IV: `P[0..4] ‖ LE32(c) ‖ P[4..12]`
/// (`packet.go: seqIV`).
pub fn seq_iv(partial: &[u8; 12], counter: u32) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..4].copy_from_slice(&partial[..4]);
    iv[4..8].copy_from_slice(&counter.to_le_bytes());
    iv[8..].copy_from_slice(&partial[4..]);
    iv
}

/// The X25519 public key of a secret key (stored unclamped; X25519 clamps).
pub fn public_of(secret: &[u8; 32]) -> [u8; 32] {
    *crypto_box::SecretKey::from(*secret).public_key().as_bytes()
}

/// `crypto_box` of `plain` for `recipient` from `sender_secret` with `nonce`: the Poly1305 tag
/// first, then the ciphertext, as NaCl lays it out.
pub fn seal(
    recipient: &[u8; 32],
    sender_secret: &[u8; 32],
    nonce: &[u8; 24],
    plain: &[u8],
) -> Vec<u8> {
    let salsa = crypto_box::SalsaBox::new(
        &crypto_box::PublicKey::from(*recipient),
        &crypto_box::SecretKey::from(*sender_secret),
    );
    let mut body = plain.to_vec();
    let tag = salsa
        .encrypt_in_place_detached(GenericArray::from_slice(nonce), b"", &mut body)
        .expect("XSalsa20-Poly1305 seals any length below 256 GiB");
    let mut out = tag.to_vec();
    out.extend_from_slice(&body);
    out
}

/// Opens a box sealed by [`seal`]: None when it does not authenticate.
pub fn open(
    sender_public: &[u8; 32],
    recipient_secret: &[u8; 32],
    nonce: &[u8; 24],
    sealed: &[u8],
) -> Option<Vec<u8>> {
    if sealed.len() < 16 {
        return None;
    }
    let salsa = crypto_box::SalsaBox::new(
        &crypto_box::PublicKey::from(*sender_public),
        &crypto_box::SecretKey::from(*recipient_secret),
    );
    let (tag, body) = sealed.split_at(16);
    let mut body = body.to_vec();
    salsa
        .decrypt_in_place_detached(
            GenericArray::from_slice(nonce),
            b"",
            &mut body,
            GenericArray::from_slice(tag),
        )
        .ok()?;
    Some(body)
}
