//! Matching what came back: which of our pings, requests or self-checks a mail answers, and
//! whether it is a genuine return, a duplicate, forged (not made with our secret, or sent to
//! a tag we never issued), corrupted (ours, altered on the way), a bounce, a remailer's reply,
//! or unknown.
//!
//! Pure: the application looks up the tag in the store ([`addressee`] first, then the
//! store), and [`verdict`] decides from the mail and what the tag belongs to. Mail from the
//! network is hostile: nothing here panics on it, every step is bounded, and whatever is not
//! a genuine return or a known reply is quarantined with its reason.

pub mod announcement;
pub mod reply;

use mail_parser::Message;
use tracing::warn;

use crate::compose::openpgp::{self, DecryptError};
use crate::compose::payload::{self, PayloadError, PayloadFields, PayloadKind};
use crate::model::{
    DiscoveryEffect, Identity, MailEffect, MailKind, RequestKind, SECONDS_PER_DAY, STATS_DAYS,
    TagTarget, TaggedPing, TaggedRequest,
};

/// More MIME parts than this is no return or reply of a remailer; such mail is quarantined
/// before anything is decrypted or parsed further.
pub const MAX_MIME_PARTS: usize = 64;
/// Text parts searched for our payload (see [`open_payload`]).
const MAX_TEXT_PARTS_TRIED: usize = 3;
/// Tags expire after the statistics window: a later "return" cannot change any figure.
pub const TAG_LIFETIME_SECS: i64 = STATS_DAYS as i64 * SECONDS_PER_DAY;

/// What was decided about one mail, and what it changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub kind: MailKind,
    pub ping_id: Option<i64>,
    /// The reason (quarantine), diagnostic (bounce) or request type (reply).
    pub detail: Option<String>,
    pub effects: Vec<MailEffect>,
}

impl Verdict {
    pub fn new(kind: MailKind, detail: impl Into<String>) -> Verdict {
        Verdict { kind, ping_id: None, detail: Some(detail.into()), effects: Vec::new() }
    }

    fn for_ping(kind: MailKind, ping: &TaggedPing, detail: impl Into<String>) -> Verdict {
        Verdict { ping_id: Some(ping.id), ..Verdict::new(kind, detail) }
    }
}

/// What matching needs to know about us.
pub struct MatchContext<'a> {
    pub secret: &'a [u8],
    pub identity: &'a Identity,
}

/// The tag of the return address a parsed mail was delivered to, or the verdict on a mail
/// that names none (or one we never issue).
pub fn addressee(message: &Message<'_>, identity: &Identity) -> Result<String, Verdict> {
    let Some(tag) = find_tag(message, identity) else {
        if let Some(request) = reply_type(message.subject().unwrap_or("")) {
            // Only a reply to one of our tagged requests is believed: anyone can send mail
            // that looks like a remailer's answer.
            return Err(Verdict::new(
                MailKind::Unknown,
                format!("{request} reply sent to no request of ours"),
            ));
        }
        if is_bounce(message) {
            return Err(Verdict::new(MailKind::Unknown, "bounce that names no ping"));
        }
        return Err(Verdict::new(MailKind::Unknown, "not addressed to a ping return address"));
    };
    if !payload::looks_like_tag(&tag) {
        return Err(Verdict::new(
            MailKind::Forged,
            format!("`{}` is not a tag we issue", short(&tag)),
        ));
    }
    Ok(tag)
}

/// The verdict for a parsed mail delivered to `tag`, given what the tag belongs to (`None`:
/// no ping, request or self-check of ours has it). Pure: the store was asked beforehand.
pub fn verdict(
    ctx: &MatchContext<'_>,
    message: &Message<'_>,
    tag: &str,
    target: Option<TagTarget>,
    delivered_at: i64,
    now: i64,
) -> Verdict {
    let Some(target) = target else {
        return Verdict::new(MailKind::Forged, format!("no ping has tag {tag}"));
    };
    match target {
        TagTarget::SelfCheck { id, sent_at, .. } => {
            if is_bounce(message) {
                return Verdict::new(
                    MailKind::Bounced,
                    format!("self-check bounced: {}", bounce_reason(message)),
                );
            }
            let fields = match open_payload(message, ctx.secret, tag) {
                Ok(f) => f,
                Err((kind, why)) => return Verdict::new(kind, format!("self-check: {why}")),
            };
            if fields.kind != PayloadKind::SelfCheck || fields.id != id || fields.tag != tag {
                return Verdict::new(
                    MailKind::Forged,
                    "payload of another mail sent to a self-check tag",
                );
            }
            if sent_at.is_none() && fields.sent + TAG_LIFETIME_SECS < now {
                return Verdict::new(MailKind::Unknown, "expired self-check tag");
            }
            Verdict {
                kind: MailKind::SelfCheck,
                ping_id: None,
                detail: None,
                effects: vec![MailEffect::SelfCheckReturned {
                    id,
                    returned_at: delivered_at.max(fields.sent),
                }],
            }
        }
        TagTarget::ReplayProbe { id, first_sent_at } => {
            classify_probe_copy(ctx, message, id, first_sent_at, tag, delivered_at, now)
        }
        TagTarget::Ping(ping) => classify_return(ctx, message, &ping, tag, delivered_at, now),
        TagTarget::Request(request) => classify_reply(message, &request, delivered_at, now),
    }
}

