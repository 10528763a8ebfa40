//! `fathometer consensus` through the real binary, on pingers' published files: Echolot's own
//! lists (the vectors) and copies that disagree. The agreed lists are read by the Mixmaster
//! client double (`mixmaster_client`) and carry the medians; one pinger is fetched over HTTP
//! from a real web server; a wild pinger is named as an
//! outlier; a remailer whose key differs between pingers is flagged with who holds what; a
//! stranger's garbage file is refused without stopping the rest; pingers that go stale drop
//! out, and below the quorum nothing is written.

use std::path::Path;

use crate::mixmaster_client::client_mlist;
use crate::support::http::free_port;
use crate::support::{bin, run, vectors};

/// The example's generation instant, and ten minutes later.
const GENERATED: i64 = 1_700_000_000;

fn pinger(dir: &Path, name: &str, edit: impl Fn(String) -> String, key_id: &str) {
    let to = dir.join(name);
    std::fs::create_dir_all(&to).unwrap();
    for file in ["mlist2.txt", "rlist2.txt"] {
        let text = std::fs::read_to_string(vectors("example/results").join(file)).unwrap();
        std::fs::write(to.join(file), edit(text)).unwrap();
    }
    std::fs::write(
        to.join("pubring.mix"),
        format!("fast fast@one.example {key_id} 2:3.0.2d C 2023-01-01 2033-01-01\n"),
    )
    .unwrap();
}

/// A real web server (Python's) serving a pinger's directory, as its base URL would.
struct Served(std::process::Child, u16);

