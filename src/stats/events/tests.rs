//! Event detection: hysteresis, first sight, keys, capabilities, requests, downtime and the
//! pinger's own outages.

use proptest::prelude::*;

use super::*;
use crate::model::downtime::{Announcement, Downtime, DowntimeSource};
use crate::model::{RemailerKey, RemailerStatus};

const T: i64 = 1_800_000_000;
const H: i64 = 3600;

fn remailer() -> Remailer {
    Remailer {
        id: 4,
        address: "a@x".into(),
        nick: Some("alpha".into()),
        caps: Some("$remailer{\"alpha\"} = \"<a@x> mix\";".into()),
        status: RemailerStatus::Active,
        status_reason: None,
        remailer_type: None,
        last_answer_at: None,
        hidden: false,
        first_seen: 0,
        keys: vec![key(1, "k1", 0)],
    }
}

fn key(id: i64, key_id: &str, first_seen: i64) -> RemailerKey {
    RemailerKey {
        id,
        ping_type: PingType::Mix,
        key_id: key_id.into(),
        valid_from: None,
        valid_until: None,
        retired_at: None,
        first_seen,
    }
}

/// Observations every 2 hours from `T`, up or down as `pattern` says (`u`, `d`).
fn observations(pattern: &str) -> Vec<Observation> {
    pattern
        .chars()
        .enumerate()
        .map(|(i, c)| Observation { at: T + i as i64 * 2 * H, up: c == 'u' })
        .collect()
}

/// Runs the detector over growing prefixes of `pattern`, one build per observation, and
/// returns every event kind of the family's status.
fn statuses(pattern: &str) -> Vec<(EventKind, i64)> {
    let r = remailer();
    let all = observations(pattern);
    let mut watch = Watch::new();
    let mut out = Vec::new();
    for n in 0..=all.len() {
        let obs = BTreeMap::from([((r.id, ChainType::Mix), all[..n].to_vec())]);
        let now = T + n as i64 * 2 * H;
        let inputs = EventInputs {
            remailers: std::slice::from_ref(&r),
            observations: &obs,
            downtimes: &[],
            pinger_down: &[],
            own_failures: &[],
            replay: &BTreeMap::new(),
            key_disagreements: &BTreeMap::new(),
        };
        let (next, events) = detect(&watch, &inputs, now);
        watch = next;
        out.extend(
            events
                .into_iter()
                .filter(|e| matches!(e.kind, EventKind::Silent | EventKind::Resumed))
                .map(|e| (e.kind, e.at)),
        );
    }
    out
}

#[test]
fn one_or_two_lost_pings_are_no_outage() {
    assert!(statuses("uuuduuudduuuduu").is_empty());
}

#[test]
fn three_failures_make_it_silent_and_two_returns_resumed() {
    let events = statuses("uuudddduduu");
    assert_eq!(
        events,
        vec![(EventKind::Silent, T + 3 * 2 * H), (EventKind::Resumed, T + 9 * 2 * H)],
        "silent from its first failure; one return is not enough to resume"
    );
}

#[test]
fn a_remailer_failing_from_the_start_is_silent_without_an_event_and_then_resumes() {
    assert_eq!(statuses("dddddduu"), vec![(EventKind::Resumed, T + 6 * 2 * H)]);
}

