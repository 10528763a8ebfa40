//! `fathometer simulate` and `fathometer demo` through the real binary: seeded runs with every
//! fault keep every invariant; a deliberately injected bug is caught and reported with the
//! seed that replays it; a seed replays exactly, crashes included; the demo serves a populated
//! statistics site within a minute.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::http::{free_port, get};
use crate::support::{bin, run};

fn simulate(args: &[&str]) -> (bool, serde_json::Value, String) {
    let out = run(bin().arg("simulate").arg("--json").args(args));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    (out.status.success(), json, stderr)
}

#[test]
fn seeded_runs_with_every_fault_keep_every_invariant() {
    let mut crashes = 0;
    for seed in ["1", "2", "3", "4"] {
        let (ok, json, stderr) =
            simulate(&["--days", "2", "--remailers", "4", "--seed", seed, "--faults", "all"]);
        assert!(ok, "seed {seed}: {json:#}\n{stderr}");
        assert_eq!(json["violations"], serde_json::json!([]), "seed {seed}");
        assert!(json["pings_sent"].as_u64().unwrap() > 20, "seed {seed}: {json:#}");
        assert!(json["pings_returned"].as_u64().unwrap() > 10, "seed {seed}: {json:#}");
        crashes += json["crashes"].as_u64().unwrap();
    }
    assert!(crashes > 0, "no run crashed the pinger: the crash fault was not exercised");
}

#[test]
fn an_injected_bug_is_caught_and_the_seed_given() {
    // The bug: a duplicate return recorded as a return.
    let (ok, json, stderr) = simulate(&[
        "--days",
        "2",
        "--remailers",
        "4",
        "--seed",
        "5",
        "--faults",
        "duplicates",
        "--inject-bug",
        "count-duplicates",
    ]);
    assert!(!ok, "the run passed with the bug in: {json:#}");
    let violations = json["violations"].as_array().unwrap();
    assert!(violations.iter().any(|v| v["rule"] == "counted once"), "{json:#}");
    assert!(stderr.contains("--seed 5") && stderr.contains("--faults duplicates"), "{stderr}");
    // Without the bug the same run is clean.
    let (ok, json, _) =
        simulate(&["--days", "2", "--remailers", "4", "--seed", "5", "--faults", "duplicates"]);
    assert!(ok, "{json:#}");
    assert!(json["mails_duplicate"].as_u64().unwrap() > 0, "no duplicate was delivered: {json:#}");
}

#[test]
fn charging_the_pingers_own_failure_is_caught_by_the_recomputed_figures() {
    // The bug: pings sent while the pinger's own inbound mail was lost are charged to the
    // remailers. Only the recomputation of the figures from the ground truth sees it.
    let args = ["--days", "3", "--remailers", "4", "--seed", "1", "--faults", "inbound"];
    let (ok, json, stderr) =
        simulate(&[&args[..], &["--inject-bug", "charge-own-failure"]].concat());
    assert!(!ok, "the run passed with the bug in: {json:#}");
    let violations = json["violations"].as_array().unwrap();
    assert!(violations.iter().any(|v| v["rule"] == "reliability recomputed"), "{json:#}");
    assert!(stderr.contains("--inject-bug charge-own-failure"), "{stderr}");
    let (ok, json, _) = simulate(&args);
    assert!(ok, "{json:#}");
    assert!(json["lost_inbound"].as_u64().unwrap() > 0, "no inbound mail was lost: {json:#}");
}

#[test]
fn a_seed_replays_exactly_with_every_fault() {
    // Crashes included: the kill lands at the same hand-over of the same pass every time.
    // Ten remailers: every profile, the corrupting and the bouncing one included.
    let args = ["--days", "1", "--remailers", "10", "--seed", "2", "--faults", "all"];
    let (_, mut first, _) = simulate(&args);
    let (_, mut second, _) = simulate(&args);
    for run in [&mut first, &mut second] {
        run.as_object_mut().unwrap().remove("wall_seconds");
    }
    assert_eq!(first, second, "the same seed ran differently");
    for key in ["crashes", "mta_outage_steps", "mailbox_outage_steps", "pings_returned"] {
        assert!(first[key].as_u64().unwrap() > 0, "{key} never happened: {first:#}");
    }
    for key in ["mails_corrupted", "mails_bounced"] {
        assert!(first[key].as_u64().unwrap() > 0, "no {key}: {first:#}");
    }
    assert_eq!(first["fingerprint"].as_str().unwrap().len(), 64);
    let other = ["--days", "1", "--remailers", "10", "--seed", "3", "--faults", "all"];
    let (_, third, _) = simulate(&other);
    assert_ne!(first["fingerprint"], third["fingerprint"], "the fingerprint ignores the run");
}

#[test]
fn the_demo_serves_a_populated_site_within_a_minute() {
    let port = free_port();
    let mut demo = bin()
        .args(["demo", "--listen", &format!("127.0.0.1:{port}"), "--days", "2", "--speed", "600"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut state_dir = None;
    let url = loop {
        let line = lines.next().expect("the demo printed its URL").unwrap();
        if let Some(dir) = line.split("state in ").nth(1) {
            state_dir = Some(std::path::PathBuf::from(dir.trim()));
        }
        if let Some(url) = line.split("serving the statistics at ").nth(1) {
            break url.split_whitespace().next().unwrap().to_owned();
        }
    };
    assert_eq!(url, format!("http://127.0.0.1:{port}/"));
    let index = get(port, "/", "");
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
    assert_eq!(index.status, 200);
    let html = index.text();
    for nick in ["austria", "bunker", "cloaked", "dizum", "egress"] {
        assert!(html.contains(nick), "{nick} missing from the index");
    }
    let mlist = get(port, "/mlist2.txt", "").text();
    let rows: Vec<&str> = mlist.lines().filter(|l| l.contains('%')).collect();
    assert!(rows.len() >= 10, "{mlist}");
    // Histories are not empty: some hour of the last day has a digit.
    assert!(
        rows.iter().any(|r| r
            .split_whitespace()
            .nth(1)
            .is_some_and(|h| h.chars().any(|c| c.is_ascii_digit()))),
        "{mlist}"
    );

    // Ctrl-C stops it and removes its state.
    let sent = std::process::Command::new("kill").arg("-INT").arg(demo.id().to_string()).status();
    assert!(sent.is_ok_and(|s| s.success()));
    let status = demo.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let dir = state_dir.expect("the demo named its state directory");
    assert!(!dir.exists(), "{} left behind", dir.display());
}
