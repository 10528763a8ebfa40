//! Handing messages to the MTA (decision 3): a ping is `sent` only when the MTA answered 250.
//! A transient failure is retried with backoff while the ping's slot lasts; a message that
//! never got out is `not_sent` with the reason and never charged to the remailer. The rules
//! are pure ([`settle`], [`retry_at`]); [`smtp`] is the I/O edge.

pub mod smtp;

pub use smtp::{SendError, SmtpSender};
use tracing::info;

use crate::compose::Outgoing;

/// Whatever takes our messages: the SMTP edge ([`SmtpSender`]) in production, the simulated
/// MTA in `fathometer simulate` and `fathometer demo`. The outbox drives either alike.
pub trait Transport: Send + Sync {
    /// Hands one message over; Ok only when it was accepted for delivery.
    fn send(
        &self,
        mail: &Outgoing,
    ) -> impl std::future::Future<Output = Result<(), SendError>> + Send;
    /// The first wait after a temporary failure.
    fn retry_secs(&self) -> i64;
}

impl Transport for SmtpSender {
    fn send(
        &self,
        mail: &Outgoing,
    ) -> impl std::future::Future<Output = Result<(), SendError>> + Send {
        SmtpSender::send(self, mail)
    }

    fn retry_secs(&self) -> i64 {
        SmtpSender::retry_secs(self)
    }
}

/// Retries wait `[smtp] retry_secs` first, then twice as long each time, up to half an hour.
pub const MAX_RETRY_SECS: i64 = 1800;

/// When to try again after the `attempts`-th attempt failed at `now`, or None when the
/// message's `deadline` (the end of a ping's slot) comes first.
pub fn retry_at(first_delay: i64, attempts: u32, now: i64, deadline: i64) -> Option<i64> {
    let doublings = attempts.saturating_sub(1).min(10);
    let delay = (first_delay.max(1) << doublings).min(MAX_RETRY_SECS);
    let next = now.saturating_add(delay);
    (next < deadline).then_some(next)
}

/// What became of one attempt to hand a message to the MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Sent,
    /// A temporary failure with time left in the slot: try again at `at`.
    Retry {
        at: i64,
        error: String,
    },
    /// Refused for good, or the slot is over: recorded as not sent.
    GiveUp {
        error: String,
    },
}

/// Decides the fate of the `attempts`-th attempt, at `now`, of a message that may be sent
/// until `deadline`.
pub fn settle(
    result: Result<(), SendError>,
    retry_secs: i64,
    attempts: u32,
    deadline: i64,
    now: i64,
) -> Settled {
    match result {
        Ok(()) => Settled::Sent,
        Err(SendError::Transient(error)) => match retry_at(retry_secs, attempts, now, deadline) {
            Some(at) => Settled::Retry { at, error },
            None => {
                Settled::GiveUp { error: format!("slot over after {attempts} attempts: {error}") }
            }
        },
        Err(SendError::Permanent(error)) => {
            Settled::GiveUp { error: format!("MTA refused: {error}") }
        }
    }
}

/// What one pass over the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainSummary {
    pub sent: usize,
    pub deferred: usize,
    pub not_sent: usize,
}

impl DrainSummary {
    pub fn count(&mut self, settled: &Settled) {
        match settled {
            Settled::Sent => self.sent += 1,
            Settled::Retry { .. } => self.deferred += 1,
            Settled::GiveUp { .. } => self.not_sent += 1,
        }
    }

    pub fn log(&self, what: &str) {
        if *self != DrainSummary::default() {
            info!(sent = self.sent, deferred = self.deferred, not_sent = self.not_sent, "{what}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_stop_at_the_end_of_the_slot() {
        let slot = 7200 * 10;
        let end = slot + crate::model::SLOT_SECS;
        assert_eq!(retry_at(60, 1, slot, end), Some(slot + 60));
        assert_eq!(retry_at(60, 2, slot, end), Some(slot + 120));
        assert_eq!(retry_at(60, 3, slot, end), Some(slot + 240));
        assert_eq!(retry_at(60, 20, slot, end), Some(slot + MAX_RETRY_SECS));
        assert_eq!(retry_at(60, 1, end - 60, end), None);
        assert_eq!(retry_at(60, 1, end - 61, end), Some(end - 1));
        assert_eq!(retry_at(60, 1, i64::MAX - 1, i64::MAX), None, "no overflow");
    }
}
