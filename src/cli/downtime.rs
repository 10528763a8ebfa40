//! `fathometer downtime …` (RFC 636: tell users why a remailer is down and until when) and
//! `fathometer events`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::output::terminal_safe;
use crate::model::SECONDS_PER_DAY;
use crate::model::downtime::{Announcement, DowntimeSource};
use crate::model::event::Event;
use crate::model::time::parse_time;
use crate::publish::json::rfc3339;
use crate::stats::downtime::{describe, short_time, state};
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum DowntimeAction {
    /// Announce that a remailer is (or will be) unavailable, why, and until when.
    Add {
        /// Remailer nick or address.
        remailer: String,
        /// When it is expected back: `2026-12-02 16:30 UTC`, RFC 3339, or `+2h`.
        #[arg(long)]
        until: String,
        /// When it becomes unavailable (default: now).
        #[arg(long)]
        from: Option<String>,
        /// Why, in a few words ("hardware maintenance"); shown to everyone.
        #[arg(long)]
        reason: String,
    },
    /// Show the announced downtimes still of interest (removed ones with --all).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Withdraw an announced downtime: it no longer counts anywhere.
    Remove { id: i64 },
    /// Vouch for a remailer's admin key (an armoured OpenPGP key file), against which its
    /// operator's signed announcements are verified; replaces what remailer-adminkey gave.
    AdminKey { remailer: String, file: PathBuf },
}

pub fn run(store: &mut Store, action: &DowntimeAction, now: i64) -> Result<()> {
    match action {
        DowntimeAction::Add { remailer, until, from, reason } => {
            let r = store.find_remailer(remailer)?;
            let starts_at = match from {
                Some(t) => parse_time(t, now).map_err(anyhow::Error::msg).context("--from")?,
                None => now,
            };
            let until = parse_time(until, now).map_err(anyhow::Error::msg).context("--until")?;
            let a =
                Announcement::checked(starts_at, until, reason, now).map_err(anyhow::Error::msg)?;
            let id = store.add_downtime(r.id, &a, now)?;
            let d = store.downtimes(now)?.into_iter().find(|d| d.id == id).context("stored")?;
            let name = r.nick.as_deref().unwrap_or(&r.address);
            outln!(
                "downtime {id}: {}: {}",
                terminal_safe(name),
                terminal_safe(&describe(&d, state(&d, false, now)))
            );
        }
        DowntimeAction::List { all } => {
            let since = if *all { i64::MIN } else { now - 8 * SECONDS_PER_DAY };
            let downtimes: Vec<_> = store
                .downtimes(since)?
                .into_iter()
                .filter(|d| *all || d.removed_at.is_none())
                .collect();
            if downtimes.is_empty() {
                outln!("no announced downtime");
            }
            for d in downtimes {
                let by = match d.source {
                    DowntimeSource::Operator => "operator".to_owned(),
                    DowntimeSource::Signed => {
                        format!("signed by {}", d.signer.as_deref().unwrap_or("?"))
                    }
                };
                let removed = match (d.removed_at, d.superseded_at) {
                    (_, Some(t)) => format!("  (replaced {})", short_time(t)),
                    (Some(t), None) => format!("  (removed {})", short_time(t)),
                    _ => String::new(),
                };
                outln!(
                    "{:>4}  {}  {} → {}  {}  [{by}]{removed}",
                    d.id,
                    terminal_safe(&d.address),
                    short_time(d.announcement.starts_at),
                    short_time(d.announcement.until),
                    terminal_safe(&d.announcement.reason),
                );
            }
        }
        DowntimeAction::Remove { id } => {
            if !store.remove_downtime(*id, now)? {
                anyhow::bail!(
                    "no announced downtime {id} in force (see `fathometer downtime list`)"
                );
            }
            outln!("downtime {id} removed");
        }
        DowntimeAction::AdminKey { remailer, file } => {
            let r = store.find_remailer(remailer)?;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let certs = crate::compose::openpgp::parse_certs(text.as_bytes(), now);
            let good: Vec<_> = certs.iter().filter_map(|c| c.as_ref().ok()).collect();
            if good.is_empty() {
                anyhow::bail!("{}: no usable OpenPGP public key", file.display());
            }
            store.import_admin_key(r.id, &text, now)?;
            for c in good {
                outln!(
                    "admin key {} ({}) now verifies the downtime announcements of {}",
                    c.key_id,
                    terminal_safe(&c.user_ids.join(", ")),
                    terminal_safe(&r.address)
                );
            }
        }
    }
    Ok(())
}

/// `fathometer events`: the events recorded since `since`, oldest first.
pub fn events(store: &Store, since: Option<&str>, limit: usize, now: i64) -> Result<()> {
    let since = match since {
        Some(t) => parse_time(t, now).map_err(anyhow::Error::msg).context("--since")?,
        None => now - 7 * SECONDS_PER_DAY,
    };
    let mut events: Vec<Event> = store.events_since(since, limit)?;
    events.reverse();
    if events.is_empty() {
        outln!("no events since {}", short_time(since));
    }
    for e in events {
        outln!(
            "{}  {:<20}  {}: {}",
            rfc3339(e.at),
            e.kind.as_str(),
            terminal_safe(&e.title()),
            terminal_safe(&e.detail)
        );
    }
    Ok(())
}
