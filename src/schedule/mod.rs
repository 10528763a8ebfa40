//! When to send pings (spec decision 2).
//!
//! Every remailer key is pinged once in every 2-hour period, at `7200 * n + offset`, and every
//! ordered chain (R1, R2), R1 != R2, once per ISO week (plus once per UTC day while it is
//! "interesting", i.e. in intensive care). The offsets are drawn from a keyed hash:
//!
//! * **Why a hash at all:** the schedule must be reproducible (after a restart, in tests, when
//!   listing upcoming pings) without storing it anywhere.
//! * **Why the secret is mixed in:** a remailer that could predict when the pinger sends could
//!   treat pings better than ordinary mail (deliver them quickly, drop everything else around
//!   them). Without the pinger secret the offsets look random; two pingers with different
//!   secrets choose different times.
//! * **Why the date/week is mixed in:** the offset changes every UTC day (chains: every ISO
//!   week), so a remailer cannot learn a fixed time of day from watching a few pings; within
//!   a day it stays fixed, which keeps the schedule simple and spaces pings 2 h apart.
//!
//! # Hash input layout
//!
//! The hash is MD5 over the fields below, with a single `0x00` byte *between* consecutive
//! fields (no leading or trailing separator). The separator keeps field boundaries
//! unambiguous: without it `("ab", "c")` and `("a", "bc")` would hash alike. (Addresses,
//! type names, key ids and dates never contain NUL; the secret is the first field and fixed.)
//!
//! * single-hop: `secret 00 address 00 type 00 keyid 00 YYYY-MM-DD`, where `type` is
//!   [`PingType::as_str`] and the date is the UTC day of the period (ASCII, zero-padded).
//! * chain, weekly: `secret 00 addr1 00 addr2 00 chaintype 00 YYYY-Www`, where `chaintype` is
//!   [`ChainType::as_str`] and the week is the ISO week label (ISO year, zero-padded week,
//!   e.g. `2026-W47`).
//! * chain, daily: `secret 00 addr1 00 addr2 00 chaintype 00 YYYY-MM-DD`.
//! * information request (remailer-conf, -key, ...), daily:
//!   `secret 00 address 00 "request" 00 kind 00 YYYY-MM-DD` (Echolot sends each request once
//!   a day at a hashed time, `echolot.md` §2.2).
//!
//! * replay-protection probe, once per probe period of `every` seconds (periods counted
//!   from the epoch, `n = t div every`): `secret 00 address 00 "replay-probe" 00 n`, with `n`
//!   in decimal ASCII.
//!
//! The first 8 bytes of the digest, read as a big-endian `u64`, are reduced modulo the period
//! length (7200, 604800 or 86400 s, or the probe period). The modulo bias is below 2^-40 and irrelevant here.
//!
//! # Time
//!
//! All functions are pure: times are unix seconds (`i64`, UTC) passed in by the caller. Dates
//! outside chrono's range (about ±262,000 years) are clamped to its limits so that nothing
//! panics; schedules that far out are meaningless but harmless.

use chrono::{Datelike, NaiveDate};
use md5::{Digest, Md5};

use crate::model::{ChainType, PingType};

pub mod plan;

/// Length of a single-hop period: each key is pinged once per period (the slot).
pub const SINGLE_PERIOD_SECS: i64 = crate::model::SLOT_SECS;
/// Length of a UTC day (period of the intensive-care chain pings).
pub const DAY_SECS: i64 = crate::model::SECONDS_PER_DAY;
/// Length of an ISO week (period of the regular chain pings).
pub const WEEK_SECS: i64 = 604800;

use crate::model::time::UNIX_EPOCH_DAYS_FROM_CE;
pub use crate::model::time::utc_date;
/// 1970-01-01 was a Thursday, i.e. 3 days after the Monday that starts its ISO week.
const EPOCH_DAYS_AFTER_MONDAY: i64 = 3;

