//! Status events ("keep the user fully informed", RFC 636): what changed about a remailer,
//! or about the pinger itself, and when.

use serde::Serialize;

use super::ping::ChainType;
use super::time::UnixTime;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// Pings of one family stopped coming back (several in a row).
    Silent,
    /// Pings of a silent family come back again.
    Resumed,
    /// A new key replaced the current one ("host reset").
    KeyChanged,
    /// The current key was retired and none replaced it.
    KeyRetired,
    /// The capability line changed.
    CapsChanged,
    /// The remailer stopped answering requests (remailer-conf, -key).
    Unresponsive,
    /// An unresponsive remailer answers requests again.
    Answering,
    /// A downtime was announced.
    DowntimeAnnounced,
    /// An announced downtime began.
    DowntimeStarted,
    /// An announced downtime is over (the remailer is back, or it was withdrawn).
    DowntimeEnded,
    /// The expected end of a downtime passed and the remailer is not back.
    DowntimeOverdue,
    /// The pinger itself was not running.
    PingerDown,
    /// The pinger's own mail path failed (its self-checks did not come back).
    PingerMailFailing,
    /// The pinger's own mail path works again.
    PingerMailRestored,
    /// A replay probe came back twice: the remailer delivers a replayed packet.
    ReplayBroken,
    /// A remailer whose replay protection was broken dropped a replay again.
    ReplayFixed,
    /// Other pingers publish a different key for the remailer than we hold.
    KeysDisagree,
    /// Every pinger publishes the same keys for the remailer again.
    KeysAgree,
}

impl EventKind {
    pub const ALL: [EventKind; 18] = [
        EventKind::Silent,
        EventKind::Resumed,
        EventKind::KeyChanged,
        EventKind::KeyRetired,
        EventKind::CapsChanged,
        EventKind::Unresponsive,
        EventKind::Answering,
        EventKind::DowntimeAnnounced,
        EventKind::DowntimeStarted,
        EventKind::DowntimeEnded,
        EventKind::DowntimeOverdue,
        EventKind::PingerDown,
        EventKind::PingerMailFailing,
        EventKind::PingerMailRestored,
        EventKind::ReplayBroken,
        EventKind::ReplayFixed,
        EventKind::KeysDisagree,
        EventKind::KeysAgree,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Silent => "silent",
            EventKind::Resumed => "resumed",
            EventKind::KeyChanged => "key-changed",
            EventKind::KeyRetired => "key-retired",
            EventKind::CapsChanged => "caps-changed",
            EventKind::Unresponsive => "unresponsive",
            EventKind::Answering => "answering",
            EventKind::DowntimeAnnounced => "downtime-announced",
            EventKind::DowntimeStarted => "downtime-started",
            EventKind::DowntimeEnded => "downtime-ended",
            EventKind::DowntimeOverdue => "downtime-overdue",
            EventKind::PingerDown => "pinger-down",
            EventKind::PingerMailFailing => "pinger-mail-failing",
            EventKind::PingerMailRestored => "pinger-mail-restored",
            EventKind::ReplayBroken => "replay-broken",
            EventKind::ReplayFixed => "replay-fixed",
            EventKind::KeysDisagree => "keys-disagree",
            EventKind::KeysAgree => "keys-agree",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A short title, RFC 636's words where it has them.
    pub fn title(self) -> &'static str {
        match self {
            EventKind::Silent => "not responding",
            EventKind::Resumed => "service resumed",
            EventKind::KeyChanged => "reset: new key",
            EventKind::KeyRetired => "key retired",
            EventKind::CapsChanged => "capabilities changed",
            EventKind::Unresponsive => "stopped answering requests",
            EventKind::Answering => "answers requests again",
            EventKind::DowntimeAnnounced => "downtime announced",
            EventKind::DowntimeStarted => "unavailable (announced)",
            EventKind::DowntimeEnded => "announced downtime over",
            EventKind::DowntimeOverdue => "overdue after announced downtime",
            EventKind::PingerDown => "pinger not running",
            EventKind::PingerMailFailing => "pinger's mail failing",
            EventKind::PingerMailRestored => "pinger's mail restored",
            EventKind::ReplayBroken => "replay protection broken",
            EventKind::ReplayFixed => "replay protection works again",
            EventKind::KeysDisagree => "keys differ between pingers",
            EventKind::KeysAgree => "pingers agree on its keys again",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The remailer an event is about, as it was named then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRemailer {
    #[serde(skip)]
    pub id: i64,
    pub address: String,
    pub nick: Option<String>,
    /// Whether the public outputs show it (not hidden, not `testing`).
    #[serde(skip)]
    pub listed: bool,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Its number in the store (0 before it is stored): increasing, never reused.
    pub id: i64,
    pub kind: EventKind,
    /// When it happened, as well as the pinger can tell (the first lost ping, the key's
    /// first sighting).
    pub at: UnixTime,
    /// When the pinger noticed it.
    pub recorded_at: UnixTime,
    /// `None` for the pinger's own events.
    pub remailer: Option<EventRemailer>,
    /// The family (`mix` or `cpunk`) of ping events.
    pub family: Option<ChainType>,
    /// One sentence, with the particulars.
    pub detail: String,
}

impl Event {
    /// Shown in public outputs: the pinger's own events, and those of listed remailers.
    pub fn is_public(&self) -> bool {
        self.remailer.as_ref().is_none_or(|r| r.listed)
    }

    /// "testmix1: not responding (mix)" or "pinger not running".
    pub fn title(&self) -> String {
        match (&self.remailer, self.family) {
            (Some(r), Some(f)) => {
                format!("{}: {} ({f})", r.nick.as_deref().unwrap_or(&r.address), self.kind.title())
            }
            (Some(r), None) => {
                format!("{}: {}", r.nick.as_deref().unwrap_or(&r.address), self.kind.title())
            }
            (None, _) => self.kind.title().to_owned(),
        }
    }
}

/// What the last statistics build saw of one watched subject, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    pub value: String,
    pub since: UnixTime,
}

/// Subject → what was seen (`stats::events`).
pub type Watch = std::collections::BTreeMap<String, Watched>;
