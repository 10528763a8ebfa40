//! The published lists through the eyes of the Mixmaster 3 client. No real client can run
//! here (no Mixmaster package or source is reachable), so this is a client double written to
//! the client's own rules (`mixmaster.md` §2.5 and §3: `chain2.c mix2_rlist`, `chain1.c
//! t1_rlist`, `chain.c parse_badchains` and its random chain selection, `menustats.c`'s
//! stats download). Every mlist.txt and rlist.txt the project writes must satisfy it: each
//! listed remailer has a row the client accepts, with the reliability and latency of our
//! statistics, and the broken chains are read back exactly. The end-to-end test points the
//! double at the running daemon through `fathometer allpingers` and checks that the chains
//! it builds are exactly those the real client built on the recorded network (§3.5).

use std::collections::BTreeMap;

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::http::{free_port, get};
use crate::support::{bin, imported_db, now_of, run_ok, scenario, stop_with_log, write_config};
use rand::{Rng, SeedableRng};

const DASHES_44: &str = "--------------------------------------------";

/// What `mix2_rlist` takes from mlist.txt for the remailers it knows (from pubring.mix).
#[derive(Debug, PartialEq)]
pub(crate) struct MixRow {
    pub(crate) latency_secs: u32,
    /// Percent x 100 (10000 = 100.00 %).
    pub(crate) reliability: u32,
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
pub(crate) fn client_mlist(text: &str, known: &[&str]) -> BTreeMap<String, MixRow> {
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

/// One remailer as the client holds it after reading pubring.mix and mlist.txt.
#[derive(Debug)]
struct ClientRemailer {
    name: String,
    middleman: bool,
    /// Percent x 100; 0 without an mlist row.
    pub(crate) reliability: u32,
    pub(crate) latency_secs: u32,
}

/// `mix2_rlist` reading pubring.mix (§2.5): a header is a line longer than 50 characters, not
/// a comment, with at least 4 fields; with 6 or 7 fields a creation date after `today` or an
/// expiry before it drops the entry. Returns (name, middleman) in file order.
fn client_pubring(text: &str, today: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.len() <= 50 || line.starts_with('#') || fields.len() < 4 {
            continue;
        }
        assert!(line.len() < 128, "the client reads header lines in 128-byte pieces: {line}");
        if (6..=7).contains(&fields.len()) {
            // ISO dates compare as text.
            let expired = fields.get(6).is_some_and(|e| *e < today);
            if fields[5] > today || expired {
                continue;
            }
        }
        let middleman = fields.get(4).is_some_and(|caps| caps.contains('M'));
        if out.len() < 99 {
            out.push((fields[0].chars().take(19).collect(), middleman));
        }
    }
    out
}

/// `menustats.c`: the section `name` of allpingers.txt, case-insensitive keys, first match
/// wins; usable only with all four of mlist, rlist, mixring and pgpring, each an http URL.
fn client_allpingers(text: &str, name: &str) -> BTreeMap<&'static str, String> {
    let mut in_section = false;
    let mut urls = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = section.eq_ignore_ascii_case(name);
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        for wanted in ["mlist", "rlist", "mixring", "pgpring"] {
            if in_section && key.trim().eq_ignore_ascii_case(wanted) {
                urls.entry(wanted).or_insert_with(|| value.trim().to_owned());
            }
        }
    }
    assert_eq!(urls.len(), 4, "the client needs all four URLs: {text}");
    assert!(urls.values().all(|u| u.starts_with("http")), "{urls:?}");
    urls
}

/// `wget -q URL -O file`: the bytes of an `http://127.0.0.1:PORT/path` URL.
fn fetch(url: &str) -> String {
    let rest = url.strip_prefix("http://127.0.0.1:").expect("a loopback URL");
    let (port, path) = rest.split_once('/').unwrap();
    let response = get(port.parse().unwrap(), &format!("/{path}"), "");
    // The client cannot tell a failed download (it would install an empty file), so the
    // pinger must serve every advertised file.
    assert_eq!(response.status, 200, "{url}");
    response.text()
}

/// The client's defaults (`mix.cfg`): MINREL 98 %, RELFINAL 99 %, MAXLAT 36 h, MINLAT 5 min,
/// DISTANCE 2.
const MINREL: u32 = 9800;
const RELFINAL: u32 = 9900;
const MAXLAT: u32 = 36 * 3600;
const MINLAT: u32 = 5 * 60;
const DISTANCE: usize = 2;

/// Whether `from -> to` is broken by one of the pairs, `*` matching any remailer.
fn is_broken(broken: &[(String, String)], from: &str, to: &str) -> bool {
    broken.iter().any(|(l, r)| (l == from || l == "*") && (r == to || r == "*"))
}

/// `chain.c`'s random selection for a chain of `*` hops (first hop first): the final hop first,
/// then every other hop from the end towards the start, each uniformly among the remailers
/// that pass the limits, greedily, never backtracking. `Err` is "No reliable remailers!".
fn client_random_chain(
    remailers: &[ClientRemailer],
    broken: &[(String, String)],
    hops: usize,
    rng: &mut impl Rng,
) -> Result<Vec<String>, &'static str> {
    let mut chain: Vec<Option<usize>> = vec![None; hops];
    let near_fixed = |chain: &[Option<usize>], at: usize, candidate: usize| {
        (at.saturating_sub(DISTANCE)..=(at + DISTANCE).min(hops - 1))
            .any(|j| j != at && chain[j] == Some(candidate))
    };
    for at in (0..hops).rev() {
        let is_final = at == hops - 1;
        let candidates: Vec<usize> = (0..remailers.len())
            .filter(|&c| {
                let r = &remailers[c];
                let min = if is_final { RELFINAL } else { MINREL };
                let mut ok = r.reliability >= min
                    && (MINLAT..=MAXLAT).contains(&r.latency_secs)
                    && !near_fixed(&chain, at, c);
                if is_final {
                    ok &= !r.middleman;
                } else if let Some(next) = chain[at + 1] {
                    ok &= !is_broken(broken, &r.name, &remailers[next].name);
                }
                if at > 0
                    && let Some(prev) = chain[at - 1]
                {
                    ok &= !is_broken(broken, &remailers[prev].name, &r.name);
                }
                ok
            })
            .collect();
        if candidates.is_empty() {
            return Err("No reliable remailers!");
        }
        chain[at] = Some(candidates[rng.gen_range(0..candidates.len())]);
    }
    Ok(chain.into_iter().map(|c| remailers[c.unwrap()].name.clone()).collect())
}

