//! The packet decoder: what a Mixmaster 3.0.2d remailer does with a packet (spec §1.6, §1.9).
//! Used by the tests and the test remailer double; a pinger only builds packets.
//!
//! Replay and age checks need the remailer's `id.log` and are left to the caller: the packet ID
//! and the timestamp are in [`HopFields`].

use std::io::Read;

use crate::compose::mixmaster::crypto::{self as shared, ChainedCfb};
use crate::compose::mixmaster::{
    BODY_LEN, Draw, HEADER_LEN, MAX_PAYLOAD, MixRandom, PACKET_LEN, SECTION_LEN, hex,
};

use super::crypto;
use super::{DecodeError, SecretKey};

/// Largest user data [`decode_packet`] and [`join_parts`] inflate (16 MiB); more is an error.
pub const MAX_INFLATED: usize = 16 << 20;

const FIELD_LEN: usize = 80;
const TIMESTAMP_MARKER: &[u8; 5] = b"0000\0";

/// The result of decoding one packet with the receiving remailer's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Type 0: forward `next_packet` (20480 bytes; section 20 is a fresh [`Draw::NextHopPad`])
    /// to `next_address`.
    Intermediate { next_address: String, next_packet: Vec<u8>, fields: HopFields },
    /// Type 1: a complete message to deliver.
    Final { payload: DecodedPayload, fields: HopFields },
    /// Type 2: part `chunk` of `nchunks` of message `message_id`; see [`join_parts`].
    Partial {
        chunk: u8,
        nchunks: u8,
        message_id: [u8; 16],
        payload_part: Vec<u8>,
        fields: HopFields,
    },
}

impl Decoded {
    /// The decoded fields of the hop, whatever the packet type.
    pub fn fields(&self) -> &HopFields {
        match self {
            Decoded::Intermediate { fields, .. }
            | Decoded::Final { fields, .. }
            | Decoded::Partial { fields, .. } => fields,
        }
    }
}

/// A complete message's payload (spec §1.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedPayload {
    /// Destination fields, cut at the first NUL (lossy UTF-8).
    pub destinations: Vec<String>,
    /// Header fields, cut at the first NUL (lossy UTF-8).
    pub headers: Vec<String>,
    /// The user data, inflated if it was compressed.
    pub user_data: Vec<u8>,
    /// Whether the user data started with the gzip magic `1f 8b` and was inflated.
    pub user_data_was_gzip: bool,
}

/// The large-key values of a hop (spec §1.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeKeyFields {
    pub hmac_key: [u8; 64],
    /// HMAC over packet bytes 1024..2047 (random on a final hop).
    pub hmac_next_headers: [u8; 32],
    pub hmac_body: [u8; 32],
    pub hmac_328: [u8; 32],
    pub aes_pre_key: [u8; 32],
    pub aes_header_key: [u8; 32],
    pub aes_body_key: [u8; 32],
    pub aes_tte_key: [u8; 32],
    /// IV0, the first 16 bytes of `HMAC(hk, "aes-iv" ‖ pk)`.
    pub aes_iv: [u8; 16],
    /// The shared CFB register after the 328-byte block.
    pub aes_iv_after_328: [u8; 16],
    /// The shared CFB register after the body.
    pub aes_iv_after_body: [u8; 16],
}

/// Every field of a decoded hop, named as in the vectors' `*.decoded.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopFields {
    pub keyid: [u8; 16],
    /// 128 for 1024-bit keys, 2/3/4 for 2048/3072/4096.
    pub rsa_len_byte: u8,
    pub header_iv: [u8; 8],
    /// 512, or 1024 for a large key.
    pub header_section_len: usize,
    /// Random bytes at the end of the section.
    pub header_pad_len: usize,
    /// The PKCS#1 v1.5 encoded message after the raw RSA operation.
    pub rsa_em: Vec<u8>,
    /// 24 bytes (session key) or 216 (large key).
    pub rsa_plaintext: Vec<u8>,
    pub large_key: Option<LargeKeyFields>,
    pub session_key: [u8; 24],
    pub decrypted_328: [u8; 328],
    pub packet_id: [u8; 16],
    pub des_key: [u8; 24],
    pub packet_type: u8,
    /// Type 0: the 19 IVs.
    pub ivs: Option<Vec<[u8; 8]>>,
    /// Type 0: the next hop's address.
    pub next_addr: Option<String>,
    /// Type 2.
    pub chunk: Option<u8>,
    /// Type 2.
    pub nchunks: Option<u8>,
    /// Types 1 and 2.
    pub message_id: Option<[u8; 16]>,
    /// Types 1 and 2 (type 0 uses the 19th IV).
    pub body_iv: Option<[u8; 8]>,
    pub timestamp_offset: usize,
    pub timestamp_days: u16,
    pub digest: [u8; 16],
    pub digest_offset: usize,
    /// Always true: a packet whose digest does not match is rejected.
    pub digest_ok: bool,
    /// Random bytes after the digest.
    pub random_pad_len: usize,
    /// Large-key type 0: the HMAC over packet bytes 1024..2047 matched (always true when
    /// present: a mismatch is rejected).
    pub next_headers_hmac_ok: Option<bool>,
    /// Types 1 and 2: the body's 4-byte LE length field.
    pub body_length_field: Option<u32>,
    /// Types 1 and 2: the payload bytes of this packet.
    pub payload: Option<Vec<u8>>,
}

