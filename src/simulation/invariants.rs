//! What must hold after every step of a simulation, checked against the store and the
//! network's ground truth.
//!
//! - **counted once**: every mail recorded as a return matches exactly one returned ping
//!   (a duplicate never counts again);
//! - **sent means accepted**: a ping is `sent` only if the MTA took its message (a ping the
//!   pinger failed to send is never charged);
//! - **latency at delivery**: a returned ping's return time is when a copy was delivered;
//! - **altered is not returned**: a ping whose every delivered copy was altered on the way
//!   is not `returned`;
//! - **nothing lost** (once the network is drained and the mailbox read): every ping sent
//!   whose return was delivered unaltered is `returned`, whatever crashed in between;
//! - **integrity**: `PRAGMA integrity_check` says ok.

use anyhow::Result;

use super::Simulation;
use crate::model::Clock;

/// A broken invariant: which, when, and the evidence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    pub step: u64,
    pub at: i64,
    pub rule: &'static str,
    pub detail: String,
}

/// The invariants as of now; `settled`: the network is drained and the mailbox read, so
/// "nothing lost" applies too.
pub fn check(sim: &Simulation, settled: bool) -> Result<Vec<Violation>> {
    let now = sim.clock.now();
    let mut found = Vec::new();
    let mut violation = |rule: &'static str, detail: String| {
        found.push(Violation { step: 0, at: now, rule, detail });
    };
    let store = sim.pinger.store();
    let pings = store.audit_pings()?;
    let returned_mails = store.count_mails("returned")?;
    let integrity = if settled || sim.summary.steps.is_multiple_of(50) {
        Some(store.integrity_check()?)
    } else {
        None
    };
    drop(store);
    let returned_pings = pings.iter().filter(|p| p.outcome == "returned").count() as u64;
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
        let address = sim.pinger.identity.return_address(tag).to_ascii_lowercase();
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
            if !delivered.iter().any(|&(t, altered)| t == at && !altered) {
                violation(
                    "latency at delivery",
                    format!(
                        "ping {} returned at {at}, but its copies were delivered at {delivered:?}",
                        ping.id
                    ),
                );
            }
        }
        if ping.outcome == "returned" && !delivered.is_empty() && delivered.iter().all(|d| d.1) {
            violation(
                "altered is not returned",
                format!("ping {}: every copy was altered, yet it is returned", ping.id),
            );
        }
        if settled
            && ping.sent_at.is_some()
            && delivered.iter().any(|d| !d.1)
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
    if let Some(result) = integrity
        && result != "ok"
    {
        violation("integrity", result);
    }
    Ok(found)
}