#[test]
fn a_client_pointed_at_the_daemon_downloads_the_files_and_builds_only_unbroken_chains() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let closed = free_port();
    // No mail leaves (the MTA port is closed and requests are off): the statistics are the
    // imported history's.
    let extra = format!(
        "[smtp]\nport = {closed}\n[discovery]\nrequests = false\n[schedule]\ntick_secs = 1\n"
    );
    let config = write_config(dir.path(), &format!("127.0.0.1:{port}"), &extra);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    scenario::import(dir.path(), &config, now);
    let mut daemon =
        bin().arg("run").arg("--config").arg(&config).stderr(Stdio::piped()).spawn().unwrap();
    let results = dir.path().join("state/results");
    let start = Instant::now();
    // pgp-all.asc is the last file of a build (lists, pages, then the keyrings in order).
    while !results.join("pgp-all.asc").exists()
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    {
        assert!(start.elapsed() < Duration::from_secs(20), "the daemon did not publish in time");
        std::thread::sleep(Duration::from_millis(100));
    }

    // `mixmaster --update-stats=NAME` with an allpingers.txt holding our stanza.
    let stanza = run_ok(bin().arg("--config").arg(&config).args([
        "allpingers",
        "--base-url",
        &format!("http://127.0.0.1:{port}/"),
    ]));
    let section = stanza.lines().next().unwrap().trim_matches(['[', ']']).to_owned();
    let allpingers = format!("[other]\nmlist = http://elsewhere.example/mlist.txt\n\n{stanza}");
    let urls = client_allpingers(&allpingers, &section.to_uppercase());
    let mlist = fetch(&urls["mlist"]);
    let rlist = fetch(&urls["rlist"]);
    let pubring = fetch(&urls["mixring"]);
    let pgpring = fetch(&urls["pgpring"]);
    let (status, log) = stop_with_log(&mut daemon, Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "{log}");
    assert!(pgpring.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"), "{pgpring}");
    assert!(!client_rlist(&rlist).0.is_empty(), "{rlist}");

    let today = chrono::DateTime::from_timestamp(now, 0).unwrap().format("%Y-%m-%d").to_string();
    let keys = client_pubring(&pubring, &today);
    let names: Vec<&str> = keys.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["testmix1", "testmix2", "testmix3", "testmix4"], "{pubring}");
    let rows = client_mlist(&mlist, &names);
    // Four rows: the client keeps the published reliabilities (below four it would set them
    // all to 100 %).
    assert_eq!(rows.len(), 4, "{mlist}");
    let remailers: Vec<ClientRemailer> = keys
        .iter()
        .map(|(name, middleman)| {
            let row = &rows[name];
            ClientRemailer {
                name: name.clone(),
                middleman: *middleman,
                reliability: row.reliability,
                latency_secs: row.latency_secs,
            }
        })
        .collect();
    let broken = client_broken(&mlist, "Broken type-II remailer chains");
    assert_eq!(broken, [("testmix1".to_owned(), "testmix2".to_owned())], "{mlist}");

    // `*,*,*` many times, as in the run recorded with the real client (§3.5): only the three
    // legal chains come out, the rest fail with "No reliable remailers!" (the greedy choice
    // of testmix3 as final and testmix2 before it leaves only testmix1, which may not send to
    // testmix2: a quarter of the runs).
    let legal: [&[&str]; 3] = [
        &["testmix2", "testmix1", "testmix3"],
        &["testmix2", "testmix3", "testmix1"],
        &["testmix3", "testmix2", "testmix1"],
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6d69_786d);
    let mut seen = BTreeMap::<String, usize>::new();
    let mut failures = 0;
    let runs = 400;
    for _ in 0..runs {
        match client_random_chain(&remailers, &broken, 3, &mut rng) {
            Ok(chain) => {
                assert!(
                    legal
                        .contains(&chain.iter().map(String::as_str).collect::<Vec<_>>().as_slice()),
                    "{chain:?}"
                );
                *seen.entry(chain.join(",")).or_default() += 1;
            }
            Err(e) => {
                assert_eq!(e, "No reliable remailers!");
                failures += 1;
            }
        }
    }
    assert_eq!(seen.len(), 3, "every legal chain is built: {seen:?}");
    // A quarter expected (100 of 400); the bounds are five standard deviations wide.
    assert!((57..=143).contains(&failures), "{failures} failures of {runs}");
    // Without the broken chain, testmix1 -> testmix2 would be built too: the rule is what
    // keeps it out.
    let unbroken: Vec<Vec<String>> =
        (0..runs).filter_map(|_| client_random_chain(&remailers, &[], 3, &mut rng).ok()).collect();
    assert!(
        unbroken.iter().any(|c| c.windows(2).any(|w| w[0] == "testmix1" && w[1] == "testmix2"))
    );
}
