//! Building what the pinger sends: the authenticated payload ([`payload`]), sealed with
//! OpenPGP ([`openpgp`]) and carried through one or two remailers as a type I message
//! ([`cpunk`]) or a Mixmaster packet ([`mix`], [`mixmaster`]); the information requests to
//! remailers ([`request`]); the RFC 5322 message around each ([`message`]).
//!
//! Pure apart from the randomness it is given: nothing here reads the clock, the store or the
//! network; the send time is a parameter.

pub mod cpunk;
pub mod keys;
pub mod message;
pub mod mix;
pub mod mixmaster;
pub mod openpgp;
pub mod payload;
pub mod request;
pub mod yamn;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore;

use crate::model::{Identity, OutboxPing, OutboxRequest, PingType, SLOT_SECS};
use cpunk::CpunkHop;
pub use message::Outgoing;
use mix::MixHop;
use payload::{Hop, PayloadFields, PayloadKind};

/// One hop as the builder needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct HopSpec {
    pub address: String,
    pub ping_type: PingType,
    pub key_id: String,
    /// Armoured OpenPGP key (type I) or Mix key entry (type II).
    pub material: Option<String>,
}

/// A ping to build: single (one hop) or chain (two).
#[derive(Debug, Clone, PartialEq)]
pub struct PingSpec {
    pub id: i64,
    pub hops: Vec<HopSpec>,
    pub with_from: bool,
}