fn arr<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// Decodes `packet` as the remailer holding `keys` would (spec §1.6, §1.9), with today being
/// day `today_days` since 1970-01-01 UTC. Rejects: a length other than 20480, an unknown key
/// ID, an RSA length byte that does not fit the key, bad RSA padding or a plaintext that is not
/// 24 (1024-bit) or 216 (large key) bytes, any large-key HMAC mismatch ("antitagging"), an
/// unknown packet type, a missing timestamp marker, a timestamp after today, a digest mismatch,
/// and a body length or payload that does not parse. For type 0 it builds the next packet
/// exactly as the remailer does, with `rng` filling the new section 20 ([`Draw::NextHopPad`]).
pub fn decode_packet(
    packet: &[u8],
    keys: &[SecretKey],
    today_days: i64,
    rng: &mut dyn MixRandom,
) -> Result<Decoded, DecodeError> {
    if packet.len() != PACKET_LEN {
        return Err(DecodeError::BadLength(packet.len()));
    }
    let keyid: [u8; 16] = arr(&packet[..16]);
    let key =
        keys.iter().find(|k| k.key_id() == keyid).ok_or(DecodeError::UnknownKey(hex(&keyid)))?;
    let bits = key.bits();
    let large = bits != 1024;
    let rsa_len_byte = packet[16];
    let expected_byte = if large { bits / 1024 } else { 0x80 };
    if usize::from(rsa_len_byte) != expected_byte {
        return Err(DecodeError::BadRsaLengthByte { byte: rsa_len_byte, bits });
    }
    let k = bits / 8;
    // k <= 512, so every offset below stays inside the 1024-byte section.
    let rsa_em = key.raw_decrypt(&packet[17..17 + k]).ok_or(DecodeError::BadRsa)?;
    let rsa_plaintext = crypto::pkcs1_v15_unpad(&rsa_em).ok_or(DecodeError::BadRsa)?.to_vec();
    let expected_len = if large { 216 } else { 24 };
    if rsa_plaintext.len() != expected_len {
        return Err(DecodeError::BadSessionKeyLength {
            expected: expected_len,
            found: rsa_plaintext.len(),
        });
    }
    let session_key: [u8; 24] = arr(&rsa_plaintext);
    let header_iv: [u8; 8] = arr(&packet[17 + k..]);
    let mut block: [u8; 328] = arr(&packet[25 + k..]);
    let header_section_len = if large { 2 * SECTION_LEN } else { SECTION_LEN };
    let header_pad_len = header_section_len - (353 + k);
    let mut body = packet[HEADER_LEN..].to_vec();

    // Large keys: check the body and block HMACs, then undo AES on the block and the body.
    let mut large_state = None;
    if large {
        let hmac_key: [u8; 64] = arr(&rsa_plaintext[24..]);
        let hmac_next_headers: [u8; 32] = arr(&rsa_plaintext[88..]);
        let hmac_body: [u8; 32] = arr(&rsa_plaintext[120..]);
        let hmac_328: [u8; 32] = arr(&rsa_plaintext[152..]);
        let aes_pre_key: [u8; 32] = arr(&rsa_plaintext[184..]);
        if !shared::ct_eq(&shared::hmac_sha256(&hmac_key, &[&body]), &hmac_body) {
            return Err(DecodeError::Antitagging("body"));
        }
        if !shared::ct_eq(&shared::hmac_sha256(&hmac_key, &[&block]), &hmac_328) {
            return Err(DecodeError::Antitagging("328-byte block"));
        }
        let aes = shared::derive_aes_keys(&hmac_key, &aes_pre_key);
        let mut cfb = ChainedCfb::new(aes.iv);
        cfb.decrypt(&aes.tte, &mut block);
        let aes_iv_after_328 = cfb.register();
        cfb.decrypt(&aes.body, &mut body);
        let aes_iv_after_body = cfb.register();
        let fields = LargeKeyFields {
            hmac_key,
            hmac_next_headers,
            hmac_body,
            hmac_328,
            aes_pre_key,
            aes_header_key: aes.header,
            aes_body_key: aes.body,
            aes_tte_key: aes.tte,
            aes_iv: aes.iv,
            aes_iv_after_328,
            aes_iv_after_body,
        };
        large_state = Some((fields, cfb));
    }

    crypto::des3_cbc_decrypt(&session_key, &header_iv, &mut block).map_err(|_| ALIGN)?;
    let decrypted_328 = block;
    let packet_id: [u8; 16] = arr(&block);
    let des_key: [u8; 24] = arr(&block[16..]);
    let packet_type = block[40];
    let timestamp_offset = match packet_type {
        0 => 273,
        1 => 65,
        2 => 67,
        other => return Err(DecodeError::UnknownPacketType(other)),
    };
    if &block[timestamp_offset..timestamp_offset + 5] != TIMESTAMP_MARKER {
        return Err(DecodeError::MissingTimestamp);
    }
    let timestamp_days = u16::from_le_bytes(arr(&block[timestamp_offset + 5..]));
    if i64::from(timestamp_days) > today_days {
        return Err(DecodeError::FutureTimestamp { days: timestamp_days, today: today_days });
    }
    let digest_offset = timestamp_offset + 7;
    let digest: [u8; 16] = arr(&block[digest_offset..]);
    if shared::md5(&block[..digest_offset]) != digest {
        return Err(DecodeError::DigestMismatch);
    }

    let mut fields = HopFields {
        keyid,
        rsa_len_byte,
        header_iv,
        header_section_len,
        header_pad_len,
        rsa_em,
        rsa_plaintext,
        large_key: large_state.as_ref().map(|(f, _)| f.clone()),
        session_key,
        decrypted_328,
        packet_id,
        des_key,
        packet_type,
        ivs: None,
        next_addr: None,
        chunk: None,
        nchunks: None,
        message_id: None,
        body_iv: None,
        timestamp_offset,
        timestamp_days,
        digest,
        digest_offset,
        digest_ok: true,
        random_pad_len: 328 - digest_offset - 16,
        next_headers_hmac_ok: None,
        body_length_field: None,
        payload: None,
    };

    if packet_type == 0 {
        let ivs: Vec<[u8; 8]> = block[41..193].chunks(8).map(arr).collect();
        let next_address = parse_address(&block[193..273])?;
        let start = header_section_len;
        let mut next_packet = Vec::with_capacity(PACKET_LEN);
        next_packet.extend_from_slice(&packet[start..start + 19 * SECTION_LEN]);
        if let Some((large_fields, mut cfb)) = large_state {
            let expected = shared::hmac_sha256(&large_fields.hmac_key, &[&packet[1024..2048]]);
            if !shared::ct_eq(&expected, &large_fields.hmac_next_headers) {
                return Err(DecodeError::Antitagging("next headers"));
            }
            fields.next_headers_hmac_ok = Some(true);
            // Runs from offset 1024 into the first 512 bytes of the body: the 19th section
            // comes out as garbage, as on a real remailer.
            cfb.decrypt(&large_fields.aes_header_key, &mut next_packet);
        }
        for (section, iv) in next_packet.chunks_mut(SECTION_LEN).zip(&ivs) {
            crypto::des3_cbc_decrypt(&des_key, iv, section).map_err(|_| ALIGN)?;
        }
        let mut pad = [0u8; SECTION_LEN];
        rng.fill(Draw::NextHopPad, &mut pad);
        next_packet.extend_from_slice(&pad);
        crypto::des3_cbc_decrypt(&des_key, &ivs[18], &mut body).map_err(|_| ALIGN)?;
        next_packet.extend_from_slice(&body);
        fields.ivs = Some(ivs);
        fields.next_addr = Some(next_address.clone());
        return Ok(Decoded::Intermediate { next_address, next_packet, fields });
    }

    let (message_id, body_iv): ([u8; 16], [u8; 8]) = if packet_type == 1 {
        (arr(&block[41..]), arr(&block[57..]))
    } else {
        let (chunk, nchunks) = (block[41], block[42]);
        if chunk == 0 || chunk > nchunks {
            return Err(DecodeError::BadChunk { chunk, nchunks });
        }
        fields.chunk = Some(chunk);
        fields.nchunks = Some(nchunks);
        (arr(&block[43..]), arr(&block[59..]))
    };
    fields.message_id = Some(message_id);
    fields.body_iv = Some(body_iv);
    crypto::des3_cbc_decrypt(&des_key, &body_iv, &mut body).map_err(|_| ALIGN)?;
    let length = u32::from_le_bytes(arr(&body));
    let len = usize::try_from(length).unwrap_or(usize::MAX);
    if len > MAX_PAYLOAD || 4 + len > BODY_LEN {
        return Err(DecodeError::BadBodyLength(length));
    }
    let payload = body[4..4 + len].to_vec();
    fields.body_length_field = Some(length);
    fields.payload = Some(payload.clone());
    if packet_type == 1 {
        let payload = parse_payload(&payload)?;
        Ok(Decoded::Final { payload, fields })
    } else {
        let (chunk, nchunks) = (block[41], block[42]);
        Ok(Decoded::Partial { chunk, nchunks, message_id, payload_part: payload, fields })
    }
}

