//! A remailer's secret key from `secring.mix`.

use crate::compose::mixmaster::key::{
    BEGIN, SIZES, check_public, parse_key_id, read_base64_to_end,
};
use crate::compose::mixmaster::{KeyError, PublicKey, crypto as shared, hex};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use num_bigint::BigUint;

use super::crypto::{self, CrtKey};

/// A remailer's secret key from `secring.mix`. Used by the tests and the test remailer double
/// to decode packets; a pinger never needs one.
#[derive(Clone)]
pub struct SecretKey {
    public: PublicKey,
    d: BigUint,
    p: BigUint,
    q: BigUint,
    dmp1: BigUint,
    dmq1: BigUint,
    iqmp: BigUint,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({:?})", self.public)
    }
}

impl SecretKey {
    /// Reads every key of a `secring.mix` (spec §2.3) and decrypts it with `passphrase`
    /// (3DES-CBC, key `MD5(passphrase)` as two-key 3DES, IV given in the block). Each key must
    /// satisfy `p·q = n` and hash to its key ID; a wrong passphrase shows up as one of these.
    pub fn parse_secring(text: &str, passphrase: &str) -> Result<Vec<SecretKey>, KeyError> {
        let mut lines = text.lines().map(|l| l.trim_end());
        let mut keys = Vec::new();
        while lines.by_ref().any(|l| l == BEGIN) {
            keys.push(Self::parse_block(&mut lines, passphrase)?);
        }
        if keys.is_empty() {
            return Err(KeyError::NoKeyBlock);
        }
        Ok(keys)
    }

    fn parse_block<'a>(
        lines: &mut impl Iterator<Item = &'a str>,
        passphrase: &str,
    ) -> Result<SecretKey, KeyError> {
        // Optional "Created:"/"Expires:" lines (any line with a colon), then the key ID.
        let id_line =
            lines.find(|l| !l.is_empty() && !l.contains(':')).ok_or(KeyError::Truncated)?;
        let key_id = parse_key_id(id_line)?;
        let zero = lines.next().ok_or(KeyError::Truncated)?;
        if zero.trim() != "0" {
            return Err(KeyError::UnsupportedSecring(zero.chars().take(40).collect()));
        }
        let iv_line = lines.next().ok_or(KeyError::Truncated)?;
        let iv: [u8; 8] = STANDARD
            .decode(iv_line.trim().as_bytes())
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(KeyError::BadBase64)?;
        let mut data = read_base64_to_end(lines)?;
        let pass = shared::md5(passphrase.as_bytes());
        let mut key = [0u8; 24];
        key[..16].copy_from_slice(&pass);
        key[16..].copy_from_slice(&pass[..8]);
        crypto::des3_cbc_decrypt(&key, &iv, &mut data).map_err(|_| KeyError::BadSecretKey)?;
        let secret = Self::from_plaintext(&data)?;
        if secret.public.key_id() != key_id {
            return Err(KeyError::KeyIdMismatch {
                stated: hex(&key_id),
                computed: secret.public.key_id_hex(),
            });
        }
        Ok(secret)
    }

    /// The decrypted secret key: size, n, e, d (bits/8 bytes each), then p, q, dmp1, dmq1,
    /// iqmp (half that, rounded up), trailing padding ignored.
    fn from_plaintext(data: &[u8]) -> Result<SecretKey, KeyError> {
        let Some((size, mut rest)) = data.split_first_chunk::<2>() else {
            return Err(KeyError::BadSecretKey);
        };
        let bits = usize::from(u16::from_le_bytes(*size));
        if !SIZES.contains(&bits) {
            return Err(KeyError::BadSecretKey);
        }
        let nb = bits / 8;
        let hb = nb.div_ceil(2);
        let mut take = |len: usize| -> Result<BigUint, KeyError> {
            let (head, tail) = rest.split_at_checked(len).ok_or(KeyError::BadSecretKey)?;
            rest = tail;
            Ok(BigUint::from_bytes_be(head))
        };
        let n = take(nb)?;
        let e = take(nb)?;
        let d = take(nb)?;
        let p = take(hb)?;
        let q = take(hb)?;
        let dmp1 = take(hb)?;
        let dmq1 = take(hb)?;
        let iqmp = take(hb)?;
        if &p * &q != n {
            return Err(KeyError::BadSecretKey);
        }
        check_public(&n, &e, bits).map_err(|_| KeyError::BadSecretKey)?;
        let public = PublicKey::from_parts(n, e).map_err(|_| KeyError::BadSecretKey)?;
        Ok(SecretKey { public, d, p, q, dmp1, dmq1, iqmp })
    }

    /// Builds a secret key from its primes and public exponent (tests, key generation for the
    /// remailer double). `p·q` must have one of the supported sizes.
    pub fn from_primes(p: BigUint, q: BigUint, e: BigUint) -> Result<SecretKey, KeyError> {
        let n = &p * &q;
        let bits = usize::try_from(n.bits()).map_err(|_| KeyError::BadModulus)?;
        if !SIZES.contains(&bits) {
            return Err(KeyError::UnsupportedSize(bits));
        }
        check_public(&n, &e, bits)?;
        let one = BigUint::from(1u8);
        let (pm1, qm1) = (&p - &one, &q - &one);
        let phi = &pm1 * &qm1;
        let d = e.modinv(&phi).ok_or(KeyError::BadExponent)?;
        let iqmp = q.modinv(&p).ok_or(KeyError::BadModulus)?;
        let public = PublicKey::from_parts(n, e)?;
        Ok(SecretKey { dmp1: &d % &pm1, dmq1: &d % &qm1, public, d, p, q, iqmp })
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public.clone()
    }

    /// The key ID of the public half.
    pub fn key_id(&self) -> [u8; 16] {
        self.public.key_id()
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.public.bits()
    }

    /// The private exponent (for completeness; decryption uses the CRT components).
    pub fn d(&self) -> &BigUint {
        &self.d
    }

    pub fn p(&self) -> &BigUint {
        &self.p
    }

    pub fn q(&self) -> &BigUint {
        &self.q
    }

    /// Raw RSA private operation on a ciphertext of the modulus length (CRT, variable time: see
    /// [`crypto::rsa_private_crt`]). `None` if the ciphertext is not below the modulus.
    pub fn raw_decrypt(&self, c: &[u8]) -> Option<Vec<u8>> {
        let crt = CrtKey {
            n: self.public.n(),
            p: &self.p,
            q: &self.q,
            dmp1: &self.dmp1,
            dmq1: &self.dmq1,
            iqmp: &self.iqmp,
        };
        crypto::rsa_private_crt(&crt, c, self.public.bits() / 8)
    }
}
