//! Long-term stability: observations from pings, the 2-hour slots they fill, and Tor's
//! weighted fractional uptime (WFU), weighted MTBF, time known and proposal 146's Longevity,
//! with the Stable and Longterm flags (`stability.md`). Pure: rows and `now` in, figures out.
//!
//! **Observations.** A single ping (any type) that came back shows its remailer up when it
//! was sent; one that bounced or came back altered shows it down; one that has not come back
//! after the remailer's [`allowance`] shows it down too. Anything else is no observation yet.
//! Pings inside the pinger's own failure windows never reach this module (see
//! [`super::window`]); a ping that was in flight while the pinger itself was not running and
//! did not come back says nothing either (its loss may be ours); pings sent during a
//! remailer's announced downtime give no observation: that time is unknown, not down.
//!
//! **Slots.** Observations fill 2-hour slots (the ping period): up if any ping of the slot
//! came back, down if some failed and none came back, unknown otherwise. A year is kept as
//! one row of twelve slots per remailer family and UTC day.
//!
//! **Figures**, with Tor's decay (every 12 hours everything known so far counts 0.95 times as
//! much; the boundaries fall at multiples of 12 h of Unix time, and slots never straddle
//! them):
//! - WFU: up time over known (up or down) time, each slot weighted by the decay since its end.
//! - Time known: that denominator, in weighted seconds.
//! - Weighted MTBF: runs of up slots, ended by a down slot (unknown slots neither end nor
//!   lengthen a run, as Tor shifts a run across an authority's own downtime); each run's length
//!   weighted by the decay since it ended, divided by the sum of those weights; a run in
//!   progress counts as ending now.
//! - Longevity: UTC days of the last 365 with at least one up slot, at the current address
//!   and since the current key was first seen (`stability.md`: address and key).
//! - Stable: MTBF at least the median of listed remailers, or at least 5 days. Longterm:
//!   Longevity in the upper quartile of listed remailers.

use std::collections::BTreeMap;

use crate::model::stability::{DaemonRun, SLOTS_PER_DAY, SlotState, Stability, UptimeDay};
use crate::model::{ChainType, Dataset, Ping, Remailer, SECONDS_PER_DAY, SLOT_SECS, STATS_DAYS};

/// Tor's `STABILITY_ALPHA`, applied every [`DECAY_INTERVAL_SECS`].
pub const DECAY: f64 = 0.95;
pub const DECAY_INTERVAL_SECS: i64 = 12 * 3600;
/// Below this total run weight there is no MTBF (Tor's `STABILITY_EPSILON`).
const RUN_WEIGHT_EPSILON: f64 = 0.0001;
/// An MTBF this long makes a remailer Stable whatever the others' (Tor's
/// `AuthDirVoteStableGuaranteeMTBF`).
pub const STABLE_MTBF_GUARANTEE_SECS: f64 = 5.0 * SECONDS_PER_DAY as f64;
/// Longevity looks back this many days.
pub const LONGEVITY_DAYS: i64 = 365;
/// The long-term chart's days.
pub const DAILY_DAYS: i64 = 90;
/// The shortest and longest allowance before an unreturned ping counts as lost.
pub const MIN_ALLOWANCE_SECS: i64 = 6 * 3600;
pub const MAX_ALLOWANCE_SECS: i64 = 2 * SECONDS_PER_DAY;

// A slot never straddles a decay boundary, nor a day.
const _: () = assert!(DECAY_INTERVAL_SECS % SLOT_SECS == 0 && SECONDS_PER_DAY % SLOT_SECS == 0);
const _: () = assert!(SECONDS_PER_DAY / SLOT_SECS == SLOTS_PER_DAY as i64);

/// How long a remailer's ping may stay away before it counts as lost for stability: twice
/// the 95th percentile of its returned latencies in the window, at least 6 hours (nothing
/// known, or a fast remailer) and at most 2 days. Generous on purpose: a slow remailer must
/// not look down, and a ping that comes back later still counts for reliability.
pub fn allowance(sorted_latencies: &[i64]) -> i64 {
    if sorted_latencies.is_empty() {
        return MIN_ALLOWANCE_SECS;
    }
    let index = (sorted_latencies.len() * 95).div_ceil(100).saturating_sub(1);
    let p95 = sorted_latencies[index.min(sorted_latencies.len() - 1)];
    p95.saturating_mul(2).clamp(MIN_ALLOWANCE_SECS, MAX_ALLOWANCE_SECS)
}

/// One observation: the remailer was up (or down) when the ping was sent at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub at: i64,
    pub up: bool,
}

fn inside(intervals: &[(i64, i64)], t: i64) -> bool {
    intervals.iter().any(|&(start, end)| start <= t && t < end)
}

