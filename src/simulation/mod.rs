//! `fathometer simulate` and `fathometer demo`: the real pinger (scheduler, outbox building
//! real Mixmaster packets, Maildir ingestion, store, statistics, publishing) on a virtual
//! clock against a simulated network ([`network`]), with faults injected from a seed and
//! invariants checked after every step ([`invariants`]). The same seed replays the same run:
//! the network, the faults and the pinger's secret (hence its schedule) all come from it.
//!
//! What is simulated is only what cannot run here: the remailers and the MTA between them.
//! The pinger's state is a real SQLite file and its mailbox a real Maildir.

pub mod invariants;
pub mod mixmaster;
pub mod network;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::app::context::Pinger;
use crate::app::report::{self, IntensiveCareSet};
use crate::app::{ingest, keys, outbox, schedule};
use crate::compose::Outgoing;
use crate::config::Config;
use crate::model::{Clock, FixedClock, SECONDS_PER_DAY};
use crate::send::{SendError, Transport};
pub use invariants::Violation;
use network::Network;

/// The pinger's address in every simulation.
pub const PINGER_ADDRESS: &str = "pinger@fathometer.sim";

/// Which faults to inject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Faults {
    /// The pinger killed at a random instant (in the middle of sending or reading mail) and
    /// restarted from its database.
    pub crashes: bool,
    /// The MTA refuses mail for a few hours.
    pub mta_outages: bool,
    /// The mailbox cannot be read for a few hours.
    pub mailbox_outages: bool,
    /// Some returns are delivered twice.
    pub duplicates: bool,
    /// The clock steps back and forward by a few minutes.
    pub clock_steps: bool,
}

impl Faults {
    pub const ALL: Faults = Faults {
        crashes: true,
        mta_outages: true,
        mailbox_outages: true,
        duplicates: true,
        clock_steps: true,
    };

    /// `all`, `none`, or a comma-separated list of `crashes`, `mta`, `mailbox`,
    /// `duplicates`, `clock`.
    pub fn parse(text: &str) -> Result<Faults, String> {
        let mut faults = Faults::default();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "all" => faults = Faults::ALL,
                "none" => faults = Faults::default(),
                "crashes" => faults.crashes = true,
                "mta" => faults.mta_outages = true,
                "mailbox" => faults.mailbox_outages = true,
                "duplicates" => faults.duplicates = true,
                "clock" => faults.clock_steps = true,
                other => {
                    return Err(format!(
                        "unknown fault `{other}` (all, none, crashes, mta, mailbox, duplicates, clock)"
                    ));
                }
            }
        }
        Ok(faults)
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Options {
    pub remailers: usize,
    pub days: u32,
    pub seed: u64,
    pub faults: Faults,
    /// The first instant of the run.
    pub start: i64,
    /// Virtual seconds per step (the daemon's tick).
    pub step_secs: i64,
    /// Virtual seconds between statistics builds (each writes every published file).
    pub build_secs: i64,
    /// How much likelier than usual each fault is per step (short runs need more).
    pub fault_scale: f64,
}