/// A copy of a replay-protection probe: authenticated like a return (a forged or altered
/// copy proves nothing and is quarantined), then counted for the probe only. Whether it is
/// the first or a replayed second copy is the store's to say: it counts them.
fn classify_probe_copy(
    ctx: &MatchContext<'_>,
    message: &Message<'_>,
    id: i64,
    first_sent_at: Option<i64>,
    tag: &str,
    delivered_at: i64,
    now: i64,
) -> Verdict {
    if first_sent_at.is_some_and(|s| s + TAG_LIFETIME_SECS < now) {
        return Verdict::new(MailKind::Unknown, "expired replay-probe tag");
    }
    if is_bounce(message) {
        // A bounce is neither copy delivered: the probe stays as it is.
        return Verdict::new(
            MailKind::Bounced,
            format!("replay probe {id} bounced: {}", bounce_reason(message)),
        );
    }
    let fields = match open_payload(message, ctx.secret, tag) {
        Ok(f) => f,
        Err((kind, why)) => return Verdict::new(kind, format!("replay probe {id}: {why}")),
    };
    if fields.kind != PayloadKind::ReplayProbe || fields.id != id || fields.tag != tag {
        return Verdict::new(MailKind::Forged, "payload of another mail sent to a probe's tag");
    }
    Verdict {
        kind: MailKind::Probe,
        ping_id: None,
        detail: Some(format!("replay probe {id}")),
        effects: vec![MailEffect::ProbeReturned { id, returned_at: delivered_at.max(fields.sent) }],
    }
}

/// A reply to one of our requests: what it teaches us, or the reason it is quarantined.
fn classify_reply(
    message: &Message<'_>,
    request: &TaggedRequest,
    delivered_at: i64,
    now: i64,
) -> Verdict {
    let kind = request.kind;
    if is_bounce(message) {
        return Verdict::new(
            MailKind::Unknown,
            format!("{kind} request to {} bounced: {}", request.address, bounce_reason(message)),
        );
    }
    if request.sent_at.is_some_and(|s| s + TAG_LIFETIME_SECS < now) {
        return Verdict::new(MailKind::Unknown, format!("{kind} reply to an expired request"));
    }
    let body = reply_text(message);
    let findings = match reply::read_reply(kind, &request.address, &body, now) {
        Ok(f) => f,
        Err(why) => {
            return Verdict::new(MailKind::Unknown, format!("{why} (from {})", request.address));
        }
    };
    let remailer_id = request.remailer_id;
    let request_time = request.sent_at.unwrap_or(delivered_at);
    let mut effects = Vec::new();
    let mut effect = |e: DiscoveryEffect| effects.push(MailEffect::Discovery(e));
    effect(DiscoveryEffect::Answered {
        request_id: request.id,
        remailer_id,
        at: delivered_at,
        restores: matches!(kind, RequestKind::Conf | RequestKind::Key)
            && (findings.caps.is_some() || !findings.keys.is_empty()),
    });
    effect(DiscoveryEffect::Thesaurus { remailer_id, kind, body: body.clone(), at: delivered_at });
    if findings.not_a_remailer {
        effect(DiscoveryEffect::NotARemailer { remailer_id, at: delivered_at });
    }
    // Key replies carry the capability line too (without the Remailer-Type).
    if let Some(caps) = findings.caps.clone() {
        effect(DiscoveryEffect::Capabilities {
            remailer_id,
            caps,
            remailer_type: findings.remailer_type.clone(),
            request_time,
        });
    }
    if kind == RequestKind::Key && !findings.complete_key_types.is_empty() {
        effect(DiscoveryEffect::Keys {
            remailer_id,
            keys: findings.keys.clone(),
            complete_types: findings.complete_key_types.clone(),
            at: delivered_at,
        });
    }
    if !findings.candidates.is_empty() {
        effect(DiscoveryEffect::Candidates {
            recommender: request.address.clone(),
            candidates: findings.candidates.clone(),
            at: delivered_at,
        });
    }
    let mut detail = kind.as_str().to_owned();
    for p in findings.problems.iter().take(5) {
        detail.push_str("; ");
        detail.push_str(&short_header(p));
    }
    for p in &findings.problems {
        warn!(remailer = %request.address, request = %kind, "reply: {p}");
    }
    Verdict { kind: MailKind::Reply, ping_id: None, detail: Some(detail), effects }
}

