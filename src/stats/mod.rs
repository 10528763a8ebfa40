//! Reliability and latency statistics: pure functions of a ping history and `now`.
//!
//! Nothing here reads the clock or the store. The caller hands in a [`Dataset`] and the
//! instant `now`; "as of `now`" means that pings sent after `now` do not exist and returns
//! that arrived after `now` have not arrived yet, so any past list can be rebuilt exactly.
//!
//! Two reliability models share every other rule (window, buckets, medians, rendering):
//! - [`Model::Methodology`] reads Echolot's published methodology literally (decision 1 of
//!   `shared/spec/README.md`): an outstanding ping weighs `w1 * w2` in the denominator only,
//!   where `w2` is the fraction of this remailer's returned latencies `<= (age - 15 min) * 0.8`.
//! - [`Model::Echolot`] is what Echolot 2.1.9's code computes (`echolot.md` §6.3): an
//!   outstanding ping weighs `w1` in the denominator and `w1 * p` in the numerator, where `p` is
//!   the fraction of latencies `> (age - 900) / 0.8`, the chance it is merely still in transit.

pub mod chains;
pub mod consensus;
pub mod downtime;
pub mod events;
pub mod stability;
pub mod window;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::remailer::is_listed;
use crate::model::{ChainType, Dataset, Model, Ping, PingType, ReturnCounters};
pub use crate::model::{SECONDS_PER_DAY, STATS_DAYS};

pub use chains::{BrokenChains, ChainParams, IntensiveCare, compress_broken_chains};

/// The age weight `w1`, indexed by whole days of age (`pings_weight`).
pub const AGE_WEIGHTS: [f64; STATS_DAYS] =
    [0.5, 1.0, 1.0, 1.0, 1.0, 0.9, 0.8, 0.5, 0.3, 0.2, 0.2, 0.1];
/// A ping younger than this is assumed to be in transit (SKEW_ABS).
pub const SKEW_SECS: f64 = 900.0;
/// SKEW_PERCENT: the methodology multiplies by it, Echolot's code divides by it.
pub const SKEW_FACTOR: f64 = 0.8;
/// Echolot sorts a remailer with no latency as if it had this one.
const UNDEFINED_LATENCY_SORT_KEY: f64 = 9999.0;

/// A published list: which ping types are pooled into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListSpec {
    pub name: &'static str,
    pub types: &'static [PingType],
}

pub const MIX_LIST: ListSpec = ListSpec { name: "mix", types: &[PingType::Mix] };
pub const CPUNK_LIST: ListSpec = ListSpec {
    name: "cpunk",
    types: &[PingType::CpunkRsa, PingType::CpunkDsa, PingType::CpunkClear],
};
pub const CPUNK_RSA_LIST: ListSpec = ListSpec { name: "cpunk-rsa", types: &[PingType::CpunkRsa] };
pub const CPUNK_DSA_LIST: ListSpec = ListSpec { name: "cpunk-dsa", types: &[PingType::CpunkDsa] };
pub const CPUNK_CLEAR_LIST: ListSpec =
    ListSpec { name: "cpunk-clear", types: &[PingType::CpunkClear] };
/// YAMN remailers (`results/yamn/`, read by YAMN clients).
pub const YAMN_LIST: ListSpec = ListSpec { name: "yamn", types: &[PingType::Yamn] };

/// Statistics of one remailer in one list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemailerStats {
    /// Unrounded weighted reliability, 0..=1 (0 when nothing was sent).
    pub reliability: f64,
    /// Median latency of the returned pings in the window, in seconds.
    pub latency_median: Option<f64>,
    /// Unweighted reliability of the pings sent `d` whole days ago (index 0 = last 24 h).
    pub reliability_by_day: [Option<f64>; STATS_DAYS],
    /// Median latency of the returned pings sent `d` whole days ago.
    pub latency_median_by_day: [Option<f64>; STATS_DAYS],
    /// Pings in the window.
    pub sent: usize,
    /// Of those, returned by `now`.
    pub returned: usize,
}

/// A remailer's row in a list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListEntry {
    pub address: String,
    pub nick: String,
    pub caps: String,
    /// Shown in public lists ([`crate::model::remailer::is_listed`]).
    pub listed: bool,
    pub stats: RemailerStats,
}

