//! Type II (Mixmaster) pings: our armoured payload as the user data of a Mixmaster packet
//! ([`crate::compose::mixmaster`]) whose final hop delivers it to our return address.
//!
//! What a remailer receives is what the Mixmaster client would send for the same message
//! (Echolot feeds `mix -m` a mail `[From: ...]\nTo: <return address>\n\n<payload>`): one
//! destination field (the return address), a `From:` header field when the ping asks for the
//! remailer to paste our From line, and the payload as plain user data (it is far below the
//! size at which the client would compress).

use crate::compose::mixmaster::{self, Hop, MixRandom, Payload, PublicKey};

/// One hop: the remailer's address and its stored Mix key entry.
#[derive(Debug, Clone, Copy)]
pub struct MixHop<'a> {
    pub address: &'a str,
    pub entry: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum MixError {
    #[error("no Mix key stored for {0}")]
    NoKey(String),
    #[error("the stored Mix key of {address} is unusable: {reason}")]
    BadKey { address: String, reason: String },
    #[error("cannot build the Mixmaster packet: {0}")]
    Packet(#[from] mixmaster::BuildError),
}

/// The body of the mail to `hops[0]`: the `::` / `Remailer-Type:` wrapper around the packet.
/// `sent` dates the packet (its day, less the client's random 0..3 days).
pub fn build(
    hops: &[MixHop<'_>],
    return_address: &str,
    from_line: Option<&str>,
    armoured_payload: &str,
    sent: i64,
    rng: &mut dyn MixRandom,
) -> Result<String, MixError> {
    let mut chain = Vec::with_capacity(hops.len());
    for hop in hops {
        let entry = hop.entry.ok_or_else(|| MixError::NoKey(hop.address.to_owned()))?;
        let key = PublicKey::from_entry(entry).map_err(|e| MixError::BadKey {
            address: hop.address.to_owned(),
            reason: e.to_string(),
        })?;
        chain.push(Hop { key, address: hop.address.to_owned() });
    }
    let payload = Payload {
        destinations: vec![return_address.to_owned()],
        headers: from_line.map(|f| vec![format!("From: {f}")]).unwrap_or_default(),
        user_data: armoured_payload.as_bytes().to_vec(),
    };
    let packet = mixmaster::build_packet(&chain, &payload, sent.div_euclid(86_400), rng)?;
    Ok(mixmaster::armor(&packet))
}
