//! Chain statistics: which two-hop chains are broken, and which are "interesting" enough to
//! be pinged daily (`echolot.md` §6.7, the seed's chain rule).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{ListEntry, StatsOptions};
use crate::model::ChainPing;

/// Echolot's chain constants, with its code's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChainParams {
    /// Chain pings older than this are ignored (`chainping_period`, 10 days in code).
    pub period_secs: i64,
    /// An unreturned chain ping is not judged before `grace * (lat1 + lat2)` has passed.
    pub grace: f64,
    /// Fewer counted pings than this, none returned: not judged yet.
    pub min_sample: u32,
    /// Broken when `returned / sent <= rel1 * rel2 * fudge`.
    pub fudge: f64,
    /// A remailer in at least `n * factor` broken chains on one side becomes a wildcard.
    pub all_bad_factor: f64,
}

impl Default for ChainParams {
    fn default() -> Self {
        ChainParams {
            period_secs: 10 * 86_400,
            grace: 1.5,
            min_sample: 3,
            fudge: 0.3,
            all_bad_factor: 0.5,
        }
    }
}

/// Why a chain is pinged daily instead of weekly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntensiveCare {
    /// Fewer than `min_sample` counted pings and none returned.
    TooFewSamples { sent: u32 },
    /// Judged broken: `returned` of `sent` came back.
    Broken { returned: u32, sent: u32 },
}

/// The broken chains of one chain type, as published.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BrokenChains {
    /// The text of the public "Broken type-… remailer chains" section (joined with LF, no
    /// trailing LF), or `None` when the section is omitted.
    pub public: Option<String>,
    /// The same for the private lists.
    pub private: Option<String>,
    /// Chains to ping daily, by address, with the reason.
    pub intensive_care: Vec<(String, String, IntensiveCare)>,
}

