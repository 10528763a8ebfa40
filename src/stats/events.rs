//! Status events, pure: what changed since the last build, from what the last build saw (the
//! watch) and what this one sees, as of `now`.
//!
//! The watch is a small map `subject → (value, since)` the store keeps between builds:
//! `status:<id>:<family>` (`up` or `silent`), `key:<id>:<type>` (the current key id),
//! `caps:<id>`, `requests:<id>` (the remailer's status), `downtime:<id>` (its state),
//! `pinger:down` (the end of the last reported gap between the daemon's runs) and
//! `pinger:mail` (`ok` or `failing`). A subject seen for the first time sets its value
//! without an event (a new store, a new remailer): only changes are events.
//!
//! **Hysteresis.** One lost ping is not an outage: a family goes silent when its last
//! [`SILENT_AFTER`] observations are failures, and resumes when its last
//! [`RESUMED_AFTER`] observations came back. Observations are those of the stability figures
//! ([`super::stability::observations`]): the pinger's own downtime, its own mail failures and
//! announced downtime give none, so none of them makes a remailer silent.

use std::collections::BTreeMap;

use super::downtime::short_time;
use super::stability::Observation;
use crate::model::downtime::{DowntimeNotice, DowntimeSource, DowntimeState};
use crate::model::event::{Event, EventKind, EventRemailer, Watch, Watched};
use crate::model::{ChainType, PingType, ProbeVerdict, Remailer, RemailerStatus, ReplayStatus};

/// Failures in a row that make a family silent.
pub const SILENT_AFTER: usize = 3;
/// Returns in a row that make a silent family resumed.
pub const RESUMED_AFTER: usize = 2;

/// What one build sees.
pub struct EventInputs<'a> {
    pub remailers: &'a [Remailer],
    /// Per remailer row id and family, oldest first.
    pub observations: &'a BTreeMap<(i64, ChainType), Vec<Observation>>,
    /// Every downtime still of interest (not over for long), with its state.
    pub downtimes: &'a [DowntimeNotice],
    /// When the pinger was not running ([`super::stability::pinger_downtime`]).
    pub pinger_down: &'a [(i64, i64)],
    /// When its own mail path failed ([`super::own_failure_windows`]).
    pub own_failures: &'a [(i64, i64)],
    /// What the replay-protection probes found, by address.
    pub replay: &'a BTreeMap<String, ReplayStatus>,
    /// Remailers whose keys differ between the pingers of the consensus, by address, with
    /// who holds what (empty without a consensus).
    pub key_disagreements: &'a BTreeMap<String, String>,
}

/// `1 d 4 h`, `3 h 20 min`, `12 min`.
pub fn duration_text(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// A change of a family's status found by [`walk`].
struct Transition {
    silent: bool,
    /// The first observation of the run that made it.
    at: i64,
    /// The length of that run when it was decided.
    run: usize,
}

/// Walks `observations` (oldest first) from the state `start` (`None`: not known yet, and
/// nothing is reported until it is), with the hysteresis: [`SILENT_AFTER`] failures in a row
/// make an up family silent, [`RESUMED_AFTER`] returns in a row a silent one up. Returns the
/// transitions and the state it ends in (`None` if still not known). Walking all settled
/// observations, not only the newest, also finds an outage that was over before its
/// failures were known (a lost ping counts only after its allowance).
fn walk(
    observations: &[Observation],
    start: Option<Watched>,
) -> (Vec<Transition>, Option<Watched>) {
    let reporting = start.is_some();
    let mut state = start;
    let mut transitions = Vec::new();
    let mut run: Option<(bool, i64, usize)> = None;
    for o in observations {
        run = match run {
            Some((up, at, n)) if up == o.up => Some((up, at, n + 1)),
            _ => Some((o.up, o.at, 1)),
        };
        let Some((up, at, n)) = run else { continue };
        let silent_now = state.as_ref().is_some_and(|s| s.value == "silent");
        let next = match (&state, up) {
            (None, true) => Some("up"),
            (None, false) if n >= SILENT_AFTER => Some("silent"),
            (Some(_), false) if !silent_now && n >= SILENT_AFTER => Some("silent"),
            (Some(_), true) if silent_now && n >= RESUMED_AFTER => Some("up"),
            _ => None,
        };
        if let Some(value) = next {
            if reporting {
                transitions.push(Transition { silent: value == "silent", at, run: n });
            }
            state = Some(Watched { value: value.to_owned(), since: at });
        }
    }
    (transitions, state)
}

struct Detector<'a> {
    previous: &'a Watch,
    watch: Watch,
    events: Vec<Event>,
    now: i64,
}