const ALIGN: DecodeError = DecodeError::BadPayload("3DES data not block aligned");

/// The next-hop address: up to the first NUL, CR or LF; non-empty printable ASCII.
fn parse_address(field: &[u8]) -> Result<String, DecodeError> {
    let end = field.iter().position(|&b| b == 0 || b == b'\r' || b == b'\n').unwrap_or(field.len());
    let address = &field[..end];
    if !address.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return Err(DecodeError::BadAddress);
    }
    let address = String::from_utf8_lossy(address).trim().to_string();
    if address.is_empty() {
        return Err(DecodeError::BadAddress);
    }
    Ok(address)
}

fn field_text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Parses a complete payload: `Nd`, destination fields, `Nh`, header fields, user data
/// (inflated if it starts with the gzip magic).
pub fn parse_payload(payload: &[u8]) -> Result<DecodedPayload, DecodeError> {
    let mut rest = payload;
    let mut fields = |what: &'static str| -> Result<Vec<String>, DecodeError> {
        let (&count, tail) = rest.split_first().ok_or(DecodeError::BadPayload(what))?;
        let (raw, tail) = tail
            .split_at_checked(usize::from(count) * FIELD_LEN)
            .ok_or(DecodeError::BadPayload(what))?;
        rest = tail;
        Ok(raw.chunks(FIELD_LEN).map(field_text).collect())
    };
    let destinations = fields("destination fields cut short")?;
    let headers = fields("header fields cut short")?;
    let user_data_was_gzip = rest.starts_with(&[0x1f, 0x8b]);
    let user_data = if user_data_was_gzip { gunzip(rest)? } else { rest.to_vec() };
    Ok(DecodedPayload { destinations, headers, user_data, user_data_was_gzip })
}

