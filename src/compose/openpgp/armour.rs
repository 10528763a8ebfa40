//! Our own ASCII-armour reader: it checks the CRC-24 (sequoia ignores it) and tolerates the
//! CRLF line ends, trailing blanks and prose of mail bodies.

/// One armour block found in a text.
pub(super) struct ArmorBlock {
    /// Decoded contents, or why the armour is broken.
    pub(super) data: Result<Vec<u8>, String>,
    /// The base64 text as found (CRC line excluded), for a look at damaged armour.
    pub(super) body: Vec<u8>,
    /// Where to continue searching for the next block.
    pub(super) next: usize,
}

/// Finds the next "-----BEGIN <label>-----" at or after `from` and decodes its body.
///
/// Our own decoder instead of sequoia's armour reader, because we need the CRC-24 verified
/// (sequoia ignores it, per RFC 9580) to call transit damage Damaged, and because mail bodies
/// bring CRLF line ends, trailing blanks and prose around the block. Headers ("Version:" etc.)
/// are skipped; the CRC line is optional; a missing END line is an error.
pub(super) fn next_armor_block(text: &[u8], label: &str, from: usize) -> Option<ArmorBlock> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = from + find(text.get(from..)?, begin.as_bytes())?;
    let after_begin = start + begin.len();

    let mut base64: Vec<u8> = Vec::new();
    let mut crc_line: Option<Vec<u8>> = None;
    let mut in_headers = true;
    let mut pos = after_begin;
    // Rest of the BEGIN line (normally empty).
    let first_nl = text[pos..].iter().position(|&b| b == b'\n');
    pos = match first_nl {
        Some(i) => pos + i + 1,
        None => {
            return Some(ArmorBlock {
                data: Err("truncated armour: nothing after BEGIN line".into()),
                next: text.len(),
                body: Vec::new(),
            });
        }
    };
    while pos < text.len() {
        let line_end = text[pos..].iter().position(|&b| b == b'\n').map_or(text.len(), |i| pos + i);
        let next_line = (line_end + 1).min(text.len());
        let line = text[pos..line_end].trim_ascii();
        if line.starts_with(b"-----") {
            if line == end.as_bytes() {
                let data = decode_body(&base64, crc_line.as_deref());
                return Some(ArmorBlock { data, next: next_line, body: base64 });
            }
            // Another armour line before our END: this block was cut off. Resume there.
            return Some(ArmorBlock {
                data: Err("truncated armour: no END line".into()),
                next: pos,
                body: base64,
            });
        }
        if in_headers {
            if line.is_empty() {
                in_headers = false;
                pos = next_line;
                continue;
            }
            if line.contains(&b':') {
                pos = next_line;
                continue;
            }
            // No blank line after BEGIN: tolerate, this is already body.
            in_headers = false;
        }
        if line.first() == Some(&b'=') {
            crc_line = Some(line[1..].to_vec());
        } else if crc_line.is_none() {
            base64.extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
        } else if !line.is_empty() {
            return Some(ArmorBlock {
                data: Err("bad armour: data after the checksum line".into()),
                next: next_line,
                body: base64,
            });
        }
        pos = next_line;
    }
    Some(ArmorBlock {
        data: Err("truncated armour: no END line".into()),
        next: text.len(),
        body: base64,
    })
}

pub(super) fn decode_body(base64: &[u8], crc_line: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let data = base64_decode(base64).ok_or("bad armour: invalid base64")?;
    if let Some(crc) = crc_line {
        let expected = base64_decode(crc)
            .filter(|c| c.len() == 3)
            .ok_or("bad armour: malformed checksum line")?;
        let expected = u32::from_be_bytes([0, expected[0], expected[1], expected[2]]);
        if crc24(&data) != expected {
            return Err("bad armour: CRC-24 checksum mismatch".into());
        }
    }
    Ok(data)
}

/// Strict standard base64: '=' padding only at the end, and the unused low bits of a final
/// partial group must be zero, so that every changed character is noticed.
pub(super) fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    // Strict about the unused bits of the last character (no encoder sets them: a set bit
    // is a changed character). Padding, when present, must be exact; some armour writers
    // leave it out altogether.
    const fn engine(padding: DecodePaddingMode) -> GeneralPurpose {
        GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new()
                .with_decode_allow_trailing_bits(false)
                .with_decode_padding_mode(padding),
        )
    }
    const PADDED: GeneralPurpose = engine(DecodePaddingMode::RequireCanonical);
    const UNPADDED: GeneralPurpose = engine(DecodePaddingMode::RequireNone);
    let engine = if input.ends_with(b"=") { &PADDED } else { &UNPADDED };
    engine.decode(input).ok()
}

/// OpenPGP's CRC-24 (RFC 4880 §6.1).
pub(super) fn crc24(data: &[u8]) -> u32 {
    let mut crc: u32 = 0x00B7_04CE;
    for &b in data {
        crc ^= u32::from(b) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x0100_0000 != 0 {
                crc ^= 0x0186_4CFB;
            }
        }
    }
    crc & 0x00FF_FFFF
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
