//! A remailer as the pinger knows it: its address, nick, capability line and status, its
//! keys with their validity, and the one rule that decides whether it is listed publicly.

use super::ping::PingType;

/// A remailer as the pinger knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Remailer {
    pub id: i64,
    pub address: String,
    pub nick: Option<String>,
    pub caps: Option<String>,
    pub status: RemailerStatus,
    /// Why the status is what it is ("replied: not a remailer", ...).
    pub status_reason: Option<String>,
    /// `Remailer-Type:` of its latest conf reply.
    pub remailer_type: Option<String>,
    /// The last accepted conf or key reply.
    pub last_answer_at: Option<i64>,
    pub hidden: bool,
    pub first_seen: i64,
    pub keys: Vec<RemailerKey>,
}

impl Remailer {
    /// Whether the public lists, pages, keyrings, API and metrics show it ([`is_listed`]).
    pub fn is_listed(&self) -> bool {
        is_listed(self.hidden, self.caps.as_deref())
    }

    /// The inverse of [`Remailer::is_listed`]: only in the private tree.
    pub fn is_hidden(&self) -> bool {
        !self.is_listed()
    }

    /// The ping types it has a current key for at `now`, in order, once each.
    pub fn current_key_types(&self, now: i64) -> Vec<PingType> {
        let mut types: Vec<PingType> =
            self.keys.iter().filter(|k| k.is_current(now)).map(|k| k.ping_type).collect();
        types.sort();
        types.dedup();
        types
    }
}

/// The one rule for publishing a remailer: the operator did not hide it (Echolot's `showit`),
/// and its capability line does not say `testing` ([`super::caps::says_testing`]).
pub fn is_listed(hidden: bool, caps: Option<&str>) -> bool {
    !hidden && !caps.is_some_and(super::caps::says_testing)
}

/// Where a remailer stands with the pinger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemailerStatus {
    /// Pinged and asked.
    Active,
    /// Left too many daily conf requests unanswered: still pinged, marked in `list`.
    Unresponsive,
    /// Said it is not a remailer, or was disabled by the operator: neither pinged nor asked.
    Disabled,
}

impl RemailerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RemailerStatus::Active => "active",
            RemailerStatus::Unresponsive => "unresponsive",
            RemailerStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<RemailerStatus> {
        [RemailerStatus::Active, RemailerStatus::Unresponsive, RemailerStatus::Disabled]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for RemailerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key of a remailer.
#[derive(Debug, Clone, PartialEq)]
pub struct RemailerKey {
    pub id: i64,
    pub ping_type: PingType,
    pub key_id: String,
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
    pub retired_at: Option<i64>,
    /// When the pinger first saw it: a remailer's identity since then (Longevity, key
    /// change events).
    pub first_seen: i64,
}

impl RemailerKey {
    /// Usable for pinging at `now`: not retired and within its validity dates (with the
    /// clock tolerance for Mix keys).
    pub fn is_current(&self, now: i64) -> bool {
        let tolerance = if matches!(self.ping_type, PingType::Mix | PingType::Yamn) {
            KEY_CLOCK_TOLERANCE_SECS
        } else {
            0
        };
        self.retired_at.is_none()
            && self.valid_from.is_none_or(|f| f + tolerance <= now)
            && self.valid_until.is_none_or(|u| now < u - tolerance)
    }
}

/// Clocks differ: a Mix key is used only from this long after its creation date until this
/// long before its expiry, so a remailer whose clock is a little behind or ahead of ours never
/// sees a packet for a key it considers "created in the future" (its secring check) or
/// expired. OpenPGP keys carry exact times and remailers do not check them on decryption.
pub const KEY_CLOCK_TOLERANCE_SECS: i64 = 3600;

/// A remailer's identity as imported or learnt from a conf reply.
#[derive(Debug, Clone, PartialEq)]
pub struct RemailerInfo {
    pub address: String,
    pub nick: Option<String>,
    pub caps: Option<String>,
    pub hidden: bool,
}

/// What storing a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    Added,
    Updated,
    Unchanged,
}

/// Key id used for a key whose id we never learnt (imported history).
pub const UNKNOWN_KEY_ID: &str = "unknown";

/// Echolot's pseudo key id of cpunk-clear "keys".
pub const CLEAR_KEY_ID: &str = "none";

/// A remailer's current key, as the keyrings publish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishableKey {
    pub address: String,
    pub nick: String,
    pub ping_type: PingType,
    pub key_id: String,
    /// The Mix key entry (header line, blank line, key block) or the armoured OpenPGP key.
    pub material: String,
}

/// One entry of a key's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEvent {
    pub ping_type: PingType,
    pub key_id: String,
    pub at: i64,
    pub event: String,
    pub detail: Option<String>,
}
