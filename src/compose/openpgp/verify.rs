//! Verifying a cleartext-signed text (`gpg --clearsign`) against a remailer's admin key: how
//! remailer operators announce downtime.
//!
//! Admin keys are as old as the remailers' other keys (DSA-1024, SHA-1 self-signatures), so
//! the key is judged under the relaxed policy; the signature over the text itself must use a
//! hash that is still collision resistant (SHA-2), since whoever can find a collision could
//! move a signature to another text.

use sq::parse::stream::{GoodChecksum, MessageLayer, VerifierBuilder};

use super::*;

/// The most of a signed text read; an announcement is a few lines.
pub const MAX_SIGNED_TEXT: usize = 16 * 1024;
/// The most of a mail searched for the signed block, and of an admin-key reply read.
const MAX_INPUT: usize = 256 * 1024;
/// A signature may be this far in our future (the signer's clock runs ahead).
const CLOCK_SKEW_SECS: i64 = 3600;

const SIGNED_BEGIN: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const SIGNATURE_END: &str = "-----END PGP SIGNATURE-----";

/// A text whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedText {
    pub text: String,
    /// The fingerprint of the signing certificate, upper-case hex.
    pub signer: String,
    /// The signature's creation time, unix seconds.
    pub signed_at: i64,
}

#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum VerifyError {
    #[error("no cleartext-signed block (-----BEGIN PGP SIGNED MESSAGE-----)")]
    NotSigned,
    #[error("no usable admin key: {0}")]
    NoKey(String),
    #[error("the signature does not verify against the admin key: {0}")]
    BadSignature(String),
    #[error("malformed signed message: {0}")]
    Malformed(String),
}

/// The first cleartext-signed block of `text`, from its BEGIN line to its END line.
pub fn signed_block(text: &str) -> Option<&str> {
    let text = &text[..floor_boundary(text, MAX_INPUT)];
    let start = text.find(SIGNED_BEGIN)?;
    let end = start + text[start..].find(SIGNATURE_END)? + SIGNATURE_END.len();
    Some(&text[start..end])
}

