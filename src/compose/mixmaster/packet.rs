//! The packet builder (spec §1.5, §1.8, §1.9).

use super::crypto::{self, ChainedCfb};
use super::{
    BODY_LEN, BuildError, Draw, HEADER_LEN, MAX_PAYLOAD, MAX_SLOTS, MixRandom, PACKET_LEN,
    PublicKey, SECTION_LEN,
};

/// Length of the "other" sections that follow a hop's own section before truncation.
const OTHER_LEN: usize = 19 * SECTION_LEN;
/// Length of a payload field (destination or header), NUL-padded.
const FIELD_LEN: usize = 80;

/// One hop of a chain: the remailer's key, and the address at which that remailer receives
/// mail. The first hop's address is where the caller mails the packet; every later hop's
/// address goes into the previous hop's type 0 block as "next address".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub key: PublicKey,
    pub address: String,
}

/// The message the final hop delivers (spec §1.8): destination fields (e.g. a mail address,
/// `null:`), header fields (e.g. `Subject: ping`), then the user data. Each field is at most 80
/// bytes with no NUL, CR or LF; at most 255 of each. The encoded payload must fit one packet
/// (10236 bytes): the builder never compresses or splits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payload {
    pub destinations: Vec<String>,
    pub headers: Vec<String>,
    pub user_data: Vec<u8>,
}

impl Payload {
    /// The payload bytes: `Nd`, `Nd` × 80 bytes, `Nh`, `Nh` × 80 bytes, user data.
    pub fn encode(&self) -> Result<Vec<u8>, BuildError> {
        let mut out = Vec::new();
        for (kind, fields) in [("destination", &self.destinations), ("header", &self.headers)] {
            let count = u8::try_from(fields.len()).map_err(|_| BuildError::TooManyFields(kind))?;
            out.push(count);
            for field in fields {
                check_field(field).map_err(|reason| BuildError::BadField {
                    field: field.chars().take(100).collect(),
                    reason,
                })?;
                let start = out.len();
                out.extend_from_slice(field.as_bytes());
                out.resize(start + FIELD_LEN, 0);
            }
        }
        out.extend_from_slice(&self.user_data);
        if out.len() > MAX_PAYLOAD {
            return Err(BuildError::PayloadTooLarge(out.len()));
        }
        Ok(out)
    }
}

fn check_field(field: &str) -> Result<(), &'static str> {
    if field.len() > FIELD_LEN {
        return Err("longer than 80 bytes");
    }
    if field.bytes().any(|b| b == 0 || b == b'\r' || b == b'\n') {
        return Err("contains NUL, CR or LF");
    }
    Ok(())
}

/// Builds a packet for `chain` (first hop first) carrying `payload` to the final hop, dated as
/// the Mixmaster client does: each hop's timestamp is `today_days` minus a random 0..=3 days
/// (one [`Draw::TimestampFuzz`] per hop). `today_days` is the current day since 1970-01-01 UTC.
///
/// The chain must have at least one hop and need at most 20 header slots (a 1024-bit hop takes
/// one, a larger key two; see [`slots_needed`] for the one exception). Returns the 20480 packet bytes, to be mailed to `chain[0].address`
/// inside [`super::armor`].
pub fn build_packet(
    chain: &[Hop],
    payload: &Payload,
    today_days: i64,
    rng: &mut dyn MixRandom,
) -> Result<Vec<u8>, BuildError> {
    build(chain, payload, Dating::Fuzzed(today_days), rng)
}

/// As [`build_packet`], but every hop is dated exactly `timestamp_days` and no fuzz is drawn
/// (this is how the v6 vector was made).
pub fn build_packet_dated(
    chain: &[Hop],
    payload: &Payload,
    timestamp_days: i64,
    rng: &mut dyn MixRandom,
) -> Result<Vec<u8>, BuildError> {
    build(chain, payload, Dating::Exact(timestamp_days), rng)
}

