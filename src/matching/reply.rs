//! Remailer discovery: what we ask remailers (`remailer-conf`, `-key`, `-help`, `-stats`,
//! `-adminkey`) and what we learn from their answers (`echolot.md` §5, `mixmaster.md` §5).
//!
//! Everything here is pure: a reply body comes in, [`Findings`] go out, and the store applies
//! them in the same transaction that records the mail. Replies are hostile input: every
//! field is bounded and checked, nothing panics, and a reply that says nothing usable is
//! refused with a reason (the ingester quarantines it).

use crate::compose::keys::{self, FoundKey};
use crate::model::caps::{find_caps_line, valid_address};
use crate::model::{Candidate, CandidateReason, Capabilities, OfferedKey, PingType, RequestKind};

#[cfg(test)]
mod tests;

/// A reply is stored (and published) up to this size.
pub const MAX_REPLY_BYTES: usize = 64 << 10;
/// At most this many supported-remailer lines are read from one reply.
const MAX_CANDIDATES_PER_REPLY: usize = 200;

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
    let caps = find_caps_line(body)
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
    if let Some(caps) = find_caps_line(body).filter(|c| c.address == asked) {
        findings.caps = Some(caps);
    }
    for found in keys::find_keys(body.as_bytes(), now) {
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
