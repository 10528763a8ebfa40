//! Remailer discovery: what we ask remailers (`remailer-conf`, `-key`, `-help`, `-stats`,
//! `-adminkey`) and what we learn from their answers (`echolot.md` §5, `mixmaster.md` §5).
//!
//! Everything here is pure: a reply body comes in, [`Findings`] go out, and the store applies
//! them in the same transaction that records the mail. Replies are hostile input: every
//! field is bounded and checked, nothing panics, and a reply that says nothing usable is
//! refused with a reason (the ingester quarantines it).

use std::fmt;

use crate::keys::{self, FoundKey};
use crate::types::PingType;

#[cfg(test)]
mod tests;

/// A reply is stored (and published) up to this size.
pub const MAX_REPLY_BYTES: usize = 64 << 10;
/// At most this many supported-remailer lines are read from one reply.
const MAX_CANDIDATES_PER_REPLY: usize = 200;
/// Nicks longer than this are refused (Mixmaster keeps 19 characters, Echolot shows 12).
pub const MAX_NICK_CHARS: usize = 32;

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

/// The body of a request. Remailers ignore it; a person who is not a remailer reads it, so it
/// says what this is and how to make it stop (Echolot's `remailerxxxtext`).
pub fn request_body(remailer: &str, pinger_name: &str, operator: Option<&str>) -> String {
    let contact = operator
        .map(|o| format!("The operator of this pinger can be reached at <{o}>.\n"))
        .unwrap_or_default();
    format!(
        "Hello,\n\n\
         this is an automated request of the remailer statistics service \"{pinger_name}\".\n\
         It asks the remailer at <{remailer}> for its capabilities, keys or statistics,\n\
         which are published so that remailer users can choose reliable remailers.\n\n\
         If {remailer} is not a remailer, please reply to this message with the words\n\
         \"not a remailer\" as the first line, and you will not be asked again.\n\
         {contact}"
    )
}

/// A remailer's capability line: `$remailer{"nick"} = "<address> flag flag ...";`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub nick: String,
    pub address: String,
    pub flags: Vec<String>,
    /// The whole line as received (it is published verbatim in rlist.txt).
    pub line: String,
}

impl Capabilities {
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    /// `testing` in the flags: the operator asks pingers not to publish it yet.
    pub fn is_testing(&self) -> bool {
        self.has("testing")
    }

    /// Plaintext type I is accepted: `cpunk` without `pgponly` (Echolot's cpunk-clear rule).
    pub fn accepts_clear(&self) -> bool {
        self.has("cpunk") && !self.has("pgponly")
    }
}

/// Whether a capability line (stored verbatim) carries the word `testing`.
pub fn caps_say_testing(line: &str) -> bool {
    parse_caps_line(line).is_some_and(|c| c.is_testing())
}

/// Parses one capability line; None unless it has the exact shape (the nick and address are
/// checked, the flags must be plain words).
pub fn parse_caps_line(line: &str) -> Option<Capabilities> {
    let trimmed = line.trim();
    let rest = trimmed.strip_prefix("$remailer{\"")?;
    let (nick, rest) = rest.split_once("\"}")?;
    let rest = rest.trim_start().strip_prefix('=')?.trim_start().strip_prefix('"')?;
    let rest = rest.strip_prefix('<')?;
    let (address, rest) = rest.split_once('>')?;
    let flags_part = rest.trim_end().strip_suffix(';')?.trim_end().strip_suffix('"')?;
    if !valid_nick(nick) || !valid_address(address) {
        return None;
    }
    let flags: Vec<String> = flags_part.split_whitespace().map(str::to_owned).collect();
    if flags.iter().any(|f| f.len() > 64 || !f.chars().all(|c| c.is_ascii_graphic() && c != '"')) {
        return None;
    }
    Some(Capabilities {
        nick: nick.to_owned(),
        address: address.to_ascii_lowercase(),
        flags,
        line: trimmed.to_owned(),
    })
}

