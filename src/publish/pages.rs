//! Fills the HTML view models ([`html`]) from the statistics and what the store knows about
//! each remailer, and names the pages: `index.html`, one page per remailer, a page per list
//! (`mlist.html` shows `mlist.txt`), `from.html`, and the thesaurus directory (`thesaurus/`:
//! `index.html`, `index.txt` and the raw replies, Echolot's layout). Pure: the store's rows
//! come in, `(path, content)` pairs go out.

use std::collections::BTreeMap;

use super::feed;
use super::html::{
    self, BrokenChain, Counters, Day, EventView, FromLineRow, HtmlError, KeyView, NoticeView,
    REPLY_KINDS, RemailerView, ReplayView, ReplyView, Site, StabilityView, ThesaurusFile,
    ThesaurusRow, TypeStats,
};
use super::lists;
use crate::model::downtime::{DowntimeNotice, DowntimeSource};
use crate::model::event::Event;
use crate::model::stability::Stability;
use crate::model::{
    ChainType, FromLine, PingType, ProbeVerdict, Remailer, ReplayStatus, SECONDS_PER_DAY,
    STATS_DAYS, StoredReply,
};
use crate::stats::events::duration_text;
use crate::stats::{ListEntry, Report};

/// What the pages show besides the statistics.
pub struct PageInputs<'a> {
    pub report: &'a Report,
    pub remailers: &'a [Remailer],
    /// The latest replies, by remailer row id.
    pub replies: &'a BTreeMap<i64, Vec<StoredReply>>,
    pub from_lines: &'a [FromLine],
    /// Recent events, newest first (public and private alike; each tree picks its own).
    pub events: &'a [Event],
    pub site_name: &'a str,
    pub operator: Option<&'a str>,
    /// The pinger's own address: the authority of the feeds' ids.
    pub pinger_address: &'a str,
}

/// The thesaurus shows replies that arrived in the last 21 days (Echolot's
/// `expire_thesaurus`): an older reply no longer says what the remailer does.
pub const THESAURUS_MAX_AGE_DAYS: i64 = 21;

/// The directory of the thesaurus inside a results tree.
pub const THESAURUS_DIR: &str = "thesaurus";

/// Every page and thesaurus file of one tree, as `(path relative to the tree, content)`.
/// Public pages show remailers listed in either family; private ones (`private`) every
/// remailer with statistics. `list_files` are the tree's lists ([`super::list_files`]),
/// each shown by a page of its own.
pub fn render_pages(
    inputs: &PageInputs<'_>,
    private: bool,
    list_files: &[(String, String)],
) -> Result<Vec<(String, String)>, HtmlError> {
    let report = inputs.report;
    let list_names: Vec<String> = list_files.iter().map(|(name, _)| name.clone()).collect();
    let site = Site {
        name: inputs.site_name.to_owned(),
        operator: inputs.operator.map(str::to_owned),
        generated: lists::rfc822_date(report.now),
        model: report.model.as_str().to_owned(),
        base_path: String::new(),
        // The four Echolot lists come first; the index names them itself.
        extra_lists: list_names.iter().skip(super::ListFile::ALL.len()).cloned().collect(),
    };
    let shown = |e: &&ListEntry| private || e.listed;
    let mut order: Vec<&str> = Vec::new();
    for e in report.mix.iter().chain(&report.cpunk).chain(&report.yamn).filter(shown) {
        if !order.contains(&e.address.as_str()) {
            order.push(&e.address);
        }
    }
    let mut views: Vec<RemailerView> =
        order.iter().filter_map(|address| remailer_view(inputs, address, private)).collect();
    // Each page shows the remailer's own recent events, linked to nothing else.
    for v in &mut views {
        let own: Vec<Event> = inputs
            .events
            .iter()
            .filter(|e| e.remailer.as_ref().is_some_and(|r| r.address == v.address))
            .cloned()
            .collect();
        v.events = event_views(&own, &[], private, REMAILER_EVENTS);
    }
    let in_list = |list: &[ListEntry]| -> Vec<RemailerView> {
        list.iter()
            .filter(shown)
            .filter_map(|e| views.iter().find(|v| v.address == e.address).cloned())
            .collect()
    };
    let (mix_views, cpunk_views, yamn_views) =
        (in_list(&report.mix), in_list(&report.cpunk), in_list(&report.yamn));
    let broken = |b: &crate::stats::BrokenChains| -> Vec<BrokenChain> {
        let text = if private { b.private.clone() } else { b.public.clone() };
        text.unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let inner = l.trim().strip_prefix('(')?.strip_suffix(')')?;
                let (left, right) = inner.split_once(' ')?;
                Some(BrokenChain { left: left.trim().to_owned(), right: right.trim().to_owned() })
            })
            .collect()
    };
    let events = event_views(inputs.events, &views, private, INDEX_EVENTS);
    let mut pages = vec![(
        "index.html".to_owned(),
        html::render_index(
            &site,
            &ordered(&mix_views, &cpunk_views, &yamn_views),
            &broken(&report.broken_type1),
            &broken(&report.broken_type2),
            &broken(&report.broken_yamn),
            &events,
        )?,
    )];
    for v in &views {
        pages.push((v.page(), html::render_remailer(&site, v)?));
    }
    let feed_inputs = feed::FeedInputs {
        events: inputs.events,
        remailers: inputs.remailers,
        site_name: inputs.site_name,
        pinger_address: inputs.pinger_address,
    };
    pages.extend(feed::feeds(&feed_inputs, &views, private, report.now));
    let mut by_nick = views.clone();
    by_nick.sort_by(|a, b| a.nick.cmp(&b.nick));
    let (default_rows, user_rows) = from_line_rows(inputs, &by_nick);
    pages.push(("from.html".into(), html::render_from_lines(&site, &default_rows, &user_rows)?));
    for (name, text) in list_files {
        pages.push((
            html::list_page_name(name),
            html::render_list_page(&site, name, text, &list_names)?,
        ));
    }
    pages.extend(thesaurus_files(inputs, &site, &by_nick, private)?);
    Ok(pages)
}

