//! A YAMN 0.2.7 remailer's side of a packet (`yamn.md` §3, §7, §8.3): its secret keys, its
//! packet-ID log, and the decoder that does what the remailer does, in its order. The pinger
//! never decodes; the tests and remailer doubles do (no real YAMN remailer runs here), and the
//! vectors check it against the real remailers' output byte for byte.

use std::collections::HashSet;

use crate::compose::yamn::{
    BODY_LEN, DELIVER_DUMMY, HEADERS_LEN, INNER_LEN, MAX_ADDRESS, PACKET_LEN, SLOT_LEN, SLOTS,
    TYPE_EXIT, TYPE_INTERMEDIATE, VERSION, crypto, date_to_day,
};

/// The oldest day stamp a remailer accepts, in days before today (`remailer.max_age`).
pub const MAX_AGE_DAYS: i64 = 14;

/// A remailer's secret key (`secring.mix`).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey {
    pub key_id: [u8; 16],
    pub secret: [u8; 32],
    /// Days since 1970-01-01 of `Created:` and `Expires:`.
    pub created_day: i64,
    pub expires_day: i64,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", crate::compose::payload::hex(&self.key_id))
    }
}

impl SecretKey {
    /// A key from its 32 secret bytes (stored unclamped).
    pub fn from_secret(secret: [u8; 32], created_day: i64, expires_day: i64) -> SecretKey {
        let public = crypto::public_of(&secret);
        SecretKey { key_id: crypto::key_id(&public), secret, created_day, expires_day }
    }

    pub fn public(&self) -> [u8; 32] {
        crypto::public_of(&self.secret)
    }

    /// Every key of a `secring.mix`; a block whose key ID is not that of its key is skipped.
    pub fn parse_secring(text: &str) -> Vec<SecretKey> {
        let mut keys = Vec::new();
        let mut lines = text.lines().map(str::trim);
        while lines.by_ref().any(|l| l == "-----Begin Mixmaster Secret Key-----") {
            let block: Vec<&str> =
                lines.by_ref().take_while(|l| *l != "-----End Mixmaster Secret Key-----").collect();
            let field = |name: &str| {
                block.iter().find_map(|l| l.strip_prefix(name)).map(str::trim).and_then(date_to_day)
            };
            let bare: Vec<&str> = block.iter().copied().filter(|l| !l.contains(':')).collect();
            let (Some(created), Some(expires), [id, secret, ..]) =
                (field("Created:"), field("Expires:"), bare.as_slice())
            else {
                continue;
            };
            let Some(secret) =
                crate::compose::payload::unhex(secret).and_then(|v| <[u8; 32]>::try_from(v).ok())
            else {
                continue;
            };
            let key = SecretKey::from_secret(secret, created, expires);
            if crate::compose::payload::hex(&key.key_id).eq_ignore_ascii_case(id) {
                keys.push(key);
            }
        }
        keys
    }
}

/// The remailer's packet-ID log (`idlog`): an ID is recorded when first seen, before the
/// remaining checks, and a packet whose ID is already there is a replay.
#[derive(Debug, Default, Clone)]
pub struct IdLog(HashSet<[u8; 16]>);

/// Every field of the slot a hop opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotFields {
    pub key_id: [u8; 16],
    pub packet_type: u8,
    pub packet_id: [u8; 16],
    pub aes_key: [u8; 32],
    pub day_stamp: u16,
    pub packet_info: [u8; 64],
    pub anti_tag: [u8; 32],
}

/// What a hop does with a packet it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Mail `next_packet` to `next_address`.
    Intermediate {
        slot: SlotFields,
        partial_iv: [u8; 12],
        next_address: String,
        next_packet: Vec<u8>,
    },
    /// Deliver `plaintext` (an RFC 822 message) to its `To:`/`Cc:`; a dummy is discarded.
    Exit {
        slot: SlotFields,
        body_iv: [u8; 16],
        chunk: u8,
        chunks: u8,
        message_id: [u8; 16],
        delivery_method: u8,
        plaintext: Vec<u8>,
    },
}

/// Why a remailer dropped a packet (it sends nothing back, §3).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("packet is {0} bytes, expected 20480")]
    BadLength(usize),
    #[error("Keyid not found in secret keyring: {0}")]
    UnknownKey(String),
    #[error("the header box does not open")]
    BoxFailed,
    #[error("packet version {0}, expected 2")]
    BadVersion(u8),
    #[error("packet ID collision")]
    Replay,
    #[error("Anti-tag digest mismatch")]
    AntiTag,
    #[error("Max packet age in days exceeded. Age={0}, Max=14")]
    TooOld(i64),
    #[error("Packet timestamp is in the future")]
    Future,
    #[error("unknown packet type {0}")]
    UnknownType(u8),
    #[error("body length {0} exceeds the body")]
    BadBodyLength(u32),
}