impl Options {
    pub fn new(remailers: usize, days: u32, seed: u64, faults: Faults) -> Options {
        // A fixed start, so that a seed replays exactly whatever day it runs on.
        Options {
            remailers,
            days,
            seed,
            faults,
            start: 1_764_547_200,
            step_secs: 300,
            build_secs: 6 * 3600,
            fault_scale: 1.0,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub seed: u64,
    pub remailers: usize,
    pub virtual_days: f64,
    pub steps: u64,
    pub pings_sent: u64,
    pub pings_returned: u64,
    pub mails_duplicate: u64,
    pub mails_corrupted: u64,
    pub lost_in_network: u64,
    pub duplicated_deliveries: u64,
    pub crashes: u64,
    pub mta_outage_steps: u64,
    pub mailbox_outage_steps: u64,
    pub clock_steps: u64,
    pub builds: u64,
    pub violations: Vec<Violation>,
    pub wall_seconds: f64,
}

/// The simulated MTA: takes a message when it is up, and hands it to the network.
struct SimulatedMta {
    network: Arc<Mutex<Network>>,
    clock: Arc<FixedClock>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Transport for SimulatedMta {
    fn send(
        &self,
        mail: &Outgoing,
    ) -> impl std::future::Future<Output = Result<(), SendError>> + Send {
        let result = if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            Err(SendError::Transient("simulated MTA outage: 421 try again later".into()))
        } else {
            let mut network = self.network.lock().unwrap_or_else(|e| e.into_inner());
            network.accept(self.clock.now(), mail);
            Ok(())
        };
        std::future::ready(result)
    }

    fn retry_secs(&self) -> i64 {
        60
    }
}

/// The pinger's configuration in `dir`.
pub fn pinger_config(dir: &Path, listen: &str) -> Result<Config> {
    let text = format!(
        "[pinger]\naddress = \"{PINGER_ADDRESS}\"\nstate_dir = \"{state}\"\n\
         name = \"fathometer simulation\"\n\
         [mailbox]\nmaildir = \"{state}/Maildir\"\npoll_secs = 1\n\
         [http]\nlisten = \"{listen}\"\n\
         [discovery]\nrequests = false\n\
         [schedule]\nping_types = [\"mix\"]\ntick_secs = 60\n\
         [stats]\nbuild_interval_secs = 3600\n",
        state = dir.join("state").display()
    );
    let path = dir.join("fathometer.toml");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(Config::load(&path)?)
}

/// A simulation in progress: the pinger (reopened after each crash), the network, the
/// faults' generator and what happened so far.
pub struct Simulation {
    pub options: Options,
    pub config: Config,
    pub clock: Arc<FixedClock>,
    pub network: Arc<Mutex<Network>>,
    pub pinger: Arc<Pinger>,
    mta_down: Arc<std::sync::atomic::AtomicBool>,
    rng: StdRng,
    runtime: tokio::runtime::Runtime,
    intensive_care: IntensiveCareSet,
    mta_down_until: i64,
    mailbox_down_until: i64,
    last_build: Option<i64>,
    pub summary: Summary,
    /// The latest build, for a server showing the simulation (`fathometer demo`).
    pub last_built: Option<report::Built>,
}

impl Simulation {
    /// A network of `options.remailers` known to a fresh pinger in `dir` (its state
    /// directory and Maildir are created there).
    pub fn new(options: Options, dir: &Path, listen: &str) -> Result<Simulation> {
        let config = pinger_config(dir, listen)?;
        let state = config.pinger.state_dir.clone();
        crate::app::state::prepare(&state).map_err(|e| anyhow::anyhow!("{e}"))?;
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(state.join("Maildir").join(sub))?;
        }
        let mut rng = StdRng::seed_from_u64(options.seed);
        // The pinger's secret from the seed: its schedule is then the seed's too.
        let secret_path = config.secret_path();
        if !secret_path.exists() {
            let secret: [u8; 32] = rng.r#gen();
            write_private(&secret_path, &secret)?;
        }
        let clock = Arc::new(FixedClock::at(options.start));
        let dies_at = options.start + i64::from(options.days) * SECONDS_PER_DAY / 3;
        let network = Network::new(
            rng.r#gen(),
            options.remailers,
            &state.join("Maildir"),
            PINGER_ADDRESS.split('@').nth(1).unwrap_or("fathometer.sim"),
            dies_at,
        );
        let pinger = Arc::new(Pinger::open(config.clone(), clock.clone())?);
        {
            let mut store = pinger.store();
            for remailer in &network.remailers {
                let reply = remailer.key_reply(options.start / SECONDS_PER_DAY - 30);
                keys::import(&mut store, reply.as_bytes(), true, options.start)?;
            }
        }
        let runtime = new_runtime()?;
        Ok(Simulation {
            summary: Summary {
                seed: options.seed,
                remailers: options.remailers,
                ..Default::default()
            },
            options,
            config,
            clock,
            network: Arc::new(Mutex::new(network)),
            pinger,
            mta_down: Arc::default(),
            rng,
            runtime,
            intensive_care: IntensiveCareSet::new(),
            mta_down_until: 0,
            mailbox_down_until: 0,
            last_build: None,
            last_built: None,
        })
    }

    fn mta(&self) -> SimulatedMta {
        SimulatedMta {
            network: self.network.clone(),
            clock: self.clock.clone(),
            down: self.mta_down.clone(),
        }
    }

    /// One step of `options.step_secs`: faults drawn, the tick, the outbox, the network, the
    /// mailbox, a build when due, then the invariants.
    pub fn step(&mut self) -> Result<()> {
        let faults = self.options.faults;
        let now = self.clock.now();
        self.summary.steps += 1;
        let scale = self.options.fault_scale;
        let chance = |p: f64| (p * scale).clamp(0.0, 1.0);

        if faults.clock_steps && self.rng.gen_bool(chance(0.002)) {
            // A step of up to 5 minutes either way (NTP stepping the clock).
            let step = self.rng.gen_range(-300..=300);
            self.clock.set(now + step);
            self.summary.clock_steps += 1;
        }
        if faults.mta_outages && now >= self.mta_down_until && self.rng.gen_bool(chance(0.003)) {
            self.mta_down_until = now + self.rng.gen_range(1800..6 * 3600);
        }
        if faults.mailbox_outages
            && now >= self.mailbox_down_until
            && self.rng.gen_bool(chance(0.003))
        {
            self.mailbox_down_until = now + self.rng.gen_range(1800..6 * 3600);
        }
        let mta_down = now < self.mta_down_until;
        self.mta_down.store(mta_down, std::sync::atomic::Ordering::SeqCst);
        self.summary.mta_outage_steps += u64::from(mta_down);
        self.network.lock().unwrap_or_else(|e| e.into_inner()).duplicate_share =
            if faults.duplicates { 0.05 } else { 0.0 };

        let now = self.clock.now();
        schedule::tick(&self.pinger, &self.intensive_care, now)?;
        // A crash in the middle of sending: the drain is dropped at a random await point
        // (a killed process stops there too); every change it made was one transaction.
        let crash_in_drain = faults.crashes && self.rng.gen_bool(chance(0.01));
        let mta = self.mta();
        let polls = self.rng.gen_range(0..8);
        let pinger = self.pinger.clone();
        let drained = self.runtime.block_on(async {
            let drain = outbox::drain(&pinger, &mta);
            if crash_in_drain {
                cut_after_polls(drain, polls).await.transpose()
            } else {
                drain.await.map(Some)
            }
        })?;
        if crash_in_drain {
            self.crash()?;
        }
        let _ = drained;

        self.network.lock().unwrap_or_else(|e| e.into_inner()).run_until(now)?;

        let mailbox_down = now < self.mailbox_down_until;
        self.summary.mailbox_outage_steps += u64::from(mailbox_down);
        if !mailbox_down {
            let crash_in_ingest = faults.crashes && self.rng.gen_bool(chance(0.01));
            let polls = self.rng.gen_range(0..8);
            let pinger = self.pinger.clone();
            self.runtime.block_on(async {
                let once = ingest::once(pinger);
                if crash_in_ingest {
                    cut_after_polls(once, polls).await.transpose().map(|_| ())
                } else {
                    once.await.map(|_| ())
                }
            })?;
            if crash_in_ingest {
                self.crash()?;
            }
        }

        if self.last_build.is_none_or(|t| now - t >= self.options.build_secs) {
            let built =
                report::build_and_publish(&self.pinger.config, &self.pinger.store, now, true)?;
            self.intensive_care = built.intensive_care.clone();
            self.last_built = Some(built);
            self.last_build = Some(now);
            self.summary.builds += 1;
        }

        let found = invariants::check(self, false)?;
        self.record(found);
        self.clock.set(self.clock.now().max(now) + self.options.step_secs);
        Ok(())
    }

    /// Keeps the first violation of each rule (with its step): the ones after it are mostly
    /// the same fault seen again.
    fn record(&mut self, found: Vec<Violation>) {
        for mut v in found {
            if !self.summary.violations.iter().any(|seen| seen.rule == v.rule) {
                v.step = self.summary.steps;
                self.summary.violations.push(v);
            }
        }
    }

    /// The pinger dies and comes back: everything in memory is gone, the database and the
    /// Maildir stay.
    fn crash(&mut self) -> Result<()> {
        self.summary.crashes += 1;
        self.intensive_care.clear();
        // A dropped future's store steps still run on the blocking pool; a killed process's
        // would not. Dropping the runtime waits for them: the kill came right after the
        // last one committed, never in the middle of a transaction, and nothing the dead
        // process started can land after its successor began.
        let fresh = new_runtime()?;
        drop(std::mem::replace(&mut self.runtime, fresh));
        let config = self.config.clone();
        // The old handle is dropped first, as a dead process's would be.
        self.pinger = Arc::new(Pinger::open(config, self.clock.clone())?);
        Ok(())
    }

    /// Runs every step of `options.days`, then lets the network deliver what is still on
    /// its way (no faults) and reads it, and checks the final invariants.
    pub fn run(&mut self) -> Result<Summary> {
        let started = std::time::Instant::now();
        let end = self.options.start + i64::from(self.options.days) * SECONDS_PER_DAY;
        while self.clock.now() < end {
            self.step()?;
        }
        self.settle()?;
        self.summary.wall_seconds = started.elapsed().as_secs_f64();
        Ok(self.summary.clone())
    }

    /// No more faults: the network empties, the mailbox is read, the last invariants hold.
    pub fn settle(&mut self) -> Result<()> {
        self.mta_down.store(false, std::sync::atomic::Ordering::SeqCst);
        let until = self.clock.now() + 8 * 3600;
        self.network.lock().unwrap_or_else(|e| e.into_inner()).run_until(until)?;
        self.clock.set(until);
        let pinger = self.pinger.clone();
        self.runtime.block_on(ingest::once(pinger))?;
        let found = invariants::check(self, true)?;
        self.record(found);
        let pings = self.pinger.store().audit_pings()?;
        self.summary.pings_sent = pings.iter().filter(|p| p.sent_at.is_some()).count() as u64;
        self.summary.pings_returned =
            pings.iter().filter(|p| p.outcome == "returned").count() as u64;
        let store = self.pinger.store();
        self.summary.mails_duplicate = store.count_mails("duplicate")?;
        self.summary.mails_corrupted = store.count_mails("corrupted")?;
        drop(store);
        let network = self.network.lock().unwrap_or_else(|e| e.into_inner());
        self.summary.lost_in_network = network.truth.lost;
        self.summary.duplicated_deliveries = network.truth.duplicated;
        self.summary.virtual_days = f64::from(self.options.days);
        Ok(())
    }

    /// The next step builds the statistics, whenever the last build was.
    pub fn request_build(&mut self) {
        self.last_build = None;
    }

    /// Where the published files are.
    pub fn results_dir(&self) -> PathBuf {
        self.config.results_dir()
    }
}

fn new_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the simulation's runtime")
}

