//! The statistics window: which of the store's rows count, as of `now`.
//!
//! Pings sent while the pinger's own mail path was failing (a self-check did not come back,
//! decision 8) are left out: their loss would be ours, not the remailer's. A remailer's key
//! types are those it has a current key for at `now`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{in_own_failure, own_failure_windows};
use crate::model::{ChainPing, Dataset, HistoryRows, RemailerHistory, SELF_CHECK_DEADLINE_SECS};

/// A deliberate bug, set only by `fathometer simulate --inject-bug charge-own-failure`:
/// pings sent while the pinger's own mail path failed are charged to the remailers. It exists
/// to show that the simulation's recomputation of the figures catches such a bug.
pub static INJECTED_BUG_CHARGE_OWN_FAILURE: AtomicBool = AtomicBool::new(false);

/// The dataset of a build from the store's rows.
pub fn dataset(rows: HistoryRows, now: i64) -> Dataset {
    let mut excluded = own_failure_windows(&rows.self_checks, SELF_CHECK_DEADLINE_SECS, now);
    if INJECTED_BUG_CHARGE_OWN_FAILURE.load(Ordering::Relaxed) {
        excluded.clear();
    }
    let mut index: BTreeMap<i64, usize> = BTreeMap::new();
    let mut remailers: Vec<RemailerHistory> = Vec::with_capacity(rows.remailers.len());
    for r in rows.remailers {
        index.insert(r.id, remailers.len());
        let key_types = r.current_key_types(now);
        remailers.push(RemailerHistory {
            address: r.address,
            nick: r.nick,
            caps: r.caps,
            hidden: r.hidden,
            key_types,
            pings: Vec::new(),
        });
    }
    for single in rows.singles {
        if in_own_failure(&excluded, single.ping.sent) {
            continue;
        }
        if let Some(&i) = index.get(&single.remailer_id) {
            remailers[i].pings.push(single.ping);
        }
    }
    let address = |id: i64| index.get(&id).map(|&i| remailers[i].address.clone());
    let chains = rows
        .chains
        .iter()
        .filter(|c| !in_own_failure(&excluded, c.sent))
        .filter_map(|c| {
            Some(ChainPing {
                chain_type: c.chain_type,
                addr1: address(c.remailer1_id)?,
                addr2: address(c.remailer2_id)?,
                sent: c.sent,
                returned: c.returned,
                failed: c.failed,
            })
        })
        .collect();
    Dataset { remailers, chains, returns: rows.returns }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Ping, PingType, Remailer, RemailerKey, RemailerStatus, SingleRow};

    fn remailer(id: i64, address: &str, hidden: bool) -> Remailer {
        Remailer {
            id,
            address: address.into(),
            nick: Some(address.split('@').next().unwrap_or("x").into()),
            caps: None,
            status: RemailerStatus::Active,
            status_reason: None,
            remailer_type: None,
            last_answer_at: None,
            hidden,
            first_seen: 0,
            keys: vec![RemailerKey {
                id: id * 10,
                ping_type: PingType::Mix,
                key_id: "k".into(),
                valid_from: None,
                valid_until: Some(35_000),
                retired_at: None,
                first_seen: 0,
            }],
        }
    }

    fn single(remailer_id: i64, sent: i64, returned: Option<i64>) -> SingleRow {
        SingleRow {
            remailer_id,
            ping: Ping { ping_type: PingType::Mix, sent, returned, failed: None },
        }
    }

    #[test]
    fn pings_sent_while_our_own_mail_path_failed_are_left_out() {
        let rows = HistoryRows {
            remailers: vec![remailer(1, "a@x.example", false)],
            singles: vec![
                single(1, 10_000, Some(10_100)),
                single(1, 20_000, None),
                single(1, 30_000, Some(30_050)),
            ],
            // Self-checks at 5000 (back), 15000 (never back), 25000 (back).
            self_checks: vec![(5_000, Some(5_001)), (15_000, None), (25_000, Some(25_002))],
            ..Default::default()
        };
        let d = dataset(rows, 40_000);
        let sent: Vec<i64> = d.remailers[0].pings.iter().map(|p| p.sent).collect();
        // The window (5000, 25000) around the failed check is the pinger's fault.
        assert_eq!(sent, vec![30_000]);
    }

    #[test]
    fn key_types_are_those_current_at_now_and_unknown_remailers_are_dropped() {
        let rows = HistoryRows {
            remailers: vec![remailer(1, "a@x.example", true)],
            singles: vec![single(1, 100, None), single(2, 100, None)],
            chains: vec![crate::model::ChainRow {
                chain_type: crate::model::ChainType::Mix,
                remailer1_id: 1,
                remailer2_id: 2,
                sent: 50,
                returned: None,
                failed: None,
            }],
            ..Default::default()
        };
        let d = dataset(rows.clone(), 1_000);
        assert_eq!(d.remailers[0].key_types, vec![PingType::Mix]);
        assert!(d.remailers[0].hidden);
        assert_eq!(d.remailers[0].pings.len(), 1);
        assert!(d.chains.is_empty(), "a chain through an unknown remailer");
        assert!(dataset(rows, 40_000).remailers[0].key_types.is_empty(), "the key expired");
    }
}
