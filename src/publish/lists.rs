//! The text lists clients scrape, byte-compatible with Echolot 2.1.9 (`echolot.md` §7.2–7.5).
//!
//! The Mixmaster client reads mlist.txt by fixed columns and only accepts rows of 44–46
//! bytes, so every width here is load-bearing. All functions are pure: the list entries and
//! the date come in, the file's bytes go out.

use chrono::{DateTime, Utc};

use crate::model::STATS_DAYS;
use crate::model::caps::{contains_word, word_number};
use crate::stats::ListEntry;

/// The optional sections Echolot puts around the table: `<S><B1><B2>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sections<'a> {
    /// Content of the operator's same-operator file, verbatim.
    pub same_operator: Option<&'a str>,
    /// Broken type-I chains (joined, no trailing LF), `None` to omit the section.
    pub broken_type1: Option<&'a str>,
    pub broken_type2: Option<&'a str>,
}

impl Sections<'_> {
    fn render(&self) -> String {
        let mut out = String::new();
        if let Some(s) = self.same_operator {
            out.push_str("\nGroups of remailers sharing a machine or operator:\n");
            out.push_str(s);
            out.push('\n');
        }
        if let Some(b) = self.broken_type1 {
            out.push_str("\nBroken type-I remailer chains:\n");
            out.push_str(b);
            out.push('\n');
        }
        if let Some(b) = self.broken_type2 {
            out.push_str("\nBroken type-II remailer chains:\n");
            out.push_str(b);
            out.push('\n');
        }
        out
    }
}

/// `Tue 14 Nov 2023 22:13:20 GMT`, the date inside the lists.
pub fn list_date(now: i64) -> String {
    utc(now).format("%a %d %b %Y %H:%M:%S GMT").to_string()
}

