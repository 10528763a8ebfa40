//! What the pinger asks remailers (`remailer-conf`, `-key`, `-help`, `-stats`, `-adminkey`)
//! and what their answers can change.

use std::fmt;

use super::caps::Capabilities;
use super::ping::PingType;

/// The information requests a Mixmaster remailer answers (`mixmaster.md` §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestKind {
    Conf,
    Key,
    Help,
    Stats,
    Adminkey,
}

impl RequestKind {
    pub const ALL: [RequestKind; 5] = [
        RequestKind::Conf,
        RequestKind::Key,
        RequestKind::Help,
        RequestKind::Stats,
        RequestKind::Adminkey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Conf => "conf",
            RequestKind::Key => "key",
            RequestKind::Help => "help",
            RequestKind::Stats => "stats",
            RequestKind::Adminkey => "adminkey",
        }
    }

    pub fn parse(s: &str) -> Option<RequestKind> {
        RequestKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The Subject the remailer recognises.
    pub fn subject(self) -> String {
        format!("remailer-{}", self.as_str())
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an address became a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateReason {
    /// Named in a "SUPPORTED CPUNK (TYPE I) REMAILERS" list.
    VouchedType1,
    /// Named in a "SUPPORTED MIXMASTER (TYPE II) REMAILERS" list.
    VouchedType2,
    /// A conf reply's capability line gives another address than the one we asked.
    SelfConf,
    /// A key reply's keys belong to another address than the one we asked.
    SelfKey,
}

impl CandidateReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CandidateReason::VouchedType1 => "vouched-type1",
            CandidateReason::VouchedType2 => "vouched-type2",
            CandidateReason::SelfConf => "self-conf",
            CandidateReason::SelfKey => "self-key",
        }
    }

    /// A remailer naming its own (new) address is added at once; others need vouchers.
    pub fn is_self(self) -> bool {
        matches!(self, CandidateReason::SelfConf | CandidateReason::SelfKey)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub address: String,
    pub reason: CandidateReason,
}

/// A key offered in a key reply for the address we asked.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferedKey {
    pub ping_type: PingType,
    pub key_id: String,
    pub material: String,
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
}

/// A request the scheduler wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRequest {
    pub remailer_id: i64,
    pub kind: RequestKind,
    pub slot_time: i64,
}

/// A queued request, as the sender needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRequest {
    pub id: i64,
    pub address: String,
    pub kind: RequestKind,
    pub slot_time: i64,
    pub tag: String,
    pub attempts: u32,
}

/// A request found by the tag of the address a reply was sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedRequest {
    pub id: i64,
    pub remailer_id: i64,
    pub address: String,
    pub kind: RequestKind,
    pub sent_at: Option<i64>,
}

/// The latest reply of one kind (the thesaurus entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReply {
    pub kind: RequestKind,
    pub received_at: i64,
    pub body: String,
}

/// What an accepted reply changes (applied with the mail's row, in one transaction).
#[derive(Debug, Clone, PartialEq)]
pub enum DiscoveryEffect {
    /// The request got its answer. `restores` is true for an accepted conf or key reply:
    /// the remailer is answering again.
    Answered {
        request_id: i64,
        remailer_id: i64,
        at: i64,
        restores: bool,
    },
    Thesaurus {
        remailer_id: i64,
        kind: RequestKind,
        body: String,
        at: i64,
    },
    /// `request_time`: when the request was sent; an older answer never wins over a newer.
    Capabilities {
        remailer_id: i64,
        caps: Capabilities,
        remailer_type: Option<String>,
        request_time: i64,
    },
    /// Keys of a key reply. Stored keys of `complete_types` missing from `keys` are retired.
    Keys {
        remailer_id: i64,
        keys: Vec<OfferedKey>,
        complete_types: Vec<PingType>,
        at: i64,
    },
    NotARemailer {
        remailer_id: i64,
        at: i64,
    },
    Candidates {
        recommender: String,
        candidates: Vec<Candidate>,
        at: i64,
    },
}