fn overlaps(intervals: &[(i64, i64)], from: i64, to: i64) -> bool {
    intervals.iter().any(|&(start, end)| start < to && from < end)
}

/// The observations `pings` give as of `now` (see the module's rules). `pinger_down` are the
/// intervals the pinger was not running; `announced` the remailer's announced downtimes.
pub fn observations(
    pings: &[Ping],
    allowance: i64,
    pinger_down: &[(i64, i64)],
    announced: &[(i64, i64)],
    now: i64,
) -> Vec<Observation> {
    let mut out: Vec<Observation> = pings
        .iter()
        .filter(|p| p.sent <= now && !inside(announced, p.sent))
        .filter_map(|p| {
            if p.returned.is_some_and(|r| r <= now) {
                return Some(Observation { at: p.sent, up: true });
            }
            if p.failed.is_some_and(|f| f <= now) {
                return Some(Observation { at: p.sent, up: false });
            }
            let deadline = p.sent.saturating_add(allowance);
            (deadline <= now && !overlaps(pinger_down, p.sent, deadline))
                .then_some(Observation { at: p.sent, up: false })
        })
        .collect();
    out.sort_by_key(|o| o.at);
    out
}

/// The UTC day (days since the epoch) of a unix time.
pub fn day_of(t: i64) -> i64 {
    t.div_euclid(SECONDS_PER_DAY)
}

/// The days `first..=last` of one remailer family, filled from its observations.
pub fn days(
    remailer_id: i64,
    family: crate::model::ChainType,
    observations: &[Observation],
    first: i64,
    last: i64,
) -> Vec<UptimeDay> {
    let n = usize::try_from(last - first + 1).unwrap_or(0);
    let mut grid = vec![SlotState::Unknown; n * SLOTS_PER_DAY];
    let start = first * SECONDS_PER_DAY;
    for o in observations {
        let Ok(i) = usize::try_from((o.at - start).div_euclid(SLOT_SECS)) else { continue };
        if let Some(slot) = grid.get_mut(i) {
            // Up if any ping of the slot came back ([`SlotState::of`]).
            *slot = match (*slot, o.up) {
                (_, true) | (SlotState::Up, _) => SlotState::Up,
                _ => SlotState::Down,
            };
        }
    }
    grid.chunks_exact(SLOTS_PER_DAY)
        .zip(first..)
        .map(|(slots, day)| UptimeDay {
            remailer_id,
            family,
            day,
            slots: slots.try_into().expect("a day of slots"),
        })
        .collect()
}

/// Number of decay boundaries `B` with `t <= B <= now`: how many times something that ended
/// at `t` has been multiplied by [`DECAY`] by `now`.
fn boundaries(t: i64, now: i64) -> i32 {
    let p = DECAY_INTERVAL_SECS;
    (now.div_euclid(p) - (t - 1).div_euclid(p)).clamp(0, i32::MAX as i64) as i32
}

/// [`DECAY`] to the power of the boundaries passed: a table for the year the figures look
/// back (a power per slot was most of their cost), multiplied out beyond it.
fn weight(t: i64, now: i64) -> f64 {
    const TABLE: usize = 2 * LONGEVITY_DAYS as usize + 8;
    static POWERS: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let powers = POWERS.get_or_init(|| {
        std::iter::successors(Some(1.0), |p| Some(p * DECAY)).take(TABLE).collect()
    });
    let k = boundaries(t, now);
    powers.get(k as usize).copied().unwrap_or_else(|| DECAY.powi(k))
}

/// The known slots of one remailer family, oldest first: `(slot start, state)`, none after
/// `now`. A slot that contains `now` counts up to `now`.
pub fn known_slots(days: &[UptimeDay], now: i64) -> Vec<(i64, SlotState)> {
    let mut slots: Vec<(i64, SlotState)> = days
        .iter()
        .flat_map(|d| {
            d.slots
                .iter()
                .enumerate()
                .map(move |(i, &s)| (d.day * SECONDS_PER_DAY + i as i64 * SLOT_SECS, s))
        })
        .filter(|&(start, s)| s != SlotState::Unknown && start <= now)
        .collect();
    slots.sort_by_key(|&(start, _)| start);
    slots.dedup_by_key(|&mut (start, _)| start);
    slots
}

/// WFU, weighted MTBF, time known and Longevity of one remailer family as of `now`, from its
/// known slots (see [`known_slots`]). The flags are decided over all remailers by [`flag`].
pub fn figures(slots: &[(i64, SlotState)], now: i64) -> Stability {
    figures_since(slots, now, i64::MIN)
}

