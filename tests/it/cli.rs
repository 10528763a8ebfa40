//! End-to-end tests of the command line: they start the real binary.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn example_config() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml")
}

#[test]
fn example_config_checks_clean() {
    let out = run(bin().arg("check-config").arg("--config").arg(example_config()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn unknown_key_is_reported_with_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[pinger]\naddress = \"p@localhost\"\n\n[http]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n",
    )
    .unwrap();
    let out = run(bin().arg("check-config").arg("--config").arg(&path));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":6:"), "{err}");
    assert!(err.contains("http.lisen"), "{err}");
}

#[test]
fn config_comes_from_the_environment_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[pinger]\naddress = 5\n").unwrap();
    let out = run(bin().arg("check-config").env("FATHOMETER_CONFIG", &path));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pinger.address"));
}

fn start_daemon(config: &Path) -> Child {
    bin()
        .arg("run")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("daemon starts")
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn terminate_within(mut child: Child, limit: Duration) -> std::process::ExitStatus {
    stop(&mut child, limit)
        .unwrap_or_else(|| panic!("daemon did not stop within {limit:?} of SIGTERM"))
}

#[test]
fn daemon_creates_state_schedules_pings_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // A one-day lateness makes the first tick see a whole day of slots, so every key is due.
    let config = write_config(
        dir.path(),
        "127.0.0.1:0",
        "[schedule]\ntick_secs = 1\nmax_lateness_secs = 86400\n",
    );
    let state = dir.path().join("state");
    // Seed the store with two remailers and their keys, through the same database.
    std::fs::create_dir_all(&state).unwrap();
    let pings = dir.path().join("p.csv");
    std::fs::write(&pings, "a@x.example,mix,100,160\nb@y.example,cpunk-rsa,100,\n").unwrap();
    run_ok(bin().arg("import-pings").arg("--config").arg(&config).arg("--pings").arg(&pings));

    let child = start_daemon(&config);
    let db = state.join("fathometer.sqlite");
    let secret = state.join("secret");
    wait_for("secret", Duration::from_secs(10), || secret.exists());
    wait_for("published lists", Duration::from_secs(10), || {
        state.join("results/mlist.txt").exists()
            && state.join("results.private/rlist2.txt").exists()
    });
    // Imported keys have no key material, so the sender cannot build these pings: they are
    // recorded as not sent (never charged), and nothing reaches an MTA.
    let settled = || -> i64 {
        let conn = crate::support::db_file(&db);
        conn.query_row(
            "SELECT COUNT(DISTINCT key1_id) FROM pings WHERE outcome = 'not_sent'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0)
    };
    wait_for("scheduled pings for both keys", Duration::from_secs(10), || settled() == 2);
    let status = terminate_within(child, Duration::from_secs(5));
    assert!(status.success(), "daemon exit status {status}");

    let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read(&secret).unwrap().len(), 32);
    let mlist = std::fs::read_to_string(state.join("results.private/mlist.txt")).unwrap();
    assert!(mlist.contains("a              "), "{mlist}");

    // A restart neither loses nor duplicates what was queued.
    let before = {
        let conn = crate::support::db_file(&db);
        conn.query_row("SELECT COUNT(*) FROM pings", [], |r| r.get::<_, i64>(0)).unwrap()
    };
    let last_tick = || -> Option<String> {
        crate::support::db_file(&db)
            .query_row(
                "SELECT value FROM daemon_state WHERE name = 'scheduler.last_tick'",
                [],
                |r| r.get(0),
            )
            .ok()
    };
    let tick_before = last_tick();
    // Ticks are stored in whole seconds: let one pass so the restart's tick is a new value.
    std::thread::sleep(Duration::from_millis(1100));
    let child = start_daemon(&config);
    // The restarted daemon has ticked (and so had its signal handler long installed).
    wait_for("a tick after the restart", Duration::from_secs(15), || last_tick() != tick_before);
    let status = terminate_within(child, Duration::from_secs(5));
    assert!(status.success());
    let conn = crate::support::db_file(&db);
    let after: i64 = conn.query_row("SELECT COUNT(*) FROM pings", [], |r| r.get(0)).unwrap();
    assert!(after >= before, "scheduled pings lost: {before} -> {after}");
    let sent: i64 = conn
        .query_row("SELECT COUNT(*) FROM pings WHERE sent_at > 1000", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sent, 0, "nothing but the imported history (sent at 100) was sent");
    let dupes: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM (SELECT key1_id, slot_time FROM pings GROUP BY 1, 2 HAVING COUNT(*) > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dupes, 0);
}

