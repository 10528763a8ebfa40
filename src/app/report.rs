//! A statistics build: gather everything from the store at once, compute, render, write.
//!
//! The store is locked only while the inputs are read, in one go (no query per remailer);
//! the statistics, the rendering and the file writes run without it.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use tracing::info;

use crate::config::Config;
use crate::model::downtime::{Downtime, OVERDUE_SHOWN_SECS};
use crate::model::event::{Event, EventKind, Watch};
use crate::model::stability::{DaemonRun, UptimeDay};
use crate::model::{
    ChainType, FromLine, HistoryRows, Model, PublishableKey, Remailer, ReplayStatus,
    SECONDS_PER_DAY, SELF_CHECK_DEADLINE_SECS, STATS_DAYS, StoredReply,
};
use crate::publish;
use crate::stats::{self, Report, StatsOptions, downtime, events, stability};
use crate::store::Store;

/// Chains pinged daily because they are broken or under-sampled: (addr1, addr2, family).
pub type IntensiveCareSet = HashSet<(String, String, ChainType)>;

/// Reads an optional operator file; a missing file is "none" (check-config and the start
/// refuse a configured file that is missing, so this only happens if it goes away later).
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

/// The start of the rows a build as of `now` reads: the window plus a day, so the query is
/// cheap and the window exact.
fn since(now: i64) -> i64 {
    now - (STATS_DAYS as i64 + 1) * SECONDS_PER_DAY
}

/// The statistics as of `now`, from the store, with the long-term stability.
pub fn report(store: &Store, now: i64, options: &StatsOptions) -> Result<Report> {
    let inputs = StatsInputs::gather(store, now)?;
    Ok(compute(&inputs, now, options).report)
}

/// What the statistics read: the window's rows, the year the stability figures need, the
/// announced downtimes, and what the last build saw (for the events).
pub struct StatsInputs {
    pub rows: HistoryRows,
    pub stored_days: Vec<UptimeDay>,
    pub runs: Vec<DaemonRun>,
    pub downtimes: Vec<Downtime>,
    pub watch: Watch,
    /// What the replay probes found, by address.
    pub replay: BTreeMap<String, ReplayStatus>,
    /// The key disagreements of the last consensus round, by address (who holds what).
    pub key_disagreements: BTreeMap<String, String>,
}

impl StatsInputs {
    pub fn gather(store: &Store, now: i64) -> Result<StatsInputs> {
        let first_day = stability::day_of(now) - stability::LONGEVITY_DAYS - 1;
        Ok(StatsInputs {
            rows: store.history(since(now), now)?,
            stored_days: store.uptime_days(first_day)?,
            runs: store.daemon_runs(since(now))?,
            // Downtimes over for longer than they are shown as overdue no longer matter.
            downtimes: store.downtimes(now - OVERDUE_SHOWN_SECS - SECONDS_PER_DAY)?,
            watch: store.watch()?,
            replay: store.replay_statuses()?,
            key_disagreements: super::consensus::stored_key_disagreements(store)?,
        })
    }
}

/// What the pure part of a build computes.
pub struct Computed {
    pub report: Report,
    /// The recomputed days of observations, for the store.
    pub days: Vec<UptimeDay>,
    /// What changed since the last build, and what this build saw.
    pub events: Vec<Event>,
    pub watch: Watch,
}

