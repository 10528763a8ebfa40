//! Ingestion: each mail a mailbox edge hands over is matched and recorded in one transaction,
//! keyed by the mail's SHA-256; the edge moves the mail only afterwards, so a crash at any
//! instant loses nothing and counts nothing twice (decision 7).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result as AnyResult;
use mail_parser::MessageParser;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tracing::{error, warn};

use super::context::{Pinger, blocking, imap_settings, lock};
use super::state;
use crate::compose::payload;
use crate::ingest::maildir::Maildir;
use crate::ingest::{
    self, Disposition, IngestSummary, Liveness, MAX_MAIL_BYTES, Processed, RawMail, imap,
    log_processed,
};
use crate::matching::announcement::{self, AdminKey};
use crate::matching::{self, MAX_MIME_PARTS, MatchContext, Verdict};
use crate::model::{MailKind, MailRecord};
use crate::store::{Store, StoreError};

/// Raw copies kept in the database (replies, quarantine) are cut at this size.
const MAX_KEPT_BYTES: usize = 256 << 10;

/// Classifies and records one mail. Without a delivery time from the mailbox the local MTA's
/// `Received:` date is used.
///
/// The store lock is taken only for the two short steps that need it (finding the tag's ping,
/// recording the verdict); parsing and decryption run without it, so a slow mail never holds
/// up the scheduler, the sender or the web server. Another process recording the same mail
/// in between is harmless: [`Store::record_mail`] keeps the first record.
pub fn process(
    store: &Mutex<Store>,
    ctx: &MatchContext<'_>,
    mail: &RawMail,
    now: i64,
) -> Result<Processed, StoreError> {
    let raw = &mail.bytes;
    // An oversized mail is known only by its first bytes and its size.
    let digest = match mail.oversized() {
        Some(size) => payload::hex(&Sha256::digest(
            [raw.as_slice(), &size.to_be_bytes(), b"oversized"].concat(),
        )),
        None => payload::hex(&Sha256::digest(raw)),
    };
    if let Some(kind) = lock(store).recorded_mail_kind(&digest)? {
        return Ok(Processed {
            kind,
            detail: None,
            disposition: Disposition::of(kind),
            newly_recorded: false,
        });
    }
    let parsed =
        if mail.oversized().is_none() { MessageParser::default().parse(raw) } else { None };
    let delivered_at = mail
        .delivered_at
        .or_else(|| parsed.as_ref().and_then(matching::received_time))
        .unwrap_or(now);
    let verdict = match (&parsed, mail.oversized()) {
        (_, Some(size)) => Verdict::new(
            MailKind::Unknown,
            format!("{size} bytes, larger than {} MiB", MAX_MAIL_BYTES >> 20),
        ),
        (None, None) => Verdict::new(MailKind::Unknown, "not a parseable mail message"),
        (Some(message), None) if message.parts.len() > MAX_MIME_PARTS => Verdict::new(
            MailKind::Unknown,
            format!(
                "{} MIME parts; no return or reply has more than {MAX_MIME_PARTS}",
                message.parts.len()
            ),
        ),
        (Some(message), None) => match matching::addressee(message, ctx.identity) {
            // Sent to the pinger's own address, not to a return address: a remailer
            // operator's downtime announcement, believed only with its admin key's signature.
            Err(_) if announcement::is_announcement(message) => {
                match announcement::claimed_remailer(message) {
                    Err(verdict) => verdict,
                    Ok(address) => {
                        let admin = admin_key(&lock(store), &address)?;
                        announcement::verdict(message, &address, admin.as_ref(), now)
                    }
                }
            }
            Err(verdict) => verdict,
            Ok(tag) => {
                let target = lock(store).lookup_tag(&tag)?;
                matching::verdict(ctx, message, &tag, target, delivered_at, now)
            }
        },
    };
    let keep_raw = verdict.kind.is_quarantined() || verdict.kind == MailKind::Reply;
    let record = MailRecord {
        digest,
        source: mail.source.clone(),
        delivered_at: Some(delivered_at),
        processed_at: now,
        kind: verdict.kind,
        ping_id: verdict.ping_id,
        detail: verdict.detail.clone(),
        raw: keep_raw.then(|| raw[..raw.len().min(MAX_KEPT_BYTES)].to_vec()),
    };
    crash_point("ingest-before-commit");
    let recorded = lock(store).record_mail(&record, &verdict.effects)?;
    crash_point("ingest-after-commit");
    let kind = recorded.unwrap_or(verdict.kind);
    Ok(Processed {
        kind,
        detail: verdict.detail,
        disposition: Disposition::of(kind),
        newly_recorded: recorded.is_some(),
    })
}

