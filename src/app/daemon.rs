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
use super::{environment, systemd};
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // A second init (tests calling run twice in one process) is harmless: keep the first.
    if stderr_is_the_journal() {
        // The journal stamps every line itself.
        let _ = builder.without_time().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// Whether stderr is the journal's stream: systemd sets `JOURNAL_STREAM=<dev>:<inode>` of
/// the socket it connects stderr to (a redirected stderr no longer matches).
fn stderr_is_the_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    // SAFETY: fstat fills a zeroed stat struct for descriptor 2, which stays open.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut stat) } != 0 {
        return false;
    }
    stat.st_dev as u64 == dev && stat.st_ino as u64 == ino
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

/// The HTTP server: its socket (kept across reloads unless the address changes) and the
/// accept loop serving it under the current limits.
struct HttpServer {
    listener: Arc<tokio::net::TcpListener>,
    /// `[http]` as the running loop has it, to see whether a reload changes it.
    settings: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    fn start(
        listener: Arc<tokio::net::TcpListener>,
        pinger: &Pinger,
        published: watch::Receiver<Published>,
    ) -> HttpServer {
        let config = &pinger.config;
        let app = publish::http::router(&config.results_dir(), published, pinger.clock.clone());
        let (stop, stopped) = watch::channel(false);
        let task =
            tokio::spawn(publish::http::serve(listener.clone(), app, http_limits(config), stopped));
        HttpServer { listener, settings: format!("{:?}", config.http), stop, task }
    }

    /// Stops accepting and waits until the accept loop has let go of its socket (closed,
    /// unless the next loop shares it); connections already accepted finish on their own.
    async fn stop(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(2), self.task).await.is_err() {
            warn!("the HTTP accept loop did not stop within 2 s");
        }
    }
}

async fn bind(config: &Config) -> Result<Arc<tokio::net::TcpListener>> {
    let listener = tokio::net::TcpListener::bind(config.http.listen.0)
        .await
        .with_context(|| format!("cannot listen on {} ([http] listen)", config.http.listen.0))?;
    info!(address = %listener.local_addr()?, "serving statistics over HTTP");
    Ok(Arc::new(listener))
}

/// The ingester task and its own stop switch: a reload that changes the mailbox or the
/// pinger's address restarts it between two mails.
struct Ingester {
    task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
    /// `[mailbox]` and `[pinger]` as it runs with them.
    settings: String,
}

impl Ingester {
    fn start(pinger: &Arc<Pinger>, published: &Arc<watch::Sender<Published>>) -> Ingester {
        let config = &pinger.config;
        let observer = published.clone();
        let liveness = Arc::new(Liveness::observed(pinger.clock.clone(), move |state| {
            let state = state.clone();
            observer.send_modify(|p| p.ingester = state);
        }));
        if config.mailbox.imap.is_none() && config.mailbox.maildir.is_none() {
            warn!("no [mailbox] configured: returns are not read");
        }
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(ingest::run(pinger.clone(), liveness, stopped));
        Ingester { task, stop, settings: ingester_settings(config) }
    }

    /// Stops it between two mails; a wait for the server is abandoned after 3 s.
    async fn stop(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(3), self.task).await.is_err() {
            warn!("the ingester did not stop within 3 s; leaving it");
        }
    }
}

/// What the ingester depends on (compared as text: the tables hold no secret, only paths).
fn ingester_settings(config: &Config) -> String {
    format!("{:?}{:?}", config.mailbox, config.pinger)
}

/// What `rebuilds` the published files follow, from the configuration.
fn rebuilds(config: &Config) -> publish::http::Rebuilds {
    publish::http::Rebuilds {
        lists_secs: config.stats.build_interval_secs.as_i64(),
        keyrings_secs: config.publish.keyring_interval_secs.as_i64(),
    }
}

/// A configuration that passed the checks `check-config` makes, with what it needs set up;
/// or every reason it cannot replace the running one.
struct Reloaded {
    config: Config,
    smtp: SmtpSender,
    /// A new socket when the listen address changed.
    listener: Option<Arc<tokio::net::TcpListener>>,
}

