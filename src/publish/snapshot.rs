//! What the daemon shows of itself: the latest statistics build and its own health, in one
//! snapshot that `/healthz`, `/metrics` and the API all read, with the one health rule.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ingest::LivenessState;
use crate::model::event::{Event, EventKind};
use crate::model::{MailHealth, PingCounts};
use crate::stats::Report;

/// What the daemon shares with the web server, updated after each step. It is the one
/// source of `/healthz`, `/metrics` and the API, and [`Published::problem`] is the one health
/// rule both report.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// The latest statistics build.
    pub report: Option<Arc<Report>>,
    /// Unix time of the last scheduler tick that reached the store.
    pub last_tick: Option<i64>,
    /// Unix time of the last successful statistics build.
    pub last_build: Option<i64>,
    /// Why the scheduler is failing, if it is.
    pub problem: Option<String>,
    /// Pings in the store by outcome (the outbox is `queued`).
    pub ping_counts: PingCounts,
    /// The mailbox and the pinger's own mail path, as of the last tick.
    pub mail_health: MailHealth,
    /// The ingester's rounds, as it reports them (at once, not at the next tick).
    pub ingester: LivenessState,
    /// The thresholds of the health rule.
    pub rules: HealthRules,
    /// The events of the last 30 days, newest first (private ones too: readers filter).
    pub events: Arc<Vec<Event>>,
    /// Events ever recorded, by kind (the `/metrics` counter).
    pub event_counts: BTreeMap<EventKind, u64>,
    /// How often the files are rebuilt (the configuration's, changed by a reload).
    pub rebuilds: Rebuilds,
    /// The last round of the consensus of the pinger network (`[consensus]`), if any ran.
    pub consensus: Option<Arc<ConsensusStatus>>,
}

/// What `/metrics` shows of the consensus: each peer's state and the agreement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsensusStatus {
    pub peers: Vec<PeerStatus>,
    /// (list, agreed, outlier views, remailers alive by majority): `mix` and `cpunk`.
    pub lists: Vec<(String, bool, usize, usize)>,
    pub key_disagreements: usize,
}

/// One peer as of the last round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerStatus {
    pub peer: String,
    /// Its mlist2.txt came, or was confirmed current, at the last attempt.
    pub up: bool,
    /// When its held mlist2.txt was generated.
    pub generated: Option<i64>,
    /// Failed attempts in a row, over its three files.
    pub failures: i64,
    /// Of those, files refused as unreadable.
    pub refused: i64,
}

/// How often the published files are rewritten, which says how long a copy stays fresh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebuilds {
    /// The lists and pages (`[stats] build_interval_secs`).
    pub lists_secs: i64,
    /// The keyrings (`[publish] keyring_interval_secs`).
    pub keyrings_secs: i64,
}

impl Rebuilds {
    pub fn interval_of(&self, name: &str) -> i64 {
        if super::keyrings::FILE_NAMES.contains(&name) {
            self.keyrings_secs
        } else {
            self.lists_secs
        }
    }
}

impl Published {
    /// Why the ingester is not alive as of `now`, if it is not.
    pub fn ingester_problem(&self, now: i64) -> Option<String> {
        match self.rules.ingester_quiet_secs {
            None => Some("returns are not read: no [mailbox] configured".to_owned()),
            Some(quiet) => self.ingester.problem(self.rules.started_at, now, quiet),
        }
    }

    /// Why the daemon is unhealthy as of `now`, if it is: the scheduler failed, the ingester
    /// is failing or silent, or no statistics build is recent.
    pub fn problem(&self, now: i64) -> Option<String> {
        self.problem.clone().or_else(|| self.ingester_problem(now)).or_else(|| {
            match self.last_build {
                None => Some("no statistics built yet".to_owned()),
                Some(t) if now.saturating_sub(t) > self.rules.stale_build_secs => {
                    Some(format!("last statistics build was {}s ago", now - t))
                }
                _ => None,
            }
        })
    }
}

/// The limits [`Published::problem`] applies, from the configuration.
#[derive(Debug, Clone, Default)]
pub struct HealthRules {
    /// When the daemon started (the ingester's first round is due counting from here).
    pub started_at: i64,
    /// A statistics build older than this is a sign the daemon is stuck.
    pub stale_build_secs: i64,
    /// The ingester must complete a round at least this often; `None` when no mailbox is
    /// configured (returns are then never read, which is a problem in itself).
    pub ingester_quiet_secs: Option<i64>,
}
