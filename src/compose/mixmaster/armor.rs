//! The mail wrapper around a packet (spec §1.10).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{ArmorError, PACKET_LEN, crypto};

/// The `Remailer-Type:` value written by [`armor`], the version Mixmaster 3.0.2d writes.
pub const REMAILER_TYPE: &str = "Mixmaster 3.0.2d";

const BEGIN: &str = "-----BEGIN REMAILER MESSAGE-----";
const END: &str = "-----END REMAILER MESSAGE-----";

/// The mail body carrying `packet`, byte for byte as Mixmaster 3.0.2d writes it:
///
/// ```text
/// ::
/// Remailer-Type: Mixmaster 3.0.2d
///
/// -----BEGIN REMAILER MESSAGE-----
/// 20480
/// <base64 of the MD5 of the packet, 24 characters>
/// <base64 of the packet, 40 characters per line>
/// -----END REMAILER MESSAGE-----
/// ```
///
/// All lines end in LF. The length line states `packet.len()` (always 20480 for a packet from
/// [`super::build_packet`]).
pub fn armor(packet: &[u8]) -> String {
    let b64 = STANDARD.encode(packet);
    let mut out = String::with_capacity(b64.len() + b64.len() / 40 + 200);
    out.push_str("::\nRemailer-Type: ");
    out.push_str(REMAILER_TYPE);
    out.push_str("\n\n");
    out.push_str(BEGIN);
    out.push('\n');
    out.push_str(&packet.len().to_string());
    out.push('\n');
    out.push_str(&STANDARD.encode(crypto::md5(packet)));
    out.push('\n');
    // Base64 output is ASCII, so slicing it at any byte index is safe.
    for line in b64.as_bytes().chunks(40) {
        out.extend(line.iter().map(|&b| char::from(b)));
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// Extracts the first packet from a mail (full message with headers, or just its body), as
/// leniently as a Mixmaster remailer does (spec §1.10):
/// - `Remailer-Type:` (name case-insensitive, value starting with `mixmaster`, any case) must be
///   in the mail header or in a `::` pseudo-header block after it;
/// - the begin marker must be a whole line; lines before it are skipped;
/// - every line after it up to the first line of exactly 24 characters (the MD5) is skipped;
/// - the base64 runs over the following lines while they consist of base64 characters only,
///   and the next line must be the end marker;
/// - CRLF line ends are accepted;
/// - the decoded packet must be 20480 bytes and match the MD5.
pub fn dearmor(mail_text: &str) -> Result<Vec<u8>, ArmorError> {
    let lines: Vec<&str> =
        mail_text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let mut i = 0;
    let mut is_mixmaster = false;
    // The mail header, unless the text starts directly with the body.
    let starts_with_body = lines.first().is_some_and(|l| *l == "::" || *l == BEGIN);
    if !starts_with_body {
        while i < lines.len() && !lines[i].is_empty() {
            is_mixmaster |= is_remailer_type(lines[i]);
            i += 1;
        }
    }
    // Empty lines, then an optional `::` pseudo-header block.
    while i < lines.len() && lines[i].is_empty() {
        i += 1;
    }
    if lines.get(i).is_some_and(|l| l.trim_end() == "::") {
        i += 1;
        while i < lines.len() && !lines[i].is_empty() {
            is_mixmaster |= is_remailer_type(lines[i]);
            i += 1;
        }
    }
    if !is_mixmaster {
        return Err(ArmorError::NotMixmaster);
    }
    while i < lines.len() && lines[i] != BEGIN {
        i += 1;
    }
    if i == lines.len() {
        return Err(ArmorError::NoBeginMarker);
    }
    i += 1;
    while i < lines.len() && lines[i].len() != 24 {
        if lines[i] == END {
            return Err(ArmorError::NoChecksum);
        }
        i += 1;
    }
    let checksum: [u8; 16] = lines
        .get(i)
        .and_then(|l| STANDARD.decode(l.as_bytes()).ok())
        .and_then(|v| v.try_into().ok())
        .ok_or(ArmorError::NoChecksum)?;
    i += 1;
    let mut b64 = String::with_capacity(PACKET_LEN * 4 / 3 + 4);
    while let Some(line) = lines.get(i) {
        if line.is_empty() || !line.bytes().all(is_base64_char) {
            break;
        }
        if b64.len() + line.len() > PACKET_LEN * 4 / 3 + 4 {
            return Err(ArmorError::BadLength(b64.len() / 4 * 3));
        }
        b64.push_str(line);
        i += 1;
    }
    if lines.get(i) != Some(&END) {
        return Err(ArmorError::NoEndMarker);
    }
    let packet = STANDARD.decode(b64.as_bytes()).map_err(|_| ArmorError::BadBase64)?;
    if packet.len() != PACKET_LEN {
        return Err(ArmorError::BadLength(packet.len()));
    }
    if crypto::md5(&packet) != checksum {
        return Err(ArmorError::ChecksumMismatch);
    }
    Ok(packet)
}

fn is_remailer_type(line: &str) -> bool {
    let Some((name, value)) = line.split_once(':') else {
        return false;
    };
    name.eq_ignore_ascii_case("remailer-type")
        && value.trim_start().get(..9).is_some_and(|v| v.eq_ignore_ascii_case("mixmaster"))
}

fn is_base64_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}
