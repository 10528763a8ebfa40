use proptest::prelude::*;

use super::*;
use crate::model::caps::*;
use crate::model::*;

const NOW: i64 = 1_700_000_000;
const DAY: i64 = SECONDS_PER_DAY;

fn returned(sent: i64, latency: i64) -> Ping {
    Ping { ping_type: PingType::Mix, sent, returned: Some(sent + latency), failed: None }
}

fn lost(sent: i64) -> Ping {
    Ping { ping_type: PingType::Mix, sent, returned: None, failed: None }
}

fn remailer(nick: &str, caps_tail: &str, pings: Vec<Ping>) -> RemailerHistory {
    let address = format!("{nick}@{nick}.example");
    RemailerHistory {
        caps: Some(format!("$remailer{{\"{nick}\"}} = \"<{address}> {caps_tail}\";")),
        address,
        nick: Some(nick.into()),
        hidden: false,
        key_types: vec![PingType::Mix],
        pings,
    }
}

/// echolot.md §6.3's worked example: 4 returned pings 2 days old, one outstanding 2000 s old.
fn worked_example() -> Vec<Ping> {
    let two_days = NOW - 2 * DAY - 100;
    let mut p: Vec<Ping> = [600, 1200, 1800, 2400].iter().map(|&l| returned(two_days, l)).collect();
    p.push(lost(NOW - 2000));
    p
}

#[test]
fn echolot_model_reproduces_the_worked_example() {
    let s = remailer_stats(&worked_example(), NOW, Model::Echolot);
    // adj = (2000 - 900) / 0.8 = 1375; 2 of 4 latencies are greater; (4 + 0.5 * 0.5) / 4.5.
    assert!((s.reliability - 0.944_444_444_444_444_4).abs() < 1e-15, "{}", s.reliability);
    assert_eq!(s.latency_median, Some(1500.0));
    assert_eq!(s.sent, 5);
    assert_eq!(s.returned, 4);
}

#[test]
fn methodology_model_reads_the_seed_literally() {
    let s = remailer_stats(&worked_example(), NOW, Model::Methodology);
    // mod_age = (2000 - 900) * 0.8 = 880 s; 1 of 4 latencies is within it, so w2 = 0.25 and
    // the outstanding ping weighs 0.5 * 0.25 in the denominator only: 4 / 4.125.
    assert!((s.reliability - 4.0 / 4.125).abs() < 1e-15, "{}", s.reliability);
}

/// A ping that bounced or came back altered at `known`.
fn failed(sent: i64, known: i64) -> Ping {
    Ping { ping_type: PingType::Mix, sent, returned: None, failed: Some(known) }
}

#[test]
fn a_known_failure_counts_at_once_in_the_methodology_model() {
    // Two pings sent ten minutes ago: one back, one came back altered a minute ago.
    let pings = [returned(NOW - 600, 300), failed(NOW - 600, NOW - 60)];
    let s = remailer_stats(&pings, NOW, Model::Methodology);
    assert_eq!(s.reliability, 0.5, "settled failure: full weight, nothing returned");
    assert_eq!(s.reliability_by_day[0], Some(0.5), "the day's history alike");
    assert_eq!((s.sent, s.returned), (2, 1));
    // Before it was known, it was in flight and too young to weigh anything.
    assert_eq!(remailer_stats(&pings, NOW - 120, Model::Methodology).reliability, 1.0);
    // Echolot cannot tell a failure from a ping in transit: unchanged.
    let unknown = [returned(NOW - 600, 300), lost(NOW - 600)];
    assert_eq!(
        remailer_stats(&pings, NOW, Model::Echolot),
        remailer_stats(&unknown, NOW, Model::Echolot)
    );
}

