//! Announced downtime (RFC 636), pure: where each announced downtime stands as of `now`,
//! the sentence clients are shown, and the intervals the stability figures treat as unknown
//! time. The 12-day reliability ignores all of this: a down remailer must look down.

use std::collections::BTreeMap;

use crate::model::downtime::{Downtime, DowntimeNotice, DowntimeState, OVERDUE_SHOWN_SECS};
use crate::model::{Dataset, Ping, SLOT_SECS};

/// Whether the remailer is back after `d`: a ping sent from the last slot before the expected
/// end on (and not before the start) came back by `now`. A ping sent before that proves
/// nothing about the end of the work.
pub fn came_back(pings: &[Ping], d: &Downtime, now: i64) -> bool {
    let from = d.announcement.starts_at.max(d.announcement.until - SLOT_SECS);
    pings.iter().any(|p| p.sent >= from && p.returned.is_some_and(|r| r <= now))
}

/// Where `d` stands at `now`, given whether the remailer came back ([`came_back`]).
pub fn state(d: &Downtime, back: bool, now: i64) -> DowntimeState {
    let a = &d.announcement;
    if d.removed_at.is_some_and(|t| t <= now) {
        DowntimeState::Over
    } else if now < a.starts_at {
        DowntimeState::Upcoming
    } else if now < a.until {
        DowntimeState::Active
    } else if back || now >= a.until.saturating_add(OVERDUE_SHOWN_SECS) {
        DowntimeState::Over
    } else {
        DowntimeState::Overdue
    }
}

/// `Tue 02 Dec 16:30 UTC`.
pub fn short_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%a %d %b %H:%M UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// The RFC 636 sentence for `d` in `state`.
pub fn describe(d: &Downtime, state: DowntimeState) -> String {
    let a = &d.announcement;
    let (reason, from, until) = (&a.reason, short_time(a.starts_at), short_time(a.until));
    match state {
        DowntimeState::Upcoming => {
            format!("unavailable from {from} because of {reason}, expected back {until}")
        }
        DowntimeState::Active => format!("unavailable because of {reason}, expected back {until}"),
        DowntimeState::Overdue => {
            format!("unavailable because of {reason}, expected back {until}: overdue")
        }
        DowntimeState::Over => format!("was unavailable because of {reason} ({from} to {until})"),
    }
}

/// Every downtime of `downtimes` with its state as of `now`, the pings of `dataset` telling
/// whether a remailer came back.
pub fn notices(downtimes: &[Downtime], dataset: &Dataset, now: i64) -> Vec<DowntimeNotice> {
    downtimes
        .iter()
        .map(|d| {
            let pings = dataset
                .remailers
                .iter()
                .find(|r| r.address == d.address)
                .map(|r| r.pings.as_slice())
                .unwrap_or_default();
            let state = state(d, came_back(pings, d, now), now);
            DowntimeNotice { downtime: d.clone(), state, text: describe(d, state) }
        })
        .collect()
}

/// The notice each remailer shows: an active or overdue one, else the next upcoming one.
pub fn current(notices: &[DowntimeNotice]) -> BTreeMap<String, DowntimeNotice> {
    let mut out: BTreeMap<String, DowntimeNotice> = BTreeMap::new();
    // Active and overdue first, then upcoming by start; the first per remailer wins.
    let mut shown: Vec<&DowntimeNotice> =
        notices.iter().filter(|n| n.state != DowntimeState::Over).collect();
    shown.sort_by_key(|n| {
        (n.state == DowntimeState::Upcoming, n.downtime.announcement.starts_at, n.downtime.id)
    });
    for n in shown {
        out.entry(n.downtime.address.clone()).or_insert_with(|| n.clone());
    }
    out
}

