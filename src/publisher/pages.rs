//! Fills the HTML view models ([`html`]) from the statistics and what the store knows about
//! each remailer, and names the pages: `index.html`, one page per remailer, `from.html` and
//! `thesaurus.html`. Pure: the store's rows come in, `(file name, page)` pairs go out.

use std::collections::BTreeMap;

use super::html::{
    self, BrokenChain, Counters, Day, FromLineRow, HtmlError, KeyView, RemailerView, ReplyView,
    Site, TypeStats,
};
use super::lists;
use crate::discovery;
use crate::stats::{ListEntry, Report, SECONDS_PER_DAY, STATS_DAYS};
use crate::store::{FromLine, RemailerRow, StoredReply};
use crate::types::PingType;

/// What the pages show besides the statistics.
pub struct PageInputs<'a> {
    pub report: &'a Report,
    pub remailers: &'a [RemailerRow],
    /// The latest replies, by remailer row id.
    pub replies: &'a BTreeMap<i64, Vec<StoredReply>>,
    pub from_lines: &'a [FromLine],
    pub site_name: &'a str,
    pub operator: Option<&'a str>,
    /// Whether clist.txt is written (the split rlists follow the report).
    pub combined_list: bool,
}

/// The optional list files, in the order [`super::list_files`] writes them.
fn extra_lists(report: &Report, combined_list: bool) -> Vec<String> {
    let mut names = Vec::new();
    for (spec, _) in &report.cpunk_by_type {
        names.extend(super::split_list_names(spec));
    }
    if combined_list {
        names.push("clist.txt".to_owned());
    }
    names
}

/// Every page, as `(file name, HTML)`. Public pages show remailers listed in either family;
/// private ones (`private`) every remailer with statistics.
pub fn render_pages(
    inputs: &PageInputs<'_>,
    private: bool,
) -> Result<Vec<(String, String)>, HtmlError> {
    let report = inputs.report;
    let site = Site {
        name: inputs.site_name.to_owned(),
        operator: inputs.operator.map(str::to_owned),
        generated: lists::rfc822_date(report.now),
        model: report.model.as_str().to_owned(),
        base_path: String::new(),
        extra_lists: extra_lists(report, inputs.combined_list),
    };
    let shown = |e: &&ListEntry| private || e.listed;
    let mut order: Vec<&str> = Vec::new();
    for e in report.mix.iter().chain(&report.cpunk).filter(shown) {
        if !order.contains(&e.address.as_str()) {
            order.push(&e.address);
        }
    }
    let views: Vec<RemailerView> =
        order.iter().filter_map(|address| remailer_view(inputs, address, private)).collect();
    let in_list = |list: &[ListEntry]| -> Vec<RemailerView> {
        list.iter()
            .filter(shown)
            .filter_map(|e| views.iter().find(|v| v.address == e.address).cloned())
            .collect()
    };
    let (mix_views, cpunk_views) = (in_list(&report.mix), in_list(&report.cpunk));
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
    let mut pages = vec![(
        "index.html".to_owned(),
        html::render_index(
            &site,
            &ordered(&mix_views, &cpunk_views),
            &broken(&report.broken_type1),
            &broken(&report.broken_type2),
        )?,
    )];
    for v in &views {
        pages.push((v.page(), html::render_remailer(&site, v)?));
    }
    let mut by_nick = views.clone();
    by_nick.sort_by(|a, b| a.nick.cmp(&b.nick));
    let (default_rows, user_rows) = from_line_rows(inputs, &by_nick);
    pages.push(("from.html".into(), html::render_from_lines(&site, &default_rows, &user_rows)?));
    pages.push(("thesaurus.html".into(), html::render_thesaurus(&site, &by_nick)?));
    Ok(pages)
}

/// The index lists Mixmaster remailers in mlist order, then Cypherpunk-only ones in rlist
/// order (the template splits them into the two tables by their statistics).
fn ordered(mix: &[RemailerView], cpunk: &[RemailerView]) -> Vec<RemailerView> {
    let mut out = mix.to_vec();
    for v in cpunk {
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
    let (mix, cpunk) = (find(&report.mix), find(&report.cpunk));
    let any = mix.as_ref().or(cpunk.as_ref())?;
    let row = inputs.remailers.iter().find(|r| r.address == address);
    let date = |t: Option<i64>| {
        t.map(|t| crate::scheduler::utc_date(t).format("%Y-%m-%d").to_string())
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
            None => r.status.clone(),
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
        keys,
        counters: Counters {
            returned: c.returned,
            duplicate: c.duplicate,
            forged: c.forged,
            corrupted: c.corrupted,
            bounced: c.bounced,
        },
        replies,
    })
}

fn type_stats(label: &str, e: &ListEntry, now: i64) -> TypeStats {
    // The statistics count days back from today (index 0); the charts run oldest first.
    let days = (0..STATS_DAYS)
        .rev()
        .map(|i| Day {
            date: crate::scheduler::utc_date(now - i as i64 * SECONDS_PER_DAY)
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
        let caps = discovery::parse_caps_line(&v.caps_line);
        if caps.as_ref().is_some_and(|c| c.has("middle") || c.is_testing()) {
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
