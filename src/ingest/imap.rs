//! IMAP mail source of the ingester.
//!
//! Ping replies arrive in an IMAP mailbox. [`run`] is the long-running task the daemon spawns:
//! it fetches every unseen message, hands it to the ingester's handler, and only after the
//! handler has committed its result marks the message `\Seen` (or moves it to a quarantine
//! folder). Between rounds it waits with IMAP IDLE (RFC 2177) when the server offers it, or
//! polls. Connection failures are logged and retried with exponential backoff; the task ends
//! only on shutdown.
//!
//! Delivery guarantee: at least once. A message is marked only after the handler returned
//! `Ok`, so a crash, a lost connection or a handler error between fetch and settle means the
//! message is handed out again later. The handler must therefore be idempotent (for example
//! keyed on the payload it extracts), which it has to be anyway.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_imap::imap_proto::{Response, Status};
use async_imap::types::{Fetch, UnsolicitedResponse};
use futures::TryStreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_native_tls::native_tls;

/// At most this many messages are fetched per round, to bound memory use: ping replies are
/// small, but a mailbox can also collect large junk. The rest comes in the next round.
pub const FETCH_BATCH: usize = 200;

/// At most this many bytes of message bodies are fetched per round (at least one message).
/// A message larger than [`MAX_MAIL_BYTES`](super::MAX_MAIL_BYTES) is fetched only up to
/// that limit (a partial `BODY.PEEK[]<0.n>`), so no mail costs more memory than that.
pub const FETCH_BYTES: u64 = 16 << 20;

/// RFC 2177 asks clients to re-issue IDLE at least every 29 minutes; we stay well below.
pub const IDLE_REISSUE: Duration = Duration::from_secs(25 * 60);

/// Every single IMAP command (and the connect/TLS/greeting steps) must finish within this
/// time. Without it a silently dead connection (no RST, e.g. after a NAT timeout) would hang
/// the ingester forever.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Reconnect backoff: starts here and doubles on every failed attempt...
const BACKOFF_START: Duration = Duration::from_secs(1);
/// ...up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);

/// How the connection to the IMAP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImapTls {
    /// Plain TCP (port 143). Only sensible on loopback or inside a trusted network.
    None,
    /// Plain TCP, then `STARTTLS` before login (port 143). Refused by the server = error; we
    /// never fall back to plain text.
    Starttls,
    /// TLS from the first byte (port 993).
    Tls,
}

/// Where and how to read mail.
#[derive(Clone)]
pub struct ImapSettings {
    pub host: String,
    pub port: u16,
    pub tls: ImapTls,
    pub user: String,
    /// Never logged: `Debug` prints it redacted.
    pub password: String,
    /// The folder ping replies arrive in, normally `INBOX`.
    pub folder: String,
    /// Where messages the handler rejects are moved; created on first use if missing.
    pub quarantine_folder: String,
    /// Polling period when IDLE is not used, and the retry delay after a handler error.
    pub poll_interval: Duration,
    /// Use IDLE when the server advertises it. `false` forces polling every `poll_interval`
    /// (for servers whose IDLE is broken, e.g. behind some proxies).
    pub use_idle: bool,
    /// Where [`run`] reports each completed and failed round (for `/healthz`).
    pub liveness: std::sync::Arc<super::Liveness>,
    /// PEM certificates trusted instead of the system's store (`ca_file`); `None`: the
    /// system's store.
    pub ca_certificates: Option<Vec<Vec<u8>>>,
}

impl ImapSettings {
    /// Settings with the defaults: plain TCP, folder `INBOX`, quarantine folder `Quarantine`,
    /// IDLE when available, polling every 60 s otherwise.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        ImapSettings {
            host: host.into(),
            port,
            tls: ImapTls::None,
            user: user.into(),
            password: password.into(),
            folder: "INBOX".to_owned(),
            quarantine_folder: "Quarantine".to_owned(),
            poll_interval: Duration::from_secs(60),
            use_idle: true,
            liveness: Default::default(),
            ca_certificates: None,
        }
    }

    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Debug for ImapSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("folder", &self.folder)
            .field("quarantine_folder", &self.quarantine_folder)
            .field("poll_interval", &self.poll_interval)
            .field("use_idle", &self.use_idle)
            .field("liveness", &self.liveness)
            .finish()
    }
}

pub use super::Disposition;