#[test]
fn daemon_refuses_a_secret_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "127.0.0.1:0", "");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let secret = state.join("secret");
    std::fs::write(&secret, [7u8; 32]).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(bin().arg("run").arg("--config").arg(&config));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("readable by group or others"), "{err}");
}

#[test]
fn add_list_remove_with_db_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.sqlite");
    let missing_config = dir.path().join("none.toml");
    let cmd = || {
        let mut c = bin();
        c.arg("--db").arg(&db).arg("--config").arg(&missing_config);
        c
    };
    let out = run_ok(cmd().args(["add", "alpha@a.example", "beta@b.example"]));
    assert!(out.contains("added alpha@a.example"), "{out}");
    assert!(run_ok(cmd().args(["add", "alpha@a.example"])).contains("already known"));
    let list = run_ok(cmd().arg("list"));
    assert!(list.starts_with("NICK"), "{list}");
    assert!(list.contains("alpha@a.example") && list.contains("beta@b.example"), "{list}");
    run_ok(cmd().args(["remove", "alpha@a.example"]));
    let list = run_ok(cmd().arg("list"));
    assert!(!list.contains("alpha@a.example"), "{list}");
    let out = run(cmd().args(["remove", "alpha@a.example"]));
    assert!(!out.status.success());
    let out = run(cmd().args(["add", "not-an-address"]));
    assert!(!out.status.success());
}

#[test]
fn downtime_is_added_listed_shown_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.sqlite");
    let cmd = || {
        let mut c = bin();
        c.arg("--db").arg(&db).arg("--config").arg(dir.path().join("none.toml"));
        c
    };
    run_ok(cmd().args(["add", "alpha@a.example"]));
    let out = run_ok(cmd().args([
        "downtime",
        "add",
        "alpha@a.example",
        "--until",
        "+3h",
        "--reason",
        "hardware  maintenance\t(disks)",
    ]));
    assert!(
        out.starts_with("downtime 1: alpha@a.example: unavailable because of hardware"),
        "{out}"
    );
    assert!(out.contains("maintenance (disks), expected back "), "white space folded: {out}");
    let list = run_ok(cmd().args(["downtime", "list"]));
    assert!(list.contains("alpha@a.example") && list.contains("[operator]"), "{list}");
    // Shown in the statistics of its remailer.
    let stats: serde_json::Value =
        serde_json::from_str(&run_ok(cmd().args(["stats", "--format", "json", "--private"])))
            .unwrap();
    let events = run_ok(cmd().arg("events"));
    assert!(events.contains("no events"), "nothing is recorded by `stats`: {events}");
    assert!(stats["lists"]["mix"].as_array().unwrap().is_empty(), "not pinged yet: {stats}");

    // Bad times and bounds are refused with the reason; nothing is stored.
    for (args, why) in [
        (vec!["--until", "tomorrow"], "--until"),
        (vec!["--until", "+40d"], "longer than 30 days"),
        (vec!["--until", "+1h", "--from", "+2h"], "not after the start"),
        (vec!["--until", "2001-01-01"], "has passed"),
    ] {
        let mut c = cmd();
        c.args(["downtime", "add", "alpha@a.example", "--reason", "x"]).args(&args);
        let out = run(&mut c);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{args:?}: {err}");
    }
    let out = run(cmd().args(["downtime", "add", "nobody@x", "--until", "+1h", "--reason", "x"]));
    assert!(!out.status.success());

    run_ok(cmd().args(["downtime", "remove", "1"]));
    assert!(run_ok(cmd().args(["downtime", "list"])).contains("no announced downtime"));
    assert!(run_ok(cmd().args(["downtime", "list", "--all"])).contains("(removed "));
    let out = run(cmd().args(["downtime", "remove", "1"]));
    assert!(!out.status.success(), "removed once");
}

#[test]
fn list_shows_reliability_of_imported_history() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported_db(dir.path(), "example");
    let now = now_of("example").to_string();
    let list = run_ok(bin().arg("--db").arg(&db).args(["list", "--now", &now]));
    let fast = list.lines().find(|l| l.starts_with("fast ")).expect("fast listed");
    assert!(fast.contains("100.00% 10:00"), "{fast}");
    let slow = list.lines().find(|l| l.contains("slow@four.example")).unwrap();
    assert!(slow.contains("hidden"), "{slow}");
}