#[test]
fn a_chain_ping_known_to_have_failed_is_judged_without_waiting_out_the_grace() {
    // Three a→b chain pings sent a minute ago, all bounced: far inside the grace time.
    let young = NOW - 60;
    let bounced = |sent| ChainPing { failed: Some(NOW - 10), ..chain("a", "b", sent, None) };
    let data = chain_data(vec![bounced(young), bounced(young + 1), bounced(young + 2)]);
    let methodology = compute(&data, NOW, &StatsOptions::default());
    assert_eq!(methodology.broken_type2.lines(true), vec!["(a b)"]);
    let options = StatsOptions { model: Model::Echolot, ..StatsOptions::default() };
    let echolot = compute(&data, NOW, &options);
    assert!(echolot.broken_type2.lines(true).is_empty(), "Echolot waits out the grace");
}

#[test]
fn seed_example_two_hours_gives_84_minutes() {
    assert_eq!(methodology_mod_age(7200.0), 84.0 * 60.0);
    // "If 100% of this node's pings were faster than 84 minutes, then w2 = 1" (and 30% gives
    // 0.3, none gives 0).
    let fast = [60, 600, 5040];
    assert_eq!(outstanding_weight(7200.0, &fast), 1.0);
    let mixed = [60, 600, 3000, 6000, 6000, 6000, 7000, 8000, 9000, 9999];
    assert!((outstanding_weight(7200.0, &mixed) - 0.3).abs() < 1e-15);
    assert_eq!(outstanding_weight(7200.0, &[5041, 9000]), 0.0);
}

#[test]
fn outstanding_weight_edges() {
    // Too young to judge: 0, whatever returned before.
    assert_eq!(outstanding_weight(899.0, &[1]), 0.0);
    assert_eq!(outstanding_weight(899.0, &[]), 0.0);
    // Nothing returned in the window: the ping counts fully against the remailer.
    assert_eq!(outstanding_weight(901.0, &[]), 1.0);
    // Exactly at mod_age counts as "within".
    assert_eq!(outstanding_weight(900.0 + 100.0 / 0.8, &[100]), 1.0);
}

#[test]
fn in_transit_probability_is_strictly_greater() {
    // adj = (1900 - 900) / 0.8 = 1250: latencies 1250 are not greater, 1251 is.
    assert_eq!(in_transit_probability(1900.0, &[1250, 1251]), 0.5);
    assert_eq!(in_transit_probability(100.0, &[1, 2]), 1.0);
    assert_eq!(in_transit_probability(100.0, &[]), 0.0);
}

#[test]
fn window_boundaries_are_exact() {
    let edge = NOW - 12 * DAY;
    assert!(!in_window(NOW, edge));
    assert!(in_window(NOW, edge + 1));
    assert!(in_window(NOW, NOW));
    assert!(!in_window(NOW, NOW + 1));
    assert_eq!(age_day(NOW, NOW - DAY + 1), 0);
    assert_eq!(age_day(NOW, NOW - DAY), 1);
    assert_eq!(age_day(NOW, edge + 1), 11);
    let s = remailer_stats(&[returned(edge, 10), returned(edge + 1, 20)], NOW, Model::Echolot);
    assert_eq!(s.sent, 1);
    assert_eq!(s.latency_median, Some(20.0));
    assert_eq!(s.latency_median_by_day[11], Some(20.0));
}

#[test]
fn as_of_now_hides_the_future() {
    // Sent after now: does not exist. Returned after now: still outstanding.
    let pings = [returned(NOW - 5000, 100), returned(NOW - 3000, 4000), lost(NOW + 10)];
    let s = remailer_stats(&pings, NOW, Model::Echolot);
    assert_eq!((s.sent, s.returned), (2, 1));
    assert_eq!(s.latency_median, Some(100.0));
}

