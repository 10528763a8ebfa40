//! Long-term stability (Tor proposal 146, `stability.md`): what was observed of a remailer,
//! kept compactly for a year, and the figures derived from it.

use super::ping::ChainType;

/// What one 2-hour slot says of a remailer's family (its Mixmaster or its type I side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlotState {
    /// No observation counts: nothing was sent, the pinger was down or failing, the remailer
    /// had announced its downtime, or the pings are not settled yet.
    #[default]
    Unknown,
    /// At least one ping sent in the slot came back.
    Up,
    /// Pings sent in the slot failed (bounced, altered, or not back within the allowance),
    /// and none came back.
    Down,
}

impl SlotState {
    pub fn as_char(self) -> char {
        match self {
            SlotState::Unknown => '.',
            SlotState::Up => 'u',
            SlotState::Down => 'd',
        }
    }

    pub fn from_char(c: char) -> Option<SlotState> {
        match c {
            '.' => Some(SlotState::Unknown),
            'u' => Some(SlotState::Up),
            'd' => Some(SlotState::Down),
            _ => None,
        }
    }

    /// The state of a slot from its observations: up if any ping came back, down if some
    /// failed and none came back.
    pub fn of(observations: impl IntoIterator<Item = bool>) -> SlotState {
        observations.into_iter().fold(SlotState::Unknown, |state, up| match (state, up) {
            (_, true) | (SlotState::Up, _) => SlotState::Up,
            _ => SlotState::Down,
        })
    }
}

/// Slots in a UTC day.
pub const SLOTS_PER_DAY: usize = 12;

/// One UTC day of one remailer family: the compact form a year of history is kept in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UptimeDay {
    pub remailer_id: i64,
    pub family: ChainType,
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub slots: [SlotState; SLOTS_PER_DAY],
}

impl UptimeDay {
    /// The slots as stored: one character each (`u`, `d`, `.`).
    pub fn slots_text(&self) -> String {
        self.slots.iter().map(|s| s.as_char()).collect()
    }

    /// Reads stored slots; `None` unless exactly twelve known characters.
    pub fn parse_slots(text: &str) -> Option<[SlotState; SLOTS_PER_DAY]> {
        let bytes = text.as_bytes();
        if bytes.len() != SLOTS_PER_DAY {
            return None;
        }
        let mut slots = [SlotState::Unknown; SLOTS_PER_DAY];
        for (slot, &b) in slots.iter_mut().zip(bytes) {
            *slot = SlotState::from_char(char::from(b))?;
        }
        Some(slots)
    }
}

/// One run of the daemon: a start, its last sign of life, and its clean stop if it had one.
/// The gaps between runs are the pinger's own downtime, never a remailer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonRun {
    pub id: i64,
    pub started_at: i64,
    pub alive_at: i64,
    pub stopped_at: Option<i64>,
}

/// The long-term figures of one remailer family as of `now`.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Stability {
    /// Weighted fractional uptime: "if I try at a random time, is it up?" (0..1; `None`
    /// before anything is known).
    pub wfu: Option<f64>,
    /// Weighted mean time between failures, seconds: "if it is up now, how long will it stay
    /// up?" (0 when no run is known).
    pub mtbf_secs: f64,
    /// Weighted time known, seconds: how much the two figures above rest on.
    pub time_known_secs: f64,
    /// Days of the last 365 with at least one up observation at this address: "will it still
    /// be here next month?"
    pub longevity_days: u32,
    /// MTBF at least the median of listed remailers, or at least 5 days (Tor's Stable).
    pub stable: bool,
    /// Longevity in the upper quartile of listed remailers (Tor proposal 146's Longterm).
    pub longterm: bool,
    /// Uptime per UTC day, oldest first, for the last 90 days: up slots over known slots.
    pub daily: Vec<Option<f64>>,
}
