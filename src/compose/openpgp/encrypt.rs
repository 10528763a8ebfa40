//! Encrypting a ping to a remailer key the way 1990s remailer software reads it: v3 PKESK
//! (ElGamal built here: nettle has none), SEIPDv1 with MDC, an old cipher from the key's
//! preferences.

use super::*;

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

/// Picks the key to encrypt to; see [`encrypt_to_cert`] for the rules. Refuses with a specific
/// error when every encryption-capable key is revoked, expired or of an algorithm we lack.
pub(super) fn choose_encryption_key<'a>(
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
pub(super) fn algo_usable(algo: PublicKeyAlgorithm) -> bool {
    algo == ELGAMAL_ENCRYPT || algo.is_supported()
}

/// First preferred cipher we can produce, else 3DES (mandatory to implement in RFC 4880).
#[allow(deprecated)]
pub(super) fn choose_cipher(prefs: Option<&[SymmetricAlgorithm]>) -> SymmetricAlgorithm {
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
pub(super) fn cipher_name(algo: SymmetricAlgorithm) -> String {
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
pub(super) fn canonical_text(plaintext: &[u8]) -> Vec<u8> {
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
pub(super) fn elgamal_pkesk(
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

pub(super) fn fill_nonzero(buf: &mut [u8]) -> Result<(), PgpError> {
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