#[test]
fn an_outage_over_before_its_failures_were_known_is_reported_whole() {
    let r = remailer();
    let key = (r.id, ChainType::Mix);
    let inputs = |obs: &BTreeMap<(i64, ChainType), Vec<Observation>>| -> (Watch, Vec<Event>) {
        let watch = Watch::from([(
            format!("status:{}:mix", r.id),
            Watched { value: "up".into(), since: T - 10 * H },
        )]);
        let inputs = EventInputs {
            remailers: std::slice::from_ref(&r),
            observations: obs,
            downtimes: &[],
            pinger_down: &[],
            own_failures: &[],
            replay: &BTreeMap::new(),
            key_disagreements: &BTreeMap::new(),
        };
        detect(&watch, &inputs, T + 40 * H)
    };
    let (watch, events) = inputs(&BTreeMap::from([(key, observations("uudddduuu"))]));
    let kinds: Vec<(EventKind, i64)> = events.iter().map(|e| (e.kind, e.at)).collect();
    assert_eq!(
        kinds,
        vec![(EventKind::Silent, T + 2 * 2 * H), (EventKind::Resumed, T + 6 * 2 * H)]
    );
    assert_eq!(
        events[0].detail,
        format!("3 pings in a row, sent from {}, did not come back", short_time(T + 4 * H))
    );
    assert_eq!(
        watch[&format!("status:{}:mix", r.id)],
        Watched { value: "up".into(), since: T + 12 * H }
    );
}

proptest! {
    /// Whatever the pattern, events alternate (never two silences in a row), each silence
    /// follows three failures, and each resumption two returns.
    #[test]
    fn events_alternate_and_follow_the_thresholds(pattern in "[ud]{0,40}") {
        let events = statuses(&pattern);
        for pair in events.windows(2) {
            prop_assert_ne!(pair[0].0, pair[1].0);
        }
        let obs = observations(&pattern);
        for (kind, at) in events {
            let i = obs.iter().position(|o| o.at == at).unwrap();
            match kind {
                EventKind::Silent => {
                    prop_assert!(obs[i..].iter().take(SILENT_AFTER).all(|o| !o.up));
                    prop_assert_eq!(obs[i..].iter().take(SILENT_AFTER).count(), SILENT_AFTER);
                }
                _ => prop_assert!(obs[i..].iter().take(RESUMED_AFTER).all(|o| o.up)),
            }
        }
    }
}

fn detect_once(
    previous: &Watch,
    r: &Remailer,
    downtimes: &[DowntimeNotice],
    now: i64,
) -> (Watch, Vec<Event>) {
    let obs = BTreeMap::new();
    let inputs = EventInputs {
        remailers: std::slice::from_ref(r),
        observations: &obs,
        downtimes,
        pinger_down: &[],
        own_failures: &[],
        replay: &BTreeMap::new(),
        key_disagreements: &BTreeMap::new(),
    };
    detect(previous, &inputs, now)
}

#[test]
fn keys_caps_and_requests_report_changes_only() {
    let mut r = remailer();
    let (watch, events) = detect_once(&Watch::new(), &r, &[], T);
    assert!(events.is_empty(), "first sight is no change: {events:?}");

    r.keys[0].retired_at = Some(T);
    r.keys.push(key(2, "k2", T + 60));
    r.caps = Some("$remailer{\"alpha\"} = \"<a@x> mix middle\";".into());
    r.status = RemailerStatus::Unresponsive;
    r.status_reason = Some("5 conf requests unanswered".into());
    let (watch, events) = detect_once(&watch, &r, &[], T + H);
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::KeyChanged, EventKind::CapsChanged, EventKind::Unresponsive]);
    assert_eq!(events[0].detail, "new mix key k2 (was k1)");
    assert_eq!(events[0].at, T + 60);
    assert_eq!(events[2].detail, "5 conf requests unanswered");

    let (watch, events) = detect_once(&watch, &r, &[], T + 2 * H);
    assert!(events.is_empty(), "nothing changed: {events:?}");

    r.keys[1].retired_at = Some(T + 2 * H);
    r.status = RemailerStatus::Active;
    let (_, events) = detect_once(&watch, &r, &[], T + 3 * H);
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::KeyRetired, EventKind::Answering]);
}

fn notice(state: DowntimeState, removed: bool) -> DowntimeNotice {
    DowntimeNotice {
        downtime: Downtime {
            id: 9,
            remailer_id: 4,
            address: "a@x".into(),
            announcement: Announcement {
                starts_at: T + H,
                until: T + 3 * H,
                reason: "disk".into(),
            },
            source: DowntimeSource::Signed,
            signer: Some("ABCD".into()),
            announced_at: T,
            removed_at: removed.then_some(T + 2 * H),
            superseded_at: None,
        },
        state,
        text: format!("state {}", state.as_str()),
    }
}