/// One message as fetched from the server.
#[derive(Clone, Debug)]
pub struct FetchedMail {
    /// UID in the selected folder; pass it back to [`ImapMailbox::settle`].
    pub uid: u32,
    /// The folder's UIDVALIDITY: (uid_validity, uid) names the message for good.
    pub uid_validity: u32,
    /// The message as stored (RFC 5322, CRLF line ends): all of it, or, for a message larger
    /// than [`MAX_MAIL_BYTES`](super::MAX_MAIL_BYTES), only its first bytes.
    pub raw: Vec<u8>,
    /// RFC822.SIZE: the whole message's size as the server stores it.
    pub size: Option<u64>,
    /// INTERNALDATE as unix seconds: when the server received the message, i.e. the delivery
    /// time used for latency. `None` if the server sent none or an unparsable one.
    pub internal_date: Option<i64>,
}

/// Everything that can go wrong; each variant names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot connect to IMAP server {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS with IMAP server {addr} failed: {}{source}", untrusted_hint(.source))]
    Tls {
        addr: String,
        #[source]
        source: native_tls::Error,
    },
    #[error("IMAP server {addr} sent no usable greeting: {detail}")]
    Greeting { addr: String, detail: String },
    #[error("STARTTLS with IMAP server {addr} failed: {}", brief(.source))]
    Starttls {
        addr: String,
        #[source]
        source: async_imap::error::Error,
    },
    #[error("IMAP login as `{user}` failed: {}", brief(.source))]
    Login {
        user: String,
        #[source]
        source: async_imap::error::Error,
    },
    #[error("cannot select IMAP folder `{folder}`: {}", brief(.source))]
    Select {
        folder: String,
        #[source]
        source: async_imap::error::Error,
    },
    #[error("IMAP {command} failed: {}", brief(.source))]
    Command {
        command: &'static str,
        #[source]
        source: async_imap::error::Error,
    },
    #[error("IMAP {command} got no answer within {} s", COMMAND_TIMEOUT.as_secs())]
    Timeout { command: &'static str },
    #[error("IMAP connection was lost by an earlier error; reconnect")]
    Disconnected,
    #[error("IMAP protocol problem: {0}")]
    Protocol(String),
}

impl ImapError {
    fn command(command: &'static str) -> impl FnOnce(async_imap::error::Error) -> ImapError {
        move |source| ImapError::Command { command, source }
    }
}

/// async-imap renders a server's NO/BAD as the Debug form of the parsed response
/// (`code: None, info: Some("...")`); shorten that to the server's own words for log lines.
fn brief(e: &async_imap::error::Error) -> String {
    let (verdict, detail) = match e {
        async_imap::error::Error::No(d) => ("NO", d),
        async_imap::error::Error::Bad(d) => ("BAD", d),
        other => return other.to_string(),
    };
    let text = detail
        .rfind("Some(\"")
        .and_then(|start| {
            let rest = &detail[start + 6..];
            rest.rfind("\")").map(|end| rest[..end].replace("\\\"", "\"").replace("\\\\", "\\"))
        })
        .unwrap_or_else(|| detail.clone());
    format!("server said {verdict}: {text}")
}

/// Runs `fut` under [`COMMAND_TIMEOUT`].
async fn timed<T>(
    command: &'static str,
    fut: impl Future<Output = Result<T, ImapError>>,
) -> Result<T, ImapError> {
    timeout(COMMAND_TIMEOUT, fut).await.map_err(|_| ImapError::Timeout { command })?
}

/// One IMAP command on the session of an [`ImapMailbox`], as a future: `$body` (which may use
/// `?` on `async_imap` errors) runs with `$s: &mut Session` under [`COMMAND_TIMEOUT`], and any
/// failure drops the session (see [`ImapMailbox::check`]). A macro rather than a method taking
/// an async closure, because the latter makes [`run`]'s future fail the `Send` check that
/// `tokio::spawn` needs (higher-ranked lifetime limitation of the compiler).
macro_rules! step {
    ($self:ident, $command:expr, |$s:ident| $body:expr) => {
        async {
            let $s = $self.session.as_mut().ok_or(ImapError::Disconnected)?;
            let outcome = timeout(COMMAND_TIMEOUT, async { $body }).await;
            $self.check($command, outcome)
        }
    };
}

