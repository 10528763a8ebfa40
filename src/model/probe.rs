//! The replay-protection probe (issue 15): one type II ping packet mailed to a remailer twice,
//! byte for byte, some minutes apart. A Mixmaster remailer keeps a log of the packet IDs it
//! processed and drops a packet it has seen (mixmaster.md §6); one that delivers both copies
//! lets an observer trace mail by replaying it.
//!
//! The probe is never a ping: it has its own rows, tags and payload kind, so neither copy
//! can count as reliability, latency or history.

use serde::Serialize;

use super::mail::OutboxHop;

/// How a probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeVerdict {
    /// Sent (or being sent); the returns are awaited.
    Pending,
    /// One copy came back and, by the end of the wait, no second: the replay was dropped.
    Protected,
    /// Both copies came back: the remailer's replay protection is broken.
    Replayed,
    /// Nothing came back by the end of the wait: the remailer lost both (or is down), which
    /// says nothing about its replay log.
    Inconclusive,
    /// A copy never got out of our MTA: our failure, not the remailer's.
    NotSent,
}

impl ProbeVerdict {
    pub const ALL: [ProbeVerdict; 5] = [
        ProbeVerdict::Pending,
        ProbeVerdict::Protected,
        ProbeVerdict::Replayed,
        ProbeVerdict::Inconclusive,
        ProbeVerdict::NotSent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProbeVerdict::Pending => "pending",
            ProbeVerdict::Protected => "protected",
            ProbeVerdict::Replayed => "replayed",
            ProbeVerdict::Inconclusive => "inconclusive",
            ProbeVerdict::NotSent => "not_sent",
        }
    }

    pub fn parse(s: &str) -> Option<ProbeVerdict> {
        ProbeVerdict::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether the probe learned something about the remailer's replay log.
    pub fn is_conclusive(self) -> bool {
        matches!(self, ProbeVerdict::Protected | ProbeVerdict::Replayed)
    }
}

impl std::fmt::Display for ProbeVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict of a probe that has `returns` copies back, given when its second copy went out
/// and how long returns are awaited after that; `None` while it cannot be decided yet.
///
/// Two returns decide at once (only a remailer without a working replay log delivers the
/// same packet twice; our own MTA's redeliveries are the same bytes and were recognised
/// before). One return is "protected" only once a second could have arrived: a remailer's
/// pool can hold mail for hours. Pure.
pub fn probe_verdict(
    returns: u32,
    second_sent_at: Option<i64>,
    wait_secs: i64,
    now: i64,
) -> Option<ProbeVerdict> {
    if returns >= 2 {
        return Some(ProbeVerdict::Replayed);
    }
    let waited = second_sent_at.is_some_and(|s| now >= s.saturating_add(wait_secs));
    match (waited, returns) {
        (false, _) => None,
        (true, 0) => Some(ProbeVerdict::Inconclusive),
        (true, _) => Some(ProbeVerdict::Protected),
    }
}

/// Which of the two identical mails an outbox attempt sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeCopy {
    First,
    Second,
}

/// A probe waiting for the MTA.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxProbe {
    pub id: i64,
    pub hop: OutboxHop,
    pub tag: String,
    pub created_at: i64,
    pub copy: ProbeCopy,
    /// When the first copy was accepted.
    pub first_sent_at: Option<i64>,
    /// Until when this copy may still be handed to the MTA: a 2-hour slot from when it fell
    /// due (a replay long after the first copy tests nothing a client cares about).
    pub deadline: i64,
    /// The message as built for the first attempt: `(envelope sender, recipient, bytes)`.
    /// Every later attempt, and the second copy, sends exactly these bytes.
    pub message: Option<(String, String, Vec<u8>)>,
    pub attempts: u32,
}

/// What the probes found for one remailer, for the pages, the API and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayStatus {
    /// The newest conclusive verdict and when it was reached.
    pub verdict: Option<ProbeVerdict>,
    pub decided_at: Option<i64>,
    /// When the last probe was started.
    pub last_probe_at: Option<i64>,
    /// Probes that ended as each verdict (pending included), over the remailer's history.
    pub protected: u64,
    pub replayed: u64,
    pub inconclusive: u64,
    pub not_sent: u64,
    pub pending: u64,
}

impl ReplayStatus {
    /// The remailer delivered a replayed packet in its newest conclusive probe.
    pub fn is_broken(&self) -> bool {
        self.verdict == Some(ProbeVerdict::Replayed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn verdicts_wait_for_the_second_copy() {
        assert_eq!(probe_verdict(0, None, 100, 1_000), None);
        assert_eq!(probe_verdict(1, None, 100, 1_000), None, "second copy not sent yet");
        assert_eq!(probe_verdict(1, Some(950), 100, 1_000), None, "still waiting");
        assert_eq!(probe_verdict(1, Some(900), 100, 1_000), Some(ProbeVerdict::Protected));
        assert_eq!(probe_verdict(0, Some(900), 100, 1_000), Some(ProbeVerdict::Inconclusive));
        assert_eq!(probe_verdict(2, Some(999), 100, 1_000), Some(ProbeVerdict::Replayed));
    }

    proptest! {
        /// Two returns always mean a replay, at any time; fewer never do.
        #[test]
        fn only_two_returns_are_a_replay(
            returns in 0u32..5,
            second in proptest::option::of(-1_000_000i64..1_000_000),
            wait in 0i64..1_000_000,
            now in -1_000_000i64..3_000_000,
        ) {
            let v = probe_verdict(returns, second, wait, now);
            prop_assert_eq!(v == Some(ProbeVerdict::Replayed), returns >= 2);
            if returns < 2 && second.is_none() {
                prop_assert_eq!(v, None);
            }
        }
    }

    #[test]
    fn verdict_names_round_trip() {
        for v in ProbeVerdict::ALL {
            assert_eq!(ProbeVerdict::parse(v.as_str()), Some(v));
        }
        assert_eq!(ProbeVerdict::parse("broken"), None);
    }
}
