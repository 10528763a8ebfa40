//! Reading ping histories from CSV (`fathometer import-pings`), for migrations from another
//! pinger, tests and offline analysis. Parsing is pure; errors name the file's line.
//!
//! Formats (lines starting with `#`, blank lines and one header line are skipped):
//! - pings: `address,type,sent_unix,received_unix[,keyid]`; an empty `received_unix` means
//!   the ping never returned;
//! - remailers: `address,nick,caps,showit`, where `caps` is everything between the second
//!   and the last comma (a caps line may itself contain commas) and `showit` is 1 or 0;
//! - chains: `chaintype,addr1,addr2,sent_unix,received_unix`.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::MailAddress;
use crate::model::{ChainType, ImportedChain, ImportedPing, PingType, RemailerInfo};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CsvError {
    pub line: usize,
    pub message: String,
}

/// Data lines of a CSV file with their 1-based line numbers. The first data line is a header
/// if `is_header` says so.
fn data_lines(text: &str, is_header: impl Fn(&str) -> bool) -> impl Iterator<Item = (usize, &str)> {
    let mut first = true;
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .filter(move |(_, l)| {
            let skip = first && is_header(l);
            first = false;
            !skip
        })
}

fn err(line: usize, message: impl Into<String>) -> CsvError {
    CsvError { line, message: message.into() }
}

fn parse_time(line: usize, field: &str, what: &str) -> Result<i64, CsvError> {
    field
        .trim()
        .parse::<i64>()
        .map_err(|_| err(line, format!("{what} `{field}` is not a unix time in seconds")))
}

fn parse_optional_time(line: usize, field: &str, what: &str) -> Result<Option<i64>, CsvError> {
    if field.trim().is_empty() { Ok(None) } else { parse_time(line, field, what).map(Some) }
}

fn check_address(line: usize, address: &str) -> Result<String, CsvError> {
    MailAddress::try_from(address.trim().to_owned())
        .map(|a| a.as_str().to_owned())
        .map_err(|e| err(line, e))
}

/// A header is a first line whose time column is not a number.
fn time_column_is_text(line: &str, column: usize) -> bool {
    line.split(',').nth(column).is_some_and(|f| f.trim().parse::<i64>().is_err())
}

pub fn parse_pings(text: &str) -> Result<Vec<ImportedPing>, CsvError> {
    data_lines(text, |l| time_column_is_text(l, 2))
        .map(|(n, l)| {
            let f: Vec<&str> = l.split(',').collect();
            if !(4..=5).contains(&f.len()) {
                return Err(err(
                    n,
                    format!(
                        "expected address,type,sent_unix,received_unix[,keyid], got {} fields",
                        f.len()
                    ),
                ));
            }
            let ping_type: PingType = f[1].trim().parse().map_err(|e: String| err(n, e))?;
            let sent = parse_time(n, f[2], "sent_unix")?;
            let returned = parse_optional_time(n, f[3], "received_unix")?;
            if returned.is_some_and(|r| r < sent) {
                return Err(err(n, "received_unix is before sent_unix"));
            }
            let key_id = f.get(4).map(|k| k.trim()).filter(|k| !k.is_empty()).map(str::to_owned);
            Ok(ImportedPing { address: check_address(n, f[0])?, ping_type, key_id, sent, returned })
        })
        .collect()
}

pub fn parse_chains(text: &str) -> Result<Vec<ImportedChain>, CsvError> {
    data_lines(text, |l| time_column_is_text(l, 3))
        .map(|(n, l)| {
            let f: Vec<&str> = l.split(',').collect();
            if f.len() != 5 {
                return Err(err(
                    n,
                    format!(
                        "expected chaintype,addr1,addr2,sent_unix,received_unix, got {} fields",
                        f.len()
                    ),
                ));
            }
            let chain_type: ChainType = f[0].trim().parse().map_err(|e: String| err(n, e))?;
            let sent = parse_time(n, f[3], "sent_unix")?;
            let returned = parse_optional_time(n, f[4], "received_unix")?;
            if returned.is_some_and(|r| r < sent) {
                return Err(err(n, "received_unix is before sent_unix"));
            }
            Ok(ImportedChain {
                chain_type,
                addr1: check_address(n, f[1])?,
                addr2: check_address(n, f[2])?,
                sent,
                returned,
            })
        })
        .collect()
}

