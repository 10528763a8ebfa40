//! The outbox driver: the one send-and-settle loop for everything the pinger mails (scheduled
//! pings, information requests, self-checks, replay probes, and the ping `fathometer ping`
//! sends by hand).
//!
//! Each message is built on the blocking pool (RSA and OpenPGP work), its tag committed
//! before the first attempt, handed to the MTA, and its fate decided by the pure rules of
//! [`crate::send`] and recorded; the store lock is never held across the SMTP exchange.
//! Decision 3: only a 250 makes a ping `sent`; one that never gets out is `not_sent` with the
//! reason and never charged to the remailer.

use std::sync::Arc;

use anyhow::Result;
use tracing::{debug, error, warn};

use super::context::{Pinger, blocking};
use crate::compose::{self, Outgoing, payload};
use crate::model::{
    OutboxPing, OutboxProbe, OutboxRequest, ProbeCopy, SELF_CHECK_DEADLINE_SECS, SLOT_SECS,
    SelfCheck,
};
use crate::send::{DrainSummary, SendError, Settled, SmtpSender, Transport, settle};
use crate::store::Store;

/// At most this many pings and requests are taken per pass; the rest wait for the next.
const PASS_PINGS: usize = 200;
const PASS_REQUESTS: usize = 100;

/// One message of the outbox.
#[derive(Debug, Clone)]
pub enum Item {
    /// A scheduled ping: retried while its slot lasts.
    Ping(OutboxPing),
    /// A ping sent by hand: one attempt; a failure is recorded, never retried.
    Manual(OutboxPing),
    Request(OutboxRequest),
    SelfCheck {
        check: SelfCheck,
        attempts: u32,
    },
    /// One of the two identical copies of a replay probe.
    Probe(OutboxProbe),
}

impl Item {
    fn attempts(&self) -> u32 {
        match self {
            Item::Ping(p) | Item::Manual(p) => p.attempts,
            Item::Request(r) => r.attempts,
            Item::SelfCheck { attempts, .. } => *attempts,
            Item::Probe(p) => p.attempts,
        }
    }

    /// Until when it may still be sent: a scheduled ping or request until its 2-hour slot
    /// ends (the next slot takes over), a self-check until its deadline, a manual ping only
    /// now.
    fn deadline(&self, now: i64) -> i64 {
        match self {
            Item::Ping(p) => p.slot_time + SLOT_SECS,
            Item::Manual(_) => now,
            Item::Request(r) => r.slot_time + SLOT_SECS,
            Item::SelfCheck { check, .. } => check.created_at + SELF_CHECK_DEADLINE_SECS,
            Item::Probe(p) => p.deadline,
        }
    }

    fn describe(&self) -> String {
        match self {
            Item::Ping(p) | Item::Manual(p) => {
                let hops: Vec<&str> = p.hops.iter().map(|h| h.address.as_str()).collect();
                format!("ping {} to {}", p.id, hops.join(" -> "))
            }
            Item::Request(r) => format!("remailer-{} request to {}", r.kind, r.address),
            Item::SelfCheck { check, .. } => format!("self-check {}", check.id),
            Item::Probe(p) => {
                let copy = match p.copy {
                    ProbeCopy::First => "first",
                    ProbeCopy::Second => "second",
                };
                format!("replay probe {} ({copy} copy) to {}", p.id, p.hop.address)
            }
        }
    }
}

/// A message built for one attempt: what goes to the MTA, and the send time its payload
/// carries.
struct Attempt {
    outgoing: Outgoing,
    sent: i64,
}

/// Everything due now, oldest first: pings, then requests, then self-checks, then the
/// copies of replay probes.
fn due(store: &Store, probe_gap_secs: i64, now: i64) -> Result<Vec<Item>> {
    let mut items: Vec<Item> =
        store.outbox_due(now, PASS_PINGS)?.into_iter().map(Item::Ping).collect();
    items.extend(store.requests_due(now, PASS_REQUESTS)?.into_iter().map(Item::Request));
    items.extend(
        store
            .pending_self_checks(now - SELF_CHECK_DEADLINE_SECS, now)?
            .into_iter()
            .map(|(check, attempts)| Item::SelfCheck { check, attempts }),
    );
    items.extend(store.probes_due(now, probe_gap_secs)?.into_iter().map(Item::Probe));
    Ok(items)
}

