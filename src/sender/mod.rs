//! The sender: turns queued pings into mail and hands it to the MTA.
//!
//! Decision 3: a ping is `sent` only when the MTA answered 250. A transient failure is retried
//! with backoff while the ping's slot lasts; a ping that never got out is `not_sent` with the
//! reason and never charged to the remailer. Message building ([`build_ping`]) is pure apart
//! from the randomness it is given; [`drain_outbox`] is the I/O edge.

pub mod cpunk;
pub mod mix;
pub mod smtp;

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use tracing::{debug, info, warn};

use crate::config::{Delimiter, MailAddress};
use crate::model::{OutboxPing, OutboxRequest, PingType};
use crate::payload::{self, Hop, PayloadFields, PayloadKind};
use crate::store::{Store, StoreError};
use crate::{discovery, openpgp};

use cpunk::CpunkHop;
use mix::MixHop;
pub use smtp::{Outgoing, SendError, SmtpSender};

/// A ping may be retried until its 2-hour slot period ends (the next slot takes over).
pub use crate::model::SLOT_SECS;
/// Retries wait `[smtp] retry_secs` first, then twice as long each time, up to half an hour.
const MAX_RETRY_SECS: i64 = 1800;

/// Who we are in mail: the return address and the name on our From: lines.
#[derive(Debug, Clone)]
pub struct Identity {
    pub address: MailAddress,
    pub delimiter: Delimiter,
    pub name: String,
}

impl Identity {
    /// `<localpart><delimiter><tag>@<domain>`
    pub fn return_address(&self, tag: &str) -> String {
        format!(
            "{}{}{}@{}",
            self.address.local_part(),
            self.delimiter.as_str(),
            tag,
            self.address.domain()
        )
    }

    fn signature(&self) -> String {
        format!("{} <{}>", self.name, self.address)
    }
}

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
}

/// Singles alternate between asking for our From: line and not (the from-lines test, per
/// remailer and type); chains never ask, as in Echolot.
pub fn asks_for_from_line(slot_time: i64, chain: bool) -> bool {
    !chain && slot_time.div_euclid(SLOT_SECS) % 2 == 1
}

