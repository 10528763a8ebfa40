//! `fathometer simulate` and `fathometer demo`: what they print.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::model::{Clock, SECONDS_PER_DAY};
use crate::publish::{self, snapshot::Published};
use crate::simulation::{Faults, Options, Simulation, Summary};

/// A state directory of our own, removed at the end unless the user named one.
struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl WorkDir {
    fn new(given: Option<&Path>, what: &str) -> Result<WorkDir> {
        let (path, remove) = match given {
            Some(p) => (p.to_owned(), false),
            None => {
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                (
                    std::env::temp_dir()
                        .join(format!("fathometer-{what}-{}-{stamp}", std::process::id())),
                    true,
                )
            }
        };
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir { path, remove })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub struct SimulateArgs<'a> {
    pub remailers: usize,
    pub days: u32,
    pub seed: u64,
    pub faults: &'a str,
    pub json: bool,
    pub dir: Option<&'a Path>,
    pub inject_bug: Option<&'a str>,
}

pub fn simulate(args: SimulateArgs<'_>) -> Result<ExitCode> {
    let faults = Faults::parse(args.faults).map_err(anyhow::Error::msg)?;
    match args.inject_bug {
        None => {}
        Some("count-duplicates") => crate::store::INJECTED_BUG_COUNT_DUPLICATES
            .store(true, std::sync::atomic::Ordering::Relaxed),
        Some("charge-own-failure") => crate::stats::window::INJECTED_BUG_CHARGE_OWN_FAILURE
            .store(true, std::sync::atomic::Ordering::Relaxed),
        Some(other) => {
            anyhow::bail!("unknown bug `{other}` (count-duplicates, charge-own-failure)")
        }
    }
    anyhow::ensure!((1..=200).contains(&args.remailers), "--remailers takes 1 to 200");
    anyhow::ensure!((1..=3650).contains(&args.days), "--days takes 1 to 3650");
    let dir = WorkDir::new(args.dir, "simulate")?;
    let options = Options::new(args.remailers, args.days, args.seed, faults);
    let mut sim = Simulation::new(options, &dir.path, "127.0.0.1:0")?;
    let summary = sim.run()?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary, args.faults)?;
    }
    if summary.violations.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "fathometer: {} invariant violations; the same run again: fathometer simulate \
             --remailers {} --days {} --seed {} --faults {}{}",
            summary.violations.len(),
            args.remailers,
            args.days,
            args.seed,
            args.faults,
            args.inject_bug.map(|b| format!(" --inject-bug {b}")).unwrap_or_default()
        );
        Ok(ExitCode::FAILURE)
    }
}

fn print_summary(s: &Summary, faults: &str) -> Result<()> {
    outln!(
        "simulated {} days with {} remailers (seed {}, faults: {faults}) in {:.1} s: {:.1} virtual days per second",
        s.virtual_days,
        s.remailers,
        s.seed,
        s.wall_seconds,
        s.virtual_days / s.wall_seconds.max(1e-9)
    );
    outln!(
        "  {} steps, {} builds; pings sent {}, returned {}; duplicate copies {} (recorded {}), \
         altered copies recorded {}, bounces recorded {}; lost in the network {}",
        s.steps,
        s.builds,
        s.pings_sent,
        s.pings_returned,
        s.duplicated_deliveries,
        s.mails_duplicate,
        s.mails_corrupted,
        s.mails_bounced,
        s.lost_in_network
    );
    outln!(
        "  faults: {} crashes, {} steps with the MTA down, {} with the mailbox down, {} with \
         inbound mail lost ({} mails), {} with the disk full ({} passes failed), {} clock steps",
        s.crashes,
        s.mta_outage_steps,
        s.mailbox_outage_steps,
        s.inbound_outage_steps,
        s.lost_inbound,
        s.disk_full_steps,
        s.store_errors,
        s.clock_steps
    );
    outln!(
        "  discovery: {} replies sent by the remailers, {} recorded; {} keys rotated",
        s.replies_sent,
        s.mails_reply,
        s.key_rotations
    );
    outln!("  fingerprint {} (the same seed replays to the same)", s.fingerprint);
    if s.violations.is_empty() {
        outln!("  invariants: all held after every step");
    }
    for v in s.violations.iter().take(20) {
        outln!("  VIOLATION at step {} (t={}): {}: {}", v.step, v.at, v.rule, v.detail);
    }
    Ok(())
}