/// Inflates gzip as Mixmaster writes it: the gzip header (optional fields honoured), raw
/// deflate, and no CRC32/ISIZE trailer required (anything after the deflate stream is ignored).
fn gunzip(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let bad = |why: &str| DecodeError::Inflate(why.to_string());
    if data.len() < 10 || data[2] != 8 {
        return Err(bad("not a deflate gzip header"));
    }
    let flags = data[3];
    let mut pos = 10usize;
    if flags & 0x04 != 0 {
        let xlen = data.get(pos..pos + 2).ok_or_else(|| bad("truncated FEXTRA"))?;
        pos += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
    }
    for flag in [0x08, 0x10] {
        if flags & flag != 0 {
            let tail = data.get(pos..).ok_or_else(|| bad("truncated header"))?;
            pos += tail.iter().position(|&b| b == 0).ok_or_else(|| bad("unterminated name"))? + 1;
        }
    }
    if flags & 0x02 != 0 {
        pos += 2;
    }
    let deflated = data.get(pos..).ok_or_else(|| bad("truncated header"))?;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(deflated)
        .take(MAX_INFLATED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Inflate(e.to_string()))?;
    if out.len() > MAX_INFLATED {
        return Err(bad("inflated data too large"));
    }
    Ok(out)
}

/// Joins the type 2 parts of one message (any order) and parses the joined payload as a type 1
/// payload (spec §1.6 step 6). Every element must be a [`Decoded::Partial`] of the same message
/// ID and chunk count, and every chunk 1..=n must be present exactly once.
pub fn join_parts(parts: &[Decoded]) -> Result<DecodedPayload, DecodeError> {
    let mut first: Option<([u8; 16], u8)> = None;
    let mut slots: Vec<Option<&[u8]>> = Vec::new();
    for part in parts {
        let Decoded::Partial { chunk, nchunks, message_id, payload_part, .. } = part else {
            return Err(DecodeError::Join("not a type 2 part"));
        };
        match first {
            None => {
                first = Some((*message_id, *nchunks));
                slots = vec![None; usize::from(*nchunks)];
            }
            Some((id, n)) if id != *message_id || n != *nchunks => {
                return Err(DecodeError::Join("parts of different messages"));
            }
            Some(_) => {}
        }
        let slot = usize::from(*chunk)
            .checked_sub(1)
            .and_then(|i| slots.get_mut(i))
            .ok_or(DecodeError::BadChunk { chunk: *chunk, nchunks: *nchunks })?;
        if slot.replace(payload_part).is_some() {
            return Err(DecodeError::Join("duplicate chunk"));
        }
    }
    if first.is_none() {
        return Err(DecodeError::Join("no parts"));
    }
    let mut joined = Vec::new();
    for slot in &slots {
        joined.extend_from_slice(slot.ok_or(DecodeError::Join("missing chunk"))?);
    }
    parse_payload(&joined)
}
