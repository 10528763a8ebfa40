//! The statistics as JSON (`fathometer stats --format json`, and the HTTP API).

use serde::Serialize;

use crate::model::downtime::DowntimeNotice;
use crate::model::event::Event;
use crate::model::stability::Stability;
use crate::model::{ChainType, ReplayStatus, ReturnCounters, STATS_DAYS};
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
    pub yamn: Vec<EntryJson<'a>>,
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
    /// Long-term stability (Tor proposal 146); `null` before anything was observed.
    pub stability: Option<StabilityJson<'a>>,
    /// The announced downtime shown now (RFC 636), if any.
    pub downtime: Option<&'a DowntimeNotice>,
    /// What the replay-protection probes found (type II only; `null` before any probe).
    pub replay_protection: Option<ReplayJson<'a>>,
}

/// A remailer's replay protection as its probes found it.
#[derive(Debug, Serialize)]
pub struct ReplayJson<'a> {
    /// The newest conclusive probe got both copies back.
    pub broken: bool,
    #[serde(flatten)]
    pub status: &'a ReplayStatus,
}

/// The long-term figures of one remailer family.
#[derive(Debug, Serialize)]
pub struct StabilityJson<'a> {
    /// Weighted fractional uptime, 0..1 (`null` before anything is known).
    pub wfu: Option<f64>,
    /// Weighted mean time between failures, seconds.
    pub mtbf_s: f64,
    /// Weighted time known, seconds.
    pub time_known_s: f64,
    /// Days of the last 365 seen up at this address and key.
    pub longevity_days: u32,
    pub stable: bool,
    pub longterm: bool,
    /// Up slots over known slots per UTC day, the last 90 days, oldest first.
    pub uptime_by_day: &'a [Option<f64>],
}

impl<'a> StabilityJson<'a> {
    pub fn of(s: &'a Stability) -> StabilityJson<'a> {
        StabilityJson {
            wfu: s.wfu,
            mtbf_s: s.mtbf_secs,
            time_known_s: s.time_known_secs,
            longevity_days: s.longevity_days,
            stable: s.stable,
            longterm: s.longterm,
            uptime_by_day: &s.daily,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct BrokenJson {
    pub mix: Vec<String>,
    pub cpunk: Vec<String>,
    pub yamn: Vec<String>,
}

fn entries<'a>(list: &'a [ListEntry], family: ChainType, report: &'a Report) -> Vec<EntryJson<'a>> {
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
            stability: report.stability.get(&(e.address.clone(), family)).map(StabilityJson::of),
            downtime: report.downtime.get(&e.address),
            replay_protection: (family == ChainType::Mix)
                .then(|| report.replay.get(&e.address))
                .flatten()
                .map(|status| ReplayJson { broken: status.is_broken(), status }),
        })
        .collect()
}

/// Every remailer of each list in published order (hidden ones with `listed: false`); the
/// broken chains are the public ones unless `private`.
pub fn stats_json(report: &Report, private: bool) -> StatsJson<'_> {
    StatsJson {
        now: report.now,
        model: report.model.as_str(),
        lists: Lists {
            mix: entries(&report.mix, ChainType::Mix, report),
            cpunk: entries(&report.cpunk, ChainType::Cpunk, report),
            yamn: entries(&report.yamn, ChainType::Yamn, report),
        },
        broken_chains: BrokenJson {
            mix: report.broken_type2.lines(private),
            cpunk: report.broken_type1.lines(private),
            yamn: report.broken_yamn.lines(private),
        },
    }
}

/// One event as the API and the hook show it.
#[derive(Debug, Serialize)]
pub struct EventJson<'a> {
    #[serde(flatten)]
    pub event: &'a Event,
    /// "testmix1: not responding (mix)".
    pub title: String,
    /// `at` as RFC 3339.
    pub at_utc: String,
}

impl<'a> EventJson<'a> {
    pub fn of(event: &'a Event) -> EventJson<'a> {
        EventJson { event, title: event.title(), at_utc: rfc3339(event.at) }
    }
}

/// `2026-12-02T16:30:00Z`.
pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}
