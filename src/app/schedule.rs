//! The scheduler's tick: what fell due since the last tick goes into the outbox.
//!
//! The slot arithmetic is pure ([`crate::schedule`]); this applies it to the store: pings and
//! information requests queued, candidates vouched for by enough remailers added, a self-check
//! created every `self_check_secs`, failed self-checks reported, replay probes started and
//! decided, old raw mail pruned.

use anyhow::Result;
use tracing::{error, info, warn};

use super::context::Pinger;
use super::report::IntensiveCareSet;
use super::state;
use crate::compose::payload;
use crate::config::Config;
use crate::model::{DueRequest, RequestKind, SELF_CHECK_DEADLINE_SECS};
use crate::schedule::{self, plan};
use crate::store::{Store, StoreError};

/// Where the time of the last tick is kept, so a restart knows which slots it missed.
const LAST_TICK: &str = "scheduler.last_tick";

/// One tick at `now`. Errors say plainly when the disk is full.
pub fn tick(pinger: &Pinger, intensive_care: &IntensiveCareSet, now: i64) -> Result<()> {
    let config = &pinger.config;
    let mut store = pinger.store();
    let step = |r: Result<(), StoreError>| {
        r.map_err(|e| anyhow::anyhow!(state::explain_storage_error(&config.pinger.state_dir, &e)))
    };
    step(queue_due(config, pinger.secret.as_bytes(), &mut store, intensive_care, now))?;
    step(self_checks(config, &mut store, now))?;
    step(replay_probes(config, pinger.secret.as_bytes(), &mut store, now))?;
    let retention = i64::from(config.mailbox.quarantine_days.0) * 86_400;
    let pruned = step_count(store.prune_raw_mail(now - retention), config)?;
    if pruned > 0 {
        info!(mails = pruned, "raw copies past the quarantine retention removed");
    }
    Ok(())
}

fn step_count(r: Result<usize, StoreError>, config: &Config) -> Result<usize> {
    r.map_err(|e| anyhow::anyhow!(state::explain_storage_error(&config.pinger.state_dir, &e)))
}

/// Creates a self-check when one is due and reports, once, each one whose deadline just
/// passed without its return.
fn self_checks(config: &Config, store: &mut Store, now: i64) -> Result<(), StoreError> {
    let every = config.schedule.self_check_secs.as_i64();
    if store.last_self_check_created()?.is_none_or(|t| now - t >= every) {
        let tag = payload::new_tag(&mut rand::rngs::OsRng);
        store.create_self_check(&tag, now)?;
    }
    for check in store.self_checks_since(now - SELF_CHECK_DEADLINE_SECS - 3600)? {
        let Some(sent) = check.sent_at else { continue };
        let due = sent + SELF_CHECK_DEADLINE_SECS;
        let late = check.returned_at.is_none_or(|r| r > due);
        // Report in the tick right after the deadline only.
        if late && due < now && now - due <= 60 {
            error!(
                sent,
                "our own control mail did not come back within {} minutes: the pinger's mail \
                 path failed; pings sent around then are excluded from every remailer's \
                 statistics",
                SELF_CHECK_DEADLINE_SECS / 60
            );
        }
    }
    Ok(())
}

/// Starts the replay probes due now (when enabled) and reaches the verdicts that can be
/// reached (always: probes started before the probe was switched off still end).
fn replay_probes(
    config: &Config,
    secret: &[u8],
    store: &mut Store,
    now: i64,
) -> Result<(), StoreError> {
    let probe = &config.replay_probe;
    if probe.enabled {
        let remailers = plan::schedulable_remailers(&store.remailers()?, now);
        let last = store.last_scheduled_probes()?;
        for due in
            plan::due_replay_probes(secret, &remailers, &last, probe.every_secs.as_i64(), now)
        {
            let tag = payload::new_tag(&mut rand::rngs::OsRng);
            store.create_replay_probe(due.key_row_id, &tag, false, now)?;
            info!(remailer = %due.address, "replay probe started");
        }
    }
    for decided in store.settle_replay_probes(probe.wait_secs.as_i64(), now)? {
        info!(remailer = %decided.address, probe = decided.id, verdict = %decided.verdict,
              returns = decided.returns, "replay probe decided");
    }
    Ok(())
}

/// Queues the pings and requests whose slots fell due since the last tick, and adds the
/// candidates enough remailers vouch for.
fn queue_due(
    config: &Config,
    secret: &[u8],
    store: &mut Store,
    intensive_care: &IntensiveCareSet,
    now: i64,
) -> Result<(), StoreError> {
    let last_tick = store.state(LAST_TICK)?.and_then(|v| v.parse::<i64>().ok());
    let window = schedule::due_window(last_tick, now, config.schedule.max_lateness_secs.as_i64());
    if let Some(last) = last_tick {
        let missed = window.after - last;
        if missed > 0 {
            warn!(
                skipped_secs = missed,
                "slots missed while the daemon was not running are skipped"
            );
        }
    }
    let remailers = store.remailers()?;
    let due = plan::due_pings(
        secret,
        &plan::schedulable_remailers(&remailers, now),
        &config.schedule.ping_types,
        config.schedule.chain_pings,
        intensive_care,
        &window,
    );
    let singles = store.queue_single_pings(&due.singles, now)?;
    let chains = store.queue_chain_pings(&due.chains, now)?;
    if singles + chains > 0 {
        info!(single = singles, chain = chains, "pings queued");
    }
    if config.discovery.requests {
        let mut queued = 0;
        for request in plan::due_requests(secret, &remailers, &window) {
            let tag = payload::new_tag(&mut rand::rngs::OsRng);
            queued += usize::from(store.queue_request(&request, false, &tag, now)?);
        }
        if queued > 0 {
            info!(requests = queued, "information requests queued");
        }
    }
    if config.discovery.auto_add_min.0 > 0 {
        let ttl = i64::from(config.discovery.candidate_days.0) * 86_400;
        for address in store.commit_candidates(now, ttl, config.discovery.auto_add_min.0)? {
            info!(%address, "new remailer: vouched for by other remailers' replies");
            if config.discovery.requests {
                ask_at_once(store, &address, now)?;
            }
        }
    }
    store.set_state(LAST_TICK, &now.to_string())?;
    Ok(())
}

/// Queues every information request to `address` for sending now (after `fathometer add`
/// or a discovery), outside the daily schedule.
pub fn ask_at_once(store: &mut Store, address: &str, now: i64) -> Result<(), StoreError> {
    let remailer = store.find_remailer(address)?;
    for kind in RequestKind::ALL {
        let tag = payload::new_tag(&mut rand::rngs::OsRng);
        let due = DueRequest { remailer_id: remailer.id, kind, slot_time: now };
        store.queue_request(&due, true, &tag, now)?;
    }
    Ok(())
}