/// Options that shape a statistics build.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsOptions {
    pub model: Model,
    /// Echolot's `stats_sort_by_latency`: 0, 1 or -1.
    pub sort_by_latency: i8,
    pub chain: ChainParams,
    /// Whether chain pings are done at all (Echolot's `do_chainpings`).
    pub chain_pings: bool,
    /// Whether broken chains found by chain pings are published (`show_chainpings`).
    pub publish_broken_chains: bool,
    /// Operator's broken-chain files, type I and type II, as read.
    pub hard_broken_type1: Option<String>,
    pub hard_broken_type2: Option<String>,
    /// Also build one list per cpunk type (Echolot's `separate_rlists`: rlist-rsa.txt, ...).
    pub separate_rlists: bool,
}

impl Default for StatsOptions {
    fn default() -> Self {
        StatsOptions {
            model: Model::default(),
            sort_by_latency: 0,
            chain: ChainParams::default(),
            chain_pings: true,
            publish_broken_chains: true,
            hard_broken_type1: None,
            hard_broken_type2: None,
            separate_rlists: false,
        }
    }
}

/// Everything a statistics build produces.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub now: i64,
    pub model: Model,
    /// Every remailer of the list (hidden ones with `listed == false`), in published order.
    pub mix: Vec<ListEntry>,
    pub cpunk: Vec<ListEntry>,
    /// With `separate_rlists`: the cpunk-rsa, cpunk-dsa and cpunk-clear lists, in that order,
    /// each with the statistics of its single type. Empty otherwise.
    pub cpunk_by_type: Vec<(ListSpec, Vec<ListEntry>)>,
    pub broken_type1: BrokenChains,
    pub broken_type2: BrokenChains,
    /// The YAMN list and its broken chains (empty without YAMN remailers).
    pub yamn: Vec<ListEntry>,
    pub broken_yamn: BrokenChains,
    /// The dataset's return counters, per remailer address.
    pub returns: BTreeMap<String, ReturnCounters>,
    /// Long-term stability per remailer address and family ([`stability`]); empty until the
    /// application adds it (it needs the stored year, not only the window).
    pub stability: BTreeMap<(String, ChainType), crate::model::stability::Stability>,
    /// The announced downtime each remailer shows now, by address ([`downtime::current`]);
    /// empty until the application adds it.
    pub downtime: BTreeMap<String, crate::model::downtime::DowntimeNotice>,
    /// What the replay-protection probes found, by address; empty until the application
    /// adds it.
    pub replay: BTreeMap<String, crate::model::ReplayStatus>,
}

/// Computes the mlist and rlist statistics and the broken chains as of `now`.
pub fn compute(dataset: &Dataset, now: i64, options: &StatsOptions) -> Report {
    let mix = build_list(dataset, &MIX_LIST, now, options);
    let cpunk = build_list(dataset, &CPUNK_LIST, now, options);
    let cpunk_by_type = if options.separate_rlists {
        [CPUNK_RSA_LIST, CPUNK_DSA_LIST, CPUNK_CLEAR_LIST]
            .into_iter()
            .map(|spec| (spec, build_list(dataset, &spec, now, options)))
            .collect()
    } else {
        Vec::new()
    };
    let broken = |chain_type: ChainType, list: &[ListEntry], hard: &Option<String>| {
        chains::broken_chains(
            dataset.chains.iter().filter(|c| c.chain_type == chain_type),
            list,
            hard.as_deref(),
            now,
            options,
        )
    };
    let broken_type1 = broken(ChainType::Cpunk, &cpunk, &options.hard_broken_type1);
    let broken_type2 = broken(ChainType::Mix, &mix, &options.hard_broken_type2);
    let yamn = build_list(dataset, &YAMN_LIST, now, options);
    let broken_yamn = broken(ChainType::Yamn, &yamn, &None);
    Report {
        now,
        model: options.model,
        mix,
        cpunk,
        cpunk_by_type,
        broken_type1,
        broken_type2,
        yamn,
        broken_yamn,
        returns: dataset.returns.clone(),
        stability: BTreeMap::new(),
        downtime: BTreeMap::new(),
        replay: BTreeMap::new(),
    }
}

/// One list, every member (listed or not), in published order.
pub fn build_list(
    dataset: &Dataset,
    spec: &ListSpec,
    now: i64,
    options: &StatsOptions,
) -> Vec<ListEntry> {
    let mut entries: Vec<ListEntry> = dataset
        .remailers
        .iter()
        .filter(|r| r.key_types.iter().any(|t| spec.types.contains(t)))
        .filter_map(|r| {
            let (nick, caps) = (r.nick.as_ref()?, r.caps.as_ref()?);
            let pings = r.pings.iter().filter(|p| spec.types.contains(&p.ping_type));
            Some(ListEntry {
                address: r.address.clone(),
                nick: nick.clone(),
                caps: caps.clone(),
                listed: is_listed(r.hidden, Some(caps)),
                stats: remailer_stats(pings, now, options.model),
            })
        })
        .collect();
    sort_list(&mut entries, options.sort_by_latency);
    entries
}