#[test]
fn medians_take_the_mean_of_the_middle_two() {
    assert_eq!(median(&[]), None);
    assert_eq!(median(&[7]), Some(7.0));
    assert_eq!(median(&[1, 2, 10]), Some(2.0));
    assert_eq!(median(&[1, 2, 3, 10]), Some(2.5));
    let pings = [returned(NOW - 1000, 300), returned(NOW - 2000, 100), returned(NOW - DAY - 5, 50)];
    let s = remailer_stats(&pings, NOW, Model::Echolot);
    assert_eq!(s.latency_median, Some(100.0));
    assert_eq!(s.latency_median_by_day[0], Some(200.0));
    assert_eq!(s.latency_median_by_day[1], Some(50.0));
    assert_eq!(s.latency_median_by_day[2], None);
}

#[test]
fn per_day_reliability_is_unweighted() {
    // Day 3: two returned, two lost long ago (p = 0): 0.5. Day 0: one returned: 1.
    let d3 = NOW - 3 * DAY - 10;
    let pings = [returned(d3, 60), returned(d3, 60), lost(d3), lost(d3), returned(NOW - 500, 60)];
    for model in [Model::Echolot, Model::Methodology] {
        let s = remailer_stats(&pings, NOW, model);
        assert_eq!(s.reliability_by_day[3], Some(0.5), "{model}");
        assert_eq!(s.reliability_by_day[0], Some(1.0), "{model}");
        assert_eq!(s.reliability_by_day[5], None, "{model}");
        // Weighted: (1*2 + 0.5) / (1*4 + 0.5).
        assert!((s.reliability - 2.5 / 4.5).abs() < 1e-15, "{model}: {}", s.reliability);
    }
}

#[test]
fn no_pings_means_zero_reliability_and_no_latency() {
    for model in [Model::Echolot, Model::Methodology] {
        let s = remailer_stats(&[], NOW, model);
        assert_eq!(s.reliability, 0.0);
        assert_eq!(s.latency_median, None);
        assert!(s.reliability_by_day.iter().all(Option::is_none));
    }
}

#[test]
fn age_weights_apply_by_whole_days() {
    // One returned ping on day 7 (w 0.5) and one lost on day 1 (w 1.0), no skew involved.
    let pings = [returned(NOW - 7 * DAY - 1, 60), lost(NOW - DAY - 1)];
    let s = remailer_stats(&pings, NOW, Model::Echolot);
    // p for the lost ping: adj = (86401 - 900) / 0.8 > 60, so p = 0.
    assert!((s.reliability - 0.5 / 1.5).abs() < 1e-15);
    let s = remailer_stats(&pings, NOW, Model::Methodology);
    assert!((s.reliability - 0.5 / 1.5).abs() < 1e-15);
}

#[test]
fn listing_requires_keys_nick_and_caps_and_honours_testing_and_hiding() {
    let mut hidden = remailer("hidden", "mix", vec![]);
    hidden.hidden = true;
    let mut no_caps = remailer("nocaps", "mix", vec![]);
    no_caps.caps = None;
    let mut no_key = remailer("nokey", "mix", vec![]);
    no_key.key_types = vec![PingType::CpunkRsa];
    let data = Dataset {
        remailers: vec![
            remailer("plain", "mix", vec![]),
            remailer("tester", "mix TESTING", vec![]),
            hidden,
            no_caps,
            no_key,
        ],
        chains: vec![],
        ..Default::default()
    };
    let list = build_list(&data, &MIX_LIST, NOW, &StatsOptions::default());
    let names: Vec<(&str, bool)> = list.iter().map(|e| (e.nick.as_str(), e.listed)).collect();
    assert_eq!(names, vec![("hidden", false), ("plain", true), ("tester", false)]);
    // The cpunk list holds only the remailer with a cpunk key.
    let cpunk = build_list(&data, &CPUNK_LIST, NOW, &StatsOptions::default());
    assert_eq!(cpunk.len(), 1);
    assert_eq!(cpunk[0].nick, "nokey");
}