/// Sends everything due now once.
pub async fn drain(pinger: &Arc<Pinger>, smtp: &impl Transport) -> Result<DrainSummary> {
    let p = pinger.clone();
    let items = blocking(move || due(&p.store(), p.config.replay_probe.gap_secs.as_i64(), p.now()))
        .await??;
    let mut summary = DrainSummary::default();
    for item in items {
        summary.count(&send(pinger, smtp, item).await?);
    }
    summary.log("outbox");
    Ok(summary)
}

/// Builds, sends and records one item; returns what became of it.
pub async fn send(pinger: &Arc<Pinger>, smtp: &impl Transport, item: Item) -> Result<Settled> {
    let now = pinger.now();
    let what = item.describe();
    if now >= item.deadline(now) && !matches!(item, Item::Manual(_)) {
        let settled = Settled::GiveUp { error: "its slot ended before the MTA accepted it".into() };
        record(pinger, item, settled.clone(), now).await?;
        return Ok(settled);
    }
    let (p, it) = (pinger.clone(), item.clone());
    let attempt = blocking(move || prepare(&p, &it, now)).await??;
    let attempt = match attempt {
        Ok(a) => a,
        Err(e) => {
            // Our failure (no key, a broken stored key): never the remailer's.
            warn!("{what} not sent: {e}");
            let settled = Settled::GiveUp { error: e.to_string() };
            record(pinger, item, settled.clone(), now).await?;
            return Ok(settled);
        }
    };
    let result = smtp.send(&attempt.outgoing).await;
    let permanent = matches!(result, Err(SendError::Permanent(_)));
    let now = pinger.now();
    let settled = settle(result, smtp.retry_secs(), item.attempts() + 1, item.deadline(now), now);
    match &settled {
        Settled::Sent => debug!("{what} sent"),
        Settled::Retry { error, .. } => warn!("{what}: MTA unavailable, retrying later: {error}"),
        Settled::GiveUp { error } if permanent && matches!(item, Item::SelfCheck { .. }) => {
            // Once per self-check (one every `self_check_secs`), not at every pass.
            error!(
                "the MTA refused our self-check for good ({error}); the pinger's own mail path \
                 is broken until this is fixed"
            )
        }
        Settled::GiveUp { error } => warn!("{what} not sent: {error}"),
    }
    record(pinger, item, settled.clone(), attempt.sent).await?;
    Ok(settled)
}

/// Builds the message of one attempt; for a ping, commits its tag (first attempt only: it
/// never changes) and counts the attempt before the message is handed to the MTA, so a
/// return after a crash still finds it. The outer error is the store's, the inner one the
/// message's.
fn prepare(pinger: &Pinger, item: &Item, now: i64) -> Result<Result<Attempt, compose::BuildError>> {
    let mut rng = rand::rngs::OsRng;
    let (secret, identity) = (pinger.secret.as_bytes(), &pinger.identity);
    let outgoing = match item {
        Item::Ping(ping) | Item::Manual(ping) => {
            let tag = ping.tag.clone().unwrap_or_else(|| payload::new_tag(&mut rng));
            let built = compose::spec_of(ping).and_then(|spec| {
                let built = compose::build_ping(&spec, secret, identity, &tag, now, &mut rng)?;
                Ok((spec.with_from, built))
            });
            let (with_from, built) = match built {
                Ok(b) => b,
                Err(e) => return Ok(Err(e)),
            };
            pinger.store().begin_attempt(ping.id, &tag, with_from)?;
            built.outgoing
        }
        Item::Request(request) => {
            let operator = pinger.config.pinger.operator_address.as_ref().map(|a| a.as_str());
            match compose::build_request(request, identity, operator, now, &mut rng) {
                Ok(o) => o,
                Err(e) => return Ok(Err(e)),
            }
        }
        Item::SelfCheck { check, .. } => {
            match compose::build_self_check(check.id, secret, identity, &check.tag, now, &mut rng) {
                Ok(o) => o,
                Err(e) => return Ok(Err(e)),
            }
        }
        Item::Probe(probe) => match &probe.message {
            // Every attempt after the first, and the second copy, send the kept bytes.
            Some((envelope_from, to, message)) => Outgoing {
                envelope_from: envelope_from.clone(),
                to: to.clone(),
                message: message.clone(),
            },
            None => {
                let Some(key_id) = probe.hop.key_id.clone() else {
                    return Ok(Err(compose::BuildError::KeyGone(probe.hop.address.clone())));
                };
                let hop = compose::HopSpec {
                    address: probe.hop.address.clone(),
                    ping_type: probe.hop.ping_type,
                    key_id,
                    material: probe.hop.material.clone(),
                };
                let built = compose::build_replay_probe(
                    probe.id, hop, secret, identity, &probe.tag, now, &mut rng,
                );
                let outgoing = match built {
                    Ok(o) => o,
                    Err(e) => return Ok(Err(e)),
                };
                // Kept before the MTA sees it: the second copy must be these bytes.
                pinger.store().keep_probe_message(
                    probe.id,
                    &outgoing.envelope_from,
                    &outgoing.to,
                    &outgoing.message,
                )?;
                outgoing
            }
        },
    };
    Ok(Ok(Attempt { outgoing, sent: now }))
}

