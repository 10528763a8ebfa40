//! Which pings are due: the scheduler's slot rules applied to every known remailer.
//! Pure: the remailers, the window and the secret come in, the due pings go out.

use std::collections::HashSet;

use crate::model::{
    ChainType, DueChainPing, DueRequest, DueSinglePing, PingType, Remailer, RemailerStatus,
    RequestKind,
};

use super::{DueWindow, chain_slots_due, request_slots_due, single_slots_due};

/// A key the scheduler may ping.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulableKey {
    pub key_row_id: i64,
    pub ping_type: PingType,
    pub key_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SchedulableRemailer {
    pub address: String,
    pub keys: Vec<SchedulableKey>,
}

/// Remailers that are not disabled, with their keys that are valid at `now`.
pub fn schedulable_remailers(rows: &[Remailer], now: i64) -> Vec<SchedulableRemailer> {
    rows.iter()
        .filter(|r| r.status != RemailerStatus::Disabled)
        .map(|r| SchedulableRemailer {
            address: r.address.clone(),
            keys: r
                .keys
                .iter()
                .filter(|k| k.is_current(now))
                .map(|k| SchedulableKey {
                    key_row_id: k.id,
                    ping_type: k.ping_type,
                    key_id: k.key_id.clone(),
                })
                .collect(),
        })
        .filter(|r| !r.keys.is_empty())
        .collect()
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DuePlan {
    pub singles: Vec<DueSinglePing>,
    pub chains: Vec<DueChainPing>,
}

/// The key a remailer uses as a hop of a chain of `chain_type`: of its most preferred type,
/// the newest key (highest row id), as Echolot picks the newest `last_update`.
fn hop_key(r: &SchedulableRemailer, chain_type: ChainType) -> Option<&SchedulableKey> {
    chain_type
        .preferred_hop_types()
        .iter()
        .find_map(|t| r.keys.iter().filter(|k| k.ping_type == *t).max_by_key(|k| k.key_row_id))
}

/// Every single and chain ping whose slot lies in `window`.
pub fn due_pings(
    secret: &[u8],
    remailers: &[SchedulableRemailer],
    ping_types: &[PingType],
    chain_pings: bool,
    intensive_care: &HashSet<(String, String, ChainType)>,
    window: &DueWindow,
) -> DuePlan {
    let mut plan = DuePlan::default();
    for r in remailers {
        for k in r.keys.iter().filter(|k| ping_types.contains(&k.ping_type)) {
            for slot in single_slots_due(secret, &r.address, k.ping_type, &k.key_id, window) {
                plan.singles.push(DueSinglePing { key_row_id: k.key_row_id, slot_time: slot });
            }
        }
    }
    if !chain_pings {
        return plan;
    }
    for chain_type in ChainType::ALL {
        let hops: Vec<(&str, &SchedulableKey)> = remailers
            .iter()
            .filter_map(|r| hop_key(r, chain_type).map(|k| (r.address.as_str(), k)))
            .collect();
        for (a1, k1) in &hops {
            for (a2, k2) in &hops {
                if a1 == a2 {
                    continue;
                }
                let interesting =
                    intensive_care.contains(&(a1.to_string(), a2.to_string(), chain_type));
                for (slot, _) in chain_slots_due(secret, a1, a2, chain_type, interesting, window) {
                    plan.chains.push(DueChainPing {
                        chain_type,
                        hop1_key_row_id: k1.key_row_id,
                        hop2_key_row_id: k2.key_row_id,
                        slot_time: slot,
                    });
                }
            }
        }
    }
    plan
}

/// Every information request due in `window`: each kind, once a day, to every remailer that
/// has not been disabled (an unresponsive one keeps being asked: an answer revives it).
pub fn due_requests(secret: &[u8], remailers: &[Remailer], window: &DueWindow) -> Vec<DueRequest> {
    let mut due = Vec::new();
    for r in remailers.iter().filter(|r| r.status != RemailerStatus::Disabled) {
        // A YAMN remailer never answers remailer-stats (`yamn.md` §10): not asked.
        let yamn_only = !r.keys.is_empty() && r.keys.iter().all(|k| k.ping_type == PingType::Yamn);
        for kind in RequestKind::ALL {
            if yamn_only && kind == RequestKind::Stats {
                continue;
            }
            for slot_time in request_slots_due(secret, &r.address, kind.as_str(), window) {
                due.push(DueRequest { remailer_id: r.id, kind, slot_time });
            }
        }
    }
    due.sort_by_key(|d| d.slot_time);
    due
}

/// A replay probe due now: the remailer and the type II key row it goes through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueProbe {
    pub address: String,
    pub key_row_id: i64,
}