/// A finished ping message.
#[derive(Debug, Clone)]
pub struct BuiltPing {
    pub outgoing: Outgoing,
    pub tag: String,
    pub sent: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("a chain mixes type I and type II hops")]
    MixedChain,
    #[error(transparent)]
    Mix(#[from] mix::MixError),
    #[error("the key of {0} is no longer stored")]
    KeyGone(String),
    #[error(transparent)]
    Cpunk(#[from] cpunk::CpunkError),
    #[error("payload encryption failed: {0}")]
    Payload(#[from] openpgp::PgpError),
    #[error("cannot format the message: {0}")]
    Format(String),
    #[error("YAMN key of {address}: {reason}")]
    YamnKey { address: String, reason: String },
    #[error(transparent)]
    Yamn(#[from] yamn::BuildError),
}

/// Singles alternate between asking for our From: line and not (the from-lines test, per
/// remailer and type); chains never ask, as in Echolot.
pub fn asks_for_from_line(slot_time: i64, chain: bool) -> bool {
    !chain && slot_time.div_euclid(SLOT_SECS) % 2 == 1
}

fn unix_to_system(t: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t.max(0) as u64)
}

fn message_id(identity: &Identity, rng: &mut impl RngCore) -> String {
    let mut bytes = [0u8; 12];
    rng.fill_bytes(&mut bytes);
    format!("<{}@{}>", payload::hex(&bytes), identity.address.domain())
}

/// The payload, rendered and encrypted under the secret with its tag-bound salt.
fn seal(
    fields: &PayloadFields,
    secret: &[u8],
    rng: &mut impl RngCore,
) -> Result<String, BuildError> {
    let text = payload::render(fields, secret, rng);
    Ok(openpgp::encrypt_symmetric_salted(
        payload::payload_password(secret).as_bytes(),
        payload::payload_salt(secret, &fields.tag),
        text.as_bytes(),
        fields.sent,
    )?)
}

/// An RFC 5322 message from us to `to`, dated `sent`, with a fresh Message-ID.
fn format_from_us(
    identity: &Identity,
    to: &str,
    body: String,
    sent: i64,
    rng: &mut impl RngCore,
) -> Result<Vec<u8>, BuildError> {
    message::format_message(
        &identity.name,
        identity.address.as_str(),
        to,
        None,
        body,
        &message_id(identity, rng),
        unix_to_system(sent),
    )
    .map_err(|e| BuildError::Format(e.to_string()))
}

/// Builds the mail for a ping sent at `sent` with return tag `tag`.
pub fn build_ping(
    spec: &PingSpec,
    secret: &[u8],
    identity: &Identity,
    tag: &str,
    sent: i64,
    rng: &mut impl RngCore,
) -> Result<BuiltPing, BuildError> {
    let kind = if spec.hops.len() > 1 { PayloadKind::Chain } else { PayloadKind::Ping };
    build_through_hops(spec, kind, secret, identity, tag, sent, rng)
}

/// Builds the one type II message of replay probe `id` through `hop` (the outbox sends it
/// twice, unchanged). Its payload kind keeps either copy from ever counting as a ping.
pub fn build_replay_probe(
    id: i64,
    hop: HopSpec,
    secret: &[u8],
    identity: &Identity,
    tag: &str,
    sent: i64,
    rng: &mut impl RngCore,
) -> Result<Outgoing, BuildError> {
    if hop.ping_type != PingType::Mix {
        return Err(BuildError::Format(format!(
            "a replay probe is a type II packet, not {}",
            hop.ping_type
        )));
    }
    let spec = PingSpec { id, hops: vec![hop], with_from: false };
    let built =
        build_through_hops(&spec, PayloadKind::ReplayProbe, secret, identity, tag, sent, rng)?;
    Ok(built.outgoing)
}

fn build_through_hops(
    spec: &PingSpec,
    kind: PayloadKind,
    secret: &[u8],
    identity: &Identity,
    tag: &str,
    sent: i64,
    rng: &mut impl RngCore,
) -> Result<BuiltPing, BuildError> {
    let type_two = spec.hops.iter().filter(|h| h.ping_type == PingType::Mix).count();
    let yamn_hops = spec.hops.iter().filter(|h| h.ping_type == PingType::Yamn).count();
    let whole = |n: usize| n == 0 || n == spec.hops.len();
    if !whole(type_two) || !whole(yamn_hops) {
        return Err(BuildError::MixedChain);
    }
    let fields = PayloadFields {
        kind,
        id: spec.id,
        hops: spec
            .hops
            .iter()
            .map(|h| Hop {
                address: h.address.clone(),
                ping_type: h.ping_type,
                key_id: h.key_id.clone(),
            })
            .collect(),
        with_from: spec.with_from,
        sent,
        tag: tag.to_owned(),
    };
    let armoured = seal(&fields, secret, rng)?;
    let from_line = identity.signature();
    let from_line = spec.with_from.then_some(from_line.as_str());
    let return_address = identity.return_address(tag);
    let body = if yamn_hops > 0 {
        yamn_body(&spec.hops, &return_address, from_line, &armoured, sent, rng)?
    } else if type_two > 0 {
        let hops: Vec<MixHop<'_>> = spec
            .hops
            .iter()
            .map(|h| MixHop { address: &h.address, entry: h.material.as_deref() })
            .collect();
        let mut mix_rng = crate::compose::mixmaster::RngRandom(&mut *rng);
        mix::build(&hops, &return_address, from_line, &armoured, sent, &mut mix_rng)?
    } else {
        let hops: Vec<CpunkHop<'_>> = spec
            .hops
            .iter()
            .map(|h| CpunkHop {
                address: &h.address,
                ping_type: h.ping_type,
                cert: h.material.as_deref(),
            })
            .collect();
        cpunk::build(&hops, &return_address, from_line, &armoured, unix_to_system(sent))?
    };
    let to = spec.hops[0].address.clone();
    let message = format_from_us(identity, &to, body, sent, rng)?;
    Ok(BuiltPing {
        outgoing: Outgoing { envelope_from: return_address, to, message },
        tag: tag.to_owned(),
        sent,
    })
}

/// The body of a YAMN ping: one packet through `hops` whose exit delivers an RFC 822 message
/// to `return_address` (the plaintext `To:` decides, `yamn.md` §6) with our payload as its
/// body, and our From: line when we ask for it; armoured as YAMN armours it.
fn yamn_body(
    hops: &[HopSpec],
    return_address: &str,
    from_line: Option<&str>,
    armoured: &str,
    sent: i64,
    rng: &mut impl RngCore,
) -> Result<String, BuildError> {
    let mut chain = Vec::with_capacity(hops.len());
    for h in hops {
        let key_error = |reason: String| BuildError::YamnKey { address: h.address.clone(), reason };
        let material = h.material.as_deref().ok_or_else(|| key_error("not stored".into()))?;
        let key = yamn::PublicKey::from_text(material).map_err(|e| key_error(e.to_string()))?;
        if !key.summary.address.eq_ignore_ascii_case(&h.address) {
            return Err(key_error(format!("the stored key is {}'s", key.summary.address)));
        }
        chain.push(yamn::Hop { address: h.address.clone(), public: key.public });
    }
    // 7-bit plain text, no Subject (one starting `remailer-` would make the exit treat it as
    // an information request).
    let mut plaintext = format!("To: {return_address}\n");
    if let Some(from) = from_line {
        plaintext.push_str(&format!("From: {from}\n"));
    }
    plaintext.push('\n');
    plaintext.push_str(armoured);
    let today = sent.div_euclid(crate::model::SECONDS_PER_DAY);
    let mut draws = yamn::RngRandom(&mut *rng);
    let packet = yamn::build_packet(&chain, plaintext.as_bytes(), today, &mut draws)?;
    Ok(yamn::armor(&packet))
}

/// Builds a self-check: our own encrypted payload, mailed straight to our return address.
pub fn build_self_check(
    id: i64,
    secret: &[u8],
    identity: &Identity,
    tag: &str,
    sent: i64,
    rng: &mut impl RngCore,
) -> Result<Outgoing, BuildError> {
    let fields = PayloadFields {
        kind: PayloadKind::SelfCheck,
        id,
        hops: Vec::new(),
        with_from: false,
        sent,
        tag: tag.to_owned(),
    };
    let armoured = seal(&fields, secret, rng)?;
    let to = identity.return_address(tag);
    let message = format_from_us(identity, &to, armoured, sent, rng)?;
    Ok(Outgoing { envelope_from: identity.address.to_string(), to, message })
}

/// The builder's view of a queued ping.
pub fn spec_of(ping: &OutboxPing) -> Result<PingSpec, BuildError> {
    let mut hops = Vec::new();
    for h in &ping.hops {
        let key_id = h.key_id.clone().ok_or_else(|| BuildError::KeyGone(h.address.clone()))?;
        hops.push(HopSpec {
            address: h.address.clone(),
            ping_type: h.ping_type,
            key_id,
            material: h.material.clone(),
        });
    }
    Ok(PingSpec {
        id: ping.id,
        with_from: asks_for_from_line(ping.slot_time, ping.chain_type.is_some()),
        hops,
    })
}

/// Builds a request for information: Subject `remailer-<kind>`, From our address tagged
/// for this request (remailers answer to From), a short explanation as the body.
pub fn build_request(
    request: &OutboxRequest,
    identity: &Identity,
    operator: Option<&str>,
    sent: i64,
    rng: &mut impl RngCore,
) -> Result<Outgoing, BuildError> {
    let from = identity.return_address(&request.tag);
    let body = request::request_body(&request.address, &identity.name, operator);
    // A bare address: a YAMN remailer answers to the whole From: value, and relaying over
    // SMTP it would send `RCPT TO:<Name <addr>>`, which MTAs refuse (`yamn.md` §10).
    // Mixmaster answers a bare From: as well.
    let message = message::format_message(
        "",
        &from,
        &request.address,
        Some(&request.kind.subject()),
        body,
        &message_id(identity, rng),
        unix_to_system(sent),
    )
    .map_err(|e| BuildError::Format(e.to_string()))?;
    Ok(Outgoing { envelope_from: from, to: request.address.clone(), message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lines_alternate_by_slot_and_never_for_chains() {
        assert!(!asks_for_from_line(0, false));
        assert!(asks_for_from_line(7200, false));
        assert!(!asks_for_from_line(14_400, false));
        assert!(!asks_for_from_line(7200, true));
    }
}
