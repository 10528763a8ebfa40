//! The mail armour of a YAMN packet (`yamn.md` §5): written exactly as YAMN 0.2.7 writes it,
//! read as leniently as its remailers read it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::PACKET_LEN;
use super::crypto::blake2s256;

/// What a YAMN remailer writes as its type.
pub const REMAILER_TYPE: &str = "yamn-0.2.7";
const BEGIN: &str = "-----BEGIN REMAILER MESSAGE-----";
const END: &str = "-----END REMAILER MESSAGE-----";

/// Why an armoured packet was not read (the remailer drops such a mail with a log line).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArmorError {
    #[error("no `::` line")]
    NoColons,
    #[error("no -----BEGIN REMAILER MESSAGE----- line")]
    NoBegin,
    #[error("the length line is not a number")]
    BadLength,
    #[error("the digest line is not 64 hex digits")]
    BadDigestLine,
    #[error("no -----END REMAILER MESSAGE----- line")]
    NoEnd,
    #[error("bad base64")]
    BadBase64,
    #[error("{0} bytes, expected 20480")]
    WrongSize(usize),
    #[error("incorrect payload digest")]
    DigestMismatch,
}

/// The armour of `packet` (`utils.go: armor`): `::`, the type line, an empty line, the begin
/// marker, the length, the BLAKE2s-256 hex digest, base64 in 64-character lines, the end
/// marker; every line ending in LF.
pub fn armor(packet: &[u8]) -> String {
    let b64 = STANDARD.encode(packet);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 200);
    out.push_str("::\nRemailer-Type: ");
    out.push_str(REMAILER_TYPE);
    out.push_str("\n\n");
    out.push_str(BEGIN);
    out.push('\n');
    out.push_str(&packet.len().to_string());
    out.push('\n');
    out.push_str(&crate::compose::payload::hex(&blake2s256(packet)));
    out.push('\n');
    // Base64 output is ASCII, so any byte boundary is a character boundary.
    for line in b64.as_bytes().chunks(64) {
        out.extend(line.iter().map(|&b| char::from(b)));
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// The packet in a mail (whole message or body), as `utils.go: stripArmor` reads it: lines
/// before `::` ignored, then up to the begin marker; the length line, a 64-hex digest line,
/// base64 lines up to the end marker; CR stripped; the length and digest checked.
pub fn dearmor(text: &str) -> Result<Vec<u8>, ArmorError> {
    let mut lines = text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l));
    lines.by_ref().find(|l| *l == "::").ok_or(ArmorError::NoColons)?;
    lines.by_ref().find(|l| *l == BEGIN).ok_or(ArmorError::NoBegin)?;
    let stated: usize =
        lines.next().and_then(|l| l.trim().parse().ok()).ok_or(ArmorError::BadLength)?;
    let digest = lines.next().ok_or(ArmorError::BadDigestLine)?;
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ArmorError::BadDigestLine);
    }
    let mut b64 = String::with_capacity(28_000);
    let mut ended = false;
    for line in lines {
        if line == END {
            ended = true;
            break;
        }
        // Bounded: a packet's base64 is 27308 characters.
        if b64.len() + line.len() > 2 * PACKET_LEN {
            return Err(ArmorError::WrongSize(b64.len() * 3 / 4));
        }
        b64.push_str(line);
    }
    if !ended {
        return Err(ArmorError::NoEnd);
    }
    let packet = STANDARD.decode(b64.as_bytes()).map_err(|_| ArmorError::BadBase64)?;
    if packet.len() != stated || packet.len() != PACKET_LEN {
        return Err(ArmorError::WrongSize(packet.len()));
    }
    if !crate::compose::payload::hex(&blake2s256(&packet)).eq_ignore_ascii_case(digest) {
        return Err(ArmorError::DigestMismatch);
    }
    Ok(packet)
}