/// One row of the remailers file; `caps` is `None` when the field is empty.
pub fn parse_remailers(text: &str) -> Result<Vec<RemailerInfo>, CsvError> {
    data_lines(text, |l| l.split(',').next().is_some_and(|f| f.trim() == "address"))
        .map(|(n, l)| {
            let (address, rest) =
                l.split_once(',').ok_or_else(|| err(n, "expected address,nick,caps,showit"))?;
            let (nick, rest) =
                rest.split_once(',').ok_or_else(|| err(n, "expected address,nick,caps,showit"))?;
            let (caps, showit) =
                rest.rsplit_once(',').ok_or_else(|| err(n, "expected address,nick,caps,showit"))?;
            let hidden = match showit.trim() {
                "1" => false,
                "0" => true,
                other => return Err(err(n, format!("showit `{other}` must be 1 or 0"))),
            };
            let nick = nick.trim();
            let caps = caps.trim();
            Ok(RemailerInfo {
                address: check_address(n, address)?,
                nick: (!nick.is_empty()).then(|| nick.to_owned()),
                caps: (!caps.is_empty()).then(|| caps.to_owned()),
                hidden,
            })
        })
        .collect()
}

/// A caps line for a remailer whose conf we never saw: its nick, address and the families
/// it was pinged with, e.g. `$remailer{"gone"} = "<gone@three.example> cpunk mix";`.
pub fn synthesize_caps(nick: &str, address: &str, types: &BTreeSet<PingType>) -> String {
    let mut caps = format!("$remailer{{\"{nick}\"}} = \"<{address}>");
    if types.iter().any(|t| t.chain_type() == crate::model::ChainType::Cpunk) {
        caps.push_str(" cpunk");
    }
    // A YAMN remailer's conf says `mix` too (`yamn.md` §10).
    if types.iter().any(|t| matches!(t, PingType::Mix | PingType::Yamn)) {
        caps.push_str(" mix");
    }
    caps.push_str("\";");
    caps
}

/// Completes remailer identities for an import: a remailer named only in pings, or listed
/// without caps, gets a nick (its local part unless given) and a caps line built from the
/// types it was pinged with, so that it can be listed. `known` says whether the store already
/// has caps for an address (then a remailer missing from the file is left as it is).
pub fn complete_identities(
    listed: Vec<RemailerInfo>,
    pings: &[ImportedPing],
    known: impl Fn(&str) -> bool,
) -> Vec<RemailerInfo> {
    let mut types: BTreeMap<&str, BTreeSet<PingType>> = BTreeMap::new();
    for p in pings {
        types.entry(p.address.as_str()).or_default().insert(p.ping_type);
    }
    let local_part = |a: &str| a.split('@').next().unwrap_or(a).to_owned();
    let mut out: Vec<RemailerInfo> = Vec::new();
    for mut info in listed {
        if info.caps.is_none() {
            let nick = info.nick.clone().unwrap_or_else(|| local_part(&info.address));
            let t = types.get(info.address.as_str()).cloned().unwrap_or_default();
            info.caps = Some(synthesize_caps(&nick, &info.address, &t));
            info.nick = Some(nick);
        }
        out.push(info);
    }
    for (address, t) in types {
        if out.iter().any(|i| i.address == address) || known(address) {
            continue;
        }
        let nick = local_part(address);
        out.push(RemailerInfo {
            address: address.to_owned(),
            caps: Some(synthesize_caps(&nick, address, &t)),
            nick: Some(nick),
            hidden: false,
        });
    }
    out
}

