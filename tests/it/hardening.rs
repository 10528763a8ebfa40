//! What a stranger can do to a running pinger: costly and huge mail, slow HTTP clients,
//! links in the served tree, hostile strings on the operator's terminal. Each test reproduces
//! one defect found by attacking the release binary, through the real binary.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::http::{free_port, get};
use crate::support::mail::wait_until;
use crate::support::{fathometer, run, run_ok, start_daemon, stop, stop_with_log, write_config};

/// A config whose daemon reads `state/Maildir`, sends to a closed SMTP port, schedules nothing
/// that could reach a remailer and asks nothing. `http` holds more keys of `[http]`, `extra`
/// more tables.
fn quiet_config(dir: &Path, port: u16, http: &str, extra: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!("127.0.0.1:{port}"),
        &format!(
            "{http}[smtp]\nport = 9\n[schedule]\ntick_secs = 1\nping_types = [\"mix\"]\n\
             chain_pings = false\n[discovery]\nrequests = false\n{extra}"
        ),
    )
}

fn wait_for_http(port: u16) {
    assert!(
        wait_until(Duration::from_secs(20), || TcpStream::connect(("127.0.0.1", port)).is_ok()),
        "the daemon did not open its HTTP port"
    );
}

/// A remailer with a cpunk-clear "key" (which needs no key material), imported with one old
/// ping.
fn clear_remailer(dir: &Path, config: &Path) {
    let pings = dir.join("pings.csv");
    std::fs::write(&pings, "r@x.example,cpunk-clear,100,160\n").unwrap();
    run_ok(fathometer(config).arg("import-pings").arg("--pings").arg(&pings));
}

/// A genuine ping to the cpunk-clear remailer, recorded as sent: its return tag and the
/// binary OpenPGP message of its payload, which travels in clear through such a remailer
/// (its operator sees it, and so does anyone who reads that operator's mail).
fn genuine_return(config: &Path) -> (String, Vec<u8>) {
    let message = run_ok(fathometer(config).args(["ping", "r@x.example", "--stdout"]));
    let tag = message
        .lines()
        .find_map(|l| l.strip_prefix("Anon-To: pinger+"))
        .and_then(|rest| rest.split('@').next())
        .expect("the return address")
        .to_owned();
    let armour = &message[message.find("-----BEGIN PGP MESSAGE-----").unwrap()..];
    let base64: String = armour
        .lines()
        .skip_while(|l| !l.trim().is_empty())
        .skip(1)
        .take_while(|l| !l.starts_with('=') && !l.starts_with("-----"))
        .collect();
    let binary =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, base64).unwrap();
    (tag, binary)
}

fn armoured(binary: &[u8]) -> String {
    let body = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, binary);
    format!("-----BEGIN PGP MESSAGE-----\r\n\r\n{body}\r\n-----END PGP MESSAGE-----\r\n")
}

/// The attack of the report: the genuine first packet (so the tag and the salt check pass)
/// with the S2K count raised to the most the old decoder afforded (1 MiB of hashing), the
/// armour repeated in `parts` MIME parts, sent to the genuine return address.
fn costly_mail(tag: &str, genuine: &[u8], parts: usize) -> Vec<u8> {
    let mut packet = genuine[..genuine.len().min(60)].to_vec();
    packet[14] = 0xA0;
    let part = armoured(&packet);
    let mut mail = format!(
        "Delivered-To: pinger+{tag}@localhost\r\nTo: pinger+{tag}@localhost\r\n\
         From: someone@x.example\r\nSubject: return\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
    );
    for _ in 0..parts {
        mail.push_str("--b\r\nContent-Type: text/plain\r\n\r\n");
        mail.push_str(&part);
    }
    mail.push_str("--b--\r\n");
    mail.into_bytes()
}

fn deliver(maildir: &Path, name: &str, bytes: &[u8]) {
    let tmp = maildir.join("tmp").join(name);
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, maildir.join("new").join(name)).unwrap();
}

fn settled(maildir: &Path, name: &str) -> bool {
    let seen = |sub: &str| maildir.join(sub).join(format!("{name}:2,S")).exists();
    seen("cur") || seen(".Quarantine/cur")
}