// Periods must tile days and weeks, so a period never straddles a date change and the
// hash input of a slot is well defined.
const _: () = assert!(DAY_SECS % SINGLE_PERIOD_SECS == 0 && WEEK_SECS % DAY_SECS == 0);

/// MD5 of `secret 00 field1 00 field2 ...`, first 8 bytes big-endian, modulo `modulus`.
fn keyed_offset(secret: &[u8], fields: &[&[u8]], modulus: i64) -> i64 {
    let mut hasher = Md5::new();
    hasher.update(secret);
    for field in fields {
        hasher.update([0u8]);
        hasher.update(field);
    }
    let digest = hasher.finalize();
    let mut first8 = [0u8; 8];
    first8.copy_from_slice(&digest[..8]);
    // `modulus` is one of the positive period constants, so both casts are lossless.
    (u64::from_be_bytes(first8) % modulus.unsigned_abs()) as i64
}

/// `YYYY-MM-DD`, written by hand so the exact bytes are visible here.
fn date_label(day: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", day.year(), day.month(), day.day())
}

/// `YYYY-Www` with the ISO year (which differs from the calendar year around New Year).
fn iso_week_label(day: NaiveDate) -> String {
    let week = day.iso_week();
    format!("{:04}-W{:02}", week.year(), week.week())
}

/// Unix time of 00:00 UTC on `day`.
pub fn date_start(day: NaiveDate) -> i64 {
    (i64::from(day.num_days_from_ce()) - UNIX_EPOCH_DAYS_FROM_CE) * DAY_SECS
}

/// Start (00:00 UTC) of the UTC day containing `t`.
pub fn day_start(t: i64) -> i64 {
    t.div_euclid(DAY_SECS) * DAY_SECS
}

/// Start (Monday 00:00 UTC) of the ISO week containing `t`.
pub fn iso_week_start(t: i64) -> i64 {
    let shift = EPOCH_DAYS_AFTER_MONDAY * DAY_SECS;
    (t + shift).div_euclid(WEEK_SECS) * WEEK_SECS - shift
}

/// Index `n` of the single-hop period `[7200 * n, 7200 * (n + 1))` containing `t`.
pub fn period_index(t: i64) -> i64 {
    t.div_euclid(SINGLE_PERIOD_SECS)
}

/// Offset (0..7200 s) of a key's ping within each 2-hour period of `day`.
///
/// Fixed for the whole UTC day, unpredictable without `secret`, reproducible with it.
pub fn single_offset(
    secret: &[u8],
    address: &str,
    ping_type: PingType,
    key_id: &str,
    day: NaiveDate,
) -> i64 {
    let date = date_label(day);
    keyed_offset(
        secret,
        &[address.as_bytes(), ping_type.as_str().as_bytes(), key_id.as_bytes(), date.as_bytes()],
        SINGLE_PERIOD_SECS,
    )
}

/// Unix time of the key's ping in period `[7200 * n, 7200 * (n + 1))`, `n = period_index`.
///
/// The period lies within one UTC day (7200 divides 86400), whose date feeds the hash.
pub fn single_slot(
    secret: &[u8],
    address: &str,
    ping_type: PingType,
    key_id: &str,
    period_index: i64,
) -> i64 {
    let start = period_index.saturating_mul(SINGLE_PERIOD_SECS);
    let offset = single_offset(secret, address, ping_type, key_id, utc_date(start));
    start.saturating_add(offset)
}

/// The first slot of this key strictly after `after` (for logs and listings).
pub fn next_single_slot(
    secret: &[u8],
    address: &str,
    ping_type: PingType,
    key_id: &str,
    after: i64,
) -> i64 {
    let n = period_index(after);
    let slot = single_slot(secret, address, ping_type, key_id, n);
    if slot > after {
        slot
    } else {
        // The next period starts after `after`, so its slot does too.
        single_slot(secret, address, ping_type, key_id, n + 1)
    }
}