impl BrokenChains {
    /// The section's lines (`(a b)`, `(a *)`, `(* b)`), for JSON.
    pub fn lines(&self, private: bool) -> Vec<String> {
        let text = if private { &self.private } else { &self.public };
        text.as_deref()
            .map(|t| t.split('\n').filter(|l| !l.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct PairCount {
    sent: u32,
    returned: u32,
}

/// Judges every chain of one type against the single-hop statistics of its list (`list` is
/// the private list: every remailer, listed or not).
pub fn broken_chains<'a>(
    pings: impl Iterator<Item = &'a ChainPing>,
    list: &[ListEntry],
    hard: Option<&str>,
    now: i64,
    options: &StatsOptions,
) -> BrokenChains {
    let params = &options.chain;
    if !options.chain_pings {
        let raw = hard.map(str::to_owned);
        return BrokenChains { public: raw.clone(), private: raw, intensive_care: Vec::new() };
    }
    let members: HashMap<&str, &ListEntry> = list.iter().map(|e| (e.address.as_str(), e)).collect();

    let relevant: Vec<&ChainPing> = pings
        .filter(|p| p.sent <= now && p.sent >= now - params.period_secs)
        .filter(|p| {
            members.contains_key(p.addr1.as_str()) && members.contains_key(p.addr2.as_str())
        })
        .collect();
    // A return identifies its ping by (addr1, addr2, sent), as in Echolot; any copy of a
    // returned ping is then exempt from the grace rule.
    let returned_keys: HashSet<(&str, &str, i64)> = relevant
        .iter()
        .filter(|p| p.returned.is_some_and(|r| r <= now))
        .map(|p| (p.addr1.as_str(), p.addr2.as_str(), p.sent))
        .collect();

    let mut counts: BTreeMap<(&str, &str), PairCount> = BTreeMap::new();
    for p in &relevant {
        let key = (p.addr1.as_str(), p.addr2.as_str());
        let was_returned = p.returned.is_some_and(|r| r <= now);
        if was_returned {
            counts.entry(key).or_default().returned += 1;
        }
        // In the methodology model a chain ping known to have failed (bounced, altered) is
        // judged at once; Echolot, which cannot tell, waits out the grace time as for any.
        let known_failed =
            options.model == crate::model::Model::Methodology && p.failed.is_some_and(|f| f <= now);
        if !known_failed && !returned_keys.contains(&(key.0, key.1, p.sent)) {
            let lat = |a: &str| members[a].stats.latency_median.unwrap_or(0.0);
            let grace = (lat(key.0) + lat(key.1)) * params.grace;
            if ((now - p.sent) as f64) < grace {
                continue;
            }
        }
        counts.entry(key).or_default().sent += 1;
    }

    let mut intensive_care = Vec::new();
    let mut broken: Vec<(String, bool)> = Vec::new();
    for ((a1, a2), c) in &counts {
        if c.sent < params.min_sample && c.returned == 0 {
            intensive_care.push((
                a1.to_string(),
                a2.to_string(),
                IntensiveCare::TooFewSamples { sent: c.sent },
            ));
            continue;
        }
        if c.sent == 0 {
            continue;
        }
        let (r1, r2) = (members[a1], members[a2]);
        let expected = r1.stats.reliability * r2.stats.reliability;
        let real = c.returned as f64 / c.sent as f64;
        if real > expected * params.fudge {
            continue;
        }
        broken.push((format!("({} {})", r1.nick, r2.nick), r1.listed && r2.listed));
        intensive_care.push((
            a1.to_string(),
            a2.to_string(),
            IntensiveCare::Broken { returned: c.returned, sent: c.sent },
        ));
    }

    let hard_lines: Vec<String> = hard.map(perl_split_lines).unwrap_or_default();
    let n = list.len();
    let private_lines = hard_lines.iter().cloned().chain(broken.iter().map(|(c, _)| c.clone()));
    let private = compress_broken_chains(n, private_lines, params.all_bad_factor).join("\n");
    let public = if options.publish_broken_chains {
        let public_lines = hard_lines
            .iter()
            .cloned()
            .chain(broken.iter().filter(|(_, public)| *public).map(|(c, _)| c.clone()));
        Some(compress_broken_chains(n, public_lines, params.all_bad_factor).join("\n"))
    } else {
        // Echolot publishes the operator's file verbatim when its own findings are hidden.
        hard.map(str::to_owned)
    };
    BrokenChains { public, private: Some(private), intensive_care }
}

/// Perl's `split /\n/`: trailing empty fields are dropped.
fn perl_split_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// Parses `(left right)` the way Echolot's unanchored `\((\S+)\s(\S+)\)` does.
fn parse_chain(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    let is_space = |b: u8| b.is_ascii_whitespace();
    for (open, _) in line.match_indices('(') {
        let left_start = open + 1;
        let left_len = bytes[left_start..].iter().take_while(|&&b| !is_space(b)).count();
        let sep = left_start + left_len;
        if left_len == 0 || sep >= bytes.len() {
            continue;
        }
        let right_start = sep + 1;
        let run = bytes[right_start..].iter().take_while(|&&b| !is_space(b)).count();
        // Greedy `\S+` followed by `)`: the last `)` in the run that leaves a non-empty right.
        if let Some(close) = (1..run).rev().find(|&k| bytes[right_start + k] == b')') {
            return Some((&line[left_start..sep], &line[right_start..right_start + close]));
        }
    }
    None
}

/// Echolot's `compress_broken_chain`: a remailer named on the same side of at least
/// `n * all_bad_factor` broken chains becomes a wildcard `(* r)` or `(l *)`, the chains it
/// covers are dropped, unparseable lines are kept, and the result is deduplicated and sorted.
pub fn compress_broken_chains(
    n: usize,
    chains: impl IntoIterator<Item = String>,
    all_bad_factor: f64,
) -> Vec<String> {
    let mut list: Vec<String> = chains.into_iter().collect();
    list.sort();
    list.dedup();

    let mut bad_left: HashMap<&str, usize> = HashMap::new();
    let mut bad_right: HashMap<&str, usize> = HashMap::new();
    for chain in &list {
        if let Some((left, right)) = parse_chain(chain) {
            *bad_right.entry(right).or_default() += 1 + if left == "*" { n } else { 0 };
            *bad_left.entry(left).or_default() += 1 + if right == "*" { n } else { 0 };
        }
    }
    let threshold = n as f64 * all_bad_factor;
    bad_right.retain(|_, count| *count as f64 >= threshold);
    bad_left.retain(|_, count| *count as f64 >= threshold);

    let mut result: Vec<String> = bad_right.keys().map(|r| format!("(* {r})")).collect();
    result.extend(bad_left.keys().map(|l| format!("({l} *)")));
    for chain in &list {
        match parse_chain(chain) {
            None => result.push(chain.clone()),
            Some((left, right)) => {
                if !bad_right.contains_key(right) && !bad_left.contains_key(left) {
                    result.push(chain.clone());
                }
            }
        }
    }
    result.sort();
    result.dedup();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parse_chain_follows_the_unanchored_regex() {
        assert_eq!(parse_chain("(a b)"), Some(("a", "b")));
        assert_eq!(parse_chain("(* b)"), Some(("*", "b")));
        assert_eq!(parse_chain("x (a b) y"), Some(("a", "b")));
        assert_eq!(parse_chain("(a b))"), Some(("a", "b)")));
        assert_eq!(parse_chain("(a b c)"), None);
        assert_eq!(parse_chain("(a  b)"), None);
        assert_eq!(parse_chain("garbage"), None);
        assert_eq!(parse_chain("(ab)"), None);
    }

    #[test]
    fn echolot_example_compresses_to_a_left_wildcard() {
        // echolot.md §6.7: N = 4, (fast lossy) and (fast gone) broken gives (fast *).
        let out = compress_broken_chains(4, s(&["(fast lossy)", "(fast gone)"]), 0.5);
        assert_eq!(out, s(&["(fast *)"]));
    }

    #[test]
    fn below_threshold_chains_stay_individual_and_sorted() {
        let out = compress_broken_chains(10, s(&["(b c)", "(a b)", "(a b)"]), 0.5);
        assert_eq!(out, s(&["(a b)", "(b c)"]));
    }

    #[test]
    fn right_wildcard_covers_chains_and_keeps_unparseable_lines() {
        let out = compress_broken_chains(4, s(&["(a x)", "(b x)", "(c d)", "not a chain"]), 0.5);
        assert_eq!(out, s(&["(* x)", "(c d)", "not a chain"]));
    }

    #[test]
    fn operator_wildcards_are_always_kept() {
        // A hard-coded (* x) counts n + 1 on the right: always above the threshold.
        let out = compress_broken_chains(100, s(&["(* x)", "(y *)", "(a b)"]), 0.5);
        assert_eq!(out, s(&["(* x)", "(a b)", "(y *)"]));
    }

    #[test]
    fn empty_input_gives_empty_output() {
        assert!(compress_broken_chains(5, Vec::new(), 0.5).is_empty());
        assert_eq!(perl_split_lines("a\nb\n\n"), s(&["a", "b"]));
    }
}