#[test]
fn sort_by_reliability_then_latency_option_then_nick() {
    let perfect = |lat: i64| vec![returned(NOW - DAY - 10, lat)];
    let data = Dataset {
        remailers: vec![
            remailer("c", "mix", perfect(100)),
            remailer("a", "mix", perfect(300)),
            remailer("b", "mix", perfect(200)),
            remailer("z", "mix", vec![returned(NOW - DAY - 10, 1), lost(NOW - 3 * DAY)]),
        ],
        chains: vec![],
        ..Default::default()
    };
    let order = |sort_by_latency| {
        let options = StatsOptions { sort_by_latency, ..StatsOptions::default() };
        build_list(&data, &MIX_LIST, NOW, &options).into_iter().map(|e| e.nick).collect::<Vec<_>>()
    };
    assert_eq!(order(0), ["a", "b", "c", "z"]);
    assert_eq!(order(1), ["c", "b", "a", "z"]);
    assert_eq!(order(-1), ["a", "b", "c", "z"]);
}

#[test]
fn word_matching_follows_perl_word_boundaries() {
    assert!(contains_word("$remailer{\"x\"} = \"<x@y> mix testing\";", "testing"));
    assert!(contains_word("TESTING", "testing"));
    assert!(!contains_word("pretesting", "testing"));
    assert!(!contains_word("testing_mode", "testing"));
    assert!(contains_word("a-testing-b", "testing"));
    assert_eq!(word_number("klen1000 klen64", "klen"), Some(1000));
    assert_eq!(word_number("xklen9 klen12a klen7", "klen"), Some(7));
    assert_eq!(word_number("klen", "klen"), None);
    assert_eq!(word_number("klen99999999999999999999999", "klen"), Some(u64::MAX));
}

fn chain(a1: &str, a2: &str, sent: i64, returned: Option<i64>) -> ChainPing {
    ChainPing {
        chain_type: ChainType::Mix,
        addr1: format!("{a1}@{a1}.example"),
        addr2: format!("{a2}@{a2}.example"),
        sent,
        returned,
        failed: None,
    }
}

fn chain_data(chains: Vec<ChainPing>) -> Dataset {
    let good = || (0..20).map(|i| returned(NOW - DAY - i * 3600, 600)).collect::<Vec<_>>();
    let mut hidden = remailer("hid", "mix", good());
    hidden.hidden = true;
    Dataset {
        remailers: vec![
            remailer("a", "mix", good()),
            remailer("b", "mix", good()),
            remailer("c", "mix", good()),
            remailer("d", "mix", good()),
            remailer("e", "mix", good()),
            hidden,
        ],
        chains,
        ..Default::default()
    }
}

#[test]
fn chains_need_three_samples_and_fall_below_the_fudge_factor() {
    let old = NOW - 2 * DAY;
    let data = chain_data(vec![
        // a→b: 3 lost: broken (0 <= 1 * 0.3).
        chain("a", "b", old, None),
        chain("a", "b", old + 1, None),
        chain("a", "b", old + 2, None),
        // b→c: 2 lost: too few samples, intensive care, not broken.
        chain("b", "c", old, None),
        chain("b", "c", old + 1, None),
        // c→d: 1 of 4 returned: 0.25 <= 0.3: broken. d→e: 2 of 4: fine.
        chain("c", "d", old, Some(old + 100)),
        chain("c", "d", old + 1, None),
        chain("c", "d", old + 2, None),
        chain("c", "d", old + 3, None),
        chain("d", "e", old, Some(old + 100)),
        chain("d", "e", old + 1, Some(old + 100)),
        chain("d", "e", old + 2, None),
        chain("d", "e", old + 3, None),
        // e→hid: broken but not public.
        chain("e", "hid", old, None),
        chain("e", "hid", old + 1, None),
        chain("e", "hid", old + 2, None),
    ]);
    let r = compute(&data, NOW, &StatsOptions::default());
    assert_eq!(r.broken_type2.public.as_deref(), Some("(a b)\n(c d)"));
    assert_eq!(r.broken_type2.private.as_deref(), Some("(a b)\n(c d)\n(e hid)"));
    let ic: Vec<(&str, &IntensiveCare)> =
        r.broken_type2.intensive_care.iter().map(|(a, _, why)| (a.as_str(), why)).collect();
    assert!(ic.contains(&("b@b.example", &IntensiveCare::TooFewSamples { sent: 2 })));
    assert!(ic.contains(&("a@a.example", &IntensiveCare::Broken { returned: 0, sent: 3 })));
    assert_eq!(ic.len(), 4);
    assert_eq!(r.broken_type1.public.as_deref(), Some(""));
}