/// The byte stream under the IMAP session: plain TCP or TLS over TCP, boxed so that one
/// session type serves all three [`ImapTls`] modes.
trait Transport: AsyncRead + AsyncWrite + Unpin + Send + Sync + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + fmt::Debug> Transport for T {}

type Session = async_imap::Session<Box<dyn Transport>>;

/// Which optional IMAP extensions are used. Read from the server's CAPABILITY after login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extensions {
    /// RFC 2177 IDLE.
    pub idle: bool,
    /// RFC 6851 MOVE.
    pub move_: bool,
    /// RFC 4315 UIDPLUS (for UID EXPUNGE).
    pub uidplus: bool,
}

/// A logged-in IMAP session with the mail folder selected.
///
/// If a command fails other than by a server's NO/BAD (I/O error, timeout, or any error
/// during IDLE, which takes the session apart), the session is dropped and every later call returns [`ImapError::Disconnected`]: the
/// caller then drops this value and connects anew.
pub struct ImapMailbox {
    session: Option<Session>,
    settings: ImapSettings,
    uid_validity: u32,
    extensions: Extensions,
    quarantine_ready: bool,
}

impl fmt::Debug for ImapMailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapMailbox")
            .field("connected", &self.session.is_some())
            .field("settings", &self.settings)
            .field("uid_validity", &self.uid_validity)
            .field("extensions", &self.extensions)
            .finish()
    }
}

impl ImapMailbox {
    /// Connects (plain TCP, STARTTLS, or implicit TLS via tokio-native-tls with the system's
    /// trust roots), LOGINs, SELECTs the folder. Errors name what failed
    /// (connect/TLS/greeting/STARTTLS/login/select).
    pub async fn connect(settings: &ImapSettings) -> Result<Self, ImapError> {
        let addr = settings.addr();
        let tcp =
            timeout(COMMAND_TIMEOUT, TcpStream::connect((settings.host.as_str(), settings.port)))
                .await
                .map_err(|_| ImapError::Connect {
                    addr: addr.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
                })?
                .map_err(|source| ImapError::Connect { addr: addr.clone(), source })?;
        // Latency matters more than throughput for small commands.
        let _ = tcp.set_nodelay(true);

        let stream: Box<dyn Transport> = match settings.tls {
            ImapTls::None => Box::new(tcp),
            ImapTls::Tls => Box::new(tls_handshake(settings, tcp).await?),
            ImapTls::Starttls => {
                let mut client = async_imap::Client::new(tcp);
                timed("greeting", read_greeting(&mut client, &addr)).await?;
                timed("STARTTLS", async {
                    client
                        .run_command_and_check_ok("STARTTLS", None)
                        .await
                        .map_err(|source| ImapError::Starttls { addr: addr.clone(), source })
                })
                .await?;
                // No greeting follows the TLS handshake (RFC 3501 6.2.1).
                Box::new(tls_handshake(settings, client.into_inner()).await?)
            }
        };
        let mut client = async_imap::Client::new(stream);
        if settings.tls != ImapTls::Starttls {
            timed("greeting", read_greeting(&mut client, &addr)).await?;
        }

        let mut session = timed("LOGIN", async {
            client.login(&settings.user, &settings.password).await.map_err(|(source, _client)| {
                ImapError::Login { user: settings.user.clone(), source }
            })
        })
        .await?;

        let caps = timed("CAPABILITY", async {
            session.capabilities().await.map_err(ImapError::command("CAPABILITY"))
        })
        .await?;
        let extensions = Extensions {
            idle: caps.has_str("IDLE"),
            move_: caps.has_str("MOVE"),
            uidplus: caps.has_str("UIDPLUS"),
        };

        let mailbox = timed("SELECT", async {
            session
                .select(&settings.folder)
                .await
                .map_err(|source| ImapError::Select { folder: settings.folder.clone(), source })
        })
        .await?;
        let uid_validity = mailbox.uid_validity.ok_or_else(|| {
            ImapError::Protocol(format!("SELECT {} returned no UIDVALIDITY", settings.folder))
        })?;
        tracing::debug!(
            addr = %addr,
            user = %settings.user,
            folder = %settings.folder,
            uid_validity,
            exists = mailbox.exists,
            ?extensions,
            "IMAP session open"
        );
        Ok(ImapMailbox {
            session: Some(session),
            settings: settings.clone(),
            uid_validity,
            extensions,
            quarantine_ready: false,
        })
    }

