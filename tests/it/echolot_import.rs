//! `fathometer import-echolot`: an Echolot home brought over in place. The home Echolot itself
//! read (tests/vectors/echolot/home-example) must give Echolot's numbers and files after the
//! import; homes built here from the format of `echolot.md` §8 exercise what that one lacks:
//! several keys per remailer, hidden, `testing` and timed-out remailers, chain pings, real key
//! material, and logs that are corrupt or cut short (reported, never fatal).

use crate::echolot_vectors::assert_matches_expected;
use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const HOME_NOW: i64 = 1_700_000_000;

fn import(db: &Path, home: &Path) -> String {
    run_ok(bin().arg("--db").arg(db).arg("import-echolot").arg(home))
}

fn stats(db: &Path, now: i64, extra: &[&str]) -> String {
    run_ok(
        bin()
            .arg("--db")
            .arg(db)
            .args(["stats", "--now", &now.to_string(), "--model", "echolot"])
            .args(extra),
    )
}

/// Every file of a tree with its bytes and modification time: the home must come out of an
/// import exactly as it went in.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let m = e.metadata().unwrap().modified().unwrap();
                out.push((p.clone(), std::fs::read(&p).unwrap(), m));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn the_home_echolot_read_gives_echolots_numbers_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let home = vectors("home-example");
    let before = snapshot(&home);
    let db = dir.path().join("db.sqlite");
    let report = import(&db, &home);
    assert!(report.contains("remailers: 5 added"), "{report}");
    assert!(report.contains("pings: 1051 imported, 0 already present"), "{report}");
    assert!(report.contains("chain pings: 48 imported"), "{report}");
    assert_eq!(snapshot(&home), before, "the Echolot home was modified");

    let json: Value = serde_json::from_str(&stats(&db, HOME_NOW, &["--format", "json"])).unwrap();
    let expected = std::fs::read_to_string(home.join("expected.tsv")).unwrap();
    assert_matches_expected(&json, &expected, "home-example");
    for (folder, private) in [("results", false), ("results.private", true)] {
        for list in ["mlist", "mlist2", "rlist", "rlist2"] {
            let mut args = vec!["--format", list];
            if private {
                args.push("--private");
            }
            let got = stats(&db, HOME_NOW, &args);
            let want =
                std::fs::read_to_string(home.join(folder).join(format!("{list}.txt"))).unwrap();
            assert_eq!(got, want, "{folder}/{list}.txt differs from Echolot's");
        }
    }

    // Idempotent: the second run finds everything present and changes no number.
    let again = import(&db, &home);
    assert!(again.contains("remailers: 0 added"), "{again}");
    assert!(again.contains("pings: 0 imported, 1051 already present"), "{again}");
    assert!(again.contains("chain pings: 0 imported, 48 already present"), "{again}");
    let json2: Value = serde_json::from_str(&stats(&db, HOME_NOW, &["--format", "json"])).unwrap();
    assert_eq!(json2["lists"], json["lists"]);
}

const MIX_SUMMARY: &str =
    "testmix1 testmix1@localhost 400c909fdd158b5b69ca52eef13b1d60 2:3.0.2d C 2024-01-01 2046-11-16";

/// The `-----Begin Mix Key-----` block of testmix1 from the Mixmaster vectors.
fn mix_key_block() -> String {
    let ring = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/mixmaster/keys/pubring.mix"),
    )
    .unwrap();
    let start = ring.find("-----Begin Mix Key-----").unwrap();
    let end = ring.find("-----End Mix Key-----").unwrap() + "-----End Mix Key-----".len();
    ring[start..end].to_owned()
}

fn address_entry(address: &str, id: u32, status: &str, showit: u8) -> String {
    format!(
        "'{address}' => {{ 'id' => {id}, 'status' => '{status}', 'ttl' => 5, \
         'fetch' => 1, 'pingit' => 1, 'showit' => {showit} }},\n"
    )
}

fn key_entry(key_id: &str, stats: &str, key: &str, summary: &str) -> String {
    format!(
        "'{key_id}' => {{ 'key' => '{key}', 'summary' => '{summary}', 'nick' => 'x', \
         'last_update' => {HOME_NOW}, 'stats' => '{stats}' }},\n"
    )
}

fn conf(nick: &str, caps: &str) -> String {
    format!(
        "'conf' => {{ 'nick' => '{nick}', 'type' => 'Mixmaster', 'capabilities' => '{caps}', \
         'last_update' => {HOME_NOW} }},\n"
    )
}

/// A day of pings every two hours, `lost` of every 12 never returning, latency `latency`.
fn done_and_out(first: i64, count: usize, latency: i64, lost_every: usize) -> (String, String) {
    let (mut done, mut out) = (String::new(), String::new());
    for i in 0..count {
        let sent = first + i as i64 * 7200;
        if lost_every > 0 && i % lost_every == lost_every - 1 {
            out.push_str(&format!("{sent}\n"));
        } else {
            done.push_str(&format!("{sent} {latency}\n"));
        }
    }
    (done, out)
}

