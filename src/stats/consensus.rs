//! The consensus of the pinger network (issue 15): a pure function of the pingers' lists
//! (ours among them) and `now`. Only fresh lists count (generated under 8 hours before `now`
//! and not more than 2 hours after it, as metastats required); per remailer the median
//! reliability and latency, each pinger's figure marked as an outlier by the median absolute
//! deviation, alive or failed by majority, and the broken chains a majority lists. With fewer
//! fresh pingers than the quorum the result says so and is not to be published as agreed:
//! a minority never speaks for the network (no split brain).

use std::collections::BTreeMap;

use crate::model::peer::PeerList;

/// A list older than this is stale.
pub const FRESH_SECS: i64 = 8 * 3600;
/// A list dated further ahead than this is not believed.
pub const FUTURE_SECS: i64 = 2 * 3600;
/// A figure further from the median than this many scaled MADs is an outlier.
pub const OUTLIER_MADS: f64 = 3.0;
/// The MAD's scale to a standard deviation for normal data.
const MAD_SCALE: f64 = 1.4826;
/// The smallest deviation ever called an outlier, in percentage points of reliability (when
/// most pingers agree exactly, the MAD is 0 and any difference would otherwise count).
pub const MIN_RELIABILITY_SPREAD: f64 = 5.0;
/// The same for latency, in seconds.
pub const MIN_LATENCY_SPREAD: f64 = 600.0;
/// A pinger that shows a remailer at this reliability or above counts it as alive.
pub const ALIVE_PERCENT: f64 = 10.0;

/// One pinger's list as fetched.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The pinger's name (its base URL, or `ours`).
    pub pinger: String,
    pub list: PeerList,
}

/// One pinger's figures for a remailer, with the verdict on them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct View {
    pub pinger: String,
    pub reliability: f64,
    pub latency: Option<i64>,
    pub reliability_outlier: bool,
    pub latency_outlier: bool,
}

/// The network's view of one remailer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RemailerConsensus {
    pub nick: String,
    /// The address most fresh pingers give, if any gives one.
    pub address: Option<String>,
    /// The capability line most fresh pingers give, if any gives one.
    pub caps: Option<String>,
    pub reliability: f64,
    pub latency: Option<f64>,
    /// More than half of the fresh pingers that list it show it alive.
    pub alive: bool,
    pub views: Vec<View>,
}

/// The consensus of one list kind (`Mixmaster` or `Cypherpunk`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Consensus {
    /// Fresh pingers, and those left out with the reason.
    pub fresh: Vec<String>,
    pub stale: Vec<(String, String)>,
    pub quorum: usize,
    /// Whether enough pingers are fresh: only then is it published as agreed.
    pub agreed: bool,
    pub remailers: Vec<RemailerConsensus>,
    /// Broken chains listed by more than half of the fresh pingers, per section.
    pub broken_type1: Vec<(String, String)>,
    pub broken_type2: Vec<(String, String)>,
}

/// The default quorum: a majority of the pingers configured (ours included).
pub fn majority(configured: usize) -> usize {
    configured / 2 + 1
}

/// The median of a non-empty sorted slice.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

/// Median and scaled median absolute deviation of `values` (not empty).
fn median_mad(values: &[f64]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let m = median(&sorted);
    let mut deviations: Vec<f64> = sorted.iter().map(|v| (v - m).abs()).collect();
    deviations.sort_by(f64::total_cmp);
    (m, MAD_SCALE * median(&deviations))
}

fn outliers(values: &[f64], floor: f64) -> (f64, Vec<bool>) {
    let (m, mad) = median_mad(values);
    let limit = (OUTLIER_MADS * mad).max(floor);
    (m, values.iter().map(|v| (v - m).abs() > limit).collect())
}

/// The value most pingers give (ties: the first in byte order).
fn most_given<'a>(values: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    counts.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0))).map(|(v, _)| v.to_owned())
}