/// `Tue, 14 Nov 2023 22:13:20 +0000`, for `.meta` Expires lines and HTTP dates.
pub fn rfc822_date(t: i64) -> String {
    utc(t).format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

fn utc(t: i64) -> DateTime<Utc> {
    // Out-of-range instants cannot come from a clock; the epoch is a harmless stand-in.
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

/// Echolot's `make_min_hr`: latency as text, fractions truncated, 99:59:59 when undefined,
/// negative, or 100 hours or more.
///
/// ```
/// use fathometer::publish::lists::latency_text;
/// assert_eq!(latency_text(Some(6511.5), true), " 1:48:31");
/// assert_eq!(latency_text(Some(600.0), false), "  :10");
/// assert_eq!(latency_text(None, true), "99:59:59");
/// ```
pub fn latency_text(seconds: Option<f64>, with_seconds: bool) -> String {
    let (h, m, s) = match seconds {
        Some(sec) if sec >= 0.0 && (sec / 3600.0).trunc() <= 99.0 => {
            let whole = sec.trunc() as i64;
            (whole / 3600, (whole / 60) % 60, whole % 60)
        }
        _ => (99, 59, 59),
    };
    match (with_seconds, h, m) {
        (true, 0, 0) => format!("      {s:2}"),
        (true, 0, _) => format!("   {m:2}:{s:02}"),
        (true, _, _) => format!("{h:2}:{m:02}:{s:02}"),
        (false, 0, _) => format!("  :{m:02}"),
        (false, _, _) => format!("{h:2}:{m:02}"),
    }
}

/// Renders 12 daily values with the oldest day on the left and today on the right.
fn history<T: Copy>(by_day: &[Option<T>; STATS_DAYS], glyph: impl Fn(Option<T>) -> char) -> String {
    (0..STATS_DAYS).rev().map(|day| glyph(by_day[day])).collect()
}

/// The v1 history column of mlist.txt and rlist.txt.
pub fn history_v1(latency_by_day: &[Option<f64>; STATS_DAYS]) -> String {
    history(latency_by_day, |lat| match lat {
        None => ' ',
        Some(l) if l < 300.0 => '#',
        Some(l) if l < 3600.0 => '*',
        Some(l) if l < 14_400.0 => '+',
        Some(l) if l < 86_400.0 => '-',
        Some(l) if l < 172_800.0 => '.',
        Some(_) => '_',
    })
}

/// The v2 `Latent-Hist` column.
pub fn latent_hist_v2(latency_by_day: &[Option<f64>; STATS_DAYS]) -> String {
    const LIMITS_HOURS: [(f64, char); 17] = [
        (1.0 / 3.0, '0'),
        (1.0, '1'),
        (2.0, '2'),
        (3.0, '3'),
        (4.0, '4'),
        (5.0, '5'),
        (6.0, '6'),
        (7.0, '7'),
        (8.0, '8'),
        (9.0, '9'),
        (12.0, 'A'),
        (18.0, 'B'),
        (24.0, 'C'),
        (30.0, 'D'),
        (36.0, 'E'),
        (42.0, 'F'),
        (48.0, 'G'),
    ];
    history(latency_by_day, |lat| match lat {
        None => '?',
        Some(l) => {
            LIMITS_HOURS.iter().find(|(hours, _)| l < hours * 3600.0).map_or('H', |&(_, c)| c)
        }
    })
}

/// The v2 `Uptime-Hist` column.
pub fn uptime_hist_v2(reliability_by_day: &[Option<f64>; STATS_DAYS]) -> String {
    history(reliability_by_day, |rel| match rel {
        None => '?',
        Some(r) if r >= 0.9999 => '+',
        Some(r) => char::from(b'0' + ((r * 10.0).trunc() as u8).min(9)),
    })
}

/// The 15-character Options column of v2 lists, from whole-word matches anywhere in the caps
/// line (nick and address included, as Echolot does).
pub fn options_flags(caps: &str) -> String {
    let has = |w: &str| contains_word(caps, w);
    let pick =
        |choices: &[(&str, char)]| choices.iter().find(|(w, _)| has(w)).map_or(' ', |&(_, c)| c);
    let mut flags = String::with_capacity(15);
    flags.push(pick(&[("middle", 'D')]));
    flags.push(pick(&[("post", 'P'), ("anon-post-to", 'P')]));
    flags.push(pick(&[("remix2", '2'), ("remix", 'R'), ("mix", 'M')]));
    flags.push(pick(&[("hybrid", 'H')]));
    flags.push(pick(&[("repgp2", '2'), ("repgp", 'G')]));
    flags.push(pick(&[("pgponly", 'O')]));
    flags.push(pick(&[("ext", 'X')]));
    flags.push(pick(&[("max", 'A')]));
    flags.push(pick(&[("test", 'T')]));
    flags.push(pick(&[("latent", 'L')]));
    flags.push(pick(&[("ekx", 'E'), ("ek", 'e')]));
    flags.push(pick(&[("esub", 'U')]));
    flags.push(if word_number(caps, "inflt").is_some() { 'I' } else { ' ' });
    flags.push(if word_number(caps, "rhop").is_some() { 'N' } else { ' ' });
    flags.push(match word_number(caps, "klen") {
        Some(n) => char::from(b'0' + (n / 100).min(9) as u8),
        None => ' ',
    });
    flags
}

/// Truncates to `n` characters (Perl's `substr($s, 0, n)` on a character string).
fn cut(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

fn percent(reliability: f64, decimals: usize, width: usize) -> String {
    format!("{:width$.decimals$}%", reliability * 100.0)
}

/// mlist.txt: type II, v1 format.
pub fn mlist(entries: &[&ListEntry], sections: &Sections, now: i64) -> String {
    let mut out = sections.render();
    out.push_str(&format!("Last update: {}\n", list_date(now)));
    out.push_str("mixmaster           history  latency  uptime\n");
    out.push_str(&"-".repeat(44));
    out.push('\n');
    for e in entries {
        out.push_str(&format!(
            "{:<14} {:<12} {:>8} {}\n",
            cut(&e.nick, 14),
            history_v1(&e.stats.latency_median_by_day),
            latency_text(e.stats.latency_median, true),
            percent(e.stats.reliability, 2, 6),
        ));
    }
    out
}

/// rlist.txt: type I, v1 format. The caps lines must precede the dashes: Mixmaster reads
/// `$remailer` lines until it sees them.
pub fn rlist(entries: &[&ListEntry], sections: &Sections, now: i64) -> String {
    let mut out = caps_lines(entries);
    out.push_str(&sections.render());
    out.push('\n');
    out.push_str(&format!("Last update: {}\n", list_date(now)));
    out.push_str("remailer  email address                        history  latency  uptime\n");
    out.push_str(&"-".repeat(71));
    out.push('\n');
    for e in entries {
        out.push_str(&format!(
            "{:<8} {:<32} {:<12} {:>8} {}\n",
            cut(&e.nick, 8),
            cut(&e.address, 32),
            history_v1(&e.stats.latency_median_by_day),
            latency_text(e.stats.latency_median, true),
            percent(e.stats.reliability, 2, 6),
        ));
    }
    out
}

/// Which kind of v2 list: the label of its first column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2Kind {
    Mixmaster,
    Cypherpunk,
}

fn v2_row(e: &ListEntry, nick: &str) -> String {
    format!(
        "{:<12} {:<12} {:>6}   {:<12}  {}  {}",
        nick,
        latent_hist_v2(&e.stats.latency_median_by_day),
        latency_text(e.stats.latency_median, false),
        uptime_hist_v2(&e.stats.reliability_by_day),
        percent(e.stats.reliability, 1, 5),
        options_flags(&e.caps),
    )
}

/// mlist2.txt / rlist2.txt: "Stats-Version: 2.0".
pub fn list_v2(kind: V2Kind, entries: &[&ListEntry], sections: &Sections, now: i64) -> String {
    let label = match kind {
        V2Kind::Mixmaster => "Mixmaster",
        V2Kind::Cypherpunk => "Cypherpunk",
    };
    let mut out = String::from("Stats-Version: 2.0\n");
    out.push_str(&format!("Generated: {}\n", list_date(now)));
    out.push_str(&format!("{label:<12} Latent-Hist   Latent  Uptime-Hist   Uptime  Options\n"));
    out.push_str(&"-".repeat(72));
    out.push('\n');
    for e in entries {
        out.push_str(&v2_row(e, cut(&e.nick, 12)));
        out.push('\n');
    }
    out.push_str(&sections.render());
    out.push_str("\n\n\nRemailer-Capabilities:\n\n");
    out.push_str(&caps_lines(entries));
    out
}

/// clist.txt: every (nick, list) row of the v2 lists in one file, "Stats-Version: 2.0.1".
/// `lists` pairs a list name (`mix`, `cpunk`, ...) with its entries.
pub fn clist(lists: &[(&str, Vec<&ListEntry>)], sections: &Sections, now: i64) -> String {
    let mut rows: Vec<(&str, &str, &ListEntry)> = lists
        .iter()
        .flat_map(|(name, entries)| entries.iter().map(move |e| (e.nick.as_str(), *name, *e)))
        .collect();
    rows.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(b.1)));
    let mut out = String::from("Stats-Version: 2.0.1\n");
    out.push_str(&format!("Generated: {}\n", list_date(now)));
    out.push_str("Mixmaster    Latent-Hist   Latent  Uptime-Hist   Uptime  Options         Type\n");
    out.push_str(&"-".repeat(84));
    out.push('\n');
    for (nick, name, e) in &rows {
        out.push_str(&v2_row(e, nick));
        out.push(' ');
        out.push_str(name);
        out.push('\n');
    }
    out.push_str(&sections.render());
    out.push_str("\n\n\nRemailer-Capabilities:\n\n");
    let mut last_nick: Option<&str> = None;
    for (nick, _, e) in &rows {
        if last_nick != Some(nick) {
            out.push_str(&e.caps);
            out.push('\n');
            last_nick = Some(nick);
        }
    }
    out
}

