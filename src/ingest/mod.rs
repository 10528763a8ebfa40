//! The ingester's mailbox edges: reading mail as it was delivered ([`maildir`], [`imap`]),
//! handing each to the application, and settling it (seen, or moved to the quarantine folder)
//! only after its verdict is committed, so a crash at any instant loses nothing and counts
//! nothing twice (decision 7). What a mail means is decided elsewhere
//! ([`crate::matching`], recorded by `crate::app::ingest`).
//!
//! Every edge reads at most [`MAX_MAIL_BYTES`] + 1 bytes of a mail and a bounded batch per
//! round, whatever strangers put in the mailbox.

pub mod imap;
pub mod maildir;
pub mod peer_fetch;
pub mod peer_list;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::model::{Clock, MailKind, SystemClock};

/// Larger mail is neither a ping return (about 12 KiB) nor a remailer's reply (its text is
/// cut at 64 KiB anyway); it is quarantined unparsed, and the mailbox edges read no more than
/// this plus one byte of it.
pub const MAX_MAIL_BYTES: usize = 1 << 20;

/// A mailbox the ingester reads: it hands out waiting mail and, once a mail's verdict is
/// committed, settles it.
pub trait Mailbox {
    /// How this mailbox names one mail (a Maildir file, an IMAP UID).
    type Key: Send;
    type Error: std::fmt::Display;

    /// Waiting mail, oldest first: a batch bounded in count and bytes.
    fn waiting(
        &mut self,
    ) -> impl Future<Output = Result<Vec<(Self::Key, RawMail)>, Self::Error>> + Send;

    /// Moves a mail out of the way once its verdict is committed.
    fn settle(
        &mut self,
        key: Self::Key,
        disposition: Disposition,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Whether the mailbox can still be used after a settle failed (an IMAP server said NO but
    /// the connection is fine); a Maildir always can.
    fn usable(&self) -> bool {
        true
    }
}

/// What one [`round`] did.
#[derive(Debug, Default)]
pub struct Round {
    /// Mails handed out by the mailbox.
    pub fetched: usize,
    /// Mails recorded and settled.
    pub settled: usize,
    /// Mails left where they were (the handler or the settle failed); they come again.
    pub failed: usize,
    /// The first failure of the round, for the operator and `/healthz`.
    pub first_failure: Option<String>,
}

/// One round over a mailbox: every waiting mail goes to `handle`, which records it and says
/// where it goes; the mail is settled only after that. A mail the handler could not record is
/// left in place for the next round. Stops between two mails when `stop` turns true; an error
/// of the mailbox itself (it cannot be read, the connection died) ends the round.
pub async fn round<M, F, Fut, E>(
    mailbox: &mut M,
    mut handle: F,
    stop: &watch::Receiver<bool>,
) -> Result<Round, M::Error>
where
    M: Mailbox,
    F: FnMut(RawMail) -> Fut,
    Fut: Future<Output = Result<Disposition, E>>,
    E: std::fmt::Display,
{
    let waiting = mailbox.waiting().await?;
    let mut round = Round { fetched: waiting.len(), ..Round::default() };
    let failed = |round: &mut Round, why: String| {
        round.failed += 1;
        round.first_failure.get_or_insert(why);
    };
    for (key, mail) in waiting {
        if *stop.borrow() {
            break;
        }
        let source = mail.source.clone();
        match handle(mail).await {
            Ok(disposition) => match mailbox.settle(key, disposition).await {
                Ok(()) => round.settled += 1,
                Err(e) if mailbox.usable() => {
                    warn!(source, ?disposition, error = %e, "could not settle mail");
                    failed(&mut round, format!("settling {source}: {e}"));
                }
                Err(e) => return Err(e),
            },
            Err(e) => {
                warn!(source, error = %e, "could not process mail; leaving it for the next round");
                failed(&mut round, format!("{source}: {e}"));
            }
        }
    }
    Ok(round)
}

/// How the ingester is doing, shared with `/healthz` and `/metrics`: the mailbox edge reports
/// after every round it completes and every round that fails, and the observer (the daemon's
/// published snapshot) hears of each change at once.
pub struct Liveness {
    clock: Arc<dyn Clock>,
    state: Mutex<LivenessState>,
    observer: Option<Box<LivenessObserver>>,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness { clock: Arc::new(SystemClock), state: Mutex::default(), observer: None }
    }
}

/// Told about every change of a [`Liveness`].
pub type LivenessObserver = dyn Fn(&LivenessState) + Send + Sync;

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Liveness").field("state", &self.snapshot()).finish_non_exhaustive()
    }
}

/// A snapshot of [`Liveness`]: the Unix time of the last completed round, and the failure
/// since then, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LivenessState {
    pub last_round: Option<i64>,
    pub last_failure: Option<(i64, String)>,
}

impl Liveness {
    /// A liveness that reads `clock` and tells `observer` about every change.
    pub fn observed(
        clock: Arc<dyn Clock>,
        observer: impl Fn(&LivenessState) + Send + Sync + 'static,
    ) -> Liveness {
        Liveness { clock, state: Mutex::default(), observer: Some(Box::new(observer)) }
    }

    /// A completed round clears the failure before it.
    pub fn round_completed(&self) {
        let now = self.clock.now();
        self.change(|state| {
            state.last_round = Some(now);
            state.last_failure = None;
        });
    }

    pub fn round_failed(&self, reason: impl Into<String>) {
        let (now, reason) = (self.clock.now(), reason.into());
        self.change(|state| state.last_failure = Some((now, reason)));
    }

    pub fn snapshot(&self) -> LivenessState {
        self.lock().clone()
    }

