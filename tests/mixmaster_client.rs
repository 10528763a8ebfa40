//! The published lists through the eyes of the Mixmaster 3 client. No real client can run
//! here, so this is a reader written to the client's own fixed-column rules (`mixmaster.md`
//! §3.2-3.4: `chain2.c mix2_rlist`, `chain1.c t1_rlist`, `chain.c parse_badchains`), and every
//! mlist.txt and rlist.txt the project writes must satisfy it: each listed remailer has a row
//! the client accepts, with the reliability and latency of our statistics, and the broken
//! chains are read back exactly.

mod support;

use std::collections::BTreeMap;

use support::{bin, imported_db, now_of, run_ok};

const DASHES_44: &str = "--------------------------------------------";

/// What `mix2_rlist` takes from mlist.txt for the remailers it knows (from pubring.mix).
#[derive(Debug, PartialEq)]
struct MixRow {
    latency_secs: u32,
    /// Percent x 100 (10000 = 100.00 %).
    reliability: u32,
}

/// Columns as the client reads them: a non-digit counts as 0.
fn digit(line: &[u8], i: usize) -> u32 {
    line.get(i).filter(|c| c.is_ascii_digit()).map_or(0, |c| u32::from(c - b'0'))
}

/// The client's reading of a row: `H H : M M : S S` from column `lat` and `R R R . R R`
/// from column `rel` (mlist: 28 and 37; rlist: 55 and 64).
fn read_row(b: &[u8], lat: usize, rel: usize) -> MixRow {
    let latency_secs = 36000 * digit(b, lat)
        + 3600 * digit(b, lat + 1)
        + 600 * digit(b, lat + 3)
        + 60 * digit(b, lat + 4)
        + 10 * digit(b, lat + 6)
        + digit(b, lat + 7);
    let reliability = 10000 * digit(b, rel)
        + 1000 * digit(b, rel + 1)
        + 100 * digit(b, rel + 2)
        + 10 * digit(b, rel + 4)
        + digit(b, rel + 5);
    MixRow { latency_secs, reliability }
}

/// `mix2_rlist`, pass 1 and pass 2, for the names in `known`.
fn client_mlist(text: &str, known: &[&str]) -> BTreeMap<String, MixRow> {
    let mut lines = text.split_inclusive('\n');
    // Pass 1: up to the 44-dash line.
    for line in lines.by_ref() {
        if line.starts_with(DASHES_44) {
            break;
        }
    }
    let mut rows = BTreeMap::new();
    for line in lines {
        if line.starts_with("</PRE>") {
            break;
        }
        // A data row is 44..46 bytes long, LF included.
        if !(44..=46).contains(&line.len()) {
            continue;
        }
        let b = line.as_bytes();
        for name in known {
            if line.starts_with(&format!("{name} ")) && !rows.contains_key(*name) {
                rows.insert((*name).to_owned(), read_row(b, 28, 37));
            }
        }
    }
    rows
}

/// `t1_rlist`: caps lines up to the 71-dash line, then rows of 72..73 bytes with the nick cut
/// to 8 characters.
fn client_rlist(text: &str) -> (Vec<String>, BTreeMap<String, MixRow>) {
    let mut caps = Vec::new();
    let mut lines = text.split_inclusive('\n');
    for line in lines.by_ref() {
        if line.starts_with(&"-".repeat(71)) {
            break;
        }
        if line.starts_with("$remailer") && ["<", ">", "{", "}"].iter().all(|c| line.contains(c)) {
            let name = line.split('"').nth(1).unwrap_or_default();
            caps.push(name.chars().take(20).collect());
        }
    }
    let mut rows = BTreeMap::new();
    for line in lines {
        if !(72..=73).contains(&line.len()) {
            continue;
        }
        let b = line.as_bytes();
        let name = line.split(' ').next().unwrap_or_default().to_owned();
        rows.insert(name, read_row(b, 55, 64));
    }
    (caps, rows)
}

/// `parse_badchains`: the first line starting with the heading, then consecutive `(` lines.
fn client_broken(text: &str, heading: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines().skip_while(|l| !l.starts_with(heading));
    if lines.next().is_none() {
        return out;
    }
    for line in lines {
        let Some(rest) = line.strip_prefix('(') else { break };
        let rest = rest.trim_start();
        let (left, rest) = rest.split_once(' ').expect("LEFT ends at a space");
        let right = rest.trim_start();
        let end = right.find([' ', ')']).expect("a `)` closes the pair");
        assert!(line.contains(')'), "missing `)`: {line}");
        out.push((left.to_owned(), right[..end].to_owned()));
    }
    out
}

fn stats(db: &std::path::Path, now: i64, format: &str, private: bool) -> String {
    let mut cmd = bin();
    cmd.arg("--db").arg(db).args(["stats", "--now", &now.to_string(), "--format", format]);
    if private {
        cmd.arg("--private");
    }
    run_ok(&mut cmd)
}

