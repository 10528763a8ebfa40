//! What must hold after every step of a simulation, checked against the store and the
//! network's ground truth.
//!
//! - **counted once**: every mail recorded as a return matches exactly one returned ping
//!   (a duplicate never counts again);
//! - **sent means accepted**: a ping is `sent` only if the MTA took its message (a ping the
//!   pinger failed to send is never charged);
//! - **latency at delivery**: a returned ping's return time is when a copy was delivered;
//! - **altered is not returned**: a ping whose every delivered copy was altered on the way
//!   or was a bounce is not `returned`;
//! - **nothing lost** (once the network is drained and the mailbox read): every ping sent
//!   whose return was delivered unaltered is `returned`, whatever crashed in between;
//! - **reliability recomputed** (once settled): every remailer's published figures (pings
//!   counted, returned, reliability, median latency) equal those computed from the ground
//!   truth (when the MTA took each ping, when its copies were delivered and whether altered),
//!   under the model's rules: a ping is charged only if the pinger heard the MTA take it or
//!   its return proves it left, pings sent while the pinger's own mail path failed are left
//!   out (its self-checks decide that), a return counts from its first unaltered copy, and a
//!   bounce or an altered copy settles a ping that never came back intact as failed;
//! - **keys followed**: no packet reaches a remailer encrypted to a key it stopped decoding
//!   with (the rotating remailer keeps its old key [`super::network::GRACE_SECS`]; the pinger,
//!   asking for keys daily, must have moved on by then);
//! - **packets decode**: every packet the pinger built decodes at its remailer;
//! - **integrity**: `PRAGMA integrity_check` says ok.

use std::collections::BTreeMap;

use anyhow::Result;

use super::Simulation;
use super::network::{Arrival, GroundTruth};
use crate::model::{Clock, Ping, PingType, SECONDS_PER_DAY, SELF_CHECK_DEADLINE_SECS};
use crate::stats;
use crate::store::AuditedPing;

/// A broken invariant: which, when, and the evidence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    pub step: u64,
    pub at: i64,
    pub rule: &'static str,
    pub detail: String,
}

/// Steps between two checks of every ping.
const FULL_CHECK_STEPS: u64 = 12;

