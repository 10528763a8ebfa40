//! Reading remailer keys: certificates out of keyrings and mail bodies, under the policy
//! scoped to remailer keys.

use super::*;

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
pub fn parse_certs(text: &[u8], now: i64) -> Vec<Result<RemailerCert, PgpError>> {
    // As in decrypt_symmetric: a parser panic on hostile input becomes an error entry.
    std::panic::catch_unwind(|| parse_certs_unguarded(text, now)).unwrap_or_else(|_| {
        vec![Err(PgpError::Malformed("the OpenPGP parser failed on this input".into()))]
    })
}

pub(super) fn parse_certs_unguarded(text: &[u8], now: i64) -> Vec<Result<RemailerCert, PgpError>> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut found = false;
    while let Some(block) = next_armor_block(text, PUBLIC_KEY_BLOCK, pos) {
        found = true;
        pos = block.next;
        match block.data {
            Ok(binary) => parse_binary_certs(&binary, now, &mut out),
            Err(e) => out.push(Err(PgpError::Malformed(e))),
        }
    }
    if !found && looks_like_binary_openpgp(text) {
        parse_binary_certs(text, now, &mut out);
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

/// The policy for remailer keys: sequoia's standard policy evaluated at `now`, plus the old
/// algorithms real remailers still use. Scoped to key handling and encryption in this module;
/// what we decrypt (our own symmetric returns) stays under the standard policy.
pub(super) fn relaxed_policy(now: SystemTime) -> StandardPolicy<'static> {
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

pub(super) fn parse_binary_certs(
    binary: &[u8],
    now: i64,
    out: &mut Vec<Result<RemailerCert, PgpError>>,
) {
    match CertParser::from_bytes(binary) {
        Ok(parser) => {
            for cert in parser.take(MAX_CERTS_PER_BLOCK) {
                out.push(
                    cert.map_err(|e| PgpError::Malformed(format!("{e:#}")))
                        .and_then(|c| describe_cert(&c, now)),
                );
            }
        }
        Err(e) => out.push(Err(PgpError::Malformed(format!("{e:#}")))),
    }
}

/// Binary keyrings start with a packet tag byte: bit 7 set, and for old-format tags a public
/// key (6) or secret key (5) packet; new format 0xC5/0xC6.
pub(super) fn looks_like_binary_openpgp(text: &[u8]) -> bool {
    matches!(text.first(), Some(0x98..=0x99) | Some(0x94..=0x95) | Some(0xC5) | Some(0xC6))
}

pub(super) fn describe_cert(cert: &Cert, now: i64) -> Result<RemailerCert, PgpError> {
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

    let now = UNIX_EPOCH + std::time::Duration::from_secs(now.max(0) as u64);
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
pub(super) fn addr_spec(user_id: &str) -> Option<String> {
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

pub(super) fn read_one_cert(text: &[u8]) -> Result<Cert, PgpError> {
    let binary = match next_armor_block(text, PUBLIC_KEY_BLOCK, 0) {
        Some(block) => block.data.map_err(PgpError::Malformed)?,
        None if looks_like_binary_openpgp(text) => text.to_vec(),
        None => return Err(PgpError::NoKey),
    };
    Cert::from_bytes(&binary).map_err(|e| PgpError::Malformed(format!("{e:#}")))
}