#[test]
fn a_downtime_is_announced_starts_runs_over_and_ends() {
    let r = remailer();
    let steps = [
        (DowntimeState::Upcoming, false, vec![EventKind::DowntimeAnnounced]),
        (DowntimeState::Upcoming, false, vec![]),
        (DowntimeState::Active, false, vec![EventKind::DowntimeStarted]),
        (DowntimeState::Overdue, false, vec![EventKind::DowntimeOverdue]),
        (DowntimeState::Overdue, false, vec![]),
        (DowntimeState::Over, false, vec![EventKind::DowntimeEnded]),
        (DowntimeState::Over, false, vec![]),
    ];
    let (mut watch, _) = detect_once(&Watch::new(), &r, &[], T);
    for (i, (state, removed, expected)) in steps.into_iter().enumerate() {
        let (next, events) = detect_once(&watch, &r, &[notice(state, removed)], T + i as i64 * H);
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, expected, "step {i}");
        watch = next;
    }
    let (watch, _) = detect_once(&Watch::new(), &r, &[notice(DowntimeState::Active, false)], T);
    let (_, events) = detect_once(&watch, &r, &[notice(DowntimeState::Over, true)], T + H);
    assert_eq!(events[0].detail, "withdrawn: state over");
}

#[test]
fn the_pingers_own_outages_are_events_once() {
    let r = remailer();
    let run = |watch: &Watch, down: &[(i64, i64)], failures: &[(i64, i64)], now| {
        let obs = BTreeMap::new();
        let inputs = EventInputs {
            remailers: std::slice::from_ref(&r),
            observations: &obs,
            downtimes: &[],
            pinger_down: down,
            own_failures: failures,
            replay: &BTreeMap::new(),
            key_disagreements: &BTreeMap::new(),
        };
        detect(watch, &inputs, now)
    };
    let (watch, events) = run(&Watch::new(), &[], &[], T);
    assert!(events.is_empty());
    // Stopped for an hour; the gap is reported when the daemon runs again.
    let gap = [(T + H, T + 2 * H)];
    let (watch, events) = run(&watch, &gap, &[], T + 3 * H);
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].kind, events[0].at), (EventKind::PingerDown, T + H));
    assert!(events[0].detail.contains("(1 h 0 min)"), "{}", events[0].detail);
    let (watch, events) = run(&watch, &gap, &[], T + 4 * H);
    assert!(events.is_empty(), "reported once");
    let (watch, events) = run(&watch, &gap, &[(T + 4 * H, i64::MAX)], T + 5 * H);
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EventKind::PingerMailFailing]
    );
    let (_, events) = run(&watch, &gap, &[(T + 4 * H, T + 6 * H)], T + 7 * H);
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EventKind::PingerMailRestored]
    );
    assert!(events[0].detail.contains("after 2 h 0 min"), "{}", events[0].detail);
}

#[test]
fn a_hidden_remailers_events_are_not_public() {
    let mut r = remailer();
    let (watch, _) = detect_once(&Watch::new(), &r, &[], T);
    r.hidden = true;
    r.caps = Some("$remailer{\"alpha\"} = \"<a@x> mix testing\";".into());
    let (_, events) = detect_once(&watch, &r, &[], T + H);
    assert_eq!(events.len(), 1);
    assert!(!events[0].is_public());
}