/// Echolot's order: reliability descending (the exact float), then optionally latency, then
/// nick bytewise.
pub fn sort_list(entries: &mut [ListEntry], sort_by_latency: i8) {
    let latency_key = |e: &ListEntry| e.stats.latency_median.unwrap_or(UNDEFINED_LATENCY_SORT_KEY);
    entries.sort_by(|a, b| {
        b.stats
            .reliability
            .total_cmp(&a.stats.reliability)
            .then_with(|| {
                let by_latency = latency_key(a).total_cmp(&latency_key(b));
                match sort_by_latency {
                    1 => by_latency,
                    -1 => by_latency.reverse(),
                    _ => std::cmp::Ordering::Equal,
                }
            })
            .then_with(|| a.nick.as_bytes().cmp(b.nick.as_bytes()))
    });
}

/// Age bucket of a ping sent at `sent`: whole days since then.
pub fn age_day(now: i64, sent: i64) -> usize {
    ((now - sent) / SECONDS_PER_DAY) as usize
}

/// Whether a ping sent at `sent` falls in the window ending at `now`: strictly younger than
/// 12 days (Echolot keeps `sent > now - 12 days`) and not in the future.
pub fn in_window(now: i64, sent: i64) -> bool {
    sent <= now && sent > now - STATS_DAYS as i64 * SECONDS_PER_DAY
}

/// Median of sorted values; the mean of the middle two for an even count.
///
/// ```
/// use fathometer::stats::median;
/// assert_eq!(median(&[600, 1200, 1800, 2400]), Some(1500.0));
/// assert_eq!(median(&[]), None);
/// ```
pub fn median(sorted: &[i64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n.is_multiple_of(2) => Some((sorted[n / 2 - 1] as f64 + sorted[n / 2] as f64) / 2.0),
        _ => Some(sorted[(n - 1) / 2] as f64),
    }
}

/// Median of sorted floats; the mean of the middle two for an even count.
pub fn median_f64(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n.is_multiple_of(2) => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
        _ => Some(sorted[(n - 1) / 2]),
    }
}

/// Statistics of one remailer from the pings of the types pooled in a list.
pub fn remailer_stats<'a>(
    pings: impl IntoIterator<Item = &'a Ping>,
    now: i64,
    model: Model,
) -> RemailerStats {
    // (sent, latency) of returned pings, and (sent, known to have failed) of the others, as
    // of `now`.
    let mut returned: Vec<(i64, i64)> = Vec::new();
    let mut outstanding: Vec<(i64, bool)> = Vec::new();
    for p in pings.into_iter().filter(|p| in_window(now, p.sent)) {
        match p.returned.filter(|&r| r <= now) {
            // A return stamped before its send (clock skew between hosts) counts as instant.
            Some(r) => returned.push((p.sent, (r - p.sent).max(0))),
            None => outstanding.push((p.sent, p.failed.is_some_and(|f| f <= now))),
        }
    }

    let mut latencies: Vec<i64> = returned.iter().map(|&(_, lat)| lat).collect();
    latencies.sort_unstable();
    let mut latencies_by_day: [Vec<i64>; STATS_DAYS] = Default::default();
    for &(sent, lat) in &returned {
        latencies_by_day[age_day(now, sent)].push(lat);
    }
    let latency_median_by_day = latencies_by_day.map(|mut day| {
        day.sort_unstable();
        median(&day)
    });

    // Summation order follows Echolot (returned first, then outstanding), which matters only
    // in the last bit of the result.
    let mut numerator = 0.0;
    let mut denominator = 0.0;
    let mut day_returned = [0.0f64; STATS_DAYS];
    let mut day_weight = [0.0f64; STATS_DAYS];
    let mut day_count = [0usize; STATS_DAYS];
    for &(sent, _) in &returned {
        let day = age_day(now, sent);
        let w1 = AGE_WEIGHTS[day];
        numerator += w1;
        denominator += w1;
        day_returned[day] += 1.0;
        day_weight[day] += 1.0;
        day_count[day] += 1;
    }
    for &(sent, failed) in &outstanding {
        let day = age_day(now, sent);
        let w1 = AGE_WEIGHTS[day];
        let age = (now - sent) as f64;
        day_count[day] += 1;
        match model {
            // A ping that bounced or came back altered is a settled failure from the moment
            // that was known (w2 = 1): the ends decide, not the latency distribution.
            Model::Methodology if failed => {
                denominator += w1;
                day_weight[day] += 1.0;
            }
            // Echolot cannot tell: it keeps treating such a ping as possibly in transit.
            Model::Echolot => {
                let p = in_transit_probability(age, &latencies);
                denominator += w1;
                numerator += w1 * p;
                day_weight[day] += 1.0;
                day_returned[day] += p;
            }
            Model::Methodology => {
                let w2 = outstanding_weight(age, &latencies);
                denominator += w1 * w2;
                day_weight[day] += w2;
            }
        }
    }

    let reliability = if denominator > 0.0 { numerator / denominator } else { 0.0 };
    let reliability_by_day = std::array::from_fn(|d| {
        (day_count[d] > 0 && day_weight[d] > 0.0).then(|| day_returned[d] / day_weight[d])
    });
    RemailerStats {
        reliability,
        latency_median: median(&latencies),
        reliability_by_day,
        latency_median_by_day,
        sent: returned.len() + outstanding.len(),
        returned: returned.len(),
    }
}

