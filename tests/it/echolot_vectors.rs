//! Golden tests: two ping histories for which Echolot 2.1.9's own code computed the numbers
//! and wrote the files (tests/vectors/echolot, copied from shared/vectors/echolot). In the
//! `echolot` model fathometer must give the same numbers (reliability to 1e-12, medians
//! exactly) and the same files, byte for byte.

use crate::support::*;
use serde_json::Value;

const DATASETS: [&str; 2] = ["example", "network"];

fn stats_json(db: &std::path::Path, now: i64, model: &str) -> Value {
    let out = run_ok(bin().arg("--db").arg(db).args([
        "stats",
        "--now",
        &now.to_string(),
        "--model",
        model,
        "--format",
        "json",
    ]));
    serde_json::from_str(&out).expect("stats prints JSON")
}

fn parse_optional(field: &str) -> Option<f64> {
    (field != "-").then(|| field.parse().expect("number in expected.tsv"))
}

#[test]
fn echolot_model_matches_echolots_numbers() {
    let dir = tempfile::tempdir().unwrap();
    for name in DATASETS {
        let db = imported_db(dir.path(), name);
        let json = stats_json(&db, now_of(name), "echolot");
        let expected = std::fs::read_to_string(vectors(name).join("expected.tsv")).unwrap();
        assert_matches_expected(&json, &expected, name);
    }
}

/// `stats --format json` in the echolot model against Echolot's `expected.tsv`: every row's
/// rank, nick, address, listing, reliability (to 1e-12) and medians (exactly), per day too,
/// and no remailer more or less.
pub fn assert_matches_expected(json: &Value, expected: &str, name: &str) {
    assert_eq!(json["model"], "echolot");
    let mut checked = 0;
    for line in expected.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let (list, rank, nick, address, listed) = (f[0], f[1], f[2], f[3], f[4] == "1");
        let rank: usize = rank.parse().unwrap();
        let row = &json["lists"][list][rank - 1];
        let ctx = format!("{name} {list} #{rank} {nick}");
        assert_eq!(row["rank"], rank, "{ctx}");
        assert_eq!(row["nick"], nick, "{ctx}");
        assert_eq!(row["address"], address, "{ctx}");
        assert_eq!(row["listed"], listed, "{ctx}");
        let rel: f64 = f[5].parse().unwrap();
        let got = row["reliability"].as_f64().unwrap();
        assert!((got - rel).abs() < 1e-12, "{ctx}: reliability {got} != {rel}");
        assert_eq!(row["latency_median_s"].as_f64(), parse_optional(f[6]), "{ctx}: median");
        for (day, (want_rel, want_lat)) in f[7].split(',').zip(f[8].split(',')).enumerate() {
            let got_rel = row["reliability_by_day"][day].as_f64();
            match parse_optional(want_rel) {
                Some(w) => assert!(
                    (got_rel.unwrap() - w).abs() < 1e-12,
                    "{ctx}: day {day} reliability {got_rel:?} != {w}"
                ),
                None => assert_eq!(got_rel, None, "{ctx}: day {day}"),
            }
            let got_lat = row["latency_median_by_day"][day].as_f64();
            assert_eq!(got_lat, parse_optional(want_lat), "{ctx}: day {day} median");
        }
        checked += 1;
    }
    let total = json["lists"]["mix"].as_array().unwrap().len()
        + json["lists"]["cpunk"].as_array().unwrap().len();
    assert_eq!(checked, total, "{name}: every listed remailer is in expected.tsv");
}

#[test]
fn echolot_model_writes_echolots_files_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    for name in DATASETS {
        let db = imported_db(dir.path(), name);
        let now = now_of(name).to_string();
        for (folder, private) in [("results", false), ("results.private", true)] {
            for list in ["mlist", "mlist2", "rlist", "rlist2"] {
                let mut cmd = bin();
                cmd.arg("--db")
                    .arg(&db)
                    .args(["stats", "--now", &now, "--model", "echolot", "--format", list]);
                if private {
                    cmd.arg("--private");
                }
                let got = run_ok(&mut cmd);
                let want =
                    std::fs::read_to_string(vectors(name).join(folder).join(format!("{list}.txt")))
                        .unwrap();
                assert_eq!(got, want, "{name}/{folder}/{list}.txt differs");
            }
        }
    }
}

#[test]
fn broken_chains_appear_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported_db(dir.path(), "example");
    let json = stats_json(&db, now_of("example"), "echolot");
    assert_eq!(json["broken_chains"]["mix"], serde_json::json!(["(* gone)", "(fast *)"]));
    assert_eq!(json["broken_chains"]["cpunk"], serde_json::json!([]));
}