#[test]
fn young_unreturned_chain_pings_are_within_grace() {
    // Latency 600 + 600, grace 1.5: an unreturned ping younger than 1800 s is not counted.
    let data = chain_data(vec![
        chain("a", "b", NOW - 1799, None),
        chain("a", "b", NOW - 1799, None),
        chain("a", "b", NOW - 1799, None),
        chain("b", "c", NOW - 1800, None),
        chain("b", "c", NOW - 1801, None),
        chain("b", "c", NOW - 1802, None),
    ]);
    let r = compute(&data, NOW, &StatsOptions::default());
    assert_eq!(r.broken_type2.private.as_deref(), Some("(b c)"));
    assert!(r.broken_type2.intensive_care.iter().all(|(a, _, _)| a == "b@b.example"));
}

#[test]
fn chain_period_is_ten_days_and_unknown_remailers_are_ignored() {
    let p = 10 * DAY;
    let data = chain_data(vec![
        chain("a", "b", NOW - p - 1, None),
        chain("a", "b", NOW - p - 2, None),
        chain("a", "b", NOW - p - 3, None),
        chain("b", "c", NOW - p, None),
        chain("b", "c", NOW - p, None),
        chain("b", "c", NOW - p, None),
        chain("a", "stranger", NOW - DAY, None),
        chain("a", "stranger", NOW - DAY, None),
        chain("a", "stranger", NOW - DAY, None),
    ]);
    let r = compute(&data, NOW, &StatsOptions::default());
    assert_eq!(r.broken_type2.private.as_deref(), Some("(b c)"));
}

#[test]
fn operator_files_and_the_publish_switch() {
    let data = chain_data(vec![
        chain("a", "b", NOW - DAY, None),
        chain("a", "b", NOW - DAY, None),
        chain("a", "b", NOW - DAY, None),
    ]);
    let hard = Some("(x y)\n(* z)\n".to_string());
    let options = StatsOptions { hard_broken_type2: hard.clone(), ..StatsOptions::default() };
    let r = compute(&data, NOW, &options);
    assert_eq!(r.broken_type2.public.as_deref(), Some("(* z)\n(a b)\n(x y)"));
    let options = StatsOptions {
        hard_broken_type2: hard.clone(),
        publish_broken_chains: false,
        ..StatsOptions::default()
    };
    let r = compute(&data, NOW, &options);
    assert_eq!(r.broken_type2.public, hard);
    assert_eq!(r.broken_type2.private.as_deref(), Some("(* z)\n(a b)\n(x y)"));
    let options = StatsOptions { chain_pings: false, ..StatsOptions::default() };
    let r = compute(&data, NOW, &options);
    assert_eq!((r.broken_type2.public, r.broken_type2.private), (None, None));
}

fn arb_pings() -> impl Strategy<Value = Vec<Ping>> {
    prop::collection::vec(
        (0..13 * DAY, prop::option::of(0..3 * DAY), prop::option::of(0..3 * DAY)).prop_map(
            |(age, lat, failed_after)| Ping {
                ping_type: PingType::Mix,
                sent: NOW - age,
                returned: lat.map(|l| NOW - age + l),
                // Only a ping that did not return can be known to have failed.
                failed: failed_after.filter(|_| lat.is_none()).map(|f| NOW - age + f),
            },
        ),
        0..200,
    )
}