/// The consensus of `snapshots` of one list kind as of `now`, with `quorum` fresh pingers
/// needed for it to be agreed.
pub fn consensus(snapshots: &[Snapshot], quorum: usize, now: i64) -> Consensus {
    let mut fresh: Vec<&Snapshot> = Vec::new();
    let mut stale = Vec::new();
    for s in snapshots {
        let age = now - s.list.generated;
        if age > FRESH_SECS {
            stale.push((s.pinger.clone(), format!("generated {} hours ago", age / 3600)));
        } else if age < -FUTURE_SECS {
            stale.push((s.pinger.clone(), format!("dated {} hours ahead", -age / 3600)));
        } else {
            fresh.push(s);
        }
    }
    let quorum = quorum.max(1);
    let mut by_nick: BTreeMap<&str, Vec<(&Snapshot, &crate::model::peer::PeerRow)>> =
        BTreeMap::new();
    for s in &fresh {
        for row in &s.list.rows {
            by_nick.entry(row.nick.as_str()).or_default().push((s, row));
        }
    }
    let remailers = by_nick
        .into_iter()
        .map(|(nick, seen)| {
            let reliabilities: Vec<f64> = seen.iter().map(|(_, r)| r.reliability).collect();
            let (reliability, rel_out) = outliers(&reliabilities, MIN_RELIABILITY_SPREAD);
            let latencies: Vec<f64> =
                seen.iter().filter_map(|(_, r)| r.latency.map(|l| l as f64)).collect();
            let (latency, lat_out) = if latencies.is_empty() {
                (None, Vec::new())
            } else {
                let (m, out) = outliers(&latencies, MIN_LATENCY_SPREAD);
                (Some(m), out)
            };
            let mut lat_flags = lat_out.into_iter();
            let views = seen
                .iter()
                .zip(rel_out)
                .map(|((s, r), reliability_outlier)| View {
                    pinger: s.pinger.clone(),
                    reliability: r.reliability,
                    latency: r.latency,
                    reliability_outlier,
                    latency_outlier: r.latency.is_some() && lat_flags.next().unwrap_or(false),
                })
                .collect();
            let alive_votes = seen.iter().filter(|(_, r)| r.reliability >= ALIVE_PERCENT).count();
            let address = most_given(seen.iter().filter_map(|(s, _)| s.list.address_of(nick)));
            let caps = most_given(seen.iter().filter_map(|(s, _)| s.list.caps_of(nick)));
            RemailerConsensus {
                nick: nick.to_owned(),
                address,
                caps,
                reliability,
                latency,
                alive: 2 * alive_votes > seen.len(),
                views,
            }
        })
        .collect();
    let agreed_chains = |pick: fn(&PeerList) -> &Vec<(String, String)>| {
        let mut votes: BTreeMap<&(String, String), usize> = BTreeMap::new();
        for s in &fresh {
            let mut own: Vec<&(String, String)> = pick(&s.list).iter().collect();
            own.sort();
            own.dedup();
            for c in own {
                *votes.entry(c).or_default() += 1;
            }
        }
        votes.into_iter().filter(|(_, n)| 2 * n > fresh.len()).map(|(c, _)| c.clone()).collect()
    };
    Consensus {
        agreed: fresh.len() >= quorum,
        fresh: fresh.iter().map(|s| s.pinger.clone()).collect(),
        stale,
        quorum,
        broken_type1: agreed_chains(|l| &l.broken_type1),
        broken_type2: agreed_chains(|l| &l.broken_type2),
        remailers,
    }
}

/// The kind of key a keyring holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyFamily {
    /// Mix (type II) keys, from `pubring.mix`.
    Mix,
    /// OpenPGP (type I) keys, from `pgp-all.asc`.
    Openpgp,
}

impl KeyFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyFamily::Mix => "mix",
            KeyFamily::Openpgp => "openpgp",
        }
    }

    /// "Mix key", "OpenPGP keys".
    pub fn label(self) -> &'static str {
        match self {
            KeyFamily::Mix => "Mix",
            KeyFamily::Openpgp => "OpenPGP",
        }
    }
}

/// One pinger's keyring of one family: the (address, key ID) pairs it publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    pub pinger: String,
    pub family: KeyFamily,
    pub keys: Vec<(String, String)>,
}

/// A remailer whose keys differ between pingers: who holds which keys (a stale key at one of
/// them, or someone in the middle handing out their own).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyDisagreement {
    pub address: String,
    pub family: KeyFamily,
    /// The key IDs a pinger publishes for the remailer (several joined by ` + `: a remailer
    /// may have an RSA and a DSA key) → the pingers that publish exactly those, most held
    /// first.
    pub holders: Vec<(String, Vec<String>)>,
}

impl KeyDisagreement {
    /// "OpenPGP keys: aa11 at ours, p1; cc33 at p2".
    pub fn describe(&self) -> String {
        let holders: Vec<String> =
            self.holders.iter().map(|(k, who)| format!("{k} at {}", who.join(", "))).collect();
        format!("{} keys: {}", self.family.label(), holders.join("; "))
    }
}