    /// UIDVALIDITY of the selected folder.
    pub fn uid_validity(&self) -> u32 {
        self.uid_validity
    }

    /// The extensions this session uses.
    pub fn extensions(&self) -> Extensions {
        self.extensions
    }

    /// Pretends the server lacks some extensions (tests of the fallback paths; also a way to
    /// work around a server whose extension is broken). Extensions can only be turned off.
    pub fn restrict_extensions(&mut self, allowed: Extensions) {
        self.extensions.idle &= allowed.idle;
        self.extensions.move_ &= allowed.move_;
        self.extensions.uidplus &= allowed.uidplus;
    }

    /// False once an error dropped the connection; then only [`ImapMailbox::logout`] (a no-op)
    /// makes sense and the caller should connect anew.
    pub fn is_connected(&self) -> bool {
        self.session.is_some()
    }

    /// Maps the outcome of one step (see [`step!`]). A server's NO or BAD is the command's
    /// tagged completion, so the session stays usable. On any other error (I/O, parse,
    /// timeout) the session is dropped: the protocol state is then unknown (a half-read
    /// response would confuse every later command), so the only safe thing is to reconnect.
    fn check<T>(
        &mut self,
        command: &'static str,
        outcome: Result<Result<T, async_imap::error::Error>, tokio::time::error::Elapsed>,
    ) -> Result<T, ImapError> {
        let result = match outcome {
            Err(_) => Err(ImapError::Timeout { command }),
            Ok(r) => r.map_err(ImapError::command(command)),
        };
        if let Err(e) = &result
            && !matches!(
                e,
                ImapError::Command {
                    source: async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_),
                    ..
                }
            )
        {
            self.session = None;
        }
        result
    }

    /// Every message not yet marked `\Seen` (and not `\Deleted`), oldest UID first, at most
    /// [`FETCH_BATCH`] of them, fetched with `BODY.PEEK[]` and `INTERNALDATE`. PEEK because
    /// fetching must not set `\Seen`: a message is marked only by [`ImapMailbox::settle`],
    /// after the caller committed its result.
    pub async fn fetch_unseen(&mut self) -> Result<Vec<FetchedMail>, ImapError> {
        // NOOP first: the IMAP way to ask for news (RFC 3501 6.1.2), and needed in practice:
        // Dovecot runs SEARCH on the session's current view of the folder and, after other
        // commands, looks for newly delivered files at most every 5 s
        // (MAILBOX_FULL_SYNC_INTERVAL); measured here: mail showed up in UID SEARCH up to 5 s
        // late without it.
        step!(self, "NOOP", |s| s.noop().await).await?;
        // New-mail announcements received so far are covered by the search below; only those
        // arriving from now on should wake up [`ImapMailbox::wait_for_mail`] early.
        if let Some(session) = self.session.as_mut() {
            while session.unsolicited_responses.try_recv().is_ok() {}
        }
        let found = step!(self, "UID SEARCH", |s| s.uid_search("UNSEEN UNDELETED").await).await?;
        let mut uids: Vec<u32> = found.into_iter().collect();
        uids.sort_unstable();
        tracing::trace!(unseen = uids.len(), "IMAP: UID SEARCH UNSEEN");
        if uids.len() > FETCH_BATCH {
            tracing::debug!(
                unseen = uids.len(),
                batch = FETCH_BATCH,
                "IMAP: fetching a partial batch"
            );
            uids.truncate(FETCH_BATCH);
        }
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        // Sizes first: the bodies fetched below never exceed the per-mail limit or the
        // per-round budget, whatever a stranger put in the mailbox.
        let limit = super::MAX_MAIL_BYTES as u64 + 1;
        let set = uid_set(&uids);
        let sizes: Vec<Fetch> = step!(self, "UID FETCH", |s| {
            s.uid_fetch(&set, "(UID RFC822.SIZE)").await?.try_collect().await
        })
        .await?;
        let size_of = |uid: u32| {
            sizes.iter().find(|f| f.uid == Some(uid)).and_then(|f| f.size).map(u64::from)
        };
        let mut budget = FETCH_BYTES;
        let mut whole = Vec::new();
        let mut partial = Vec::new();
        for &uid in &uids {
            let size = size_of(uid).unwrap_or(limit);
            let cost = size.min(limit);
            if cost > budget && !(whole.is_empty() && partial.is_empty()) {
                break;
            }
            budget = budget.saturating_sub(cost);
            if size < limit { whole.push(uid) } else { partial.push(uid) }
        }
        let mut fetches: Vec<Fetch> = Vec::new();
        for (set, query) in [
            (uid_set(&whole), "(UID INTERNALDATE BODY.PEEK[])".to_owned()),
            (uid_set(&partial), format!("(UID INTERNALDATE BODY.PEEK[]<0.{limit}>)")),
        ] {
            if set.is_empty() {
                continue;
            }
            let batch: Vec<Fetch> = step!(self, "UID FETCH", |s| {
                s.uid_fetch(&set, &query).await?.try_collect().await
            })
            .await?;
            fetches.extend(batch);
        }
        let fetched: Vec<u32> = whole.iter().chain(&partial).copied().collect();

        let uid_validity = self.uid_validity;
        let mut mails: Vec<FetchedMail> = fetches
            .iter()
            .filter_map(|f| {
                // The server may interleave unsolicited FETCH responses (flag changes by other
                // clients) that carry no body: skip those.
                let uid = f.uid?;
                if !fetched.contains(&uid) {
                    return None;
                }
                let body = f.body()?;
                let raw = body[..body.len().min(limit as usize)].to_vec();
                Some(FetchedMail {
                    uid,
                    uid_validity,
                    raw,
                    size: size_of(uid),
                    internal_date: f.internal_date().map(|d| d.timestamp()),
                })
            })
            .collect();
        mails.sort_by_key(|m| m.uid);
        mails.dedup_by_key(|m| m.uid);
        Ok(mails)
    }

    /// Marks a message as done. Call it only after the caller's database commit.
    pub async fn settle(&mut self, uid: u32, disposition: Disposition) -> Result<(), ImapError> {
        let uid_s = uid.to_string();
        match disposition {
            Disposition::Processed => {
                step!(self, "UID STORE", |s| {
                    s.uid_store(&uid_s, "+FLAGS.SILENT (\\Seen)")
                        .await?
                        .try_for_each(|_| async { Ok(()) })
                        .await
                })
                .await
            }
            Disposition::Quarantined => {
                self.ensure_quarantine().await?;
                let folder = self.settings.quarantine_folder.clone();
                if self.extensions.move_ {
                    return step!(self, "UID MOVE", |s| s.uid_mv(&uid_s, &folder).await).await;
                }
                step!(self, "UID COPY", |s| s.uid_copy(&uid_s, &folder).await).await?;
                step!(self, "UID STORE", |s| {
                    s.uid_store(&uid_s, "+FLAGS.SILENT (\\Deleted)")
                        .await?
                        .try_for_each(|_| async { Ok(()) })
                        .await
                })
                .await?;
                if self.extensions.uidplus {
                    step!(self, "UID EXPUNGE", |s| {
                        s.uid_expunge(&uid_s).await?.try_for_each(|_| async { Ok(()) }).await
                    })
                    .await
                } else {
                    // Without UIDPLUS this also expunges anything else marked \Deleted in the
                    // folder; in a folder dedicated to ping replies that is what we want.
                    step!(self, "EXPUNGE", |s| {
                        s.expunge().await?.try_for_each(|_| async { Ok(()) }).await
                    })
                    .await
                }
            }
        }
    }

    /// Creates the quarantine folder unless it exists (checked once per session).
    async fn ensure_quarantine(&mut self) -> Result<(), ImapError> {
        if self.quarantine_ready {
            return Ok(());
        }
        let folder = self.settings.quarantine_folder.clone();
        let pattern = quote(&folder)?;
        let names: Vec<async_imap::types::Name> =
            step!(self, "LIST", |s| s.list(Some(""), Some(&pattern)).await?.try_collect().await)
                .await?;
        if !names.iter().any(|n| n.name() == folder) {
            tracing::info!(folder = %folder, "IMAP: creating the quarantine folder");
            step!(self, "CREATE", |s| s.create(&folder).await).await?;
        }
        self.quarantine_ready = true;
        Ok(())
    }

    /// Waits until new mail may be there, `max_wait` passed, or `shutdown` becomes true (or its
    /// sender is dropped). Uses IDLE when the server advertises it and `use_idle` is set,
    /// re-issued at most every [`IDLE_REISSUE`] (RFC 2177); otherwise sleeps
    /// `min(poll_interval, max_wait)`. Returns at once if the server already announced new
    /// messages during earlier commands. A spurious early return is possible (any mailbox
    /// change wakes IDLE); the caller just fetches again.
    pub async fn wait_for_mail(
        &mut self,
        max_wait: Duration,
        poll_interval: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), ImapError> {
        let session = self.session.as_mut().ok_or(ImapError::Disconnected)?;
        if *shutdown.borrow() {
            return Ok(());
        }
        // EXISTS/RECENT that arrived during earlier commands: mail we have not searched for.
        let mut news = false;
        while let Ok(resp) = session.unsolicited_responses.try_recv() {
            news |= matches!(resp, UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_));
        }
        if news {
            tracing::debug!("IMAP: new mail announced before IDLE");
            return Ok(());
        }

        let deadline = Instant::now() + max_wait;
        if !(self.settings.use_idle && self.extensions.idle) {
            // The next fetch_unseen starts with NOOP, which picks up whatever arrived.
            tokio::select! {
                () = sleep(poll_interval.min(max_wait)) => {}
                () = shutdown_signalled(shutdown) => {}
            }
            return Ok(());
        }

        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            let until = deadline.min(now + IDLE_REISSUE);
            match self.idle_once(until, shutdown).await? {
                IdleEnd::NewData | IdleEnd::Shutdown => return Ok(()),
                IdleEnd::Timeout => {}
            }
        }
    }

    /// One IDLE ... DONE cycle, ending at `until` at the latest.
    async fn idle_once(
        &mut self,
        until: Instant,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<IdleEnd, ImapError> {
        // idle() consumes the session and done() hands it back: on any error in between the
        // session is gone (self.session stays None) and the caller reconnects.
        let session = self.session.take().ok_or(ImapError::Disconnected)?;
        let mut handle = session.idle();
        timed("IDLE", async { handle.init().await.map_err(ImapError::command("IDLE")) }).await?;

        let end = {
            // The library's own timeout restarts on every server response, including the
            // "* OK Still here" keepalives Dovecot sends every 2 minutes; so the deadline is
            // enforced here, and the library's timeout only has to be longer.
            let (wait, _stop) = handle.wait_with_timeout(IDLE_REISSUE + Duration::from_secs(60));
            tokio::select! {
                r = wait => match r {
                    Ok(async_imap::extensions::idle::IdleResponse::NewData(data)) => {
                        if let Response::Data { status: Status::Bye, outcome } = data.parsed() {
                            let why = outcome.information.as_deref().unwrap_or("");
                            return Err(ImapError::Protocol(format!(
                                "server ended the session during IDLE: BYE {why}"
                            )));
                        }
                        tracing::debug!(response = ?data.parsed(), "IMAP: IDLE woke up");
                        IdleEnd::NewData
                    }
                    Ok(async_imap::extensions::idle::IdleResponse::Timeout) => IdleEnd::Timeout,
                    // We never trigger the stop source, so this means the stream ended:
                    // the server closed the connection.
                    Ok(async_imap::extensions::idle::IdleResponse::ManualInterrupt) => {
                        return Err(ImapError::Protocol("connection closed during IDLE".into()));
                    }
                    Err(source) => return Err(ImapError::Command { command: "IDLE", source }),
                },
                () = sleep_until(until) => IdleEnd::Timeout,
                () = shutdown_signalled(shutdown) => IdleEnd::Shutdown,
            }
        };
        let session =
            timed("DONE", async { handle.done().await.map_err(ImapError::command("DONE")) })
                .await?;
        self.session = Some(session);
        Ok(end)
    }

    /// LOGOUT, best effort (errors are only logged at debug level), then close.
    pub async fn logout(mut self) {
        if let Some(mut session) = self.session.take() {
            match timeout(Duration::from_secs(10), session.logout()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "IMAP LOGOUT failed"),
                Err(_) => tracing::debug!("IMAP LOGOUT timed out"),
            }
        }
    }
}

