//! The HTML pages: the index, one page per remailer, the From: lines and the thesaurus.
//!
//! Rendering is pure: plain view models come in (the publisher fills them from the store
//! and the statistics), a page's text goes out. The pages use no JavaScript and load
//! nothing (inline `<style>`, inline SVG charts), and a Content-Security-Policy meta tag
//! forbids scripts and every external load as a second line of defence.
//!
//! **Every string from a remailer is hostile** (nick, address, caps line, options, software,
//! keys, reply bodies, From: lines). The templates are rendered by minijinja with HTML
//! autoescaping on for every template, and no template uses `|safe`. The escaping is
//! minijinja's set (`& < > " ' /`) plus `=` and `` ` `` ([`escape`]), so that not even the
//! text of an injected attribute (`onerror=`) survives. The only markup inserted unescaped
//! is the SVG of [`reliability_chart`], [`latency_chart`], [`uptime_chart`] and
//! [`reliability_sparkline`],
//! marked safe in Rust ([`Value::from_safe_string`]): it is built from numbers and escaped
//! generated text only. File names and anchors are built here from sanitised characters
//! ([`page_name`]), never taken from remailer data.

mod chart;
#[cfg(test)]
mod tests;

use std::fmt;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, Value, ValueKind};
use minijinja::{AutoEscape, Environment, ErrorKind, Output, State, UndefinedBehavior, context};
use serde::Serialize;

pub use chart::{
    LATENCY_CAP_SECS, latency_chart, reliability_chart, reliability_sparkline, uptime_chart,
};

/// Reply bodies longer than this are cut (at a character boundary) on the remailer page.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// The reply kinds of the thesaurus, in column order.
pub const REPLY_KINDS: [&str; 5] = ["conf", "key", "help", "stats", "adminkey"];

/// The pinger itself, shown on every page.
#[derive(Debug, Clone, Serialize)]
pub struct Site {
    pub name: String,
    pub operator: Option<String>,
    /// When the pages were built, as text (RFC 822 date).
    pub generated: String,
    /// The reliability model (`methodology` or `echolot`).
    pub model: String,
    /// Prefix of every link to a published file: `""` (pages beside the files, the
    /// default) or a URL path ending in `/`.
    pub base_path: String,
    /// The optional list files this pinger writes (split rlists, clist.txt), linked from the
    /// index.
    pub extra_lists: Vec<String>,
}

/// One family's statistics of a remailer (the row of mlist.txt or rlist.txt).
#[derive(Debug, Clone, Serialize)]
pub struct TypeStats {
    /// `Mixmaster` or `Cypherpunk`.
    pub label: String,
    /// `99.12%`.
    pub reliability: String,
    /// `1:02:03`.
    pub latency: String,
    /// The 12-character Echolot history, as in the list.
    pub history: String,
    /// The days of the window, **oldest first**.
    pub days: Vec<Day>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Day {
    /// `YYYY-MM-DD` (any text works; it is escaped).
    pub date: String,
    /// Reliability of the pings sent that day, `0..=1` (clamped when drawn).
    pub reliability: Option<f64>,
    /// Median latency of that day's returns, in seconds.
    pub latency_secs: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub ping_type: String,
    pub key_id: String,
    pub valid_from: String,
    pub valid_until: String,
    pub state: String,
}

/// The mail that came back in the window (decision 5).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counters {
    pub returned: u64,
    pub duplicate: u64,
    pub forged: u64,
    pub corrupted: u64,
    pub bounced: u64,
}

/// The latest reply of one kind (`conf`, `key`, `help`, `stats`, `adminkey`).
#[derive(Debug, Clone, Serialize)]
pub struct ReplyView {
    pub kind: String,
    pub received: String,
    /// The raw body, shown escaped in a `<pre>` (cut at [`MAX_REPLY_BYTES`]).
    pub body: String,
}

