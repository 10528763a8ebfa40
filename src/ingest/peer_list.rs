//! Reading another pinger's `mlist2.txt` / `rlist2.txt` (`echolot.md` §7.4): the file comes
//! from a stranger, so it is read strictly and at bounded cost. Rows are read as the client
//! that reads v2 lists does (YAMN's `ImportStats`, `yamn.md` §9.1): cut at the first `%`,
//! exactly five whitespace-separated fields before it (nick, latency history, `H:MM`
//! latency, reliability history, reliability); a row that does not fit is an error with its
//! line, not a guess.

use crate::model::peer::{PeerList, PeerRow, PeerSource};

/// The largest list read (a real one is a few kilobytes).
pub const MAX_LIST_BYTES: usize = 1 << 20;
/// The most rows read.
pub const MAX_ROWS: usize = 2000;

/// Why a peer's list was refused: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct ParseError {
    pub line: usize,
    pub what: String,
}

fn error(line: usize, what: impl Into<String>) -> ParseError {
    ParseError { line, what: what.into() }
}

/// A nick as Echolot writes one: 1 to 12 printable ASCII characters, no space.
fn valid_nick(nick: &str) -> bool {
    (1..=12).contains(&nick.len()) && nick.bytes().all(|b| b.is_ascii_graphic())
}

/// `H:MM`, `:MM` → seconds; `99:59` (Echolot's "undefined") → None.
fn latency(text: &str) -> Option<Option<i64>> {
    let (h, m) = text.trim().split_once(':')?;
    let h: i64 = if h.is_empty() { 0 } else { h.parse().ok()? };
    let m: i64 = m.parse().ok()?;
    if !(0..=99).contains(&h) || !(0..=59).contains(&m) {
        return None;
    }
    Some((h, m) != (99, 59)).map(|defined| defined.then_some(h * 3600 + m * 60))
}

/// Parses a peer's v2 list.
pub fn parse_list_v2(text: &str) -> Result<PeerList, ParseError> {
    if text.len() > MAX_LIST_BYTES {
        return Err(error(0, format!("{} bytes, more than {MAX_LIST_BYTES}", text.len())));
    }
    let mut lines = text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l)).enumerate();
    let mut next =
        |expect: &str| lines.next().ok_or_else(|| error(0, format!("ends before {expect}")));
    let (n, first) = next("Stats-Version")?;
    if first.trim() != "Stats-Version: 2.0" {
        return Err(error(n + 1, "not `Stats-Version: 2.0`"));
    }
    let (n, generated) = next("Generated")?;
    let date = generated
        .strip_prefix("Generated: ")
        .ok_or_else(|| error(n + 1, "no `Generated:` line"))?;
    let generated = chrono::NaiveDateTime::parse_from_str(date.trim(), "%a %d %b %Y %H:%M:%S GMT")
        .map_err(|e| error(n + 1, format!("Generated date: {e}")))?
        .and_utc()
        .timestamp();
    let (n, header) = next("the column titles")?;
    let kind = header.split_whitespace().next().unwrap_or_default();
    if !matches!(kind, "Mixmaster" | "Cypherpunk") || !header.contains("Uptime") {
        return Err(error(n + 1, "not a Mixmaster or Cypherpunk column title line"));
    }
    let kind = kind.to_owned();
    let (n, dashes) = next("the dashes")?;
    if dashes.trim_end() != "-".repeat(72) {
        return Err(error(n + 1, "not 72 dashes"));
    }
    let mut rows = Vec::new();
    let mut rest = Vec::new();
    let mut in_rows = true;
    for (n, line) in lines {
        if in_rows {
            if line.trim().is_empty() {
                in_rows = false;
                continue;
            }
            if rows.len() == MAX_ROWS {
                return Err(error(n + 1, format!("more than {MAX_ROWS} rows")));
            }
            rows.push(row(line).map_err(|what| error(n + 1, what))?);
        } else {
            rest.push((n, line));
        }
    }
    if in_rows {
        return Err(error(0, "no empty line after the rows (cut short?)"));
    }
    let mut list = PeerList {
        kind,
        generated,
        rows,
        broken_type1: Vec::new(),
        broken_type2: Vec::new(),
        addresses: Vec::new(),
        caps_lines: Vec::new(),
    };
    let mut section = "";
    for (n, line) in rest {
        let line = line.trim();
        match line {
            "Broken type-I remailer chains:" => section = "1",
            "Broken type-II remailer chains:" => section = "2",
            "Remailer-Capabilities:" => section = "caps",
            "" => {}
            _ if line.starts_with('(') && (section == "1" || section == "2") => {
                let pair = chain(line).ok_or_else(|| error(n + 1, "not a `(a b)` chain"))?;
                let target =
                    if section == "1" { &mut list.broken_type1 } else { &mut list.broken_type2 };
                target.push(pair);
            }
            _ if section == "caps" && line.starts_with("$remailer{\"") => {
                if let Some((nick, address)) = caps_address(line) {
                    if line.len() <= 400 && line.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
                    {
                        list.caps_lines.push((nick.clone(), line.to_owned()));
                    }
                    list.addresses.push((nick, address));
                }
            }
            // Same-operator groups and anything a newer Echolot adds: not ours to judge.
            _ => {}
        }
    }
    Ok(list)
}