/// The slowest `/healthz` answer while `busy` holds, probing every 20 ms.
fn slowest_health_answer(port: u16, mut busy: impl FnMut() -> bool) -> Duration {
    let mut slowest = Duration::ZERO;
    while busy() {
        let started = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        assert!(answer.starts_with(b"HTTP/1.1 "), "no answer");
        slowest = slowest.max(started.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    slowest
}

#[test]
fn a_crafted_costly_return_is_refused_at_once_while_the_daemon_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = quiet_config(
        dir.path(),
        port,
        "",
        "[mailbox]\nmaildir = \"state/Maildir\"\npoll_secs = 1\n",
    );
    clear_remailer(dir.path(), &config);
    let (tag, genuine) = genuine_return(&config);
    let mut daemon = start_daemon(&config);
    wait_for_http(port);
    let maildir = dir.path().join("state/Maildir");
    assert!(wait_until(Duration::from_secs(10), || maildir.join("new").is_dir()));

    // 4 MB in 18,000 parts, as reported (52 s of CPU for the old decoder), and one just under
    // the size limit, so that it is parsed and its parts are counted.
    deliver(&maildir, "1.costly", &costly_mail(&tag, &genuine, 18_000));
    deliver(&maildir, "2.costly", &costly_mail(&tag, &genuine, 4_000));
    let started = Instant::now();
    let slowest = slowest_health_answer(port, || {
        !(settled(&maildir, "1.costly") && settled(&maildir, "2.costly"))
            && started.elapsed() < Duration::from_secs(60)
    });
    let took = started.elapsed();
    eprintln!("two crafted mails settled in {took:?}; slowest /healthz {slowest:?}");
    // Within one poll interval (1 s) plus their processing.
    assert!(took < Duration::from_secs(5), "the two mails took {took:?}");
    assert!(slowest < Duration::from_millis(250), "/healthz took {slowest:?}");
    let stopped = Instant::now();
    let (status, log) = stop_with_log(&mut daemon, Duration::from_secs(5));
    assert!(status.is_some(), "SIGTERM took more than 5 s: {log}");
    assert!(stopped.elapsed() < Duration::from_secs(5));

    let quarantine = run_ok(fathometer(&config).arg("quarantine"));
    assert!(quarantine.contains("larger than 1 MiB"), "{quarantine}");
    assert!(quarantine.contains("MIME parts"), "{quarantine}");
    // Neither touched the ping: it is still waiting for its return.
    let db = crate::support::state_db(dir.path());
    let outcome: String =
        db.query_row("SELECT outcome FROM pings WHERE tag = ?1", [&tag], |r| r.get(0)).unwrap();
    assert_eq!(outcome, "sent");
}

#[test]
fn sigterm_stops_the_daemon_within_five_seconds_in_the_middle_of_a_long_round() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = quiet_config(
        dir.path(),
        port,
        "",
        "[mailbox]\nmaildir = \"state/Maildir\"\npoll_secs = 60\n",
    );
    let mut daemon = start_daemon(&config);
    wait_for_http(port);
    let maildir = dir.path().join("state/Maildir");
    assert!(wait_until(Duration::from_secs(10), || maildir.join("new").is_dir()));
    // Stop the daemon between two rounds, put 3,000 mails in, start it again: its first round
    // has them all to do, and SIGTERM comes in the middle of it.
    let (status, _) = stop_with_log(&mut daemon, Duration::from_secs(5));
    assert!(status.is_some());
    for i in 0..3_000 {
        deliver(
            &maildir,
            &format!("{i:05}.junk"),
            format!("Subject: junk {i}\r\n\r\nhello\r\n").as_bytes(),
        );
    }
    let mut daemon = start_daemon(&config);
    wait_for_http(port);
    assert!(wait_until(Duration::from_secs(20), || {
        std::fs::read_dir(maildir.join(".Quarantine/cur")).map(|d| d.count()).unwrap_or(0) > 0
    }));
    let stopped = Instant::now();
    let status = stop(&mut daemon, Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "not stopped within 5 s of SIGTERM");
    assert!(stopped.elapsed() < Duration::from_secs(5));
    // Nothing is lost: every mail is either still new or settled, and recorded once.
    let count = |sub: &str| std::fs::read_dir(maildir.join(sub)).unwrap().count();
    assert_eq!(count("new") + count(".Quarantine/cur"), 3_000);
    let recorded: i64 = crate::support::state_db(dir.path())
        .query_row("SELECT COUNT(*) FROM mails", [], |r| r.get(0))
        .unwrap();
    assert_eq!(recorded as usize, count(".Quarantine/cur"));
}