/// Everything shown about one remailer. Its page is [`RemailerView::page`].
#[derive(Debug, Clone, Serialize)]
pub struct RemailerView {
    pub nick: String,
    pub address: String,
    pub status: String,
    pub caps_line: String,
    /// Short flags (the Options column).
    pub options: String,
    pub software: Option<String>,
    pub mix: Option<TypeStats>,
    pub cpunk: Option<TypeStats>,
    /// Its YAMN figures, when it is a YAMN remailer.
    pub yamn: Option<TypeStats>,
    pub keys: Vec<KeyView>,
    pub counters: Counters,
    /// At most one per kind is expected; the thesaurus links the first of each kind.
    pub replies: Vec<ReplyView>,
    /// Long-term stability per family it is listed in.
    pub stability: Vec<StabilityView>,
    /// The announced downtime shown now (RFC 636), if any.
    pub downtime: Option<NoticeView>,
    /// What the replay-protection probes found, once it was probed.
    pub replay: Option<ReplayView>,
    /// Its recent events, newest first.
    pub events: Vec<EventView>,
}

/// The long-term figures of one family, as text.
#[derive(Debug, Clone, Serialize)]
pub struct StabilityView {
    /// `Mixmaster` or `Cypherpunk`.
    pub label: String,
    /// `98.2%`, or `not known yet`.
    pub wfu: String,
    /// `3 d 4 h`.
    pub mtbf: String,
    pub time_known: String,
    /// `45 days`.
    pub longevity: String,
    /// `Stable, Longterm`, or `none`.
    pub flags: String,
    /// The last 90 days, oldest first: `reliability` is the day's uptime.
    pub days: Vec<Day>,
}

/// An announced downtime, RFC 636's way.
#[derive(Debug, Clone, Serialize)]
pub struct NoticeView {
    /// `upcoming`, `active` or `overdue`.
    pub state: String,
    /// "unavailable because of hardware maintenance, expected back Tue 02 Dec 16:30 UTC".
    pub text: String,
    /// Who announced it: "the remailer's operator (signed)" or "this pinger's operator".
    pub source: String,
}

/// A remailer's replay protection, as its probes found it.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayView {
    /// The newest conclusive probe got both copies back.
    pub broken: bool,
    /// "works: the newest probe's replayed packet was dropped (2026-12-02 14:00 UTC; 3 probes,
    /// 0 replayed)".
    pub text: String,
}

/// One status event.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    /// `2026-12-02 14:00 UTC`.
    pub when: String,
    /// "testmix1: not responding (mix)".
    pub title: String,
    pub detail: String,
    pub kind: String,
    /// The remailer's page, when it has one in this tree.
    pub page: Option<String>,
}

impl RemailerView {
    /// The file name of this remailer's page: `page_name(nick, address)`.
    pub fn page(&self) -> String {
        page_name(&self.nick, &self.address)
    }

    /// The file name of this remailer's event feed: its page's name with `.atom`.
    pub fn feed(&self) -> String {
        feed_name(&self.nick, &self.address)
    }
}

/// Two remailers that do not work in this order.
#[derive(Debug, Clone, Serialize)]
pub struct BrokenChain {
    pub left: String,
    pub right: String,
}

/// One row of from.html: the From: header a remailer's mail arrives with.
#[derive(Debug, Clone, Serialize)]
pub struct FromLineRow {
    pub nick: String,
    /// Ping types with this From: line, e.g. `cpunk-dsa, cpunk-rsa, mix`.
    pub types: String,
    pub from: String,
}

/// One row of the thesaurus: a remailer and its raw reply files.
#[derive(Debug, Clone, Serialize)]
pub struct ThesaurusRow {
    pub nick: String,
    pub address: String,
    /// The remailer's page, relative to the results root ([`page_name`]).
    pub page: String,
    /// One per kind of [`REPLY_KINDS`], in that order: the reply's file, if one arrived.
    pub files: Vec<Option<ThesaurusFile>>,
}

