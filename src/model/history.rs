//! The ping history the statistics read, and the other rows the store hands out about the
//! mail path: self-checks, From: lines, the mailbox's health, imported histories.

use std::collections::BTreeMap;

use serde::Serialize;

use super::ping::{ChainType, PingType};

/// One single-hop ping that the MTA accepted (pings that never left are not charged and
/// never reach the statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    pub ping_type: PingType,
    pub sent: i64,
    /// When the genuine return was delivered, if it was.
    pub returned: Option<i64>,
    /// When a bounce or an altered copy showed that it failed, if one did: the pinger knew
    /// then that it will never return intact.
    pub failed: Option<i64>,
}

/// What the statistics need to know about one remailer.
#[derive(Debug, Clone, PartialEq)]
pub struct RemailerHistory {
    pub address: String,
    /// From the remailer's conf reply; a remailer without nick and caps is not listed.
    pub nick: Option<String>,
    /// The whole `$remailer{"nick"} = "<address> ...";` line.
    pub caps: Option<String>,
    /// Hidden by the operator (the inverse of Echolot's `showit`); whether it is listed is
    /// [`crate::model::remailer::is_listed`] of this and the caps.
    pub hidden: bool,
    /// Ping types for which the remailer has a current key.
    pub key_types: Vec<PingType>,
    /// Pings in the order they were sent.
    pub pings: Vec<Ping>,
}

/// One two-hop chain ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPing {
    pub chain_type: ChainType,
    pub addr1: String,
    pub addr2: String,
    pub sent: i64,
    pub returned: Option<i64>,
    /// When a bounce or an altered copy showed that it failed, if one did.
    pub failed: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    pub remailers: Vec<RemailerHistory>,
    pub chains: Vec<ChainPing>,
    /// What came back in the window besides genuine returns, per remailer address.
    pub returns: BTreeMap<String, ReturnCounters>,
}

/// Per-remailer counts of the mail that came back (decision 5): genuine returns, and the
/// duplicates, forgeries, corrupted copies and bounces that never count as returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReturnCounters {
    pub returned: u64,
    pub duplicate: u64,
    pub forged: u64,
    pub corrupted: u64,
    pub bounced: u64,
}

/// A past single ping, as `import-pings` reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedPing {
    pub address: String,
    pub ping_type: PingType,
    pub key_id: Option<String>,
    pub sent: i64,
    pub returned: Option<i64>,
}

/// A past chain ping, as `import-pings` reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedChain {
    pub chain_type: ChainType,
    pub addr1: String,
    pub addr2: String,
    pub sent: i64,
    pub returned: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub remailers_added: usize,
    pub remailers_updated: usize,
    pub keys_added: usize,
    pub pings_added: usize,
    pub pings_skipped_duplicate: usize,
    pub chains_added: usize,
    pub chains_skipped_duplicate: usize,
}

/// One control mail the pinger sent itself (decision 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfCheck {
    pub id: i64,
    pub tag: String,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    pub returned_at: Option<i64>,
}

/// The From: header a remailer's returns came with (the from-lines page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromLine {
    pub address: String,
    pub ping_type: PingType,
    /// Whether we asked the remailer to paste our own From: line.
    pub with_from: bool,
    pub header: Option<String>,
}

/// How the mail side is doing, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailHealth {
    /// When the ingester last recorded a mail.
    pub last_mail_processed_at: Option<i64>,
    /// Processing time minus delivery time of that mail: how far behind the ingester is.
    pub last_mail_lag_secs: Option<i64>,
    /// When the last self-check came back.
    pub last_self_check_returned_at: Option<i64>,
    /// Self-checks sent more than the deadline ago that never came back, in the last day.
    pub self_checks_failed_last_day: u64,
    /// Information requests waiting for the MTA.
    pub requests_queued: u64,
}

/// A single ping as the store has it: whose, and what became of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SingleRow {
    pub remailer_id: i64,
    pub ping: Ping,
}

/// A chain ping as the store has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainRow {
    pub chain_type: ChainType,
    pub remailer1_id: i64,
    pub remailer2_id: i64,
    pub sent: i64,
    pub returned: Option<i64>,
    pub failed: Option<i64>,
}

/// Everything the store hands the statistics for one build: rows, no rules applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryRows {
    pub remailers: Vec<super::Remailer>,
    pub singles: Vec<SingleRow>,
    pub chains: Vec<ChainRow>,
    /// The pinger's self-checks as (sent, returned), returns after `now` not yet counted.
    pub self_checks: Vec<(i64, Option<i64>)>,
    /// What came back in the window besides genuine returns, per remailer address.
    pub returns: BTreeMap<String, ReturnCounters>,
}