/// Unix time of chain (addr1, addr2)'s weekly ping in the ISO week containing `week_start`
/// (normally its Monday 00:00 UTC; any time within the week gives the same result).
pub fn chain_weekly_slot(
    secret: &[u8],
    addr1: &str,
    addr2: &str,
    chain_type: ChainType,
    week_start: i64,
) -> i64 {
    let start = iso_week_start(week_start);
    let week = iso_week_label(utc_date(start));
    start
        + keyed_offset(
            secret,
            &[addr1.as_bytes(), addr2.as_bytes(), chain_type.as_str().as_bytes(), week.as_bytes()],
            WEEK_SECS,
        )
}

/// Unix time of chain (addr1, addr2)'s intensive-care ping on the UTC day containing
/// `day_start` (normally its 00:00 UTC; any time within the day gives the same result).
pub fn chain_daily_slot(
    secret: &[u8],
    addr1: &str,
    addr2: &str,
    chain_type: ChainType,
    day_start: i64,
) -> i64 {
    let start = self::day_start(day_start);
    let date = date_label(utc_date(start));
    start
        + keyed_offset(
            secret,
            &[addr1.as_bytes(), addr2.as_bytes(), chain_type.as_str().as_bytes(), date.as_bytes()],
            DAY_SECS,
        )
}

/// The times whose slots are due at a tick: `after < slot <= until`.
///
/// Half-open so that consecutive ticks (`after` = previous tick) partition time: no slot is
/// sent twice and none falls between two ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueWindow {
    /// Exclusive lower bound.
    pub after: i64,
    /// Inclusive upper bound (the current time).
    pub until: i64,
}

impl DueWindow {
    /// Whether slot time `t` is due in this window.
    pub fn contains(&self, t: i64) -> bool {
        self.after < t && t <= self.until
    }

    /// Whether no time at all is due.
    pub fn is_empty(&self) -> bool {
        self.after >= self.until
    }
}

/// The due window for a tick at `now`, given the previous tick `last_tick`.
///
/// Slots are never replayed in a burst after downtime: the window reaches back at most
/// `max_lateness` seconds, so after a longer gap the missed slots are skipped and each key
/// simply waits for its next slot (a burst of pings after an outage would be conspicuous and
/// would measure the outage, not the remailers). As long as ticks are at most `max_lateness`
/// apart, every slot is due in exactly one tick. If the clock went back (`last_tick > now`),
/// the window is empty so nothing already sent is sent again.
pub fn due_window(last_tick: Option<i64>, now: i64, max_lateness: i64) -> DueWindow {
    let earliest = now.saturating_sub(max_lateness.max(0));
    let after = match last_tick {
        Some(last) if last > now => now,
        Some(last) => last.max(earliest),
        None => earliest,
    };
    DueWindow { after, until: now }
}

/// Every slot of this key inside `window`, in time order.
pub fn single_slots_due(
    secret: &[u8],
    address: &str,
    ping_type: PingType,
    key_id: &str,
    window: &DueWindow,
) -> Vec<i64> {
    if window.is_empty() {
        return Vec::new();
    }
    (period_index(window.after)..=period_index(window.until))
        .map(|n| single_slot(secret, address, ping_type, key_id, n))
        .filter(|&t| window.contains(t))
        .collect()
}

/// Unix time of the daily `kind` request to `address` on the UTC day containing `day_start`.
pub fn request_slot(secret: &[u8], address: &str, kind: &str, day_start: i64) -> i64 {
    let start = self::day_start(day_start);
    let date = date_label(utc_date(start));
    start
        + keyed_offset(
            secret,
            &[address.as_bytes(), b"request", kind.as_bytes(), date.as_bytes()],
            DAY_SECS,
        )
}

