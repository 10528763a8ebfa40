//! `fathometer run`: the long-running pinger.
//!
//! Each tick asks the [`scheduler`] which slots fell due since the last tick and queues those
//! pings in the store (sending them is the sender's job); every statistics interval it
//! rebuilds the statistics and publishes the lists. SIGTERM or SIGINT stops it between two
//! steps; every step is one store transaction, so stopping or crashing loses nothing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tracing::{error, info, warn};

use crate::cli::{compute_report, same_operator_text, stats_options, unix_now};
use crate::config::Config;
use crate::publisher::{self, http::Published};
use crate::scheduler::{self, plan};
use crate::secret::{self, Secret};
use crate::store::{Store, StoreError};
use crate::types::ChainType;

const LAST_TICK: &str = "scheduler.last_tick";

/// Chains pinged daily because they are broken or under-sampled: (addr1, addr2, family).
type IntensiveCareSet = HashSet<(String, String, ChainType)>;

/// Runs the daemon until a termination signal arrives.
pub fn run(config: Config) -> Result<()> {
    init_logging();
    let state_dir = &config.pinger.state_dir;
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating state directory {}", state_dir.display()))?;
    let secret = secret::load_or_create(&config.secret_path())?;
    let db = config.database_path();
    let store = Store::open(&db).with_context(|| format!("opening {}", db.display()))?;
    info!(database = %db.display(), listen = %config.http.listen.0, "fathometer started");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(main_loop(config, secret, store))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second init (tests calling run twice in one process) is harmless: keep the first.
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

async fn main_loop(config: Config, secret: Secret, mut store: Store) -> Result<()> {
    let mut shutdown = Box::pin(shutdown_signal());
    let tick_every = Duration::from_secs(config.schedule.tick_secs.0);
    let build_every = config.stats.build_interval_secs.0 as i64;
    let (published_tx, published_rx) = tokio::sync::watch::channel(Published::default());
    let listener = tokio::net::TcpListener::bind(config.http.listen.0)
        .await
        .with_context(|| format!("cannot listen on {} ([http] listen)", config.http.listen.0))?;
    info!(address = %listener.local_addr()?, "serving statistics over HTTP");
    // Three missed builds in a row make the daemon unhealthy.
    let app = publisher::http::router(&config.results_dir(), published_rx, 3 * build_every + 60);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!("HTTP server stopped: {e}");
        }
    });
    let mut ticker = tokio::time::interval(tick_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut intensive_care = IntensiveCareSet::new();
    let mut last_build: Option<i64> = None;
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                info!("termination signal received; stopping");
                break;
            }
            _ = ticker.tick() => {
                let now = unix_now();
                let tick = schedule_tick(&config, &secret, &mut store, &intensive_care, now);
                if let Err(e) = &tick {
                    error!("scheduler tick failed: {e:#}");
                }
                let counts = store.ping_counts();
                published_tx.send_modify(|p| {
                    p.problem = tick.as_ref().err().map(|e| format!("scheduler: {e}"));
                    if tick.is_ok() {
                        p.last_tick = Some(now);
                    }
                    if let Ok(c) = counts {
                        p.ping_counts = c;
                    }
                });
                if last_build.is_none_or(|t| now - t >= build_every) {
                    match build_and_publish(&config, &store, now) {
                        Ok((report, ic)) => {
                            intensive_care = ic;
                            published_tx.send_modify(|p| {
                                p.report = Some(Arc::new(report));
                                p.last_build = Some(now);
                            });
                        }
                        Err(e) => error!("statistics build failed: {e:#}"),
                    }
                    last_build = Some(now);
                }
            }
        }
    }
    info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            warn!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await
        }
    }
}

/// Queues the pings whose slots fell due since the last tick.
fn schedule_tick(
    config: &Config,
    secret: &Secret,
    store: &mut Store,
    intensive_care: &IntensiveCareSet,
    now: i64,
) -> Result<(), StoreError> {
    let last_tick = store.state(LAST_TICK)?.and_then(|v| v.parse::<i64>().ok());
    let window = scheduler::due_window(last_tick, now, config.schedule.max_lateness_secs.0 as i64);
    if let Some(last) = last_tick {
        let missed = window.after - last;
        if missed > 0 {
            warn!(
                skipped_secs = missed,
                "slots missed while the daemon was not running are skipped"
            );
        }
    }
    let remailers = plan::schedulable_remailers(&store.remailers()?, now);
    let due = plan::due_pings(
        secret.as_bytes(),
        &remailers,
        &config.schedule.ping_types,
        config.schedule.chain_pings,
        intensive_care,
        &window,
    );
    let singles = store.queue_single_pings(&due.singles, now)?;
    let chains = store.queue_chain_pings(&due.chains, now)?;
    store.set_state(LAST_TICK, &now.to_string())?;
    if singles + chains > 0 {
        info!(single = singles, chain = chains, "pings queued");
    }
    Ok(())
}

/// Rebuilds the statistics, publishes the lists, and returns the report with the chains to
/// ping daily.
fn build_and_publish(
    config: &Config,
    store: &Store,
    now: i64,
) -> Result<(crate::stats::Report, IntensiveCareSet)> {
    let options = stats_options(Some(config), None)?;
    let report = compute_report(store, now, &options)?;
    let same_operator = same_operator_text(config)?;
    publisher::write_lists(
        &report,
        &config.results_dir(),
        &config.private_results_dir(),
        same_operator.as_deref(),
    )
    .context("writing the lists")?;
    let mut ic = IntensiveCareSet::new();
    for (chain_type, broken) in
        [(ChainType::Cpunk, &report.broken_type1), (ChainType::Mix, &report.broken_type2)]
    {
        for (a1, a2, _) in &broken.intensive_care {
            ic.insert((a1.clone(), a2.clone(), chain_type));
        }
    }
    info!(mix = report.mix.len(), cpunk = report.cpunk.len(), "statistics published");
    Ok((report, ic))
}