fn floor_boundary(s: &str, max: usize) -> usize {
    let mut cut = s.len().min(max);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

struct Helper {
    certs: Vec<Cert>,
    verified: Option<(String, i64)>,
    failure: Option<String>,
}

impl VerificationHelper for Helper {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> sq::Result<Vec<Cert>> {
        Ok(self.certs.clone())
    }

    fn check(&mut self, structure: MessageStructure) -> sq::Result<()> {
        for layer in structure {
            let MessageLayer::SignatureGroup { results } = layer else { continue };
            for result in results {
                match result {
                    Ok(GoodChecksum { sig, ka, .. }) => {
                        let hash = sig.hash_algo();
                        if !matches!(
                            hash,
                            HashAlgorithm::SHA256 | HashAlgorithm::SHA384 | HashAlgorithm::SHA512
                        ) {
                            self.failure = Some(format!(
                                "signed with {hash}; sign with SHA-256 or better \
                                 (gpg --digest-algo SHA256)"
                            ));
                            continue;
                        }
                        let Some(created) = sig.signature_creation_time() else {
                            self.failure = Some("the signature has no creation time".into());
                            continue;
                        };
                        self.verified =
                            Some((ka.cert().fingerprint().to_hex(), unix_seconds(created)));
                        return Ok(());
                    }
                    Err(e) => self.failure = Some(e.to_string()),
                }
            }
        }
        Err(anyhow::anyhow!(self.failure.clone().unwrap_or_else(|| "no signature".into())))
    }
}

/// Verifies the cleartext-signed `block` ([`signed_block`]) against the certificates of
/// `admin_keys` (the text of an admin-key reply: armoured key blocks with prose around them)
/// as of `now`. Never panics on hostile input.
pub fn verify_clearsigned(
    block: &str,
    admin_keys: &str,
    now: i64,
) -> Result<VerifiedText, VerifyError> {
    std::panic::catch_unwind(|| verify_unguarded(block, admin_keys, now))
        .unwrap_or_else(|_| Err(VerifyError::Malformed("the OpenPGP parser failed".into())))
}

fn verify_unguarded(block: &str, admin_keys: &str, now: i64) -> Result<VerifiedText, VerifyError> {
    if !block.starts_with(SIGNED_BEGIN) {
        return Err(VerifyError::NotSigned);
    }
    if block.len() > MAX_INPUT {
        return Err(VerifyError::Malformed("larger than an announcement".into()));
    }
    let mut certs = Vec::new();
    let keys = admin_keys.as_bytes();
    let mut pos = 0;
    while let Some(found) =
        next_armor_block(&keys[..keys.len().min(MAX_INPUT)], PUBLIC_KEY_BLOCK, pos)
    {
        pos = found.next;
        if let Ok(binary) = found.data
            && let Ok(parser) = CertParser::from_bytes(&binary)
        {
            certs.extend(parser.take(16).filter_map(Result::ok));
        }
    }
    if certs.is_empty() {
        return Err(VerifyError::NoKey("no OpenPGP key in the admin-key reply".into()));
    }
    let at = UNIX_EPOCH + std::time::Duration::from_secs((now + CLOCK_SKEW_SECS).max(0) as u64);
    let policy = relaxed_policy(at);
    let helper = Helper { certs, verified: None, failure: None };
    let mut verifier = VerifierBuilder::from_bytes(block.as_bytes())
        .map_err(|e| VerifyError::Malformed(format!("{e:#}")))?
        .with_policy(&policy, Some(at), helper)
        .map_err(|e| VerifyError::BadSignature(format!("{e:#}")))?;
    let mut text = Vec::new();
    (&mut verifier)
        .take(MAX_SIGNED_TEXT as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|e| VerifyError::BadSignature(format!("{e:#}")))?;
    if text.len() > MAX_SIGNED_TEXT {
        return Err(VerifyError::Malformed("the signed text is too long".into()));
    }
    if !verifier.message_processed() {
        return Err(VerifyError::Malformed("the signed text is incomplete".into()));
    }
    let helper = verifier.into_helper();
    let (signer, signed_at) = helper.verified.ok_or_else(|| {
        VerifyError::BadSignature(helper.failure.unwrap_or_else(|| "no signature".into()))
    })?;
    let text = String::from_utf8(text)
        .map_err(|_| VerifyError::Malformed("the signed text is not UTF-8".into()))?;
    Ok(VerifiedText { text, signer, signed_at })
}

#[cfg(test)]
mod tests {
    use sq::serialize::stream::Signer;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn at(t: i64) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_secs(t as u64)
    }

    fn admin_key() -> (Cert, String) {
        let (cert, _) = CertBuilder::new()
            .add_userid("Remailer Admin <admin@remailer.example>")
            .add_signing_subkey()
            .set_creation_time(at(NOW - 86_400))
            .generate()
            .unwrap();
        let mut sink = armor::Writer::new(Vec::new(), armor::Kind::PublicKey).unwrap();
        cert.serialize(&mut sink).unwrap();
        let armoured = String::from_utf8(sink.finalize().unwrap()).unwrap();
        (cert, format!("Here is my admin key:\n\n{armoured}\n-- \nthe remailer\n"))
    }

    fn clearsign(cert: &Cert, text: &str, hash: HashAlgorithm, when: i64) -> String {
        let policy = StandardPolicy::new();
        let keypair = cert
            .keys()
            .with_policy(&policy, at(when))
            .secret()
            .for_signing()
            .next()
            .unwrap()
            .key()
            .clone()
            .into_keypair()
            .unwrap();
        let mut out = Vec::new();
        let message = Message::new(&mut out);
        let mut signer = Signer::with_template(
            message,
            keypair,
            sq::packet::signature::SignatureBuilder::new(sq::types::SignatureType::Text),
        )
        .unwrap()
        .hash_algo(hash)
        .unwrap()
        .creation_time(at(when))
        .cleartext()
        .build()
        .unwrap();
        signer.write_all(text.as_bytes()).unwrap();
        signer.finalize().unwrap();
        String::from_utf8(out).unwrap()
    }

    const TEXT: &str = "Fathometer-Downtime: 1\nRemailer: mix@remailer.example\nReason: disks\n";

    #[test]
    fn a_clearsigned_text_verifies_against_the_admin_key() {
        let (cert, reply) = admin_key();
        let signed = clearsign(&cert, TEXT, HashAlgorithm::SHA256, NOW - 60);
        let mail = format!("Hello,\n\n{signed}\nbye\n");
        let block = signed_block(&mail).unwrap();
        let v = verify_clearsigned(block, &reply, NOW).unwrap();
        assert!(v.text.contains("Remailer: mix@remailer.example"), "{}", v.text);
        assert_eq!(v.signer, cert.fingerprint().to_hex());
        assert_eq!(v.signed_at, NOW - 60);
    }

    #[test]
    fn another_key_an_altered_text_or_a_weak_hash_is_refused() {
        let (cert, reply) = admin_key();
        let (other, _) = admin_key();
        let by_other = clearsign(&other, TEXT, HashAlgorithm::SHA256, NOW);
        assert!(matches!(
            verify_clearsigned(&by_other, &reply, NOW),
            Err(VerifyError::BadSignature(_))
        ));
        let altered = clearsign(&cert, TEXT, HashAlgorithm::SHA256, NOW).replace("disks", "sun");
        assert!(matches!(
            verify_clearsigned(&altered, &reply, NOW),
            Err(VerifyError::BadSignature(_))
        ));
        let sha1 = clearsign(&cert, TEXT, HashAlgorithm::SHA1, NOW);
        let err = verify_clearsigned(&sha1, &reply, NOW).unwrap_err();
        assert!(err.to_string().contains("SHA-256"), "{err}");
        assert_eq!(verify_clearsigned("hello", &reply, NOW), Err(VerifyError::NotSigned));
        let signed = clearsign(&cert, TEXT, HashAlgorithm::SHA256, NOW);
        assert!(matches!(
            verify_clearsigned(&signed, "no key here", NOW),
            Err(VerifyError::NoKey(_))
        ));
        let future = clearsign(&cert, TEXT, HashAlgorithm::SHA256, NOW + 7200);
        assert!(verify_clearsigned(&future, &reply, NOW).is_err(), "signed two hours ahead");
    }

    #[test]
    fn hostile_signed_blocks_never_panic() {
        let (_, reply) = admin_key();
        for junk in [
            "-----BEGIN PGP SIGNED MESSAGE-----\n\n-----END PGP SIGNATURE-----",
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nx\n-----BEGIN PGP SIGNATURE-----\n\n!!!!\n-----END PGP SIGNATURE-----",
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: MD5\n\nx\n-----BEGIN PGP SIGNATURE-----\n\nwsBcBAEBCAAQBQJ\n-----END PGP SIGNATURE-----",
        ] {
            assert!(verify_clearsigned(junk, &reply, NOW).is_err());
        }
    }
}