    fn change(&self, f: impl FnOnce(&mut LivenessState)) {
        let state = {
            let mut state = self.lock();
            f(&mut state);
            state.clone()
        };
        if let Some(observer) = &self.observer {
            observer(&state);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LivenessState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LivenessState {
    /// Why the ingester is not alive as of `now`, if it is not: its latest round failed, or
    /// it has completed none for `max_quiet_secs` (counted from `started` before the first).
    pub fn problem(&self, started: i64, now: i64, max_quiet_secs: i64) -> Option<String> {
        if let Some((_, reason)) = &self.last_failure {
            return Some(format!("ingester: {reason}"));
        }
        let since = self.last_round.unwrap_or(started);
        (now.saturating_sub(since) > max_quiet_secs).then(|| match self.last_round {
            Some(t) => format!("ingester: no mailbox round completed for {}s", now - t),
            None => format!(
                "ingester: no mailbox round completed since the start {}s ago",
                now - started
            ),
        })
    }
}

/// Where a mail goes once its verdict is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Processed,
    Quarantined,
}

impl Disposition {
    pub fn of(kind: MailKind) -> Disposition {
        if kind.is_quarantined() { Disposition::Quarantined } else { Disposition::Processed }
    }
}

/// What became of one mail: its verdict as recorded, and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    pub kind: MailKind,
    pub detail: Option<String>,
    pub disposition: Disposition,
    /// False when this mail had been recorded before (seen again after a crash).
    pub newly_recorded: bool,
}

/// One mail as a mailbox edge read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMail {
    /// The mail's first [`MAX_MAIL_BYTES`] + 1 bytes: all of it, unless it is larger.
    pub bytes: Vec<u8>,
    /// The whole mail's size, when the edge knows it is larger than `bytes`.
    pub size: Option<u64>,
    /// The mailbox's delivery time (Maildir file time, IMAP INTERNALDATE).
    pub delivered_at: Option<i64>,
    /// Where it is (`maildir:<name>`, `imap:<validity>:<uid>`).
    pub source: String,
}

impl RawMail {
    /// The whole mail's size when it is larger than [`MAX_MAIL_BYTES`].
    pub fn oversized(&self) -> Option<u64> {
        let size = self.size.unwrap_or(self.bytes.len() as u64).max(self.bytes.len() as u64);
        (size > MAX_MAIL_BYTES as u64).then_some(size)
    }
}

/// Logs one processed mail at a level that matches what it means for the operator.
pub fn log_processed(source: &str, p: &Processed) {
    let detail = p.detail.as_deref().unwrap_or("");
    match p.kind {
        _ if !p.newly_recorded => debug!(source, "already recorded; settling it"),
        MailKind::Returned | MailKind::SelfCheck => debug!(source, kind = p.kind.as_str(), "mail"),
        MailKind::Reply => info!(source, request = detail, "remailer reply stored"),
        MailKind::Probe => info!(source, probe = detail, "a copy of a replay probe came back"),
        MailKind::Duplicate | MailKind::Bounced => {
            info!(source, kind = p.kind.as_str(), detail, "not counted as returned")
        }
        MailKind::Forged | MailKind::Corrupted | MailKind::Unknown => {
            warn!(source, kind = p.kind.as_str(), reason = detail, "quarantined")
        }
    }
}

/// What one pass over a mailbox did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestSummary {
    pub by_kind: BTreeMap<&'static str, usize>,
    pub already_recorded: usize,
}

impl std::fmt::Display for IngestSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: usize = self.by_kind.values().sum::<usize>() + self.already_recorded;
        write!(f, "{total} mails")?;
        for (kind, n) in &self.by_kind {
            write!(f, ", {n} {kind}")?;
        }
        if self.already_recorded > 0 {
            write!(f, ", {} recorded before a restart", self.already_recorded)?;
        }
        Ok(())
    }
}

impl IngestSummary {
    pub fn add(&mut self, p: &Processed) {
        if p.newly_recorded {
            *self.by_kind.entry(p.kind.as_str()).or_default() += 1;
        } else {
            self.already_recorded += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_reports_failures_and_silence() {
        let started = 1_000;
        let quiet = 600;
        let fresh = LivenessState::default();
        assert_eq!(fresh.problem(started, started + quiet, quiet), None, "grace after the start");
        assert!(
            fresh.problem(started, started + quiet + 1, quiet).unwrap().contains("since the start")
        );

        let ok = LivenessState { last_round: Some(2_000), last_failure: None };
        assert_eq!(ok.problem(started, 2_000 + quiet, quiet), None);
        assert!(ok.problem(started, 2_000 + quiet + 1, quiet).unwrap().contains("for 601s"));

        // A failure after the last good round is reported at once, with its reason ...
        let failing = LivenessState {
            last_round: Some(2_000),
            last_failure: Some((2_010, "IMAP connection refused".to_owned())),
        };
        assert_eq!(
            failing.problem(started, 2_011, quiet).as_deref(),
            Some("ingester: IMAP connection refused")
        );
        // ... and a round completed since clears it, even within the same second.
        let clock = Arc::new(crate::model::FixedClock::at(5));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let told = seen.clone();
        let shared =
            Liveness::observed(clock, move |s| told.lock().unwrap().push(s.last_failure.is_some()));
        shared.round_completed();
        shared.round_failed("x");
        assert_eq!(shared.snapshot().problem(0, 5, quiet).as_deref(), Some("ingester: x"));
        shared.round_completed();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![false, true, false],
            "the observer hears each change"
        );
        assert_eq!(shared.snapshot(), LivenessState { last_round: Some(5), last_failure: None });
        assert_eq!(shared.snapshot().problem(0, 6, quiet), None);
    }
}