#[test]
fn a_replayed_probe_is_an_event_once_and_a_dropped_replay_later_another() {
    use crate::model::{ProbeVerdict, ReplayStatus};
    let r = remailer();
    let obs = BTreeMap::new();
    let run = |previous: &Watch, status: Option<ReplayStatus>, now: i64| {
        let replay: BTreeMap<String, ReplayStatus> =
            status.into_iter().map(|s| (r.address.clone(), s)).collect();
        let inputs = EventInputs {
            remailers: std::slice::from_ref(&r),
            observations: &obs,
            downtimes: &[],
            pinger_down: &[],
            own_failures: &[],
            replay: &replay,
            key_disagreements: &BTreeMap::new(),
        };
        detect(previous, &inputs, now)
    };
    let kinds = |events: &[Event]| events.iter().map(|e| e.kind).collect::<Vec<_>>();
    let protected = ReplayStatus {
        verdict: Some(ProbeVerdict::Protected),
        decided_at: Some(1_000),
        protected: 1,
        ..ReplayStatus::default()
    };
    // A first verdict of "protected" is no news.
    let (watch, events) = run(&Watch::new(), Some(protected.clone()), 2_000);
    assert!(!kinds(&events).contains(&EventKind::ReplayFixed), "{events:?}");
    let replayed = ReplayStatus {
        verdict: Some(ProbeVerdict::Replayed),
        decided_at: Some(3_000),
        protected: 1,
        replayed: 1,
        ..ReplayStatus::default()
    };
    let (watch, events) = run(&watch, Some(replayed.clone()), 4_000);
    let broken: Vec<&Event> = events.iter().filter(|e| e.kind == EventKind::ReplayBroken).collect();
    assert_eq!(broken.len(), 1, "{events:?}");
    assert_eq!(broken[0].at, 3_000, "dated by the verdict");
    assert!(broken[0].detail.contains("1 of 2 probes"), "{}", broken[0].detail);
    // Still broken: said once.
    let (watch, events) = run(&watch, Some(replayed), 5_000);
    assert!(!kinds(&events).contains(&EventKind::ReplayBroken), "{events:?}");
    // A later probe dropped the replay.
    let fixed = ReplayStatus { decided_at: Some(6_000), replayed: 1, protected: 2, ..protected };
    let (_, events) = run(&watch, Some(fixed), 7_000);
    assert_eq!(kinds(&events).iter().filter(|k| **k == EventKind::ReplayFixed).count(), 1);
    // A remailer that was broken from its first verdict on is reported too.
    let first = ReplayStatus {
        verdict: Some(ProbeVerdict::Replayed),
        decided_at: Some(10),
        replayed: 1,
        ..ReplayStatus::default()
    };
    let (_, events) = run(&Watch::new(), Some(first), 20);
    assert!(kinds(&events).contains(&EventKind::ReplayBroken));
}

#[test]
fn a_key_disagreement_is_an_event_when_it_starts_and_when_it_ends() {
    let r = remailer();
    let obs = BTreeMap::new();
    let run = |previous: &Watch, who: Option<&str>, now: i64| {
        let disagreements: BTreeMap<String, String> =
            who.into_iter().map(|w| (r.address.to_ascii_lowercase(), w.to_owned())).collect();
        let inputs = EventInputs {
            remailers: std::slice::from_ref(&r),
            observations: &obs,
            downtimes: &[],
            pinger_down: &[],
            own_failures: &[],
            replay: &BTreeMap::new(),
            key_disagreements: &disagreements,
        };
        detect(previous, &inputs, now)
    };
    let count =
        |events: &[Event], kind: EventKind| events.iter().filter(|e| e.kind == kind).count();
    let (watch, events) = run(&Watch::new(), None, 1_000);
    assert_eq!(count(&events, EventKind::KeysAgree), 0, "agreement is no news");
    let who = "Mix keys: aa at ours, p1; bb at p2";
    let (watch, events) = run(&watch, Some(who), 2_000);
    let found: Vec<&Event> = events.iter().filter(|e| e.kind == EventKind::KeysDisagree).collect();
    assert_eq!(found.len(), 1);
    assert!(found[0].detail.contains(who), "{}", found[0].detail);
    let (watch, events) = run(&watch, Some("Mix keys: aa at ours; bb at p1, p2"), 3_000);
    assert_eq!(count(&events, EventKind::KeysDisagree), 0, "said once while it lasts");
    let (_, events) = run(&watch, None, 4_000);
    assert_eq!(count(&events, EventKind::KeysAgree), 1);
}