/// The announced intervals per remailer row id: unknown time for the stability figures. A
/// downtime the operator removed counts for nothing; one a newer announcement replaced
/// counts until it was replaced.
pub fn announced_intervals(downtimes: &[Downtime]) -> BTreeMap<i64, Vec<(i64, i64)>> {
    let mut out: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for d in downtimes {
        let a = &d.announcement;
        let end = match d.removed_at {
            None => a.until,
            Some(_) if d.superseded_at.is_none() => continue,
            Some(_) => a.until.min(d.superseded_at.unwrap_or(a.until)),
        };
        if end > a.starts_at {
            out.entry(d.remailer_id).or_default().push((a.starts_at, end));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PingType;
    use crate::model::downtime::{Announcement, DowntimeSource};

    const H: i64 = 3600;
    const T: i64 = 1_800_000_000;

    fn downtime(starts_at: i64, until: i64) -> Downtime {
        Downtime {
            id: 1,
            remailer_id: 3,
            address: "a@x".into(),
            announcement: Announcement { starts_at, until, reason: "hardware maintenance".into() },
            source: DowntimeSource::Operator,
            signer: None,
            announced_at: starts_at - H,
            removed_at: None,
            superseded_at: None,
        }
    }

    fn ping(sent: i64, returned: Option<i64>) -> Ping {
        Ping { ping_type: PingType::Mix, sent, returned, failed: None }
    }

    #[test]
    fn a_downtime_is_upcoming_active_overdue_then_over() {
        let d = downtime(T, T + 3 * H);
        assert_eq!(state(&d, false, T - 1), DowntimeState::Upcoming);
        assert_eq!(state(&d, false, T), DowntimeState::Active);
        assert_eq!(state(&d, true, T + H), DowntimeState::Active, "early returns do not end it");
        assert_eq!(state(&d, false, T + 3 * H), DowntimeState::Overdue);
        assert_eq!(state(&d, true, T + 3 * H), DowntimeState::Over);
        assert_eq!(state(&d, false, T + 3 * H + OVERDUE_SHOWN_SECS), DowntimeState::Over);
        let removed = Downtime { removed_at: Some(T + H), ..d };
        assert_eq!(state(&removed, false, T + H), DowntimeState::Over);
    }

    #[test]
    fn only_a_ping_sent_near_the_end_or_later_shows_the_remailer_back() {
        let d = downtime(T, T + 5 * H);
        // Sent during the work, returned after the end: says nothing about the end.
        assert!(!came_back(&[ping(T + H, Some(T + 6 * H))], &d, T + 7 * H));
        assert!(came_back(&[ping(T + 4 * H, Some(T + 5 * H + 60))], &d, T + 6 * H));
        assert!(!came_back(&[ping(T + 4 * H, Some(T + 7 * H))], &d, T + 6 * H), "not yet");
        assert!(!came_back(&[ping(T + 5 * H, None)], &d, T + 6 * H));
    }

    #[test]
    fn the_sentence_is_rfc_636s() {
        // 2027-01-15 is a Friday.
        let d = downtime(1_800_000_000, 1_800_009_000);
        assert_eq!(
            describe(&d, DowntimeState::Active),
            "unavailable because of hardware maintenance, expected back Fri 15 Jan 10:30 UTC"
        );
        assert!(describe(&d, DowntimeState::Overdue).ends_with(": overdue"));
        assert!(
            describe(&d, DowntimeState::Upcoming).starts_with("unavailable from Fri 15 Jan 08:00")
        );
    }

    #[test]
    fn the_shown_notice_prefers_what_is_happening_now() {
        let mk = |id, starts_at, state| DowntimeNotice {
            downtime: Downtime { id, ..downtime(starts_at, starts_at + H) },
            state,
            text: String::new(),
        };
        let notices = [
            mk(1, T + 5 * H, DowntimeState::Upcoming),
            mk(2, T + 2 * H, DowntimeState::Upcoming),
            mk(3, T - 9 * H, DowntimeState::Over),
        ];
        assert_eq!(current(&notices)["a@x"].downtime.id, 2, "the next one");
        let notices = [notices[0].clone(), mk(4, T - H, DowntimeState::Overdue)];
        assert_eq!(current(&notices)["a@x"].downtime.id, 4);
        assert!(current(&[mk(3, T, DowntimeState::Over)]).is_empty());
    }

    #[test]
    fn removed_downtimes_count_for_nothing_and_replaced_ones_until_replaced() {
        let kept = downtime(T, T + 3 * H);
        let removed =
            Downtime { id: 2, removed_at: Some(T + H), ..downtime(T + 9 * H, T + 10 * H) };
        let replaced = Downtime {
            id: 3,
            removed_at: Some(T + H),
            superseded_at: Some(T + H),
            ..downtime(T - H, T + 3 * H)
        };
        let intervals = announced_intervals(&[kept, removed, replaced]);
        assert_eq!(intervals[&3], vec![(T, T + 3 * H), (T - H, T + H)]);
    }
}