/// Header slots a chain needs; [`build_packet`] refuses chains needing more than 20.
///
/// Each 1024-bit hop takes one 512-byte slot and each larger key two (spec §1.9). One more
/// rule: a large-key *intermediate* hop checks an HMAC over its slots 3 and 4 (packet bytes
/// 1024..2047), so those must still be bytes the sender wrote when the packet reaches it, i.e.
/// lie within the original 20 slots: `slots before the hop + 4 <= 20`. This only bites when
/// the chain ends with a large-key hop followed by a 1024-bit final hop and uses exactly 20
/// slots; the slot after the final hop's would then be a section that an earlier remailer
/// filled with random bytes, and the large-key hop would reject the packet ("antitagging").
pub fn slots_needed(chain: &[Hop]) -> usize {
    let mut before = 0;
    let mut needed = 0;
    for (i, hop) in chain.iter().enumerate() {
        if hop.key.slots() == 2 && i + 1 < chain.len() {
            needed = needed.max(before + 4);
        }
        before += hop.key.slots();
    }
    needed.max(before)
}

#[derive(Clone, Copy)]
enum Dating {
    Fuzzed(i64),
    Exact(i64),
}

fn draw<const N: usize>(rng: &mut dyn MixRandom, what: Draw) -> [u8; N] {
    let mut out = [0u8; N];
    rng.fill(what, &mut out);
    out
}

fn draw_vec(rng: &mut dyn MixRandom, what: Draw, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    rng.fill(what, &mut out);
    out
}

fn check_address(hop: usize, address: &str) -> Result<(), BuildError> {
    let reason = if address.is_empty() {
        "empty"
    } else if address.len() > FIELD_LEN {
        "longer than 80 bytes"
    } else if address.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        "not printable ASCII without spaces"
    } else {
        return Ok(());
    };
    Err(BuildError::BadAddress { hop, reason })
}

