//! The figures against a deliberately naive implementation of Tor's accumulators, the
//! observation rules, and the flags on constructed populations.

use proptest::prelude::*;

use super::*;
use crate::model::{ChainType, PingType};

const NOW: i64 = 1_800_000_000;
const H: i64 = 3600;
const DAY: i64 = SECONDS_PER_DAY;

fn ping(sent: i64, returned: Option<i64>, failed: Option<i64>) -> Ping {
    Ping { ping_type: PingType::Mix, sent, returned, failed }
}

/// Tor's bookkeeping, step by step: four accumulators, a run in progress, and a
/// multiplication by 0.95 at every 12-hour boundary passed. Events at one instant come before
/// the multiplication at that instant.
fn naive(slots: &[(i64, SlotState)], now: i64) -> (Option<f64>, f64, f64) {
    // (time, order, action): 0 = slot end (add its time), 1 = run ended, 2 = decay.
    let mut events: Vec<(i64, u8, usize)> = Vec::new();
    for (i, &(start, state)) in slots.iter().enumerate() {
        let end = (start + SLOT_SECS).min(now);
        events.push((end, 0, i));
        if state == SlotState::Down {
            events.push((start, 1, i));
        }
    }
    let first = slots.first().map_or(now, |s| s.0);
    let mut b = (first / DECAY_INTERVAL_SECS) * DECAY_INTERVAL_SECS;
    while b <= now {
        if b >= first {
            events.push((b, 2, 0));
        }
        b += DECAY_INTERVAL_SECS;
    }
    events.sort();
    let (mut up, mut total, mut run_len, mut run_weight) = (0.0, 0.0, 0.0, 0.0);
    let mut current: Option<f64> = None;
    for (t, kind, i) in events {
        match kind {
            0 => {
                let (start, state) = slots[i];
                let secs = (t - start) as f64;
                total += secs;
                if state == SlotState::Up {
                    up += secs;
                    *current.get_or_insert(0.0) += secs;
                }
            }
            1 => {
                if let Some(len) = current.take() {
                    run_len += len;
                    run_weight += 1.0;
                }
            }
            _ => {
                up *= DECAY;
                total *= DECAY;
                run_len *= DECAY;
                run_weight *= DECAY;
            }
        }
    }
    if let Some(len) = current {
        run_len += len;
        run_weight += 1.0;
    }
    let wfu = (total > 0.0).then(|| up / total);
    let mtbf = if run_weight < 0.0001 { 0.0 } else { run_len / run_weight };
    (wfu, mtbf, total)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn arb_slots() -> impl Strategy<Value = (Vec<(i64, SlotState)>, i64)> {
    (
        prop::collection::vec(
            (0i64..40 * 12, prop::sample::select(vec![SlotState::Up, SlotState::Down])),
            0..200,
        ),
        0i64..3 * DAY,
    )
        .prop_map(|(raw, extra)| {
            let base = (NOW - 40 * DAY) / SLOT_SECS;
            let mut slots: Vec<(i64, SlotState)> =
                raw.into_iter().map(|(i, s)| ((base + i) * SLOT_SECS, s)).collect();
            slots.sort_by_key(|s| s.0);
            slots.dedup_by_key(|s| s.0);
            let last = slots.last().map_or(NOW - 40 * DAY, |s| s.0);
            (slots, last + extra)
        })
}

proptest! {
    #[test]
    fn figures_agree_with_the_naive_accumulators((slots, now) in arb_slots()) {
        let f = figures(&slots, now);
        let (wfu, mtbf, known) = naive(&slots, now);
        prop_assert_eq!(f.wfu.is_some(), wfu.is_some());
        if let (Some(a), Some(b)) = (f.wfu, wfu) {
            prop_assert!(close(a, b), "wfu {} vs {}", a, b);
            prop_assert!((0.0..=1.0).contains(&a));
        }
        prop_assert!(close(f.mtbf_secs, mtbf), "mtbf {} vs {}", f.mtbf_secs, mtbf);
        prop_assert!(close(f.time_known_secs, known), "tk {} vs {}", f.time_known_secs, known);
    }

    #[test]
    fn more_time_known_never_lowers_time_known((slots, now) in arb_slots(), later in 0i64..DAY) {
        // Time passing only decays, never adds: the figures of the same slots a little later
        // have at most the time known of now (plus the slot in progress).
        let f = figures(&slots, now);
        let g = figures(&slots, now + later);
        prop_assert!(g.time_known_secs <= f.time_known_secs + SLOT_SECS as f64 + 1e-6);
    }
}

/// `n` slots of `state` starting `days_ago` days before NOW, one per 2 hours.
fn run_of(state: SlotState, days_ago: i64, n: i64) -> Vec<(i64, SlotState)> {
    let start = (NOW - days_ago * DAY) / SLOT_SECS * SLOT_SECS;
    (0..n).map(|i| (start + i * SLOT_SECS, state)).collect()
}

#[test]
fn always_up_is_full_uptime_with_the_run_in_progress_as_mtbf() {
    let slots = run_of(SlotState::Up, 10, 10 * 12);
    let f = figures(&slots, NOW);
    assert_eq!(f.wfu, Some(1.0));
    // One run in progress, undecayed: its whole length.
    let length: i64 = slots.iter().map(|&(s, _)| (s + SLOT_SECS).min(NOW) - s).sum();
    assert_eq!(f.mtbf_secs, length as f64);
    assert!(f.longevity_days == 10 || f.longevity_days == 11, "{}", f.longevity_days);
    assert!(f.time_known_secs < length as f64, "old time counts less");
}

#[test]
fn a_failure_ends_a_run_and_unknown_time_neither_ends_nor_lengthens_one() {
    let mut slots = run_of(SlotState::Up, 6, 12);
    slots.extend(run_of(SlotState::Down, 5, 6));
    slots.extend(run_of(SlotState::Up, 4, 12));
    // A gap of unknown slots (the pinger was down) inside the last run.
    slots.extend(run_of(SlotState::Up, 2, 12));
    let f = figures(&slots, NOW);
    let wfu = f.wfu.unwrap();
    assert!(wfu > 0.8 && wfu < 1.0, "{wfu}");
    // Two runs: one of a day (ended 5 days ago, decayed), one of two days in progress.
    let (old_w, new_len) = (DECAY.powi(10), 2.0 * 24.0 * 3600.0);
    let expected = (old_w * 24.0 * 3600.0 + new_len) / (old_w + 1.0);
    assert!(close(f.mtbf_secs, expected), "{} vs {expected}", f.mtbf_secs);
}

#[test]
fn longevity_counts_up_days_of_the_last_year_only() {
    let mut slots = run_of(SlotState::Up, 400, 1);
    slots.extend(run_of(SlotState::Up, 300, 1));
    slots.extend(run_of(SlotState::Down, 200, 1));
    slots.extend(run_of(SlotState::Up, 3, 24));
    let f = figures(&slots, NOW);
    // 300 days ago, and two or three days of the last run (depending on where NOW falls).
    assert!((3..=4).contains(&f.longevity_days), "{}", f.longevity_days);
    assert_eq!(f.daily.len(), DAILY_DAYS as usize);
    assert!(f.daily.iter().filter(|d| d.is_some()).count() >= 2);
    assert_eq!(figures(&[], NOW).wfu, None);
}

#[test]
fn the_allowance_is_generous_and_bounded() {
    assert_eq!(allowance(&[]), MIN_ALLOWANCE_SECS);
    assert_eq!(allowance(&[60, 120, 300]), MIN_ALLOWANCE_SECS, "fast: at least 6 h");
    let slow: Vec<i64> = (1..=100).map(|i| i * 360).collect(); // up to 10 h
    assert_eq!(allowance(&slow), 2 * 95 * 360, "twice the 95th percentile");
    assert_eq!(allowance(&[10 * DAY]), MAX_ALLOWANCE_SECS);
}

#[test]
fn observations_follow_the_rules() {
    let a = 6 * H;
    let pings = [
        ping(NOW - 20 * H, Some(NOW - 19 * H), None), // back: up
        ping(NOW - 18 * H, None, Some(NOW - 17 * H)), // bounced: down
        ping(NOW - 16 * H, None, None),               // lost beyond the allowance: down
        ping(NOW - 3 * H, None, None),                // still within it: nothing yet
        ping(NOW - 14 * H, None, None),               // in flight while the pinger was down
        ping(NOW - 12 * H, None, None),               // during announced downtime
        ping(NOW + H, Some(NOW + 2 * H), None),       // after now: does not exist
    ];
    // The pinger was down after the 16-hour-old ping's allowance ran out, but before the
    // 14-hour-old one's did.
    let down = [(NOW - 9 * H, NOW - 9 * H + 1800)];
    let announced = [(NOW - 12 * H - 1, NOW - 11 * H)];
    let obs = observations(&pings, a, &down, &announced, NOW);
    assert_eq!(
        obs,
        vec![
            Observation { at: NOW - 20 * H, up: true },
            Observation { at: NOW - 18 * H, up: false },
            Observation { at: NOW - 16 * H, up: false },
        ]
    );
}

#[test]
fn slots_are_up_if_anything_came_back() {
    assert_eq!(SlotState::of([]), SlotState::Unknown);
    assert_eq!(SlotState::of([false, false]), SlotState::Down);
    assert_eq!(SlotState::of([false, true, false]), SlotState::Up);
    let day = day_of(NOW);
    let start = day * DAY;
    let obs = [
        Observation { at: start + 10, up: false },
        Observation { at: start + 20, up: true },
        Observation { at: start + 2 * H, up: false },
    ];
    let days = days(1, ChainType::Mix, &obs, day, day);
    assert_eq!(days[0].slots_text(), "ud..........");
    assert_eq!(UptimeDay::parse_slots("ud.........."), Some(days[0].slots));
    assert_eq!(UptimeDay::parse_slots("udx........."), None);
    assert_eq!(UptimeDay::parse_slots("ud"), None);
}

fn with(mtbf_days: f64, longevity: u32) -> Stability {
    Stability {
        wfu: Some(1.0),
        mtbf_secs: mtbf_days * DAY as f64,
        longevity_days: longevity,
        ..Stability::default()
    }
}

#[test]
fn stable_and_longterm_are_judged_among_listed_remailers() {
    let mut figures = [with(1.0, 10), with(2.0, 100), with(3.0, 200), with(6.0, 300), with(0.5, 5)];
    let listed = [true, true, true, true, true];
    let mut all: Vec<(bool, &mut Stability)> = listed.into_iter().zip(figures.iter_mut()).collect();
    flag(&mut all);
    let stable: Vec<bool> = figures.iter().map(|f| f.stable).collect();
    // Median MTBF 2 days: 2, 3 and 6 days qualify (6 also by the 5-day guarantee).
    assert_eq!(stable, [false, true, true, true, false]);
    let longterm: Vec<bool> = figures.iter().map(|f| f.longterm).collect();
    // Upper quartile of 5, 10, 100, 200, 300: from the 4th of 5 (200).
    assert_eq!(longterm, [false, false, true, true, false]);

    // A hidden remailer does not move the thresholds, but is judged by them.
    let mut figures = [with(1.0, 10), with(9.0, 400)];
    let mut all: Vec<(bool, &mut Stability)> =
        [true, false].into_iter().zip(figures.iter_mut()).collect();
    flag(&mut all);
    assert!(figures[0].stable && figures[0].longterm, "alone among the listed");
    assert!(figures[1].stable && figures[1].longterm);
}

fn dataset(pings: Vec<Ping>) -> Dataset {
    Dataset {
        remailers: vec![crate::model::RemailerHistory {
            address: "a@x".into(),
            nick: Some("a".into()),
            caps: Some("$remailer{\"a\"} = \"<a@x> mix\";".into()),
            hidden: false,
            key_types: vec![PingType::Mix],
            pings,
        }],
        ..Dataset::default()
    }
}

#[test]
fn compute_keeps_old_days_recomputes_recent_ones_and_fills_unstored_window_days() {
    // Pings every 2 hours for ten days; all came back except during a 12-hour outage five
    // days ago, and during the pinger's own 6-hour absence two days ago.
    let mut pings = Vec::new();
    let mut t = NOW - 10 * DAY;
    while t < NOW - 8 * H {
        let outage = (NOW - 5 * DAY..NOW - 5 * DAY + 12 * H).contains(&t);
        let pinger_away = (NOW - 2 * DAY..NOW - 2 * DAY + 6 * H).contains(&t);
        pings.push(ping(t, (!outage && !pinger_away).then_some(t + 600), None));
        t += 2 * H;
    }
    let ids = BTreeMap::from([("a@x".to_owned(), 7)]);
    // A stored day a month ago, all up: kept as stored.
    let old_day = day_of(NOW) - 30;
    let stored = vec![UptimeDay {
        remailer_id: 7,
        family: ChainType::Mix,
        day: old_day,
        slots: [SlotState::Up; 12],
    }];
    let pinger_down = vec![(NOW - 2 * DAY - H, NOW - 2 * DAY + 6 * H)];
    let announced = BTreeMap::new();
    let since = BTreeMap::new();
    let inputs = Inputs {
        stored: &stored,
        ids: &ids,
        pinger_down: &pinger_down,
        announced: &announced,
        identity_since: &since,
    };
    let computed = compute(&dataset(pings.clone()), &inputs, |_, _| true, NOW);
    let f = &computed.figures[&("a@x".to_owned(), ChainType::Mix)];
    let slots = known_slots(&[stored.clone(), computed.days.clone()].concat(), NOW);
    assert_eq!(slots.iter().filter(|s| s.1 == SlotState::Down).count(), 6, "the outage only");
    assert_eq!(f.longevity_days, 11, "ten days of pings and the stored day");
    assert!(f.wfu.unwrap() < 1.0 && f.wfu.unwrap() > 0.9, "{f:?}");
    assert!(computed.days.iter().all(|d| d.day > old_day), "stored days are not recomputed");
    assert!(computed.days.iter().any(|d| d.day == day_of(NOW - 9 * DAY)), "unstored days are");

    // The same outage announced beforehand is unknown time, not failure.
    let announced = BTreeMap::from([(7, vec![(NOW - 5 * DAY - H, NOW - 4 * DAY)])]);
    let since = BTreeMap::new();
    let inputs = Inputs {
        stored: &stored,
        ids: &ids,
        pinger_down: &pinger_down,
        announced: &announced,
        identity_since: &since,
    };
    let computed = compute(&dataset(pings.clone()), &inputs, |_, _| true, NOW);
    let f = &computed.figures[&("a@x".to_owned(), ChainType::Mix)];
    assert_eq!(f.wfu, Some(1.0), "{f:?}");
    assert!(f.stable && f.longterm);

    // A key first seen three days ago: Longevity counts from then.
    let since = BTreeMap::from([((7, ChainType::Mix), NOW - 3 * DAY)]);
    let inputs = Inputs { identity_since: &since, ..inputs };
    let f = &compute(&dataset(pings), &inputs, |_, _| true, NOW).figures
        [&("a@x".to_owned(), ChainType::Mix)];
    // NOW is 08:00 UTC and the last ping went at midnight: the key's day and the two after.
    assert_eq!(f.longevity_days, 3, "{f:?}");
}
