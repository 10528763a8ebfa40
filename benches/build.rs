//! The whole statistics build the daemon runs every build interval: load the window from the
//! SQLite file, compute, render every list and page of both trees and the keyrings, write them.
//!
//! `cargo bench --bench build`. It also leaves the 100-remailer state behind in
//! `target/bench-build/` (config, database), for timing the whole process:
//! `hyperfine 'target/release/fathometer --config target/bench-build/fathometer.toml publish --now 1800000000'`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};

use fathometer::config::Config;
use fathometer::store::Store;

mod workload;
use workload::NOW;

fn prepare(dir: &Path) -> Config {
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let db = dir.join("state/fathometer.sqlite");
    if !db.exists() {
        let mut store = Store::open(&db).unwrap();
        workload::import_into(&mut store, &workload::dataset(100));
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
    use fathometer::app::report::{BuildInputs, build_and_publish};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-build");
    let config = prepare(&dir);
    let store = std::sync::Mutex::new(Store::open(&config.database_path()).unwrap());
    let mut group = c.benchmark_group("full_build");
    group.sample_size(20);
    group.bench_function("100", |b| {
        b.iter(|| build_and_publish(&config, black_box(&store), NOW, true).expect("build"))
    });
    group.finish();

    // Its parts: reading the inputs from the file, then the statistics, then rendering.
    let options = fathometer::app::report::stats_options(Some(&config), None).unwrap();
    let db = store.lock().unwrap();
    let mut group = c.benchmark_group("build_parts");
    group.sample_size(20);
    group.bench_function("gather/100", |b| {
        b.iter(|| BuildInputs::gather(black_box(&db), NOW, true).expect("gather"))
    });
    let inputs = BuildInputs::gather(&db, NOW, true).unwrap();
    group.bench_function("statistics/100", |b| {
        b.iter(|| {
            let dataset = fathometer::stats::window::dataset(inputs.stats.rows.clone(), NOW);
            fathometer::stats::compute(black_box(&dataset), NOW, &options)
        })
    });
    // The whole pure part of a build: the statistics, the stability and the events.
    group.bench_function("compute/100", |b| {
        b.iter(|| fathometer::app::report::compute(black_box(&inputs.stats), NOW, &options))
    });
    let report = fathometer::stats::compute(
        &fathometer::stats::window::dataset(inputs.stats.rows.clone(), NOW),
        NOW,
        &options,
    );
    let list_options =
        fathometer::publish::ListOptions { combined_list: true, ..Default::default() };
    group.bench_function("render/100", |b| {
        b.iter(|| {
            let lists = fathometer::publish::TreeLists {
                public: fathometer::publish::list_files(&report, false, &list_options),
                private: fathometer::publish::list_files(&report, true, &list_options),
            };
            let pages = fathometer::publish::pages::PageInputs {
                report: &report,
                remailers: &inputs.stats.rows.remailers,
                replies: &inputs.replies,
                from_lines: &inputs.from_lines,
                events: &inputs.recent_events,
                site_name: "bench",
                operator: None,
                pinger_address: "pinger@bench.example",
            };
            let public = fathometer::publish::pages::render_pages(&pages, false, &lists.public);
            let private = fathometer::publish::pages::render_pages(&pages, true, &lists.private);
            public.expect("pages").len() + private.expect("pages").len()
        })
    });
    group.finish();
    drop(db);

    // `/healthz` while builds run back to back, as in the daemon: a 2-worker runtime serves
    // HTTP, the builds run on its blocking pool.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let rebuilds = fathometer::publish::http::Rebuilds { lists_secs: 300, keyrings_secs: 28_800 };
    let (_published_tx, published_rx) =
        tokio::sync::watch::channel(fathometer::publish::snapshot::Published {
            rebuilds,
            ..Default::default()
        });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let clock: std::sync::Arc<dyn fathometer::model::Clock> =
        std::sync::Arc::new(fathometer::model::SystemClock);
    let app = fathometer::publish::http::router(&config.results_dir(), published_rx, clock);
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    runtime.spawn(fathometer::publish::http::serve(
        std::sync::Arc::new(listener),
        app,
        fathometer::publish::http::ServeLimits::default(),
        stop_rx,
    ));
    let config = std::sync::Arc::new(config);
    let store = std::sync::Arc::new(store);
    let building = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let builds = {
        let (config, store, building) = (config.clone(), store.clone(), building.clone());
        runtime.spawn(async move {
            let mut n = 0u32;
            while building.load(std::sync::atomic::Ordering::Relaxed) {
                let (c, s) = (config.clone(), store.clone());
                tokio::task::spawn_blocking(move || build_and_publish(&c, &s, NOW, true))
                    .await
                    .unwrap()
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    let mut group = c.benchmark_group("healthz_during_builds");
    group.sample_size(200);
    group.bench_function("100", |b| {
        b.iter(|| {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut answer = Vec::new();
            s.read_to_end(&mut answer).unwrap();
            answer.len()
        })
    });
    group.finish();
    building.store(false, std::sync::atomic::Ordering::Relaxed);
    let builds = runtime.block_on(builds).unwrap();
    let _ = stop_tx.send(true);
    assert!(builds > 0, "no build ran while /healthz was measured");
    eprintln!("{builds} builds ran while /healthz was measured");
}

criterion_group!(benches, bench);
criterion_main!(benches);