/// An Echolot home: five remailers, one with an expired and a current key (both with
/// history), one hidden, one `testing`, one timed out, chain pings between them, a from-line,
/// a thesaurus reply; and a corrupt line and a cut-short log.
fn synthetic_home(root: &Path) -> PathBuf {
    let home = root.join("echolot");
    let data = home.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(home.join("results/thesaurus")).unwrap();
    let start = HOME_NOW - 10 * 86400;
    let logs = [
        ("testmix1@localhost.mix.oldkey", start, 60, 600, 0),
        ("testmix1@localhost.mix.400c909fdd158b5b69ca52eef13b1d60", start + 60 * 7200, 60, 900, 4),
        ("hidden@b.example.mix.bbbb", start, 100, 300, 0),
        ("testing@c.example.mix.cccc", start, 100, 1200, 2),
        ("asleep@d.example.cpunk-clear.none", start, 50, 100, 0),
    ];
    for (base, first, count, latency, lost) in logs {
        let (done, out) = done_and_out(first, count, latency, lost);
        std::fs::write(data.join(format!("{base}.done")), done).unwrap();
        std::fs::write(data.join(format!("{base}.out")), out).unwrap();
    }
    // A corrupt line in one log and a last line cut short (a crash while Echolot wrote it).
    let hidden_done = data.join("hidden@b.example.mix.bbbb.done");
    let mut text = std::fs::read_to_string(&hidden_done).unwrap();
    text.insert_str(0, "1699 not-a-latency\n");
    text.push_str("16999");
    std::fs::write(&hidden_done, text).unwrap();

    let mut chains_out = String::new();
    let mut chains_done = String::new();
    for i in 0..20 {
        let sent = start + i * 3600;
        let line = format!(
            "{sent} testmix1@localhost mix 400c909fdd158b5b69ca52eef13b1d60 hidden@b.example mix bbbb"
        );
        chains_out.push_str(&format!("{line}\n"));
        if i % 2 == 0 {
            chains_done.push_str(&format!("{line} 1800\n"));
        }
    }
    std::fs::write(data.join("chainpings.mix.out"), chains_out).unwrap();
    std::fs::write(data.join("chainpings.mix.done"), chains_done).unwrap();
    std::fs::write(data.join("chainpings.cpunk.out"), "").unwrap();

    let mix_caps = |nick: &str, addr: &str, extra: &str| {
        format!("$remailer{{\"{nick}\"}} = \"<{addr}> mix middle klen1000{extra}\";")
    };
    let mut meta = String::from("# vim:set syntax=perl:\n$METADATA = {\n'version' => 1,\n");
    meta.push_str("'secret' => 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',\n'addresses' => {\n");
    meta.push_str(&address_entry("testmix1@localhost", 1, "active", 1));
    meta.push_str(&address_entry("hidden@b.example", 2, "active", 0));
    meta.push_str(&address_entry("testing@c.example", 3, "active", 1));
    meta.push_str(&address_entry("asleep@d.example", 4, "ttl timeout", 1));
    meta.push_str("},\n'remailers' => {\n");
    meta.push_str("'testmix1@localhost' => {\n");
    meta.push_str(&conf("testmix1", &mix_caps("testmix1", "testmix1@localhost", "")));
    meta.push_str("'keys' => { 'mix' => {\n");
    meta.push_str(&key_entry("oldkey", "testmix1@localhost.mix.oldkey", "N/A", "N/A"));
    meta.push_str(&key_entry(
        "400c909fdd158b5b69ca52eef13b1d60",
        "testmix1@localhost.mix.400c909fdd158b5b69ca52eef13b1d60",
        &mix_key_block(),
        MIX_SUMMARY,
    ));
    meta.push_str("} },\n},\n");
    meta.push_str("'hidden@b.example' => {\n");
    meta.push_str(&conf("hidden", &mix_caps("hidden", "hidden@b.example", "")));
    meta.push_str("'keys' => { 'mix' => {\n");
    meta.push_str(&key_entry("bbbb", "hidden@b.example.mix.bbbb", "N/A", "N/A"));
    meta.push_str("} },\n},\n");
    meta.push_str("'testing@c.example' => {\n");
    meta.push_str(&conf("testing", &mix_caps("testing", "testing@c.example", " testing")));
    meta.push_str("'keys' => { 'mix' => {\n");
    meta.push_str(&key_entry("cccc", "testing@c.example.mix.cccc", "N/A", "N/A"));
    meta.push_str("} },\n},\n");
    meta.push_str("'asleep@d.example' => {\n");
    meta.push_str(&conf(
        "asleep",
        "$remailer{\"asleep\"} = \"<asleep@d.example> cpunk max latent hash ek\";",
    ));
    meta.push_str("'keys' => { 'cpunk-clear' => {\n");
    meta.push_str(&key_entry("none", "asleep@d.example.cpunk-clear.none", "N/A", "N/A"));
    meta.push_str("} },\n},\n");
    meta.push_str("},\n'fromlines' => { 'testmix1@localhost' => { 'mix' => { '1' => { ");
    meta.push_str(&format!(
        "'last_update' => {HOME_NOW}, 'from' => 'Nobody <nobody@localhost>', \
         'disclaim_top' => 0, 'disclaim_bot' => 0 }} }} }} }},\n"
    ));
    meta.push_str("};\n");
    std::fs::write(data.join("metadata"), meta).unwrap();
    std::fs::write(
        home.join("results/thesaurus/1.conf"),
        "Remailer-Type: Mixmaster 3.0\n$remailer{\"testmix1\"} = \"<testmix1@localhost> mix\";\n",
    )
    .unwrap();
    home
}