/// The text of a reply: its text parts, else the raw message after the header. Cut at
/// [`reply::MAX_REPLY_BYTES`].
fn reply_text(message: &Message<'_>) -> String {
    let mut text: String = (0..message.text_body_count())
        .filter_map(|i| message.body_text(i))
        .collect::<Vec<_>>()
        .join("\n");
    if text.trim().is_empty() {
        let raw = message.raw_message();
        let start = message.root_part().raw_body_offset() as usize;
        text = String::from_utf8_lossy(raw.get(start..).unwrap_or_default()).into_owned();
    }
    let mut cut = text.len().min(reply::MAX_REPLY_BYTES);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text
}

fn classify_return(
    ctx: &MatchContext<'_>,
    message: &Message<'_>,
    ping: &TaggedPing,
    tag: &str,
    delivered_at: i64,
    now: i64,
) -> Verdict {
    if ping.sent_at.is_some_and(|s| s + TAG_LIFETIME_SECS < now) {
        return Verdict::for_ping(
            MailKind::Unknown,
            ping,
            "tag expired (older than the statistics window)",
        );
    }
    if is_bounce(message) {
        let reason = bounce_reason(message);
        return Verdict {
            effects: vec![MailEffect::Bounced {
                ping_id: ping.id,
                reason: reason.clone(),
                at: delivered_at,
            }],
            ..Verdict::for_ping(MailKind::Bounced, ping, reason)
        };
    }
    let fields = match open_payload(message, ctx.secret, tag) {
        Ok(f) => f,
        Err((MailKind::Corrupted, why)) => {
            return Verdict {
                effects: vec![MailEffect::Corrupted { ping_id: ping.id, at: delivered_at }],
                ..Verdict::for_ping(MailKind::Corrupted, ping, why)
            };
        }
        Err((kind, why)) => return Verdict::for_ping(kind, ping, why),
    };
    if let Some(why) = mismatch(&fields, ping, tag) {
        // A genuine payload, but of another ping: a return replayed to a different address.
        return Verdict::for_ping(MailKind::Forged, ping, why);
    }
    let mut effects = vec![MailEffect::Returned {
        ping_id: ping.id,
        sent: fields.sent,
        // Clocks can disagree by a second: a return never arrives before it was sent.
        returned_at: delivered_at.max(fields.sent),
    }];
    if ping.chain_type.is_none() {
        let (remailer_id, _, ping_type, _) = &ping.hops[0];
        effects.push(MailEffect::FromLine {
            remailer_id: *remailer_id,
            ping_type: *ping_type,
            with_from: fields.with_from,
            header: message.header_raw("From").map(|f| short_header(f.trim())),
            seen_at: delivered_at,
        });
    }
    Verdict { kind: MailKind::Returned, ping_id: Some(ping.id), detail: None, effects }
}

/// Why a verified payload does not belong to the ping its tag names, if it does not.
fn mismatch(fields: &PayloadFields, ping: &TaggedPing, tag: &str) -> Option<String> {
    if fields.tag != tag || fields.id != ping.id {
        return Some(format!("payload of ping {} sent to the tag of ping {}", fields.id, ping.id));
    }
    let expected_kind =
        if ping.chain_type.is_some() { PayloadKind::Chain } else { PayloadKind::Ping };
    if fields.kind != expected_kind || fields.hops.len() != ping.hops.len() {
        return Some("payload kind does not match the ping".into());
    }
    for (f, (_, address, ping_type, key_id)) in fields.hops.iter().zip(&ping.hops) {
        let key_matches = key_id.as_deref().is_none_or(|k| k == f.key_id);
        if &f.address != address || f.ping_type != *ping_type || !key_matches {
            return Some(format!(
                "payload names hop {} {}, the ping went to {address}",
                f.address, f.ping_type
            ));
        }
    }
    None
}