/// The report as of `now` with its stability and downtime notices, the days to store, and
/// the events.
pub fn compute(inputs: &StatsInputs, now: i64, options: &StatsOptions) -> Computed {
    let dataset = stats::window::dataset(inputs.rows.clone(), now);
    let mut report = stats::compute(&dataset, now, options);
    let ids: BTreeMap<String, i64> =
        inputs.rows.remailers.iter().map(|r| (r.address.clone(), r.id)).collect();
    let pinger_down = stability::pinger_downtime(&inputs.runs, now);
    let notices = downtime::notices(&inputs.downtimes, &dataset, now);
    let announced = downtime::announced_intervals(&inputs.downtimes);
    let identity_since = stability::identity_since(&inputs.rows.remailers, now);
    let stability_inputs = stability::Inputs {
        stored: &inputs.stored_days,
        ids: &ids,
        pinger_down: &pinger_down,
        announced: &announced,
        identity_since: &identity_since,
    };
    let listed = |address: &str, family: ChainType| {
        let list = match family {
            ChainType::Mix => &report.mix,
            ChainType::Cpunk => &report.cpunk,
            ChainType::Yamn => &report.yamn,
        };
        list.iter().any(|e| e.address == address && e.listed)
    };
    let stable = stability::compute(&dataset, &stability_inputs, listed, now);
    let own_failures =
        stats::own_failure_windows(&inputs.rows.self_checks, SELF_CHECK_DEADLINE_SECS, now);
    let event_inputs = events::EventInputs {
        remailers: &inputs.rows.remailers,
        observations: &stable.observations,
        downtimes: &notices,
        pinger_down: &pinger_down,
        own_failures: &own_failures,
        replay: &inputs.replay,
        key_disagreements: &inputs.key_disagreements,
    };
    let (watch, events) = events::detect(&inputs.watch, &event_inputs, now);
    report.stability = stable.figures;
    report.downtime = downtime::current(&notices);
    report.replay = inputs.replay.clone();
    Computed { report, days: stable.days, events, watch }
}

/// Recent events shown on the pages, in the feeds and by the API: this long back, at most
/// [`MAX_RECENT_EVENTS`].
pub const RECENT_EVENTS_SECS: i64 = 30 * SECONDS_PER_DAY;
pub const MAX_RECENT_EVENTS: usize = 1000;

/// Everything one build reads from the store, read in one go.
pub struct BuildInputs {
    pub stats: StatsInputs,
    pub replies: BTreeMap<i64, Vec<StoredReply>>,
    pub from_lines: Vec<FromLine>,
    /// The keys for the keyrings, when they are rebuilt this time.
    pub keys: Option<Vec<PublishableKey>>,
    /// The events of the last [`RECENT_EVENTS_SECS`], newest first.
    pub recent_events: Vec<Event>,
    /// Events ever recorded, by kind.
    pub event_counts: BTreeMap<EventKind, u64>,
}

impl BuildInputs {
    pub fn gather(store: &Store, now: i64, keyrings: bool) -> Result<BuildInputs> {
        Ok(BuildInputs {
            stats: StatsInputs::gather(store, now)?,
            replies: store.all_replies()?,
            from_lines: store.from_lines()?,
            keys: if keyrings { Some(store.publishable_keys(now)?) } else { None },
            recent_events: store.events_since(now - RECENT_EVENTS_SECS, MAX_RECENT_EVENTS)?,
            event_counts: store.event_counts()?,
        })
    }
}

/// What a build produced: the report, the chains to ping daily from now on, the events it
/// found (stored, with their ids), and the recent events it published.
pub struct Built {
    pub report: Report,
    pub intensive_care: IntensiveCareSet,
    pub new_events: Vec<Event>,
    pub recent_events: Vec<Event>,
    pub event_counts: BTreeMap<EventKind, u64>,
}

/// Rebuilds the statistics and publishes the lists and pages (and the keyrings when
/// `keyrings` is set) as of `now`. The days of observations, the events and the watch are
/// stored before anything is published, in their own transactions.
pub fn build_and_publish(
    config: &Config,
    store: &Mutex<Store>,
    now: i64,
    keyrings: bool,
) -> Result<Built> {
    let options = stats_options(Some(config), None)?;
    let same_operator = same_operator_text(config)?;
    let inputs = { BuildInputs::gather(&super::context::lock(store), now, keyrings)? };
    let computed = compute(&inputs.stats, now, &options);
    let forget_before = stability::day_of(now) - stability::LONGEVITY_DAYS - 1;
    let new_events = {
        let mut store = super::context::lock(store);
        store
            .save_uptime_days(&computed.days, forget_before)
            .context("storing the days of observations")?;
        store
            .record_events(&inputs.stats.watch, &computed.watch, &computed.events)
            .context("storing the events")?
    };
    for e in &new_events {
        info!(kind = %e.kind, remailer = ?e.remailer.as_ref().map(|r| &r.address), "event: {}", e.detail);
    }
    publish_computed(config, inputs, computed.report, new_events, now, same_operator.as_deref())
}