enum IdleEnd {
    NewData,
    Timeout,
    Shutdown,
}

async fn tls_handshake(
    settings: &ImapSettings,
    tcp: TcpStream,
) -> Result<tokio_native_tls::TlsStream<TcpStream>, ImapError> {
    let addr = settings.addr();
    let tls_error = |source| ImapError::Tls { addr: addr.clone(), source };
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(roots) = &settings.ca_certificates {
        builder.disable_built_in_roots(true);
        for pem in roots {
            builder
                .add_root_certificate(native_tls::Certificate::from_pem(pem).map_err(tls_error)?);
        }
    }
    let connector = builder.build().map_err(tls_error)?;
    let connector = tokio_native_tls::TlsConnector::from(connector);
    timeout(COMMAND_TIMEOUT, connector.connect(&settings.host, tcp))
        .await
        .map_err(|_| ImapError::Timeout { command: "TLS handshake" })?
        .map_err(|source| ImapError::Tls { addr, source })
}

/// What a refused certificate means for the operator, before OpenSSL's own words.
fn untrusted_hint(e: &native_tls::Error) -> &'static str {
    if e.to_string().contains("certificate verify failed") {
        "the server's certificate is not trusted (not issued by a CA in `ca_file` or the \
         system's store, or not for this host name); nothing was read or logged in: "
    } else {
        ""
    }
}