fn build(
    chain: &[Hop],
    payload: &Payload,
    dating: Dating,
    rng: &mut dyn MixRandom,
) -> Result<Vec<u8>, BuildError> {
    if chain.is_empty() {
        return Err(BuildError::EmptyChain);
    }
    let slots = slots_needed(chain);
    if slots > MAX_SLOTS {
        return Err(BuildError::ChainTooLong { slots });
    }
    for (i, hop) in chain.iter().enumerate().skip(1) {
        check_address(i, &hop.address)?;
    }
    let timestamp = |rng: &mut dyn MixRandom| -> Result<[u8; 2], BuildError> {
        let days = match dating {
            Dating::Exact(days) => days,
            Dating::Fuzzed(today) => today - i64::from(draw::<1>(rng, Draw::TimestampFuzz)[0] & 3),
        };
        u16::try_from(days).map(u16::to_le_bytes).map_err(|_| BuildError::BadTimestamp(days))
    };

    // Body plaintext: LE length, payload, random padding.
    let encoded = payload.encode()?;
    let mut body = Vec::with_capacity(BODY_LEN);
    // `encoded.len()` <= MAX_PAYLOAD, so it fits in a u32.
    body.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
    body.extend_from_slice(&encoded);
    let padding = draw_vec(rng, Draw::BodyPadding, BODY_LEN - body.len());
    body.extend_from_slice(&padding);
    let message_id: [u8; 16] = draw(rng, Draw::MessageId);

    // `header` is the header built for the hop after the current one (10240 bytes).
    let mut header: Vec<u8> = Vec::new();
    for (i, hop) in chain.iter().enumerate().rev() {
        let packet_id: [u8; 16] = draw(rng, Draw::PacketId);
        let des_key: [u8; 24] = draw(rng, Draw::DesKey);
        let is_final = i + 1 == chain.len();
        let mut block = Vec::with_capacity(328);
        block.extend_from_slice(&packet_id);
        block.extend_from_slice(&des_key);
        let (body_iv, mut other) = if is_final {
            let body_iv: [u8; 8] = draw(rng, Draw::BodyIv);
            let other = draw_vec(rng, Draw::OtherRandom, OTHER_LEN);
            block.push(1);
            block.extend_from_slice(&message_id);
            block.extend_from_slice(&body_iv);
            (body_iv, other)
        } else {
            let ivs: [u8; 152] = draw(rng, Draw::Ivs);
            let mut other = header[..OTHER_LEN].to_vec();
            for (section, iv) in other.chunks_mut(SECTION_LEN).zip(ivs.chunks(8)) {
                crypto::des3_cbc_encrypt(&des_key, &iv8(iv), section).map_err(|_| ALIGN)?;
            }
            block.push(0);
            block.extend_from_slice(&ivs);
            let mut address = [0u8; FIELD_LEN];
            let next = chain[i + 1].address.as_bytes();
            address[..next.len()].copy_from_slice(next);
            block.extend_from_slice(&address);
            (iv8(&ivs[144..]), other)
        };
        block.extend_from_slice(b"0000\0");
        block.extend_from_slice(&timestamp(rng)?);
        let digest = crypto::md5(&block);
        block.extend_from_slice(&digest);
        let pad = draw_vec(rng, Draw::Pad328, 328 - block.len());
        block.extend_from_slice(&pad);

        crypto::des3_cbc_encrypt(&des_key, &body_iv, &mut body).map_err(|_| ALIGN)?;

        let session_key: [u8; 24] = draw(rng, Draw::SessionKey);
        let header_iv: [u8; 8] = draw(rng, Draw::HeaderIv);
        crypto::des3_cbc_encrypt(&session_key, &header_iv, &mut block).map_err(|_| ALIGN)?;

        let k = hop.key.bits() / 8;
        let (size_byte, rsa_plain) = if hop.key.bits() == 1024 {
            (0x80, session_key.to_vec())
        } else {
            let hmac_key: [u8; 64] = draw(rng, Draw::HmacKey);
            let pre_key: [u8; 32] = draw(rng, Draw::AesPreKey);
            let keys = crypto::derive_aes_keys(&hmac_key, &pre_key);
            let mut cfb = ChainedCfb::new(keys.iv);
            cfb.encrypt(&keys.tte, &mut block);
            cfb.encrypt(&keys.body, &mut body);
            cfb.encrypt(&keys.header, &mut other);
            let hmac_next: [u8; 32] = if is_final {
                draw(rng, Draw::FakeNextHeadersHmac)
            } else {
                crypto::hmac_sha256(&hmac_key, &[&other[..2 * SECTION_LEN]])
            };
            let mut plain = Vec::with_capacity(216);
            plain.extend_from_slice(&session_key);
            plain.extend_from_slice(&hmac_key);
            plain.extend_from_slice(&hmac_next);
            plain.extend_from_slice(&crypto::hmac_sha256(&hmac_key, &[&body]));
            plain.extend_from_slice(&crypto::hmac_sha256(&hmac_key, &[&block]));
            plain.extend_from_slice(&pre_key);
            // 2048 -> 2, 3072 -> 3, 4096 -> 4.
            ((hop.key.bits() / 1024) as u8, plain)
        };
        let em = crypto::pkcs1_v15_pad(k, &rsa_plain, rng).ok_or_else(|| rsa_err(hop))?;
        let rsa =
            crypto::rsa_public(hop.key.n(), hop.key.e(), &em, k).ok_or_else(|| rsa_err(hop))?;

        let section_len = hop.key.slots() * SECTION_LEN;
        let mut new_header = Vec::with_capacity(HEADER_LEN);
        new_header.extend_from_slice(&hop.key.key_id());
        new_header.push(size_byte);
        new_header.extend_from_slice(&rsa);
        new_header.extend_from_slice(&header_iv);
        new_header.extend_from_slice(&block);
        let pad = draw_vec(rng, Draw::HeaderPad, section_len - new_header.len());
        new_header.extend_from_slice(&pad);
        new_header.extend_from_slice(&other[..HEADER_LEN - section_len]);
        header = new_header;
    }
    let mut packet = header;
    packet.extend_from_slice(&body);
    debug_assert_eq!(packet.len(), PACKET_LEN);
    Ok(packet)
}

const ALIGN: BuildError = BuildError::Internal("3DES data not block aligned");

fn iv8(bytes: &[u8]) -> [u8; 8] {
    let mut iv = [0u8; 8];
    iv.copy_from_slice(&bytes[..8]);
    iv
}

fn rsa_err(hop: &Hop) -> BuildError {
    BuildError::Rsa(hop.key.key_id_hex())
}