/// The pure part of a build and its writes, from inputs already gathered, storing nothing
/// (the benchmarks).
pub fn publish_inputs(
    config: &Config,
    inputs: BuildInputs,
    now: i64,
    options: &StatsOptions,
    same_operator: Option<&str>,
) -> Result<Built> {
    let computed = compute(&inputs.stats, now, options);
    publish_computed(config, inputs, computed.report, computed.events, now, same_operator)
}

/// Renders and writes everything a build publishes.
fn publish_computed(
    config: &Config,
    inputs: BuildInputs,
    report: Report,
    new_events: Vec<Event>,
    now: i64,
    same_operator: Option<&str>,
) -> Result<Built> {
    let remailers: Vec<Remailer> = inputs.stats.rows.remailers.clone();
    let mut recent_events: Vec<Event> = new_events.iter().rev().cloned().collect();
    recent_events.extend(inputs.recent_events.iter().cloned());
    recent_events.truncate(MAX_RECENT_EVENTS);
    let mut event_counts = inputs.event_counts.clone();
    for e in &new_events {
        *event_counts.entry(e.kind).or_default() += 1;
    }
    // `.meta` files say when a client should fetch again: at the next rebuild.
    let meta_after = |interval: u64| config.publish.meta_files.then(|| now + interval as i64);
    let list_options = publish::ListOptions {
        same_operator,
        combined_list: config.publish.combined_list,
        meta_expires: meta_after(config.stats.build_interval_secs.0),
    };
    let (public, private) = (config.results_dir(), config.private_results_dir());
    let lists = publish::write_lists(&report, &public, &private, &list_options)
        .context("writing the lists")?;
    // The YAMN tree, once there is a YAMN remailer (and kept up to date after).
    if !report.yamn.is_empty() || public.join(publish::YAMN_DIR).exists() {
        let keys = inputs.keys.as_deref();
        publish::write_yamn(&report, keys, &public, &private, list_options.meta_expires)
            .context("writing the YAMN files")?;
    }
    let pages = publish::pages::PageInputs {
        report: &report,
        remailers: &remailers,
        replies: &inputs.replies,
        from_lines: &inputs.from_lines,
        events: &recent_events,
        site_name: &config.pinger.name,
        operator: config.pinger.operator_address.as_ref().map(|a| a.as_str()),
        pinger_address: config.pinger.address.as_str(),
    };
    publish::write_pages(&pages, &lists, &public, &private, list_options.meta_expires)
        .context("writing the HTML pages")?;
    if let Some(keys) = &inputs.keys {
        let expires = meta_after(config.publish.keyring_interval_secs.0);
        publish::write_keyrings(&report, keys, &public, &private, expires)
            .context("writing the keyrings")?;
    }
    let mut intensive_care = IntensiveCareSet::new();
    for (chain_type, broken) in [
        (ChainType::Cpunk, &report.broken_type1),
        (ChainType::Mix, &report.broken_type2),
        (ChainType::Yamn, &report.broken_yamn),
    ] {
        for (a1, a2, _) in &broken.intensive_care {
            intensive_care.insert((a1.clone(), a2.clone(), chain_type));
        }
    }
    info!(mix = report.mix.len(), cpunk = report.cpunk.len(), "statistics published");
    Ok(Built { report, intensive_care, new_events, recent_events, event_counts })
}
