//! `fathometer run`: the long-running pinger.
//!
//! Four activities share one store (each step is one transaction, taken under a mutex that is
//! never held across network I/O):
//! - the tick: the [`scheduler`] queues pings and information requests whose slots fell due,
//!   candidates vouched for by enough remailers become remailers, a self-check is created
//!   every `self_check_secs`, and every statistics interval the lists are rebuilt and
//!   published;
//! - the [`sender`] drains the outbox (pings, self-checks, requests) to the MTA;
//! - the [`ingest`]er reads the mailbox (Maildir scan or IMAP IDLE);
//! - the HTTP server publishes the results.
//!
//! SIGTERM or SIGINT stops all of them between two steps; stopping or crashing loses nothing.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use crate::cli::{same_operator_text, stats_options, unix_now};
use crate::config::{Config, ImapConfig, TlsMode};
use crate::ingest::{self, IngestContext, imap, maildir::Maildir};
use crate::model::{ChainType, DueRequest, RequestKind, SELF_CHECK_DEADLINE_SECS};
use crate::publisher::{self, http::Published};
use crate::scheduler::{self, plan};
use crate::secret::{self, Secret};
use crate::sender::{self, Identity, SmtpSender};
use crate::store::{Store, StoreError};
use crate::{payload, state};

const LAST_TICK: &str = "scheduler.last_tick";

/// Chains pinged daily because they are broken or under-sampled: (addr1, addr2, family).
pub type IntensiveCareSet = HashSet<(String, String, ChainType)>;

/// What every task of the daemon shares.
struct Daemon {
    config: Config,
    secret: Secret,
    identity: Identity,
    store: Mutex<Store>,
    smtp: SmtpSender,
    /// Wakes the sender when the tick queued something.
    outbox: Notify,
}

