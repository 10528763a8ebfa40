//! Full statistics build: N remailers with 12 days of 2-hourly pings (mix and cpunk-rsa),
//! plus every ordered two-hop chain of both families pinged weekly.
//!
//! `cargo bench --bench stats`; figures in docs/PERFORMANCE.md.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng, rngs::StdRng};

use fathometer::model::{
    ChainPing, ChainType, Dataset, ImportedChain, ImportedPing, Ping, PingType, RemailerHistory,
    RemailerInfo,
};
use fathometer::stats::{self, StatsOptions};
use fathometer::store::Store;

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn dataset(n: usize) -> Dataset {
    let mut rng = StdRng::seed_from_u64(n as u64);
    let types = [PingType::Mix, PingType::CpunkRsa];
    let remailers: Vec<RemailerHistory> = (0..n)
        .map(|i| {
            let reliability: f64 = rng.gen_range(0.5..1.0);
            let mut pings = Vec::new();
            for t in types {
                let offset = rng.gen_range(0..7200);
                for slot in 0..(12 * 12) {
                    let sent = NOW - 12 * DAY + 1 + offset + slot * 7200;
                    let returned = (rng.gen_bool(reliability))
                        .then(|| sent + rng.gen_range(60..4 * 3600))
                        .filter(|&r| r <= NOW);
                    pings.push(Ping { ping_type: t, sent, returned });
                }
            }
            let nick = format!("r{i:03}");
            RemailerHistory {
                caps: Some(format!("$remailer{{\"{nick}\"}} = \"<{nick}@x.example> cpunk mix\";")),
                address: format!("{nick}@x.example"),
                nick: Some(nick),
                hidden: false,
                key_types: types.to_vec(),
                pings,
            }
        })
        .collect();
    let mut chains = Vec::new();
    for chain_type in ChainType::ALL {
        for a in &remailers {
            for b in &remailers {
                if a.address == b.address {
                    continue;
                }
                // Weekly: two pings in the 12-day window.
                for week in 0..2 {
                    let sent = NOW - rng.gen_range(1..7 * DAY) - week * 7 * DAY;
                    let returned = rng.gen_bool(0.7).then(|| sent + rng.gen_range(600..6 * 3600));
                    chains.push(ChainPing {
                        chain_type,
                        addr1: a.address.clone(),
                        addr2: b.address.clone(),
                        sent,
                        returned: returned.filter(|&r| r <= NOW),
                    });
                }
            }
        }
    }
    Dataset { remailers, chains, ..Default::default() }
}

fn store_with(data: &Dataset) -> Store {
    let mut store = Store::open_in_memory().expect("in-memory store");
    let infos: Vec<RemailerInfo> = data
        .remailers
        .iter()
        .map(|r| RemailerInfo {
            address: r.address.clone(),
            nick: r.nick.clone(),
            caps: r.caps.clone(),
            hidden: false,
        })
        .collect();
    let pings: Vec<ImportedPing> = data
        .remailers
        .iter()
        .flat_map(|r| {
            r.pings.iter().map(|p| ImportedPing {
                address: r.address.clone(),
                ping_type: p.ping_type,
                key_id: None,
                sent: p.sent,
                returned: p.returned,
            })
        })
        .collect();
    let chains: Vec<ImportedChain> = data
        .chains
        .iter()
        .map(|c| ImportedChain {
            chain_type: c.chain_type,
            addr1: c.addr1.clone(),
            addr2: c.addr2.clone(),
            sent: c.sent,
            returned: c.returned,
        })
        .collect();
    store.import(&infos, &pings, &chains, NOW).expect("import");
    store
}

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
        site_name: "bench",
        operator: None,
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
