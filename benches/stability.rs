//! Long-term stability for 100 remailers with a year of history: the figures from a stored
//! year and the 12-day window, the year read from SQLite and the recomputed days written
//! back, event detection, and the whole pure part of a build (statistics, stability, events).
//!
//! `cargo bench --bench stability`; figures in docs/PERFORMANCE.md.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng, rngs::StdRng};

use fathometer::app::report::{StatsInputs, compute};
use fathometer::model::ChainType;
use fathometer::model::event::Watch;
use fathometer::model::stability::{SLOTS_PER_DAY, SlotState, UptimeDay};
use fathometer::stats::{StatsOptions, stability};

mod workload;
use workload::{DAY, NOW, dataset, store_with};

/// A stored year per remailer and family: mostly up, a down slot now and then, a few
/// unknown ones (the pinger's own downtime).
fn year(ids: &[i64]) -> Vec<UptimeDay> {
    let mut rng = StdRng::seed_from_u64(365);
    let today = stability::day_of(NOW);
    let mut days = Vec::new();
    for &id in ids {
        for family in ChainType::ALL {
            for day in today - 365..today - 2 {
                let slots: [SlotState; SLOTS_PER_DAY] =
                    std::array::from_fn(|_| match rng.gen_range(0..100) {
                        0..=4 => SlotState::Down,
                        5..=7 => SlotState::Unknown,
                        _ => SlotState::Up,
                    });
                days.push(UptimeDay { remailer_id: id, family, day, slots });
            }
        }
    }
    days
}

fn bench(c: &mut Criterion) {
    let data = dataset(100);
    let mut store = store_with(&data);
    let rows = store.history(NOW - 13 * DAY, NOW).expect("history");
    let ids: Vec<i64> = rows.remailers.iter().map(|r| r.id).collect();
    let stored = year(&ids);
    store.save_uptime_days(&stored, 0).expect("store a year");
    let id_of: BTreeMap<String, i64> =
        rows.remailers.iter().map(|r| (r.address.clone(), r.id)).collect();
    let window = fathometer::stats::window::dataset(rows.clone(), NOW);
    let none = BTreeMap::new();
    let since = stability::identity_since(&rows.remailers, NOW);

    let mut group = c.benchmark_group("stability");
    group.sample_size(20);
    group.bench_function("compute/100x365", |b| {
        let inputs = stability::Inputs {
            stored: &stored,
            ids: &id_of,
            pinger_down: &[],
            announced: &none,
            identity_since: &since,
        };
        b.iter(|| stability::compute(black_box(&window), &inputs, |_, _| true, NOW))
    });
    group.bench_function("read_year/100", |b| {
        b.iter(|| store.uptime_days(stability::day_of(NOW) - 366).expect("read"))
    });
    let recomputed: Vec<UptimeDay> = stored
        .iter()
        .filter(|d| d.day >= stability::day_of(NOW) - 5)
        .cloned()
        .map(|mut d| {
            d.slots[0] = SlotState::Down;
            d
        })
        .collect();
    group.bench_function("save_days/100", |b| {
        b.iter(|| store.save_uptime_days(black_box(&recomputed), 0).expect("save"))
    });
    group.finish();

    // The pure part of a daemon build, with a year stored and events against a watch.
    let inputs = StatsInputs {
        rows,
        stored_days: stored,
        runs: Vec::new(),
        downtimes: Vec::new(),
        watch: Watch::new(),
        replay: Default::default(),
        key_disagreements: Default::default(),
    };
    let options = StatsOptions::default();
    let first = compute(&inputs, NOW, &options);
    let watched = StatsInputs { watch: first.watch, ..inputs };
    let mut group = c.benchmark_group("report_compute");
    group.sample_size(10);
    group.bench_function("100_with_year", |b| {
        b.iter(|| compute(black_box(&watched), NOW + 60, &options))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