proptest! {
    #[test]
    fn knowing_a_failure_never_raises_reliability_and_echolot_never_sees_it(
        pings in arb_pings(),
    ) {
        let unknown: Vec<Ping> = pings.iter().map(|p| Ping { failed: None, ..*p }).collect();
        let known = remailer_stats(&pings, NOW, Model::Methodology).reliability;
        let in_flight = remailer_stats(&unknown, NOW, Model::Methodology).reliability;
        // Equal when the denominator was empty either way; otherwise never higher.
        prop_assert!(known <= in_flight || in_flight == 0.0, "{known} > {in_flight}");
        prop_assert_eq!(
            remailer_stats(&pings, NOW, Model::Echolot),
            remailer_stats(&unknown, NOW, Model::Echolot)
        );
    }

    #[test]
    fn reliability_is_a_fraction(pings in arb_pings()) {
        for model in [Model::Echolot, Model::Methodology] {
            let s = remailer_stats(&pings, NOW, model);
            prop_assert!((0.0..=1.0).contains(&s.reliability));
            for r in s.reliability_by_day.iter().flatten() {
                prop_assert!((0.0..=1.0).contains(r));
            }
            prop_assert!(s.returned <= s.sent);
        }
    }

    #[test]
    fn order_of_pings_does_not_matter(mut pings in arb_pings()) {
        let a = remailer_stats(&pings, NOW, Model::Echolot);
        pings.reverse();
        let b = remailer_stats(&pings, NOW, Model::Echolot);
        prop_assert!((a.reliability - b.reliability).abs() < 1e-12);
        prop_assert_eq!(a.latency_median, b.latency_median);
        prop_assert_eq!(a.latency_median_by_day, b.latency_median_by_day);
    }

    #[test]
    fn models_agree_when_nothing_is_outstanding(pings in arb_pings()) {
        let returned: Vec<Ping> = pings.into_iter()
            .filter(|p| p.returned.is_some_and(|r| r <= NOW)).collect();
        let a = remailer_stats(&returned, NOW, Model::Echolot);
        let b = remailer_stats(&returned, NOW, Model::Methodology);
        prop_assert_eq!(a.clone(), b);
        let in_window = returned.iter().any(|p| in_window(NOW, p.sent));
        prop_assert_eq!(a.reliability, if in_window { 1.0 } else { 0.0 });
    }

    #[test]
    fn old_losses_of_a_silent_remailer_count_fully(ages in prop::collection::vec(901i64..12 * DAY, 1..50)) {
        // Nothing ever returned: methodology w2 = 1 and Echolot p = 0, so both give 0.
        let pings: Vec<Ping> = ages.iter().map(|&a| lost(NOW - a)).collect();
        for model in [Model::Echolot, Model::Methodology] {
            prop_assert_eq!(remailer_stats(&pings, NOW, model).reliability, 0.0);
        }
    }

    #[test]
    fn a_late_return_never_lowers_echolot_reliability_below_a_loss(
        pings in arb_pings(), age in 0..12 * DAY, lat in 0..DAY
    ) {
        // Turning an outstanding ping into a returned one can only help it.
        let mut with_loss = pings.clone();
        with_loss.push(lost(NOW - age));
        let mut with_return = pings;
        with_return.push(Ping { ping_type: PingType::Mix, sent: NOW - age, returned: Some(NOW - age + lat.min(age)), failed: None });
        let l = remailer_stats(&with_loss, NOW, Model::Echolot);
        let r = remailer_stats(&with_return, NOW, Model::Echolot);
        prop_assert!(r.returned == l.returned + 1);
    }

    #[test]
    fn compression_output_is_sorted_unique_and_covers_input(
        pairs in prop::collection::vec((0u8..6, 0u8..6), 0..30), n in 1usize..10
    ) {
        let names = ["a", "b", "c", "d", "e", "*"];
        let chains: Vec<String> = pairs.iter()
            .map(|&(l, r)| format!("({} {})", names[l as usize], names[r as usize])).collect();
        let out = compress_broken_chains(n, chains.clone(), 0.5);
        let mut sorted = out.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(&sorted, &out);
        // Every input chain is either kept or covered by a wildcard on its side.
        for c in &chains {
            let inner = &c[1..c.len() - 1];
            let (l, r) = inner.split_once(' ').unwrap();
            let covered = out.contains(c)
                || out.contains(&format!("(* {r})"))
                || out.contains(&format!("({l} *)"));
            prop_assert!(covered, "{} lost from {:?}", c, out);
        }
    }
}