/// Records what became of an item (on the blocking pool). `sent` is the send time the
/// message's payload carries.
async fn record(pinger: &Arc<Pinger>, item: Item, settled: Settled, sent: i64) -> Result<()> {
    let p = pinger.clone();
    blocking(move || -> Result<()> {
        let mut store = p.store();
        let now = p.now();
        let limit = p.config.discovery.unanswered_limit.0;
        match (&item, settled) {
            (Item::Ping(ping) | Item::Manual(ping), Settled::Sent) => {
                store.mark_sent(ping.id, sent)?
            }
            (Item::Ping(ping) | Item::Manual(ping), Settled::Retry { at, error }) => {
                store.defer_ping(ping.id, at, &error)?
            }
            (Item::Ping(ping) | Item::Manual(ping), Settled::GiveUp { error }) => {
                store.mark_not_sent(ping.id, &error)?
            }
            (Item::Request(r), Settled::Sent) => store.mark_request_sent(r.id, sent, limit)?,
            (Item::Request(r), Settled::Retry { at, error }) => {
                store.defer_request(r.id, at, &error)?
            }
            (Item::Request(r), Settled::GiveUp { error }) => {
                store.mark_request_not_sent(r.id, &error)?
            }
            (Item::SelfCheck { check, .. }, Settled::Sent) => {
                store.self_check_sent(check.id, sent)?
            }
            (Item::SelfCheck { check, .. }, Settled::Retry { at, error }) => {
                store.self_check_failed(check.id, &error, Some(at), now)?
            }
            (Item::SelfCheck { check, .. }, Settled::GiveUp { error }) => {
                store.self_check_failed(check.id, &error, None, now)?
            }
            (Item::Probe(p), Settled::Sent) => store.probe_sent(p.id, p.copy, sent)?,
            (Item::Probe(p), Settled::Retry { at, error }) => {
                store.probe_failed(p.id, &error, Some(at), now)?
            }
            (Item::Probe(p), Settled::GiveUp { error }) => {
                store.probe_failed(p.id, &error, None, now)?
            }
        }
        Ok(())
    })
    .await?
}

/// How `fathometer ping` delivers its ping.
pub enum Delivery {
    /// Build and print it; record nothing.
    DryRun,
    /// Print it for another MTA, and record it as sent now.
    Stdout,
    /// Hand it to the configured MTA: one attempt, through [`send`].
    Mta(Box<SmtpSender>),
}

/// What `fathometer ping` did.
pub struct ManualPing {
    /// The ping's row, unless it was a dry run.
    pub id: Option<i64>,
    /// The message, for [`Delivery::DryRun`] and [`Delivery::Stdout`].
    pub message: Option<Vec<u8>>,
    pub return_address: String,
    pub settled: Option<Settled>,
}

