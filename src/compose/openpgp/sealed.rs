//! The payload's symmetric layer: sealed under a password with a tag-bound salt, and opened
//! again telling forged returns from damaged ones, at bounded cost.

use super::*;

/// Encrypts a ping payload under `password`, shaped like `gpg --symmetric --armor` output: one
/// SKESK4 whose S2K-derived key is the session key itself (no encrypted session key, as gpg
/// does), Iterated+Salted S2K with SHA-256 and a random salt, AES-256, SEIPDv1 with MDC, a ZIP
/// compressed literal packet, armour without headers.
///
/// The S2K count is deliberately small (`S2K_HASH_BYTES`): the password carries 256 bits of
/// entropy, so stretching it adds no security, and [`decrypt_symmetric`] must stay cheap.
pub fn encrypt_symmetric(password: &[u8], plaintext: &[u8], date: i64) -> Result<String, PgpError> {
    let mut salt = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
    encrypt_symmetric_salted(password, salt, plaintext, date)
}

/// [`encrypt_symmetric`] with a chosen S2K salt. The pinger derives the salt from its secret
/// and the ping's tag, so [`decrypt_symmetric_salted`] can tell its own (possibly damaged)
/// messages from ones made without the secret: the salt travels in clear, looks random to
/// everyone else, and cannot be produced for a tag without the secret.
pub fn encrypt_symmetric_salted(
    password: &[u8],
    salt: [u8; 8],
    plaintext: &[u8],
    date: i64,
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
            .date(UNIX_EPOCH + std::time::Duration::from_secs(date.max(0) as u64))
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

pub(super) fn decrypt_symmetric_unguarded(
    password: &[u8],
    text: &[u8],
) -> Result<Vec<u8>, DecryptError> {
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
pub(super) fn seipd_end(binary: &[u8], start: usize) -> Option<usize> {
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
pub(super) struct SealedHeader {
    /// New-format tag 3 (0xC3) and its one-byte length.
    pub(super) skesk_tag_and_length: [u8; 2],
    /// SKESK version, cipher, S2K type and hash.
    pub(super) skesk_params: [u8; 4],
    pub(super) salt: [u8; 8],
    /// The coded S2K count.
    pub(super) count: u8,
    /// The tag byte of the packet after the SKESK.
    pub(super) next_tag: u8,
}

impl SealedHeader {
    pub(super) fn ours(salt: [u8; 8]) -> SealedHeader {
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
pub(super) const S2K_CODED_COUNT: u8 = 0x60;

/// Reads the leading SKESK and the next packet's tag from the first 24 base64 characters
/// (18 bytes) of an armour body.
pub(super) fn sealed_header(base64: &[u8]) -> Option<SealedHeader> {
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

/// Tries our password on the message's SKESKs and records in `opened` whether one produced a
/// session key that passed sequoia's trial decryption: that is the WrongKey/Damaged boundary.
pub(super) struct SymHelper<'a> {
    pub(super) password: Password,
    pub(super) opened: &'a Cell<bool>,
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
