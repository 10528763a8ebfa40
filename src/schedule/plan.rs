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
        for kind in RequestKind::ALL {
            for slot_time in request_slots_due(secret, &r.address, kind.as_str(), window) {
                due.push(DueRequest { remailer_id: r.id, kind, slot_time });
            }
        }
    }
    due.sort_by_key(|d| d.slot_time);
    due
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
}
