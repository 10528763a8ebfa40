//! `fathometer run`: the long-running pinger, as tasks wired together.
//!
//! - the tick ([`super::schedule::tick`]) every `tick_secs`, and every build interval a
//!   statistics build ([`super::report::build_and_publish`]) with the keyrings every
//!   `keyring_interval_secs`;
//! - the outbox driver ([`super::outbox::drain`]), woken by the tick and every 15 s;
//! - the ingester ([`super::ingest::run`]): IMAP IDLE or Maildir scans;
//! - the HTTP server ([`crate::publish::http`]) on the snapshot they all update.
//!
//! Every store step runs on the blocking pool, so the async workers always serve HTTP and
//! signals. SIGTERM or SIGINT stops everything between two steps; stopping or crashing
//! loses nothing.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use super::context::{Pinger, blocking, smtp_sender};
use super::notify::Notifier;
use super::report::{self, IntensiveCareSet};
use super::{ingest, outbox, schedule, state};
use crate::config::Config;
use crate::ingest::{Liveness, imap};
use crate::model::{Clock, SELF_CHECK_DEADLINE_SECS};
use crate::publish::{self, snapshot::HealthRules, snapshot::Published};
use crate::send::SmtpSender;

/// Runs the daemon until a termination signal arrives.
pub fn run(config: Config, clock: Arc<dyn Clock>) -> Result<()> {
    init_logging();
    let state_dir = config.pinger.state_dir.clone();
    state::use_private_umask();
    state::prepare(&state_dir)
        .map_err(|e| anyhow::anyhow!(state::explain_storage_error(&state_dir, &e)))?;
    let _lock = state::lock_for_daemon(&state_dir)
        .map_err(|e| anyhow::anyhow!(state::explain_storage_error(&state_dir, &e)))?;
    let smtp = smtp_sender(&config)?;
    let pinger = Arc::new(Pinger::open(config, clock)?);
    info!(
        database = %pinger.config.database_path().display(),
        listen = %pinger.config.http.listen.0,
        "fathometer started"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(main_loop(pinger, smtp));
    // Blocking steps end within a fraction of a second; none is waited for longer than this.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The HTTP connection limit: the configured one, kept below the open-file limit (raised to
/// its hard maximum first) with room for the database, the mailbox and SMTP.
fn http_limits(config: &Config) -> publish::http::ServeLimits {
    const RESERVED_FILES: u64 = 128;
    let files = raise_open_file_limit();
    let configured = config.http.max_connections.0 as u64;
    let fitting = files.saturating_sub(RESERVED_FILES).max(8);
    if configured > fitting {
        warn!(
            configured,
            open_file_limit = files,
            "[http] max_connections lowered to {fitting} to stay below the open-file limit"
        );
    }
    let header_read_timeout = Duration::from_secs(config.http.header_timeout_secs.0);
    publish::http::ServeLimits {
        max_connections: configured.min(fitting) as usize,
        header_read_timeout,
        // A request is small and every answer is a few hundred KiB at most: a connection
        // still open after this long is trickling on purpose.
        connection_lifetime: header_read_timeout * 6,
    }
}

/// Raises the soft open-file limit to the hard one; returns the soft limit in force.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit fill and read a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: under systemd the journal would store escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A second init (tests calling run twice in one process) is harmless: keep the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The thresholds of the health rule, from the configuration.
fn health_rules(config: &Config, started_at: i64) -> HealthRules {
    let build_every = config.stats.build_interval_secs.as_i64();
    let poll = config.mailbox.poll_secs.as_i64();
    let idle = if config.mailbox.imap.is_some() { imap::IDLE_REISSUE.as_secs() as i64 } else { 0 };
    let mailbox_configured = config.mailbox.imap.is_some() || config.mailbox.maildir.is_some();
    HealthRules {
        started_at,
        // Three missed builds in a row make the daemon unhealthy.
        stale_build_secs: 3 * build_every + 60,
        // The ingester must complete a round within three poll intervals, or, on IMAP, within
        // an IDLE period plus those.
        ingester_quiet_secs: mailbox_configured.then_some(idle + 3 * poll + 60),
    }
}

async fn main_loop(pinger: Arc<Pinger>, smtp: SmtpSender) -> Result<()> {
    let config = &pinger.config;
    let mut signal = Box::pin(shutdown_signal());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let started_at = pinger.now();
    // The runs of the daemon tell the pinger's own downtime from a remailer's.
    let p = pinger.clone();
    let run_id = blocking(move || p.store().start_run(started_at))
        .await?
        .context("recording the daemon's start")?;
    let published = Published { rules: health_rules(config, started_at), ..Published::default() };
    let (published_tx, published_rx) = watch::channel(published);
    let published_tx = Arc::new(published_tx);

    let listener = tokio::net::TcpListener::bind(config.http.listen.0)
        .await
        .with_context(|| format!("cannot listen on {} ([http] listen)", config.http.listen.0))?;
    info!(address = %listener.local_addr()?, "serving statistics over HTTP");
    let build_every = config.stats.build_interval_secs.as_i64();
    let keyrings_every = config.publish.keyring_interval_secs.as_i64();
    let rebuilds =
        publish::http::Rebuilds { lists_secs: build_every, keyrings_secs: keyrings_every };
    let app =
        publish::http::router(&config.results_dir(), published_rx, rebuilds, pinger.clock.clone());
    tokio::spawn(publish::http::serve(listener, app, http_limits(config), shutdown_rx.clone()));

    let notifier = Notifier::start(
        &config.events,
        smtp.clone(),
        config.pinger.address.clone(),
        config.pinger.name.clone(),
        pinger.clock.clone(),
    );
    let wake_sender = Arc::new(Notify::new());
    let sender_task =
        tokio::spawn(sender_loop(pinger.clone(), smtp, wake_sender.clone(), shutdown_rx.clone()));
    let observer = published_tx.clone();
    let liveness = Arc::new(Liveness::observed(pinger.clock.clone(), move |state| {
        let state = state.clone();
        observer.send_modify(|p| p.ingester = state);
    }));
    if config.mailbox.imap.is_none() && config.mailbox.maildir.is_none() {
        warn!("no [mailbox] configured: returns are not read");
    }
    let ingest_task = tokio::spawn(ingest::run(pinger.clone(), liveness, shutdown_rx.clone()));

    let mut ticker = tokio::time::interval(Duration::from_secs(config.schedule.tick_secs.0));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut intensive_care = Arc::new(IntensiveCareSet::new());
    let mut last_build: Option<i64> = None;
    let mut last_keyrings: Option<i64> = None;
    loop {
        tokio::select! {
            _ = &mut signal => {
                info!("termination signal received; stopping");
                break;
            }
            _ = ticker.tick() => {
                let now = pinger.now();
                let (p, ic) = (pinger.clone(), intensive_care.clone());
                let stepped = blocking(move || {
                    let tick = schedule::tick(&p, &ic, now);
                    let mut store = p.store();
                    if let Err(e) = store.run_alive(run_id, now) {
                        warn!("recording that the daemon is alive: {e}");
                    }
                    (tick, store.ping_counts(), store.mail_health(now, SELF_CHECK_DEADLINE_SECS))
                })
                .await;
                let (tick, counts, mail_health) = match stepped {
                    Ok(s) => s,
                    Err(e) => (Err(e), Ok(Default::default()), Ok(Default::default())),
                };
                if let Err(e) = &tick {
                    error!("scheduler tick failed: {e:#}");
                }
                wake_sender.notify_one();
                published_tx.send_modify(|p| {
                    p.problem = tick.as_ref().err().map(|e| format!("scheduler: {e:#}"));
                    if tick.is_ok() {
                        p.last_tick = Some(now);
                    }
                    if let Ok(c) = counts {
                        p.ping_counts = c;
                    }
                    if let Ok(h) = mail_health {
                        p.mail_health = h;
                    }
                });
                if last_build.is_none_or(|t| now - t >= build_every) {
                    let keyrings_due = last_keyrings.is_none_or(|t| now - t >= keyrings_every);
                    let p = pinger.clone();
                    let built = blocking(move || {
                        report::build_and_publish(&p.config, &p.store, now, keyrings_due)
                    })
                    .await
                    .and_then(|r| r);
                    match built {
                        Ok(built) => {
                            if keyrings_due {
                                last_keyrings = Some(now);
                            }
                            intensive_care = Arc::new(built.intensive_care);
                            if let Some(n) = &notifier {
                                n.notify(&built.new_events);
                            }
                            published_tx.send_modify(|p| {
                                p.report = Some(Arc::new(built.report));
                                p.events = Arc::new(built.recent_events);
                                p.event_counts = built.event_counts;
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
    let _ = shutdown_tx.send(true);
    let (p, now) = (pinger.clone(), pinger.now());
    match blocking(move || p.store().stop_run(run_id, now)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!("recording the daemon's stop: {e}"),
        Err(e) => warn!("recording the daemon's stop: {e:#}"),
    }
    // Both loops stop between two steps (one mail, one message); a send or IMAP wait in
    // progress is abandoned (its ping stays queued and is retried by the next run).
    let stop = async {
        let _ = sender_task.await;
        let _ = ingest_task.await;
    };
    if tokio::time::timeout(Duration::from_secs(3), stop).await.is_err() {
        warn!("sender or ingester did not stop within 3 s; leaving them");
    }
    info!("stopped");
    Ok(())
}

/// Drains the outbox whenever the tick queued something, and every 15 s (deferred messages
/// come due without a tick).
async fn sender_loop(
    pinger: Arc<Pinger>,
    smtp: SmtpSender,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            drained = outbox::drain(&pinger, &smtp) => {
                if let Err(e) = drained {
                    error!("sender: {e:#}");
                }
            }
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(15)) => {}
        }
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when
/// the future is first polled: a signal arriving while the first tick and build run must stop
/// the daemon cleanly, not kill it with the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
    async move {
        match handlers {
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
}
