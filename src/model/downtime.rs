//! Announced downtime (RFC 636): a remailer that will be, or is, unavailable, why, and when
//! it is expected back; entered by the pinger's operator or announced by the remailer's
//! operator in a mail signed with the remailer's admin key.

use serde::Serialize;

use super::time::{SECONDS_PER_DAY, UnixTime};

/// A reason longer than this is refused: it is shown on every page that names the remailer.
pub const MAX_REASON_CHARS: usize = 200;
/// No announced downtime lasts longer: announced downtime is unknown time for the stability
/// figures, and a remailer must not announce its way out of them.
pub const MAX_DOWNTIME_SECS: i64 = 30 * SECONDS_PER_DAY;
/// No downtime is announced further ahead than this.
pub const MAX_NOTICE_AHEAD_SECS: i64 = 30 * SECONDS_PER_DAY;
/// After its expected end, a downtime whose remailer did not come back is "overdue" this
/// long; after that the remailer is simply down, and the notice goes.
pub const OVERDUE_SHOWN_SECS: i64 = 7 * SECONDS_PER_DAY;

/// Who announced a downtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DowntimeSource {
    /// The pinger's operator, with `fathometer downtime add`.
    Operator,
    /// The remailer's operator, in a mail signed with the remailer's admin key.
    Signed,
}

impl DowntimeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DowntimeSource::Operator => "operator",
            DowntimeSource::Signed => "signed",
        }
    }

    pub fn parse(s: &str) -> Option<DowntimeSource> {
        [DowntimeSource::Operator, DowntimeSource::Signed].into_iter().find(|k| k.as_str() == s)
    }
}

/// What is announced: unavailable from `starts_at` until `until`, because of `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Announcement {
    pub starts_at: UnixTime,
    pub until: UnixTime,
    pub reason: String,
}

impl Announcement {
    /// An announcement within the bounds, as of `now`: a reason of printable text, an end
    /// after the start and after `now`, at most [`MAX_DOWNTIME_SECS`] long, starting at
    /// most [`MAX_NOTICE_AHEAD_SECS`] ahead. The reason's runs of white space become one
    /// space.
    pub fn checked(
        starts_at: UnixTime,
        until: UnixTime,
        reason: &str,
        now: UnixTime,
    ) -> Result<Announcement, String> {
        let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
        if reason.is_empty() {
            return Err("the reason is empty".into());
        }
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(format!("the reason is longer than {MAX_REASON_CHARS} characters"));
        }
        if reason.chars().any(char::is_control) {
            return Err("the reason holds control characters".into());
        }
        if until <= now {
            return Err("the expected end has passed".into());
        }
        if until <= starts_at {
            return Err("the expected end is not after the start".into());
        }
        if until - starts_at > MAX_DOWNTIME_SECS {
            return Err(format!(
                "longer than {} days; announce a new downtime when it is known",
                MAX_DOWNTIME_SECS / SECONDS_PER_DAY
            ));
        }
        if starts_at - now > MAX_NOTICE_AHEAD_SECS {
            return Err(format!(
                "starts more than {} days ahead",
                MAX_NOTICE_AHEAD_SECS / SECONDS_PER_DAY
            ));
        }
        Ok(Announcement { starts_at, until, reason })
    }
}

/// An announced downtime as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Downtime {
    pub id: i64,
    #[serde(skip)]
    pub remailer_id: i64,
    pub address: String,
    #[serde(flatten)]
    pub announcement: Announcement,
    pub source: DowntimeSource,
    /// The fingerprint of the admin key that signed it.
    pub signer: Option<String>,
    /// When it was signed (signed), or entered (operator).
    pub announced_at: UnixTime,
    /// When the operator removed it, or a newer signed announcement replaced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<UnixTime>,
    /// When a newer announcement of the same remailer replaced it (then `removed_at` too):
    /// it still counts as announced until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_at: Option<UnixTime>,
}

/// Where a downtime stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DowntimeState {
    /// Announced, not started yet.
    Upcoming,
    /// Between its start and its expected end.
    Active,
    /// Its expected end passed and the remailer is not back.
    Overdue,
    /// Over: the remailer came back after the expected end, the operator removed it, or it
    /// was overdue for longer than [`OVERDUE_SHOWN_SECS`].
    Over,
}

impl DowntimeState {
    pub fn as_str(self) -> &'static str {
        match self {
            DowntimeState::Upcoming => "upcoming",
            DowntimeState::Active => "active",
            DowntimeState::Overdue => "overdue",
            DowntimeState::Over => "over",
        }
    }

    pub fn parse(s: &str) -> Option<DowntimeState> {
        [
            DowntimeState::Upcoming,
            DowntimeState::Active,
            DowntimeState::Overdue,
            DowntimeState::Over,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// What clients are told about a remailer's announced downtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DowntimeNotice {
    #[serde(flatten)]
    pub downtime: Downtime,
    pub state: DowntimeState,
    /// The RFC 636 sentence: "unavailable because of hardware maintenance, expected back
    /// Tue 02 Dec 16:30 UTC".
    pub text: String,
}
