//! The domain layer: the vocabulary every other module shares, and the rules that belong to
//! the things themselves (when a key is current, when a remailer is listed, what a capability
//! line says). Plain data and pure functions; it imports nothing else of the crate, and every
//! other module may import it.

pub mod address;
pub mod caps;
pub mod discovery;
pub mod downtime;
pub mod event;
pub mod history;
pub mod mail;
pub mod peer;
pub mod ping;
pub mod probe;
pub mod remailer;
pub mod stability;
pub mod time;

pub use address::{Delimiter, Identity, MailAddress};
pub use caps::Capabilities;
pub use discovery::{
    Candidate, CandidateReason, DiscoveryEffect, DueRequest, OfferedKey, OutboxRequest,
    RequestKind, StoredReply, TaggedRequest,
};
pub use history::{
    ChainPing, ChainRow, Dataset, FromLine, HistoryRows, ImportSummary, ImportedChain,
    ImportedPing, MailHealth, Ping, RemailerHistory, ReturnCounters, SelfCheck, SingleRow,
};
pub use mail::{
    MailEffect, MailKind, MailRecord, OutboxHop, OutboxPing, QuarantinedMail, TagTarget, TaggedPing,
};
pub use ping::{ChainType, DueChainPing, DueSinglePing, Model, PingCounts, PingType};
pub use probe::{OutboxProbe, ProbeCopy, ProbeVerdict, ReplayStatus, probe_verdict};
pub use remailer::{
    CLEAR_KEY_ID, KEY_CLOCK_TOLERANCE_SECS, KeyChange, KeyEvent, PublishableKey, Remailer,
    RemailerInfo, RemailerKey, RemailerStatus, UNKNOWN_KEY_ID,
};
pub use time::{
    Clock, FixedClock, SECONDS_PER_DAY, SELF_CHECK_DEADLINE_SECS, SLOT_SECS, STATS_DAYS,
    SystemClock, UnixTime,
};