/// The replay probes due at `now`: every remailer with a current type II key whose probe
/// time in the current period of `every` seconds has come and that was not probed since.
/// `last` holds when each remailer's newest scheduled probe started. A probe time missed
/// while the daemon was down is taken up late within its period, once; a period missed
/// whole is skipped, never made up.
pub fn due_replay_probes(
    secret: &[u8],
    remailers: &[SchedulableRemailer],
    last: &std::collections::BTreeMap<String, i64>,
    every: i64,
    now: i64,
) -> Vec<DueProbe> {
    remailers
        .iter()
        .filter_map(|r| {
            let key = r
                .keys
                .iter()
                .filter(|k| k.ping_type == PingType::Mix)
                .max_by_key(|k| k.key_row_id)?;
            let slot = super::replay_probe_slot(secret, &r.address, every, now);
            let probed = last.get(&r.address).is_some_and(|&t| t >= slot);
            (now >= slot && !probed)
                .then(|| DueProbe { address: r.address.clone(), key_row_id: key.key_row_id })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::*;

    fn remailer(address: &str, keys: &[(i64, PingType)]) -> SchedulableRemailer {
        SchedulableRemailer {
            address: address.into(),
            keys: keys
                .iter()
                .map(|&(id, t)| SchedulableKey {
                    key_row_id: id,
                    ping_type: t,
                    key_id: format!("k{id}"),
                })
                .collect(),
        }
    }

    #[test]
    fn a_day_of_ticks_pings_each_key_twelve_times_and_each_pair_at_most_weekly() {
        let secret = b"secret";
        let rems = vec![
            remailer("a@x.example", &[(1, PingType::Mix), (2, PingType::CpunkRsa)]),
            remailer(
                "b@y.example",
                &[(3, PingType::Mix), (4, PingType::CpunkDsa), (5, PingType::CpunkRsa)],
            ),
            remailer("c@z.example", &[(6, PingType::CpunkClear)]),
        ];
        let start = 1_800_000_000 - 1_800_000_000 % 86_400;
        let mut singles = Vec::new();
        let mut chains = Vec::new();
        let mut last = start;
        for now in (start + 60..=start + 86_400).step_by(60) {
            let w = DueWindow { after: last, until: now };
            let plan = due_pings(secret, &rems, &PingType::ALL, true, &HashSet::new(), &w);
            singles.extend(plan.singles);
            chains.extend(plan.chains);
            last = now;
        }
        for key in 1..=6 {
            assert_eq!(singles.iter().filter(|d| d.key_row_id == key).count(), 12, "key {key}");
        }
        // Chains: cpunk hops use DSA before RSA (b: key 4), and pairs are never self-chains.
        assert!(chains.iter().all(|c| c.hop1_key_row_id != c.hop2_key_row_id));
        assert!(chains.iter().filter(|c| c.chain_type == ChainType::Cpunk).all(|c| {
            [2, 4, 6].contains(&c.hop1_key_row_id) && [2, 4, 6].contains(&c.hop2_key_row_id)
        }));
        // 2 mix pairs + 6 cpunk pairs, each at most once in a day without intensive care.
        assert!(chains.len() <= 8);
    }

    #[test]
    fn interesting_chains_are_pinged_daily() {
        let secret = b"secret";
        let rems = vec![
            remailer("a@x.example", &[(1, PingType::Mix)]),
            remailer("b@y.example", &[(2, PingType::Mix)]),
        ];
        let ic: HashSet<_> =
            [("a@x.example".to_string(), "b@y.example".to_string(), ChainType::Mix)].into();
        let start = 1_800_000_000 - 1_800_000_000 % 86_400;
        let w = DueWindow { after: start, until: start + 7 * 86_400 };
        let plan = due_pings(secret, &rems, &PingType::ALL, true, &ic, &w);
        let ab = plan.chains.iter().filter(|c| c.hop1_key_row_id == 1).count();
        let ba = plan.chains.iter().filter(|c| c.hop1_key_row_id == 2).count();
        assert!(ab >= 7, "interesting chain pinged {ab} times in a week");
        assert!(ba <= 2, "ordinary chain pinged {ba} times in a week");
        let none = due_pings(secret, &rems, &PingType::ALL, false, &ic, &w);
        assert!(none.chains.is_empty());
    }

    #[test]
    fn disabled_remailers_and_unselected_types_are_not_pinged() {
        let secret = b"s";
        let rems = vec![remailer("a@x.example", &[(1, PingType::Mix), (2, PingType::CpunkRsa)])];
        let w = DueWindow { after: 0, until: 86_400 };
        let plan = due_pings(secret, &rems, &[PingType::Mix], false, &HashSet::new(), &w);
        assert!(plan.singles.iter().all(|d| d.key_row_id == 1));
        assert_eq!(plan.singles.len(), 12);
    }

    #[test]
    fn each_request_kind_is_due_once_a_day_and_disabled_remailers_are_not_asked() {
        let row = |id: i64, address: &str, status: RemailerStatus| Remailer {
            id,
            address: address.into(),
            nick: None,
            caps: None,
            status,
            status_reason: None,
            remailer_type: None,
            last_answer_at: None,
            hidden: false,
            first_seen: 0,
            keys: Vec::new(),
        };
        let rows = vec![
            row(1, "a@x", RemailerStatus::Active),
            row(2, "b@x", RemailerStatus::Unresponsive),
            row(3, "c@x", RemailerStatus::Disabled),
        ];
        let start = 1_800_000_000 - 1_800_000_000 % 86_400;
        let mut due = Vec::new();
        for tick in 0..(3 * 86_400 / 300) {
            let window = DueWindow { after: start + tick * 300, until: start + (tick + 1) * 300 };
            due.extend(due_requests(b"secret", &rows, &window));
        }
        // 3 days, 5 kinds, 2 remailers (the disabled one is never asked).
        assert_eq!(due.len(), 3 * 5 * 2);
        for kind in RequestKind::ALL {
            let per_day: HashSet<i64> = due
                .iter()
                .filter(|d| d.kind == kind && d.remailer_id == 1)
                .map(|d| d.slot_time.div_euclid(86_400))
                .collect();
            assert_eq!(per_day.len(), 3);
        }
        assert!(due.iter().all(|d| d.remailer_id != 3));
        // Offsets differ between kinds and secrets (they are hashed, not fixed).
        let other =
            due_requests(b"other", &rows, &DueWindow { after: start, until: start + 86_400 });
        let ours: Vec<i64> = due.iter().take(10).map(|d| d.slot_time).collect();
        assert_ne!(other.iter().map(|d| d.slot_time).take(10).collect::<Vec<_>>(), ours);
    }

    #[test]
    fn a_yamn_remailer_is_never_asked_for_stats() {
        let key = |id: i64, ping_type: PingType| RemailerKey {
            id,
            ping_type,
            key_id: format!("k{id}"),
            valid_from: None,
            valid_until: None,
            retired_at: None,
            first_seen: 0,
        };
        let row = |id: i64, keys: Vec<RemailerKey>| Remailer {
            id,
            address: format!("r{id}@x"),
            nick: None,
            caps: None,
            status: RemailerStatus::Active,
            status_reason: None,
            remailer_type: None,
            last_answer_at: None,
            hidden: false,
            first_seen: 0,
            keys,
        };
        let rows = vec![
            row(1, vec![key(1, PingType::Yamn)]),
            row(2, vec![key(2, PingType::Mix), key(3, PingType::Yamn)]),
            row(3, Vec::new()),
        ];
        let start = 1_800_000_000 - 1_800_000_000 % 86_400;
        let due =
            due_requests(b"secret", &rows, &DueWindow { after: start, until: start + 86_400 });
        let kinds = |id: i64| {
            due.iter().filter(|d| d.remailer_id == id).map(|d| d.kind).collect::<Vec<_>>()
        };
        assert_eq!(kinds(1).len(), 4);
        assert!(!kinds(1).contains(&RequestKind::Stats), "YAMN ignores remailer-stats");
        assert_eq!(kinds(2).len(), 5, "a Mixmaster key too: it may answer");
        assert_eq!(kinds(3).len(), 5, "unknown yet: asked everything");
    }

    #[test]
    fn every_type_ii_remailer_is_probed_once_per_period_at_a_spread_time() {
        let secret = b"secret";
        let every = 7 * 86_400;
        let rems = vec![
            remailer("a@x.example", &[(1, PingType::Mix), (2, PingType::CpunkRsa)]),
            remailer("b@y.example", &[(3, PingType::Mix), (4, PingType::Mix)]),
            remailer("c@z.example", &[(5, PingType::CpunkDsa)]),
        ];
        let mut last = std::collections::BTreeMap::new();
        let mut probes: Vec<(i64, DueProbe)> = Vec::new();
        // Four periods of ten-minute ticks.
        let start = 40 * every;
        for now in (start..start + 4 * every).step_by(600) {
            for due in due_replay_probes(secret, &rems, &last, every, now) {
                last.insert(due.address.clone(), now);
                probes.push((now, due));
            }
        }
        for address in ["a@x.example", "b@y.example"] {
            let times: Vec<i64> =
                probes.iter().filter(|(_, d)| d.address == address).map(|(t, _)| *t).collect();
            assert_eq!(times.len(), 4, "{address}: {times:?}");
            let periods: std::collections::BTreeSet<i64> =
                times.iter().map(|t| t.div_euclid(every)).collect();
            assert_eq!(periods.len(), 4, "one per period");
        }
        assert!(probes.iter().all(|(_, d)| d.address != "c@z.example"), "type I only");
        // The newest type II key is the one probed.
        assert!(
            probes
                .iter()
                .filter(|(_, d)| d.address == "b@y.example")
                .all(|(_, d)| d.key_row_id == 4)
        );
        // The time within the period changes from period to period (not learnable).
        let offsets: std::collections::BTreeSet<i64> = probes
            .iter()
            .filter(|(_, d)| d.address == "a@x.example")
            .map(|(t, _)| t.rem_euclid(every))
            .collect();
        assert!(offsets.len() > 1, "{offsets:?}");
    }

    proptest::proptest! {
        /// A probe is never due twice in one period, and never before its time.
        #[test]
        fn a_probe_is_due_at_most_once_per_period(
            every in 600i64..(60 * 86_400),
            now in 0i64..4_000_000_000,
            last_offset in proptest::option::of(0i64..(60 * 86_400)),
        ) {
            let rems = vec![remailer("a@x.example", &[(1, PingType::Mix)])];
            let slot = crate::schedule::replay_probe_slot(b"s", "a@x.example", every, now);
            proptest::prop_assert!(slot.div_euclid(every) == now.div_euclid(every));
            let mut last = std::collections::BTreeMap::new();
            if let Some(o) = last_offset {
                last.insert("a@x.example".to_string(), slot + o);
            }
            let due = due_replay_probes(b"s", &rems, &last, every, now);
            if !due.is_empty() {
                proptest::prop_assert!(now >= slot);
                proptest::prop_assert!(last_offset.is_none());
            }
        }
    }
}
