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
pub mod yamn;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
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
    /// The pinger's own incoming mail is lost for a few hours (a broken alias, a full
    /// quota): its self-checks fail, and what it sent meanwhile must not be charged.
    pub inbound_outages: bool,
    /// The pinger's disk is full for a few hours: every write to the store fails; nothing
    /// committed may be lost, no mail dropped, nothing counted twice.
    pub disk_full: bool,
}

impl Faults {
    pub const ALL: Faults = Faults {
        crashes: true,
        mta_outages: true,
        mailbox_outages: true,
        duplicates: true,
        clock_steps: true,
        inbound_outages: true,
        disk_full: true,
    };

    /// `all`, `none`, or a comma-separated list of `crashes`, `mta`, `mailbox`,
    /// `duplicates`, `clock`, `inbound`, `disk`.
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
                "inbound" => faults.inbound_outages = true,
                "disk" => faults.disk_full = true,
                other => {
                    return Err(format!(
                        "unknown fault `{other}` (all, none, crashes, mta, mailbox, duplicates, clock, \
                         inbound, disk)"
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
    pub mails_bounced: u64,
    /// Keys made by rotating remailers, and requests for information they all answered.
    pub key_rotations: u64,
    pub replies_sent: u64,
    /// Replies the pinger recorded.
    pub mails_reply: u64,
    pub lost_in_network: u64,
    pub duplicated_deliveries: u64,
    pub crashes: u64,
    pub mta_outage_steps: u64,
    pub mailbox_outage_steps: u64,
    pub inbound_outage_steps: u64,
    pub disk_full_steps: u64,
    /// Passes (tick, send, read, build) that failed because the disk was full.
    pub store_errors: u64,
    /// Mail to the pinger lost on its own inbound path.
    pub lost_inbound: u64,
    pub clock_steps: u64,
    pub builds: u64,
    pub violations: Vec<Violation>,
    /// SHA-256 of every ping's fate (when it was sent, whether and when it came back) and of
    /// the network's ground truth: two runs of one seed have the same, or replay is broken.
    pub fingerprint: String,
    pub wall_seconds: f64,
}

/// A kill of the pinger planned for the k-th hand-over of one pass (a message to the MTA, a
/// mail to the store or back to the mailbox). The hand-over that fires it never completes,
/// so the pass stops exactly there, whatever threads ran: a seed's crash lands at the same
/// point of the same pass on every replay (a kill after a count of polls did not, as the
/// blocking pool's timing decided how far the pass had got).
#[derive(Default)]
struct KillSwitch {
    /// Hand-overs left before the kill; 0: none planned.
    countdown: AtomicU32,
    /// Whether the MTA takes the message before the process dies (the pinger never hears).
    after_acceptance: AtomicBool,
    fired: AtomicBool,
    notify: tokio::sync::Notify,
}

impl KillSwitch {
    fn armed(at_hand_over: u32, after_acceptance: bool) -> Arc<KillSwitch> {
        Arc::new(KillSwitch {
            countdown: AtomicU32::new(at_hand_over),
            after_acceptance: AtomicBool::new(after_acceptance),
            ..KillSwitch::default()
        })
    }

    /// One hand-over: true when this is the one the process dies at.
    fn hand_over(&self) -> bool {
        let left = self.countdown.load(Ordering::SeqCst);
        if left == 0 {
            return false;
        }
        self.countdown.store(left - 1, Ordering::SeqCst);
        if left == 1 {
            self.fired.store(true, Ordering::SeqCst);
            self.notify.notify_one();
            return true;
        }
        false
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Runs `work` until it ends or the kill fires; the output if it ended.
    async fn run<F: std::future::Future>(&self, work: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            out = work => Some(out),
            () = self.notify.notified() => None,
        }
    }
}

/// The simulated MTA: takes a message when it is up, and hands it to the network.
struct SimulatedMta {
    network: Arc<Mutex<Network>>,
    clock: Arc<FixedClock>,
    down: Arc<AtomicBool>,
    kill: Arc<KillSwitch>,
}

impl Transport for SimulatedMta {
    fn send(
        &self,
        mail: &Outgoing,
    ) -> impl std::future::Future<Output = Result<(), SendError>> + Send {
        use futures::future::Either;
        let dies = self.kill.hand_over();
        if dies && !self.kill.after_acceptance.load(Ordering::SeqCst) {
            return Either::Right(std::future::pending());
        }
        let result = if self.down.load(Ordering::SeqCst) {
            Err(SendError::Transient("simulated MTA outage: 421 try again later".into()))
        } else {
            let mut network = self.network.lock().unwrap_or_else(|e| e.into_inner());
            network.accept(self.clock.now(), mail, !dies);
            Ok(())
        };
        if dies {
            // Accepted, and the process dies before it hears so.
            return Either::Right(std::future::pending());
        }
        Either::Left(std::future::ready(result))
    }

    fn retry_secs(&self) -> i64 {
        60
    }
}

/// The pinger's configuration in `dir`. The replay probe is off: the simulated remailers keep
/// no replay log (the probe is tested against the remailer doubles of `tests/it/mix.rs`).
pub fn pinger_config(dir: &Path, listen: &str) -> Result<Config> {
    let text = format!(
        "[pinger]\naddress = \"{PINGER_ADDRESS}\"\nstate_dir = \"{state}\"\n\
         name = \"fathometer simulation\"\n\
         [mailbox]\nmaildir = \"{state}/Maildir\"\npoll_secs = 1\n\
         [http]\nlisten = \"{listen}\"\n\
         [discovery]\nrequests = true\n\
         [schedule]\nping_types = [\"mix\"]\ntick_secs = 60\n\
         [stats]\nbuild_interval_secs = 3600\n\
         [replay_probe]\nenabled = false\n",
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
    /// The next crash, counting down hand-overs.
    kill: Arc<KillSwitch>,
    mta_down_until: i64,
    mailbox_down_until: i64,
    inbound_down_until: i64,
    disk_full_until: i64,
    last_build: Option<i64>,
    pub summary: Summary,
    /// The latest build, for a server showing the simulation (`fathometer demo`).
    pub last_built: Option<report::Built>,
    /// Tagged return addresses by tag, each computed once (an HMAC each).
    return_addresses: Mutex<std::collections::HashMap<String, String>>,
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
            options.start,
            dies_at,
        );
        let pinger = Arc::new(Pinger::open(config.clone(), clock.clone())?);
        {
            let mut store = pinger.store();
            for remailer in &network.remailers {
                let reply = remailer.key_reply();
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
            kill: Arc::new(KillSwitch::default()),
            mta_down_until: 0,
            mailbox_down_until: 0,
            inbound_down_until: 0,
            disk_full_until: 0,
            last_build: None,
            last_built: None,
            return_addresses: Mutex::default(),
        })
    }

    fn mta(&self, kill: Arc<KillSwitch>) -> SimulatedMta {
        SimulatedMta {
            network: self.network.clone(),
            clock: self.clock.clone(),
            down: self.mta_down.clone(),
            kill,
        }
    }

    /// The kill planned for this pass: the one drawn after the last crash, counting down
    /// over every hand-over since (on average one in 40, divided by the fault scale, when
    /// crashes are on; none otherwise).
    fn plan_kill(&mut self) -> Arc<KillSwitch> {
        if !self.options.faults.crashes {
            return Arc::new(KillSwitch::default());
        }
        if self.kill.countdown.load(Ordering::SeqCst) == 0 || self.kill.fired() {
            let mean = (40.0 / self.options.fault_scale).max(1.0);
            let at = 1 + (self.rng.r#gen::<f64>() * 2.0 * mean) as u32;
            self.kill = KillSwitch::armed(at, self.rng.gen_bool(0.5));
        }
        self.kill.clone()
    }

    /// One pass over the Maildir as the daemon's ingester makes it, with `kill` planned at
    /// the k-th mail taken (before its verdict is committed) or settled (committed, not yet
    /// moved out of new/).
    async fn ingest_pass(pinger: Arc<Pinger>, kill: Arc<KillSwitch>) -> Result<()> {
        let path = pinger.config.mailbox.maildir.clone().context("the simulation's Maildir")?;
        let maildir = crate::ingest::maildir::Maildir::open(&path)
            .map_err(|e| anyhow::anyhow!("opening the Maildir {}: {e}", path.display()))?;
        let mut mailbox = KillableMailbox { inner: maildir, kill: kill.clone() };
        let (_, never) = tokio::sync::watch::channel(false);
        loop {
            let handler = |mail: crate::ingest::RawMail| {
                let (p, kill) = (pinger.clone(), kill.clone());
                async move {
                    if kill.hand_over() {
                        std::future::pending::<()>().await;
                    }
                    ingest::handle(p, mail).await.map(|processed| processed.disposition)
                }
            };
            let round = crate::ingest::round(&mut mailbox, handler, &never)
                .await
                .map_err(|e| anyhow::anyhow!("reading the Maildir: {e}"))?;
            if round.failed > 0 && round.settled == 0 {
                // Nothing could be recorded (a full disk): the mail stays for the next pass.
                anyhow::bail!(
                    "no mail could be recorded: {}",
                    round.first_failure.unwrap_or_default()
                );
            }
            if round.fetched == 0 {
                return Ok(());
            }
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
        if faults.inbound_outages
            && now >= self.inbound_down_until
            && self.rng.gen_bool(chance(0.002))
        {
            self.inbound_down_until = now + self.rng.gen_range(1800..4 * 3600);
        }
        if faults.disk_full && now >= self.disk_full_until && self.rng.gen_bool(chance(0.002)) {
            self.disk_full_until = now + self.rng.gen_range(1800..4 * 3600);
        }
        let disk_full = now < self.disk_full_until;
        self.summary.disk_full_steps += u64::from(disk_full);
        self.pinger.store().simulate_disk_full(disk_full)?;
        let inbound_down = now < self.inbound_down_until;
        self.summary.inbound_outage_steps += u64::from(inbound_down);
        let mta_down = now < self.mta_down_until;
        self.mta_down.store(mta_down, std::sync::atomic::Ordering::SeqCst);
        self.summary.mta_outage_steps += u64::from(mta_down);
        {
            let mut network = self.network.lock().unwrap_or_else(|e| e.into_inner());
            network.duplicate_share = if faults.duplicates { 0.05 } else { 0.0 };
            network.inbound_down = inbound_down;
        }

        let now = self.clock.now();
        let ticked = schedule::tick(&self.pinger, &self.intensive_care, now);
        self.tolerate(ticked, disk_full)?;
        // A crash in the middle of sending: the process dies at the k-th message handed to
        // the MTA, before or after the MTA took it; every change made before was one
        // transaction.
        let kill = self.plan_kill();
        let mta = self.mta(kill.clone());
        let pinger = self.pinger.clone();
        if let Some(drained) = self.runtime.block_on(kill.run(outbox::drain(&pinger, &mta))) {
            self.tolerate(drained.map(|_| ()), disk_full)?;
        }
        if kill.fired() {
            self.crash()?;
        }

        self.network.lock().unwrap_or_else(|e| e.into_inner()).run_until(now)?;

        let mailbox_down = now < self.mailbox_down_until;
        self.summary.mailbox_outage_steps += u64::from(mailbox_down);
        if !mailbox_down {
            let kill = self.plan_kill();
            let pass = Simulation::ingest_pass(self.pinger.clone(), kill.clone());
            if let Some(read) = self.runtime.block_on(kill.run(pass)) {
                self.tolerate(read, disk_full)?;
            }
            if kill.fired() {
                self.crash()?;
            }
        }

        if self.last_build.is_none_or(|t| now - t >= self.options.build_secs) {
            match report::build_and_publish(&self.pinger.config, &self.pinger.store, now, true) {
                Ok(built) => {
                    self.intensive_care = built.intensive_care.clone();
                    self.last_built = Some(built);
                    self.last_build = Some(now);
                    self.summary.builds += 1;
                }
                // Tried again at the next step, as the daemon does.
                Err(e) => self.tolerate::<()>(Err(e), disk_full)?,
            }
        }

        let found = invariants::check(self, false)?;
        self.record(found);
        self.clock.set(self.clock.now().max(now) + self.options.step_secs);
        Ok(())
    }

    /// An error of a pass: while the disk is full, what the daemon does (log it, go on);
    /// otherwise the simulation's own failure.
    fn tolerate<T>(&mut self, result: Result<T>, disk_full: bool) -> Result<()> {
        match result {
            Ok(_) => Ok(()),
            Err(e) if disk_full => {
                tracing::debug!("disk full: {e:#}");
                self.summary.store_errors += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
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
        // (It opens on a disk with room: a daemon that could not open its store would be
        // restarted until it could, which the simulation does not model.)
        self.pinger = Arc::new(Pinger::open(config, self.clock.clone())?);
        let disk_full = self.clock.now() < self.disk_full_until;
        self.pinger.store().simulate_disk_full(disk_full)?;
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
        self.network.lock().unwrap_or_else(|e| e.into_inner()).inbound_down = false;
        self.disk_full_until = 0;
        self.pinger.store().simulate_disk_full(false)?;
        let until = self.clock.now() + 8 * 3600;
        self.network.lock().unwrap_or_else(|e| e.into_inner()).run_until(until)?;
        self.clock.set(until);
        let pinger = self.pinger.clone();
        self.runtime.block_on(Simulation::ingest_pass(pinger, Arc::new(KillSwitch::default())))?;
        // The last build, of everything read: the figures the final invariants recompute.
        let built =
            report::build_and_publish(&self.pinger.config, &self.pinger.store, until, true)?;
        self.last_built = Some(built);
        self.summary.builds += 1;
        let found = invariants::check(self, true)?;
        self.record(found);
        let pings = self.pinger.store().audit_pings()?;
        self.summary.pings_sent = pings.iter().filter(|p| p.sent_at.is_some()).count() as u64;
        self.summary.pings_returned =
            pings.iter().filter(|p| p.outcome == "returned").count() as u64;
        let store = self.pinger.store();
        self.summary.mails_duplicate = store.count_mails("duplicate")?;
        self.summary.mails_corrupted = store.count_mails("corrupted")?;
        self.summary.mails_bounced = store.count_mails("bounced")?;
        self.summary.mails_reply = store.count_mails("reply")?;
        drop(store);
        let network = self.network.lock().unwrap_or_else(|e| e.into_inner());
        self.summary.fingerprint = fingerprint(&pings, &network.truth);
        self.summary.lost_in_network = network.truth.lost;
        self.summary.lost_inbound = network.truth.lost_inbound;
        self.summary.key_rotations = network.truth.rotations;
        self.summary.replies_sent = network.truth.replies_sent;
        self.summary.duplicated_deliveries = network.truth.duplicated;
        self.summary.virtual_days = f64::from(self.options.days);
        Ok(())
    }

    /// The tagged return address of `tag`, lowercased as the ground truth keys it.
    pub fn return_address(&self, tag: &str) -> String {
        let mut known = self.return_addresses.lock().unwrap_or_else(|e| e.into_inner());
        known
            .entry(tag.to_owned())
            .or_insert_with(|| self.pinger.identity.return_address(tag).to_ascii_lowercase())
            .clone()
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

/// What a replay must reproduce: each ping's fate in order, and what the network did. The
/// tags and packet bytes are left out: they come from the operating system's generator, and
/// no decision of the run depends on them.
fn fingerprint(pings: &[crate::store::AuditedPing], truth: &network::GroundTruth) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for p in pings {
        hash.update(format!("{} {:?} {:?} {}\n", p.id, p.sent_at, p.returned_at, p.outcome));
    }
    let mut deliveries: Vec<&(i64, network::Arrival)> =
        truth.delivered.values().flatten().collect();
    deliveries.sort();
    hash.update(format!(
        "{deliveries:?} {} {} {}",
        truth.lost, truth.duplicated, truth.lost_inbound
    ));
    crate::compose::payload::hex(&hash.finalize())
}

fn new_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the simulation's runtime")
}

/// The Maildir as the ingester sees it, with the planned kill at the k-th settle: the
/// verdict is committed, the file is still in new/ (the next process meets it again).
struct KillableMailbox {
    inner: crate::ingest::maildir::Maildir,
    kill: Arc<KillSwitch>,
}

impl crate::ingest::Mailbox for KillableMailbox {
    type Key = <crate::ingest::maildir::Maildir as crate::ingest::Mailbox>::Key;
    type Error = <crate::ingest::maildir::Maildir as crate::ingest::Mailbox>::Error;

    fn waiting(
        &mut self,
    ) -> impl std::future::Future<
        Output = Result<Vec<(Self::Key, crate::ingest::RawMail)>, Self::Error>,
    > + Send {
        self.inner.waiting()
    }

    async fn settle(
        &mut self,
        key: Self::Key,
        disposition: crate::ingest::Disposition,
    ) -> Result<(), Self::Error> {
        if self.kill.hand_over() {
            std::future::pending::<()>().await;
        }
        self.inner.settle(key, disposition).await
    }
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
    use network::Profile;

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

    /// The rotating remailer makes a new key a day in; the pinger hears of it from its daily
    /// key request, retires the old key and pings the new one, and the remailer never sees a
    /// packet for a key it dropped.
    #[test]
    fn the_pinger_follows_a_key_rotation_through_its_key_requests() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options::new(4, 3, 7, Faults::default());
        let mut sim = Simulation::new(options, dir.path(), "127.0.0.1:0").unwrap();
        let summary = sim.run().unwrap();
        assert!(summary.violations.is_empty(), "{:#?}", summary.violations);
        assert_eq!(summary.key_rotations, 1);
        assert!(summary.mails_reply >= 4, "{summary:#?}");
        let network = sim.network.lock().unwrap();
        let rotating = network.remailers.iter().find(|r| r.profile == Profile::Rotating).unwrap();
        let current = rotating.key.public().key_id_hex();
        let old = rotating.retired[0].0.public().key_id_hex();
        let remailers = sim.pinger.store().remailers().unwrap();
        let known = remailers.iter().find(|r| r.address == rotating.address).unwrap();
        let key = |id: &str| known.keys.iter().find(|k| k.key_id == id).cloned();
        assert!(key(&old).unwrap().retired_at.is_some(), "the old key is still used");
        assert!(key(&current).is_some_and(|k| k.retired_at.is_none()), "{:?}", known.keys);
        // Pings sent once the next daily key request was answered came back: by then only
        // the new key was pinged.
        let pings = sim.pinger.store().audit_pings().unwrap();
        let after = rotating.retired[0].1 - network::GRACE_SECS + SECONDS_PER_DAY + 3600;
        assert!(
            pings.iter().any(|p| p.remailer == rotating.address
                && p.sent_at.is_some_and(|t| t > after)
                && p.outcome == "returned"),
            "no return from the rotated remailer after the change"
        );
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
