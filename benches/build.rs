//! The whole statistics build the daemon runs every build interval: load the window from the
//! SQLite file, compute, render every list and page of both trees and the keyrings, write them.
//!
//! `cargo bench --bench build`. It also leaves the 100-remailer state behind in
//! `target/bench-build/` (config, database), for timing the whole process:
//! `hyperfine 'target/release/fathometer --config target/bench-build/fathometer.toml publish --now 1800000000'`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng, rngs::StdRng};

use fathometer::config::Config;
use fathometer::model::{ChainType, ImportedChain, ImportedPing, PingType, RemailerInfo};
use fathometer::store::Store;

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

/// The workload of `benches/stats.rs`: N remailers, 12 days of 2-hourly pings of two types,
/// every ordered pair of both chain families pinged weekly.
fn fill(store: &mut Store, n: usize) {
    let mut rng = StdRng::seed_from_u64(n as u64);
    let types = [PingType::Mix, PingType::CpunkRsa];
    let mut infos = Vec::new();
    let mut pings = Vec::new();
    for i in 0..n {
        let nick = format!("r{i:03}");
        let address = format!("{nick}@x.example");
        infos.push(RemailerInfo {
            address: address.clone(),
            nick: Some(nick.clone()),
            caps: Some(format!("$remailer{{\"{nick}\"}} = \"<{address}> cpunk mix\";")),
            hidden: false,
        });
        let reliability: f64 = rng.gen_range(0.5..1.0);
        for t in types {
            let offset = rng.gen_range(0..7200);
            for slot in 0..(12 * 12) {
                let sent = NOW - 12 * DAY + 1 + offset + slot * 7200;
                let returned = (rng.gen_bool(reliability))
                    .then(|| sent + rng.gen_range(60..4 * 3600))
                    .filter(|&r| r <= NOW);
                pings.push(ImportedPing {
                    address: address.clone(),
                    ping_type: t,
                    key_id: None,
                    sent,
                    returned,
                });
            }
        }
    }
    let mut chains = Vec::new();
    for chain_type in ChainType::ALL {
        for a in &infos {
            for b in &infos {
                if a.address == b.address {
                    continue;
                }
                for week in 0..2 {
                    let sent = NOW - rng.gen_range(1..7 * DAY) - week * 7 * DAY;
                    let returned = rng.gen_bool(0.7).then(|| sent + rng.gen_range(600..6 * 3600));
                    chains.push(ImportedChain {
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
    store.import(&infos, &pings, &chains, NOW).expect("import");
}

fn prepare(dir: &Path) -> Config {
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let db = dir.join("state/fathometer.sqlite");
    if !db.exists() {
        let mut store = Store::open(&db).unwrap();
        fill(&mut store, 100);
    }
    let config = dir.join("fathometer.toml");
    std::fs::write(
        &config,
        "[pinger]\naddress = \"pinger@localhost\"\nstate_dir = \"state\"\n\
         [mailbox]\nmaildir = \"state/Maildir\"\n",
    )
    .unwrap();
    Config::load(&config).unwrap()
}

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-build");
    let config = prepare(&dir);
    let store = std::sync::Mutex::new(Store::open(&config.database_path()).unwrap());
    let mut group = c.benchmark_group("full_build");
    group.sample_size(20);
    group.bench_function("100", |b| {
        b.iter(|| {
            fathometer::app::report::build_and_publish(&config, black_box(&store), NOW, true)
                .expect("build")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