/// A nick is printable ASCII without spaces or quotes. Anything else it contains (markup,
/// say) is escaped where it is shown.
pub fn valid_nick(nick: &str) -> bool {
    !nick.is_empty()
        && nick.chars().count() <= MAX_NICK_CHARS
        && nick.chars().all(|c| c.is_ascii_graphic() && c != '"')
}

/// A plausible mail address: one `@`, printable ASCII, no brackets, at most 254 characters.
pub fn valid_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    address.len() <= 254
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && address.chars().all(|c| c.is_ascii_graphic() && !"<>()[]\",;:\\".contains(c))
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

/// What a reply tells us.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Findings {
    /// The reply says "not a remailer": stop asking and stop pinging.
    pub not_a_remailer: bool,
    /// `Remailer-Type:` of a conf reply.
    pub remailer_type: Option<String>,
    /// The capability line, when it names the address we asked.
    pub caps: Option<Capabilities>,
    /// Keys for the address we asked (key replies).
    pub keys: Vec<OfferedKey>,
    /// Key types this reply lists completely: a stored key of such a type that the reply no
    /// longer carries has been withdrawn or superseded.
    pub complete_key_types: Vec<PingType>,
    pub candidates: Vec<Candidate>,
    /// Parts of the reply that were skipped, with the reason (logged, kept in `mails.detail`).
    pub problems: Vec<String>,
}

/// Reads the reply to a `kind` request sent to `asked`. `body` is the reply's text. Returns
/// the reason when the reply carries nothing usable (it is then quarantined). `now` decides
/// which keys have expired.
pub fn read_reply(
    kind: RequestKind,
    asked: &str,
    body: &str,
    now: i64,
) -> Result<Findings, String> {
    let body = undo_dash_escaping(body);
    if body.trim_start().get(..14).is_some_and(|s| s.eq_ignore_ascii_case("not a remailer")) {
        return Ok(Findings { not_a_remailer: true, ..Findings::default() });
    }
    let asked = asked.to_ascii_lowercase();
    let mut findings = Findings::default();
    match kind {
        RequestKind::Conf => read_conf(&asked, &body, &mut findings)?,
        RequestKind::Key => read_key(&asked, &body, now, &mut findings)?,
        RequestKind::Help | RequestKind::Stats | RequestKind::Adminkey => {
            if body.trim().is_empty() {
                return Err(format!("empty {kind} reply"));
            }
        }
    }
    Ok(findings)
}

fn read_conf(asked: &str, body: &str, findings: &mut Findings) -> Result<(), String> {
    let caps = first_caps_line(body)
        .ok_or_else(|| "conf reply without a valid $remailer{...} capability line".to_owned())?;
    findings.remailer_type = body.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let value = value.trim();
        (name.trim().eq_ignore_ascii_case("remailer-type") && !value.is_empty())
            .then(|| value.chars().filter(|c| !c.is_control()).take(80).collect())
    });
    if caps.address == asked {
        findings.caps = Some(caps);
    } else {
        findings.problems.push(format!(
            "capability line names {} instead of {asked}; the new address is a candidate",
            caps.address
        ));
        findings
            .candidates
            .push(Candidate { address: caps.address, reason: CandidateReason::SelfConf });
    }
    read_supported_lists(asked, body, findings);
    Ok(())
}

fn first_caps_line(body: &str) -> Option<Capabilities> {
    body.lines().filter(|l| l.trim_start().starts_with("$remailer{")).find_map(parse_caps_line)
}