/// A raw reply beside the thesaurus index.
#[derive(Debug, Clone, Serialize)]
pub struct ThesaurusFile {
    /// `<remailer id>.<kind>`, e.g. `17.conf` (Echolot's names).
    pub name: String,
    /// When it arrived, `YYYY-MM-DD HH:MM` UTC.
    pub received: String,
}

/// The page of a list file: `mlist.txt` is shown by `mlist.html`.
pub fn list_page_name(list_file: &str) -> String {
    format!("{}.html", list_file.strip_suffix(".txt").unwrap_or(list_file))
}

/// A page could not be rendered (a template error: a bug, never caused by the data).
#[derive(Debug)]
pub struct HtmlError(minijinja::Error);

impl fmt::Display for HtmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rendering HTML: {}", self.0)
    }
}

impl std::error::Error for HtmlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl From<minijinja::Error> for HtmlError {
    fn from(e: minijinja::Error) -> Self {
        HtmlError(e)
    }
}

/// A safe file name for a remailer's page, whatever the nick:
/// `remailer-<nick>-<hash>.html`, where `<nick>` keeps ASCII letters (lowercased) and
/// digits, turns every other run of characters into one `-` and is at most 32 characters,
/// and `<hash>` is 8 hex digits of a stable hash (FNV-1a) of the address, so that two
/// remailers with the same nick get different pages. With no usable character in the nick
/// it is `remailer-<hash>.html`. The result only ever contains `[a-z0-9-]` and `.html`.
pub fn page_name(nick: &str, address: &str) -> String {
    let mut slug = String::new();
    for c in nick.chars() {
        if slug.len() >= 32 {
            break;
        }
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    let hash = fnv1a_32(address.as_bytes());
    if slug.is_empty() {
        format!("remailer-{hash:08x}.html")
    } else {
        format!("remailer-{slug}-{hash:08x}.html")
    }
}

/// The event feed of a remailer: [`page_name`] with `.atom` for `.html`.
pub fn feed_name(nick: &str, address: &str) -> String {
    let page = page_name(nick, address);
    format!("{}.atom", page.strip_suffix(".html").unwrap_or(&page))
}

/// FNV-1a, 64 bits folded to 32: stable across builds and platforms (unlike std's hasher).
fn fnv1a_32(bytes: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    ((h >> 32) ^ (h & 0xffff_ffff)) as u32
}

/// An `id` for a reply section: `reply-<kind>` with the kind reduced to `[a-z0-9]`.
fn reply_anchor(kind: &str) -> String {
    let k: String = kind
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(16)
        .collect();
    if k.is_empty() { "reply-other".to_owned() } else { format!("reply-{k}") }
}

fn truncate_body(body: &str) -> (String, bool) {
    if body.len() <= MAX_REPLY_BYTES {
        return (body.to_owned(), false);
    }
    let mut end = MAX_REPLY_BYTES;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    (body[..end].to_owned(), true)
}

/// Escapes text for HTML and SVG content and quoted attribute values: `& < > " ' / = \``.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '/' => out.push_str("&#47;"),
            '=' => out.push_str("&#61;"),
            '`' => out.push_str("&#96;"),
            _ => out.push(c),
        }
    }
    out
}

/// minijinja's formatter with [`escape`] for every value not marked safe.
fn formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), minijinja::Error> {
    let plain = matches!(
        value.kind(),
        ValueKind::Undefined | ValueKind::None | ValueKind::Bool | ValueKind::Number
    );
    if plain || value.is_safe() || !matches!(state.auto_escape(), AutoEscape::Html) {
        return minijinja::escape_formatter(out, state, value);
    }
    let escaped = match value.as_str() {
        Some(s) => escape(s),
        None => escape(&value.to_string()),
    };
    out.write_str(&escaped)
        .map_err(|_| minijinja::Error::new(ErrorKind::WriteFailure, "writing a page failed"))
}