/// Every daily slot of the `kind` request to `address` inside `window`.
pub fn request_slots_due(secret: &[u8], address: &str, kind: &str, window: &DueWindow) -> Vec<i64> {
    if window.is_empty() {
        return Vec::new();
    }
    let mut due = Vec::new();
    let mut day = day_start(window.after);
    while day <= window.until {
        let t = request_slot(secret, address, kind, day);
        if window.contains(t) {
            due.push(t);
        }
        day += DAY_SECS;
    }
    due
}

/// Which schedule a chain slot comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainSlotKind {
    /// The regular once-a-week ping every chain gets.
    Weekly,
    /// The extra once-a-day ping of an "interesting" chain (intensive care).
    Daily,
}

/// Every slot of chain (addr1, addr2) inside `window`, in time order: its weekly slots, plus
/// its daily slots when `interesting`. A self-chain (`addr1 == addr2`, compared exactly, so
/// callers pass normalised addresses) never gets a slot: it tests one remailer twice, which
/// the single-hop pings already do.
pub fn chain_slots_due(
    secret: &[u8],
    addr1: &str,
    addr2: &str,
    chain_type: ChainType,
    interesting: bool,
    window: &DueWindow,
) -> Vec<(i64, ChainSlotKind)> {
    if addr1 == addr2 || window.is_empty() {
        return Vec::new();
    }
    let mut due = Vec::new();
    let mut week = iso_week_start(window.after);
    while week <= window.until {
        let t = chain_weekly_slot(secret, addr1, addr2, chain_type, week);
        if window.contains(t) {
            due.push((t, ChainSlotKind::Weekly));
        }
        week += WEEK_SECS;
    }
    if interesting {
        let mut day = day_start(window.after);
        while day <= window.until {
            let t = chain_daily_slot(secret, addr1, addr2, chain_type, day);
            if window.contains(t) {
                due.push((t, ChainSlotKind::Daily));
            }
            day += DAY_SECS;
        }
    }
    due.sort_by_key(|&(t, _)| t);
    due
}