/// Every remailer whose keys differ between pingers, per key family. A pinger's keys for a
/// remailer are compared as a set (addresses and key IDs case-insensitively): the same RSA
/// and DSA key at every pinger agree; a pinger that does not list the remailer at all has no
/// say.
pub fn key_disagreements(keyrings: &[Keyring]) -> Vec<KeyDisagreement> {
    type Held = BTreeMap<String, std::collections::BTreeSet<String>>;
    let mut by_remailer: BTreeMap<(KeyFamily, String), Held> = BTreeMap::new();
    for ring in keyrings {
        for (address, key_id) in &ring.keys {
            by_remailer
                .entry((ring.family, address.to_ascii_lowercase()))
                .or_default()
                .entry(ring.pinger.clone())
                .or_default()
                .insert(key_id.to_ascii_lowercase());
        }
    }
    let mut out = Vec::new();
    for ((family, address), held) in by_remailer {
        let mut sets: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (pinger, ids) in held {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            sets.entry(ids.join(" + ")).or_default().push(pinger);
        }
        if sets.len() > 1 {
            let mut holders: Vec<(String, Vec<String>)> = sets.into_iter().collect();
            holders.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
            out.push(KeyDisagreement { address, family, holders });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::peer::PeerRow;

    const NOW: i64 = 1_700_000_000;

    fn list(generated: i64, rows: &[(&str, f64, Option<i64>)]) -> PeerList {
        PeerList {
            kind: "Mixmaster".into(),
            generated,
            rows: rows
                .iter()
                .map(|&(nick, reliability, latency)| PeerRow {
                    nick: nick.into(),
                    latency,
                    reliability,
                    options: String::new(),
                })
                .collect(),
            broken_type1: Vec::new(),
            broken_type2: Vec::new(),
            addresses: rows.iter().map(|r| (r.0.to_owned(), format!("{}@x.org", r.0))).collect(),
            caps_lines: Vec::new(),
        }
    }

    fn snap(name: &str, generated: i64, rows: &[(&str, f64, Option<i64>)]) -> Snapshot {
        Snapshot { pinger: name.into(), list: list(generated, rows) }
    }

    #[test]
    fn stale_and_future_lists_drop_out_and_below_quorum_nothing_is_agreed() {
        let snaps = [
            snap("a", NOW - 3600, &[("r", 99.0, Some(600))]),
            snap("b", NOW - 9 * 3600, &[("r", 10.0, Some(600))]),
            snap("c", NOW + 3 * 3600, &[("r", 10.0, Some(600))]),
        ];
        let c = consensus(&snaps, majority(3), NOW);
        assert_eq!(c.fresh, ["a"]);
        assert_eq!(c.stale.len(), 2);
        assert!(!c.agreed);
        assert_eq!(c.remailers[0].reliability, 99.0);
    }

    #[test]
    fn a_majority_decides_alive_and_broken_chains() {
        let mut snaps = vec![
            snap("a", NOW, &[("r", 0.0, None), ("s", 99.0, Some(300))]),
            snap("b", NOW, &[("r", 0.0, None), ("s", 98.0, Some(360))]),
            snap("c", NOW, &[("r", 95.0, Some(600)), ("s", 97.0, Some(420))]),
        ];
        snaps[0].list.broken_type2 = vec![("r".into(), "*".into())];
        snaps[1].list.broken_type2 = vec![("r".into(), "*".into()), ("s".into(), "r".into())];
        let c = consensus(&snaps, 2, NOW);
        assert!(c.agreed);
        let r = &c.remailers[0];
        assert!(!r.alive);
        assert_eq!(r.reliability, 0.0);
        assert!(r.views[2].reliability_outlier, "{r:?}");
        assert!(c.remailers[1].alive);
        assert_eq!(c.remailers[1].latency, Some(360.0));
        assert_eq!(c.broken_type2, [("r".to_owned(), "*".to_owned())]);
        assert_eq!(c.remailers[1].address.as_deref(), Some("s@x.org"));
    }

    #[test]
    fn a_remailer_with_another_key_at_one_pinger_is_flagged_with_who_holds_what() {
        let ring = |pinger: &str, keys: &[(&str, &str)]| Keyring {
            pinger: pinger.to_owned(),
            family: KeyFamily::Mix,
            keys: keys.iter().map(|(a, k)| (a.to_string(), k.to_string())).collect(),
        };
        let rings = [
            ring("ours", &[("a@x.org", "AA11"), ("b@x.org", "bb22")]),
            ring("p1", &[("a@x.org", "aa11"), ("b@x.org", "bb22")]),
            ring("p2", &[("A@x.org", "cc33"), ("b@x.org", "bb22")]),
        ];
        let found = key_disagreements(&rings);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].address, "a@x.org");
        assert_eq!(
            found[0].holders,
            [
                ("aa11".to_owned(), vec!["ours".to_owned(), "p1".to_owned()]),
                ("cc33".to_owned(), vec!["p2".to_owned()])
            ]
        );
        assert!(key_disagreements(&rings[..2]).is_empty());
        assert_eq!(found[0].describe(), "Mix keys: aa11 at ours, p1; cc33 at p2");
    }

    #[test]
    fn a_remailer_with_two_openpgp_keys_everywhere_agrees_and_one_missing_key_disagrees() {
        let ring = |pinger: &str, family: KeyFamily, keys: &[(&str, &str)]| Keyring {
            pinger: pinger.to_owned(),
            family,
            keys: keys.iter().map(|(a, k)| (a.to_string(), k.to_string())).collect(),
        };
        let both = [("a@x.org", "rsa1"), ("a@x.org", "dsa2")];
        let rings = [
            ring("ours", KeyFamily::Openpgp, &both),
            ring("p1", KeyFamily::Openpgp, &[("a@x.org", "DSA2"), ("a@x.org", "rsa1")]),
            // The same key ID as a Mix key says nothing about the OpenPGP ones.
            ring("p1", KeyFamily::Mix, &[("a@x.org", "mix9")]),
            // A pinger that does not know the remailer has no say.
            ring("p3", KeyFamily::Openpgp, &[("z@x.org", "zz")]),
        ];
        assert!(key_disagreements(&rings).is_empty());
        let mut stale = rings.to_vec();
        stale.push(ring("p2", KeyFamily::Openpgp, &[("a@x.org", "rsa1")]));
        let found = key_disagreements(&stale);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].family, KeyFamily::Openpgp);
        assert_eq!(found[0].describe(), "OpenPGP keys: dsa2 + rsa1 at ours, p1; rsa1 at p2");
    }

    proptest! {
        /// With fewer fresh pingers than the quorum, never agreed, whatever they say; with at
        /// least the quorum, always.
        #[test]
        fn a_minority_never_publishes(
            fresh in 0usize..6, stale in 0usize..6, configured in 1usize..12,
            rel in proptest::collection::vec(0.0f64..=100.0, 12),
        ) {
            let mut snaps = Vec::new();
            for (i, &r) in rel.iter().take(fresh).enumerate() {
                snaps.push(snap(&format!("f{i}"), NOW - 60, &[("r", r, Some(600))]));
            }
            for (i, &r) in rel[6..].iter().take(stale).enumerate() {
                snaps.push(snap(&format!("s{i}"), NOW - FRESH_SECS - 1, &[("r", r, None)]));
            }
            let quorum = majority(configured);
            let c = consensus(&snaps, quorum, NOW);
            prop_assert_eq!(c.agreed, fresh >= quorum);
            prop_assert_eq!(c.fresh.len(), fresh);
        }

        /// One wild pinger among honest ones that roughly agree is marked as the outlier and
        /// moves the median by no more than the honest pingers' own spread.
        #[test]
        fn one_wild_pinger_is_an_outlier_and_barely_moves_the_median(
            honest in proptest::collection::vec(95.0f64..=100.0, 4..9),
            wild in 0.0f64..=40.0,
        ) {
            let mut snaps: Vec<Snapshot> = honest
                .iter()
                .enumerate()
                .map(|(i, &r)| snap(&format!("h{i}"), NOW, &[("r", r, Some(600))]))
                .collect();
            snaps.push(snap("wild", NOW, &[("r", wild, Some(40 * 3600))]));
            let c = consensus(&snaps, 1, NOW);
            let r = &c.remailers[0];
            let wild_view = r.views.iter().find(|v| v.pinger == "wild").unwrap();
            prop_assert!(wild_view.reliability_outlier && wild_view.latency_outlier, "{:?}", r);
            prop_assert!(r.views.iter().filter(|v| v.pinger != "wild").all(|v| !v.reliability_outlier));
            let (lo, hi) = honest.iter().fold((100.0f64, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            prop_assert!(r.reliability >= lo && r.reliability <= hi, "{} outside {lo}..{hi}", r.reliability);
            prop_assert!(r.alive);
        }
    }
}
