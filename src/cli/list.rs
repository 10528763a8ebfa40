//! `fathometer list`: the remailers with their keys, figures and status, and with `--verbose`
//! their capabilities, keys with validity, history and next pings, and the candidates.
//! Every string a remailer supplied is made safe for the terminal.

use anyhow::Result;

use super::output::terminal_safe;
use crate::app::report;
use crate::app::secret::Secret;
use crate::model::{PingType, RemailerStatus};
use crate::publish;
use crate::schedule;
use crate::stats::{self, StatsOptions};
use crate::store::Store;

/// The `list` table.
pub fn table(store: &Store, now: i64, options: &StatsOptions) -> Result<String> {
    let report = report::report(store, now, options)?;
    let find = |list: &[stats::ListEntry], address: &str| {
        list.iter().find(|e| e.address == address).map(|e| {
            format!(
                "{:.2}% {}",
                e.stats.reliability * 100.0,
                publish::lists::latency_text(e.stats.latency_median, true).trim()
            )
        })
    };
    // A YAMN column only on a pinger with YAMN remailers.
    let yamn = !report.yamn.is_empty();
    let mut out = format!(
        "{:<14} {:<32} {:<24} {:>4} {:<18} {:<18} {}{}\n",
        "NICK",
        "ADDRESS",
        "TYPES",
        "KEYS",
        "MIX REL LAT",
        "CPUNK REL LAT",
        if yamn { format!("{:<18} ", "YAMN REL LAT") } else { String::new() },
        "STATUS"
    );
    for r in store.remailers()? {
        let mut types: Vec<&str> =
            r.keys.iter().filter(|k| k.is_current(now)).map(|k| k.ping_type.as_str()).collect();
        types.dedup();
        let mut status = r.status.to_string();
        if r.is_hidden() {
            status.push_str(if r.hidden { " hidden" } else { " hidden(testing)" });
        }
        if let Some(reason) = &r.status_reason {
            status.push_str(&format!(" ({})", terminal_safe(reason)));
        }
        let yamn_column = if yamn {
            format!("{:<18} ", find(&report.yamn, &r.address).unwrap_or_else(|| "-".into()))
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{:<14} {:<32} {:<24} {:>4} {:<18} {:<18} {}{}\n",
            terminal_safe(r.nick.as_deref().unwrap_or("-")),
            terminal_safe(&r.address),
            if types.is_empty() { "-".to_string() } else { types.join(",") },
            r.keys.len(),
            find(&report.mix, &r.address).unwrap_or_else(|| "-".into()),
            find(&report.cpunk, &r.address).unwrap_or_else(|| "-".into()),
            yamn_column,
            status
        ));
    }
    Ok(out)
}

/// `list --verbose`: per remailer its capabilities, keys (validity, retirement, next ping when
/// the schedule is known) and key history; then the candidates.
pub fn details(
    store: &Store,
    now: i64,
    schedule: Option<(&Secret, &[PingType])>,
) -> Result<String> {
    let date = |t: Option<i64>| {
        t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let mut out = String::new();
    for r in store.remailers()? {
        out.push_str(&format!("\n{}", terminal_safe(&r.address)));
        if let Some(nick) = &r.nick {
            out.push_str(&format!(" ({})", terminal_safe(nick)));
        }
        out.push('\n');
        if let Some(t) = &r.remailer_type {
            out.push_str(&format!("  software: {}\n", terminal_safe(t)));
        }
        out.push_str(&format!("  caps: {}\n", terminal_safe(r.caps.as_deref().unwrap_or("-"))));
        out.push_str(&format!("  last answer: {}\n", date(r.last_answer_at)));
        for k in &r.keys {
            let state = if k.retired_at.is_some() {
                format!("retired {}", date(k.retired_at))
            } else if k.is_current(now) && r.status != RemailerStatus::Disabled {
                match schedule.filter(|(_, types)| types.contains(&k.ping_type)) {
                    Some((secret, _)) => {
                        let next = schedule::next_single_slot(
                            secret.as_bytes(),
                            &r.address,
                            k.ping_type,
                            &k.key_id,
                            now,
                        );
                        let when = chrono::DateTime::from_timestamp(next, 0)
                            .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
                            .unwrap_or_default();
                        format!("current, next ping {when}")
                    }
                    None => "current".into(),
                }
            } else {
                "not valid now".into()
            };
            out.push_str(&format!(
                "  key {:<11} {:<32} valid {} .. {}  {state}\n",
                k.ping_type.as_str(),
                terminal_safe(&k.key_id),
                date(k.valid_from),
                date(k.valid_until)
            ));
        }
        for e in store.key_history(r.id)? {
            out.push_str(&format!(
                "  history {} {} {} {}{}\n",
                date(Some(e.at)),
                e.event,
                e.ping_type,
                terminal_safe(&e.key_id),
                e.detail.map(|d| format!(": {}", terminal_safe(&d))).unwrap_or_default()
            ));
        }
    }
    let candidates = store.candidates()?;
    if !candidates.is_empty() {
        out.push_str("\ncandidates (address, remailers vouching for it):\n");
        for (address, n) in candidates {
            out.push_str(&format!("  {} {n}\n", terminal_safe(&address)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ImportedPing, RemailerInfo};

    #[test]
    fn a_yamn_remailer_gets_its_own_column() {
        let mut store = Store::open_in_memory().unwrap();
        let now = 1_800_000_000;
        let pings: Vec<ImportedPing> = (1..=10)
            .flat_map(|i| {
                let sent = now - i * 7200;
                [("m@x.example", PingType::Mix), ("y@x.example", PingType::Yamn)].map(
                    |(address, ping_type)| ImportedPing {
                        address: address.into(),
                        ping_type,
                        key_id: None,
                        sent,
                        returned: Some(sent + 600),
                    },
                )
            })
            .collect();
        let info = |nick: &str, address: &str| RemailerInfo {
            address: address.into(),
            nick: Some(nick.into()),
            caps: Some(format!("$remailer{{\"{nick}\"}} = \"<{address}> mix\";")),
            hidden: false,
        };
        store
            .import(&[info("m", "m@x.example"), info("y", "y@x.example")], &pings, &[], now)
            .unwrap();
        let out = table(&store, now, &StatsOptions::default()).unwrap();
        let header = out.lines().next().unwrap();
        assert!(header.contains("MIX REL LAT") && header.contains("YAMN REL LAT"), "{out}");
        let row = |nick: &str| out.lines().find(|l| l.starts_with(&format!("{nick} "))).unwrap();
        let column = header.find("YAMN REL LAT").unwrap();
        assert!(row("y")[column..].starts_with("100.00%"), "{out}");
        assert!(row("m")[column..].starts_with("- "), "{out}");
    }
}