const TEMPLATES: [(&str, &str); 7] = [
    ("consensus.html", include_str!("templates/consensus.html")),
    ("base.html", include_str!("templates/base.html")),
    ("index.html", include_str!("templates/index.html")),
    ("remailer.html", include_str!("templates/remailer.html")),
    ("from_lines.html", include_str!("templates/from_lines.html")),
    ("thesaurus.html", include_str!("templates/thesaurus.html")),
    ("list.html", include_str!("templates/list.html")),
];

fn environment() -> Result<Environment<'static>, HtmlError> {
    let mut env = Environment::new();
    env.set_syntax(SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build()?);
    // Every template is HTML: escape everything, whatever a template is called.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_formatter(formatter);
    // A misspelt variable is an error (caught by the tests), not an empty string.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)?;
    }
    Ok(env)
}

/// The templates are parsed once per process: a build renders a page per remailer, and
/// parsing them anew for each page was most of its time.
fn render(template: &str, ctx: Value) -> Result<String, HtmlError> {
    static ENVIRONMENT: std::sync::OnceLock<Result<Environment<'static>, String>> =
        std::sync::OnceLock::new();
    let env = ENVIRONMENT
        .get_or_init(|| environment().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| {
            HtmlError(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("the templates did not load: {e}"),
            ))
        })?;
    Ok(env.get_template(template)?.render(ctx)?)
}

fn family_rows(remailers: &[RemailerView], pick: fn(&RemailerView) -> Option<&TypeStats>) -> Value {
    let rows: Vec<Value> = remailers
        .iter()
        .filter_map(|r| pick(r).map(|ts| (r, ts)))
        .map(|(r, ts)| {
            context! {
                r => Serde(r),
                ts => Serde(ts),
                page => r.page(),
                spark => Value::from_safe_string(reliability_sparkline(&ts.days)),
            }
        })
        .collect();
    Value::from(rows)
}

/// The index: per family a table of the remailers in the order given (nick linked to its
/// page, address, history, latency, reliability, a reliability sparkline, options), the
/// broken chains (`broken1` type I = Cypherpunk, `broken2` type II = Mixmaster) and links
/// to every published file.
pub fn render_index(
    site: &Site,
    remailers: &[RemailerView],
    broken1: &[BrokenChain],
    broken2: &[BrokenChain],
    broken_yamn: &[BrokenChain],
    events: &[EventView],
) -> Result<String, HtmlError> {
    let notices: Vec<Value> = remailers
        .iter()
        .filter_map(|r| {
            r.downtime
                .as_ref()
                .map(|n| context! { nick => r.nick.as_str(), page => r.page(), n => Serde(n) })
        })
        .collect();
    let replayed: Vec<Value> = remailers
        .iter()
        .filter_map(|r| {
            r.replay.as_ref().filter(|v| v.broken).map(|v| {
                context! { nick => r.nick.as_str(), page => r.page(), text => v.text.as_str() }
            })
        })
        .collect();
    let families = vec![
        context! {
            id => "mix",
            label => "Mixmaster",
            list => "mlist",
            rows => family_rows(remailers, |r| r.mix.as_ref()),
            broken_title => "Broken type-II (Mixmaster) chains",
            broken => Serde(broken2),
        },
        context! {
            id => "cpunk",
            label => "Cypherpunk",
            list => "rlist",
            rows => family_rows(remailers, |r| r.cpunk.as_ref()),
            broken_title => "Broken type-I (Cypherpunk) chains",
            broken => Serde(broken1),
        },
    ];
    // YAMN only on a pinger that pings YAMN remailers.
    let yamn_rows = family_rows(remailers, |r| r.yamn.as_ref());
    let mut families = families;
    if yamn_rows.len().unwrap_or(0) > 0 {
        families.push(context! {
            id => "yamn",
            label => "YAMN",
            list => "yamn/mlist",
            rows => yamn_rows,
            broken_title => "Broken YAMN chains",
            broken => Serde(broken_yamn),
        });
    }
    render(
        "index.html",
        context! { site => Serde(site), families, notices, replayed, events => Serde(events) },
    )
}

