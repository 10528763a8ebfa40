//! What a ping is: its type (the four single-hop types Echolot knows, and YAMN), the chain
//! families, the pings the scheduler wants sent, and the reliability model that judges them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PingType {
    /// Mixmaster (type II) packet.
    #[serde(rename = "mix")]
    Mix,
    /// Cypherpunk (type I) message encrypted to an RSA OpenPGP key.
    #[serde(rename = "cpunk-rsa")]
    CpunkRsa,
    /// Cypherpunk message encrypted to a DSA/ElGamal OpenPGP key.
    #[serde(rename = "cpunk-dsa")]
    CpunkDsa,
    /// Cypherpunk message in the clear (only `Anon-To:` headers, no encryption).
    #[serde(rename = "cpunk-clear")]
    CpunkClear,
    /// YAMN packet (Mixmaster's successor: X25519, AES-CTR, BLAKE2s; `yamn.md`).
    #[serde(rename = "yamn")]
    Yamn,
}

impl PingType {
    pub const ALL: [PingType; 5] = [
        PingType::Mix,
        PingType::CpunkRsa,
        PingType::CpunkDsa,
        PingType::CpunkClear,
        PingType::Yamn,
    ];

    /// The name used in Echolot's files, hashes and our CSV formats.
    pub fn as_str(self) -> &'static str {
        match self {
            PingType::Mix => "mix",
            PingType::CpunkRsa => "cpunk-rsa",
            PingType::CpunkDsa => "cpunk-dsa",
            PingType::CpunkClear => "cpunk-clear",
            PingType::Yamn => "yamn",
        }
    }

    /// The chain family a hop of this type belongs to.
    pub fn chain_type(self) -> ChainType {
        match self {
            PingType::Mix => ChainType::Mix,
            PingType::Yamn => ChainType::Yamn,
            PingType::CpunkRsa | PingType::CpunkDsa | PingType::CpunkClear => ChainType::Cpunk,
        }
    }
}

impl fmt::Display for PingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PingType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PingType::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| {
            format!(
                "unknown ping type `{s}` (expected mix, cpunk-rsa, cpunk-dsa, cpunk-clear or yamn)"
            )
        })
    }
}

/// Two-hop chains are pinged per family: all-Mixmaster or all-cypherpunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ChainType {
    #[serde(rename = "mix")]
    Mix,
    #[serde(rename = "cpunk")]
    Cpunk,
    #[serde(rename = "yamn")]
    Yamn,
}

impl ChainType {
    pub const ALL: [ChainType; 3] = [ChainType::Mix, ChainType::Cpunk, ChainType::Yamn];

    pub fn as_str(self) -> &'static str {
        match self {
            ChainType::Mix => "mix",
            ChainType::Cpunk => "cpunk",
            ChainType::Yamn => "yamn",
        }
    }

    /// Hop types a chain of this family may use, most preferred first (Echolot's
    /// `which_chainpings`: DSA before RSA before clear).
    pub fn preferred_hop_types(self) -> &'static [PingType] {
        match self {
            ChainType::Mix => &[PingType::Mix],
            ChainType::Cpunk => &[PingType::CpunkDsa, PingType::CpunkRsa, PingType::CpunkClear],
            ChainType::Yamn => &[PingType::Yamn],
        }
    }
}

impl fmt::Display for ChainType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChainType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChainType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown chain type `{s}` (expected mix, cpunk or yamn)"))
    }
}

/// A single ping the scheduler wants sent.
#[derive(Debug, Clone, PartialEq)]
pub struct DueSinglePing {
    pub key_row_id: i64,
    pub slot_time: i64,
}

/// A chain ping the scheduler wants sent.
#[derive(Debug, Clone, PartialEq)]
pub struct DueChainPing {
    pub chain_type: ChainType,
    pub hop1_key_row_id: i64,
    pub hop2_key_row_id: i64,
    pub slot_time: i64,
}

/// Pings waiting for the MTA, by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PingCounts {
    pub queued: u64,
    pub sent: u64,
    pub returned: u64,
    pub not_sent: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    #[default]
    Methodology,
    Echolot,
}

impl Model {
    pub fn as_str(self) -> &'static str {
        match self {
            Model::Methodology => "methodology",
            Model::Echolot => "echolot",
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Model {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "methodology" => Ok(Model::Methodology),
            "echolot" => Ok(Model::Echolot),
            _ => Err(format!("unknown model `{s}` (expected methodology or echolot)")),
        }
    }
}
