//! The `fathometer` command line: the arguments (clap) and a dispatch to the application
//! ([`crate::app`]); what each command prints, and nothing else.

#[macro_use]
mod output;
mod consensus;
mod downtime;
mod list;
pub mod manual;
mod simulate;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use crate::app::context::{Pinger, open_store as open_db, smtp_sender};
use crate::app::outbox::{Delivery, ping_now};
use crate::app::{echolot, environment, import, ingest, keys, report, schedule, secret};
use crate::config::{Config, DEFAULT_CONFIG_PATH, MailAddress};
use crate::model::{Clock, Model, PingType};
use crate::publish::{self, ListFile};
use crate::send::Settled;
use crate::store::Store;
pub use output::terminal_safe;
use output::{is_broken_pipe, write_out};

#[derive(Debug, Parser)]
#[command(name = "fathometer", version, about = "Measures how reliable anonymous remailers are")]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, env = "FATHOMETER_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Use this SQLite database instead of the configured one; no config file is needed
    /// (for import-pings, stats, list, add and remove).
    #[arg(long, global = true)]
    pub db: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pinger daemon until SIGTERM or SIGINT; SIGHUP reloads the configuration.
    Run,
    /// Check the configuration file; print each problem with its key and line.
    CheckConfig,
    /// Add remailers by address.
    Add {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Remove remailers, with their keys and ping history.
    Remove {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Print this pinger's stanza for the community allpingers.txt index.
    Allpingers {
        /// Where the results are reachable, e.g. https://pinger.example.net/ (the built-in
        /// server serves them at its root).
        #[arg(long)]
        base_url: String,
        /// The stanza of the YAMN files (`results/yamn/`) instead.
        #[arg(long)]
        yamn: bool,
    },
    /// Rebuild every published file now: the lists and the keyrings.
    Publish {
        /// The instant to compute the statistics for (unix seconds; default: now).
        #[arg(long)]
        now: Option<i64>,
    },
    /// Show every remailer with its keys, reliability, latency and status.
    List {
        /// The instant to compute the statistics for (unix seconds; default: now).
        #[arg(long)]
        now: Option<i64>,
        /// Also show each remailer's capability line, keys with their validity and history,
        /// and the addresses other remailers vouch for.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Load a ping history from CSV files.
    ImportPings {
        /// address,type,sent_unix,received_unix[,keyid]
        #[arg(long)]
        pings: PathBuf,
        /// address,nick,caps,showit
        #[arg(long)]
        remailers: Option<PathBuf>,
        /// chaintype,addr1,addr2,sent_unix,received_unix
        #[arg(long)]
        chains: Option<PathBuf>,
    },
    /// Bring over an Echolot pinger: its remailers, keys, ping and chain-ping history,
    /// thesaurus and From: lines, read in place (the home is never modified). Running it again
    /// imports nothing new.
    ImportEcholot {
        /// Echolot's home directory (with `data/metadata`).
        home: PathBuf,
        /// Its pingd.conf, when not in the home.
        #[arg(long)]
        pingd_conf: Option<PathBuf>,
        /// Write a fathometer.toml suggested from pingd.conf here (never over an existing file).
        #[arg(long)]
        suggest_config: Option<PathBuf>,
    },
    /// Import remailer keys: OpenPGP keyrings, pubring.mix files, saved remailer-key replies.
    ImportKeys {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Add remailers that are not known yet instead of skipping their keys.
        #[arg(long)]
        add: bool,
    },
    /// Send one ping now, through the configured MTA.
    Ping {
        /// Remailer nick or address (omit with --chain).
        #[arg(required_unless_present = "chain", conflicts_with = "chain")]
        target: Option<String>,
        /// Ping type; default: the best type I key the remailer has (dsa, rsa, clear).
        #[arg(long = "type", value_parser = parse_ping_type)]
        ping_type: Option<PingType>,
        /// A two-hop chain instead: first hop, second hop.
        #[arg(long, value_delimiter = ',', value_name = "A,B")]
        chain: Option<Vec<String>>,
        /// Print the full message and record nothing.
        #[arg(long, conflicts_with = "stdout")]
        dry_run: bool,
        /// Print the message instead of sending it, and record the ping as sent now (for
        /// piping into another MTA).
        #[arg(long)]
        stdout: bool,
    },
    /// Test a type II remailer's replay protection now: its daemon mails one packet twice,
    /// byte for byte, `[replay_probe] gap_secs` apart (with --show: the probes so far).
    ReplayProbe {
        /// Remailer nick or address.
        target: String,
        /// List this remailer's probes and their verdicts instead of starting one.
        #[arg(long)]
        show: bool,
    },
    /// Process the configured mailbox (Maildir or IMAP).
    Ingest {
        /// Process what is there once and exit.
        #[arg(long, required = true)]
        once: bool,
    },
    /// Show the quarantine: mail that was forged, corrupted or not understood, with reasons.
    Quarantine {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Announced downtime (RFC 636): why a remailer is unavailable, and until when.
    Downtime {
        #[command(subcommand)]
        action: downtime::DowntimeAction,
    },
    /// Show the status events: remailers gone silent or resumed, new keys, announced
    /// downtime, the pinger's own outages.
    Events {
        /// From when (`2026-12-01`, `2026-12-01 10:00 UTC`, RFC 3339; default: a week ago).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Print the statistics as of an instant.
    Stats {
        /// Unix time to compute the statistics for: later pings do not exist, later returns
        /// have not arrived (default: now).
        #[arg(long)]
        now: Option<i64>,
        /// Reliability model (default: the configured one, else methodology).
        #[arg(long, value_enum)]
        model: Option<ModelArg>,
        #[arg(long, value_enum, default_value = "json")]
        format: StatsFormat,
        /// Include hidden remailers in text lists and private broken chains.
        #[arg(long)]
        private: bool,
    },
    /// A simulated network of a dozen remailers with weeks of history, then the pinger
    /// running live against it, faster than real time, with its pages at --listen. No
    /// configuration, no MTA: the way to see what fathometer does.
    Demo {
        /// Where to serve the pages.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Days of history simulated first.
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// How much faster than real time the live part runs.
        #[arg(long, default_value_t = 120)]
        speed: u32,
    },
    /// Run the real pinger (scheduler, real packets, store, statistics) against a simulated
    /// remailer network on a virtual clock, with injected faults, checking its invariants
    /// after every step. Exits 1 on a violation; the same seed replays the same run.
    Simulate {
        #[arg(long, default_value_t = 12)]
        remailers: usize,
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// all, none, or a comma-separated list of crashes, mta, mailbox, duplicates, clock,
        /// inbound, disk.
        #[arg(long, default_value = "none")]
        faults: String,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Keep the pinger's state (database, Maildir, published files) here instead of in a
        /// temporary directory that is removed afterwards.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// A deliberate bug the invariants must catch (count-duplicates, charge-own-failure);
        /// for tests.
        #[arg(long, hide = true)]
        inject_bug: Option<String>,
    },
    /// The consensus of several pingers' published files (each the base URL serving its
    /// mlist2.txt, rlist2.txt, pubring.mix and pgp-all.asc, or a directory holding them): the
    /// agreed figures with every pinger's view,
    /// outliers, stale pingers and key disagreements; with --out, the consensus lists
    /// (mlist.txt, mlist2.txt, rlist.txt, rlist2.txt) when agreed. Exits 2 when neither list
    /// reaches the quorum.
    Consensus {
        /// A pinger: `NAME=URL` or `NAME=DIR` (or just the URL or directory, named after its
        /// last part). Repeat for each pinger.
        #[arg(long = "pinger", required = true)]
        pingers: Vec<String>,
        /// Fresh pingers needed for an agreed consensus (default: a majority of those named).
        #[arg(long)]
        quorum: Option<usize>,
        /// The instant to judge freshness at (Unix seconds; default: now).
        #[arg(long)]
        now: Option<i64>,
        /// Write the agreed lists here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write the manual pages (fathometer(1), a page per command, fathometer.toml(5)) and
    /// the bash, zsh and fish completions under a directory (for packagers).
    #[command(hide = true)]
    Manual {
        /// Where to write `man/` and `completions/`.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModelArg {
    Methodology,
    Echolot,
}

impl From<ModelArg> for Model {
    fn from(m: ModelArg) -> Model {
        match m {
            ModelArg::Methodology => Model::Methodology,
            ModelArg::Echolot => Model::Echolot,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    Json,
    Mlist,
    Mlist2,
    Rlist,
    Rlist2,
    /// clist.txt: every list in one file.
    Clist,
}

/// Parses the arguments and runs the command; errors are printed, not panicked.
pub fn main() -> ExitCode {
    // Libraries must not capture a backtrace for every error they make: sequoia makes many
    // while it reads a damaged message, and with RUST_BACKTRACE=1 each one cost a stack walk
    // (a hostile mail went from 7 ms to 200 ms). Panics still print theirs.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: first thing in main, before any other thread exists.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    let cli = Cli::parse();
    // Everything fathometer creates is private to its user, whatever the umask.
    crate::app::state::use_private_umask();
    match run(cli) {
        Ok(code) => code,
        // The reader of our output went away (`| head`): not an error of ours.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fathometer: error: {}", terminal_safe(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// The clock every command reads "now" from.
fn clock() -> Arc<dyn Clock> {
    crate::app::context::clock()
}

/// A current-thread runtime for the commands that talk to the MTA or the mailbox.
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

fn run(cli: Cli) -> Result<ExitCode> {
    let now = || clock().now();
    match &cli.command {
        Command::CheckConfig => Ok(check_config(&cli.config)),
        Command::Run => {
            let config = match environment::load_checked(&cli.config) {
                Ok(c) => c,
                Err(problems) => {
                    for problem in &problems {
                        eprintln!("{problem}");
                    }
                    anyhow::bail!(
                        "the configuration has {} problem(s); nothing started",
                        problems.len()
                    );
                }
            };
            crate::app::daemon::run(config, clock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Add { addresses } => {
            let (mut store, config) = open_store(&cli)?;
            let ask = config.as_ref().is_some_and(|c| c.discovery.requests);
            let now = now();
            for a in addresses {
                check_address(a)?;
                let a = a.to_ascii_lowercase();
                if !store.add_remailer(&a, now)? {
                    outln!("{a} is already known; left unchanged");
                    continue;
                }
                if ask {
                    schedule::ask_at_once(&mut store, &a, now)?;
                    outln!(
                        "added {a}; remailer-conf, -key, -help, -stats and -adminkey requests \
                         queued (the running daemon sends them)"
                    );
                } else {
                    outln!("added {a}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Remove { addresses } => {
            let (mut store, _) = open_store(&cli)?;
            let mut code = ExitCode::SUCCESS;
            for a in addresses {
                if store.remove_remailer(a)? {
                    outln!("removed {a} with its keys and ping history");
                } else {
                    eprintln!("fathometer: {} is not a known remailer", terminal_safe(a));
                    code = ExitCode::FAILURE;
                }
            }
            Ok(code)
        }
        Command::Allpingers { base_url, yamn } => {
            let config = Config::load(&cli.config)?;
            let stanza = if *yamn {
                publish::allpingers_yamn_stanza(&config.pinger.name, base_url)?
            } else {
                publish::allpingers_stanza(&config.pinger.name, base_url)?
            };
            out!("{stanza}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Publish { now: at } => {
            let config = Config::load(&cli.config)?;
            let (store, _) = open_store(&cli)?;
            let at = at.unwrap_or_else(now);
            let store = std::sync::Mutex::new(store);
            let built = report::build_and_publish(&config, &store, at, true)?;
            outln!(
                "published {} Mixmaster and {} Cypherpunk remailers with their keyrings to {}",
                built.report.mix.iter().filter(|e| e.listed).count(),
                built.report.cpunk.iter().filter(|e| e.listed).count(),
                config.results_dir().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::List { now: at, verbose } => {
            let (store, config) = open_store(&cli)?;
            let at = at.unwrap_or_else(now);
            let options = report::stats_options(config.as_ref(), None)?;
            out!("{}", list::table(&store, at, &options)?);
            if *verbose {
                // The schedule needs the secret; with --db and no config it is not shown.
                let secret = match &config {
                    Some(c) if c.secret_path().exists() => {
                        Some(secret::load_or_create(&c.secret_path())?)
                    }
                    _ => None,
                };
                let types = config.as_ref().map(|c| c.schedule.ping_types.clone());
                let schedule = secret.as_ref().zip(types.as_deref());
                out!("{}", list::details(&store, at, schedule)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::ImportPings { pings, remailers, chains } => {
            let (mut store, _) = open_store(&cli)?;
            let s = import::import_files(
                &mut store,
                pings,
                remailers.as_deref(),
                chains.as_deref(),
                now(),
            )?;
            outln!(
                "imported {} pings ({} already present), {} chain pings ({} already present); \
                 remailers: {} added, {} updated; {} keys added",
                s.pings_added,
                s.pings_skipped_duplicate,
                s.chains_added,
                s.chains_skipped_duplicate,
                s.remailers_added,
                s.remailers_updated,
                s.keys_added
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { listen, days, speed } => simulate::demo(listen, *days, *speed),
        Command::Consensus { pingers, quorum, now, out } => {
            consensus::run(consensus::ConsensusArgs {
                pingers,
                quorum: *quorum,
                now: now.unwrap_or_else(|| chrono::Utc::now().timestamp()),
                out: out.as_deref(),
            })
        }
        Command::Simulate { remailers, days, seed, faults, json, dir, inject_bug } => {
            simulate::simulate(simulate::SimulateArgs {
                remailers: *remailers,
                days: *days,
                seed: *seed,
                faults,
                json: *json,
                dir: dir.as_deref(),
                inject_bug: inject_bug.as_deref(),
            })
        }
        Command::Manual { out } => {
            for file in manual::write_all(out)? {
                outln!("{}", file.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::ImportEcholot { home, pingd_conf, suggest_config } => {
            let (mut store, config) = open_store(&cli)?;
            let (report, read) =
                echolot::import_home(&mut store, home, pingd_conf.as_deref(), now())?;
            for line in report.to_string().lines() {
                outln!("{}", terminal_safe(line));
            }
            if let Some(path) = suggest_config {
                let state_dir = config
                    .as_ref()
                    .map(|c| c.pinger.state_dir.display().to_string())
                    .unwrap_or_else(|| "/var/lib/fathometer".to_owned());
                // Absolute, so that the suggested file works from any directory.
                let home = std::fs::canonicalize(home).unwrap_or_else(|_| home.clone());
                let text = echolot::conf::suggest(read.config.as_ref(), &state_dir, &home);
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
                    .with_context(|| format!("writing {}", path.display()))?;
                outln!("a configuration suggested from pingd.conf: {}", path.display());
            } else {
                outln!(
                    "(--suggest-config FILE writes a fathometer.toml suggested from pingd.conf)"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::ImportKeys { files, add } => {
            let (mut store, _) = open_store(&cli)?;
            let mut code = ExitCode::SUCCESS;
            for file in files {
                let text = match std::fs::read(file) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("fathometer: {}: {e}", file.display());
                        code = ExitCode::FAILURE;
                        continue;
                    }
                };
                let lines = keys::import(&mut store, &text, *add, now())?;
                if lines.is_empty() {
                    outln!("{}: no keys found", file.display());
                }
                for line in lines {
                    outln!("{}: {}: {}", file.display(), line.outcome, terminal_safe(&line.text));
                }
            }
            Ok(code)
        }
        Command::Ping { target, ping_type, chain, dry_run, stdout } => {
            let hops: Vec<String> = match (target, chain) {
                (Some(t), None) => vec![t.clone()],
                (None, Some(c)) if c.len() == 2 => c.clone(),
                (None, Some(_)) => anyhow::bail!("--chain takes two remailers: --chain A,B"),
                _ => anyhow::bail!("give a TARGET or --chain A,B"),
            };
            ping(&cli, &hops, *ping_type, *dry_run, *stdout)
        }
        Command::ReplayProbe { target, show } => replay_probe(&cli, target, *show),
        Command::Ingest { once: _ } => {
            let pinger = Arc::new(configured_pinger(&cli)?);
            let summary = runtime()?.block_on(ingest::once(pinger))?;
            outln!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Quarantine { limit } => {
            let (store, _) = open_store(&cli)?;
            let rows = store.quarantine(*limit)?;
            if rows.is_empty() {
                outln!("the quarantine is empty");
            }
            for q in rows {
                let when = chrono::DateTime::from_timestamp(q.processed_at, 0)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default();
                outln!(
                    "{when}  {:<9}  {}  {}{}",
                    terminal_safe(&q.kind),
                    terminal_safe(&q.source),
                    terminal_safe(q.reason.as_deref().unwrap_or_default()),
                    if q.raw_kept { "" } else { "  (raw copy past retention, removed)" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Downtime { action } => {
            let (mut store, _) = open_store(&cli)?;
            downtime::run(&mut store, action, now())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Events { since, limit } => {
            let (store, _) = open_store(&cli)?;
            downtime::events(&store, since.as_deref(), *limit, now())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats { now: at, model, format, private } => {
            let (store, config) = open_store(&cli)?;
            let at = at.unwrap_or_else(now);
            let options = report::stats_options(config.as_ref(), model.map(Model::from))?;
            let report = report::report(&store, at, &options)?;
            let same_operator = match &config {
                Some(c) => report::same_operator_text(c)?,
                None => None,
            };
            let list_file = match format {
                StatsFormat::Json | StatsFormat::Clist => None,
                StatsFormat::Mlist => Some(ListFile::Mlist),
                StatsFormat::Mlist2 => Some(ListFile::Mlist2),
                StatsFormat::Rlist => Some(ListFile::Rlist),
                StatsFormat::Rlist2 => Some(ListFile::Rlist2),
            };
            let text = match list_file {
                Some(file) => {
                    publish::render_list(&report, file, *private, same_operator.as_deref())
                }
                None if matches!(format, StatsFormat::Clist) => {
                    publish::render_clist(&report, *private, same_operator.as_deref())
                }
                None => {
                    let json = publish::json::stats_json(&report, *private);
                    serde_json::to_string_pretty(&json)? + "\n"
                }
            };
            out!("{text}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check_config(path: &Path) -> ExitCode {
    match environment::load_checked(path) {
        Ok(_) => {
            let _ = write_out(format_args!("{}: ok\n", path.display()));
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in problems {
                eprintln!("{problem}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Opens the store named by `--db`, or else the configured one (loading the config).
fn open_store(cli: &Cli) -> Result<(Store, Option<Config>)> {
    if let Some(db) = &cli.db {
        let parent = db.parent().unwrap_or(Path::new("."));
        let store = open_db(db, parent)?;
        // A config is optional with --db; use it for stats settings when it is there.
        let config = if cli.config.exists() { Some(Config::load(&cli.config)?) } else { None };
        return Ok((store, config));
    }
    let config = Config::load(&cli.config)?;
    crate::app::state::prepare(&config.pinger.state_dir)
        .with_context(|| format!("preparing {}", config.pinger.state_dir.display()))?;
    let store = open_db(&config.database_path(), &config.pinger.state_dir)?;
    Ok((store, Some(config)))
}

/// The configured pinger (config, secret, store), for the commands that send or read mail.
fn configured_pinger(cli: &Cli) -> Result<Pinger> {
    let config = Config::load(&cli.config)?;
    let mut pinger = Pinger::open(config, clock())?;
    if let Some(db) = &cli.db {
        let parent = db.parent().unwrap_or(Path::new("."));
        pinger.store = std::sync::Arc::new(std::sync::Mutex::new(open_db(db, parent)?));
    }
    Ok(pinger)
}

fn check_address(a: &str) -> Result<()> {
    MailAddress::try_from(a.to_owned()).map(|_| ()).map_err(anyhow::Error::msg)
}

fn parse_ping_type(s: &str) -> Result<PingType, String> {
    s.parse()
}

/// `fathometer ping`.
fn replay_probe(cli: &Cli, target: &str, show: bool) -> Result<ExitCode> {
    let (mut store, config) = open_store(cli)?;
    let now = clock().now();
    let time = |t: Option<i64>| {
        t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map_or("-".to_owned(), |t| t.format("%Y-%m-%d %H:%M").to_string())
    };
    if show {
        let (address, rows) = crate::app::probes::of(&store, target)?;
        if rows.is_empty() {
            outln!("{} has not been probed", terminal_safe(&address));
        }
        for p in rows {
            outln!(
                "probe {:<5} started {}  sent {} / {}  copies back {}  {}{}",
                p.id,
                time(Some(p.created_at)),
                time(p.first_sent_at),
                time(p.second_sent_at),
                p.returns,
                match p.verdict {
                    crate::model::ProbeVerdict::Replayed => "REPLAYED: replay protection broken",
                    v => v.as_str(),
                },
                p.last_error.map(|e| format!("  ({})", terminal_safe(&e))).unwrap_or_default()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (id, address) = crate::app::probes::start(&mut store, target, now)?;
    let probe = config.map(|c| c.replay_probe).unwrap_or_default();
    outln!(
        "replay probe {id} of {} started: the daemon mails one packet now and the same bytes \
         again {} s later; the verdict comes {} s after the second copy (or at once if both \
         come back)",
        terminal_safe(&address),
        probe.gap_secs.0,
        probe.wait_secs.0
    );
    Ok(ExitCode::SUCCESS)
}

fn ping(
    cli: &Cli,
    names: &[String],
    wanted: Option<PingType>,
    dry_run: bool,
    stdout: bool,
) -> Result<ExitCode> {
    let pinger = Arc::new(configured_pinger(cli)?);
    let delivery = if dry_run {
        Delivery::DryRun
    } else if stdout {
        Delivery::Stdout
    } else {
        Delivery::Mta(Box::new(smtp_sender(&pinger.config)?))
    };
    let done = runtime()?.block_on(ping_now(&pinger, names, wanted, delivery))?;
    if let Some(message) = &done.message {
        // For a terminal or a pipe into sendmail: LF line ends.
        out!("{}", String::from_utf8_lossy(message).replace("\r\n", "\n"));
        return Ok(ExitCode::SUCCESS);
    }
    let id = done.id.unwrap_or_default();
    match done.settled {
        Some(Settled::Sent) => {
            outln!(
                "ping {id} to {} accepted by the MTA; it returns to {}",
                names.join(" -> "),
                done.return_address
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Settled::Retry { error, .. } | Settled::GiveUp { error }) => {
            Err(anyhow::anyhow!("ping {id} not sent (not charged to the remailer): {error}"))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}