fn day_rows(days: &[Day]) -> Vec<Value> {
    days.iter()
        .map(|d| {
            context! {
                date => d.date.as_str(),
                reliability => chart::reliability_value(d.reliability).map(chart::percent),
                latency => chart::latency_value(d.latency_secs).map(chart::hms),
            }
        })
        .collect()
}

/// A remailer's page: identity and caps line, per family a reliability and a latency chart
/// (with the figures in a table too), its keys, the counters of returned mail, and the
/// latest replies, each body escaped inside `<pre>`.
pub fn render_remailer(site: &Site, r: &RemailerView) -> Result<String, HtmlError> {
    let families: Vec<Value> = [&r.mix, &r.cpunk, &r.yamn]
        .into_iter()
        .flatten()
        .map(|ts| {
            context! {
                ts => Serde(ts),
                reliability_chart => Value::from_safe_string(reliability_chart(&ts.days)),
                latency_chart => Value::from_safe_string(latency_chart(&ts.days)),
                days => day_rows(&ts.days),
            }
        })
        .collect();
    let mut anchors: Vec<String> = Vec::new();
    let replies: Vec<Value> = r
        .replies
        .iter()
        .map(|reply| {
            let base = reply_anchor(&reply.kind);
            let mut anchor = base.clone();
            let mut n = 2;
            while anchors.contains(&anchor) {
                anchor = format!("{base}-{n}");
                n += 1;
            }
            anchors.push(anchor.clone());
            let (body, truncated) = truncate_body(&reply.body);
            context! {
                kind => reply.kind.as_str(),
                received => reply.received.as_str(),
                anchor,
                body,
                truncated,
                size => reply.body.len(),
            }
        })
        .collect();
    let stability: Vec<Value> = r
        .stability
        .iter()
        .map(|st| context! { st => Serde(st), chart => Value::from_safe_string(uptime_chart(&st.days)) })
        .collect();
    render(
        "remailer.html",
        context! { site => Serde(site), r => Serde(r), feed => r.feed(), families, replies, stability },
    )
}

/// from.html: the From: lines of returned pings, as the remailer pastes them by default and
/// when the sender supplies one (rows in the order given; `user_rows` may be empty).
pub fn render_from_lines(
    site: &Site,
    default_rows: &[FromLineRow],
    user_rows: &[FromLineRow],
) -> Result<String, HtmlError> {
    render(
        "from_lines.html",
        context! {
            site => Serde(site),
            default_rows => Serde(default_rows),
            user_rows => Serde(user_rows),
        },
    )
}

/// The thesaurus index (`thesaurus/index.html`): per remailer (in the order given) when its
/// latest conf, key, help, stats and adminkey replies arrived, each linking the raw reply
/// beside the page. `site.base_path` must lead back to the results root (`../`).
pub fn render_thesaurus(
    site: &Site,
    rows: &[ThesaurusRow],
    max_age_days: i64,
) -> Result<String, HtmlError> {
    render(
        "thesaurus.html",
        context! { site => Serde(site), kinds => REPLY_KINDS, rows => Serde(rows), max_age_days },
    )
}

/// One peer's file as the consensus page shows it: when the last good copy came, how the
/// last attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFetch {
    pub peer: String,
    pub file: String,
    pub fetched_at: Option<i64>,
    pub error: Option<String>,
    pub failures: i64,
}