/// `fathometer import-pings`: reads the CSV files and imports them in one transaction;
/// importing the same files twice adds nothing.
pub fn import_files(
    store: &mut crate::store::Store,
    pings: &std::path::Path,
    remailers: Option<&std::path::Path>,
    chains: Option<&std::path::Path>,
    now: i64,
) -> anyhow::Result<crate::model::ImportSummary> {
    use anyhow::Context;
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
    };
    let ping_rows = parse_pings(&read(pings)?).with_context(|| pings.display().to_string())?;
    let listed = match remailers {
        Some(p) => parse_remailers(&read(p)?).with_context(|| p.display().to_string())?,
        None => Vec::new(),
    };
    let chain_rows = match chains {
        Some(p) => parse_chains(&read(p)?).with_context(|| p.display().to_string())?,
        None => Vec::new(),
    };
    let known: std::collections::HashSet<String> =
        store.remailers()?.into_iter().filter(|r| r.caps.is_some()).map(|r| r.address).collect();
    let identities = complete_identities(listed, &ping_rows, |a| known.contains(a));
    Ok(store.import(&identities, &ping_rows, &chain_rows, now)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_skip_header_comments_and_blank_lines() {
        let text = "# exported\naddress,type,sent_unix,received_unix\n\na@x.example,mix,100,160\n\
                    a@x.example,cpunk-rsa,200,,ABCDEF0123456789\r\n";
        let p = parse_pings(text).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].returned, Some(160));
        assert_eq!(p[1].returned, None);
        assert_eq!(p[1].key_id.as_deref(), Some("ABCDEF0123456789"));
        assert_eq!(p[1].ping_type, PingType::CpunkRsa);
    }

    #[test]
    fn ping_errors_name_the_line() {
        let e = parse_pings("address,type,sent_unix,received_unix\na@x,mix,1,2\na@x,bogus,1,2\n")
            .unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("bogus"));
        let e = parse_pings("a@x,mix,1,2\na@x,mix,12x,\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_pings("a@x,mix,10,5\n").unwrap_err();
        assert!(e.message.contains("before"));
        let e = parse_pings("nobody,mix,10,20\n").unwrap_err();
        assert!(e.message.contains("mail address"));
    }

    #[test]
    fn remailer_caps_may_contain_commas() {
        let text = "address,nick,caps,showit\n\
                    a@x.example,a,$remailer{\"a\"} = \"<a@x.example> mix, odd\";,0\n\
                    b@y.example,b,,1\n";
        let r = parse_remailers(text).unwrap();
        assert_eq!(r[0].caps.as_deref(), Some("$remailer{\"a\"} = \"<a@x.example> mix, odd\";"));
        assert!(r[0].hidden);
        assert_eq!(r[1].caps, None);
        assert!(!r[1].hidden);
        assert_eq!(parse_remailers("a@x,a,c,2\n").unwrap_err().line, 1);
    }

    #[test]
    fn chains_parse() {
        let c = parse_chains("chaintype,addr1,addr2,sent_unix,received_unix\nmix,a@x,b@y,5,\n")
            .unwrap();
        assert_eq!(c[0].chain_type, ChainType::Mix);
        assert_eq!(c[0].returned, None);
        assert_eq!(parse_chains("cpunk,a@x,b@y,5\n").unwrap_err().line, 1);
    }

    #[test]
    fn missing_identities_are_synthesised() {
        let pings = parse_pings(
            "gone@three.example,cpunk-clear,1,2\ngone@three.example,mix,1,2\nslow@four.example,mix,1,\n",
        )
        .unwrap();
        let listed = parse_remailers("slow@four.example,slowhiddenremailer,,0\n").unwrap();
        let all = complete_identities(listed, &pings, |_| false);
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[0].caps.as_deref(),
            Some("$remailer{\"slowhiddenremailer\"} = \"<slow@four.example> mix\";")
        );
        assert!(all[0].hidden);
        assert_eq!(all[1].nick.as_deref(), Some("gone"));
        assert_eq!(
            all[1].caps.as_deref(),
            Some("$remailer{\"gone\"} = \"<gone@three.example> cpunk mix\";")
        );
        // A remailer the store already knows keeps its identity.
        assert_eq!(complete_identities(Vec::new(), &pings, |_| true).len(), 0);
    }
}