/// An independent, deliberately naive reading of the seed methodology, straight from the CSV:
/// every ping of the last 12 days weighs w1 * w2; returned pings have w2 = 1; an outstanding
/// ping has w2 = the fraction of the remailer's returned latencies within
/// (now - sent - 15 min) * 0.8 (0 if that is negative, 1 if nothing returned).
fn methodology_oracle(pings_csv: &str, now: i64, address: &str, types: &[&str]) -> f64 {
    let weights = [0.5, 1.0, 1.0, 1.0, 1.0, 0.9, 0.8, 0.5, 0.3, 0.2, 0.2, 0.1];
    let mut rows = Vec::new();
    for line in pings_csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f[0] != address || !types.contains(&f[1]) {
            continue;
        }
        let sent: i64 = f[2].parse().unwrap();
        let received: Option<i64> = f[3].parse().ok().filter(|&r| r <= now);
        if sent > now || sent <= now - 12 * 86400 {
            continue;
        }
        rows.push((sent, received));
    }
    let latencies: Vec<i64> = rows.iter().filter_map(|&(s, r)| r.map(|r| r - s)).collect();
    let (mut num, mut den) = (0.0, 0.0);
    for &(sent, received) in &rows {
        let w1 = weights[((now - sent) / 86400) as usize];
        if received.is_some() {
            num += w1;
            den += w1;
        } else {
            let mod_age = ((now - sent) as f64 - 900.0) * 0.8;
            let w2 = if mod_age < 0.0 {
                0.0
            } else if latencies.is_empty() {
                1.0
            } else {
                latencies.iter().filter(|&&l| l as f64 <= mod_age).count() as f64
                    / latencies.len() as f64
            };
            den += w1 * w2;
        }
    }
    if den > 0.0 { num / den } else { 0.0 }
}

#[test]
fn methodology_model_gives_the_seed_formulas_numbers() {
    let dir = tempfile::tempdir().unwrap();
    for name in DATASETS {
        let db = imported_db(dir.path(), name);
        let csv = std::fs::read_to_string(vectors(name).join("pings.csv")).unwrap();
        // Several instants, so that outstanding pings of every age are exercised.
        for offset in [0, -3600, -40_000, 86_400] {
            let now = now_of(name) + offset;
            let json = stats_json(&db, now, "methodology");
            assert_eq!(json["model"], "methodology");
            for (list, types) in
                [("mix", &["mix"][..]), ("cpunk", &["cpunk-rsa", "cpunk-dsa", "cpunk-clear"][..])]
            {
                for row in json["lists"][list].as_array().unwrap() {
                    let address = row["address"].as_str().unwrap();
                    let want = methodology_oracle(&csv, now, address, types);
                    let got = row["reliability"].as_f64().unwrap();
                    assert!(
                        (got - want).abs() < 1e-12,
                        "{name} {list} {address} at {now}: {got} != {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn stats_as_of_an_earlier_instant_ignores_later_pings() {
    // An hour before the vector's instant, the newest pings do not exist yet: the result
    // must equal a database that never saw them.
    let dir = tempfile::tempdir().unwrap();
    let name = "example";
    let db = imported_db(dir.path(), name);
    let earlier = now_of(name) - 3600;
    let v = vectors(name);
    let trimmed = dir.path().join("trimmed.csv");
    let csv = std::fs::read_to_string(v.join("pings.csv")).unwrap();
    let kept: Vec<String> = csv
        .lines()
        .filter(|l| {
            l.split(',').nth(2).and_then(|s| s.parse::<i64>().ok()).is_none_or(|s| s <= earlier)
        })
        .map(|l| {
            // Returns after `earlier` have not arrived yet.
            let f: Vec<&str> = l.split(',').collect();
            match f[3].parse::<i64>() {
                Ok(r) if r > earlier => format!("{},{},{},", f[0], f[1], f[2]),
                _ => l.to_string(),
            }
        })
        .collect();
    std::fs::write(&trimmed, kept.join("\n")).unwrap();
    let db2 = dir.path().join("trimmed.sqlite");
    run_ok(
        bin()
            .arg("--db")
            .arg(&db2)
            .arg("import-pings")
            .arg("--pings")
            .arg(&trimmed)
            .arg("--remailers")
            .arg(v.join("remailers.csv"))
            .arg("--chains")
            .arg(v.join("chains.csv")),
    );
    for model in ["echolot", "methodology"] {
        let a = stats_json(&db, earlier, model);
        let b = stats_json(&db2, earlier, model);
        assert_eq!(a["lists"], b["lists"], "{model}");
    }
}
