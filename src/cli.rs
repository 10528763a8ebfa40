//! The `fathometer` command line: argument parsing (clap) and the commands' I/O edges.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, DEFAULT_CONFIG_PATH, MailAddress};
use crate::ingest::{self, IngestContext, IngestSummary, maildir::Maildir};
use crate::model::{ChainType, Model, PingType, RemailerKey, RemailerStatus};
use crate::publisher::{self, ListFile};
use crate::sender::{self, HopSpec, PingSpec};
use crate::stats::{self, Report, StatsOptions};
use crate::store::Store;
use crate::{daemon, import, keys, payload, scheduler, secret};

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
    /// Run the pinger daemon until SIGTERM or SIGINT.
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

/// Writes to standard output. An error goes back to the command, and a reader that went away
/// (`fathometer quarantine | head -1`) ends the command quietly in [`main`].
macro_rules! out {
    ($($arg:tt)*) => {
        write_out(format_args!($($arg)*))?
    };
}

/// [`out!`] with a line end.
macro_rules! outln {
    () => { write_out(format_args!("\n"))? };
    ($($arg:tt)*) => {{
        write_out(format_args!($($arg)*))?;
        write_out(format_args!("\n"))?;
    }};
}

fn write_out(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    std::io::stdout().lock().write_fmt(args)
}