fn row<'a>(json: &'a Value, list: &str, address: &str) -> &'a Value {
    json["lists"][list]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == address)
        .unwrap_or_else(|| panic!("{address} in the {list} list"))
}

#[test]
fn a_home_with_several_keys_hidden_testing_chains_and_damaged_logs() {
    let dir = tempfile::tempdir().unwrap();
    let home = synthetic_home(dir.path());
    let before = snapshot(&home);
    let db = dir.path().join("db.sqlite");
    let report = import(&db, &home);
    assert_eq!(snapshot(&home), before, "the Echolot home was modified");

    // Both of testmix1's keys with their history: 60 + 60 pings, 15 of the newer key lost.
    assert!(report.contains("remailers: 4 added"), "{report}");
    assert!(report.contains("keys: 1 with their key material, 4 by id only"), "{report}");
    assert!(report.contains("pings: 370 imported"), "{report}");
    assert!(report.contains("chain pings: 20 imported"), "{report}");
    assert!(report.contains("replies (thesaurus): 1 stored; From: lines: 1 stored"), "{report}");
    // The damage is reported with its file and line, and the rest of that log still counts.
    assert!(
        report.contains(
            "hidden@b.example.mix.bbbb.done:1: `1699 not-a-latency` is not `<sent> <latency>`"
        ),
        "{report}"
    );
    assert!(
        report.contains("hidden@b.example.mix.bbbb.done: the last line is cut short"),
        "{report}"
    );

    let json: Value =
        serde_json::from_str(&stats(&db, HOME_NOW, &["--format", "json", "--private"])).unwrap();
    let multi = row(&json, "mix", "testmix1@localhost");
    assert_eq!(multi["pings_sent"], 120, "both keys' pings count for the remailer");
    assert_eq!(multi["pings_returned"], 105);
    let hidden = row(&json, "mix", "hidden@b.example");
    assert_eq!(hidden["listed"], false, "showit = 0 stays hidden");
    assert_eq!(hidden["pings_sent"], 100, "the corrupt line is skipped, the rest counted");
    assert_eq!(row(&json, "mix", "testing@c.example")["listed"], false, "`testing` is not listed");
    assert_eq!(row(&json, "mix", "testing@c.example")["pings_returned"], 50);
    assert_eq!(row(&json, "cpunk", "asleep@d.example")["pings_sent"], 50);

    // The public list shows neither the hidden nor the testing remailer.
    let public = stats(&db, HOME_NOW, &["--format", "mlist2"]);
    assert!(public.contains("testmix1"), "{public}");
    assert!(
        !public.contains("hidden@b.example") && !public.contains("testing@c.example"),
        "{public}"
    );

    // The timed-out remailer keeps its Echolot status; the key with material is usable.
    let list = run_ok(bin().arg("--db").arg(&db).arg("list"));
    let asleep = list.lines().find(|l| l.contains("asleep@d.example")).unwrap();
    assert!(asleep.contains("unresponsive"), "{list}");
    let conn = db_file(&db);
    let with_material: Vec<String> = conn
        .prepare("SELECT key_id FROM keys WHERE material LIKE '%Begin Mix Key%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(with_material, ["400c909fdd158b5b69ca52eef13b1d60"]);
    drop(conn);

    // Running it again imports nothing new.
    let again = import(&db, &home);
    assert!(again.contains("remailers: 0 added"), "{again}");
    assert!(again.contains("pings: 0 imported, 370 already present"), "{again}");
    assert!(again.contains("chain pings: 0 imported, 20 already present"), "{again}");
    assert!(again.contains("replies (thesaurus): 0 stored; From: lines: 0 stored"), "{again}");
}

#[test]
fn a_home_without_metadata_is_a_clear_error_and_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let out = run(bin().arg("--db").arg(&db).arg("import-echolot").arg(dir.path().join("nothing")));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metadata"), "{err}");
}