/// Echolot's `p`: the fraction of observed latencies strictly greater than
/// `(age - 900) / 0.8`, i.e. the chance an outstanding ping is merely still on its way.
/// Zero when nothing has returned.
pub fn in_transit_probability(age_secs: f64, sorted_latencies: &[i64]) -> f64 {
    if sorted_latencies.is_empty() {
        return 0.0;
    }
    let adjusted = (age_secs - SKEW_SECS) / SKEW_FACTOR;
    let not_greater = sorted_latencies.partition_point(|&lat| lat as f64 <= adjusted);
    (sorted_latencies.len() - not_greater) as f64 / sorted_latencies.len() as f64
}

/// The methodology's `w2` for an outstanding ping: the fraction of returned latencies
/// `<= mod_age`, with `mod_age = (age - 15 min) * 0.8`; 0 while `mod_age < 0` (too young to
/// judge), 1 when nothing has returned in the window (nothing suggests it is on its way).
pub fn outstanding_weight(age_secs: f64, sorted_latencies: &[i64]) -> f64 {
    let mod_age = methodology_mod_age(age_secs);
    if mod_age < 0.0 {
        return 0.0;
    }
    if sorted_latencies.is_empty() {
        return 1.0;
    }
    let within = sorted_latencies.partition_point(|&lat| lat as f64 <= mod_age);
    within as f64 / sorted_latencies.len() as f64
}

/// `mod_age` of the methodology: `(age - 15 min) * 0.8`.
pub fn methodology_mod_age(age_secs: f64) -> f64 {
    (age_secs - SKEW_SECS) * SKEW_FACTOR
}

/// Intervals `(start, end)` in which the pinger's own mail path failed (decision 8): every
/// ping sent strictly inside one is excluded from every remailer's statistics.
///
/// `checks` are the self-checks as (sent, returned), in any order. A check fails when it did
/// not come back within `deadline` (or has not yet, and the deadline passed by `now`). The
/// path was last known good at the previous check that passed, and known good again at the
/// next one; pings in between may have been lost by us, not by the remailer. With no later
/// passing check the window stays open (`i64::MAX`). Checks never sent (the MTA refused
/// them) say nothing about delivery and are ignored; those pings were not sent either.
pub fn own_failure_windows(
    checks: &[(i64, Option<i64>)],
    deadline: i64,
    now: i64,
) -> Vec<(i64, i64)> {
    let mut sorted: Vec<(i64, Option<i64>)> = checks.to_vec();
    sorted.sort_unstable();
    let passed = |c: &(i64, Option<i64>)| c.1.is_some_and(|r| r - c.0 <= deadline);
    let decided = |c: &(i64, Option<i64>)| passed(c) || c.1.is_some() || now - c.0 > deadline;
    let mut windows: Vec<(i64, i64)> = Vec::new();
    for (i, c) in sorted.iter().enumerate() {
        if passed(c) || !decided(c) {
            continue;
        }
        let start = sorted[..i].iter().rev().find(|p| passed(p)).map_or(c.0 - deadline, |p| p.0);
        let end = sorted[i + 1..].iter().find(|n| passed(n)).map_or(i64::MAX, |n| n.0);
        match windows.last_mut() {
            Some(last) if start < last.1 => last.1 = last.1.max(end),
            _ => windows.push((start, end)),
        }
    }
    windows
}

/// Whether `sent` lies strictly inside one of `windows`.
pub fn in_own_failure(windows: &[(i64, i64)], sent: i64) -> bool {
    windows.iter().any(|&(start, end)| start < sent && sent < end)
}

#[cfg(test)]
mod tests;