/// The invariants as of now; `settled`: the network is drained and the mailbox read, so
/// "nothing lost" applies too.
pub fn check(sim: &Simulation, settled: bool) -> Result<Vec<Violation>> {
    let now = sim.clock.now();
    let mut found = Vec::new();
    let mut violation = |rule: &'static str, detail: String| {
        found.push(Violation { step: 0, at: now, rule, detail });
    };
    // The counts at every step; every ping against the ground truth every hour of virtual
    // time and at the end (reading every ping at every step made a month quadratic).
    let full = settled || sim.summary.steps.is_multiple_of(FULL_CHECK_STEPS);
    let store = sim.pinger.store();
    let returned_mails = store.count_mails("returned")?;
    let returned_pings = store.count_pings("returned")?;
    let pings = if full { store.audit_pings()? } else { Vec::new() };
    let integrity = if settled || sim.summary.steps.is_multiple_of(50) {
        Some(store.integrity_check()?)
    } else {
        None
    };
    drop(store);
    if returned_mails != returned_pings {
        violation(
            "counted once",
            format!("{returned_mails} mails recorded as returns, {returned_pings} pings returned"),
        );
    }
    let network = sim.network.lock().unwrap_or_else(|e| e.into_inner());
    let truth = &network.truth;
    for ping in &pings {
        let Some(tag) = &ping.tag else { continue };
        let address = sim.return_address(tag);
        let accepted = truth.accepted.get(&address);
        let delivered = truth.delivered.get(&address).map(Vec::as_slice).unwrap_or_default();
        if ping.sent_at.is_some() && accepted.is_none_or(Vec::is_empty) {
            violation(
                "sent means accepted",
                format!("ping {} is sent, but the MTA never took {address}", ping.id),
            );
        }
        if ping.outcome == "returned" {
            let at = ping.returned_at.unwrap_or_default();
            if !delivered.iter().any(|&(t, what)| t == at && what == Arrival::Intact) {
                violation(
                    "latency at delivery",
                    format!(
                        "ping {} returned at {at}, but its copies were delivered at {delivered:?}",
                        ping.id
                    ),
                );
            }
        }
        if ping.outcome == "returned"
            && !delivered.is_empty()
            && delivered.iter().all(|d| d.1 != Arrival::Intact)
        {
            violation(
                "altered is not returned",
                format!("ping {}: no copy came back intact, yet it is returned", ping.id),
            );
        }
        if settled
            && ping.sent_at.is_some()
            && delivered.iter().any(|d| d.1 == Arrival::Intact)
            && ping.outcome != "returned"
        {
            violation(
                "nothing lost",
                format!(
                    "ping {} ({}) was delivered unaltered at {delivered:?}, but is `{}`",
                    ping.id, address, ping.outcome
                ),
            );
        }
    }
    if let Some((at, address)) = truth.stale_key.first() {
        violation(
            "keys followed",
            format!(
                "{} packets to retired keys, the first to {address} at {at}",
                truth.stale_key.len()
            ),
        );
    }
    if let Some(first) = truth.undecodable.first() {
        violation(
            "packets decode",
            format!("{} packets did not decode, the first: {first}", truth.undecodable.len()),
        );
    }
    if let Some(result) = integrity
        && result != "ok"
    {
        violation("integrity", result);
    }
    if settled && let Some(built) = &sim.last_built {
        let checks = sim.pinger.store().self_checks_since(now - 14 * SECONDS_PER_DAY)?;
        let checks: Vec<(i64, Option<i64>)> =
            checks.iter().filter_map(|c| c.sent_at.map(|s| (s, c.returned_at))).collect();
        let excluded = stats::own_failure_windows(&checks, SELF_CHECK_DEADLINE_SECS, now);
        let recomputed = recompute_mix(&pings, truth, &excluded, |tag| sim.return_address(tag));
        let model = sim.pinger.config.stats.model;
        for entry in &built.report.mix {
            let from_truth = recomputed.get(&entry.address).map(Vec::as_slice).unwrap_or_default();
            let expected = stats::remailer_stats(from_truth, now, model);
            let published = &entry.stats;
            let same = expected.sent == published.sent
                && expected.returned == published.returned
                && (expected.reliability - published.reliability).abs() < 1e-9
                && expected.latency_median == published.latency_median;
            if !same {
                violation(
                    "reliability recomputed",
                    format!(
                        "{}: published {} sent, {} returned, reliability {:.6}, latency {:?}; \
                         the ground truth gives {}, {}, {:.6}, {:?}",
                        entry.address,
                        published.sent,
                        published.returned,
                        published.reliability,
                        published.latency_median,
                        expected.sent,
                        expected.returned,
                        expected.reliability,
                        expected.latency_median
                    ),
                );
            }
        }
    }
    Ok(found)
}

/// The single `mix` pings of each remailer as the ground truth has them, under the model's
/// rules (see the module's documentation), without anything the store recorded about their
/// fate: the store only says which pings were planned, to whom, under which tag.
fn recompute_mix(
    pings: &[AuditedPing],
    truth: &GroundTruth,
    excluded: &[(i64, i64)],
    return_address: impl Fn(&str) -> String,
) -> BTreeMap<String, Vec<Ping>> {
    let mut by_remailer: BTreeMap<String, Vec<Ping>> = BTreeMap::new();
    for ping in pings.iter().filter(|p| !p.chain && p.ping_type == "mix") {
        let Some(tag) = &ping.tag else { continue };
        let address = return_address(tag);
        let accepted = truth.accepted.get(&address).map(Vec::as_slice).unwrap_or_default();
        let delivered = truth.delivered.get(&address).map(Vec::as_slice).unwrap_or_default();
        let returned = delivered.iter().filter(|d| d.1 == Arrival::Intact).map(|d| d.0).min();
        let heard = accepted.iter().filter(|a| a.1).map(|a| a.0).next_back();
        // Unheard and never back: the pinger cannot know it left, and does not charge it.
        // Back without being heard: its payload says when it was built, which in the
        // simulation is the instant the MTA took it.
        let Some(sent) = heard.or_else(|| returned.and(accepted.first().map(|a| a.0))) else {
            continue;
        };
        if stats::in_own_failure(excluded, sent) {
            continue;
        }
        let failed = if returned.is_none() {
            delivered.iter().filter(|d| d.1 != Arrival::Intact).map(|d| d.0).min()
        } else {
            None
        };
        by_remailer.entry(ping.remailer.clone()).or_default().push(Ping {
            ping_type: PingType::Mix,
            sent,
            returned,
            failed,
        });
    }
    by_remailer
}