async fn reload(current: &Pinger) -> Result<Reloaded, Vec<String>> {
    let Some(path) = current.config.origin.as_ref().map(|o| o.path.clone()) else {
        return Err(vec!["the configuration was not read from a file".into()]);
    };
    let checked = blocking(move || environment::load_checked(&path)).await;
    let config = match checked {
        Ok(Ok(config)) => config,
        Ok(Err(problems)) => return Err(problems.iter().map(ToString::to_string).collect()),
        Err(e) => return Err(vec![format!("{e:#}")]),
    };
    if config.pinger.state_dir != current.config.pinger.state_dir {
        let origin = config.origin.as_ref().expect("loaded from a file");
        let line = crate::config::find_key_line(&origin.text, "pinger", "state_dir")
            .map_or_else(String::new, |l| format!(":{l}"));
        return Err(vec![format!(
            "{}{line}: key `pinger.state_dir`: a new state directory takes a restart \
             (the database stays open under the old one)",
            origin.path.display()
        )]);
    }
    let smtp = smtp_sender(&config).map_err(|e| vec![format!("{e:#}")])?;
    let listener = if config.http.listen.0 != current.config.http.listen.0 {
        Some(bind(&config).await.map_err(|e| vec![format!("{e:#}")])?)
    } else {
        None
    };
    Ok(Reloaded { config, smtp, listener })
}

