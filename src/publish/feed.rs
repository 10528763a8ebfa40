//! Atom feeds (RFC 4287) of the status events: `events.atom` with every event of the tree,
//! and one per remailer beside its page (`remailer-<nick>-<hash>.atom`).
//!
//! Entry ids are `tag:` URIs (RFC 4151) minted from the pinger's address, the day the event
//! was recorded and its number, so they never change and never collide. Every string from a
//! remailer is escaped for XML, and characters XML 1.0 cannot carry are dropped, so no
//! remailer can break a feed or inject markup into it.

use std::fmt::Write as _;

use super::html::{RemailerView, feed_name};
use super::json::rfc3339;
use crate::model::Remailer;
use crate::model::event::Event;

/// What the feeds of a tree are made from.
pub struct FeedInputs<'a> {
    /// Recent events, newest first.
    pub events: &'a [Event],
    /// Every remailer (when each appeared).
    pub remailers: &'a [Remailer],
    pub site_name: &'a str,
    /// The authority of the entries' `tag:` ids.
    pub pinger_address: &'a str,
}

/// Entries per feed.
pub const FEED_ENTRIES: usize = 100;

/// The feed of all events.
pub const EVENTS_FEED: &str = "events.atom";

/// Text for XML content or a quoted attribute: escaped, without the characters XML 1.0
/// forbids (C0 controls other than tab, line feed and carriage return; U+FFFE, U+FFFF).
pub fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The `tag:` authority: the pinger's address (an e-mail address is a valid one).
fn authority(pinger_address: &str) -> String {
    pinger_address
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "@.-_".contains(*c))
        .collect::<String>()
        .to_ascii_lowercase()
}

/// `tag:pinger@example.net,2026-12-02:fathometer/event/17`.
fn entry_id(authority: &str, e: &Event) -> String {
    let day = crate::model::time::utc_date(e.recorded_at).format("%Y-%m-%d");
    format!("tag:{authority},{day}:fathometer/event/{}", e.id)
}

struct Feed<'a> {
    /// Relative to the tree's root: the feed's own name, and the page it belongs to.
    file: String,
    page: String,
    title: String,
    /// Stable: the same feed has the same id forever.
    id: String,
    site_name: &'a str,
    /// The `tag:` authority of its entries.
    authority: &'a str,
}

/// `since`: when the feed's subject appeared (its `updated` while it has no entry, so that
/// a feed changes only when an event does).
fn render(
    feed: &Feed<'_>,
    events: &[&Event],
    page_of: impl Fn(&Event) -> Option<String>,
    since: i64,
) -> String {
    let updated = events.iter().map(|e| e.recorded_at).max().unwrap_or(since);
    let mut out = String::new();
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <feed xmlns=\"http://www.w3.org/2005/Atom\">\n\
         <id>{id}</id>\n<title>{title}</title>\n<updated>{updated}</updated>\n\
         <author><name>{site}</name></author>\n\
         <generator>fathometer</generator>\n\
         <link rel=\"self\" type=\"application/atom+xml\" href=\"{file}\"/>\n\
         <link rel=\"alternate\" type=\"text/html\" href=\"{page}\"/>\n",
        id = xml_text(&feed.id),
        title = xml_text(&feed.title),
        updated = rfc3339(updated),
        site = xml_text(feed.site_name),
        file = xml_text(&feed.file),
        page = xml_text(&feed.page),
    );
    for e in events {
        let _ = write!(
            out,
            "<entry>\n<id>{id}</id>\n<title>{title}</title>\n<updated>{updated}</updated>\n\
             <published>{published}</published>\n<category term=\"{kind}\"/>\n",
            id = xml_text(&entry_id(feed.authority, e)),
            title = xml_text(&e.title()),
            updated = rfc3339(e.recorded_at),
            published = rfc3339(e.at.min(e.recorded_at)),
            kind = e.kind.as_str(),
        );
        // Every entry links a page: its remailer's, or the index for the pinger's own.
        let page = page_of(e).unwrap_or_else(|| "index.html".to_owned());
        let _ = write!(
            out,
            "<link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n\
             <content type=\"text\">{}</content>\n</entry>\n",
            xml_text(&page),
            xml_text(&e.detail)
        );
    }
    out.push_str("</feed>\n");
    out
}

/// The feeds of one tree: every event (the public tree: public events only), and one per
/// remailer shown, as `(file name, content)`.
pub fn feeds(
    inputs: &FeedInputs<'_>,
    views: &[RemailerView],
    private: bool,
    now: i64,
) -> Vec<(String, String)> {
    let authority = authority(inputs.pinger_address);
    let shown: Vec<&Event> = inputs.events.iter().filter(|e| private || e.is_public()).collect();
    let page_of = |e: &Event| {
        e.remailer
            .as_ref()
            .and_then(|r| views.iter().find(|v| v.address == r.address))
            .map(RemailerView::page)
    };
    let tree = if private { "private" } else { "public" };
    let all = Feed {
        file: EVENTS_FEED.to_owned(),
        page: "index.html".to_owned(),
        title: format!("{}: remailer status events", inputs.site_name),
        id: format!("tag:{authority},2026:fathometer/{tree}/events"),
        site_name: inputs.site_name,
        authority: &authority,
    };
    let newest: Vec<&Event> = shown.iter().copied().take(FEED_ENTRIES).collect();
    let first_seen = |address: &str| {
        inputs.remailers.iter().find(|r| r.address == address).map(|r| r.first_seen)
    };
    let oldest = inputs.remailers.iter().map(|r| r.first_seen).min().unwrap_or(now);
    let mut out = vec![(all.file.clone(), render(&all, &newest, page_of, oldest))];
    for v in views {
        let own: Vec<&Event> = shown
            .iter()
            .copied()
            .filter(|e| e.remailer.as_ref().is_some_and(|r| r.address == v.address))
            .take(FEED_ENTRIES)
            .collect();
        let feed = Feed {
            file: v.feed(),
            page: v.page(),
            title: format!("{}: {} status events", inputs.site_name, v.nick),
            id: format!(
                "tag:{authority},2026:fathometer/{tree}/remailer/{}",
                feed_name(&v.nick, &v.address).trim_end_matches(".atom")
            ),
            site_name: inputs.site_name,
            authority: &authority,
        };
        let since = first_seen(&v.address).unwrap_or(oldest);
        out.push((feed.file.clone(), render(&feed, &own, |_| Some(v.page()), since)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_what_xml_cannot_carry_is_dropped() {
        assert_eq!(xml_text("a<b>&\"'\u{7}\u{0}\tz\u{FFFF}"), "a&lt;b&gt;&amp;&quot;&apos;\tz");
        assert_eq!(authority("Ping+X@Example.NET"), "pingx@example.net");
    }
}
