//! Downtime announcements from remailer operators (RFC 636: "supplied by the host before it
//! goes down"): a mail to the pinger whose body holds a text cleartext-signed with the
//! remailer's admin key (`gpg --clearsign`):
//!
//! ```text
//! Fathometer-Downtime: 1
//! Remailer: mix@remailer.example
//! Unavailable-From: 2026-12-02 14:00 UTC
//! Expected-Back: 2026-12-02 16:30 UTC
//! Reason: hardware maintenance
//! ```
//!
//! `Unavailable-From` may be left out (from the signature's time). Times are UTC, written
//! as `2026-12-02 16:30 UTC`, RFC 3339, or a span after the signature (`+2h`). Two steps,
//! both pure: [`claimed_remailer`] reads which remailer the (still unverified) text names,
//! the application looks up that remailer's admin key, and [`verdict`] verifies and decides.
//! Only a signature by the admin key the pinger holds for that very remailer is believed;
//! anything else is quarantined with its reason and never applied.

use mail_parser::Message;

use crate::compose::openpgp::{self, VerifyError};
use crate::model::downtime::Announcement;
use crate::model::time::parse_time;
use crate::model::{MailEffect, MailKind, SECONDS_PER_DAY};

use super::Verdict;

/// The field that makes a mail an announcement, and its only version.
const MARKER: &str = "fathometer-downtime";
const VERSION: &str = "1";
/// An announcement signed longer ago than this is refused: it was meant for another time.
pub const MAX_SIGNATURE_AGE_SECS: i64 = 7 * SECONDS_PER_DAY;

/// The admin key the pinger holds for the remailer an announcement names.
#[derive(Debug, Clone)]
pub struct AdminKey {
    pub remailer_id: i64,
    /// The admin-key reply (or the imported key): armoured key blocks, prose around them.
    pub armoured: String,
    /// When the newest signed announcement applied for this remailer was signed.
    pub newest_signed: Option<i64>,
}

/// The text parts of a mail, decoded, at most three.
fn texts(message: &Message<'_>) -> Vec<String> {
    let mut out: Vec<String> = (0..message.text_body_count().min(3))
        .filter_map(|i| message.body_text(i).map(|t| t.into_owned()))
        .collect();
    if out.is_empty() {
        let start = message.root_part().raw_body_offset() as usize;
        let raw = message.raw_message().get(start..).unwrap_or_default();
        out.push(String::from_utf8_lossy(&raw[..raw.len().min(256 * 1024)]).into_owned());
    }
    out
}

/// `name: value` lines of a text, names lower-cased.
fn fields(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim();
            (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
                .then(|| (name.to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, String> {
    let mut found = fields.iter().filter(|(n, _)| n == name);
    let first = found.next().map(|(_, v)| v.as_str());
    if found.next().is_some() {
        return Err(format!("`{name}` given twice"));
    }
    Ok(first)
}

/// Whether a mail is a downtime announcement (signed or not): one of its texts has the
/// `Fathometer-Downtime:` field.
pub fn is_announcement(message: &Message<'_>) -> bool {
    texts(message).iter().any(|t| fields(t).iter().any(|(n, _)| n == MARKER))
}

/// The remailer address an announcement names (not verified yet), or the verdict on one that
/// names none or is not signed.
pub fn claimed_remailer(message: &Message<'_>) -> Result<String, Verdict> {
    let texts = texts(message);
    let Some(block) = texts.iter().find_map(|t| openpgp::signed_block(t)) else {
        return Err(Verdict::new(
            MailKind::Forged,
            "downtime announcement not signed: clearsign it with the remailer's admin key",
        ));
    };
    let inner = block.lines().skip_while(|l| !l.trim().is_empty()).collect::<Vec<_>>().join("\n");
    let fields = fields(&inner);
    match field(&fields, "remailer") {
        Ok(Some(address)) if !address.is_empty() => {
            Ok(address.trim_matches(|c| c == '<' || c == '>').to_ascii_lowercase())
        }
        Ok(_) => Err(Verdict::new(MailKind::Unknown, "downtime announcement names no `Remailer:`")),
        Err(why) => Err(Verdict::new(MailKind::Unknown, format!("downtime announcement: {why}"))),
    }
}

/// The verdict on an announcement for `address`, given the admin key held for it (`None`:
/// no such remailer, or no admin key), as of `now`.
pub fn verdict(
    message: &Message<'_>,
    address: &str,
    admin: Option<&AdminKey>,
    now: i64,
) -> Verdict {
    let reject = |kind, why: String| {
        Verdict::new(kind, format!("downtime announcement for {address}: {why}"))
    };
    let Some(admin) = admin else {
        return reject(
            MailKind::Unknown,
            "no admin key held for it (the pinger asks remailer-adminkey daily; the operator \
             can import one with `fathometer downtime admin-key`)"
                .into(),
        );
    };
    let texts = texts(message);
    let Some(block) = texts.iter().find_map(|t| openpgp::signed_block(t)) else {
        return reject(MailKind::Forged, "not signed".into());
    };
    let verified = match openpgp::verify_clearsigned(block, &admin.armoured, now) {
        Ok(v) => v,
        Err(e @ VerifyError::NoKey(_)) => return reject(MailKind::Unknown, e.to_string()),
        Err(e) => return reject(MailKind::Forged, e.to_string()),
    };
    let fields = fields(&verified.text);
    let read = || -> Result<Announcement, String> {
        if field(&fields, MARKER)? != Some(VERSION) {
            return Err(format!("`Fathometer-Downtime: {VERSION}` missing from the signed text"));
        }
        let named = field(&fields, "remailer")?.unwrap_or_default();
        if !named.trim_matches(|c| c == '<' || c == '>').eq_ignore_ascii_case(address) {
            return Err("the signed text names another remailer".into());
        }
        let signed = verified.signed_at;
        let starts_at = match field(&fields, "unavailable-from")? {
            Some(t) => parse_time(t, signed)?,
            None => signed,
        };
        let until = parse_time(
            field(&fields, "expected-back")?.ok_or("`Expected-Back:` missing")?,
            signed,
        )?;
        let reason = field(&fields, "reason")?.ok_or("`Reason:` missing")?;
        Announcement::checked(starts_at, until, reason, now)
    };
    let announcement = match read() {
        Ok(a) => a,
        Err(why) => return reject(MailKind::Unknown, why),
    };
    if now - verified.signed_at > MAX_SIGNATURE_AGE_SECS {
        return reject(MailKind::Unknown, "signed more than 7 days ago".into());
    }
    if admin.newest_signed.is_some_and(|t| t >= verified.signed_at) {
        return Verdict::new(
            MailKind::Duplicate,
            format!(
                "downtime announcement for {address} replayed: one signed as late or later was \
                 applied"
            ),
        );
    }
    let detail =
        format!("downtime announcement for {address} accepted (signed by {})", verified.signer);
    Verdict {
        kind: MailKind::Reply,
        ping_id: None,
        detail: Some(detail),
        effects: vec![MailEffect::SignedDowntime {
            remailer_id: admin.remailer_id,
            announcement,
            signer: verified.signer,
            signed_at: verified.signed_at,
            at: now,
        }],
    }
}