/// Decodes one packet as a remailer holding `keys` does on day `today`, recording its packet ID
/// in `seen` (§3 steps 3 to 10).
pub fn decode_packet(
    packet: &[u8],
    keys: &[SecretKey],
    today: i64,
    seen: &mut IdLog,
) -> Result<Decoded, DecodeError> {
    if packet.len() != PACKET_LEN {
        return Err(DecodeError::BadLength(packet.len()));
    }
    let arr16 = |b: &[u8]| <[u8; 16]>::try_from(b).unwrap_or_default();
    let arr32 = |b: &[u8]| <[u8; 32]>::try_from(b).unwrap_or_default();
    let key_id = arr16(&packet[..16]);
    let key = keys
        .iter()
        .find(|k| k.key_id == key_id)
        .ok_or_else(|| DecodeError::UnknownKey(crate::compose::payload::hex(&key_id)))?;
    let ephemeral = arr32(&packet[16..48]);
    let nonce = <[u8; 24]>::try_from(&packet[48..72]).unwrap_or_default();
    let inner = crypto::open(&ephemeral, &key.secret, &nonce, &packet[72..248])
        .filter(|i| i.len() == INNER_LEN)
        .ok_or(DecodeError::BoxFailed)?;
    if inner[0] != VERSION {
        return Err(DecodeError::BadVersion(inner[0]));
    }
    let slot = SlotFields {
        key_id,
        packet_type: inner[1],
        packet_id: arr16(&inner[3..19]),
        aes_key: arr32(&inner[19..51]),
        day_stamp: u16::from_le_bytes([inner[51], inner[52]]),
        packet_info: <[u8; 64]>::try_from(&inner[53..117]).unwrap_or([0; 64]),
        anti_tag: arr32(&inner[117..149]),
    };
    if !seen.0.insert(slot.packet_id) {
        return Err(DecodeError::Replay);
    }
    if crypto::blake2s256(&packet[SLOT_LEN..]) != slot.anti_tag {
        return Err(DecodeError::AntiTag);
    }
    let age = today - i64::from(slot.day_stamp);
    if age > MAX_AGE_DAYS {
        return Err(DecodeError::TooOld(age));
    }
    if age < 0 {
        return Err(DecodeError::Future);
    }
    match slot.packet_type {
        TYPE_INTERMEDIATE => {
            let partial_iv = <[u8; 12]>::try_from(&slot.packet_info[..12]).unwrap_or_default();
            let field = &slot.packet_info[12..12 + MAX_ADDRESS];
            let end = field.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            let next_address = String::from_utf8_lossy(&field[..end]).into_owned();
            let mut next = Vec::with_capacity(PACKET_LEN);
            next.extend_from_slice(&packet[SLOT_LEN..HEADERS_LEN]);
            next.extend_from_slice(&[0u8; SLOT_LEN]);
            next.extend_from_slice(&packet[HEADERS_LEN..]);
            for k in 0..SLOTS {
                let iv = crypto::seq_iv(&partial_iv, k as u32);
                crypto::aes_ctr(&slot.aes_key, &iv, &mut next[k * SLOT_LEN..(k + 1) * SLOT_LEN]);
            }
            let iv = crypto::seq_iv(&partial_iv, 10);
            crypto::aes_ctr(&slot.aes_key, &iv, &mut next[HEADERS_LEN..]);
            Ok(Decoded::Intermediate { slot, partial_iv, next_address, next_packet: next })
        }
        TYPE_EXIT => {
            let info = slot.packet_info;
            let body_iv = arr16(&info[..16]);
            let length = u32::from_le_bytes([info[34], info[35], info[36], info[37]]);
            let delivery_method = info[38];
            let plaintext = if delivery_method == DELIVER_DUMMY {
                Vec::new()
            } else {
                // YAMN itself would slice out of range (a panic) here; a decoder says why.
                if length as usize > BODY_LEN {
                    return Err(DecodeError::BadBodyLength(length));
                }
                let mut body = packet[HEADERS_LEN..].to_vec();
                crypto::aes_ctr(&slot.aes_key, &body_iv, &mut body);
                body.truncate(length as usize);
                body
            };
            Ok(Decoded::Exit {
                body_iv,
                chunk: info[16],
                chunks: info[17],
                message_id: arr16(&info[18..34]),
                delivery_method,
                plaintext,
                slot,
            })
        }
        other => Err(DecodeError::UnknownType(other)),
    }
}

#[cfg(test)]
mod tests;
