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

/// The remailers of Echolot's example lists: nick, address, capability line, and the vector
/// Mix key each stands in with.
const NETWORK: [(&str, &str, &str, &str); 3] = [
    ("fast", "fast@one.example", "mix middle klen1000", "testmix1"),
    ("gone", "gone@three.example", "cpunk mix", "testmix2"),
    ("lossy", "lossy@two.example", "mix", "testmix3"),
];

/// A vector remailer's `pubring.mix` entry under another nick and address.
fn mix_entry(testmix: &str, nick: &str, address: &str) -> String {
    let path =
        format!("{}/tests/vectors/mixmaster/keys/{testmix}.key.txt", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap().replacen(
        &format!("{testmix} {testmix}@localhost"),
        &format!("{nick} {address}"),
        1,
    )
}

/// One real fathometer daemon of the test network, with its own history, its HTTP port and
/// the file its clock offset is read from.
struct Pinger {
    dir: tempfile::TempDir,
    port: u16,
    offset: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl Pinger {
    /// A daemon `name` whose store holds, per remailer of [`NETWORK`], `(sent, returned)`
    /// type II pings over the last two days (returns after `latency` seconds), and the
    /// remailers' keys (fast's from `fast_key`). `consensus` is its `[consensus]` table.
    fn start(
        name: &str,
        history: [(u32, u32); 3],
        latency: i64,
        fast_key: &str,
        consensus: &str,
    ) -> Pinger {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let offset = dir.path().join("clock-offset");
        std::fs::write(&offset, "0").unwrap();
        let config = dir.path().join("fathometer.toml");
        std::fs::write(
            &config,
            format!(
                "[pinger]\naddress = \"{name}@localhost\"\nname = \"{name}\"\nstate_dir = \"state\"\n\
                 [mailbox]\nmaildir = \"state/Maildir\"\n[smtp]\nhost = \"127.0.0.1\"\nport = 9\n\
                 [http]\nlisten = \"127.0.0.1:{port}\"\n\
                 [schedule]\nping_types = [\"cpunk-clear\"]\nchain_pings = false\n\
                 [discovery]\nrequests = false\nauto_add_min = 0\n[replay_probe]\nenabled = false\n\
                 [stats]\nbuild_interval_secs = 1\n{consensus}"
            ),
        )
        .unwrap();
        let ring = dir.path().join("pubring.mix");
        let entries: Vec<String> = NETWORK
            .iter()
            .map(|(nick, address, _, key)| {
                mix_entry(if *nick == "fast" { fast_key } else { key }, nick, address)
            })
            .collect();
        std::fs::write(&ring, entries.concat()).unwrap();
        crate::support::run_ok(
            crate::support::fathometer(&config).arg("import-keys").arg("--add").arg(&ring),
        );
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
                as i64;
        let db = crate::support::state_db(dir.path());
        for ((nick, address, caps, _), (sent, returned)) in NETWORK.iter().zip(history) {
            let caps = format!("$remailer{{\"{nick}\"}} = \"<{address}> {caps}\";");
            db.execute(
                "UPDATE remailers SET nick = ?2, caps = ?3 WHERE address = ?1",
                rusqlite::params![address, nick, caps],
            )
            .unwrap();
            let (remailer, key): (i64, i64) = db
                .query_row(
                    "SELECT r.id, k.id FROM remailers r JOIN keys k ON k.remailer_id = r.id
                     WHERE r.address = ?1 AND k.ping_type = 'mix'",
                    [address],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            for i in 0..sent {
                let at = now - 2 * 86_400 + i64::from(i) * 1200;
                let back = i < returned;
                db.execute(
                    "INSERT INTO pings (remailer1_id, type1, key1_id, slot_time, sent_at,
                                        returned_at, outcome, created_at)
                     VALUES (?1, 'mix', ?2, ?3, ?3, ?4, ?5, ?3)",
                    rusqlite::params![
                        remailer,
                        key,
                        at,
                        back.then_some(at + latency),
                        if back { "returned" } else { "sent" }
                    ],
                )
                .unwrap();
            }
        }
        drop(db);
        let child = crate::support::fathometer(&config)
            .env("FATHOMETER_TEST_CLOCK_OFFSET_FILE", &offset)
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        Pinger { dir, port, offset, child: Some(child) }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its published v2 list (its HTTP server), once it has one with rows.
    fn mlist2(&self) -> fathometer::model::peer::PeerList {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let up = std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            let r = up.then(|| crate::support::http::get(self.port, "/mlist2.txt", ""));
            if let Some(r) = r
                && r.status == 200
                && let Ok(list) = fathometer::ingest::peer_list::parse_list_v2(&r.text())
                && list.rows.len() == 3
            {
                return list;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} never listed its remailers",
                self.base()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    fn consensus(&self) -> serde_json::Value {
        let r = crate::support::http::get(self.port, "/api/v1/consensus", "");
        serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null)
    }

    /// Waits until its consensus report satisfies `ok`; the report last seen.
    fn wait_for(&self, what: &str, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let report = self.consensus();
            if ok(&report) {
                return report;
            }
            assert!(std::time::Instant::now() < deadline, "never {what}: {report:#}");
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }

    fn stop(&mut self) -> String {
        match self.child.take() {
            Some(mut child) => {
                crate::support::stop_with_log(&mut child, std::time::Duration::from_secs(10)).1
            }
            None => String::new(),
        }
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A pinger network end to end over loopback HTTP: three real fathometer daemons with
/// different histories for the same remailers, plus a web server serving Echolot's own lists,
/// found through an `allpingers.txt`. The agreed lists carry the medians and a Mixmaster
/// client reads them; the daemon whose key for one remailer differs is named; a pinger that
/// goes away drops out once its snapshot ages, and below the quorum nothing is published as
/// agreed.
#[test]
fn a_network_of_three_daemons_and_echolot_agrees_and_a_minority_publishes_nothing() {
    let b = Pinger::start("pinger-b", [(100, 100), (100, 60), (100, 70)], 540, "testmix1", "");
    let c = Pinger::start("pinger-c", [(100, 90), (100, 70), (100, 40)], 780, "testmix4", "");
    let mut c = c;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    let web_dir = tempfile::tempdir().unwrap();
    let echolot_at = |t: i64| {
        let dated = |text: String| {
            text.replace(
                "Generated: Tue 14 Nov 2023 22:13:20 GMT",
                &format!("Generated: {}", fathometer::publish::lists::list_date(t)),
            )
        };
        let to = web_dir.path().join("echolot");
        std::fs::create_dir_all(&to).unwrap();
        for file in ["mlist2.txt", "rlist2.txt", "mlist.txt", "rlist.txt"] {
            let text = std::fs::read_to_string(vectors("example/results").join(file)).unwrap();
            std::fs::write(to.join(file), dated(text)).unwrap();
        }
    };
    echolot_at(now);
    let web = Served::start(web_dir.path());
    // The community index: our own stanza (left out), the two other daemons, Echolot.
    let stanza = |name: &str, base: &str| {
        fathometer::publish::allpingers_stanza(name, &format!("{base}/")).unwrap()
    };
    let a_port_dir = tempfile::tempdir().unwrap();
    let index = a_port_dir.path().join("allpingers.txt");
    // A's port is only known once it starts: its stanza is written with a placeholder host
    // and fixed below before the first round reads it.
    let consensus = format!(
        "[consensus]\nallpingers = \"{}\"\ninterval_secs = 2\nquorum = 3\n",
        index.display()
    );
    let a =
        Pinger::start("pinger-a", [(100, 95), (100, 65), (100, 60)], 600, "testmix1", &consensus);
    std::fs::write(
        &index,
        [
            stanza("pinger-a", &a.base()),
            stanza("pinger-b", &b.base()),
            stanza("pinger-c", &c.base()),
            stanza("echolot", &format!("http://127.0.0.1:{}/echolot", web.1)),
        ]
        .concat(),
    )
    .unwrap();

    // Every daemon's own view, as its clients read it.
    let views: Vec<fathometer::model::peer::PeerList> =
        [&a, &b, &c].iter().map(|p| p.mlist2()).collect();
    let report = a.wait_for("agreed by all four", |r| {
        r["mix"]["agreed"] == true && r["mix"]["fresh"].as_array().is_some_and(|f| f.len() == 4)
    });
    let fresh: Vec<&str> =
        report["mix"]["fresh"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(fresh.contains(&b.base().as_str()) && fresh.contains(&c.base().as_str()), "{fresh:?}");
    assert!(!fresh.contains(&a.base().as_str()), "our own stanza is us, not a peer: {fresh:?}");
    // C hands out another key for fast: named, with who holds what.
    let keys = report["key_disagreements"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{report:#}");
    assert_eq!(keys[0]["address"], "fast@one.example");
    assert_eq!(keys[0]["family"], "mix");
    let holders = keys[0]["holders"].as_array().unwrap();
    let lone = holders.iter().find(|h| h[1].as_array().unwrap().len() == 1).unwrap();
    assert_eq!(lone[1][0], c.base().as_str(), "{holders:?}");

    // The agreed mlist.txt as a Mixmaster client reads it: each remailer between the middle
    // two of the four pingers' figures.
    let agreed_file = a.dir.path().join("state/results/consensus/mlist.txt");
    let mlist = std::fs::read_to_string(&agreed_file).unwrap();
    let rows = client_mlist(&mlist, &["fast", "gone", "lossy"]);
    let echolot = fathometer::ingest::peer_list::parse_list_v2(
        &std::fs::read_to_string(web_dir.path().join("echolot/mlist2.txt")).unwrap(),
    )
    .unwrap();
    for nick in ["fast", "gone", "lossy"] {
        let mut figures: Vec<f64> = views
            .iter()
            .chain([&echolot])
            .map(|l| l.rows.iter().find(|r| r.nick == nick).unwrap().reliability)
            .collect();
        figures.sort_by(f64::total_cmp);
        let shown = f64::from(rows[nick].reliability) / 100.0;
        assert!(
            (figures[1] - 0.01..=figures[2] + 0.01).contains(&shown),
            "{nick}: {shown} is not the median of {figures:?}:\n{mlist}"
        );
    }
    // The daemons do disagree: their own figures differ.
    let gone: Vec<f64> = views
        .iter()
        .map(|l| l.rows.iter().find(|r| r.nick == "gone").unwrap().reliability)
        .collect();
    assert!(gone[0] != gone[1] && gone[1] != gone[2], "{gone:?}");

    // C goes away. Nine hours on (A's and B's clocks; Echolot's list re-dated), its last list
    // is too old: it drops out and the other three still agree.
    let c_base = c.base();
    c.stop();
    for p in [&a, &b] {
        std::fs::write(&p.offset, "32400").unwrap();
    }
    echolot_at(now + 32_400);
    let report = a.wait_for("C dropped out", |r| {
        r["mix"]["agreed"] == true
            && r["mix"]["fresh"].as_array().is_some_and(|f| f.len() == 3)
            && r["mix"]["stale"]
                .as_array()
                .is_some_and(|s| s.iter().any(|x| x[0] == c_base.as_str()))
    });
    assert!(agreed_file.exists(), "{report:#}");

    // Echolot's list goes stale too: two fresh pingers are below the quorum of three, and
    // nothing is published as agreed (the agreed files are removed, not left stale).
    echolot_at(now - 86_400);
    let report = a.wait_for("below the quorum", |r| r["mix"]["agreed"] == false);
    assert_eq!(report["mix"]["fresh"].as_array().unwrap().len(), 2, "{report:#}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while agreed_file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!agreed_file.exists(), "an agreed list outlived the agreement");
    let served = crate::support::http::get(a.port, "/consensus/mlist.txt", "");
    assert_eq!(served.status, 404);
    let mut a = a;
    let log = a.stop();
    assert!(log.contains("consensus computed"), "{log}");
    drop(b);
}