/// Mixmaster's LISTSUPPORTED sections: after the heading, each line naming an address
/// vouches for it, up to the first line that names none.
fn read_supported_lists(asked: &str, body: &str, findings: &mut Findings) {
    let mut section: Option<CandidateReason> = None;
    for line in body.lines() {
        let heading = line.trim();
        if heading.eq_ignore_ascii_case("SUPPORTED CPUNK (TYPE I) REMAILERS") {
            section = Some(CandidateReason::VouchedType1);
            continue;
        }
        if heading.eq_ignore_ascii_case("SUPPORTED MIXMASTER (TYPE II) REMAILERS") {
            section = Some(CandidateReason::VouchedType2);
            continue;
        }
        let Some(reason) = section else { continue };
        let address = match reason {
            CandidateReason::VouchedType1 => {
                line.split_once('<').and_then(|(_, r)| r.split_once('>')).map(|(a, _)| a)
            }
            _ => line.split_whitespace().find(|w| w.contains('@')),
        };
        let Some(address) = address.filter(|a| valid_address(a)) else {
            section = None;
            continue;
        };
        let address = address.to_ascii_lowercase();
        if address == asked
            || findings.candidates.iter().any(|c| c.address == address)
            || findings.candidates.len() >= MAX_CANDIDATES_PER_REPLY
        {
            continue;
        }
        findings.candidates.push(Candidate { address, reason });
    }
}

fn read_key(asked: &str, body: &str, now: i64, findings: &mut Findings) -> Result<(), String> {
    if let Some(caps) = first_caps_line(body).filter(|c| c.address == asked) {
        findings.caps = Some(caps);
    }
    for found in keys::find_keys(body.as_bytes()) {
        match found {
            FoundKey::Invalid { reason } => findings.problems.push(reason),
            FoundKey::Key { address, ping_type, key_id, .. } if address != asked => {
                findings.problems.push(format!(
                    "{ping_type} key {key_id} belongs to {address}, not {asked}; the address \
                     is a candidate"
                ));
                if valid_address(&address)
                    && !findings.candidates.iter().any(|c| c.address == address)
                {
                    findings
                        .candidates
                        .push(Candidate { address, reason: CandidateReason::SelfKey });
                }
            }
            FoundKey::Key { ping_type, key_id, valid_until, .. }
                if valid_until.is_some_and(|u| u <= now) =>
            {
                findings.problems.push(format!("{ping_type} key {key_id} has expired"));
            }
            FoundKey::Key { ping_type, key_id, material, valid_from, valid_until, .. } => {
                if !findings.complete_key_types.contains(&ping_type) {
                    findings.complete_key_types.push(ping_type);
                }
                if !findings.keys.iter().any(|k| k.ping_type == ping_type && k.key_id == key_id) {
                    findings.keys.push(OfferedKey {
                        ping_type,
                        key_id,
                        material,
                        valid_from,
                        valid_until,
                    });
                }
            }
        }
    }
    if findings.keys.is_empty() && findings.caps.is_none() && findings.candidates.is_empty() {
        let why = findings.problems.first().cloned().unwrap_or_else(|| "none found".into());
        return Err(format!("key reply without a usable key ({why})"));
    }
    Ok(())
}

/// OpenPGP clear-signed text escapes lines starting with `-` as `- -`; a signed key reply
/// must be unescaped before its key blocks can be found.
fn undo_dash_escaping(body: &str) -> String {
    if !body.contains("\n- -") && !body.starts_with("- -") {
        return body.to_owned();
    }
    body.split_inclusive('\n')
        .map(|l| l.strip_prefix("- ").filter(|r| r.starts_with('-')).unwrap_or(l))
        .collect()
}

/// The key types a remailer supports according to its capabilities (`mixmaster.md` §5.1):
/// `mix` for type II, `pgp` for encrypted type I (RSA or DSA keys decide which), and clear
/// type I when it accepts unencrypted mail.
pub fn supported_types(caps: &Capabilities) -> Vec<PingType> {
    let mut types = Vec::new();
    if caps.has("mix") {
        types.push(PingType::Mix);
    }
    if caps.has("pgp") {
        types.push(PingType::CpunkRsa);
        types.push(PingType::CpunkDsa);
    }
    if caps.accepts_clear() {
        types.push(PingType::CpunkClear);
    }
    types
}
