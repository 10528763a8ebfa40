//! The consensus lists (issue 15): `consensus/mlist.txt`, `mlist2.txt`, `rlist.txt` and
//! `rlist2.txt` in the byte-compatible layouts of [`super::lists`], so that a client's
//! allpingers entry can point at the agreed view. A list is rendered only when its
//! consensus is agreed (enough fresh pingers): a minority's view is never published as the
//! network's. The figures are the medians; the daily history columns are unknown (`?`), as
//! the pingers publish no daily figures in their v2 lists that could be combined.

use crate::publish::lists::{self, Sections, V2Kind};
use crate::stats::consensus::Consensus;
use crate::stats::{ListEntry, RemailerStats, STATS_DAYS};

/// The rendered consensus lists, each present only when its consensus is agreed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsensusLists {
    pub mlist: Option<String>,
    pub mlist2: Option<String>,
    pub rlist: Option<String>,
    pub rlist2: Option<String>,
}

impl ConsensusLists {
    /// (file name, text) of each list rendered.
    pub fn files(&self) -> Vec<(&'static str, &str)> {
        [
            ("mlist.txt", &self.mlist),
            ("mlist2.txt", &self.mlist2),
            ("rlist.txt", &self.rlist),
            ("rlist2.txt", &self.rlist2),
        ]
        .into_iter()
        .filter_map(|(name, text)| text.as_deref().map(|t| (name, t)))
        .collect()
    }
}

/// The rows of a consensus, in the order Echolot sorts a list (reliability, then latency).
pub fn entries(consensus: &Consensus) -> Vec<ListEntry> {
    let mut entries: Vec<ListEntry> = consensus
        .remailers
        .iter()
        .map(|r| {
            let address = r.address.clone().unwrap_or_default();
            ListEntry {
                caps: r
                    .caps
                    .clone()
                    .unwrap_or_else(|| format!("$remailer{{\"{}\"}} = \"<{address}>\";", r.nick)),
                address,
                nick: r.nick.clone(),
                listed: true,
                stats: RemailerStats {
                    reliability: r.reliability / 100.0,
                    latency_median: r.latency,
                    reliability_by_day: [None; STATS_DAYS],
                    latency_median_by_day: [None; STATS_DAYS],
                    sent: r.views.len(),
                    returned: 0,
                },
            }
        })
        .collect();
    crate::stats::sort_list(&mut entries, 0);
    entries
}

fn chain_lines(chains: &[(String, String)]) -> String {
    chains.iter().map(|(a, b)| format!("({a} {b})")).collect::<Vec<_>>().join("\n")
}

/// The consensus lists of the type II (`mix`) and type I (`cpunk`) consensus as of `now`.
/// Both lists carry the broken chains of both sections, as Mixmaster reads them from
/// mlist.txt for either type.
pub fn render(mix: &Consensus, cpunk: &Consensus, now: i64) -> ConsensusLists {
    let type1 = chain_lines(&cpunk.broken_type1);
    let type2 = chain_lines(&mix.broken_type2);
    let sections =
        Sections { same_operator: None, broken_type1: Some(&type1), broken_type2: Some(&type2) };
    let mut out = ConsensusLists::default();
    if mix.agreed {
        let rows = entries(mix);
        let refs: Vec<&ListEntry> = rows.iter().collect();
        out.mlist = Some(lists::mlist(&refs, &sections, now));
        out.mlist2 = Some(lists::list_v2(V2Kind::Mixmaster, &refs, &sections, now));
    }
    if cpunk.agreed {
        let rows = entries(cpunk);
        let refs: Vec<&ListEntry> = rows.iter().collect();
        out.rlist = Some(lists::rlist(&refs, &sections, now));
        out.rlist2 = Some(lists::list_v2(V2Kind::Cypherpunk, &refs, &sections, now));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::peer_list::parse_list_v2;
    use crate::stats::consensus::{Snapshot, consensus};

    fn vector(path: &str) -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
        std::fs::read_to_string(dir.join(path)).unwrap()
    }

    /// Three pingers: Echolot's own list, and two that differ from it a little and a lot.
    fn three() -> Vec<Snapshot> {
        let echolot = parse_list_v2(&vector("echolot/example/results/mlist2.txt")).unwrap();
        let mut close = echolot.clone();
        close.rows[0].reliability = 99.0;
        close.rows[2].reliability = 60.0;
        let mut wild = echolot.clone();
        wild.rows[0].reliability = 3.0;
        wild.broken_type2.clear();
        ["echolot", "close", "wild"]
            .into_iter()
            .zip([echolot, close, wild])
            .map(|(pinger, list)| Snapshot { pinger: pinger.into(), list })
            .collect()
    }

    #[test]
    fn agreed_lists_carry_the_medians_and_read_back() {
        let now = 1_700_000_000 + 600;
        let mix = consensus(&three(), 2, now);
        let cpunk = consensus(&[], 2, now);
        let lists = render(&mix, &cpunk, now);
        assert!(lists.rlist.is_none() && lists.rlist2.is_none(), "no type I pinger: not agreed");
        let mlist2 = lists.mlist2.as_deref().unwrap();
        let back = parse_list_v2(mlist2).unwrap();
        let figures: Vec<(&str, f64, Option<i64>)> =
            back.rows.iter().map(|r| (r.nick.as_str(), r.reliability, r.latency)).collect();
        // fast: 100, 99, 3 → 99; lossy: 64.7, 60, 64.7 → 64.7; gone 66.7 everywhere.
        assert_eq!(
            figures,
            [("fast", 99.0, Some(600)), ("gone", 66.7, Some(1500)), ("lossy", 64.7, Some(7260))]
        );
        // The broken chains two of three list; the capability lines verbatim.
        assert_eq!(back.broken_type2, [("*".into(), "gone".into()), ("fast".into(), "*".into())]);
        assert_eq!(
            back.caps_of("fast"),
            Some("$remailer{\"fast\"} = \"<fast@one.example> mix middle klen1000\";")
        );
        // mlist.txt in the v1 layout: 44 dashes, then rows the Mixmaster client reads by
        // column (latency 28.., reliability 37..).
        let mlist = lists.mlist.as_deref().unwrap();
        let row = mlist.lines().find(|l| l.starts_with("fast ")).unwrap();
        assert_eq!(&row[28..36], "   10:00", "{row}");
        assert_eq!(&row[37..43], " 99.00");
        assert!(mlist.contains("(* gone)\n(fast *)\n"));
        assert_eq!(lists.files().len(), 2);
    }

    #[test]
    fn below_quorum_nothing_is_rendered() {
        let now = 1_700_000_000 + 600;
        let mix = consensus(&three()[..1], 2, now);
        assert!(!mix.agreed);
        assert_eq!(render(&mix, &mix, now), ConsensusLists::default());
    }
}