fn row(line: &str) -> Result<PeerRow, String> {
    if !line.is_ascii() || line.len() > 120 {
        return Err("a row is at most 120 ASCII characters".into());
    }
    let (before, options) = line.split_once('%').ok_or("no `%` after the reliability")?;
    let fields: Vec<&str> = before.split_whitespace().collect();
    let [nick, latent_hist, latency_text, uptime_hist, reliability] = fields.as_slice() else {
        return Err(format!("{} fields before the `%`, expected 5", fields.len()));
    };
    if !valid_nick(nick) {
        return Err(format!("bad nick {nick:?}"));
    }
    if latent_hist.len() != 12 || uptime_hist.len() != 12 {
        return Err("a history column is not 12 characters".into());
    }
    let latency = latency(latency_text).ok_or_else(|| format!("bad latency {latency_text:?}"))?;
    let reliability: f64 = reliability
        .parse()
        .ok()
        .filter(|r| (0.0..=100.0).contains(r))
        .ok_or_else(|| format!("bad reliability {reliability:?}"))?;
    Ok(PeerRow {
        nick: (*nick).to_owned(),
        latency,
        reliability,
        options: options.trim().to_owned(),
    })
}

/// The (address, key ID) of every summary line of a peer's `pubring.mix`, read as the
/// Mixmaster client reads them (`echolot.md` §10.1): lines longer than 50 characters, not
/// starting with `#`, whose third whitespace field is a 32-hex key ID. YAMN's pubring has the
/// same summary lines.
pub fn pubring_key_ids(text: &str) -> Vec<(String, String)> {
    text.lines()
        .take(100_000)
        .filter(|l| l.len() > 50 && !l.starts_with('#'))
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().take(7).collect();
            let [_, address, key_id, ..] = fields.as_slice() else { return None };
            let hex = key_id.len() == 32 && key_id.bytes().all(|b| b.is_ascii_hexdigit());
            (hex && address.contains('@') && address.len() <= 254 && address.is_ascii())
                .then(|| (address.to_ascii_lowercase(), key_id.to_ascii_lowercase()))
        })
        .collect()
}

/// At most this many certs of a peer's `pgp-all.asc` are read (Echolot's holds a few dozen);
/// the rest cannot be a remailer network's keyring.
pub const MAX_PGP_CERTS: usize = 2_000;

/// The (address, key ID) of every cert in a peer's `pgp-all.asc`: the lower-cased address of
/// each validly self-signed user ID and the primary key ID (16 hex digits, lower case). A
/// broken cert is left out, the rest still read. `Err` when the file has text but not one
/// readable cert (a web server's error page, say). Never panics on hostile input; the size
/// is bounded by the fetch (1 MiB) and the certs by [`MAX_PGP_CERTS`].
pub fn pgp_key_ids(text: &str, now: i64) -> Result<Vec<(String, String)>, String> {
    let certs = crate::compose::openpgp::parse_certs(text.as_bytes(), now);
    let readable: Vec<_> = certs.into_iter().filter_map(Result::ok).take(MAX_PGP_CERTS).collect();
    if readable.is_empty() && !text.trim().is_empty() {
        return Err("no readable OpenPGP key in it".into());
    }
    Ok(readable
        .into_iter()
        .flat_map(|c| {
            let key_id = c.key_id.to_ascii_lowercase();
            c.emails.into_iter().map(move |e| (e, key_id.clone()))
        })
        .collect())
}

