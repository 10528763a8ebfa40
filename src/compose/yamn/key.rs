//! YAMN public keys (`yamn.md` §8.1, §8.2): `key.txt`, a `pubring.mix` of such entries, the
//! body of a `remailer-key` reply.

use super::crypto;
use super::reply::{Summary, day_to_date};

/// One YAMN remailer key: its summary line and the public key of its key block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// Name, address, key ID (BLAKE2s-16 of the key, checked), version, caps, validity.
    pub summary: Summary,
    pub public: [u8; 32],
}

/// Why an entry was skipped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("no key entry (a 7-field summary line and a -----Begin Mix Key----- block)")]
    NoEntry,
    #[error("summary line: {0}")]
    BadSummary(String),
    #[error("the key block's ID {block} differs from the summary's {summary}")]
    IdMismatch { summary: String, block: String },
    #[error("the key is not 64 hex digits")]
    BadKey,
    #[error("key ID {stated} is not BLAKE2s-16 of the key ({computed})")]
    WrongKeyId { stated: String, computed: String },
}

impl PublicKey {
    /// Whether YAMN's client uses the key on day `today` (`ImportPubring`): valid from the
    /// creation date's midnight, until the midnight after valid-until.
    pub fn is_valid_on(&self, today: i64) -> bool {
        self.summary.valid_from_day <= today && today <= self.summary.valid_until_day
    }

    /// Whether the remailer is a middleman (never an exit).
    pub fn is_middleman(&self) -> bool {
        self.summary.caps.contains('M')
    }

    /// The key ID as bytes.
    pub fn key_id_bytes(&self) -> [u8; 16] {
        crypto::key_id(&self.public)
    }

    /// The entry as YAMN writes it (`WritePublic`): summary line, empty line, key block.
    pub fn to_entry(&self) -> String {
        format!(
            "{} {} {} {} {} {} {}\n\n-----Begin Mix Key-----\n{}\n{}\n-----End Mix Key-----\n",
            self.summary.name,
            self.summary.address,
            self.summary.key_id,
            self.summary.version,
            self.summary.caps,
            day_to_date(self.summary.valid_from_day),
            day_to_date(self.summary.valid_until_day),
            self.summary.key_id,
            crate::compose::payload::hex(&self.public)
        )
    }

    /// Every well-formed entry of a text (a pubring, a key.txt, a reply body), in order, and
    /// what was wrong with each entry that was not, as YAMN's line-based reader finds them: a
    /// summary is a line of exactly 7 fields separated by single spaces with version `4:...`.
    pub fn all_from_text(text: &str) -> Vec<Result<PublicKey, KeyError>> {
        let lines: Vec<&str> = text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
        let mut found = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let summary_line = lines[i];
            let fields: Vec<&str> = summary_line.split(' ').collect();
            i += 1;
            if fields.len() != 7 || !fields[3].starts_with("4:") {
                continue;
            }
            let Some(begin) = lines[i..].iter().position(|l| *l == "-----Begin Mix Key-----")
            else {
                found.push(Err(KeyError::NoEntry));
                break;
            };
            i += begin + 1;
            found.push(entry(summary_line, lines.get(i).copied(), lines.get(i + 1).copied()));
            i += 2;
        }
        found
    }

    /// The first well-formed entry of a text.
    pub fn from_text(text: &str) -> Result<PublicKey, KeyError> {
        PublicKey::all_from_text(text).into_iter().next().unwrap_or(Err(KeyError::NoEntry))
    }
}

fn entry(line: &str, id_line: Option<&str>, key_line: Option<&str>) -> Result<PublicKey, KeyError> {
    let summary = Summary::parse(line).map_err(KeyError::BadSummary)?;
    let block = id_line.unwrap_or_default().trim();
    if !block.eq_ignore_ascii_case(&summary.key_id) {
        return Err(KeyError::IdMismatch { summary: summary.key_id, block: block.to_owned() });
    }
    let key_hex = key_line.unwrap_or_default().trim();
    let public: [u8; 32] = crate::compose::payload::unhex(key_hex)
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or(KeyError::BadKey)?;
    let computed = crate::compose::payload::hex(&crypto::key_id(&public));
    if computed != summary.key_id {
        return Err(KeyError::WrongKeyId { stated: summary.key_id, computed });
    }
    Ok(PublicKey { summary, public })
}