impl Daemon {
    fn store(&self) -> MutexGuard<'_, Store> {
        // Every store change is a transaction: a panic elsewhere cannot leave it half done.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The identity mail is sent and recognised under.
pub fn identity(config: &Config) -> Identity {
    Identity {
        address: config.pinger.address.clone(),
        delimiter: config.pinger.recipient_delimiter.clone(),
        name: config.pinger.name.clone(),
    }
}

/// The first line of a password file.
pub fn read_password(path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the password file {}", path.display()))?;
    Ok(text.lines().next().unwrap_or("").to_owned())
}

/// The configured SMTP transport, with its password read.
pub fn smtp_sender(config: &Config) -> Result<SmtpSender> {
    let password = match &config.smtp.password_file {
        Some(p) => Some(read_password(p)?),
        None => None,
    };
    SmtpSender::new(&config.smtp, password).context("setting up SMTP ([smtp])")
}

/// IMAP settings from the config, with the password read.
pub fn imap_settings(imap: &ImapConfig) -> Result<imap::ImapSettings> {
    let mut settings = imap::ImapSettings::new(
        imap.host.clone(),
        imap.port.0,
        imap.user.clone(),
        read_password(&imap.password_file)?,
    );
    settings.tls = match imap.tls {
        TlsMode::None => imap::ImapTls::None,
        TlsMode::Starttls => imap::ImapTls::Starttls,
        TlsMode::Tls => imap::ImapTls::Tls,
    };
    settings.folder = imap.folder.clone();
    Ok(settings)
}

/// Runs the daemon until a termination signal arrives.
pub fn run(config: Config) -> Result<()> {
    init_logging();
    let state_dir = config.pinger.state_dir.clone();
    let storage = |e: &dyn std::fmt::Display| state::explain_storage_error(&state_dir, e);
    state::use_private_umask();
    state::prepare(&state_dir).map_err(|e| anyhow::anyhow!(storage(&e)))?;
    let _lock = state::lock_for_daemon(&state_dir).map_err(|e| anyhow::anyhow!(storage(&e)))?;
    let secret =
        secret::load_or_create(&config.secret_path()).map_err(|e| anyhow::anyhow!(storage(&e)))?;
    let db = config.database_path();
    let store = Store::open(&db)
        .map_err(|e| anyhow::anyhow!("opening {}: {}", db.display(), storage(&e)))?;
    let smtp = smtp_sender(&config)?;
    info!(database = %db.display(), listen = %config.http.listen.0, "fathometer started");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let daemon = Arc::new(Daemon {
        identity: identity(&config),
        config,
        secret,
        store: Mutex::new(store),
        smtp,
        outbox: Notify::new(),
    });
    let result = runtime.block_on(main_loop(daemon));
    // Blocking steps check for shutdown between mails and end within a fraction of a second;
    // none is waited for longer than this.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Runs `f` on the blocking thread pool: store access, decryption, statistics and file
/// writing never occupy the async workers, which keep serving HTTP and signals.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("a background step failed: {e}"))
}

/// The HTTP connection limit: the configured one, kept below the open-file limit (raised to
/// its hard maximum first) with room for the database, the mailbox and SMTP.
fn http_limits(config: &Config) -> publisher::http::ServeLimits {
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
    publisher::http::ServeLimits {
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

async fn main_loop(daemon: Arc<Daemon>) -> Result<()> {
    let config = &daemon.config;
    let mut signal = Box::pin(shutdown_signal());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let tick_every = Duration::from_secs(config.schedule.tick_secs.0);
    let build_every = config.stats.build_interval_secs.as_i64();
    let started_at = unix_now();
    let mailbox_configured = config.mailbox.imap.is_some() || config.mailbox.maildir.is_some();
    let poll = config.mailbox.poll_secs.as_i64();
    let idle = if config.mailbox.imap.is_some() { imap::IDLE_REISSUE.as_secs() as i64 } else { 0 };
    let (published_tx, published_rx) = watch::channel(Published {
        rules: publisher::http::HealthRules {
            started_at,
            // Three missed builds in a row make the daemon unhealthy.
            stale_build_secs: 3 * build_every + 60,
            // The ingester must complete a round within three poll intervals, or, on IMAP,
            // within an IDLE period plus those.
            ingester_quiet_secs: mailbox_configured.then_some(idle + 3 * poll + 60),
        },
        ..Published::default()
    });
    let published_tx = Arc::new(published_tx);
    let listener = tokio::net::TcpListener::bind(config.http.listen.0)
        .await
        .with_context(|| format!("cannot listen on {} ([http] listen)", config.http.listen.0))?;
    info!(address = %listener.local_addr()?, "serving statistics over HTTP");
    let rebuilds = publisher::http::Rebuilds {
        lists_secs: build_every,
        keyrings_secs: config.publish.keyring_interval_secs.as_i64(),
    };
    let app = publisher::http::router(&config.results_dir(), published_rx, rebuilds);
    tokio::spawn(publisher::http::serve(listener, app, http_limits(config), shutdown_rx.clone()));
    let sender_task = tokio::spawn(sender_loop(daemon.clone(), shutdown_rx.clone()));
    let observer = published_tx.clone();
    let ingester = Arc::new(ingest::Liveness::observed(move |state| {
        let state = state.clone();
        observer.send_modify(|p| p.ingester = state);
    }));
    if !mailbox_configured {
        warn!("no [mailbox] configured: returns are not read");
    }
    let ingest_task = tokio::spawn(ingest_loop(daemon.clone(), ingester, shutdown_rx.clone()));
    let mut ticker = tokio::time::interval(tick_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut intensive_care = Arc::new(IntensiveCareSet::new());
    let mut last_build: Option<i64> = None;
    let mut last_keyrings: Option<i64> = None;
    let keyrings_every = config.publish.keyring_interval_secs.as_i64();
    loop {
        tokio::select! {
            _ = &mut signal => {
                info!("termination signal received; stopping");
                break;
            }
            _ = ticker.tick() => {
                let now = unix_now();
                let d = daemon.clone();
                let ic = intensive_care.clone();
                let stepped = blocking(move || {
                    let tick = tick(&d, &ic, now);
                    let store = d.store();
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
                daemon.outbox.notify_one();
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
                    let d = daemon.clone();
                    let built = blocking(move || {
                        build_and_publish(&d.config, &d.store, now, keyrings_due)
                    })
                    .await
                    .and_then(|r| r);
                    match built {
                        Ok((report, ic)) => {
                            if keyrings_due {
                                last_keyrings = Some(now);
                            }
                            intensive_care = Arc::new(ic);
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
    let _ = shutdown_tx.send(true);
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

/// One scheduler tick: queue due pings, start a self-check when one is due, forget the raw
/// bytes of quarantined mail older than the retention.
fn tick(daemon: &Daemon, intensive_care: &IntensiveCareSet, now: i64) -> Result<()> {
    let state_dir = &daemon.config.pinger.state_dir;
    let mut store = daemon.store();
    let step = |r: Result<(), StoreError>| {
        r.map_err(|e| anyhow::anyhow!(state::explain_storage_error(state_dir, &e)))
    };
    step(schedule_tick(&daemon.config, &daemon.secret, &mut store, intensive_care, now))?;
    let every = daemon.config.schedule.self_check_secs.as_i64();
    step((|| {
        if store.last_self_check_created()?.is_none_or(|t| now - t >= every) {
            let tag = payload::new_tag(&mut rand::rngs::OsRng);
            store.create_self_check(&tag, now)?;
        }
        report_failed_self_checks(&store, now)?;
        let retention = i64::from(daemon.config.mailbox.quarantine_days.0) * 86_400;
        let pruned = store.prune_raw_mail(now - retention)?;
        if pruned > 0 {
            info!(mails = pruned, "raw copies past the quarantine retention removed");
        }
        Ok(())
    })())
}

/// Logs, once, each self-check whose deadline just passed without its return: the pinger's
/// own fault, and why the statistics leave that window out.
fn report_failed_self_checks(store: &Store, now: i64) -> Result<(), StoreError> {
    for check in store.self_checks_since(now - SELF_CHECK_DEADLINE_SECS - 3600)? {
        let Some(sent) = check.sent_at else { continue };
        let due = sent + SELF_CHECK_DEADLINE_SECS;
        let late = check.returned_at.is_none_or(|r| r > due);
        // Report in the tick right after the deadline only.
        if late && due < now && now - due <= 60 {
            error!(
                sent,
                "our own control mail did not come back within {} minutes: the pinger's mail \
                 path failed; pings sent around then are excluded from every remailer's \
                 statistics",
                SELF_CHECK_DEADLINE_SECS / 60
            );
        }
    }
    Ok(())
}

async fn sender_loop(daemon: Arc<Daemon>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let d = &daemon;
        if let Err(e) =
            sender::drain_outbox(&d.store, &d.smtp, d.secret.as_bytes(), &d.identity).await
        {
            error!("sender: {e}");
        }
        let limit = d.config.discovery.unanswered_limit.0;
        let operator = d.config.pinger.operator_address.as_ref().map(|a| a.as_str());
        if let Err(e) =
            sender::drain_requests(&d.store, &d.smtp, &d.identity, operator, limit).await
        {
            error!("sender (requests): {e}");
        }
        if let Err(e) = sender::send_self_checks(
            &d.store,
            &d.smtp,
            d.secret.as_bytes(),
            &d.identity,
            SELF_CHECK_DEADLINE_SECS,
        )
        .await
        {
            error!("self-check: {e}");
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = daemon.outbox.notified() => {}
            // Deferred pings come due without a tick.
            _ = tokio::time::sleep(Duration::from_secs(15)) => {}
        }
    }
}

async fn ingest_loop(
    daemon: Arc<Daemon>,
    liveness: Arc<ingest::Liveness>,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = &daemon.config;
    let poll = Duration::from_secs(config.mailbox.poll_secs.0);
    if let Some(imap_config) = &config.mailbox.imap {
        let settings = match imap_settings(imap_config) {
            Ok(s) => imap::ImapSettings { poll_interval: poll, liveness, ..s },
            Err(e) => {
                liveness.round_failed(unix_now(), format!("IMAP settings: {e:#}"));
                error!("IMAP ingestion disabled: {e:#}");
                return;
            }
        };
        let d = daemon.clone();
        imap::run(
            settings,
            move |mail| {
                let d = d.clone();
                async move {
                    let raw = ingest::RawMail {
                        source: format!("imap:{}:{}", mail.uid_validity, mail.uid),
                        bytes: mail.raw,
                        size: mail.size,
                        delivered_at: mail.internal_date,
                    };
                    let processed = blocking(move || {
                        let ctx =
                            IngestContext { secret: d.secret.as_bytes(), identity: &d.identity };
                        let processed = ingest::process(&d.store, &ctx, &raw, unix_now());
                        if let Ok(p) = &processed {
                            ingest::log_processed(&raw.source, p);
                        }
                        processed.map_err(|e| {
                            state::explain_storage_error(&d.config.pinger.state_dir, &e)
                        })
                    })
                    .await
                    .map_err(|e| e.to_string())??;
                    Ok::<_, String>(match processed.disposition {
                        ingest::Disposition::Processed => imap::Disposition::Processed,
                        ingest::Disposition::Quarantined => imap::Disposition::Quarantined,
                    })
                }
            },
            shutdown,
        )
        .await;
        return;
    }
    let Some(path) = &config.mailbox.maildir else {
        return;
    };
    let maildir = match Maildir::open(path) {
        Ok(m) => m,
        Err(e) => {
            liveness.round_failed(unix_now(), format!("cannot open the Maildir: {e}"));
            error!("cannot open the Maildir {}: {e}; returns are not read", path.display());
            return;
        }
    };
    // Set on shutdown: a round stops between two mails.
    let stop = Arc::new(AtomicBool::new(false));
    loop {
        let d = daemon.clone();
        let md = maildir.clone();
        let stopping = stop.clone();
        let round = blocking(move || {
            let ctx = IngestContext { secret: d.secret.as_bytes(), identity: &d.identity };
            ingest::ingest_maildir(&d.store, &ctx, &md, &stopping).map_err(|e| {
                anyhow::anyhow!(state::explain_storage_error(&d.config.pinger.state_dir, &e))
            })
        });
        tokio::pin!(round);
        let result = tokio::select! {
            r = &mut round => r.and_then(|r| r),
            _ = shutdown.changed() => {
                stop.store(true, Ordering::Relaxed);
                let _ = round.await;
                return;
            }
        };
        match result {
            Ok(_) => liveness.round_completed(unix_now()),
            Err(e) => {
                liveness.round_failed(unix_now(), format!("Maildir: {e:#}"));
                error!("ingest: {e:#}");
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(poll) => {}
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

/// Queues the pings whose slots fell due since the last tick.
fn schedule_tick(
    config: &Config,
    secret: &Secret,
    store: &mut Store,
    intensive_care: &IntensiveCareSet,
    now: i64,
) -> Result<(), StoreError> {
    let last_tick = store.state(LAST_TICK)?.and_then(|v| v.parse::<i64>().ok());
    let window = scheduler::due_window(last_tick, now, config.schedule.max_lateness_secs.as_i64());
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
    if singles + chains > 0 {
        info!(single = singles, chain = chains, "pings queued");
    }
    if config.discovery.requests {
        let mut queued = 0;
        for request in plan::due_requests(secret.as_bytes(), &store.remailers()?, &window) {
            let tag = payload::new_tag(&mut rand::rngs::OsRng);
            queued += usize::from(store.queue_request(&request, false, &tag, now)?);
        }
        if queued > 0 {
            info!(requests = queued, "information requests queued");
        }
    }
    if config.discovery.auto_add_min.0 > 0 {
        let ttl = i64::from(config.discovery.candidate_days.0) * 86_400;
        for address in store.commit_candidates(now, ttl, config.discovery.auto_add_min.0)? {
            info!(%address, "new remailer: vouched for by other remailers' replies");
            if config.discovery.requests {
                ask_at_once(store, &address, now)?;
            }
        }
    }
    store.set_state(LAST_TICK, &now.to_string())?;
    Ok(())
}

/// Queues every information request to `address` for sending now (after `fathometer add`
/// or a discovery), outside the daily schedule.
pub fn ask_at_once(store: &mut Store, address: &str, now: i64) -> Result<(), StoreError> {
    let remailer = store.find_remailer(address)?;
    for kind in RequestKind::ALL {
        let tag = payload::new_tag(&mut rand::rngs::OsRng);
        let due = DueRequest { remailer_id: remailer.id, kind, slot_time: now };
        store.queue_request(&due, true, &tag, now)?;
    }
    Ok(())
}

/// Rebuilds the statistics, publishes the lists (and the keyrings when `keyrings` is set),
/// and returns the report with the chains to ping daily.
///
/// The store is locked only while the inputs are read, in one go; the statistics, the
/// rendering and the file writes run without it.
pub fn build_and_publish(
    config: &Config,
    store: &Mutex<Store>,
    now: i64,
    keyrings: bool,
) -> Result<(crate::stats::Report, IntensiveCareSet)> {
    let options = stats_options(Some(config), None)?;
    let same_operator = same_operator_text(config)?;
    let (dataset, remailers, replies, from_lines, keys) = {
        let store = store.lock().unwrap_or_else(|p| p.into_inner());
        let since = now - (crate::model::STATS_DAYS as i64 + 1) * crate::model::SECONDS_PER_DAY;
        (
            crate::stats::window::dataset(store.history(since, now)?, now),
            store.remailers()?,
            store.all_replies()?,
            store.from_lines()?,
            if keyrings { Some(store.publishable_keys(now)?) } else { None },
        )
    };
    let report = crate::stats::compute(&dataset, now, &options);
    // `.meta` files say when a client should fetch again: at the next rebuild.
    let meta_after = |interval: u64| config.publish.meta_files.then(|| now + interval as i64);
    let list_options = publisher::ListOptions {
        same_operator: same_operator.as_deref(),
        combined_list: config.publish.combined_list,
        meta_expires: meta_after(config.stats.build_interval_secs.0),
    };
    let lists = publisher::write_lists(
        &report,
        &config.results_dir(),
        &config.private_results_dir(),
        &list_options,
    )
    .context("writing the lists")?;
    let inputs = publisher::pages::PageInputs {
        report: &report,
        remailers: &remailers,
        replies: &replies,
        from_lines: &from_lines,
        site_name: &config.pinger.name,
        operator: config.pinger.operator_address.as_ref().map(|a| a.as_str()),
    };
    publisher::write_pages(
        &inputs,
        &lists,
        &config.results_dir(),
        &config.private_results_dir(),
        list_options.meta_expires,
    )
    .context("writing the HTML pages")?;
    if let Some(keys) = keys {
        publisher::write_keyrings(
            &report,
            &keys,
            &config.results_dir(),
            &config.private_results_dir(),
            meta_after(config.publish.keyring_interval_secs.0),
        )
        .context("writing the keyrings")?;
    }
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