/// At most this many pingers are read from an `allpingers.txt` (the community index lists a
/// dozen or so).
pub const MAX_ALLPINGERS: usize = 100;

/// One usable section of an `allpingers.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllpingersEntry {
    /// The section name, as written.
    pub name: String,
    pub source: PeerSource,
}

/// The pingers of an `allpingers.txt` (the community index, `mixmaster.md` §3.6), read as the
/// Mixmaster client reads it: `[name]` sections, `key = value` lines, section and key names
/// case-insensitive, the first matching line of a section wins; a section is usable only
/// with all of `mlist`, `rlist`, `mixring` and `pgpring`, each an `http` URL. The v2 lists
/// the consensus reads come from `mlist2`/`rlist2` when given, else beside `mlist`/`rlist`
/// (`mlist2.txt` in the directory of `mlist.txt`). A section named like one of `skip` (our
/// own stanza) is left out; so is a second section for the same base. Unusable sections are
/// reported, not fatal.
pub fn parse_allpingers(text: &str, skip: &[&str]) -> (Vec<AllpingersEntry>, Vec<String>) {
    let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines().take(100_000) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push((name.trim().to_owned(), Vec::new()));
            continue;
        }
        let (Some((_, keys)), Some((key, value))) = (sections.last_mut(), line.split_once('='))
        else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        if !keys.iter().any(|(k, _)| *k == key) {
            keys.push((key, value.trim().to_owned()));
        }
    }
    let mut entries: Vec<AllpingersEntry> = Vec::new();
    let mut problems = Vec::new();
    for (name, keys) in sections {
        if entries.len() >= MAX_ALLPINGERS {
            problems.push(format!("more than {MAX_ALLPINGERS} pingers: the rest left out"));
            break;
        }
        let shown: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
        if skip.iter().any(|s| s.eq_ignore_ascii_case(&name)) {
            continue;
        }
        match allpingers_source(&keys) {
            Ok(source) if entries.iter().any(|e| e.source.id == source.id) => {
                problems.push(format!("[{shown}]: {} is listed twice", source.id));
            }
            Ok(source) => entries.push(AllpingersEntry { name: shown, source }),
            Err(e) => problems.push(format!("[{shown}]: {e}")),
        }
    }
    (entries, problems)
}

fn allpingers_source(keys: &[(String, String)]) -> Result<PeerSource, String> {
    let get = |k: &str| keys.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let url = |k: &str| -> Result<&str, String> {
        let v = get(k).ok_or_else(|| format!("no `{k}` (a client cannot use it)"))?;
        let ok = (v.starts_with("http://") || v.starts_with("https://"))
            && v.len() <= 1000
            && v.is_ascii()
            && !v.contains(char::is_whitespace);
        if ok { Ok(v) } else { Err(format!("`{k}` is not an http URL")) }
    };
    let (mlist, rlist) = (url("mlist")?, url("rlist")?);
    let (mixring, pgpring) = (url("mixring")?, url("pgpring")?);
    // The v2 lists beside the v1 ones unless named.
    let beside = |v1: &str, name: &str| match v1.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{name}"),
        None => name.to_owned(),
    };
    let mlist2 = url("mlist2").map(str::to_owned).unwrap_or_else(|_| beside(mlist, "mlist2.txt"));
    let rlist2 = url("rlist2").map(str::to_owned).unwrap_or_else(|_| beside(rlist, "rlist2.txt"));
    let base = match url("base") {
        Ok(b) => b.trim_end_matches('/').to_owned(),
        Err(_) => mlist.rsplit_once('/').map_or(mlist, |(dir, _)| dir).to_owned(),
    };
    Ok(PeerSource {
        id: base,
        files: vec![
            ("mlist2.txt", mlist2),
            ("rlist2.txt", rlist2),
            ("pubring.mix", mixring.to_owned()),
            ("pgp-all.asc", pgpring.to_owned()),
        ],
    })
}