/// The consensus page (`consensus/index.html`): per list every pinger's figure for every
/// remailer beside the median, outliers marked, stale pingers, key disagreements and each
/// peer's last fetch. Every string from a peer is escaped like a remailer's.
pub fn render_consensus(
    site: &Site,
    mix: &crate::stats::consensus::Consensus,
    cpunk: &crate::stats::consensus::Consensus,
    keys: &[crate::stats::consensus::KeyDisagreement],
    peers: &[PeerFetch],
) -> Result<String, HtmlError> {
    let percent = |r: f64| format!("{r:.1}%");
    let minutes = |l: Option<f64>| {
        l.map_or("–".to_owned(), |l| {
            crate::publish::lists::latency_text(Some(l), false).trim().to_owned()
        })
    };
    let list = |title: &str, file: &str, c: &crate::stats::consensus::Consensus| {
        let mut pingers: Vec<String> = c.fresh.clone();
        pingers.dedup();
        let remailers: Vec<Value> = c
            .remailers
            .iter()
            .map(|r| {
                let views: Vec<Value> = pingers
                    .iter()
                    .map(|p| match r.views.iter().find(|v| &v.pinger == p) {
                        Some(v) => context! {
                            text => format!("{} {}", percent(v.reliability), minutes(v.latency.map(|l| l as f64))),
                            outlier => v.reliability_outlier || v.latency_outlier,
                        },
                        None => Value::from(()),
                    })
                    .collect();
                context! {
                    nick => r.nick.clone(), reliability => percent(r.reliability),
                    latency => minutes(r.latency), alive => r.alive, views,
                }
            })
            .collect();
        context! {
            title => title.to_owned(), file => file.to_owned(), agreed => c.agreed, quorum => c.quorum, fresh => c.fresh.clone(),
            stale => c.stale.clone(), pingers, remailers,
        }
    };
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| {
            context! {
                address => k.address.clone(),
                family => k.family.label(),
                holders => k.holders.clone(),
            }
        })
        .collect();
    let peers: Vec<Value> = peers
        .iter()
        .map(|p| {
            context! {
                peer => p.peer.clone(), file => p.file.clone(),
                fetched => p.fetched_at.map_or("never".to_owned(), crate::publish::lists::rfc822_date),
                error => p.error.clone(), failures => p.failures,
            }
        })
        .collect();
    render(
        "consensus.html",
        context! {
            site => Serde(site),
            lists => vec![list("Type II (Mixmaster)", "mlist.txt", mix), list("Type I (Cypherpunk)", "rlist.txt", cpunk)],
            keys, peers,
        },
    )
}

/// A list's page (`mlist.html` for `mlist.txt`): the text in `<pre>`, escaped like every
/// remailer string (rlist.txt carries the remailers' own caps lines), a legend for its
/// format, and links to the text file and to the pages of `all_lists`.
pub fn render_list_page(
    site: &Site,
    file: &str,
    text: &str,
    all_lists: &[String],
) -> Result<String, HtmlError> {
    let (format, about) = if file.starts_with("clist") {
        ("clist", "Every remailer of every list, in the version 2 format, one row per list.")
    } else if file.starts_with("mlist2") {
        ("v2", "Mixmaster (type II) remailers, version 2 format.")
    } else if file.starts_with("mlist") {
        ("v1", "Mixmaster (type II) remailers, the format the Mixmaster client reads.")
    } else if file.starts_with("rlist2") {
        ("v2", "Cypherpunk (type I) remailers, version 2 format.")
    } else if let Some(key_type) = file.strip_prefix("rlist-").and_then(|f| f.strip_suffix(".txt"))
    {
        let about = match key_type {
            "rsa" => {
                "Cypherpunk (type I) remailers, from the pings encrypted to their RSA keys only."
            }
            "dsa" => {
                "Cypherpunk (type I) remailers, from the pings encrypted to their DSA/ElGamal keys only."
            }
            _ => "Cypherpunk (type I) remailers, from the unencrypted pings only.",
        };
        ("v1", about)
    } else {
        ("v1", "Cypherpunk (type I) remailers with their capabilities.")
    };
    let others: Vec<Value> = all_lists
        .iter()
        .filter(|l| l.as_str() != file)
        .map(
            |l| context! { name => l.strip_suffix(".txt").unwrap_or(l), page => list_page_name(l) },
        )
        .collect();
    render("list.html", context! { site => Serde(site), file, text, format, about, others })
}
