//! `/metrics`: the statistics and the daemon's own health in Prometheus' text format.
//!
//! The registry is rebuilt from the latest published snapshot at every scrape, so the exposed
//! values are exactly those of the last statistics build (no second bookkeeping to drift).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::snapshot::Published;
use crate::model::event::EventKind;
use crate::model::{ChainType, ProbeVerdict};
use crate::stats::ListEntry;

/// The content type of the OpenMetrics text that prometheus-client writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RemailerLabels {
    list: String,
    nick: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MailLabels {
    nick: String,
    kind: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let g = FloatGauge::default();
    g.set(value);
    registry.register(name, help, g);
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DowntimeLabels {
    nick: String,
    state: String,
}

/// The long-term stability of listed remailers, and their announced downtime.
fn stability_metrics(registry: &mut Registry, published: &Published) {
    let families: Vec<(&str, &str, Family<RemailerLabels, FloatGauge>)> = vec![
        (
            "fathometer_remailer_wfu",
            "Weighted fractional uptime (Tor's decay; 0..1)",
            Family::default(),
        ),
        (
            "fathometer_remailer_mtbf_seconds",
            "Weighted mean time between failures",
            Family::default(),
        ),
        (
            "fathometer_remailer_time_known_seconds",
            "Weighted time the uptime figures rest on",
            Family::default(),
        ),
        (
            "fathometer_remailer_longevity_days",
            "Days of the last 365 seen up at the current address and key",
            Family::default(),
        ),
        ("fathometer_remailer_stable", "1 with the Stable flag (weighted MTBF)", Family::default()),
        ("fathometer_remailer_longterm", "1 with the Longterm flag (Longevity)", Family::default()),
    ];
    for (name, help, family) in &families {
        registry.register(*name, *help, family.clone());
    }
    let downtime = Family::<DowntimeLabels, Gauge>::default();
    registry.register(
        "fathometer_remailer_announced_downtime",
        "1 while a remailer has announced downtime, by state (upcoming, active, overdue)",
        downtime.clone(),
    );
    let back = Family::<RemailerNickLabels, FloatGauge>::default();
    registry.register(
        "fathometer_remailer_expected_back_timestamp_seconds",
        "When a remailer with announced downtime is expected back (Unix time)",
        back.clone(),
    );
    let Some(report) = &published.report else { return };
    let lists: [(ChainType, &[ListEntry]); 3] = [
        (ChainType::Mix, &report.mix),
        (ChainType::Cpunk, &report.cpunk),
        (ChainType::Yamn, &report.yamn),
    ];
    for (family, entries) in lists {
        for e in entries.iter().filter(|e| e.listed) {
            let Some(f) = report.stability.get(&(e.address.clone(), family)) else { continue };
            let labels = RemailerLabels { list: family.as_str().to_owned(), nick: e.nick.clone() };
            let values = [
                f.wfu,
                Some(f.mtbf_secs),
                Some(f.time_known_secs),
                Some(f64::from(f.longevity_days)),
                Some(if f.stable { 1.0 } else { 0.0 }),
                Some(if f.longterm { 1.0 } else { 0.0 }),
            ];
            for ((_, _, gauges), value) in families.iter().zip(values) {
                if let Some(v) = value {
                    gauges.get_or_create(&labels).set(v);
                }
            }
        }
    }
    let listed = |address: &str| {
        report
            .mix
            .iter()
            .chain(&report.cpunk)
            .chain(&report.yamn)
            .find(|e| e.listed && e.address == address)
    };
    for (address, notice) in &report.downtime {
        let Some(e) = listed(address) else { continue };
        let labels =
            DowntimeLabels { nick: e.nick.clone(), state: notice.state.as_str().to_owned() };
        downtime.get_or_create(&labels).set(1);
        back.get_or_create(&RemailerNickLabels { nick: e.nick.clone() })
            .set(notice.downtime.announcement.until as f64);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RemailerNickLabels {
    nick: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    nick: String,
    verdict: String,
}

/// What the replay-protection probes found, for listed type II remailers that were probed.
fn replay_metrics(registry: &mut Registry, published: &Published) {
    let broken = Family::<RemailerNickLabels, Gauge>::default();
    registry.register(
        "fathometer_remailer_replay_broken",
        "1 when the newest conclusive replay probe got both copies of a packet sent twice back",
        broken.clone(),
    );
    let probes = Family::<ProbeLabels, Gauge>::default();
    registry.register(
        "fathometer_replay_probes",
        "Replay probes per remailer by verdict (protected, replayed, inconclusive, not_sent, \
         pending)",
        probes.clone(),
    );
    let Some(report) = &published.report else { return };
    for e in report.mix.iter().filter(|e| e.listed) {
        let Some(status) = report.replay.get(&e.address) else { continue };
        let nick = RemailerNickLabels { nick: e.nick.clone() };
        if status.verdict.is_some() {
            broken.get_or_create(&nick).set(i64::from(status.is_broken()));
        }
        let counts = [
            (ProbeVerdict::Protected, status.protected),
            (ProbeVerdict::Replayed, status.replayed),
            (ProbeVerdict::Inconclusive, status.inconclusive),
            (ProbeVerdict::NotSent, status.not_sent),
            (ProbeVerdict::Pending, status.pending),
        ];
        for (verdict, n) in counts {
            let labels = ProbeLabels { nick: e.nick.clone(), verdict: verdict.as_str().to_owned() };
            probes.get_or_create(&labels).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

/// Renders the metrics of a snapshot. Only listed remailers appear: hidden ones are private.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListLabels {
    list: String,
}

/// The consensus of the pinger network: each peer's state, each list's agreement.
fn consensus_metrics(
    registry: &mut Registry,
    c: &crate::publish::snapshot::ConsensusStatus,
    now: i64,
) {
    let up = Family::<PeerLabels, Gauge>::default();
    let age = Family::<PeerLabels, Gauge>::default();
    let failures = Family::<PeerLabels, Gauge>::default();
    let refused = Family::<PeerLabels, Gauge>::default();
    registry.register(
        "fathometer_peer_up",
        "Whether the peer's mlist2.txt came at the last attempt",
        up.clone(),
    );
    registry.register(
        "fathometer_peer_list_age_seconds",
        "Seconds since the peer generated the mlist2.txt held",
        age.clone(),
    );
    registry.register(
        "fathometer_peer_fetch_failures",
        "Failed fetches in a row, over the peer's files",
        failures.clone(),
    );
    registry.register(
        "fathometer_peer_refused_files",
        "Of those, files refused as unreadable",
        refused.clone(),
    );
    for p in &c.peers {
        let labels = PeerLabels { peer: p.peer.clone() };
        up.get_or_create(&labels).set(i64::from(p.up));
        if let Some(g) = p.generated {
            age.get_or_create(&labels).set(now - g);
        }
        failures.get_or_create(&labels).set(p.failures);
        refused.get_or_create(&labels).set(p.refused);
    }
    let agreed = Family::<ListLabels, Gauge>::default();
    let outliers = Family::<ListLabels, Gauge>::default();
    let alive = Family::<ListLabels, Gauge>::default();
    registry.register(
        "fathometer_consensus_agreed",
        "Whether enough pingers are fresh for an agreed list",
        agreed.clone(),
    );
    registry.register(
        "fathometer_consensus_outlier_views",
        "Pingers' figures marked as outliers",
        outliers.clone(),
    );
    registry.register(
        "fathometer_consensus_remailers_alive",
        "Remailers a majority of pingers sees alive",
        alive.clone(),
    );
    for (list, is_agreed, n_outliers, n_alive) in &c.lists {
        let labels = ListLabels { list: list.clone() };
        agreed.get_or_create(&labels).set(i64::from(*is_agreed));
        outliers.get_or_create(&labels).set(*n_outliers as i64);
        alive.get_or_create(&labels).set(*n_alive as i64);
    }
    gauge(
        registry,
        "fathometer_consensus_key_disagreements",
        "Remailers whose key ID differs between pingers",
        c.key_disagreements as f64,
    );
}

pub fn render(published: &Published, now: i64) -> String {
    let mut registry = Registry::default();
    let reliability = Family::<RemailerLabels, FloatGauge>::default();
    let latency = Family::<RemailerLabels, FloatGauge>::default();
    let sent = Family::<RemailerLabels, Gauge>::default();
    let returned = Family::<RemailerLabels, Gauge>::default();
    registry.register(
        "fathometer_remailer_reliability",
        "Weighted reliability over the statistics window (0..1)",
        reliability.clone(),
    );
    registry.register(
        "fathometer_remailer_latency_median_seconds",
        "Median latency of returned pings over the statistics window",
        latency.clone(),
    );
    registry.register(
        "fathometer_remailer_pings_sent",
        "Pings accepted by the MTA within the statistics window",
        sent.clone(),
    );
    registry.register(
        "fathometer_remailer_pings_returned",
        "Pings returned within the statistics window",
        returned.clone(),
    );
    if let Some(report) = &published.report {
        let lists: [(&str, &[ListEntry]); 3] =
            [("mix", &report.mix), ("cpunk", &report.cpunk), ("yamn", &report.yamn)];
        for (list, entries) in lists {
            for e in entries.iter().filter(|e| e.listed) {
                let labels = RemailerLabels { list: list.to_owned(), nick: e.nick.clone() };
                reliability.get_or_create(&labels).set(e.stats.reliability);
                if let Some(l) = e.stats.latency_median {
                    latency.get_or_create(&labels).set(l);
                }
                sent.get_or_create(&labels).set(e.stats.sent as i64);
                returned.get_or_create(&labels).set(e.stats.returned as i64);
            }
        }
    }

    // What came back per remailer (decision 5): genuine, duplicate, forged, corrupted,
    // bounced. Keyed by address in the report; exposed by nick, listed remailers only.
    let mail = Family::<MailLabels, Gauge>::default();
    registry.register(
        "fathometer_remailer_mail",
        "Mail attributed to the remailer within the statistics window, by kind",
        mail.clone(),
    );
    if let Some(report) = &published.report {
        let mut nicks: Vec<(&str, &str)> = report
            .mix
            .iter()
            .chain(&report.cpunk)
            .chain(&report.yamn)
            .filter(|e| e.listed)
            .map(|e| (e.address.as_str(), e.nick.as_str()))
            .collect();
        nicks.sort();
        nicks.dedup();
        for (address, nick) in nicks {
            let c = report.returns.get(address).cloned().unwrap_or_default();
            for (kind, n) in [
                ("returned", c.returned),
                ("duplicate", c.duplicate),
                ("forged", c.forged),
                ("corrupted", c.corrupted),
                ("bounced", c.bounced),
            ] {
                let labels = MailLabels { nick: nick.to_owned(), kind: kind.to_owned() };
                mail.get_or_create(&labels).set(n as i64);
            }
        }
    }
    stability_metrics(&mut registry, published);
    replay_metrics(&mut registry, published);
    if let Some(c) = &published.consensus {
        consensus_metrics(&mut registry, c, now);
    }
    let events = Family::<EventLabels, Counter>::default();
    registry.register(
        "fathometer_events",
        "Status events recorded since the store was created, by kind",
        events.clone(),
    );
    for kind in EventKind::ALL {
        let n = published.event_counts.get(&kind).copied().unwrap_or(0);
        events.get_or_create(&EventLabels { kind: kind.as_str().to_owned() }).inc_by(n);
    }
    let health = &published.mail_health;
    if let Some(t) = health.last_mail_processed_at {
        gauge(
            &mut registry,
            "fathometer_mailbox_last_mail_age_seconds",
            "Seconds since the ingester last recorded a mail",
            (now - t) as f64,
        );
    }
    if let Some(lag) = health.last_mail_lag_secs {
        gauge(
            &mut registry,
            "fathometer_mailbox_lag_seconds",
            "Delivery to processing delay of the last mail recorded",
            lag as f64,
        );
    }
    if let Some(t) = health.last_self_check_returned_at {
        gauge(
            &mut registry,
            "fathometer_self_check_last_return_timestamp_seconds",
            "Unix time the pinger's own control mail last came back",
            t as f64,
        );
    }
    gauge(
        &mut registry,
        "fathometer_self_checks_failed_last_day",
        "Control mails of the last day that did not come back in time (the pinger's own fault)",
        health.self_checks_failed_last_day as f64,
    );
    if let Some(t) = published.ingester.last_round {
        gauge(
            &mut registry,
            "fathometer_ingester_last_round_timestamp_seconds",
            "Unix time the ingester last completed a round of the mailbox",
            t as f64,
        );
    }
    gauge(
        &mut registry,
        "fathometer_ingester_up",
        "1 when the ingester reads the mailbox, 0 when it is failing, silent or not configured",
        if published.ingester_problem(now).is_none() { 1.0 } else { 0.0 },
    );
    gauge(
        &mut registry,
        "fathometer_requests_queued",
        "Information requests (remailer-conf, ...) waiting for the MTA",
        health.requests_queued as f64,
    );

    let outbox = Family::<OutcomeLabels, Gauge>::default();
    registry.register("fathometer_pings", "Pings in the store by outcome", outbox.clone());
    for (outcome, n) in [
        ("queued", published.ping_counts.queued),
        ("sent", published.ping_counts.sent),
        ("returned", published.ping_counts.returned),
        ("not_sent", published.ping_counts.not_sent),
    ] {
        outbox.get_or_create(&OutcomeLabels { outcome: outcome.to_owned() }).set(n as i64);
    }
    if let Some(t) = published.last_build {
        gauge(
            &mut registry,
            "fathometer_last_stats_build_timestamp_seconds",
            "Unix time of the last statistics build",
            t as f64,
        );
        gauge(
            &mut registry,
            "fathometer_last_stats_build_age_seconds",
            "Seconds since the last statistics build",
            (now - t) as f64,
        );
    }
    if let Some(t) = published.last_tick {
        gauge(
            &mut registry,
            "fathometer_last_scheduler_tick_timestamp_seconds",
            "Unix time of the last scheduler tick",
            t as f64,
        );
    }
    gauge(
        &mut registry,
        "fathometer_healthy",
        "1 when /healthz reports no problem (scheduler, ingester, a recent statistics build)",
        if published.problem(now).is_none() { 1.0 } else { 0.0 },
    );
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Dataset, Ping, RemailerHistory};
    use crate::model::{PingCounts, PingType};
    use crate::stats::{StatsOptions, compute};

    #[test]
    fn exposes_listed_remailers_and_health() {
        let history = |nick: &str, hidden: bool| RemailerHistory {
            address: format!("{nick}@x.example"),
            nick: Some(nick.into()),
            caps: Some(format!("$remailer{{\"{nick}\"}} = \"<{nick}@x.example> mix\";")),
            hidden,
            key_types: vec![PingType::Mix],
            pings: vec![Ping {
                ping_type: PingType::Mix,
                sent: 1000,
                returned: Some(1600),
                failed: None,
            }],
        };
        let mut data = Dataset {
            remailers: vec![history("open", false), history("secret", true)],
            chains: vec![],
            ..Default::default()
        };
        for nick in ["open", "secret"] {
            let counters =
                crate::model::ReturnCounters { returned: 1, forged: 1, ..Default::default() };
            data.returns.insert(format!("{nick}@x.example"), counters);
        }
        let mut report = compute(&data, 100_000, &StatsOptions::default());
        for nick in ["open", "secret"] {
            let figures = crate::model::stability::Stability {
                wfu: Some(0.75),
                mtbf_secs: 7200.0,
                time_known_secs: 3600.0,
                longevity_days: 12,
                stable: true,
                longterm: false,
                daily: Vec::new(),
            };
            report.stability.insert((format!("{nick}@x.example"), ChainType::Mix), figures);
            let a = crate::model::downtime::Announcement {
                starts_at: 90_000,
                until: 120_000,
                reason: "disks".into(),
            };
            let downtime = crate::model::downtime::Downtime {
                id: 1,
                remailer_id: 1,
                address: format!("{nick}@x.example"),
                announcement: a,
                source: crate::model::downtime::DowntimeSource::Operator,
                signer: None,
                announced_at: 80_000,
                removed_at: None,
                superseded_at: None,
            };
            let notice = crate::model::downtime::DowntimeNotice {
                downtime,
                state: crate::model::downtime::DowntimeState::Active,
                text: String::new(),
            };
            report.downtime.insert(format!("{nick}@x.example"), notice);
            let replay = crate::model::ReplayStatus {
                verdict: Some(crate::model::ProbeVerdict::Replayed),
                decided_at: Some(95_000),
                last_probe_at: Some(94_000),
                protected: 2,
                replayed: 1,
                ..Default::default()
            };
            report.replay.insert(format!("{nick}@x.example"), replay);
        }
        let published = Published {
            report: Some(Arc::new(report)),
            last_tick: Some(99_990),
            last_build: Some(99_700),
            problem: None,
            ping_counts: PingCounts { queued: 3, sent: 1, returned: 2, not_sent: 0 },
            mail_health: crate::model::MailHealth {
                last_mail_processed_at: Some(99_000),
                last_mail_lag_secs: Some(4),
                last_self_check_returned_at: Some(98_000),
                self_checks_failed_last_day: 1,
                requests_queued: 2,
            },
            ingester: crate::ingest::LivenessState { last_round: Some(99_950), last_failure: None },
            rules: super::super::snapshot::HealthRules {
                started_at: 90_000,
                stale_build_secs: 960,
                ingester_quiet_secs: Some(90),
            },
            event_counts: [(EventKind::Silent, 3), (EventKind::Resumed, 2)].into(),
            ..Default::default()
        };
        let text = render(&published, 100_000);
        for line in [
            "fathometer_remailer_wfu{list=\"mix\",nick=\"open\"} 0.75",
            "fathometer_remailer_mtbf_seconds{list=\"mix\",nick=\"open\"} 7200.0",
            "fathometer_remailer_longevity_days{list=\"mix\",nick=\"open\"} 12.0",
            "fathometer_remailer_stable{list=\"mix\",nick=\"open\"} 1.0",
            "fathometer_remailer_longterm{list=\"mix\",nick=\"open\"} 0.0",
            "fathometer_remailer_announced_downtime{nick=\"open\",state=\"active\"} 1",
            "fathometer_remailer_expected_back_timestamp_seconds{nick=\"open\"} 120000.0",
            "fathometer_remailer_replay_broken{nick=\"open\"} 1",
            "fathometer_replay_probes{nick=\"open\",verdict=\"replayed\"} 1",
            "fathometer_replay_probes{nick=\"open\",verdict=\"protected\"} 2",
            "fathometer_events_total{kind=\"silent\"} 3",
            "fathometer_events_total{kind=\"resumed\"} 2",
            "fathometer_events_total{kind=\"key-changed\"} 0",
        ] {
            assert!(text.contains(line), "no `{line}` in:\n{text}");
        }
        assert!(
            text.contains("fathometer_remailer_reliability{list=\"mix\",nick=\"open\"} 1.0"),
            "{text}"
        );
        assert!(
            text.contains(
                "fathometer_remailer_latency_median_seconds{list=\"mix\",nick=\"open\"} 600.0"
            ),
            "{text}"
        );
        assert!(!text.contains("secret"), "hidden remailer exposed: {text}");
        assert!(text.contains("fathometer_pings{outcome=\"queued\"} 3"), "{text}");
        assert!(text.contains("fathometer_last_stats_build_age_seconds 300.0"), "{text}");
        assert!(text.contains("fathometer_healthy 1.0"), "{text}");
        assert!(text.contains("fathometer_ingester_up 1.0"), "{text}");
        assert!(
            text.contains("fathometer_ingester_last_round_timestamp_seconds 99950.0"),
            "{text}"
        );
        let failing = Published {
            ingester: crate::ingest::LivenessState {
                last_round: Some(99_950),
                last_failure: Some((99_990, "IMAP refused".into())),
            },
            ..published.clone()
        };
        let text = render(&failing, 100_000);
        assert!(text.contains("fathometer_ingester_up 0.0"), "{text}");
        assert!(text.contains("fathometer_healthy 0.0"), "{text}");
        assert!(
            text.contains("fathometer_remailer_mail{nick=\"open\",kind=\"forged\"} 1"),
            "{text}"
        );
        assert!(text.contains("fathometer_mailbox_lag_seconds 4.0"), "{text}");
        assert!(text.contains("fathometer_mailbox_last_mail_age_seconds 1000.0"), "{text}");
        assert!(text.contains("fathometer_self_checks_failed_last_day 1.0"), "{text}");
        assert!(text.contains("fathometer_requests_queued 2.0"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"));
        // A stale build makes /healthz answer 503; the metric says the same.
        let stale = Published { last_build: Some(98_000), ..published.clone() };
        assert!(stale.problem(100_000).is_some());
        assert!(render(&stale, 100_000).contains("fathometer_healthy 0.0"));
    }
}