mod own_failure {
    use super::super::{in_own_failure, own_failure_windows};

    const D: i64 = 1800;

    #[test]
    fn all_checks_back_means_no_window() {
        let checks = [(0, Some(1)), (900, Some(901)), (1800, Some(1805))];
        assert!(own_failure_windows(&checks, D, 10_000).is_empty());
    }

    #[test]
    fn a_missing_check_excludes_from_the_last_good_to_the_next_good() {
        let checks = [(0, Some(1)), (900, None), (1800, None), (2700, Some(2701))];
        let w = own_failure_windows(&checks, D, 10_000);
        assert_eq!(w, vec![(0, 2700)]);
        assert!(in_own_failure(&w, 1));
        assert!(in_own_failure(&w, 2699));
        assert!(!in_own_failure(&w, 0));
        assert!(!in_own_failure(&w, 2700));
    }

    #[test]
    fn a_late_check_counts_as_failed_and_an_open_failure_extends_to_infinity() {
        let checks = [(0, Some(1)), (900, Some(900 + D + 1))];
        assert_eq!(own_failure_windows(&checks, D, 10_000), vec![(0, i64::MAX)]);
    }

    #[test]
    fn a_check_still_within_its_deadline_is_not_a_failure_yet() {
        let checks = [(0, Some(1)), (900, None)];
        assert!(own_failure_windows(&checks, D, 900 + D).is_empty());
        assert_eq!(own_failure_windows(&checks, D, 900 + D + 1), vec![(0, i64::MAX)]);
    }

    proptest::proptest! {
        #[test]
        fn pings_near_passing_checks_only_are_kept(
            checks in proptest::collection::vec((0i64..100_000, proptest::option::of(0i64..4000)), 0..30),
            sent in 0i64..100_000,
        ) {
            // Distinct send times: ties between checks have no meaningful order.
            let mut seen = std::collections::HashSet::new();
            let checks: Vec<(i64, Option<i64>)> = checks
                .into_iter()
                .filter(|(s, _)| seen.insert(*s))
                .map(|(s, r)| (s, r.map(|d| s + d)))
                .collect();
            let now = 200_000;
            let w = own_failure_windows(&checks, D, now);
            for pair in w.windows(2) {
                proptest::prop_assert!(pair[0].1 <= pair[1].0, "sorted and disjoint: {:?}", w);
            }
            // Restated per failed check, without merging: excluded iff some failed check's
            // (last passing before, first passing after) interval holds the ping.
            let passed = |c: &(i64, Option<i64>)| c.1.is_some_and(|r| r - c.0 <= D);
            let expected = checks.iter().filter(|f| !passed(f)).any(|f| {
                let start = checks
                    .iter()
                    .filter(|p| passed(p) && p.0 < f.0)
                    .map(|p| p.0)
                    .max()
                    .unwrap_or(f.0 - D);
                let end = checks
                    .iter()
                    .filter(|p| passed(p) && p.0 > f.0)
                    .map(|p| p.0)
                    .min()
                    .unwrap_or(i64::MAX);
                start < sent && sent < end
            });
            proptest::prop_assert_eq!(in_own_failure(&w, sent), expected);
        }
    }
}