async fn main_loop(mut pinger: Arc<Pinger>, smtp: SmtpSender) -> Result<()> {
    let mut signal = Box::pin(shutdown_signal());
    let mut hangup = hangup_signal();
    let started_at = pinger.now();
    // The runs of the daemon tell the pinger's own downtime from a remailer's.
    let p = pinger.clone();
    let run_id = blocking(move || p.store().start_run(started_at))
        .await?
        .context("recording the daemon's start")?;
    let published = Published {
        rules: health_rules(&pinger.config, started_at),
        rebuilds: rebuilds(&pinger.config),
        ..Published::default()
    };
    let (published_tx, published_rx) = watch::channel(published);
    let published_tx = Arc::new(published_tx);

    let mut http = HttpServer::start(bind(&pinger.config).await?, &pinger, published_rx.clone());

    let mut notifier = Notifier::start(
        &pinger.config.events,
        smtp.clone(),
        pinger.config.pinger.address.clone(),
        pinger.config.pinger.name.clone(),
        pinger.clock.clone(),
    );
    // The sender always works with the latest pinger and MTA: a reload swaps them between
    // two drains, never in the middle of one.
    let (sender_setup, sender_setup_rx) = watch::channel((pinger.clone(), smtp));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let wake_sender = Arc::new(Notify::new());
    let sender_task =
        tokio::spawn(sender_loop(sender_setup_rx, wake_sender.clone(), shutdown_rx.clone()));
    let mut ingester = Ingester::start(&pinger, &published_tx);
    let consensus_task = tokio::spawn(super::consensus::run(
        sender_setup.subscribe(),
        published_tx.clone(),
        shutdown_rx.clone(),
    ));

    let new_ticker = |config: &Config| {
        let mut ticker = tokio::time::interval(Duration::from_secs(config.schedule.tick_secs.0));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    };
    let mut ticker = new_ticker(&pinger.config);
    let mut watchdog = systemd::watchdog_interval().map(tokio::time::interval);
    let mut intensive_care = Arc::new(IntensiveCareSet::new());
    let mut last_build: Option<i64> = None;
    let mut last_keyrings: Option<i64> = None;
    let mut remailers: Option<usize> = None;
    let mut build_now = false;
    let mut queued = 0;
    systemd::ready(&systemd::status_line(None, None, 0, started_at));
    loop {
        let config = pinger.config.clone();
        let build_every = config.stats.build_interval_secs.as_i64();
        let keyrings_every = config.publish.keyring_interval_secs.as_i64();
        tokio::select! {
            _ = &mut signal => {
                info!("termination signal received; stopping");
                systemd::stopping();
                break;
            }
            _ = async {
                match watchdog.as_mut() {
                    Some(w) => w.tick().await,
                    None => std::future::pending().await,
                }
            } => systemd::watchdog(),
            _ = hangup.recv() => {
                systemd::reloading();
                info!("SIGHUP: reloading the configuration");
                match reload(&pinger).await {
                    Err(problems) => {
                        for problem in &problems {
                            error!("reload refused, the running configuration stays: {problem}");
                        }
                        systemd::ready(&format!(
                            "reload refused ({}); {}",
                            problems.first().map_or("", String::as_str),
                            systemd::status_line(remailers, last_build, queued, pinger.now())
                        ));
                    }
                    Ok(reloaded) => {
                        let old = pinger.clone();
                        pinger = Arc::new(old.reconfigured(reloaded.config));
                        let config = &pinger.config;
                        if reloaded.listener.is_some() || http.settings != format!("{:?}", config.http) {
                            let listener = reloaded.listener.unwrap_or_else(|| http.listener.clone());
                            // The old address is closed before READY says the reload is done.
                            let new = HttpServer::start(listener, &pinger, published_rx.clone());
                            std::mem::replace(&mut http, new).stop().await;
                        }
                        published_tx.send_modify(|p| {
                            p.rules = health_rules(config, started_at);
                            p.rebuilds = rebuilds(config);
                        });
                        if ingester.settings != ingester_settings(config) {
                            ingester.stop().await;
                            ingester = Ingester::start(&pinger, &published_tx);
                        }
                        notifier = Notifier::start(
                            &config.events,
                            reloaded.smtp.clone(),
                            config.pinger.address.clone(),
                            config.pinger.name.clone(),
                            pinger.clock.clone(),
                        );
                        let _ = sender_setup.send((pinger.clone(), reloaded.smtp));
                        if config.schedule.tick_secs.0 != old.config.schedule.tick_secs.0 {
                            ticker = new_ticker(config);
                        }
                        // A changed model or build interval shows at once, not a period later.
                        build_now = true;
                        wake_sender.notify_one();
                        info!(listen = %config.http.listen.0, "configuration reloaded");
                        systemd::ready(&systemd::status_line(remailers, last_build, queued, pinger.now()));
                    }
                }
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
                if let Ok(c) = &counts {
                    queued = c.queued;
                }
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
                if build_now || last_build.is_none_or(|t| now - t >= build_every) {
                    build_now = false;
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
                            remailers = Some(count_remailers(&built.report));
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
                systemd::status(&systemd::status_line(remailers, last_build, queued, now));
            }
        }
    }
    let _ = shutdown_tx.send(true);
    http.stop().await;
    let (p, now) = (pinger.clone(), pinger.now());
    match blocking(move || p.store().stop_run(run_id, now)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!("recording the daemon's stop: {e}"),
        Err(e) => warn!("recording the daemon's stop: {e:#}"),
    }
    // Both loops stop between two steps (one mail, one message); a send or IMAP wait in
    // progress is abandoned (its ping stays queued and is retried by the next run).
    let stop = async {
        let _ = consensus_task.await;
        let _ = sender_task.await;
        ingester.stop().await;
    };
    if tokio::time::timeout(Duration::from_secs(4), stop).await.is_err() {
        warn!("sender or ingester did not stop within 4 s; leaving them");
    }
    info!("stopped");
    Ok(())
}

/// Remailers in the latest build, over both families.
fn count_remailers(report: &crate::stats::Report) -> usize {
    let addresses: std::collections::BTreeSet<&str> =
        report.mix.iter().chain(&report.cpunk).map(|e| e.address.as_str()).collect();
    addresses.len()
}

/// Drains the outbox whenever the tick queued something, and every 15 s (deferred messages
/// come due without a tick).
async fn sender_loop(
    setup: watch::Receiver<(Arc<Pinger>, SmtpSender)>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let (pinger, smtp) = setup.borrow().clone();
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

/// SIGHUP, as a stream: `systemctl reload` (ExecReload=kill -HUP) and operators send it.
/// Without a handler (it cannot fail on Linux in practice) reloads are never seen.
fn hangup_signal() -> HangupSignal {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(s) => HangupSignal(Some(s)),
        Err(e) => {
            warn!("cannot install the SIGHUP handler ({e}); reloads need a restart");
            HangupSignal(None)
        }
    }
}

struct HangupSignal(Option<tokio::signal::unix::Signal>);

impl HangupSignal {
    async fn recv(&mut self) {
        match self.0.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
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