/// [`figures`], with Longevity counted only from the UTC day `identity_since` falls on: the
/// day the remailer's current key was first seen (a new key is a new identity, as in Tor).
pub fn figures_since(slots: &[(i64, SlotState)], now: i64, identity_since: i64) -> Stability {
    let mut up = 0.0;
    let mut known = 0.0;
    let mut run_lengths = 0.0;
    let mut run_weights = 0.0;
    let mut run: Option<f64> = None;
    for &(start, state) in slots {
        let end = (start + SLOT_SECS).min(now);
        let secs = (end - start) as f64;
        let w = weight(end, now);
        known += w * secs;
        match state {
            SlotState::Up => {
                up += w * secs;
                *run.get_or_insert(0.0) += secs;
            }
            SlotState::Down => {
                // The run ended when this slot began.
                if let Some(length) = run.take() {
                    let w_end = weight(start, now);
                    run_lengths += w_end * length;
                    run_weights += w_end;
                }
            }
            SlotState::Unknown => {}
        }
    }
    // A run in progress counts as ending now.
    if let Some(length) = run {
        run_lengths += length;
        run_weights += 1.0;
    }
    let since = now - LONGEVITY_DAYS * SECONDS_PER_DAY;
    let first_day = day_of(identity_since.max(i64::MIN / 2));
    let mut up_days: Vec<i64> = slots
        .iter()
        .filter(|&&(start, s)| s == SlotState::Up && start > since && day_of(start) >= first_day)
        .map(|&(start, _)| day_of(start))
        .collect();
    up_days.dedup();
    Stability {
        wfu: (known > 0.0).then(|| up / known),
        mtbf_secs: if run_weights < RUN_WEIGHT_EPSILON { 0.0 } else { run_lengths / run_weights },
        time_known_secs: known,
        longevity_days: up_days.len() as u32,
        stable: false,
        longterm: false,
        daily: daily(slots, now),
    }
}

/// Up slots over known slots for each of the last [`DAILY_DAYS`] UTC days, oldest first.
fn daily(slots: &[(i64, SlotState)], now: i64) -> Vec<Option<f64>> {
    let today = day_of(now);
    let first = today - DAILY_DAYS + 1;
    let mut up = vec![0u32; DAILY_DAYS as usize];
    let mut known = vec![0u32; DAILY_DAYS as usize];
    for &(start, state) in slots {
        let day = day_of(start);
        if (first..=today).contains(&day) {
            let i = (day - first) as usize;
            known[i] += 1;
            up[i] += u32::from(state == SlotState::Up);
        }
    }
    up.iter().zip(&known).map(|(&u, &k)| (k > 0).then(|| f64::from(u) / f64::from(k))).collect()
}

/// Sets the Stable and Longterm flags of every remailer family, judged among the listed ones
/// (`(listed, figures)`).
pub fn flag(all: &mut [(bool, &mut Stability)]) {
    let mut mtbfs: Vec<f64> = all
        .iter()
        .filter(|(listed, f)| *listed && f.wfu.is_some())
        .map(|(_, f)| f.mtbf_secs)
        .collect();
    mtbfs.sort_by(f64::total_cmp);
    let median_mtbf = super::median_f64(&mtbfs);
    let mut longevities: Vec<u32> =
        all.iter().filter(|(listed, _)| *listed).map(|(_, f)| f.longevity_days).collect();
    longevities.sort_unstable();
    // The upper quartile: at or above the 75th percentile (nearest rank).
    let quartile = (!longevities.is_empty())
        .then(|| longevities[(longevities.len() * 3).div_ceil(4).saturating_sub(1)]);
    for (_, f) in all.iter_mut() {
        f.stable = f.mtbf_secs > 0.0
            && (f.mtbf_secs >= STABLE_MTBF_GUARANTEE_SECS
                || median_mtbf.is_some_and(|m| f.mtbf_secs >= m));
        f.longterm = f.longevity_days > 0 && quartile.is_some_and(|q| f.longevity_days >= q);
    }
}

/// The days a build recomputes from the window's pings: today and the two before, which
/// cover the longest allowance; older days are final once stored.
pub const RECOMPUTED_DAYS: i64 = 3;

/// A daemon last seen alive longer ago than this, with no run after it, is taken to be down
/// since then (an offline `fathometer stats` long after a crash).
const SILENT_DAEMON_SECS: i64 = 600;

/// When the pinger itself was not running, from its recorded runs: the gaps between a run's
/// end (its clean stop, or its last sign of life) and the next run's start.
pub fn pinger_downtime(runs: &[DaemonRun], now: i64) -> Vec<(i64, i64)> {
    let mut runs = runs.to_vec();
    runs.sort_by_key(|r| r.started_at);
    let end = |r: &DaemonRun| r.stopped_at.unwrap_or(r.alive_at);
    let mut gaps: Vec<(i64, i64)> = runs
        .windows(2)
        .filter(|w| w[1].started_at > end(&w[0]))
        .map(|w| (end(&w[0]), w[1].started_at))
        .collect();
    if let Some(last) = runs.last()
        && now - end(last) > SILENT_DAEMON_SECS
    {
        gaps.push((end(last), now));
    }
    gaps
}