#[test]
fn every_list_we_write_is_read_by_the_client_rules_with_our_numbers() {
    let dir = tempfile::tempdir().unwrap();
    for vector in ["example", "network"] {
        let db = imported_db(dir.path(), vector);
        let now = now_of(vector);
        for private in [false, true] {
            let json: serde_json::Value =
                serde_json::from_str(&stats(&db, now, "json", private)).unwrap();
            let mlist = stats(&db, now, "mlist", private);
            // Public files hold the listed remailers; nicks over 14 characters shift the
            // columns (Echolot's format) and the client skips their rows: checked below.
            let shown = |e: &&serde_json::Value| private || e["listed"] == true;
            let mix: Vec<&serde_json::Value> = json["lists"]["mix"]
                .as_array()
                .unwrap()
                .iter()
                .filter(shown)
                .filter(|e| e["nick"].as_str().unwrap().len() <= 14)
                .collect();
            let names: Vec<&str> = mix.iter().map(|e| e["nick"].as_str().unwrap()).collect();
            let rows = client_mlist(&mlist, &names);
            for e in &mix {
                let nick = e["nick"].as_str().unwrap();
                let row = rows.get(nick).unwrap_or_else(|| panic!("{vector}: no row for {nick}"));
                let rel = (e["reliability"].as_f64().unwrap() * 10000.0).round() as u32;
                assert_eq!(row.reliability, rel, "{vector} {nick}");
                let lat = e["latency_median_s"].as_f64().map_or(u32::MAX, |l| l as u32);
                if lat < 100 * 3600 {
                    assert_eq!(row.latency_secs, lat, "{vector} {nick}");
                }
            }
            // The client would set every reliability to 100 % below 4 rows: the vectors
            // have enough.
            assert!(rows.len() >= 4 || mix.len() < 4, "{vector}: {rows:?}");
            // Both broken-chain sections are found in mlist.txt and match the JSON.
            for (heading, family) in [
                ("Broken type-II remailer chains", "mix"),
                ("Broken type-I remailer chains", "cpunk"),
            ] {
                let pairs = client_broken(&mlist, heading);
                let expected = json["broken_chains"][family].as_array().unwrap();
                assert_eq!(pairs.len(), expected.len(), "{vector} {heading}: {pairs:?}");
            }
            let rlist = stats(&db, now, "rlist", private);
            let (caps, rows) = client_rlist(&rlist);
            for e in json["lists"]["cpunk"].as_array().unwrap().iter().filter(shown) {
                let nick = e["nick"].as_str().unwrap();
                assert!(caps.iter().any(|c| c == nick), "{vector}: no caps line for {nick}");
                // The row carries the nick cut to 8 characters: the client matches only
                // nicks that short.
                if nick.len() > 8 {
                    continue;
                }
                let row = rows.get(nick).unwrap_or_else(|| panic!("{vector}: no row {nick}"));
                let rel = (e["reliability"].as_f64().unwrap() * 10000.0).round() as u32;
                assert_eq!(row.reliability, rel, "{vector} {nick}");
            }
        }
    }
}

#[test]
fn nicks_up_to_the_column_limit_are_read_and_longer_ones_are_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let csv = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    // Nicks of 12, 14 and 15 characters, plus ordinary ones so the list has 4+ rows.
    let nicks = ["twelvecharsx", "fourteenchars1", "fifteencharsxyz", "alpha", "beta"];
    let mut remailers = String::new();
    let mut pings = String::new();
    for (i, nick) in nicks.iter().enumerate() {
        let address = format!("{nick}@r{i}.example");
        remailers.push_str(&format!(
            "{address},{nick},$remailer{{\"{nick}\"}} = \"<{address}> mix cpunk\";,1\n"
        ));
        for d in 0..10 {
            let sent = 1_700_000_000 - d * 86_400;
            pings.push_str(&format!("{address},mix,{sent},{}\n", sent + 600));
        }
    }
    let db = dir.path().join("db.sqlite");
    run_ok(
        bin()
            .arg("--db")
            .arg(&db)
            .arg("import-pings")
            .arg("--pings")
            .arg(csv("pings.csv", &pings))
            .arg("--remailers")
            .arg(csv("remailers.csv", &remailers)),
    );
    let mlist = stats(&db, 1_700_000_100, "mlist", false);
    let rows = client_mlist(&mlist, &nicks);
    for nick in ["twelvecharsx", "fourteenchars1", "alpha", "beta"] {
        let row = rows.get(nick).unwrap_or_else(|| panic!("no row for {nick}:\n{mlist}"));
        assert_eq!(row.latency_secs, 600, "{nick}");
        assert_eq!(row.reliability, 10000, "{nick}");
    }
    // Longer than 14: the row does not fit the client's columns, and it is ignored rather
    // than read with shifted numbers.
    assert!(!rows.contains_key("fifteencharsxyz"), "{mlist}");
}

#[test]
fn an_empty_list_is_still_a_list_the_client_reads() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("empty.sqlite");
    run_ok(bin().arg("--db").arg(&db).args(["add", "nobody@x.example"]));
    let mlist = stats(&db, 1_700_000_000, "mlist", false);
    assert!(mlist.lines().any(|l| l.starts_with(DASHES_44)), "{mlist}");
    assert!(mlist.lines().any(|l| l.starts_with("Last update:")), "{mlist}");
    assert!(client_mlist(&mlist, &["nobody"]).is_empty());
    assert_eq!(client_broken(&mlist, "Broken type-II remailer chains"), []);
    let (caps, rows) = client_rlist(&stats(&db, 1_700_000_000, "rlist", false));
    assert!(caps.is_empty() && rows.is_empty());
}