/// The admin key held for a remailer, and its newest signed announcement applied.
fn admin_key(store: &Store, address: &str) -> Result<Option<AdminKey>, StoreError> {
    let Some((remailer_id, armoured)) = store.admin_key(address)? else { return Ok(None) };
    let newest_signed = store.newest_signed_downtime(remailer_id)?;
    Ok(Some(AdminKey { remailer_id, armoured, newest_signed }))
}

/// Test hook for the crash tests: `FATHOMETER_CRASH_POINT=<name>` aborts the process at
/// that point, exactly as a SIGKILL would. Never set in production.
pub fn crash_point(name: &str) {
    if std::env::var_os("FATHOMETER_CRASH_POINT").is_some_and(|v| v == name) {
        std::process::abort();
    }
}

/// One mail handed over by a mailbox edge: matched and recorded on the blocking pool, logged.
/// The error (a store error, said plainly when the disk is full) leaves the mail in the
/// mailbox for the next round.
pub async fn handle(pinger: Arc<Pinger>, mail: RawMail) -> Result<Processed, String> {
    blocking(move || {
        let processed = process(&pinger.store, &pinger.match_context(), &mail, pinger.now());
        match processed {
            Ok(p) => {
                log_processed(&mail.source, &p);
                Ok(p)
            }
            Err(e) => Err(state::explain_storage_error(&pinger.config.pinger.state_dir, &e)),
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

/// `fathometer ingest --once`: rounds over the configured mailbox until it has nothing more.
pub async fn once(pinger: Arc<Pinger>) -> AnyResult<IngestSummary> {
    let summary = Arc::new(Mutex::new(IngestSummary::default()));
    let handler = |mail: RawMail| {
        let (p, summary) = (pinger.clone(), summary.clone());
        async move {
            let processed = handle(p, mail).await?;
            summary.lock().unwrap_or_else(|e| e.into_inner()).add(&processed);
            Ok::<_, String>(processed.disposition)
        }
    };
    let (_, never) = watch::channel(false);
    let config = &pinger.config;
    if let Some(imap_config) = &config.mailbox.imap {
        let settings = imap_settings(imap_config, Arc::default())?;
        let mut mailbox = imap::ImapMailbox::connect(&settings).await?;
        while ingest::round(&mut mailbox, handler, &never).await?.fetched > 0 {}
        mailbox.logout().await;
    } else if let Some(path) = &config.mailbox.maildir {
        let mut maildir = Maildir::open(path)
            .map_err(|e| anyhow::anyhow!("opening the Maildir {}: {e}", path.display()))?;
        while ingest::round(&mut maildir, handler, &never).await?.fetched > 0 {}
    } else {
        anyhow::bail!("no [mailbox] configured (maildir or [mailbox.imap])");
    }
    let summary = summary.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(summary)
}

/// The daemon's ingester: IMAP with IDLE, or a Maildir scanned every `poll_secs`, until
/// `shutdown`. Every round is reported to `liveness` (and so to `/healthz`) as it ends.
pub async fn run(pinger: Arc<Pinger>, liveness: Arc<Liveness>, shutdown: watch::Receiver<bool>) {
    let config = &pinger.config;
    let poll = Duration::from_secs(config.mailbox.poll_secs.0);
    let handler = |mail: RawMail| {
        let p = pinger.clone();
        async move { handle(p, mail).await.map(|processed| processed.disposition) }
    };
    if let Some(imap_config) = &config.mailbox.imap {
        match imap_settings(imap_config, liveness.clone()) {
            Ok(settings) => {
                let settings = imap::ImapSettings { poll_interval: poll, ..settings };
                imap::run(settings, handler, shutdown).await;
            }
            Err(e) => {
                liveness.round_failed(format!("IMAP settings: {e:#}"));
                error!("IMAP ingestion disabled: {e:#}");
            }
        }
        return;
    }
    let Some(path) = &config.mailbox.maildir else {
        return;
    };
    let mut maildir = match Maildir::open(path) {
        Ok(m) => m,
        Err(e) => {
            liveness.round_failed(format!("cannot open the Maildir: {e}"));
            error!("cannot open the Maildir {}: {e}; returns are not read", path.display());
            return;
        }
    };
    let mut wake = shutdown.clone();
    loop {
        match ingest::round(&mut maildir, handler, &shutdown).await {
            Ok(round) if round.failed == 0 => liveness.round_completed(),
            Ok(round) => {
                let why = round.first_failure.unwrap_or_default();
                liveness.round_failed(format!("Maildir: {why}"));
            }
            Err(e) => {
                liveness.round_failed(format!("Maildir: {e}"));
                warn!("ingest: {e}");
            }
        }
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = wake.changed() => return,
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

#[cfg(test)]
mod tests;