/// What a build needs besides the window's pings.
pub struct Inputs<'a> {
    /// The stored year of days, every remailer and family.
    pub stored: &'a [UptimeDay],
    /// Remailer row ids by address.
    pub ids: &'a BTreeMap<String, i64>,
    /// When the pinger was not running.
    pub pinger_down: &'a [(i64, i64)],
    /// Announced downtimes by remailer row id.
    pub announced: &'a BTreeMap<i64, Vec<(i64, i64)>>,
    /// When each remailer family's current identity began: the first sighting of the oldest
    /// of its current keys ([`identity_since`]). Longevity counts from that day.
    pub identity_since: &'a BTreeMap<(i64, ChainType), i64>,
}

/// When each remailer family's current identity began: the first sighting of the oldest key
/// of that family that is current at `now`. A remailer whose keys were all replaced starts
/// anew; one that added a key keeps its age.
pub fn identity_since(remailers: &[Remailer], now: i64) -> BTreeMap<(i64, ChainType), i64> {
    let mut out = BTreeMap::new();
    for r in remailers {
        for k in r.keys.iter().filter(|k| k.is_current(now)) {
            let since = out.entry((r.id, k.ping_type.chain_type())).or_insert(k.first_seen);
            *since = (*since).min(k.first_seen);
        }
    }
    out
}

/// The stability of every remailer family as of `now`, and the recomputed days to store.
pub struct Computed {
    pub figures: BTreeMap<(String, ChainType), Stability>,
    pub days: Vec<UptimeDay>,
    /// The window's observations per remailer row id and family, oldest first (for the
    /// status events).
    pub observations: BTreeMap<(i64, ChainType), Vec<Observation>>,
}

/// Stability for every remailer of `dataset` (the window, own failures already left out),
/// flagged among the listed ones (`listed(address, family)`).
pub fn compute(
    dataset: &Dataset,
    inputs: &Inputs<'_>,
    listed: impl Fn(&str, ChainType) -> bool,
    now: i64,
) -> Computed {
    let today = day_of(now);
    let first_recomputed = today - RECOMPUTED_DAYS + 1;
    // The first whole day the window covers.
    let window_first = day_of(now - STATS_DAYS as i64 * SECONDS_PER_DAY) + 1;
    let mut stored: BTreeMap<(i64, ChainType), Vec<&UptimeDay>> = BTreeMap::new();
    for d in inputs.stored.iter().filter(|d| d.day < first_recomputed) {
        stored.entry((d.remailer_id, d.family)).or_default().push(d);
    }
    let mut figures = BTreeMap::new();
    let mut days = Vec::new();
    let mut observed = BTreeMap::new();
    for r in &dataset.remailers {
        let Some(&id) = inputs.ids.get(&r.address) else { continue };
        let announced = inputs.announced.get(&id).map(Vec::as_slice).unwrap_or_default();
        for family in ChainType::ALL {
            let pings: Vec<Ping> =
                r.pings.iter().filter(|p| p.ping_type.chain_type() == family).copied().collect();
            let old = stored.get(&(id, family)).map(Vec::as_slice).unwrap_or_default();
            if pings.is_empty() && old.is_empty() {
                continue;
            }
            let mut latencies: Vec<i64> = pings
                .iter()
                .filter_map(|p| p.returned.filter(|&t| t <= now).map(|t| (t - p.sent).max(0)))
                .collect();
            latencies.sort_unstable();
            let obs =
                observations(&pings, allowance(&latencies), inputs.pinger_down, announced, now);
            // The last days are recomputed (pings settle); older days of the window are
            // computed once, when they are not stored yet (a new store, an imported history).
            let new: Vec<UptimeDay> = self::days(id, family, &obs, window_first, today)
                .into_iter()
                .filter(|d| d.day >= first_recomputed || !old.iter().any(|o| o.day == d.day))
                .collect();
            let all: Vec<UptimeDay> =
                old.iter().map(|d| (*d).clone()).chain(new.iter().cloned()).collect();
            let identity_since =
                inputs.identity_since.get(&(id, family)).copied().unwrap_or(i64::MIN);
            let slots = known_slots(&all, now);
            figures.insert((r.address.clone(), family), figures_since(&slots, now, identity_since));
            days.extend(new);
            observed.insert((id, family), obs);
        }
    }
    let mut flagged: Vec<(bool, &mut Stability)> =
        figures.iter_mut().map(|((address, family), f)| (listed(address, *family), f)).collect();
    flag(&mut flagged);
    Computed { figures, days, observations: observed }
}

#[cfg(test)]
mod tests;