/// Peak resident memory of a finished child process, in KiB.
fn wait_for_peak_rss_kib(child: std::process::Child) -> (i32, i64) {
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child with valid out-pointers.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    (status, usage.ru_maxrss)
}

#[test]
fn a_sparse_600_mb_mail_is_refused_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let config = quiet_config(dir.path(), free_port(), "", "");
    let maildir = dir.path().join("state/Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let huge = std::fs::File::create(maildir.join("new/1.huge")).unwrap();
    huge.set_len(600 << 20).unwrap();
    drop(huge);
    let child = fathometer(&config)
        .args(["ingest", "--once"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (status, peak_kib) = wait_for_peak_rss_kib(child);
    assert_eq!(status, 0, "ingest --once failed");
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB to refuse a 600 MB mail");
    assert!(maildir.join(".Quarantine/cur/1.huge:2,S").exists());
    let quarantine = run_ok(fathometer(&config).arg("quarantine"));
    assert!(quarantine.contains("629145600 bytes, larger than 1 MiB"), "{quarantine}");
}

/// Reads from a connection until the server closes it; the time that took.
fn time_until_closed(mut s: TcpStream) -> Duration {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

#[test]
fn slow_and_idle_http_clients_are_disconnected_and_cannot_take_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config =
        quiet_config(dir.path(), port, "header_timeout_secs = 1\nmax_connections = 3\n", "");
    let mut daemon = start_daemon(&config);
    wait_for_http(port);
    assert!(wait_until(Duration::from_secs(10), || get(port, "/mlist.txt", "").status == 200));

    let connect = || TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Half a request: the header never ends.
    let mut half = connect();
    half.write_all(b"GET /mlist.txt HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert!(time_until_closed(half) < Duration::from_secs(5));
    // Nothing at all.
    assert!(time_until_closed(connect()) < Duration::from_secs(5));
    // One request on a kept-alive connection, then silence.
    let mut kept = connect();
    kept.write_all(b"GET /mlist.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(time_until_closed(kept) < Duration::from_secs(5));

    // Three silent clients take every connection; a fourth is served once the server has
    // dropped them, not never.
    let hogs: Vec<TcpStream> = (0..3).map(|_| connect()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let health = get(port, "/healthz", "");
    assert!(matches!(health.status, 200 | 503), "{}", health.status);
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(hogs);
    let (status, log) = stop_with_log(&mut daemon, Duration::from_secs(5));
    assert!(status.is_some(), "{log}");
}

#[test]
fn intervals_that_would_overflow_are_refused_by_check_config_with_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for (table, key) in [("stats", "build_interval_secs"), ("mailbox", "poll_secs")] {
        let config = write_config(
            dir.path(),
            "127.0.0.1:0",
            &format!("[{table}]\n{key} = 9223372036854775807\n"),
        );
        let out = run(fathometer(&config).arg("check-config"));
        assert!(!out.status.success(), "{table}.{key} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("key `{table}.{key}`")), "{err}");
        assert!(err.contains("fathometer.toml:"), "{err}");
        assert!(err.contains("9223372036854775807 is not between 1 and"), "{err}");
    }
}

#[test]
fn check_config_finds_what_run_would_refuse_and_names_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let config = write_config(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        "[smtp]\nuser = \"u\"\npassword_file = \"missing-password\"\n\
         [stats]\nbroken_type1_file = \"missing-broken1.txt\"\n",
    );
    std::fs::write(dir.path().join("state"), b"a file, not a directory").unwrap();
    let out = run(fathometer(&config).arg("check-config"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for (key, line) in [
        ("pinger.state_dir", 3),
        ("smtp.password_file", 10),
        ("stats.broken_type1_file", 12),
        ("http.listen", 7),
    ] {
        assert!(err.contains(&format!("fathometer.toml:{line}: key `{key}`")), "{key}: {err}");
    }
    // `run` refuses the same configuration with the same words, before starting anything.
    let out = run(fathometer(&config).arg("run"));
    assert!(!out.status.success());
    let run_err = String::from_utf8_lossy(&out.stderr);
    assert!(run_err.contains("key `stats.broken_type1_file`"), "{run_err}");
}

#[test]
fn links_in_the_served_tree_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = quiet_config(dir.path(), port, "", "");
    let mut daemon = start_daemon(&config);
    wait_for_http(port);
    let results = dir.path().join("state/results");
    assert!(wait_until(Duration::from_secs(10), || results.join("mlist.txt").exists()));
    std::os::unix::fs::symlink("../secret", results.join("leak")).unwrap();
    std::os::unix::fs::symlink("../fathometer.sqlite", results.join("leak.txt")).unwrap();
    assert_eq!(get(port, "/leak", "").status, 404);
    assert_eq!(get(port, "/leak.txt", "").status, 404);
    // The thesaurus directory replaced by a link to the state directory.
    let thesaurus = results.join("thesaurus");
    let _ = std::fs::remove_dir_all(&thesaurus);
    std::os::unix::fs::symlink("..", &thesaurus).unwrap();
    assert_eq!(get(port, "/thesaurus/secret", "").status, 404);
    let index = get(port, "/", "").text();
    assert!(!index.contains("leak"), "{index}");
    let (status, _) = stop_with_log(&mut daemon, Duration::from_secs(5));
    assert!(status.is_some());
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn everything_under_the_state_directory_is_private_under_umask_022() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = quiet_config(dir.path(), port, "", "");
    let mut cmd = fathometer(&config);
    cmd.arg("run").stdout(Stdio::null()).stderr(Stdio::piped());
    // SAFETY: umask in the child before exec; nothing else runs there.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    let mut daemon = cmd.spawn().unwrap();
    wait_for_http(port);
    let state = dir.path().join("state");
    assert!(wait_until(Duration::from_secs(10), || state
        .join("results.private/mlist.txt")
        .exists()
        && state.join("results/index.html").exists()));
    let (status, _) = stop_with_log(&mut daemon, Duration::from_secs(5));
    assert!(status.is_some());
    for d in ["", "results", "results.private", "Maildir", "Maildir/new"] {
        assert_eq!(mode(&state.join(d)), 0o700, "{d}");
    }
    for f in [
        "fathometer.sqlite",
        "secret",
        "daemon.lock",
        "results/mlist.txt",
        "results/index.html",
        "results.private/mlist.txt",
    ] {
        assert_eq!(mode(&state.join(f)), 0o600, "{f}");
    }
    // A state directory others can write to is refused, by check-config and by run.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    for command in ["check-config", "run"] {
        let out = run(fathometer(&config).arg(command));
        assert!(!out.status.success(), "{command} accepted a world-writable state directory");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("writable by others"), "{command}: {err}");
    }
}

/// A Maildir with mail to a return address whose tag carries terminal escape sequences.
fn hostile_quarantine(dir: &Path, port: u16, mailbox: &str) -> std::path::PathBuf {
    let config = quiet_config(dir, port, "", mailbox);
    let maildir = dir.join("state/Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    for i in 0..200 {
        let mail = format!(
            "Delivered-To: pinger+\x1b]0;PWNED\x07\x1b[2J{i}@localhost\r\nSubject: x\r\n\r\nhi\r\n"
        );
        deliver(&maildir, &format!("{i:04}.hostile"), mail.as_bytes());
    }
    run_ok(fathometer(&config).args(["ingest", "--once"]));
    config
}

#[test]
fn control_characters_from_mail_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let config = hostile_quarantine(dir.path(), free_port(), "");
    let out = fathometer(&config).arg("quarantine").output().unwrap();
    assert!(out.status.success());
    assert!(!out.stdout.contains(&0x1b) && !out.stdout.contains(&0x07), "raw control bytes");
    let text = String::from_utf8(out.stdout).unwrap();
    // (The tag is read case-insensitively, hence the lower case.)
    assert!(text.contains("\\u{1b}]0;pwned\\u{7}\\u{1b}[2j"), "{text}");
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let config = hostile_quarantine(dir.path(), free_port(), "");
    for args in [&["quarantine", "--limit", "200"][..], &["list", "--verbose"][..]] {
        let mut child = fathometer(&config)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -c 0`: the reader closes before the first write.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}

#[test]
fn healthz_reports_a_failing_ingester_at_once_not_at_the_next_tick() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        "[mailbox]\nmaildir = \"state/Maildir\"\npoll_secs = 1\n[smtp]\nport = 9\n\
         [schedule]\ntick_secs = 600\nmax_lateness_secs = 1200\nping_types = [\"mix\"]\n\
         [discovery]\nrequests = false\n",
    );
    let mut daemon = start_daemon(&config);
    wait_for_http(port);
    assert!(wait_until(Duration::from_secs(15), || get(port, "/healthz", "").status == 200));
    std::fs::remove_dir_all(dir.path().join("state/Maildir")).unwrap();
    let failing = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || get(port, "/healthz", "").status == 503),
        "still healthy with the Maildir gone"
    );
    assert!(failing.elapsed() < Duration::from_secs(5), "took {:?}", failing.elapsed());
    let health = get(port, "/healthz", "").text();
    assert!(health.contains("Maildir"), "{health}");
    let metrics = get(port, "/metrics", "").text();
    assert!(metrics.contains("fathometer_healthy 0"), "{metrics}");
    let (status, _) = stop_with_log(&mut daemon, Duration::from_secs(5));
    assert!(status.is_some());
}

#[test]
fn quarantined_mail_loses_its_bytes_after_the_retention_but_keeps_its_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = hostile_quarantine(
        dir.path(),
        port,
        "[mailbox]\nmaildir = \"state/Maildir\"\nquarantine_days = 1\n",
    );
    let db = crate::support::state_db(dir.path());
    // Half of them were processed two days ago.
    db.execute("UPDATE mails SET processed_at = processed_at - 172800 WHERE id % 2 = 0", [])
        .unwrap();
    let mut daemon = start_daemon(&config);
    wait_for_http(port);
    let kept = || -> (i64, i64) {
        db.query_row(
            "SELECT COUNT(*) FILTER (WHERE raw IS NOT NULL), COUNT(*) FROM mails",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert!(wait_until(Duration::from_secs(15), || kept() == (100, 200)), "{:?}", kept());
    let (status, _) = stop_with_log(&mut daemon, Duration::from_secs(5));
    assert!(status.is_some());
    let quarantine = run_ok(fathometer(&config).args(["quarantine", "--limit", "200"]));
    assert_eq!(quarantine.matches("raw copy past retention, removed").count(), 100);
    assert_eq!(quarantine.matches("is not a tag we issue").count(), 200);
    assert_eq!(quarantine.lines().count(), 200, "every verdict is still there");
}

#[test]
fn starting_on_a_full_disk_says_the_disk_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("small");
    std::fs::create_dir(&mount).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mount)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&mount);
    let state = mount.join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Fill it.
    let mut filler = std::fs::File::create(mount.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while filler.write_all(&block).is_ok() {}
    let _ = filler.sync_all();
    let config = write_config(
        dir.path(),
        "127.0.0.1:0",
        &format!("[mailbox]\nmaildir = \"{}/Maildir\"\n", dir.path().display()),
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("state_dir = \"state\"", &format!("state_dir = \"{}\"", state.display()));
    std::fs::write(&config, text).unwrap();
    let out = run(fathometer(&config).arg("run"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is full"), "{err}");
}

#[test]
fn a_self_check_the_mta_refuses_for_good_is_reported_once() {
    if !crate::support::mail::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let smtp = crate::support::mail::smtp_addr();
    // Postfix refuses every domain but its own: our self-checks to elsewhere.example get a 554.
    let config = write_config(
        dir.path(),
        "127.0.0.1:0",
        &format!(
            "[smtp]\nhost = \"{}\"\nport = {}\n[schedule]\ntick_secs = 1\n\
             ping_types = [\"mix\"]\nchain_pings = false\n[discovery]\nrequests = false\n",
            smtp.ip(),
            smtp.port()
        ),
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("address = \"pinger@localhost\"", "address = \"pinger@elsewhere.example\"");
    std::fs::write(&config, text).unwrap();
    let mut daemon = start_daemon(&config);
    let db = dir.path().join("state/fathometer.sqlite");
    assert!(wait_until(Duration::from_secs(20), || {
        db.exists()
            && crate::support::db_file(&db)
                .query_row(
                    "SELECT COUNT(*) FROM self_checks WHERE abandoned_at IS NOT NULL",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap_or(0)
                == 1
    }));
    // Several sender passes later (every tick wakes the sender), still one report.
    std::thread::sleep(Duration::from_secs(5));
    let (_, log) = stop_with_log(&mut daemon, Duration::from_secs(5));
    assert_eq!(log.matches("refused our self-check for good").count(), 1, "{log}");
    assert_eq!(log.matches("self-check not accepted").count(), 0, "{log}");
}