/// A string from a remailer, a mail or a peer, made safe for a terminal: control characters
/// (escape sequences could retitle the window, clear the screen or worse) are shown as
/// `\u{1b}` escapes instead of being interpreted.
pub fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() })
            .collect(),
    )
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
    crate::state::use_private_umask();
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

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::CheckConfig => Ok(check_config(&cli.config)),
        Command::Run => {
            let config = match load_checked(&cli.config) {
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
            crate::daemon::run(config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Add { addresses } => {
            let (mut store, config) = open_store(&cli)?;
            let ask = config.as_ref().is_some_and(|c| c.discovery.requests);
            let now = unix_now();
            for a in addresses {
                check_address(a)?;
                let a = a.to_ascii_lowercase();
                if !store.add_remailer(&a, now)? {
                    outln!("{a} is already known; left unchanged");
                    continue;
                }
                if ask {
                    daemon::ask_at_once(&mut store, &a, now)?;
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
                    eprintln!("fathometer: {a} is not a known remailer");
                    code = ExitCode::FAILURE;
                }
            }
            Ok(code)
        }
        Command::Allpingers { base_url } => {
            let config = Config::load(&cli.config)?;
            out!("{}", publisher::allpingers_stanza(&config.pinger.name, base_url)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Publish { now } => {
            let config = Config::load(&cli.config)?;
            let (store, _) = open_store(&cli)?;
            let now = now.unwrap_or_else(unix_now);
            let store = std::sync::Mutex::new(store);
            let (report, _) = daemon::build_and_publish(&config, &store, now, true)?;
            outln!(
                "published {} Mixmaster and {} Cypherpunk remailers with their keyrings to {}",
                report.mix.iter().filter(|e| e.listed).count(),
                report.cpunk.iter().filter(|e| e.listed).count(),
                config.results_dir().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::List { now, verbose } => {
            let (store, config) = open_store(&cli)?;
            let now = now.unwrap_or_else(unix_now);
            let options = stats_options(config.as_ref(), None)?;
            out!("{}", list_table(&store, now, &options)?);
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
                out!("{}", list_details(&store, now, schedule)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::ImportPings { pings, remailers, chains } => {
            let (mut store, _) = open_store(&cli)?;
            import_pings(&mut store, pings, remailers.as_deref(), chains.as_deref())?;
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
                let lines = keys::import(&mut store, &text, *add, unix_now())?;
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
            ping_now(&cli, &hops, *ping_type, *dry_run, *stdout)
        }
        Command::Ingest { once: _ } => ingest_once(&cli),
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
        Command::Stats { now, model, format, private } => {
            let (store, config) = open_store(&cli)?;
            let now = now.unwrap_or_else(unix_now);
            let options = stats_options(config.as_ref(), model.map(Model::from))?;
            let report = compute_report(&store, now, &options)?;
            let same_operator = match &config {
                Some(c) => same_operator_text(c)?,
                None => None,
            };
            let list_file = match format {
                StatsFormat::Json | StatsFormat::Clist => None,
                StatsFormat::Mlist => Some(ListFile::Mlist),
                StatsFormat::Mlist2 => Some(ListFile::Mlist2),
                StatsFormat::Rlist => Some(ListFile::Rlist),
                StatsFormat::Rlist2 => Some(ListFile::Rlist2),
            };
            let out = match list_file {
                Some(file) => {
                    publisher::render_list(&report, file, *private, same_operator.as_deref())
                }
                None if matches!(format, StatsFormat::Clist) => {
                    publisher::render_clist(&report, *private, same_operator.as_deref())
                }
                None => {
                    let json = publisher::json::stats_json(&report, *private);
                    serde_json::to_string_pretty(&json)?
                        + "
"
                }
            };
            out!("{out}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check_config(path: &Path) -> ExitCode {
    match load_checked(path) {
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

/// Loads a configuration and checks it against the machine (`check-config` and `run`
/// share this): every problem, each with its key and line.
pub fn load_checked(path: &Path) -> std::result::Result<Config, Vec<crate::config::ConfigError>> {
    let config = Config::load(path).map_err(|e| vec![e])?;
    let problems = crate::config::environment::check(&config);
    if problems.is_empty() { Ok(config) } else { Err(problems) }
}

/// Opens the store named by `--db`, or else the configured one (loading the config).
fn open_store(cli: &Cli) -> Result<(Store, Option<Config>)> {
    if let Some(db) = &cli.db {
        let store = Store::open(db).with_context(|| format!("opening {}", db.display()))?;
        // A config is optional with --db; use it for stats settings when it is there.
        let config = if cli.config.exists() { Some(Config::load(&cli.config)?) } else { None };
        return Ok((store, config));
    }
    let config = Config::load(&cli.config)?;
    std::fs::create_dir_all(&config.pinger.state_dir)
        .with_context(|| format!("creating {}", config.pinger.state_dir.display()))?;
    let path = config.database_path();
    let store = Store::open(&path).with_context(|| format!("opening {}", path.display()))?;
    Ok((store, Some(config)))
}

fn check_address(a: &str) -> Result<()> {
    MailAddress::try_from(a.to_owned()).map(|_| ()).map_err(anyhow::Error::msg)
}

pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The operator's same-operator groups file, if configured and present.
pub fn same_operator_text(config: &Config) -> Result<Option<String>> {
    match &config.stats.same_operator_file {
        Some(p) => read_optional(p),
        None => Ok(None),
    }
}

/// Statistics options from the config (if any), with an optional model override.
pub fn stats_options(config: Option<&Config>, model: Option<Model>) -> Result<StatsOptions> {
    let mut options = StatsOptions::default();
    if let Some(c) = config {
        options.model = c.stats.model;
        options.sort_by_latency = c.stats.sort_by_latency.0;
        options.publish_broken_chains = c.stats.publish_broken_chains;
        options.chain_pings = c.schedule.chain_pings;
        options.separate_rlists = c.publish.separate_rlists;
        if let Some(p) = &c.stats.broken_type1_file {
            options.hard_broken_type1 = read_optional(p)?;
        }
        if let Some(p) = &c.stats.broken_type2_file {
            options.hard_broken_type2 = read_optional(p)?;
        }
    }
    if let Some(m) = model {
        options.model = m;
    }
    Ok(options)
}

/// Loads what the statistics need from the store and computes them as of `now`.
pub fn compute_report(store: &Store, now: i64, options: &StatsOptions) -> Result<Report> {
    // One day of slack beyond the window keeps the query cheap and the window exact.
    let since = now - (stats::STATS_DAYS as i64 + 1) * stats::SECONDS_PER_DAY;
    let dataset = crate::stats::window::dataset(store.history(since, now)?, now);
    Ok(stats::compute(&dataset, now, options))
}

fn import_pings(
    store: &mut Store,
    pings: &Path,
    remailers: Option<&Path>,
    chains: Option<&Path>,
) -> Result<()> {
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let ping_rows =
        import::parse_pings(&read(pings)?).with_context(|| pings.display().to_string())?;
    let listed = match remailers {
        Some(p) => import::parse_remailers(&read(p)?).with_context(|| p.display().to_string())?,
        None => Vec::new(),
    };
    let chain_rows = match chains {
        Some(p) => import::parse_chains(&read(p)?).with_context(|| p.display().to_string())?,
        None => Vec::new(),
    };
    let known: std::collections::HashSet<String> =
        store.remailers()?.into_iter().filter(|r| r.caps.is_some()).map(|r| r.address).collect();
    let identities = import::complete_identities(listed, &ping_rows, |a| known.contains(a));
    let s = store.import(&identities, &ping_rows, &chain_rows, unix_now())?;
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
    Ok(())
}

/// The `list` table.
pub fn list_table(store: &Store, now: i64, options: &StatsOptions) -> Result<String> {
    let report = compute_report(store, now, options)?;
    let find = |list: &[stats::ListEntry], address: &str| {
        list.iter().find(|e| e.address == address).map(|e| {
            format!(
                "{:.2}% {}",
                e.stats.reliability * 100.0,
                publisher::lists::latency_text(e.stats.latency_median, true).trim()
            )
        })
    };
    let mut out = format!(
        "{:<14} {:<32} {:<24} {:>4} {:<18} {:<18} {}\n",
        "NICK", "ADDRESS", "TYPES", "KEYS", "MIX REL LAT", "CPUNK REL LAT", "STATUS"
    );
    for r in store.remailers()? {
        let mut types: Vec<&str> =
            r.keys.iter().filter(|k| k.is_current(now)).map(|k| k.ping_type.as_str()).collect();
        types.dedup();
        let mut status = r.status.to_string();
        if r.is_hidden() {
            status.push_str(if r.hidden { " hidden" } else { " hidden(testing)" });
        }
        if let Some(reason) = &r.status_reason {
            status.push_str(&format!(" ({})", terminal_safe(reason)));
        }
        out.push_str(&format!(
            "{:<14} {:<32} {:<24} {:>4} {:<18} {:<18} {}\n",
            terminal_safe(r.nick.as_deref().unwrap_or("-")),
            terminal_safe(&r.address),
            if types.is_empty() { "-".to_string() } else { types.join(",") },
            r.keys.len(),
            find(&report.mix, &r.address).unwrap_or_else(|| "-".into()),
            find(&report.cpunk, &r.address).unwrap_or_else(|| "-".into()),
            status
        ));
    }
    Ok(out)
}

/// `list --verbose`: per remailer its capabilities, keys (validity, retirement, next ping when
/// the schedule is known) and key history; then the candidates.
pub fn list_details(
    store: &Store,
    now: i64,
    schedule: Option<(&secret::Secret, &[PingType])>,
) -> Result<String> {
    let date = |t: Option<i64>| {
        t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let mut out = String::new();
    for r in store.remailers()? {
        out.push_str(&format!("\n{}", terminal_safe(&r.address)));
        if let Some(nick) = &r.nick {
            out.push_str(&format!(" ({})", terminal_safe(nick)));
        }
        out.push('\n');
        if let Some(t) = &r.remailer_type {
            out.push_str(&format!("  software: {}\n", terminal_safe(t)));
        }
        out.push_str(&format!("  caps: {}\n", terminal_safe(r.caps.as_deref().unwrap_or("-"))));
        out.push_str(&format!("  last answer: {}\n", date(r.last_answer_at)));
        for k in &r.keys {
            let state = if k.retired_at.is_some() {
                format!("retired {}", date(k.retired_at))
            } else if k.is_current(now) && r.status != RemailerStatus::Disabled {
                match schedule.filter(|(_, types)| types.contains(&k.ping_type)) {
                    Some((secret, _)) => {
                        let next = scheduler::next_single_slot(
                            secret.as_bytes(),
                            &r.address,
                            k.ping_type,
                            &k.key_id,
                            now,
                        );
                        let when = chrono::DateTime::from_timestamp(next, 0)
                            .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
                            .unwrap_or_default();
                        format!("current, next ping {when}")
                    }
                    None => "current".into(),
                }
            } else {
                "not valid now".into()
            };
            out.push_str(&format!(
                "  key {:<11} {:<32} valid {} .. {}  {state}\n",
                k.ping_type.as_str(),
                terminal_safe(&k.key_id),
                date(k.valid_from),
                date(k.valid_until)
            ));
        }
        for e in store.key_history(r.id)? {
            out.push_str(&format!(
                "  history {} {} {} {}{}\n",
                date(Some(e.at)),
                e.event,
                e.ping_type,
                terminal_safe(&e.key_id),
                e.detail.map(|d| format!(": {}", terminal_safe(&d))).unwrap_or_default()
            ));
        }
    }
    let candidates = store.candidates()?;
    if !candidates.is_empty() {
        out.push_str("\ncandidates (address, remailers vouching for it):\n");
        for (address, n) in candidates {
            out.push_str(&format!("  {} {n}\n", terminal_safe(&address)));
        }
    }
    Ok(out)
}

fn parse_ping_type(s: &str) -> Result<PingType, String> {
    s.parse()
}

/// The key a manual ping uses: of the requested type, or the best type I type the remailer
/// has (as chains choose hops), the newest current one.
fn pick_key(keys: &[RemailerKey], wanted: Option<PingType>, now: i64) -> Option<RemailerKey> {
    let types: Vec<PingType> = match wanted {
        Some(t) => vec![t],
        None => ChainType::Cpunk.preferred_hop_types().to_vec(),
    };
    types.iter().find_map(|t| {
        keys.iter().filter(|k| k.ping_type == *t && k.is_current(now)).max_by_key(|k| k.id).cloned()
    })
}

/// `fathometer ping`.
fn ping_now(
    cli: &Cli,
    names: &[String],
    wanted: Option<PingType>,
    dry_run: bool,
    stdout: bool,
) -> Result<ExitCode> {
    let config = Config::load(&cli.config)?;
    let (mut store, _) = open_store(cli)?;
    std::fs::create_dir_all(&config.pinger.state_dir)
        .with_context(|| format!("creating {}", config.pinger.state_dir.display()))?;
    let secret = secret::load_or_create(&config.secret_path())?;
    let identity = daemon::identity(&config);
    let now = unix_now();
    let mut hops = Vec::new();
    let mut key_rows = Vec::new();
    for name in names {
        let r = store.find_remailer(name)?;
        let key = pick_key(&r.keys, wanted, now).with_context(|| {
            let what = wanted.map_or("type I".to_owned(), |t| t.to_string());
            format!(
                "{} has no current {what} key; import one with `fathometer import-keys`",
                r.address
            )
        })?;
        hops.push(HopSpec {
            address: r.address.clone(),
            ping_type: key.ping_type,
            key_id: key.key_id.clone(),
            material: store.key_material(key.id)?,
        });
        key_rows.push(key.id);
    }
    let tag = payload::new_tag(&mut rand::rngs::OsRng);
    let mut spec = PingSpec { id: 0, hops, with_from: false };
    let build = |spec: &PingSpec| {
        sender::build_ping(spec, secret.as_bytes(), &identity, &tag, now, &mut rand::rngs::OsRng)
    };
    // For a terminal or a pipe into sendmail: LF line ends.
    let print = |b: &sender::BuiltPing| {
        write_out(format_args!(
            "{}",
            String::from_utf8_lossy(&b.outgoing.message).replace("\r\n", "\n")
        ))
    };
    if dry_run {
        print(&build(&spec)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let chain_type =
        if spec.hops[0].ping_type == PingType::Mix { ChainType::Mix } else { ChainType::Cpunk };
    let hop2 = key_rows.get(1).map(|&k| (chain_type, k));
    spec.id = store.record_manual_ping(key_rows[0], hop2, now, &tag, false, None)?;
    let built = match build(&spec) {
        Ok(b) => b,
        Err(e) => {
            store.mark_not_sent(spec.id, &e.to_string())?;
            return Err(e.into());
        }
    };
    if stdout {
        store.mark_sent(spec.id, now)?;
        print(&built)?;
        return Ok(ExitCode::SUCCESS);
    }
    let smtp = daemon::smtp_sender(&config)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match runtime.block_on(smtp.send(&built.outgoing)) {
        Ok(()) => {
            store.mark_sent(spec.id, now)?;
            outln!(
                "ping {} to {} accepted by the MTA; it returns to {}",
                spec.id,
                names.join(" -> "),
                identity.return_address(&tag)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            store.mark_not_sent(spec.id, &e.to_string())?;
            Err(anyhow::anyhow!("ping {} not sent (not charged to the remailer): {e}", spec.id))
        }
    }
}

/// `fathometer ingest --once`.
fn ingest_once(cli: &Cli) -> Result<ExitCode> {
    let config = Config::load(&cli.config)?;
    let (store, _) = open_store(cli)?;
    let secret = secret::load_or_create(&config.secret_path())?;
    let identity = daemon::identity(&config);
    let ctx = IngestContext { secret: secret.as_bytes(), identity: &identity };
    let store = std::sync::Mutex::new(store);
    let summary = if let Some(imap_config) = &config.mailbox.imap {
        let settings = daemon::imap_settings(imap_config)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(ingest_imap_once(&settings, &store, &ctx))?
    } else if let Some(path) = &config.mailbox.maildir {
        let maildir = Maildir::open(path)
            .with_context(|| format!("opening the Maildir {}", path.display()))?;
        ingest::ingest_maildir(&store, &ctx, &maildir, &std::sync::atomic::AtomicBool::new(false))?
    } else {
        anyhow::bail!("no [mailbox] configured (maildir or [mailbox.imap])");
    };
    outln!("{summary}");
    Ok(ExitCode::SUCCESS)
}

async fn ingest_imap_once(
    settings: &ingest::imap::ImapSettings,
    store: &std::sync::Mutex<Store>,
    ctx: &IngestContext<'_>,
) -> Result<IngestSummary> {
    use ingest::imap::{Disposition as ImapDisposition, ImapMailbox};
    let mut mailbox = ImapMailbox::connect(settings).await?;
    let mut summary = IngestSummary::default();
    loop {
        let batch = mailbox.fetch_unseen().await?;
        if batch.is_empty() {
            break;
        }
        for mail in batch {
            let raw = ingest::RawMail {
                source: format!("imap:{}:{}", mail.uid_validity, mail.uid),
                bytes: mail.raw,
                size: mail.size,
                delivered_at: mail.internal_date,
            };
            let processed = ingest::process(store, ctx, &raw, unix_now())?;
            ingest::log_processed(&raw.source, &processed);
            let disposition = match processed.disposition {
                ingest::Disposition::Processed => ImapDisposition::Processed,
                ingest::Disposition::Quarantined => ImapDisposition::Quarantined,
            };
            mailbox.settle(mail.uid, disposition).await?;
            summary.add(&processed);
        }
    }
    mailbox.logout().await;
    Ok(summary)
}