/// `(a b)` with `*` as a wildcard.
fn chain(line: &str) -> Option<(String, String)> {
    let inner = line.strip_prefix('(')?.strip_suffix(')')?;
    let (a, b) = inner.split_once(' ')?;
    let ok = |s: &str| s == "*" || valid_nick(s);
    (ok(a) && ok(b)).then(|| (a.to_owned(), b.to_owned()))
}

/// `$remailer{"nick"} = "<address> ...";` → (nick, address).
fn caps_address(line: &str) -> Option<(String, String)> {
    let (nick, rest) = line.strip_prefix("$remailer{\"")?.split_once("\"}")?;
    let address = rest.split_once('<')?.1.split_once('>')?.0.trim();
    (valid_nick(nick) && address.contains('@') && address.len() <= 254)
        .then(|| (nick.to_owned(), address.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(path: &str) -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
        std::fs::read_to_string(dir.join(path)).unwrap()
    }

    #[test]
    fn allpingers_sections_read_as_the_client_reads_them() {
        let ours =
            crate::publish::allpingers_stanza("fathometer test", "https://me.example/s/").unwrap();
        let text = format!(
            "# the community index\n\
             [Noreply]\nBASE = http://noreply.example/echolot/\n\
             mlist = http://noreply.example/echolot/mlist.txt\n\
             mlist = http://ignored.example/mlist.txt\n\
             rlist=http://noreply.example/echolot/rlist.txt\n\
             mixring = http://noreply.example/echolot/pubring.mix\n\
             pgpring = http://noreply.example/echolot/pgp-all.asc\n\
             [nobase]\nmlist = https://x.example/a/mlist.txt\nrlist = https://x.example/a/rlist.txt\n\
             mixring = https://x.example/keys/pubring.mix\npgpring = https://x.example/keys/pgp.asc\n\
             rlist2 = https://x.example/v2/rlist2.txt\n\
             [halfway]\nmlist = http://h.example/mlist.txt\nrlist = http://h.example/rlist.txt\n\
             [ftp]\nmlist = ftp://f.example/mlist.txt\nrlist = http://f.example/rlist.txt\n\
             mixring = http://f.example/pubring.mix\npgpring = http://f.example/pgp-all.asc\n\
             [again]\nbase = http://noreply.example/echolot\nmlist = http://noreply.example/m\n\
             rlist = http://noreply.example/r\nmixring = http://noreply.example/p\n\
             pgpring = http://noreply.example/g\n\
             {ours}"
        );
        let (entries, problems) = parse_allpingers(&text, &["fathometer-test"]);
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["Noreply", "nobase"], "{problems:?}");
        let noreply = &entries[0].source;
        assert_eq!(noreply.id, "http://noreply.example/echolot");
        assert_eq!(noreply.url("mlist2.txt"), Some("http://noreply.example/echolot/mlist2.txt"));
        assert_eq!(noreply.url("pgp-all.asc"), Some("http://noreply.example/echolot/pgp-all.asc"));
        let nobase = &entries[1].source;
        assert_eq!(nobase.id, "https://x.example/a");
        assert_eq!(nobase.url("rlist2.txt"), Some("https://x.example/v2/rlist2.txt"));
        assert_eq!(nobase.url("pubring.mix"), Some("https://x.example/keys/pubring.mix"));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("[halfway]: no `mixring`"), "{problems:?}");
        assert!(problems[1].contains("[ftp]: `mlist` is not an http URL"), "{problems:?}");
        assert!(problems[2].contains("listed twice"), "{problems:?}");
        // Our own stanza, not skipped, reads back to where we serve our files.
        let (mine, _) = parse_allpingers(&ours, &[]);
        assert_eq!(mine[0].source, PeerSource::at_base("https://me.example/s"));
    }

    proptest::proptest! {
        /// Whatever the bytes, reading an allpingers.txt never panics and never yields a
        /// URL that is not http(s).
        #[test]
        fn hostile_allpingers_never_panic(text in ".{0,2000}") {
            let (entries, _) = parse_allpingers(&text, &[]);
            for e in entries {
                for (_, url) in &e.source.files {
                    proptest::prop_assert!(url.starts_with("http://") || url.starts_with("https://"));
                }
            }
        }
    }

    #[test]
    fn echolots_own_lists_parse_to_their_numbers() {
        let list = parse_list_v2(&vector("echolot/example/results/mlist2.txt")).unwrap();
        assert_eq!(list.kind, "Mixmaster");
        assert_eq!(list.generated, 1_700_000_000);
        let rows: Vec<(&str, Option<i64>, f64)> =
            list.rows.iter().map(|r| (r.nick.as_str(), r.latency, r.reliability)).collect();
        assert_eq!(
            rows,
            [("fast", Some(600), 100.0), ("gone", Some(1500), 66.7), ("lossy", Some(7260), 64.7)]
        );
        assert_eq!(list.rows[0].options, "D M           9");
        assert_eq!(list.broken_type2, [("*".into(), "gone".into()), ("fast".into(), "*".into())]);
        assert_eq!(list.address_of("lossy"), Some("lossy@two.example"));
        let rlist = parse_list_v2(&vector("echolot/example/results/rlist2.txt")).unwrap();
        assert_eq!(rlist.kind, "Cypherpunk");
        assert_eq!(rlist.rows[0].reliability, 96.2);
        for dir in ["network/results", "network/results.private", "home-example/results"] {
            let path = format!("echolot/{dir}/mlist2.txt");
            if std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/vectors")
                .join(&path)
                .exists()
            {
                parse_list_v2(&vector(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
            }
        }
    }

    #[test]
    fn key_ids_come_from_the_summary_lines_of_a_pubring() {
        let ids = pubring_key_ids(&vector("yamn/keys/pubring.mix"));
        assert_eq!(ids.len(), 4);
        assert_eq!(ids[0], ("yamn1@localhost".into(), "c2369176c09334e1c78b7ba2b00361a6".into()));
        let mix = pubring_key_ids(&vector("mixmaster/keys/pubring.mix"));
        assert!(!mix.is_empty(), "the Mixmaster vectors' pubring has summary lines");
    }

    #[test]
    fn the_yamn_vector_list_parses() {
        let list = parse_list_v2(&vector("yamn/keys/mlist2.txt")).unwrap();
        assert_eq!(list.rows.len(), 4);
        assert_eq!(list.rows[3].latency, Some(360));
    }

    #[test]
    fn hostile_and_broken_lists_are_refused_with_the_line() {
        let good = vector("echolot/example/results/mlist2.txt");
        let cut = good.lines().take(5).collect::<Vec<_>>().join("\n");
        assert!(parse_list_v2(&cut).unwrap_err().what.contains("no empty line"));
        let bad_row = good.replace("100.0%", "1x0.0%");
        assert_eq!(parse_list_v2(&bad_row).unwrap_err().line, 5);
        let html = "<html><body>Not found</body></html>";
        assert_eq!(parse_list_v2(html).unwrap_err().line, 1);
        let huge = "x".repeat(MAX_LIST_BYTES + 1);
        assert!(parse_list_v2(&huge).is_err());
        let escape = good.replace("fast      ", "\u{1b}[31mfast");
        assert!(parse_list_v2(&escape).is_err());
        let many_rows: String = std::iter::repeat_n(
            "fast         000000000000    :10   ++++++++++++  100.0%  D M           9\n",
            MAX_ROWS + 1,
        )
        .collect();
        let head: String = good.lines().take(4).map(|l| format!("{l}\n")).collect();
        let err = parse_list_v2(&format!("{head}{many_rows}\n")).unwrap_err();
        assert!(err.what.contains("more than"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_parsed_or_refused_never_a_panic(text in ".{0,2000}") {
            let _ = parse_list_v2(&text);
            let good = vector("echolot/example/results/mlist2.txt");
            let cut = &good[..text.len().min(good.len())];
            let _ = parse_list_v2(&format!("{cut}{text}"));
        }
    }
}
