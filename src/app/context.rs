//! What every command of a configured pinger works with: its configuration, secret, identity,
//! store and clock, and the connections to its MTA and mailbox.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context as _, Result};

use super::secret::{self, Secret};
use super::state;
use crate::config::{Config, ImapConfig, TlsMode};
use crate::ingest::Liveness;
use crate::ingest::imap::{ImapSettings, ImapTls};
use crate::matching::MatchContext;
use crate::model::{Clock, Identity};
use crate::send::SmtpSender;
use crate::store::Store;

/// A configured pinger with its state open.
pub struct Pinger {
    pub config: Config,
    pub secret: Secret,
    pub identity: Identity,
    /// Shared with the pinger a reload makes: the database stays open across reloads.
    pub store: Arc<Mutex<Store>>,
    pub clock: Arc<dyn Clock>,
}

impl Pinger {
    /// Opens the state directory of `config`: private modes (creating it if needed), the
    /// secret (created on first start) and the database (migrated). Errors of a full disk
    /// say so.
    pub fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Pinger> {
        let state_dir = config.pinger.state_dir.clone();
        let storage = |e: &dyn std::fmt::Display| state::explain_storage_error(&state_dir, e);
        state::prepare(&state_dir).map_err(|e| anyhow::anyhow!(storage(&e)))?;
        let secret = secret::load_or_create(&config.secret_path())
            .map_err(|e| anyhow::anyhow!(storage(&e)))?;
        let store = open_store(&config.database_path(), &state_dir)?;
        Ok(Pinger {
            identity: identity(&config),
            config,
            secret,
            store: Arc::new(Mutex::new(store)),
            clock,
        })
    }

    /// The same pinger (secret, open store, clock) under a reloaded configuration of the
    /// same state directory.
    pub fn reconfigured(&self, config: Config) -> Pinger {
        Pinger {
            identity: identity(&config),
            config,
            secret: self.secret.clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
        }
    }

    /// The store, for one short step. Every change is a transaction: a panic elsewhere
    /// cannot leave it half done, so a poisoned lock is taken over.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// What matching needs: our secret and identity.
    pub fn match_context(&self) -> MatchContext<'_> {
        MatchContext { secret: self.secret.as_bytes(), identity: &self.identity }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

/// Locks a shared store. Every change is a transaction, so a panic elsewhere cannot leave it
/// half done: a poisoned lock is taken over.
pub fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

/// Opens (creating and migrating) the database at `path`, explaining a full disk.
pub fn open_store(path: &Path, state_dir: &Path) -> Result<Store> {
    Store::open(path).map_err(|e| {
        anyhow::anyhow!(
            "opening {}: {}",
            path.display(),
            state::explain_storage_error(state_dir, &e)
        )
    })
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
pub fn read_password(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the password file {}", path.display()))?;
    Ok(text.lines().next().unwrap_or("").to_owned())
}

/// The configured SMTP transport, with its password and trusted certificates read.
pub fn smtp_sender(config: &Config) -> Result<SmtpSender> {
    let password = match &config.smtp.password_file {
        Some(p) => Some(read_password(p)?),
        None => None,
    };
    let roots = config.smtp.ca_file.as_deref().map(read_ca_file).transpose()?;
    SmtpSender::new(&config.smtp, password, roots).context("setting up SMTP ([smtp])")
}

/// The certificates of a CA file, one PEM block each (native TLS takes them one at a time).
pub fn read_ca_file(path: &Path) -> Result<Vec<Vec<u8>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the CA file {}", path.display()))?;
    let certificates = pem_certificates(&text);
    if certificates.is_empty() {
        anyhow::bail!("the CA file {} holds no PEM certificate", path.display());
    }
    Ok(certificates)
}

/// Every `-----BEGIN CERTIFICATE-----` block of a PEM bundle, in order.
fn pem_certificates(text: &str) -> Vec<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else { break };
        let end = start + len + END.len();
        out.push(format!("{}\n", &rest[start..end]).into_bytes());
        rest = &rest[end..];
    }
    out
}

/// IMAP settings from the config, with the password read, reporting to `liveness`.
pub fn imap_settings(imap: &ImapConfig, liveness: Arc<Liveness>) -> Result<ImapSettings> {
    let mut settings = ImapSettings::new(
        imap.host.clone(),
        imap.port.0,
        imap.user.clone(),
        read_password(&imap.password_file)?,
    );
    settings.tls = match imap.tls {
        TlsMode::None => ImapTls::None,
        TlsMode::Starttls => ImapTls::Starttls,
        TlsMode::Tls => ImapTls::Tls,
    };
    settings.folder = imap.folder.clone();
    settings.ca_certificates = imap.ca_file.as_deref().map(read_ca_file).transpose()?;
    settings.liveness = liveness;
    Ok(settings)
}

/// Runs `f` on the blocking thread pool: store access, decryption, statistics and file
/// writing never occupy the async workers, which keep serving HTTP and signals.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("a background step failed: {e}"))
}

/// Test hook: `FATHOMETER_TEST_CLOCK_OFFSET_FILE=<file>` makes every command's clock the
/// system's plus the seconds written in that file (read again at every call), so that an
/// end-to-end test can move a running daemon hours ahead. Never set in production; without
/// it the clock is the system's.
pub const TEST_CLOCK_OFFSET_FILE: &str = "FATHOMETER_TEST_CLOCK_OFFSET_FILE";

/// The clock of the commands: the system's (or the test hook's, see
/// [`TEST_CLOCK_OFFSET_FILE`]).
pub fn clock() -> Arc<dyn Clock> {
    match std::env::var_os(TEST_CLOCK_OFFSET_FILE) {
        Some(path) => Arc::new(OffsetFileClock(path.into())),
        None => Arc::new(crate::model::SystemClock),
    }
}

struct OffsetFileClock(std::path::PathBuf);

impl Clock for OffsetFileClock {
    fn now(&self) -> i64 {
        let offset: i64 =
            std::fs::read_to_string(&self.0).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        crate::model::SystemClock.now() + offset
    }
}