/// Unix time of the replay-protection probe of `address` in the probe period of `every`
/// seconds (counted from the epoch) that contains `t`. `every` is positive.
pub fn replay_probe_slot(secret: &[u8], address: &str, every: i64, t: i64) -> i64 {
    let every = every.max(1);
    let n = t.div_euclid(every);
    let label = n.to_string();
    let start = n.saturating_mul(every);
    start.saturating_add(keyed_offset(
        secret,
        &[address.as_bytes(), b"replay-probe", label.as_bytes()],
        every,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashSet};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const KEY: &str = "b2d810d501f2dba50c3b619e9edf3be2";
    const ALPHA: &str = "alpha@a.example";

    /// Offset of `address`'s Mix key `KEY` under `SECRET`.
    fn mix_offset(address: &str, day: NaiveDate) -> i64 {
        single_offset(SECRET, address, PingType::Mix, KEY, day)
    }

    /// Slot of alpha's Mix key `KEY` under `SECRET` in period `n`.
    fn alpha_slot(n: i64) -> i64 {
        single_slot(SECRET, ALPHA, PingType::Mix, KEY, n)
    }

    /// Due slots of alpha's Mix key `KEY` under `SECRET`.
    fn alpha_due(window: &DueWindow) -> Vec<i64> {
        single_slots_due(SECRET, ALPHA, PingType::Mix, KEY, window)
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    /// 2026-11-21 00:00 UTC (a Saturday).
    fn t_2026_11_21() -> i64 {
        date_start(date(2026, 11, 21))
    }

    fn address_strategy() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,12}@[a-z]{1,8}\\.example"
    }

    fn ping_type_strategy() -> impl Strategy<Value = PingType> {
        prop::sample::select(PingType::ALL.to_vec())
    }

    #[test]
    fn calendar_helpers() {
        assert_eq!(date_start(date(1970, 1, 1)), 0);
        assert_eq!(utc_date(0), date(1970, 1, 1));
        assert_eq!(utc_date(-1), date(1969, 12, 31));
        assert_eq!(utc_date(t_2026_11_21() + DAY_SECS - 1), date(2026, 11, 21));
        assert_eq!(utc_date(i64::MAX), NaiveDate::MAX);
        assert_eq!(utc_date(i64::MIN), NaiveDate::MIN);
        // 2026-11-21 is a Saturday in ISO week 2026-W47, which starts Monday 2026-11-16.
        let monday = date_start(date(2026, 11, 16));
        assert_eq!(iso_week_start(t_2026_11_21() + 12345), monday);
        assert_eq!(iso_week_start(monday), monday);
        assert_eq!(iso_week_start(monday - 1), monday - WEEK_SECS);
        assert_eq!(iso_week_label(date(2026, 11, 21)), "2026-W47");
        // Around New Year the ISO year differs from the calendar year.
        assert_eq!(iso_week_label(date(2027, 1, 1)), "2026-W53");
        assert_eq!(iso_week_label(date(2024, 12, 30)), "2025-W01");
        assert_eq!(iso_week_label(date(2026, 1, 5)), "2026-W02");
        // Before the epoch: 1970-01-01 is a Thursday, its week began Monday 1969-12-29.
        assert_eq!(iso_week_start(0), -3 * DAY_SECS);
        assert_eq!(date_label(date(2026, 1, 2)), "2026-01-02");
        assert_eq!(period_index(-1), -1);
        assert_eq!(day_start(-1), -DAY_SECS);
    }

    proptest! {
        /// Test 1: exactly one slot per key per 2-hour period, inside that period.
        #[test]
        fn one_slot_per_key_per_period(
            secret in prop::collection::vec(any::<u8>(), 0..48),
            address in address_strategy(),
            ping_type in ping_type_strategy(),
            key_id in "[0-9a-f]{32}|none",
            n in -200_000i64..3_000_000,
        ) {
            let start = n * SINGLE_PERIOD_SECS;
            let slot = single_slot(&secret, &address, ping_type, &key_id, n);
            prop_assert!(start <= slot && slot < start + SINGLE_PERIOD_SECS);
            // The window covering exactly [start, start + 7200) sees that slot and no other.
            let period = DueWindow { after: start - 1, until: start + SINGLE_PERIOD_SECS - 1 };
            prop_assert_eq!(
                single_slots_due(&secret, &address, ping_type, &key_id, &period),
                vec![slot]
            );
            let next = next_single_slot(&secret, &address, ping_type, &key_id, start - 1);
            prop_assert_eq!(next, slot);
        }

        /// Chains: the weekly slot lies in its ISO week, the daily slot in its day.
        #[test]
        fn chain_slots_inside_their_periods(
            a in address_strategy(),
            b in address_strategy(),
            t in -1_000_000_000i64..10_000_000_000,
        ) {
            let week = iso_week_start(t);
            let w = chain_weekly_slot(SECRET, &a, &b, ChainType::Mix, t);
            prop_assert!(week <= w && w < week + WEEK_SECS);
            prop_assert_eq!(w, chain_weekly_slot(SECRET, &a, &b, ChainType::Mix, week));
            let day = day_start(t);
            let d = chain_daily_slot(SECRET, &a, &b, ChainType::Cpunk, t);
            prop_assert!(day <= d && d < day + DAY_SECS);
        }

        /// Ticks never more than max_lateness apart see every slot exactly once.
        #[test]
        fn irregular_ticks_see_every_slot_once(
            address in address_strategy(),
            start in 0i64..2_000_000_000,
            gaps in prop::collection::vec(1i64..=600, 300..700),
        ) {
            let mut seen = Vec::new();
            let mut last = start;
            for gap in gaps {
                let now = last + gap;
                let window = due_window(Some(last), now, 600);
                seen.extend(single_slots_due(SECRET, &address, PingType::Mix, KEY, &window));
                last = now;
            }
            let expected: Vec<i64> = (period_index(start)..=period_index(last))
                .map(|n| single_slot(SECRET, &address, PingType::Mix, KEY, n))
                .filter(|&t| start < t && t <= last)
                .collect();
            prop_assert_eq!(seen, expected);
        }
    }

    #[test]
    fn slots_match_periods_over_many_keys() {
        for i in 0..200 {
            let address = format!("r{i}@x.example");
            let ping_type = PingType::ALL[i % 4];
            for n in (0..5000).map(|k| 246_000 + k * 7) {
                let slot = single_slot(SECRET, &address, ping_type, KEY, n);
                assert_eq!(period_index(slot), n, "{address} period {n}");
            }
        }
    }

    /// Test 2: the offset is the same in all 12 periods of a day and changes across days.
    #[test]
    fn offset_constant_within_day_and_varies_across_days() {
        let day0 = date(2026, 11, 1);
        let mut offsets = Vec::new();
        for d in 0..30 {
            let day = day0 + chrono::Days::new(d);
            let offset = mix_offset(ALPHA, day);
            let first = period_index(date_start(day));
            for n in first..first + 12 {
                let slot = alpha_slot(n);
                assert_eq!(slot - n * SINGLE_PERIOD_SECS, offset, "{day} period {n}");
            }
            offsets.push(offset);
        }
        let distinct: HashSet<_> = offsets.iter().collect();
        let n_distinct = distinct.len();
        assert!(n_distinct >= 25, "only {n_distinct} distinct offsets");

        let a = mix_offset(ALPHA, date(2026, 11, 21));
        let b = mix_offset(ALPHA, date(2026, 11, 22));
        assert_ne!(a, b);
    }

    /// Every input field matters (the separator makes them unambiguous).
    #[test]
    fn every_field_changes_the_offset() {
        let day = date(2026, 11, 21);
        let mut seen = HashSet::new();
        let mut check = |o: i64| assert!(seen.insert(o), "collision at {o}");
        check(mix_offset(ALPHA, day));
        check(mix_offset("beta@a.example", day));
        check(single_offset(SECRET, ALPHA, PingType::CpunkRsa, KEY, day));
        check(single_offset(SECRET, ALPHA, PingType::Mix, "none", day));
        check(single_offset(b"other", ALPHA, PingType::Mix, KEY, day));
        // Moving a byte across a field boundary changes the hash.
        let x = keyed_offset(SECRET, &[b"ab", b"c"], WEEK_SECS);
        let y = keyed_offset(SECRET, &[b"a", b"bc"], WEEK_SECS);
        assert_ne!(x, y);
    }

    /// Test 3: without the secret the offsets cannot be derived.
    #[test]
    fn different_secret_gives_different_offsets() {
        let day = date(2026, 11, 21);
        let differ = (0..1000)
            .filter(|i| {
                let address = format!("remailer{i}@example.net");
                mix_offset(&address, day)
                    != single_offset(b"another secret", &address, PingType::Mix, KEY, day)
            })
            .count();
        // Equal by chance with probability 1/7200 each.
        assert!(differ >= 990, "only {differ} of 1000 differ");
    }

    /// Test 4: offsets are uniform over the 2-hour period (chi-square, 24 bins of 300 s).
    #[test]
    fn offsets_are_uniform_chi_square() {
        const N: usize = 10_000;
        const BINS: usize = 24;
        let day = date(2026, 11, 21);
        let mut counts = [0u32; BINS];
        for i in 0..N {
            let address = format!("node{i}@remailer.example");
            let offset = single_offset(SECRET, &address, PingType::Mix, KEY, day);
            counts[usize::try_from(offset / 300).expect("offset is in 0..7200")] += 1;
        }
        let expected = N as f64 / BINS as f64;
        let chi2: f64 = counts.iter().map(|&c| (f64::from(c) - expected).powi(2) / expected).sum();
        // 0.999 quantile of chi-square with 23 degrees of freedom.
        assert!(chi2 < 49.73, "chi2 = {chi2}, counts = {counts:?}");
        // A too-perfect fit means the offsets are not random (e.g. a counter).
        assert!(chi2 > 5.0, "chi2 = {chi2} suspiciously small, counts = {counts:?}");
    }

    /// Test 5: chains get one weekly slot per ISO week, interesting ones one more per day,
    /// self-chains none, and (a, b) is independent of (b, a).
    #[test]
    fn chain_schedule() {
        let addrs = ["a@a.example", "b@b.example", "c@c.example", "d@d.example"];
        let first_week = iso_week_start(t_2026_11_21());
        for w in 0..6 {
            let week = first_week + w * WEEK_SECS;
            let window = DueWindow { after: week - 1, until: week + WEEK_SECS - 1 };
            for a in addrs {
                for b in addrs {
                    for chain_type in ChainType::ALL {
                        let plain = chain_slots_due(SECRET, a, b, chain_type, false, &window);
                        let ic = chain_slots_due(SECRET, a, b, chain_type, true, &window);
                        if a == b {
                            assert!(plain.is_empty() && ic.is_empty(), "self-chain {a}");
                            continue;
                        }
                        let weekly = chain_weekly_slot(SECRET, a, b, chain_type, week);
                        assert_eq!(plain, vec![(weekly, ChainSlotKind::Weekly)]);
                        assert!(week <= weekly && weekly < week + WEEK_SECS);

                        let daily: Vec<i64> = ic
                            .iter()
                            .filter(|(_, k)| *k == ChainSlotKind::Daily)
                            .map(|&(t, _)| t)
                            .collect();
                        let days: BTreeSet<i64> = daily.iter().map(|&t| day_start(t)).collect();
                        assert_eq!(daily.len(), 7, "{a} {b}");
                        assert_eq!(days.len(), 7, "one daily slot per day: {a} {b}");
                        assert!(days.iter().all(|&d| week <= d && d < week + WEEK_SECS));
                        assert_eq!(ic.len(), 8);
                        assert!(ic.contains(&(weekly, ChainSlotKind::Weekly)));
                        assert!(ic.windows(2).all(|p| p[0].0 <= p[1].0), "sorted");
                    }
                }
            }
        }

        // (a, b) and (b, a) are hashed separately.
        let (a, b) = (addrs[0], addrs[1]);
        let ab = chain_weekly_slot(SECRET, a, b, ChainType::Mix, first_week);
        let ba = chain_weekly_slot(SECRET, b, a, ChainType::Mix, first_week);
        assert_ne!(ab, ba);
        let ab = chain_daily_slot(SECRET, a, b, ChainType::Mix, t_2026_11_21());
        let ba = chain_daily_slot(SECRET, b, a, ChainType::Mix, t_2026_11_21());
        assert_ne!(ab, ba);
        // Weekly offsets change from week to week.
        let offsets: HashSet<i64> = (0..10)
            .map(|w| {
                let week = first_week + w * WEEK_SECS;
                chain_weekly_slot(SECRET, a, b, ChainType::Cpunk, week) - week
            })
            .collect();
        assert!(offsets.len() >= 9);
    }

    /// Test 6a: after a 3-day outage only the last max_lateness seconds are due.
    #[test]
    fn no_burst_after_downtime() {
        let max_lateness = 600;
        let mut nonempty = 0;
        for i in 0..2000 {
            // Spread `now` over many times of day, but keep the 10-minute window within one
            // UTC day (across midnight two slots of a key can be closer than 10 minutes).
            let now = t_2026_11_21() + 1000 + i * 37 % (DAY_SECS - 2000) + i * DAY_SECS;
            let window = due_window(Some(now - 3 * DAY_SECS), now, max_lateness);
            assert_eq!(window, DueWindow { after: now - max_lateness, until: now });
            let due = alpha_due(&window);
            assert!(due.len() <= 1, "burst at {now}: {due:?}");
            assert!(due.iter().all(|&t| now - max_lateness < t && t <= now));
            nonempty += due.len();
        }
        // About 600/7200 of the ticks find a slot: "often 0", but not always.
        assert!((50..400).contains(&nonempty), "{nonempty} ticks had a slot");

        // Chains after a 3-week outage: no backlog of weekly slots.
        let now = t_2026_11_21();
        let window = due_window(Some(now - 21 * DAY_SECS), now, max_lateness);
        let due = chain_slots_due(SECRET, "a@x", "b@y", ChainType::Mix, true, &window);
        assert!(due.len() <= 2 && due.iter().all(|&(t, _)| window.contains(t)));

        // First start (no previous tick) also looks back only max_lateness.
        assert_eq!(due_window(None, now, 600), DueWindow { after: now - 600, until: now });
    }

    /// Test 6b: a tick every 60 s for two days sends each of the 24 slots exactly once.
    #[test]
    fn regular_ticks_send_every_slot_once() {
        let start = t_2026_11_21();
        let mut last = start;
        let mut seen = Vec::new();
        for k in 1..=2 * DAY_SECS / 60 {
            let now = start + k * 60;
            let window = due_window(Some(last), now, 600);
            seen.extend(alpha_due(&window));
            last = now;
        }
        let first = period_index(start);
        let expected: Vec<i64> = (first..first + 24).map(alpha_slot).collect();
        assert!(expected.iter().all(|&t| start < t && t <= last));
        assert_eq!(seen.len(), 24);
        assert_eq!(seen, expected);
        let unique: HashSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), 24, "repeated slot");
    }

    /// Test 6c: if the clock goes back, nothing is due (nothing is sent twice).
    #[test]
    fn clock_going_back_yields_nothing() {
        let now = t_2026_11_21() + 5000;
        let window = due_window(Some(now + 3600), now, 600);
        assert_eq!(window, DueWindow { after: now, until: now });
        assert!(window.is_empty());
        for i in 0..100 {
            let address = format!("r{i}@x.example");
            assert!(single_slots_due(SECRET, &address, PingType::Mix, KEY, &window).is_empty());
            assert!(
                chain_slots_due(SECRET, &address, "z@z", ChainType::Mix, true, &window).is_empty()
            );
        }
    }

    #[test]
    fn next_single_slot_is_strictly_after() {
        let start = t_2026_11_21();
        for t in (start..start + 3 * DAY_SECS).step_by(997) {
            let next = next_single_slot(SECRET, ALPHA, PingType::Mix, KEY, t);
            assert!(next > t);
            let window = DueWindow { after: t, until: next };
            let due = alpha_due(&window);
            assert_eq!(due, vec![next], "no slot between {t} and {next}");
        }
    }

    /// Test 7: golden vector; documents the exact hash input layout.
    #[test]
    fn golden_vector_single_offset() {
        let mut input = Vec::new();
        input.extend_from_slice(b"0123456789abcdef0123456789abcdef");
        input.push(0);
        input.extend_from_slice(b"alpha@a.example");
        input.push(0);
        input.extend_from_slice(b"mix");
        input.push(0);
        input.extend_from_slice(b"b2d810d501f2dba50c3b619e9edf3be2");
        input.push(0);
        input.extend_from_slice(b"2026-11-21");
        let digest = Md5::digest(&input);
        let first8: [u8; 8] = digest[..8].try_into().expect("md5 digest has 16 bytes");
        let expected = (u64::from_be_bytes(first8) % 7200) as i64;

        let day = date(2026, 11, 21);
        let offset = mix_offset(ALPHA, day);
        assert_eq!(offset, expected);
        // Pinned value (also checked with `printf ... | md5sum` outside Rust).
        assert_eq!(offset, GOLDEN_OFFSET);
    }

    const GOLDEN_OFFSET: i64 = 5088;
}