impl Detector<'_> {
    /// Records `value` for `subject`; returns the previous one when it changed (`None` for a
    /// subject seen for the first time, or unchanged).
    fn see(&mut self, subject: String, value: &str, since: i64) -> Option<Watched> {
        let previous = self.previous.get(&subject).cloned();
        match previous {
            Some(p) if p.value == value => {
                self.watch.insert(subject, p);
                None
            }
            other => {
                self.watch.insert(subject, Watched { value: value.to_owned(), since });
                other
            }
        }
    }

    fn emit(
        &mut self,
        kind: EventKind,
        at: i64,
        remailer: Option<&Remailer>,
        family: Option<ChainType>,
        detail: String,
    ) {
        self.events.push(Event {
            id: 0,
            kind,
            at: at.min(self.now),
            recorded_at: self.now,
            remailer: remailer.map(|r| EventRemailer {
                id: r.id,
                address: r.address.clone(),
                nick: r.nick.clone(),
                listed: r.is_listed(),
            }),
            family,
            detail,
        });
    }

    fn status(&mut self, r: &Remailer, family: ChainType, observations: &[Observation]) {
        let subject = format!("status:{}:{family}", r.id);
        let previous = self.previous.get(&subject).cloned();
        let (transitions, last) = match &previous {
            // First sight: where the observations leave it, without events (a new store, a
            // new remailer; its past is not news).
            None => {
                let (_, last) = walk(observations, None);
                match last {
                    Some(w) => (Vec::new(), w),
                    None => return,
                }
            }
            Some(p) => {
                let from: Vec<Observation> =
                    observations.iter().copied().filter(|o| o.at >= p.since).collect();
                let (transitions, last) = walk(&from, Some(p.clone()));
                (transitions, last.unwrap_or_else(|| p.clone()))
            }
        };
        self.watch.insert(subject, last);
        let mut before_since = previous.map_or(i64::MIN, |p| p.since);
        for t in transitions {
            if t.silent {
                let detail = format!(
                    "{} pings in a row, sent from {}, did not come back",
                    t.run,
                    short_time(t.at)
                );
                self.emit(EventKind::Silent, t.at, Some(r), Some(family), detail);
            } else {
                let detail = format!(
                    "pings come back again after {} without",
                    duration_text(t.at - before_since)
                );
                self.emit(EventKind::Resumed, t.at, Some(r), Some(family), detail);
            }
            before_since = t.at;
        }
    }

    fn keys(&mut self, r: &Remailer) {
        for ping_type in PingType::ALL {
            let of_type: Vec<_> = r.keys.iter().filter(|k| k.ping_type == ping_type).collect();
            if of_type.is_empty() {
                continue;
            }
            let current = of_type
                .iter()
                .filter(|k| k.is_current(self.now))
                .max_by_key(|k| (k.first_seen, k.id))
                .copied();
            let value = current.map_or("", |k| k.key_id.as_str());
            let since = current.map_or(self.now, |k| k.first_seen);
            let subject = format!("key:{}:{ping_type}", r.id);
            let Some(before) = self.see(subject, value, since) else { continue };
            match current {
                Some(k) => {
                    let was = if before.value.is_empty() {
                        "none was current".to_owned()
                    } else {
                        format!("was {}", before.value)
                    };
                    let detail = format!("new {ping_type} key {} ({was})", k.key_id);
                    self.emit(EventKind::KeyChanged, k.first_seen, Some(r), None, detail);
                }
                None => {
                    let detail =
                        format!("{ping_type} key {} retired; no key replaces it", before.value);
                    self.emit(EventKind::KeyRetired, self.now, Some(r), None, detail);
                }
            }
        }
    }

    fn caps(&mut self, r: &Remailer) {
        let Some(caps) = r.caps.as_deref() else { return };
        let subject = format!("caps:{}", r.id);
        if let Some(before) = self.see(subject, caps, self.now)
            && !before.value.is_empty()
        {
            let detail = format!("now `{caps}` (was `{}`)", before.value);
            self.emit(EventKind::CapsChanged, self.now, Some(r), None, detail);
        }
    }

    fn requests(&mut self, r: &Remailer) {
        let subject = format!("requests:{}", r.id);
        let Some(before) = self.see(subject, r.status.as_str(), self.now) else { return };
        let reason = r.status_reason.clone().unwrap_or_default();
        match (before.value.as_str(), r.status) {
            ("active", RemailerStatus::Unresponsive) => {
                let detail =
                    if reason.is_empty() { "requests go unanswered".into() } else { reason };
                self.emit(EventKind::Unresponsive, self.now, Some(r), None, detail);
            }
            ("unresponsive", RemailerStatus::Active) => {
                let detail =
                    format!("answers again after {}", duration_text(self.now - before.since));
                self.emit(EventKind::Answering, self.now, Some(r), None, detail);
            }
            _ => {}
        }
    }

    /// The newest conclusive probe verdict: broken when a replay came back, and fixed when a
    /// later probe's replay was dropped.
    fn replay(&mut self, r: &Remailer, status: &ReplayStatus) {
        let Some(verdict) = status.verdict else { return };
        let at = status.decided_at.unwrap_or(self.now);
        let subject = format!("replay:{}", r.id);
        let was = self.previous.get(&subject).map(|b| b.value.clone());
        self.see(subject, verdict.as_str(), at);
        match (was.as_deref(), verdict) {
            (Some("replayed"), ProbeVerdict::Replayed) => {}
            (_, ProbeVerdict::Replayed) => {
                let detail = format!(
                    "it delivered both copies of a packet sent twice ({} of {} probes so far): \
                     whoever watches its mail can trace a message by replaying it",
                    status.replayed,
                    status.replayed + status.protected
                );
                self.emit(EventKind::ReplayBroken, at, Some(r), None, detail);
            }
            (Some("replayed"), ProbeVerdict::Protected) => {
                let detail = "a replayed packet was dropped again".to_owned();
                self.emit(EventKind::ReplayFixed, at, Some(r), None, detail);
            }
            _ => {}
        }
    }

    /// Whether the pingers of the consensus publish the same keys for the remailer.
    fn peer_keys(&mut self, r: &Remailer, disagreement: Option<&String>) {
        let subject = format!("peer-keys:{}", r.id);
        let was = self.previous.get(&subject).map(|b| b.value.clone());
        let now = if disagreement.is_some() { "disagree" } else { "agree" };
        self.see(subject, now, self.now);
        match (was.as_deref(), disagreement) {
            (Some("disagree"), Some(_)) => {}
            (_, Some(who)) => {
                let detail = format!(
                    "the pingers of the consensus publish different keys for it ({who}): a stale \
                     key at one of them, or someone in the middle handing out their own"
                );
                self.emit(EventKind::KeysDisagree, self.now, Some(r), None, detail);
            }
            (Some("disagree"), None) => {
                let detail = "every pinger of the consensus publishes the same keys again".into();
                self.emit(EventKind::KeysAgree, self.now, Some(r), None, detail);
            }
            _ => {}
        }
    }

    fn downtime(&mut self, n: &DowntimeNotice, r: Option<&Remailer>) {
        let d = &n.downtime;
        let a = &d.announcement;
        let subject = format!("downtime:{}", d.id);
        let before = self.previous.get(&subject).and_then(|b| DowntimeState::parse(&b.value));
        self.see(subject, n.state.as_str(), self.now);
        use DowntimeState::*;
        if before.is_none() && n.state != Over {
            let by = match d.source {
                DowntimeSource::Operator => "entered by the pinger's operator",
                DowntimeSource::Signed => "signed with the remailer's admin key",
            };
            let detail = format!("{} ({by})", n.text);
            self.emit(EventKind::DowntimeAnnounced, d.announced_at, r, None, detail);
        }
        if matches!(n.state, Active | Overdue) && matches!(before, None | Some(Upcoming)) {
            self.emit(EventKind::DowntimeStarted, a.starts_at, r, None, n.text.clone());
        }
        if n.state == Overdue && before != Some(Overdue) {
            self.emit(EventKind::DowntimeOverdue, a.until, r, None, n.text.clone());
        }
        if n.state == Over && matches!(before, Some(Active | Overdue)) {
            let how = if d.removed_at.is_some() { "withdrawn" } else { "over" };
            let detail = format!("{how}: {}", n.text);
            self.emit(EventKind::DowntimeEnded, self.now, r, None, detail);
        }
    }

    fn pinger(&mut self, pinger_down: &[(i64, i64)], own_failures: &[(i64, i64)]) {
        // Gaps between runs, once the daemon runs again (an open gap is not over yet).
        let closed: Vec<(i64, i64)> =
            pinger_down.iter().copied().filter(|&(_, end)| end < self.now).collect();
        let reported: i64 =
            self.previous.get("pinger:down").and_then(|w| w.value.parse().ok()).unwrap_or(i64::MIN);
        let first_sight = !self.previous.contains_key("pinger:down");
        let last_end = closed.iter().map(|g| g.1).max().unwrap_or(reported).max(reported);
        let last = if last_end == i64::MIN { String::new() } else { last_end.to_string() };
        self.watch.insert("pinger:down".into(), Watched { value: last, since: self.now });
        if !first_sight {
            for (start, end) in closed.into_iter().filter(|g| g.1 > reported) {
                let detail = format!(
                    "the pinger was not running from {} to {} ({}); no remailer is charged for that time",
                    short_time(start),
                    short_time(end),
                    duration_text(end - start)
                );
                self.emit(EventKind::PingerDown, start, None, None, detail);
            }
        }
        let failing = own_failures.last().filter(|w| w.1 == i64::MAX && w.0 <= self.now);
        let (value, since) = match failing {
            Some(w) => ("failing", w.0),
            None => ("ok", self.now),
        };
        let Some(before) = self.see("pinger:mail".into(), value, since) else { return };
        if let Some(w) = failing {
            let detail = format!(
                "the pinger's self-checks do not come back since {}; pings sent since then are held against no remailer",
                short_time(w.0)
            );
            self.emit(EventKind::PingerMailFailing, w.0, None, None, detail);
        } else {
            let at = own_failures.last().map_or(self.now, |w| w.1.min(self.now));
            let detail = format!(
                "the pinger's own mail works again after {}",
                duration_text(at - before.since)
            );
            self.emit(EventKind::PingerMailRestored, at, None, None, detail);
        }
    }
}

