//! Mail that came back: how it was judged, what it changes, and the outbox it answers.

use serde::Serialize;

use super::discovery::{DiscoveryEffect, TaggedRequest};
use super::ping::{ChainType, PingType};

/// How a mail was classified (the `mails.kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    Returned,
    Duplicate,
    Forged,
    Corrupted,
    Bounced,
    SelfCheck,
    /// A copy of a replay-protection probe (never a return of a ping).
    Probe,
    Reply,
    Unknown,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Returned => "returned",
            MailKind::Duplicate => "duplicate",
            MailKind::Forged => "forged",
            MailKind::Corrupted => "corrupted",
            MailKind::Bounced => "bounced",
            MailKind::SelfCheck => "self_check",
            MailKind::Probe => "probe",
            MailKind::Reply => "reply",
            MailKind::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<MailKind> {
        [
            MailKind::Returned,
            MailKind::Duplicate,
            MailKind::Forged,
            MailKind::Corrupted,
            MailKind::Bounced,
            MailKind::SelfCheck,
            MailKind::Probe,
            MailKind::Reply,
            MailKind::Unknown,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Mail a person should look at: kept in the quarantine, with its reason.
    pub fn is_quarantined(self) -> bool {
        matches!(self, MailKind::Forged | MailKind::Corrupted | MailKind::Unknown)
    }
}

/// A ping found by the tag of a return address.
#[derive(Debug, Clone, PartialEq)]
pub struct TaggedPing {
    pub id: i64,
    pub outcome: String,
    pub sent_at: Option<i64>,
    pub chain_type: Option<ChainType>,
    /// (remailer row id, address, ping type, key id) per hop.
    pub hops: Vec<(i64, String, PingType, Option<String>)>,
    pub with_from: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TagTarget {
    Ping(TaggedPing),
    SelfCheck {
        id: i64,
        sent_at: Option<i64>,
        returned_at: Option<i64>,
    },
    /// A request for information (remailer-conf, ...): the reply comes to its tag.
    Request(TaggedRequest),
    /// A replay-protection probe: both of its copies come back to this tag.
    ReplayProbe {
        id: i64,
        first_sent_at: Option<i64>,
    },
}

/// The mail itself.
#[derive(Debug, Clone, PartialEq)]
pub struct MailRecord {
    /// SHA-256 of the raw bytes, hex: the same mail read twice has the same digest.
    pub digest: String,
    pub source: String,
    pub delivered_at: Option<i64>,
    pub processed_at: i64,
    pub kind: MailKind,
    pub ping_id: Option<i64>,
    pub detail: Option<String>,
    /// Kept only for quarantined mail and replies.
    pub raw: Option<Vec<u8>>,
}

/// What a mail changes besides its own row.
#[derive(Debug, Clone, PartialEq)]
pub enum MailEffect {
    /// A genuine return: `sent` is the authenticated send time from the payload.
    Returned {
        ping_id: i64,
        sent: i64,
        returned_at: i64,
    },
    /// An altered copy of the ping came back at `at`: it failed.
    Corrupted {
        ping_id: i64,
        at: i64,
    },
    /// A bounce naming the ping came back at `at`: it failed.
    Bounced {
        ping_id: i64,
        reason: String,
        at: i64,
    },
    SelfCheckReturned {
        id: i64,
        returned_at: i64,
    },
    /// A copy of a replay-protection probe came back (the second one proves a replay).
    ProbeReturned {
        id: i64,
        returned_at: i64,
    },
    /// What a remailer's reply to a request teaches us.
    Discovery(DiscoveryEffect),
    /// A downtime announcement signed with the remailer's admin key. It replaces the
    /// remailer's earlier signed announcements; one signed no later than the newest already
    /// applied is a replay and changes nothing (the mail becomes a duplicate).
    SignedDowntime {
        remailer_id: i64,
        announcement: super::downtime::Announcement,
        signer: String,
        signed_at: i64,
        at: i64,
    },
    /// The From: header a return arrived with.
    FromLine {
        remailer_id: i64,
        ping_type: PingType,
        with_from: bool,
        header: Option<String>,
        seen_at: i64,
    },
}

/// A mail kept for a person to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedMail {
    pub processed_at: i64,
    /// Where it is: `maildir:<name>` (now in `.Quarantine/cur/`) or `imap:<validity>:<uid>`.
    pub source: String,
    pub kind: String,
    pub reason: Option<String>,
    /// False once the retention removed its bytes.
    pub raw_kept: bool,
}

/// One hop of a queued ping, with the key material the sender encrypts to.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxHop {
    pub remailer_id: i64,
    pub address: String,
    pub ping_type: PingType,
    /// None when the key row was deleted since the ping was queued.
    pub key_id: Option<String>,
    pub material: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxPing {
    pub id: i64,
    pub slot_time: i64,
    pub chain_type: Option<ChainType>,
    pub hops: Vec<OutboxHop>,
    pub tag: Option<String>,
    pub attempts: u32,
}