impl Served {
    fn start(dir: &Path) -> Served {
        let port = free_port();
        let child = std::process::Command::new("/usr/bin/python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "the web server did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Served(child, port)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn consensus(dir: &Path, names: &[&str], now: i64, out: &Path) -> (i32, String, String) {
    consensus_with(dir, names, &[], now, out)
}

fn consensus_with(
    dir: &Path,
    names: &[&str],
    urls: &[(&str, u16)],
    now: i64,
    out: &Path,
) -> (i32, String, String) {
    let mut cmd = bin();
    cmd.arg("consensus").arg("--now").arg(now.to_string()).arg("--out").arg(out);
    for n in names {
        cmd.arg("--pinger").arg(format!("{n}={}", dir.join(n).display()));
    }
    for (n, port) in urls {
        cmd.arg("--pinger").arg(format!("{n}=http://127.0.0.1:{port}/"));
    }
    let output = run(&mut cmd);
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn three_pingers_agree_one_wild_one_with_another_key_and_a_minority_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let same = "0123456789abcdef0123456789abcdef";
    pinger(dir.path(), "echolot", |t| t, same);
    pinger(dir.path(), "close", |t| t.replace("64.7%", "60.0%"), same);
    pinger(
        dir.path(),
        "wild",
        |t| t.replace("100.0%  D M", "  2.0%  D M"),
        "ffff456789abcdef0123456789abcdef",
    );
    // A stranger serving garbage: refused, the others go on.
    std::fs::create_dir_all(dir.path().join("garbage")).unwrap();
    std::fs::write(dir.path().join("garbage/mlist2.txt"), "<html>\u{1b}[2J404</html>").unwrap();

    let out = dir.path().join("consensus");
    // Echolot's lists come over HTTP from a real web server, the others from directories.
    let served = Served::start(&dir.path().join("echolot"));
    let names = ["close", "wild", "garbage"];
    let (code, stdout, stderr) =
        consensus_with(dir.path(), &names, &[("echolot", served.1)], GENERATED + 600, &out);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains("garbage: mlist2.txt refused: line 1"), "{stderr}");
    assert!(
        !stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'),
        "escape reached the terminal"
    );
    assert!(stdout.contains("3 fresh of 3 pingers, quorum 3: agreed"), "{stdout}");
    assert!(stdout.contains("outlier: wild says 2.0%"), "{stdout}");
    assert!(stdout.contains("KEY DISAGREEMENT fast@one.example (Mix keys):"), "{stdout}");
    assert!(stdout.contains("ffff456789abcdef0123456789abcdef held by wild"), "{stdout}");
    assert!(stdout.contains(&format!("{same} held by close, echolot")), "{stdout}");

    // What a Mixmaster client reads from the agreed mlist.txt: the medians.
    let mlist = std::fs::read_to_string(out.join("mlist.txt")).unwrap();
    let rows = client_mlist(&mlist, &["fast", "gone", "lossy"]);
    assert_eq!(rows["fast"].reliability, 10000, "100, 100, 2 → 100:\n{mlist}");
    assert_eq!(rows["fast"].latency_secs, 600);
    assert_eq!(rows["lossy"].reliability, 6470, "64.7, 60.0, 64.7 → 64.7");
    assert_eq!(rows["lossy"].latency_secs, 2 * 3600 + 60);
    // The broken chains every pinger lists, in the section the client reads.
    assert!(mlist.contains("Broken type-II remailer chains:\n(* gone)\n(fast *)\n"), "{mlist}");
    for file in ["mlist2.txt", "rlist.txt", "rlist2.txt"] {
        assert!(out.join(file).exists(), "{file}");
    }

    // Nine hours later, only a pinger regenerated since is fresh: below the quorum of 3.
    let later = dir.path().join("later");
    let fresh_date = "Generated: Wed 15 Nov 2023 07:00:00 GMT";
    pinger(
        dir.path(),
        "fresh",
        |t| t.replace("Generated: Tue 14 Nov 2023 22:13:20 GMT", fresh_date),
        same,
    );
    let (code, stdout, _) =
        consensus(dir.path(), &["echolot", "close", "fresh"], GENERATED + 9 * 3600, &later);
    assert_eq!(code, 2, "{stdout}");
    assert!(stdout.contains("NOT AGREED"), "{stdout}");
    assert!(stdout.contains("stale: echolot (generated 9 hours ago)"), "{stdout}");
    assert!(!later.join("mlist.txt").exists(), "a minority's view was published");
}

/// The daemon with `[consensus]`: two peers served by a real web server (their lists dated
/// now; one holds another key for a remailer) and one that does not answer. Within seconds
/// the agreed lists are in `consensus/` of the results, the Mixmaster client double reads the
/// medians from them, the silent peer's failure is recorded with the reason, the key
/// disagreement is logged, and stopping the daemon stops the task.
#[test]
fn the_daemon_fetches_its_peers_and_publishes_the_agreed_lists() {
    use crate::support::{start_daemon, state_db, stop_with_log, write_config};
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    let dated = |t: String| {
        t.replace(
            "Generated: Tue 14 Nov 2023 22:13:20 GMT",
            &format!("Generated: {}", fathometer::publish::lists::list_date(now)),
        )
    };
    pinger(dir.path(), "one", dated, "0123456789abcdef0123456789abcdef");
    pinger(
        dir.path(),
        "two",
        |t| dated(t).replace("64.7%", "60.0%"),
        "ffff456789abcdef0123456789abcdef",
    );
    let web = Served::start(dir.path());
    let silent = free_port();
    let http_port = free_port();
    let config = write_config(
        dir.path(),
        &format!("127.0.0.1:{http_port}"),
        &format!(
            "[consensus]\npeers = [\"http://127.0.0.1:{p}/one\", \"http://127.0.0.1:{p}/two/\", \
             \"http://127.0.0.1:{silent}\"]\ninterval_secs = 3\nquorum = 2\n\
             [stats]\nbuild_interval_secs = 1\n[discovery]\nrequests = false\n",
            p = web.1
        ),
    );
    // A remailer this pinger knows, whose key the peers disagree on: a status event.
    crate::support::run_ok(crate::support::fathometer(&config).args(["add", "fast@one.example"]));
    let mut daemon = start_daemon(&config);
    let agreed = dir.path().join("state/results/consensus/mlist.txt");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !agreed.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Served where a client's allpingers entry can point, with the report in the API.
    let served_mlist = crate::support::http::get(http_port, "/consensus/mlist.txt", "");
    let mlist_then = std::fs::read_to_string(&agreed).unwrap_or_default();
    let api = crate::support::http::get(http_port, "/api/v1/consensus", "");
    let page = crate::support::http::get(http_port, "/consensus/index.html", "").text();
    // The round reaches /metrics right after its files.
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = crate::support::http::get(http_port, "/metrics", "").text();
        if metrics.contains("fathometer_consensus_agreed") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let event = || -> Option<String> {
        state_db(dir.path())
            .query_row("SELECT detail FROM events WHERE kind = 'keys-disagree'", [], |r| r.get(0))
            .ok()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while event().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (_, log) = stop_with_log(&mut daemon, std::time::Duration::from_secs(10));
    let detail = event().unwrap_or_else(|| panic!("no keys-disagree event:\n{log}"));
    assert!(detail.contains("ffff456789abcdef0123456789abcdef at"), "{detail}");
    let mlist = std::fs::read_to_string(&agreed).unwrap_or_else(|_| panic!("no consensus:\n{log}"));
    assert_eq!(served_mlist.status, 200);
    assert_eq!(served_mlist.body, mlist_then.as_bytes());
    let silent_url = format!("http://127.0.0.1:{silent}");
    for line in [
        format!("fathometer_peer_up{{peer=\"{silent_url}\"}} 0"),
        format!("fathometer_peer_up{{peer=\"http://127.0.0.1:{}/one\"}} 1", web.1),
        "fathometer_consensus_agreed{list=\"mix\"} 1".to_owned(),
        "fathometer_consensus_key_disagreements 1".to_owned(),
    ] {
        assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    }
    assert!(
        metrics.contains("fathometer_peer_list_age_seconds{peer=\"http://127.0.0.1:"),
        "{metrics}"
    );
    assert!(page.contains("Consensus of the pinger network"), "{page}");
    let silent_shown = format!("127.0.0.1:{silent}</td><td>mlist2.txt</td><td>never");
    assert!(page.contains(&silent_shown) && page.contains("in a row"), "the silent peer: {page}");
    assert!(page.contains("fast@one.example"), "the key disagreement: {page}");
    let report: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
    assert_eq!(report["mix"]["agreed"], true, "{report:#}");
    assert_eq!(
        report["mix"]["fresh"].as_array().unwrap().len(),
        3,
        "ours and two peers: {report:#}"
    );
    assert_eq!(report["key_disagreements"][0]["address"], "fast@one.example");
    let silent_peer = format!("http://127.0.0.1:{silent}");
    assert!(
        report["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["peer"] == silent_peer.as_str() && p["failures"].as_i64() > Some(0)),
        "{report:#}"
    );
    let rows = client_mlist(&mlist, &["fast", "gone", "lossy"]);
    assert_eq!(rows["fast"].reliability, 10000, "{mlist}");
    assert_eq!(rows["gone"].reliability, 6670, "{mlist}");
    assert!(
        (6000..=6470).contains(&rows["lossy"].reliability),
        "the median of 64.7 and 60.0: {mlist}"
    );
    assert!(dir.path().join("state/results/consensus/rlist2.txt").exists());
    assert!(log.contains("pingers hold different keys"), "{log}");
    let error: String = state_db(dir.path())
        .query_row(
            "SELECT error FROM peer_files WHERE peer = ?1 AND file = 'mlist2.txt'",
            [format!("http://127.0.0.1:{silent}")],
            |r| r.get(0),
        )
        .unwrap();
    assert!(error.contains("connecting to 127.0.0.1"), "{error}");
    let held: i64 = state_db(dir.path())
        .query_row("SELECT COUNT(*) FROM peer_files WHERE body IS NOT NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(held, 6, "two peers, three files each");
}

/// Key consistency for type I: the pingers' `pgp-all.asc` (OpenPGP keyrings made by real
/// GnuPG). A remailer with an RSA and a DSA key at every pinger agrees; a pinger that hands
/// out another key for it is named; a keyring that is no keyring is refused and the rest go on.
#[test]
fn openpgp_keys_that_differ_between_pingers_are_flagged_with_who_holds_what() {
    use crate::support::gpg::{GpgHome, KeyShape};
    let dir = tempfile::tempdir().unwrap();
    let same = "0123456789abcdef0123456789abcdef";
    for name in ["echolot", "close", "other", "broken"] {
        pinger(dir.path(), name, |t| t, same);
    }
    let gpg = GpgHome::new();
    let rsa = gpg.generate(KeyShape::Rsa1024, "pgp", "pgp@two.example", "S3 S2");
    let dsa = gpg.generate(KeyShape::DsaElg2048, "pgp", "pgp@two.example", "S3 S2");
    let intruder = GpgHome::new().generate(KeyShape::Rsa1024, "pgp", "pgp@two.example", "S3 S2");
    let both = format!("{rsa}\n{dsa}");
    std::fs::write(dir.path().join("echolot/pgp-all.asc"), &both).unwrap();
    std::fs::write(dir.path().join("close/pgp-all.asc"), format!("{dsa}\n{rsa}")).unwrap();
    std::fs::write(dir.path().join("other/pgp-all.asc"), format!("{intruder}\n{dsa}")).unwrap();
    std::fs::write(dir.path().join("broken/pgp-all.asc"), "<html>404</html>\n").unwrap();
    let generated = GENERATED + 600;
    let out = dir.path().join("out");
    let names = ["echolot", "close", "other", "broken"];
    let (code, stdout, stderr) = consensus(dir.path(), &names, generated, &out);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains("broken: pgp-all.asc refused: no readable OpenPGP key"), "{stderr}");
    assert!(stdout.contains("KEY DISAGREEMENT pgp@two.example (OpenPGP keys):"), "{stdout}");
    let held: Vec<&str> = stdout.lines().filter(|l| l.contains(" held by ")).collect();
    assert_eq!(held.len(), 2, "{stdout}");
    assert!(held[0].ends_with("held by close, echolot"), "{stdout}");
    assert!(held[0].contains(" + "), "both keys, as a set: {stdout}");
    assert!(held[1].ends_with("held by other"), "{stdout}");
    // Without the intruder, the pingers agree whatever the order of their keyrings.
    let (_, agreed, _) = consensus(dir.path(), &["echolot", "close"], generated, &out);
    assert!(!agreed.contains("KEY DISAGREEMENT"), "{agreed}");
}
