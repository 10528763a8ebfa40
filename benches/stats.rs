//! Full statistics build: N remailers with 12 days of 2-hourly pings (mix and cpunk-rsa),
//! plus every ordered two-hop chain of both families pinged weekly.
//!
//! `cargo bench --bench stats`; figures in docs/PERFORMANCE.md.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

use fathometer::stats::{self, StatsOptions};

mod workload;
use workload::{DAY, NOW, dataset, store_with};

fn bench_compute(c: &mut Criterion) {
    let options = StatsOptions::default();
    let mut group = c.benchmark_group("stats_compute");
    group.sample_size(20);
    for n in [25, 100, 400] {
        let data = dataset(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &data, |b, data| {
            b.iter(|| stats::compute(black_box(data), NOW, &options))
        });
    }
    group.finish();

    // The daemon's real path: load the window from SQLite, then compute.
    let data = dataset(100);
    let store = store_with(&data);
    let mut group = c.benchmark_group("stats_from_store");
    group.sample_size(10);
    group.bench_function("100", |b| {
        b.iter(|| {
            let d =
                stats::window::dataset(store.history(NOW - 13 * DAY, NOW).expect("history"), NOW);
            stats::compute(&d, NOW, &options)
        })
    });
    group.finish();

    // What a build writes: the statistics with the split rlists, then every list file of
    // both trees (mlist, mlist2, rlist, rlist2, rlist-*, rlist2-*, clist), rendered.
    let split = StatsOptions { separate_rlists: true, ..StatsOptions::default() };
    let list_options =
        fathometer::publish::ListOptions { combined_list: true, ..Default::default() };
    let mut group = c.benchmark_group("publish_lists");
    group.sample_size(20);
    group.bench_function("100", |b| {
        b.iter(|| {
            let report = stats::compute(black_box(&data), NOW, &split);
            let public = fathometer::publish::list_files(&report, false, &list_options);
            let private = fathometer::publish::list_files(&report, true, &list_options);
            public.len() + private.len()
        })
    });
    group.finish();

    // The HTML of a build: both trees' index, a page per remailer with its four SVG charts,
    // a page per list, from.html and the thesaurus, from a report already computed.
    let report = stats::compute(&data, NOW, &split);
    let remailers = store.remailers().expect("remailers");
    let replies = std::collections::BTreeMap::new();
    let inputs = fathometer::publish::pages::PageInputs {
        report: &report,
        remailers: &remailers,
        replies: &replies,
        from_lines: &[],
        events: &[],
        site_name: "bench",
        operator: None,
        pinger_address: "pinger@bench.example",
    };
    let public_lists = fathometer::publish::list_files(&report, false, &list_options);
    let private_lists = fathometer::publish::list_files(&report, true, &list_options);
    let mut group = c.benchmark_group("publish_pages");
    group.sample_size(10);
    group.bench_function("100", |b| {
        b.iter(|| {
            let public =
                fathometer::publish::pages::render_pages(black_box(&inputs), false, &public_lists);
            let private =
                fathometer::publish::pages::render_pages(black_box(&inputs), true, &private_lists);
            public.expect("pages").len() + private.expect("pages").len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_compute);
criterion_main!(benches);