/// Caps lines sorted bytewise (in effect by nick).
fn caps_lines(entries: &[&ListEntry]) -> String {
    let mut caps: Vec<&str> = entries.iter().map(|e| e.caps.as_str()).collect();
    caps.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    caps.iter().map(|c| format!("{c}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_text_matches_echolot_examples() {
        assert_eq!(latency_text(Some(11694.0), true), " 3:14:54");
        assert_eq!(latency_text(Some(108_000.0), true), "30:00:00");
        assert_eq!(latency_text(Some(600.0), true), "   10:00");
        assert_eq!(latency_text(Some(45.0), true), "      45");
        assert_eq!(latency_text(Some(6511.5), true), " 1:48:31");
        assert_eq!(latency_text(None, true), "99:59:59");
        assert_eq!(latency_text(Some(-1.0), true), "99:59:59");
        assert_eq!(latency_text(Some(100.0 * 3600.0), true), "99:59:59");
        assert_eq!(latency_text(Some(99.0 * 3600.0 + 3599.0), true), "99:59:59");
        assert_eq!(latency_text(Some(11694.0), false), " 3:14");
        assert_eq!(latency_text(Some(108_000.0), false), "30:00");
        assert_eq!(latency_text(Some(600.0), false), "  :10");
        assert_eq!(latency_text(Some(45.0), false), "  :00");
    }

    #[test]
    fn history_puts_oldest_day_on_the_left() {
        let mut lat = [None; STATS_DAYS];
        lat[0] = Some(100.0);
        lat[11] = Some(200_000.0);
        lat[5] = Some(20_000.0);
        assert_eq!(history_v1(&lat), "_     -    #");
        assert_eq!(latent_hist_v2(&lat), "H?????6????0");
        let mut rel = [None; STATS_DAYS];
        rel[0] = Some(0.99995);
        rel[1] = Some(0.99989);
        rel[2] = Some(0.0);
        assert_eq!(uptime_hist_v2(&rel), "?????????09+");
    }

    #[test]
    fn history_thresholds_are_strict() {
        let at = |l: f64| {
            let mut lat = [None; STATS_DAYS];
            lat[0] = Some(l);
            (history_v1(&lat).pop().unwrap(), latent_hist_v2(&lat).pop().unwrap())
        };
        assert_eq!(at(299.5), ('#', '0'));
        assert_eq!(at(300.0), ('*', '0'));
        assert_eq!(at(1200.0), ('*', '1'));
        assert_eq!(at(3600.0), ('+', '2'));
        assert_eq!(at(14_400.0), ('-', '5'));
        assert_eq!(at(43_200.0), ('-', 'B'));
        assert_eq!(at(86_400.0), ('.', 'D'));
        assert_eq!(at(172_800.0), ('_', 'H'));
    }

    #[test]
    fn options_match_echolot_examples() {
        assert_eq!(options_flags("<x> mix middle klen1000"), "D M           9");
        assert_eq!(
            options_flags(
                "cpunk max mix pgp pgponly repgp remix latent hash cut test ek ekx esub inflt50 rhop5 reord post klen64"
            ),
            " PR GO ATLEUIN0"
        );
        // The first klen wins; words inside the address count too.
        assert_eq!(
            options_flags("$remailer{\"b\"} = \"<mix@b.example> klen800 klen1000\";"),
            "  M           8"
        );
        assert_eq!(options_flags("testing"), "               ");
        assert_eq!(options_flags("inflt rhopx klen"), "               ");
        assert_eq!(options_flags("anon-post-to REMIX2 hybrid repgp2 ext"), " P2H2 X        ");
    }

    #[test]
    fn dates_use_echolot_formats() {
        assert_eq!(list_date(1_700_000_000), "Tue 14 Nov 2023 22:13:20 GMT");
        assert_eq!(rfc822_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 +0000");
        assert_eq!(list_date(1_797_926_919), "Tue 22 Dec 2026 08:08:39 GMT");
    }

    #[test]
    fn percent_rounding_follows_printf() {
        assert_eq!(percent(0.99965035, 2, 6), " 99.97%");
        assert_eq!(percent(0.99965035, 1, 5), "100.0%");
        // Exact ties round to even, as C printf does.
        assert_eq!(format!("{:5.1}", 12.25f64), " 12.2");
        assert_eq!(format!("{:5.1}", 12.75f64), " 12.8");
        assert_eq!(percent(0.0, 2, 6), "  0.00%");
    }
}

/// The YAMN client's reader of `mlist2.txt` (`yamn.md` §9.1, `keymgr/public.go: ImportStats`),
/// written to its rules as a test double (no YAMN client runs here): the lists it would read
/// from us must give it the figures we mean.
#[cfg(test)]
pub(crate) mod yamn_client {
    use super::*;
    use crate::stats::RemailerStats;
    use proptest::prelude::*;

    /// A row as the client keeps it: latency in minutes, uptime in tenths of a percent.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Row {
        pub name: String,
        pub latency_minutes: i64,
        pub uptime_tenths: i64,
    }

    /// The rows the client takes from `text`, or why the import fails (the client then has no
    /// stats and refuses random hops). `known`: the names in its pubring.
    pub fn import(text: &str, known: &[&str]) -> Result<Vec<Row>, String> {
        let mut lines = text.lines();
        // Phase 1: the Generated line, in Go's `Mon 02 Jan 2006 15:04:05 GMT`.
        let generated = lines
            .by_ref()
            .find_map(|l| l.strip_prefix("Generated: "))
            .ok_or("no Generated line")?;
        chrono::NaiveDateTime::parse_from_str(generated, "%a %d %b %Y %H:%M:%S GMT")
            .map_err(|e| format!("Generated {generated:?}: {e}"))?;
        // Phase 2: the line of ten dashes.
        lines.by_ref().find(|l| l.starts_with("----------")).ok_or("no dashes line")?;
        // Phase 3: rows until the first empty line.
        let mut rows = Vec::new();
        for line in lines.by_ref() {
            if line.is_empty() {
                return Ok(rows);
            }
            let before = line.split('%').next().unwrap_or_default();
            let fields: Vec<&str> = before.split_whitespace().collect();
            let [name, _, latency, _, uptime] = fields.as_slice() else { continue };
            if !known.contains(name) {
                continue;
            }
            // Without a colon the client indexes out of range: a crash, not a skipped row.
            let (hours, minutes) =
                latency.split_once(':').ok_or(format!("the client crashes on {latency:?}"))?;
            let hours: i64 =
                if hours.is_empty() { 0 } else { hours.parse().map_err(|_| "hours")? };
            let minutes: i64 = minutes.parse().map_err(|_| "minutes")?;
            if !(0..=99).contains(&hours) || !(0..=59).contains(&minutes) {
                continue;
            }
            let Ok(uptime) = uptime.parse::<f64>() else { continue };
            if !(0.0..=100.0).contains(&uptime) {
                continue;
            }
            rows.push(Row {
                name: name.to_string(),
                latency_minutes: hours * 60 + minutes,
                uptime_tenths: (uptime * 10.0) as i64,
            });
        }
        Err("Unexpected EOF during phase 2: no empty line after the rows".into())
    }

    fn vector(path: &str) -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
        std::fs::read_to_string(dir.join(path)).unwrap()
    }

    #[test]
    fn the_file_the_real_client_accepted_is_read() {
        let rows = import(&vector("yamn/keys/mlist2.txt"), &["yamn1", "yamn2", "yamn3", "yamn4"]);
        let rows = rows.unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[3], Row { name: "yamn4".into(), latency_minutes: 6, uptime_tenths: 1000 });
        // Without the empty line after the rows, the client imports nothing.
        let cut = "Stats-Version: 2.0\nGenerated: Wed 02 Dec 2026 05:54:18 GMT\nx\n----------\n\
                   yamn1        000000000000     :03  ++++++++++++  100.0%  D\n";
        assert!(import(cut, &["yamn1"]).unwrap_err().contains("Unexpected EOF"));
    }

    fn stats(latency: Option<f64>, reliability: f64) -> RemailerStats {
        RemailerStats {
            reliability,
            latency_median: latency,
            reliability_by_day: [Some(reliability); STATS_DAYS],
            latency_median_by_day: [latency; STATS_DAYS],
            sent: 10,
            returned: 9,
        }
    }

    proptest! {
        /// Whatever the figures (no latency yet, over 99 hours, 0 %, 100 %), every row of the
        /// mlist2.txt we write reaches the YAMN client with our latency to the minute and our
        /// reliability to the tenth of a percent, and the rows are closed by an empty line.
        #[test]
        fn every_row_we_write_reaches_the_client_as_meant(
            rows in proptest::collection::vec(
                (proptest::option::of(0.0f64..500_000.0), 0.0f64..=1.0, "[a-z][a-z0-9]{1,11}"),
                1..12,
            )
        ) {
            let entries: Vec<ListEntry> = rows
                .iter()
                .enumerate()
                .map(|(i, (latency, reliability, nick))| ListEntry {
                    address: format!("{nick}{i}@example.org"),
                    nick: format!("{}{i}", &nick[..nick.len().min(10)]),
                    caps: format!("$remailer{{\"{nick}{i}\"}} = \"<{nick}{i}@example.org> mix\";"),
                    listed: true,
                    stats: stats(*latency, *reliability),
                })
                .collect();
            let refs: Vec<&ListEntry> = entries.iter().collect();
            let sections = Sections { same_operator: None, broken_type1: Some(""), broken_type2: Some("") };
            let text = list_v2(V2Kind::Mixmaster, &refs, &sections, 1_764_633_600);
            let names: Vec<&str> = entries.iter().map(|e| e.nick.as_str()).collect();
            let read = import(&text, &names).map_err(TestCaseError::fail)?;
            // And our own peer reader (the consensus) reads the same numbers back.
            let peer = crate::ingest::peer_list::parse_list_v2(&text)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(peer.generated, 1_764_633_600);
            for (row, entry) in peer.rows.iter().zip(&entries) {
                let seconds = entry.stats.latency_median.filter(|&s| s < 100.0 * 3600.0);
                prop_assert_eq!(row.latency, seconds.map(|s| (s as i64 / 60) * 60).filter(|&l| l != 99 * 3600 + 59 * 60));
                prop_assert!((row.reliability - entry.stats.reliability * 100.0).abs() <= 0.05 + 1e-9);
            }
            prop_assert_eq!(read.len(), entries.len());
            for (row, entry) in read.iter().zip(&entries) {
                prop_assert_eq!(&row.name, &entry.nick);
                let minutes = match entry.stats.latency_median {
                    Some(s) if s < 100.0 * 3600.0 => (s / 60.0) as i64,
                    _ => 99 * 60 + 59,
                };
                prop_assert_eq!(row.latency_minutes, minutes);
                let ours = entry.stats.reliability * 1000.0;
                prop_assert!((row.uptime_tenths as f64 - ours).abs() <= 1.0, "{} vs {}", row.uptime_tenths, ours);
            }
        }
    }
}