/// Polls `future` at most `polls` times, then drops it (a process killed at that point);
/// its output if it finished first.
async fn cut_after_polls<F: std::future::Future>(future: F, polls: usize) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    for _ in 0..=polls {
        if let std::task::Poll::Ready(out) = futures::poll!(future.as_mut()) {
            return Some(out);
        }
        tokio::task::yield_now().await;
    }
    None
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 128 short seeded runs with every fault made twenty times likelier: four
    /// virtual hours each of two remailers, settled at the end, every invariant after every
    /// step. A failing seed is named.
    #[test]
    fn hundreds_of_seeded_runs_with_every_fault_keep_every_invariant() {
        const RUNS: u64 = 128;
        let failures = std::sync::Mutex::new(Vec::new());
        let crashes = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|scope| {
            for lane in 0..2 {
                let (failures, crashes) = (&failures, &crashes);
                scope.spawn(move || {
                    for seed in (0..RUNS).filter(|s| s % 2 == lane) {
                        let dir = tempfile::tempdir().unwrap();
                        let mut options = Options::new(2, 1, seed, Faults::ALL);
                        options.fault_scale = 20.0;
                        let mut sim = Simulation::new(options, dir.path(), "127.0.0.1:0").unwrap();
                        for _ in 0..48 {
                            sim.step().unwrap();
                        }
                        sim.settle().unwrap();
                        crashes
                            .fetch_add(sim.summary.crashes, std::sync::atomic::Ordering::Relaxed);
                        if !sim.summary.violations.is_empty() {
                            failures.lock().unwrap().push((seed, sim.summary.violations.clone()));
                        }
                    }
                });
            }
        });
        let failures = failures.into_inner().unwrap();
        assert!(failures.is_empty(), "seeds with violations: {failures:#?}");
        assert!(crashes.into_inner() > 50, "the crash fault was hardly exercised");
    }

    #[test]
    fn faults_parse_by_name() {
        assert_eq!(Faults::parse("all").unwrap(), Faults::ALL);
        assert_eq!(Faults::parse("none").unwrap(), Faults::default());
        let some = Faults::parse("mta, duplicates").unwrap();
        assert!(some.mta_outages && some.duplicates && !some.crashes);
        assert!(Faults::parse("meteor").unwrap_err().contains("meteor"));
    }
}