/// Decrypts and verifies the payload of a mail body. The error carries the verdict kind.
///
/// A few places are tried, no more: the first [`MAX_TEXT_PARTS_TRIED`] text parts (decoded
/// from their transfer encoding; a remailer may put a notice before our text) and the raw
/// message (a body whose MIME decoding failed may still hold the armour). Each try refuses
/// what this pinger never writes before spending anything on it
/// ([`openpgp::decrypt_symmetric_salted`]), so one mail costs at most four openings of one of
/// our own payloads, however many parts or copies of an armour it carries.
fn open_payload(
    message: &Message<'_>,
    secret: &[u8],
    tag: &str,
) -> Result<PayloadFields, (MailKind, String)> {
    let password = payload::payload_password(secret);
    let salt = payload::payload_salt(secret, tag);
    let texts = (0..message.text_body_count().min(MAX_TEXT_PARTS_TRIED))
        .filter_map(|i| message.body_text(i).map(|t| t.as_bytes().to_vec()))
        .chain(std::iter::once(message.raw_message().to_vec()));
    let mut outcome = Err((MailKind::Forged, "no OpenPGP message in the body".to_owned()));
    for text in texts {
        match openpgp::decrypt_symmetric_salted(password.as_bytes(), salt, &text) {
            Ok(plain) => {
                return payload::verify(&plain, secret).map_err(|e| match e {
                    PayloadError::BadMac => (MailKind::Forged, e.to_string()),
                    PayloadError::DigestMismatch | PayloadError::Malformed(_) => {
                        (MailKind::Corrupted, e.to_string())
                    }
                });
            }
            Err(DecryptError::NoMessage) => {}
            Err(DecryptError::WrongKey) => {
                outcome =
                    Err((MailKind::Forged, "payload not encrypted under this pinger's key".into()));
            }
            Err(e @ DecryptError::NotOurs(_)) => outcome = Err((MailKind::Forged, e.to_string())),
            Err(DecryptError::Damaged(why)) => {
                outcome = Err((MailKind::Corrupted, format!("payload damaged in transit: {why}")));
            }
        }
    }
    outcome
}

/// The tag of the first recipient header naming one of our return addresses. Postfix's
/// `Delivered-To` / `X-Original-To` come first: they are what the MTA delivered to.
pub fn find_tag(message: &Message<'_>, identity: &Identity) -> Option<String> {
    let prefix = format!(
        "{}{}",
        identity.address.local_part().to_ascii_lowercase(),
        identity.delimiter.as_str()
    );
    let domain = identity.address.domain().to_ascii_lowercase();
    for name in ["Delivered-To", "X-Original-To", "To", "Cc"] {
        for (header, value) in message.headers_raw() {
            if !header.eq_ignore_ascii_case(name) {
                continue;
            }
            let found = value
                .split(|c: char| c == ',' || c == '<' || c == '>' || c == '"' || c.is_whitespace())
                .filter_map(|token| token.rsplit_once('@'))
                .find_map(|(local, dom)| {
                    let local = local.to_ascii_lowercase();
                    let tag = local.strip_prefix(&prefix)?;
                    (dom.eq_ignore_ascii_case(&domain) && !tag.is_empty()).then(|| tag.to_owned())
                });
            if found.is_some() {
                return found;
            }
        }
    }
    None
}

/// A delivery status notification (RFC 3464) or a classic MAILER-DAEMON bounce.
pub fn is_bounce(message: &Message<'_>) -> bool {
    let content_type = message.header_raw("Content-Type").unwrap_or("").to_ascii_lowercase();
    if content_type.contains("multipart/report") && content_type.contains("delivery-status") {
        return true;
    }
    let from = message.header_raw("From").unwrap_or("").to_ascii_lowercase();
    let subject = message.subject().unwrap_or("").to_ascii_lowercase();
    (from.contains("mailer-daemon") || from.contains("postmaster"))
        && (subject.contains("undeliver")
            || subject.contains("returned")
            || subject.contains("failure")
            || subject.contains("delivery"))
}

/// The most specific reason a bounce gives: `Diagnostic-Code`, else `Status`, else Subject.
pub fn bounce_reason(message: &Message<'_>) -> String {
    let raw = String::from_utf8_lossy(message.raw_message());
    let field = |name: &str| {
        raw.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    field("Diagnostic-Code")
        .or_else(|| field("Status").map(|s| format!("status {s}")))
        .or_else(|| message.subject().map(str::to_owned))
        .map(|s| short_header(&s))
        .unwrap_or_else(|| "bounce without a reason".into())
}

/// The request a remailer answers with this Subject (`mixmaster.md` §5), if any.
pub fn reply_type(subject: &str) -> Option<&'static str> {
    let s = subject.trim().to_ascii_lowercase();
    if s.starts_with("capabilities of the ") && s.ends_with(" remailer") {
        Some("conf")
    } else if s.starts_with("remailer key for ") {
        Some("key")
    } else if s.starts_with("statistics for the ") && s.ends_with(" remailer") {
        Some("stats")
    } else if s.starts_with("admin key for the ") {
        Some("adminkey")
    } else if s.starts_with("your help request") || s.starts_with("remailer-help") {
        Some("help")
    } else {
        None
    }
}

/// The local MTA's delivery time: the date of the topmost `Received:` header.
pub fn received_time(message: &Message<'_>) -> Option<i64> {
    message.received().and_then(|r| r.date()).map(|d| d.to_timestamp())
}

fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

fn short_header(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests;