/// When to try again after the `attempts`-th attempt failed at `now`, or None when the
/// slot ends first.
pub fn retry_at(first_delay: i64, attempts: u32, now: i64, slot_time: i64) -> Option<i64> {
    let doublings = attempts.saturating_sub(1).min(10);
    let delay = (first_delay.max(1) << doublings).min(MAX_RETRY_SECS);
    let next = now + delay;
    (next < slot_time + SLOT_SECS).then_some(next)
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
    smtp::format_message(
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
    let type_two = spec.hops.iter().filter(|h| h.ping_type == PingType::Mix).count();
    if type_two != 0 && type_two != spec.hops.len() {
        return Err(BuildError::MixedChain);
    }
    let fields = PayloadFields {
        kind: if spec.hops.len() > 1 { PayloadKind::Chain } else { PayloadKind::Ping },
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
    let body = if type_two > 0 {
        let hops: Vec<MixHop<'_>> = spec
            .hops
            .iter()
            .map(|h| MixHop { address: &h.address, entry: h.material.as_deref() })
            .collect();
        let mut mix_rng = crate::mixmaster::RngRandom(&mut *rng);
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
    let body = discovery::request_body(&request.address, &identity.name, operator);
    let message = smtp::format_message(
        &identity.name,
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

/// Sends every due information request once, with the same retry rule as pings.
pub async fn drain_requests(
    store: &Mutex<Store>,
    smtp: &SmtpSender,
    identity: &Identity,
    operator: Option<&str>,
    unanswered_limit: u32,
) -> Result<DrainSummary, StoreError> {
    let mut summary = DrainSummary::default();
    let due = lock(store).requests_due(now_unix(), 100)?;
    for request in due {
        let now = now_unix();
        if now >= request.slot_time + SLOT_SECS {
            lock(store).mark_request_not_sent(request.id, "not accepted by the MTA in time")?;
            summary.not_sent += 1;
            continue;
        }
        let outgoing =
            match build_request(&request, identity, operator, now, &mut rand::rngs::OsRng) {
                Ok(o) => o,
                Err(e) => {
                    warn!(to = %request.address, "request not sent: {e}");
                    lock(store).mark_request_not_sent(request.id, &e.to_string())?;
                    summary.not_sent += 1;
                    continue;
                }
            };
        let result = smtp.send(&outgoing).await;
        let settled = settle(result, smtp.retry_secs(), request.attempts + 1, request.slot_time);
        summary.count(&settled);
        match settled {
            Settled::Sent => {
                lock(store).mark_request_sent(request.id, now, unanswered_limit)?;
                debug!(to = %request.address, kind = %request.kind, "request sent");
            }
            Settled::Retry { at, error } => lock(store).defer_request(request.id, at, &error)?,
            Settled::GiveUp { error } => {
                warn!(to = %request.address, kind = %request.kind, "request not sent: {error}");
                lock(store).mark_request_not_sent(request.id, &error)?;
            }
        }
    }
    summary.log("requests");
    Ok(summary)
}

/// What became of one attempt to hand a message to the MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Settled {
    Sent,
    /// A temporary failure with time left in the slot: try again at `at`.
    Retry {
        at: i64,
        error: String,
    },
    /// Refused for good, or the slot is over: recorded as not sent.
    GiveUp {
        error: String,
    },
}

/// Decides the fate of the `attempts`-th attempt of a message of slot `slot_time`.
fn settle(
    result: Result<(), SendError>,
    retry_secs: i64,
    attempts: u32,
    slot_time: i64,
) -> Settled {
    match result {
        Ok(()) => Settled::Sent,
        Err(SendError::Transient(error)) => {
            match retry_at(retry_secs, attempts, now_unix(), slot_time) {
                Some(at) => Settled::Retry { at, error },
                None => Settled::GiveUp {
                    error: format!("slot over after {attempts} attempts: {error}"),
                },
            }
        }
        Err(SendError::Permanent(error)) => {
            Settled::GiveUp { error: format!("MTA refused: {error}") }
        }
    }
}

/// What one pass over the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainSummary {
    pub sent: usize,
    pub deferred: usize,
    pub not_sent: usize,
}

impl DrainSummary {
    fn count(&mut self, settled: &Settled) {
        match settled {
            Settled::Sent => self.sent += 1,
            Settled::Retry { .. } => self.deferred += 1,
            Settled::GiveUp { .. } => self.not_sent += 1,
        }
    }

    fn log(&self, what: &str) {
        if *self != DrainSummary::default() {
            info!(sent = self.sent, deferred = self.deferred, not_sent = self.not_sent, "{what}");
        }
    }
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    // A panic while holding the lock cannot leave SQLite half-written (transactions), so
    // the store stays usable.
    store.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends every due ping once. The store lock is never held across the SMTP exchange.
pub async fn drain_outbox(
    store: &Mutex<Store>,
    smtp: &SmtpSender,
    secret: &[u8],
    identity: &Identity,
) -> Result<DrainSummary, StoreError> {
    let mut summary = DrainSummary::default();
    let due = lock(store).outbox_due(now_unix(), 200)?;
    for ping in due {
        let now = now_unix();
        if now >= ping.slot_time + SLOT_SECS {
            lock(store).mark_not_sent(ping.id, "its slot ended before the MTA accepted it")?;
            summary.not_sent += 1;
            continue;
        }
        let mut rng = rand::rngs::OsRng;
        let tag = ping.tag.clone().unwrap_or_else(|| payload::new_tag(&mut rng));
        let built = spec_of(&ping).and_then(|spec| {
            build_ping(&spec, secret, identity, &tag, now, &mut rng).map(|b| (spec, b))
        });
        let (spec, built) = match built {
            Ok(b) => b,
            Err(e) => {
                // Our failure (no key, a broken stored key): never the remailer's.
                warn!(ping = ping.id, to = %ping.hops[0].address, "not sent: {e}");
                lock(store).mark_not_sent(ping.id, &e.to_string())?;
                summary.not_sent += 1;
                continue;
            }
        };
        lock(store).begin_attempt(ping.id, &tag, spec.with_from)?;
        let result = smtp.send(&built.outgoing).await;
        let settled = settle(result, smtp.retry_secs(), ping.attempts + 1, ping.slot_time);
        summary.count(&settled);
        match settled {
            Settled::Sent => {
                lock(store).mark_sent(ping.id, built.sent)?;
                debug!(ping = ping.id, to = %built.outgoing.to, "sent");
            }
            Settled::Retry { at, error } => {
                warn!(ping = ping.id, "MTA unavailable, retrying later: {error}");
                lock(store).defer_ping(ping.id, at, &error)?;
            }
            Settled::GiveUp { error } => {
                warn!(ping = ping.id, "not sent: {error}");
                lock(store).mark_not_sent(ping.id, &error)?;
            }
        }
    }
    summary.log("outbox");
    Ok(summary)
}

/// Sends the self-checks not yet accepted by the MTA. A temporary failure is retried after
/// a growing wait until the check's deadline; a permanent refusal abandons the check and is
/// reported once, as an error (the pinger's own mail path is broken), not at every pass.
pub async fn send_self_checks(
    store: &Mutex<Store>,
    smtp: &SmtpSender,
    secret: &[u8],
    identity: &Identity,
    deadline_secs: i64,
) -> Result<(), StoreError> {
    let pending = lock(store).pending_self_checks(now_unix() - deadline_secs, now_unix())?;
    for (check, attempts) in pending {
        let now = now_unix();
        let outgoing = match build_self_check(
            check.id,
            secret,
            identity,
            &check.tag,
            now,
            &mut rand::rngs::OsRng,
        ) {
            Ok(o) => o,
            Err(e) => {
                lock(store).self_check_failed(check.id, &e.to_string(), None, now)?;
                continue;
            }
        };
        match smtp.send(&outgoing).await {
            Ok(()) => lock(store).self_check_sent(check.id, now)?,
            Err(SendError::Permanent(e)) => {
                tracing::error!(
                    "the MTA refused our self-check for good ({e}); the pinger's own mail path \
                     is broken until this is fixed"
                );
                lock(store).self_check_failed(check.id, &e, None, now)?;
            }
            Err(SendError::Transient(e)) => {
                let wait = (smtp.retry_secs().max(1) << attempts.min(10)).min(MAX_RETRY_SECS);
                warn!(retry_in_s = wait, "self-check not accepted by the MTA: {e}");
                lock(store).self_check_failed(check.id, &e, Some(now + wait), now)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_stop_at_the_end_of_the_slot() {
        let slot = 7200 * 10;
        assert_eq!(retry_at(60, 1, slot, slot), Some(slot + 60));
        assert_eq!(retry_at(60, 2, slot, slot), Some(slot + 120));
        assert_eq!(retry_at(60, 3, slot, slot), Some(slot + 240));
        assert_eq!(retry_at(60, 20, slot, slot), Some(slot + MAX_RETRY_SECS));
        assert_eq!(retry_at(60, 1, slot + SLOT_SECS - 60, slot), None);
        assert_eq!(retry_at(60, 1, slot + SLOT_SECS - 61, slot), Some(slot + SLOT_SECS - 1));
    }

    #[test]
    fn from_lines_alternate_by_slot_and_never_for_chains() {
        assert!(!asks_for_from_line(0, false));
        assert!(asks_for_from_line(7200, false));
        assert!(!asks_for_from_line(14_400, false));
        assert!(!asks_for_from_line(7200, true));
    }

    #[test]
    fn return_address_puts_the_tag_after_the_delimiter() {
        let identity = Identity {
            address: "pinger@p.example".to_owned().try_into().unwrap(),
            delimiter: "+".to_owned().try_into().unwrap(),
            name: "fathometer".into(),
        };
        assert_eq!(identity.return_address("abc"), "pinger+abc@p.example");
    }
}