/// Reads the server greeting; anything but an untagged OK is an error (BYE = server busy or
/// refusing us; PREAUTH is not expected from a server we LOGIN to).
async fn read_greeting<T>(client: &mut async_imap::Client<T>, addr: &str) -> Result<(), ImapError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug,
{
    let greeting = |detail: String| ImapError::Greeting { addr: addr.to_owned(), detail };
    let resp = client
        .read_response()
        .await
        .map_err(|e| greeting(e.to_string()))?
        .ok_or_else(|| greeting("connection closed before the greeting".to_owned()))?;
    match resp.parsed() {
        Response::Data { status: Status::Ok, .. } => Ok(()),
        other => Err(greeting(format!("{other:?}"))),
    }
}

/// Resolves when shutdown is requested: the value becomes true, or the sender is gone (then
/// nobody could ever request it, and the daemon is going down anyway).
async fn shutdown_signalled(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&stop| stop).await;
}

fn is_shutdown(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// A compact UID set: sorted, deduplicated UIDs as ranges, e.g. "3:5,9".
fn uid_set(sorted: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// An IMAP quoted string (for LIST, whose pattern async-imap passes through verbatim).
fn quote(s: &str) -> Result<String, ImapError> {
    if s.contains(['\r', '\n', '\0']) {
        return Err(ImapError::Protocol(format!("folder name {s:?} contains CR, LF or NUL")));
    }
    Ok(format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
}

/// How long [`run`] waits between rounds when nothing failed: IDLE wakes it earlier, and a
/// fetch round at least this often is a cheap safety net.
const ROUND_MAX_WAIT: Duration = IDLE_REISSUE;

/// The long-running loop the daemon spawns: connect; loop { a [`round`](super::round) over
/// the folder, each message handed to `handle` and settled after it; wait for more }.
///
/// `handle` returns the [`Disposition`] once its result is committed, or `Err` when it could not
/// commit: the message is then left untouched and handed out again after `poll_interval`.
/// On shutdown a handler's future may be dropped: its commit must be all or nothing, and the
/// message, not settled, is handed out again after the restart.
///
/// On any connection error: `tracing::warn!`, reconnect with exponential backoff (1 s doubling
/// up to 5 min, back to 1 s after a session that got through at least one fetch round). Never
/// exits except on shutdown (the value true, or the sender dropped); returns promptly then,
/// after a best-effort LOGOUT.
pub async fn run<F, Fut, E>(
    settings: ImapSettings,
    mut handle: F,
    mut shutdown: watch::Receiver<bool>,
) where
    F: FnMut(super::RawMail) -> Fut,
    Fut: Future<Output = Result<Disposition, E>>,
    E: fmt::Display,
{
    let mut backoff = BACKOFF_START;
    let addr = settings.addr();
    loop {
        if is_shutdown(&shutdown) {
            return;
        }
        let connected = tokio::select! {
            r = ImapMailbox::connect(&settings) => r,
            () = shutdown_signalled(&mut shutdown) => return,
        };
        match connected {
            Ok(mut mailbox) => {
                tracing::info!(addr = %addr, folder = %settings.folder, "IMAP: connected");
                let (result, productive) =
                    session_loop(&mut mailbox, &settings, &mut handle, &mut shutdown).await;
                if productive {
                    backoff = BACKOFF_START;
                }
                match result {
                    Ok(()) => {
                        mailbox.logout().await;
                        return;
                    }
                    Err(e) => {
                        trouble(&settings, &addr, &e, backoff, "session failed; reconnecting")
                    }
                }
                if mailbox.is_connected() {
                    mailbox.logout().await;
                }
            }
            Err(e) => trouble(&settings, &addr, &e, backoff, "connection failed; retrying"),
        }
        tokio::select! {
            () = sleep(backoff) => {}
            () = shutdown_signalled(&mut shutdown) => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// A failed connection or session: logged, and reported to the liveness (for `/healthz`).
fn trouble(settings: &ImapSettings, addr: &str, e: &ImapError, backoff: Duration, what: &str) {
    settings.liveness.round_failed(format!("IMAP {addr}: {e}"));
    tracing::warn!(addr = %addr, error = %e, retry_in_s = backoff.as_secs(), "IMAP {what}");
}

/// Rounds on one connection. Returns Ok on shutdown, Err on a connection problem; the flag says
/// whether at least one fetch round succeeded (resets the backoff).
async fn session_loop<F, Fut, E>(
    mailbox: &mut ImapMailbox,
    settings: &ImapSettings,
    handle: &mut F,
    shutdown: &mut watch::Receiver<bool>,
) -> (Result<(), ImapError>, bool)
where
    F: FnMut(super::RawMail) -> Fut,
    Fut: Future<Output = Result<Disposition, E>>,
    E: fmt::Display,
{
    let mut productive = false;
    loop {
        if is_shutdown(shutdown) {
            return (Ok(()), productive);
        }
        let stop = shutdown.clone();
        let round = tokio::select! {
            r = super::round(mailbox, &mut *handle, &stop) => match r {
                Ok(round) => round,
                Err(e) => return (Err(e), productive),
            },
            // A fetch has no side effects. A handler dropped here must have committed all or
            // nothing (the application's runs its transaction on the blocking pool, which
            // finishes on its own); its message is not settled and comes again, recognised.
            () = shutdown_signalled(shutdown) => return (Ok(()), productive),
        };
        productive = true;
        settings.liveness.round_completed();
        // After a failure come back soon (the cause may be transient); otherwise wait for
        // IDLE or the poll interval.
        let max_wait = if round.failed > 0 { settings.poll_interval } else { ROUND_MAX_WAIT };
        if let Err(e) = mailbox.wait_for_mail(max_wait, settings.poll_interval, shutdown).await {
            return (Err(e), productive);
        }
        // A wait that ended normally (IDLE answered, or the poll interval passed) shows the
        // connection is alive even when no mail came.
        settings.liveness.round_completed();
    }
}

impl super::Mailbox for ImapMailbox {
    type Key = u32;
    type Error = ImapError;

    async fn waiting(&mut self) -> Result<Vec<(u32, super::RawMail)>, ImapError> {
        Ok(self
            .fetch_unseen()
            .await?
            .into_iter()
            .map(|m| {
                let raw = super::RawMail {
                    source: format!("imap:{}:{}", m.uid_validity, m.uid),
                    bytes: m.raw,
                    size: m.size,
                    delivered_at: m.internal_date,
                };
                (m.uid, raw)
            })
            .collect())
    }

    async fn settle(&mut self, uid: u32, disposition: Disposition) -> Result<(), ImapError> {
        ImapMailbox::settle(self, uid, disposition).await
    }

    fn usable(&self) -> bool {
        self.is_connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[7]), "7");
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
    }

    #[test]
    fn brief_server_answers() {
        let no = async_imap::error::Error::No(
            r#"code: None, info: Some("[AUTHENTICATIONFAILED] Authentication \"x\" failed.")"#
                .to_owned(),
        );
        assert_eq!(
            brief(&no),
            r#"server said NO: [AUTHENTICATIONFAILED] Authentication "x" failed."#
        );
        let bad = async_imap::error::Error::Bad(
            r#"outcome: Outcome { code: None, information: Some("Error in IMAP command") }"#
                .to_owned(),
        );
        assert_eq!(brief(&bad), "server said BAD: Error in IMAP command");
        let odd = async_imap::error::Error::No("whatever".to_owned());
        assert_eq!(brief(&odd), "server said NO: whatever");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("Quarantine").unwrap(), "\"Quarantine\"");
        assert_eq!(quote("a\"b\\c").unwrap(), "\"a\\\"b\\\\c\"");
        assert!(quote("a\r\nb").is_err());
    }

    #[test]
    fn password_is_redacted() {
        let s = ImapSettings::new("h", 1, "u", "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