#[test]
fn import_errors_name_file_and_line_and_import_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.sqlite");
    let pings = dir.path().join("p.csv");
    std::fs::write(
        &pings,
        "address,type,sent_unix,received_unix\na@x.example,mix,1,2\na@x.example,mixx,3,\n",
    )
    .unwrap();
    let out = run(bin().arg("--db").arg(&db).arg("import-pings").arg("--pings").arg(&pings));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("p.csv") && err.contains("line 3") && err.contains("mixx"), "{err}");
    let list = run_ok(bin().arg("--db").arg(&db).arg("list"));
    assert_eq!(list.lines().count(), 1, "nothing imported: {list}");
}

#[test]
fn every_command_has_help() {
    for cmd in [
        "run",
        "check-config",
        "add",
        "remove",
        "list",
        "import-pings",
        "stats",
        "downtime",
        "events",
    ] {
        let out = run_ok(bin().args([cmd, "--help"]));
        assert!(out.contains("Usage:"), "{cmd}: {out}");
    }
}

#[test]
fn ping_dry_run_prints_a_complete_encrypted_message_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "127.0.0.1:0", "");
    let gpg = crate::support::gpg::GpgHome::new();
    let key = gpg.generate(
        crate::support::gpg::KeyShape::OldDsaElg1024,
        "Test Remailer",
        "rem@x.example",
        "S3 S7 S2",
    );
    let key_file = dir.path().join("key.asc");
    std::fs::write(&key_file, key).unwrap();
    let with = |args: &[&str]| {
        let mut c = bin();
        c.arg("--config").arg(&config).args(args);
        c
    };
    run_ok(&mut with(&["add", "rem@x.example"]));
    let out = run_ok(&mut with(&["import-keys", key_file.to_str().unwrap()]));
    assert!(out.contains("added: cpunk-dsa key"), "{out}");
    let message = run_ok(&mut with(&["ping", "rem@x.example", "--dry-run"]));
    for header in ["Date: ", "Message-ID: <", "From: ", "To: rem@x.example"] {
        assert!(message.contains(header), "missing {header}: {message}");
    }
    assert!(message.contains("::\nEncrypted: PGP\n\n-----BEGIN PGP MESSAGE-----"), "{message}");
    // The remailer's key opens it, and inside is the Anon-To layer with our tagged address.
    let body = &message[message.find("-----BEGIN PGP MESSAGE-----").unwrap()..];
    let inner = gpg.decrypt(body.as_bytes()).expect("gpg decrypts the ping");
    let inner = String::from_utf8_lossy(&inner.plaintext).replace("\r\n", "\n");
    assert!(inner.starts_with("::\nAnon-To: pinger+"), "{inner}");
    assert!(inner.contains("-----BEGIN PGP MESSAGE-----"), "the payload is encrypted: {inner}");
    let conn = crate::support::state_db(dir.path());
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM pings", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 0, "--dry-run records nothing");
}

#[test]
fn allpingers_stanza_names_the_four_files_the_mixmaster_client_needs() {
    let out = run_ok(bin().arg("--config").arg(example_config()).args([
        "allpingers",
        "--base-url",
        "https://pinger.example.net/stats",
    ]));
    assert!(out.starts_with("[fathometer]\n"), "{out}");
    let value = |key: &str| {
        out.lines()
            .find_map(|l| l.split_once('=').filter(|(k, _)| k.trim() == key))
            .map(|(_, v)| v.trim().to_owned())
    };
    assert_eq!(value("base").as_deref(), Some("https://pinger.example.net/stats/"));
    for (key, file) in [
        ("mlist", "mlist.txt"),
        ("rlist", "rlist.txt"),
        ("mixring", "pubring.mix"),
        ("pgpring", "pgp-all.asc"),
    ] {
        assert_eq!(value(key), Some(format!("https://pinger.example.net/stats/{file}")), "{out}");
    }
    let refused = bin()
        .arg("--config")
        .arg(example_config())
        .args(["allpingers", "--base-url", "ftp://x"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    // The YAMN files' stanza: the lists and keyring of results/yamn/.
    let yamn = run_ok(bin().arg("--config").arg(example_config()).args([
        "allpingers",
        "--yamn",
        "--base-url",
        "https://pinger.example.net/stats",
    ]));
    assert!(yamn.starts_with("[fathometer-yamn]\n"), "{yamn}");
    for (key, file) in
        [("mlist", "mlist.txt"), ("mlist2", "mlist2.txt"), ("mixring", "pubring.mix")]
    {
        let line = format!("https://pinger.example.net/stats/yamn/{file}");
        assert!(yamn.lines().any(|l| l.starts_with(key) && l.ends_with(&line)), "{key}: {yamn}");
    }
    assert!(!yamn.contains("pgpring"), "YAMN has no type I keys: {yamn}");
}