/// The events of this build and the watch to keep, from the previous watch.
pub fn detect(previous: &Watch, inputs: &EventInputs<'_>, now: i64) -> (Watch, Vec<Event>) {
    let mut d = Detector { previous, watch: Watch::new(), events: Vec::new(), now };
    for r in inputs.remailers {
        if r.status == RemailerStatus::Disabled {
            // Neither pinged nor asked: keep what was seen, say nothing.
            let prefix = |s: &str| {
                s.split(':').nth(1).is_some_and(|id| id == r.id.to_string())
                    && !s.starts_with("downtime:")
            };
            for (k, v) in previous.iter().filter(|(k, _)| prefix(k)) {
                d.watch.insert(k.clone(), v.clone());
            }
            continue;
        }
        for family in ChainType::ALL {
            let observations =
                inputs.observations.get(&(r.id, family)).map(Vec::as_slice).unwrap_or_default();
            d.status(r, family, observations);
        }
        d.keys(r);
        d.caps(r);
        d.requests(r);
        if let Some(status) = inputs.replay.get(&r.address) {
            d.replay(r, status);
        }
        d.peer_keys(r, inputs.key_disagreements.get(&r.address.to_ascii_lowercase()));
    }
    for n in inputs.downtimes {
        let r = inputs.remailers.iter().find(|r| r.id == n.downtime.remailer_id);
        d.downtime(n, r);
    }
    d.pinger(inputs.pinger_down, inputs.own_failures);
    d.events.sort_by_key(|e| (e.at, e.kind));
    (d.watch, d.events)
}

#[cfg(test)]
mod tests;