/// The key a manual ping uses: of the requested type, or the best type I type the remailer
/// has (as chains choose hops), the newest current one.
fn pick_key(
    keys: &[crate::model::RemailerKey],
    wanted: Option<crate::model::PingType>,
    now: i64,
) -> Option<crate::model::RemailerKey> {
    let types: Vec<crate::model::PingType> = match wanted {
        Some(t) => vec![t],
        None => crate::model::ChainType::Cpunk.preferred_hop_types().to_vec(),
    };
    types.iter().find_map(|t| {
        keys.iter().filter(|k| k.ping_type == *t && k.is_current(now)).max_by_key(|k| k.id).cloned()
    })
}

/// Sends one ping now, outside the schedule, through the remailers `names` (nicks or
/// addresses; two for a chain), with a key of type `wanted` (default: the best type I key).
pub async fn ping_now(
    pinger: &Arc<Pinger>,
    names: &[String],
    wanted: Option<crate::model::PingType>,
    delivery: Delivery,
) -> Result<ManualPing> {
    let now = pinger.now();
    let (p, names) = (pinger.clone(), names.to_vec());
    let dry_run = matches!(delivery, Delivery::DryRun);
    // Resolve the hops and record the ping (unless dry), in one step of the store.
    let recorded = blocking(move || -> Result<(Option<OutboxPing>, compose::PingSpec, String)> {
        let mut store = p.store();
        let mut hops = Vec::new();
        let mut key_rows = Vec::new();
        for name in &names {
            let r = store.find_remailer(name)?;
            let key = pick_key(&r.keys, wanted, now).ok_or_else(|| {
                let what = wanted.map_or("type I".to_owned(), |t| t.to_string());
                anyhow::anyhow!(
                    "{} has no current {what} key; import one with `fathometer import-keys`",
                    r.address
                )
            })?;
            hops.push(compose::HopSpec {
                address: r.address.clone(),
                ping_type: key.ping_type,
                key_id: key.key_id.clone(),
                material: store.key_material(key.id)?,
            });
            key_rows.push(key.id);
        }
        let tag = payload::new_tag(&mut rand::rngs::OsRng);
        let spec = compose::PingSpec { id: 0, hops, with_from: false };
        if dry_run {
            return Ok((None, spec, tag));
        }
        let family = spec.hops[0].ping_type.chain_type();
        let hop2 = key_rows.get(1).map(|&k| (family, k));
        let id = store.record_manual_ping(key_rows[0], hop2, now, &tag, false, None)?;
        Ok((Some(store.outbox_ping(id)?), spec, tag))
    })
    .await??;
    let (queued, spec, tag) = recorded;
    let return_address = pinger.identity.return_address(&tag);
    let (delivery, ping) = match (delivery, queued) {
        (Delivery::Stdout, Some(ping)) => (Delivery::Stdout, ping),
        (Delivery::Mta(smtp), Some(ping)) => (Delivery::Mta(smtp), ping),
        // A dry run: the message only.
        _ => {
            let built = compose::build_ping(
                &spec,
                pinger.secret.as_bytes(),
                &pinger.identity,
                &tag,
                now,
                &mut rand::rngs::OsRng,
            )?;
            return Ok(ManualPing {
                id: None,
                message: Some(built.outgoing.message),
                return_address,
                settled: None,
            });
        }
    };
    let id = ping.id;
    match delivery {
        Delivery::DryRun | Delivery::Stdout => {
            let (p, it) = (pinger.clone(), Item::Manual(ping.clone()));
            let attempt = blocking(move || prepare(&p, &it, now)).await??;
            let attempt = match attempt {
                Ok(a) => a,
                Err(e) => {
                    let settled = Settled::GiveUp { error: e.to_string() };
                    record(pinger, Item::Manual(ping), settled, now).await?;
                    return Err(e.into());
                }
            };
            record(pinger, Item::Manual(ping), Settled::Sent, attempt.sent).await?;
            Ok(ManualPing {
                id: Some(id),
                message: Some(attempt.outgoing.message),
                return_address,
                settled: Some(Settled::Sent),
            })
        }
        Delivery::Mta(smtp) => {
            let settled = send(pinger, smtp.as_ref(), Item::Manual(ping)).await?;
            Ok(ManualPing { id: Some(id), message: None, return_address, settled: Some(settled) })
        }
    }
}