/// The thesaurus (`echolot.md` §5.5, Echolot's file names): per remailer shown, its latest
/// reply of each kind as a raw text file `thesaurus/<id>.<kind>`, `index.txt` with lines
/// `<nick>\t<id>\t<address>` sorted by nick, and `index.html`. Unlike Echolot, a hidden
/// remailer's replies never reach the public tree, and neither do a `testing` remailer's
/// (Echolot leaves those out of its index but publishes the files anyway).
fn thesaurus_files(
    inputs: &PageInputs<'_>,
    site: &Site,
    by_nick: &[RemailerView],
    private: bool,
) -> Result<Vec<(String, String)>, HtmlError> {
    let oldest = inputs.report.now - THESAURUS_MAX_AGE_DAYS * SECONDS_PER_DAY;
    let mut files = Vec::new();
    let mut rows = Vec::new();
    let mut index_txt = String::new();
    for v in by_nick {
        let Some(row) = inputs.remailers.iter().find(|r| r.address == v.address) else {
            continue;
        };
        if !private && !row.is_listed() {
            continue;
        }
        let replies = inputs.replies.get(&row.id).map(Vec::as_slice).unwrap_or_default();
        let cells = REPLY_KINDS
            .iter()
            .map(|&kind| {
                let reply =
                    replies.iter().find(|r| r.kind.as_str() == kind && r.received_at >= oldest)?;
                let name = format!("{}.{kind}", row.id);
                files.push((format!("{THESAURUS_DIR}/{name}"), reply.body.clone()));
                let received = chrono::DateTime::from_timestamp(reply.received_at, 0)
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default();
                Some(ThesaurusFile { name, received })
            })
            .collect();
        index_txt.push_str(&format!("{}\t{}\t{}\n", v.nick, row.id, v.address));
        rows.push(ThesaurusRow {
            nick: v.nick.clone(),
            address: v.address.clone(),
            page: v.page(),
            files: cells,
        });
    }
    let site = Site { base_path: "../".into(), ..site.clone() };
    files.push((
        format!("{THESAURUS_DIR}/index.html"),
        html::render_thesaurus(&site, &rows, THESAURUS_MAX_AGE_DAYS)?,
    ));
    files.push((format!("{THESAURUS_DIR}/index.txt"), index_txt));
    Ok(files)
}

/// The index lists Mixmaster remailers in mlist order, then Cypherpunk-only ones in rlist
/// order (the template splits them into the two tables by their statistics).
fn ordered(
    mix: &[RemailerView],
    cpunk: &[RemailerView],
    yamn: &[RemailerView],
) -> Vec<RemailerView> {
    let mut out = mix.to_vec();
    for v in cpunk.iter().chain(yamn) {
        if !out.iter().any(|o| o.address == v.address) {
            out.push(v.clone());
        }
    }
    out
}