/// `fathometer demo`: weeks of history simulated in seconds, then the pinger running live
/// against the simulated network, `speed` times faster than real time, serving its pages.
pub fn demo(listen: &str, days: u32, speed: u32) -> Result<ExitCode> {
    anyhow::ensure!((1..=60).contains(&days), "--days takes 1 to 60");
    anyhow::ensure!((1..=3600).contains(&speed), "--speed takes 1 to 3600");
    let dir = WorkDir::new(None, "demo")?;
    let real_now = crate::model::SystemClock.now();
    let mut options = Options::new(12, days, 1, Faults::default());
    options.start = real_now - i64::from(days) * SECONDS_PER_DAY;
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen} (--listen ADDRESS:PORT)"))?;
    let address = listener.local_addr()?;
    outln!("fathometer demo: a simulated network of 12 remailers, state in {}", dir.path.display());
    outln!("simulating {days} days of history ...");
    let mut sim = Simulation::new(options.clone(), &dir.path, &address.to_string())?;
    let started = Instant::now();
    while sim.clock.now() < real_now {
        sim.step()?;
    }
    outln!(
        "  done in {:.1} s ({} pings sent, {} builds)",
        started.elapsed().as_secs_f64(),
        sim.pinger.store().ping_counts()?.sent,
        sim.summary.builds
    );

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let clock: Arc<dyn Clock> = sim.clock.clone();
    let (published_tx, published_rx) = tokio::sync::watch::channel(Published {
        rebuilds: publish::http::Rebuilds {
            lists_secs: 3600 / i64::from(speed),
            keyrings_secs: 3600,
        },
        ..Published::default()
    });
    let app = publish::http::router(&sim.results_dir(), published_rx, clock);
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listener = {
        let _guard = runtime.enter();
        listener.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(listener)?
    };
    runtime.spawn(publish::http::serve(
        Arc::new(listener),
        app,
        publish::http::ServeLimits::default(),
        stop_rx,
    ));
    outln!("serving the statistics at http://{address}/ (Ctrl-C stops)");
    outln!("now live: one virtual minute every {:.2} s", 60.0 / f64::from(speed));

    // Live: one step of a virtual minute, paced to `speed` times real time.
    sim.options.step_secs = 60;
    sim.options.build_secs = 3600;
    // The site shows the history up to now from the first live step.
    sim.request_build();
    let pace = Duration::from_secs_f64(60.0 / f64::from(speed));
    let mut last_shown = None;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let on_signal = stop.clone();
    runtime.spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let step_started = Instant::now();
        sim.step()?;
        if let Some(built) = &sim.last_built {
            let now = sim.clock.now();
            if last_shown != Some(built.report.now) {
                last_shown = Some(built.report.now);
                let report = Arc::new(built.report.clone());
                let events = Arc::new(built.recent_events.clone());
                let counts = built.event_counts.clone();
                let ping_counts = sim.pinger.store().ping_counts()?;
                published_tx.send_modify(|p| {
                    p.report = Some(report);
                    p.events = events;
                    p.event_counts = counts;
                    p.last_build = Some(now);
                    p.last_tick = Some(now);
                    p.ping_counts = ping_counts;
                });
            } else {
                published_tx.send_modify(|p| p.last_tick = Some(now));
            }
        }
        if let Some(rest) = pace.checked_sub(step_started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    outln!("stopped; {} removed", dir.path.display());
    Ok(ExitCode::SUCCESS)
}
