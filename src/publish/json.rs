//! The statistics as JSON (`fathometer stats --format json`, and later the HTTP API).

use serde::Serialize;

use crate::model::{ReturnCounters, STATS_DAYS};
use crate::stats::{ListEntry, Report};

#[derive(Debug, Serialize)]
pub struct StatsJson<'a> {
    pub now: i64,
    pub model: &'static str,
    pub lists: Lists<'a>,
    pub broken_chains: BrokenJson,
}

#[derive(Debug, Serialize)]
pub struct Lists<'a> {
    pub mix: Vec<EntryJson<'a>>,
    pub cpunk: Vec<EntryJson<'a>>,
}

#[derive(Debug, Serialize)]
pub struct EntryJson<'a> {
    pub rank: usize,
    pub nick: &'a str,
    pub address: &'a str,
    pub listed: bool,
    pub reliability: f64,
    pub latency_median_s: Option<f64>,
    pub reliability_by_day: [Option<f64>; STATS_DAYS],
    pub latency_median_by_day: [Option<f64>; STATS_DAYS],
    pub pings_sent: usize,
    pub pings_returned: usize,
    /// Mail that came back in the window: genuine returns, and duplicates, forgeries,
    /// corrupted copies and bounces, which never count as returned.
    pub returns: ReturnCounters,
    pub caps: &'a str,
}

#[derive(Debug, Serialize)]
pub struct BrokenJson {
    pub mix: Vec<String>,
    pub cpunk: Vec<String>,
}

fn entries<'a>(list: &'a [ListEntry], report: &Report) -> Vec<EntryJson<'a>> {
    list.iter()
        .enumerate()
        .map(|(i, e)| EntryJson {
            rank: i + 1,
            nick: &e.nick,
            address: &e.address,
            listed: e.listed,
            reliability: e.stats.reliability,
            latency_median_s: e.stats.latency_median,
            reliability_by_day: e.stats.reliability_by_day,
            latency_median_by_day: e.stats.latency_median_by_day,
            pings_sent: e.stats.sent,
            pings_returned: e.stats.returned,
            returns: report.returns.get(&e.address).copied().unwrap_or_default(),
            caps: &e.caps,
        })
        .collect()
}

/// Every remailer of each list in published order (hidden ones with `listed: false`); the
/// broken chains are the public ones unless `private`.
pub fn stats_json(report: &Report, private: bool) -> StatsJson<'_> {
    StatsJson {
        now: report.now,
        model: report.model.as_str(),
        lists: Lists { mix: entries(&report.mix, report), cpunk: entries(&report.cpunk, report) },
        broken_chains: BrokenJson {
            mix: report.broken_type2.lines(private),
            cpunk: report.broken_type1.lines(private),
        },
    }
}