fn remailer_view(inputs: &PageInputs<'_>, address: &str, private: bool) -> Option<RemailerView> {
    let report = inputs.report;
    let find = |list: &'_ [ListEntry]| {
        list.iter().find(|e| e.address == address && (private || e.listed)).cloned()
    };
    let (mix, cpunk, yamn) = (find(&report.mix), find(&report.cpunk), find(&report.yamn));
    let (listed_mix, listed_cpunk, listed_yamn) = (mix.is_some(), cpunk.is_some(), yamn.is_some());
    let any = mix.as_ref().or(cpunk.as_ref()).or(yamn.as_ref())?;
    let row = inputs.remailers.iter().find(|r| r.address == address);
    let date = |t: Option<i64>| {
        t.map(|t| crate::model::time::utc_date(t).format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let keys = row
        .map(|r| {
            r.keys
                .iter()
                .filter(|k| k.ping_type != PingType::CpunkClear)
                .map(|k| KeyView {
                    ping_type: k.ping_type.to_string(),
                    key_id: k.key_id.clone(),
                    valid_from: date(k.valid_from),
                    valid_until: date(k.valid_until),
                    state: if k.retired_at.is_some() {
                        "retired".into()
                    } else if k.is_current(report.now) {
                        "current".into()
                    } else {
                        "not valid now".into()
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    let replies = row
        .and_then(|r| inputs.replies.get(&r.id))
        .map(|rs| {
            rs.iter()
                .map(|r| ReplyView {
                    kind: r.kind.as_str().to_owned(),
                    received: lists::rfc822_date(r.received_at),
                    body: r.body.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let c = report.returns.get(address).cloned().unwrap_or_default();
    let status = row.map_or_else(
        || "unknown".to_owned(),
        |r| match &r.status_reason {
            Some(reason) => format!("{} ({reason})", r.status),
            None => r.status.to_string(),
        },
    );
    Some(RemailerView {
        nick: any.nick.clone(),
        address: address.to_owned(),
        status,
        caps_line: any.caps.clone(),
        options: lists::options_flags(&any.caps),
        software: row.and_then(|r| r.remailer_type.clone()),
        mix: mix.map(|e| type_stats("Mixmaster", &e, report.now)),
        cpunk: cpunk.map(|e| type_stats("Cypherpunk", &e, report.now)),
        yamn: yamn.map(|e| type_stats("YAMN", &e, report.now)),
        keys,
        counters: Counters {
            returned: c.returned,
            duplicate: c.duplicate,
            forged: c.forged,
            corrupted: c.corrupted,
            bounced: c.bounced,
        },
        replies,
        stability: [
            ("Mixmaster", ChainType::Mix, listed_mix),
            ("Cypherpunk", ChainType::Cpunk, listed_cpunk),
            ("YAMN", ChainType::Yamn, listed_yamn),
        ]
        .into_iter()
        .filter(|(_, _, shown)| *shown)
        .filter_map(|(label, family, _)| {
            report
                .stability
                .get(&(address.to_owned(), family))
                .map(|s| stability_view(label, s, report.now))
        })
        .collect(),
        downtime: report.downtime.get(address).map(notice_view),
        replay: report.replay.get(address).map(replay_view),
        events: Vec::new(),
    })
}

/// What the probes found, in one sentence.
fn replay_view(status: &ReplayStatus) -> ReplayView {
    let when = status.decided_at.map(|t| format!("{}; ", minute(t))).unwrap_or_default();
    let conclusive = status.protected + status.replayed;
    let tally = format!(
        "{when}{conclusive} conclusive probe{} of {}, {} replayed",
        if conclusive == 1 { "" } else { "s" },
        conclusive + status.inconclusive + status.not_sent + status.pending,
        status.replayed
    );
    let text = match status.verdict {
        Some(ProbeVerdict::Replayed) => {
            format!("it delivered both copies of a packet sent twice ({tally})")
        }
        Some(_) => format!("works: the newest probe's replayed packet was dropped ({tally})"),
        None => format!("not known yet: no probe has come back once ({tally})"),
    };
    ReplayView { broken: status.is_broken(), text }
}

/// Events on the index, and on a remailer's page.
const INDEX_EVENTS: usize = 20;
const REMAILER_EVENTS: usize = 20;

/// `2026-12-02 14:00 UTC`.
fn minute(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// The newest `limit` events of a tree (the public one shows public events only), each
/// linked to its remailer's page when `views` has one.
fn event_views(
    events: &[Event],
    views: &[RemailerView],
    private: bool,
    limit: usize,
) -> Vec<EventView> {
    events
        .iter()
        .filter(|e| private || e.is_public())
        .take(limit)
        .map(|e| EventView {
            when: minute(e.at),
            title: e.title(),
            detail: e.detail.clone(),
            kind: e.kind.as_str().to_owned(),
            page: e
                .remailer
                .as_ref()
                .and_then(|r| views.iter().find(|v| v.address == r.address))
                .map(RemailerView::page),
        })
        .collect()
}

fn stability_view(label: &str, s: &Stability, now: i64) -> StabilityView {
    let first = now - (s.daily.len() as i64 - 1) * SECONDS_PER_DAY;
    let days = s
        .daily
        .iter()
        .enumerate()
        .map(|(i, &uptime)| Day {
            date: crate::model::time::utc_date(first + i as i64 * SECONDS_PER_DAY)
                .format("%Y-%m-%d")
                .to_string(),
            reliability: uptime,
            latency_secs: None,
        })
        .collect();
    let flags: Vec<&str> = [(s.stable, "Stable"), (s.longterm, "Longterm")]
        .iter()
        .filter(|f| f.0)
        .map(|f| f.1)
        .collect();
    StabilityView {
        label: label.to_owned(),
        wfu: s.wfu.map_or_else(|| "not known yet".to_owned(), |w| format!("{:.1}%", w * 100.0)),
        mtbf: if s.mtbf_secs > 0.0 {
            duration_text(s.mtbf_secs as i64)
        } else {
            "no run seen yet".to_owned()
        },
        time_known: duration_text(s.time_known_secs as i64),
        longevity: format!("{} of the last 365 days", s.longevity_days),
        flags: if flags.is_empty() { "none".to_owned() } else { flags.join(", ") },
        days,
    }
}

fn notice_view(n: &DowntimeNotice) -> NoticeView {
    NoticeView {
        state: n.state.as_str().to_owned(),
        text: n.text.clone(),
        source: match n.downtime.source {
            DowntimeSource::Operator => "announced by this pinger's operator".to_owned(),
            DowntimeSource::Signed => {
                "announced by the remailer's operator, signed with its admin key".to_owned()
            }
        },
    }
}

fn type_stats(label: &str, e: &ListEntry, now: i64) -> TypeStats {
    // The statistics count days back from today (index 0); the charts run oldest first.
    let days = (0..STATS_DAYS)
        .rev()
        .map(|i| Day {
            date: crate::model::time::utc_date(now - i as i64 * SECONDS_PER_DAY)
                .format("%Y-%m-%d")
                .to_string(),
            reliability: e.stats.reliability_by_day[i],
            latency_secs: e.stats.latency_median_by_day[i],
        })
        .collect();
    TypeStats {
        label: label.to_owned(),
        reliability: format!("{:.2}%", e.stats.reliability * 100.0),
        latency: lists::latency_text(e.stats.latency_median, true).trim().to_owned(),
        history: lists::history_v1(&e.stats.latency_median_by_day),
        days,
    }
}

/// The from-lines tables (`echolot.md` §5.6): per remailer shown (not middleman, not
/// testing), the From: header its returns had, grouped over the types that gave the same
/// one; the "user supplied" rows only where they differ from the default ones.
fn from_line_rows(
    inputs: &PageInputs<'_>,
    views: &[RemailerView],
) -> (Vec<FromLineRow>, Vec<FromLineRow>) {
    let mut default_rows = Vec::new();
    let mut user_rows = Vec::new();
    for v in views {
        let middleman =
            crate::model::caps::parse_caps_line(&v.caps_line).is_some_and(|c| c.has("middle"));
        if middleman || crate::model::caps::says_testing(&v.caps_line) {
            continue;
        }
        let rows = |with_from: bool| -> Vec<FromLineRow> {
            let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for f in inputs
                .from_lines
                .iter()
                .filter(|f| f.address == v.address && f.with_from == with_from)
            {
                let from = f.header.clone().unwrap_or_else(|| "Not Available".into());
                groups.entry(from).or_default().push(f.ping_type.to_string());
            }
            groups
                .into_iter()
                .map(|(from, mut types)| {
                    types.sort();
                    FromLineRow { nick: v.nick.clone(), types: types.join(", "), from }
                })
                .collect()
        };
        let (default, user) = (rows(false), rows(true));
        let same = default.len() == user.len()
            && default.iter().zip(&user).all(|(a, b)| a.types == b.types && a.from == b.from);
        default_rows.extend(default);
        if !same {
            user_rows.extend(user);
        }
    }
    (default_rows, user_rows)
}
