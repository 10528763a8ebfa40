//! `fathometer run` under systemd's notification protocol. The test plays the service
//! manager's side of `NOTIFY_SOCKET` (a Unix datagram socket, as systemd gives one; no
//! systemd runs here): it sees READY with a STATUS line, WATCHDOG pings at the rate
//! `WATCHDOG_USEC` asks, RELOADING/READY around SIGHUP, and STOPPING. A valid changed
//! configuration takes effect on reload (a new listen address, a new build interval); an
//! invalid one is logged with its line and key and changes nothing.

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::http::{free_port, get};
use crate::support::{fathometer, stop, write_config};

struct Manager {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Manager {
    fn new(dir: &Path) -> Manager {
        let socket = UnixDatagram::bind(dir.join("notify.sock")).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        Manager { socket, seen: Vec::new() }
    }

    /// Reads datagrams until one satisfies `want` (returned) or `limit` passes.
    fn wait_for(&mut self, limit: Duration, want: impl Fn(&str) -> bool) -> Option<String> {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while start.elapsed() < limit {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(message.clone());
                if want(&message) {
                    return Some(message);
                }
            }
        }
        None
    }
}

fn has_line(message: &str, line: &str) -> bool {
    message.lines().any(|l| l == line)
}

fn config_text(build_secs: u64) -> String {
    format!("[stats]\nbuild_interval_secs = {build_secs}\n[schedule]\ntick_secs = 1\n")
}

fn connects(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn max_age(port: u16) -> u64 {
    let response = get(port, "/mlist.txt", "");
    assert_eq!(response.status, 200, "{}", response.text());
    let cache = response.header("Cache-Control").unwrap().to_owned();
    cache.rsplit('=').next().unwrap().parse().unwrap()
}

fn hangup(child: &Child) {
    let sent = std::process::Command::new("kill").arg("-HUP").arg(child.id().to_string()).status();
    assert!(sent.is_ok_and(|s| s.success()));
}

#[test]
fn ready_watchdog_status_and_reload_under_a_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let mut manager = Manager::new(dir.path());
    let (port1, port2) = (free_port(), free_port());
    let config = write_config(dir.path(), &format!("127.0.0.1:{port1}"), &config_text(300));
    let log_path = dir.path().join("daemon.log");
    let mut daemon = fathometer(&config)
        .arg("run")
        .env("NOTIFY_SOCKET", dir.path().join("notify.sock"))
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let ready = manager.wait_for(Duration::from_secs(30), |m| has_line(m, "READY=1"));
    let ready = ready.unwrap_or_else(|| panic!("no READY=1: {:?}\n{}", manager.seen, log()));
    assert!(ready.contains("STATUS="), "{ready}");
    // READY comes once HTTP is bound: the port answers at once.
    assert!(connects(port1), "READY before the HTTP port was bound");

    // WATCHDOG_USEC = 1 s: a ping at least every half second.
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_secs(3) {
        if manager.wait_for(Duration::from_millis(100), |m| has_line(m, "WATCHDOG=1")).is_some() {
            pings += 1;
        }
    }
    assert!(pings >= 4, "{pings} watchdog pings in 3 s");
    let status = manager
        .wait_for(Duration::from_secs(10), |m| m.contains("STATUS=") && m.contains("last build"))
        .unwrap_or_else(|| panic!("no STATUS after a build: {:?}", manager.seen));
    assert!(status.contains("remailers") && status.contains("outbox 0 queued"), "{status}");
    assert!(max_age(port1) <= 300);

    // A valid change: another port, another build interval.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace(&format!("127.0.0.1:{port1}\""), &format!("127.0.0.1:{port2}\""))
            .replace("build_interval_secs = 300", "build_interval_secs = 7200"),
    )
    .unwrap();
    hangup(&daemon);
    let reloading = manager.wait_for(Duration::from_secs(10), |m| has_line(m, "RELOADING=1"));
    let reloading =
        reloading.unwrap_or_else(|| panic!("no RELOADING=1: {:?}\n{}", manager.seen, log()));
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let ready = manager.wait_for(Duration::from_secs(10), |m| has_line(m, "READY=1"));
    assert!(ready.is_some(), "no READY=1 after the reload: {:?}\n{}", manager.seen, log());
    assert!(connects(port2), "the new listen address is not served\n{}", log());
    assert!(!connects(port1), "the old listen address is still served");
    assert!(max_age(port2) > 300, "the new build interval is not in effect");
    assert!(log().contains("configuration reloaded"), "{}", log());

    // An invalid change: refused with its line and key; the daemon keeps what runs.
    let text = std::fs::read_to_string(&config).unwrap();
    let bad_line = text.lines().count() + 2;
    std::fs::write(&config, format!("{text}[publish]\nkeyring_interval_secs = \"often\"\n"))
        .unwrap();
    hangup(&daemon);
    assert!(manager.wait_for(Duration::from_secs(10), |m| has_line(m, "RELOADING=1")).is_some());
    let ready = manager
        .wait_for(Duration::from_secs(10), |m| has_line(m, "READY=1"))
        .unwrap_or_else(|| panic!("no READY=1 after a refused reload: {:?}", manager.seen));
    assert!(ready.contains("reload refused"), "{ready}");
    let logged = log();
    let refusal =
        logged.lines().find(|l| l.contains("reload refused")).unwrap_or_else(|| panic!("{logged}"));
    assert!(refusal.contains(&format!(":{bad_line}:")), "line {bad_line} not named: {refusal}");
    assert!(refusal.contains("publish.keyring_interval_secs"), "{refusal}");
    assert!(connects(port2) && max_age(port2) > 300, "the refused file changed something");

    let status = stop(&mut daemon, Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{}", log());
    assert!(manager.wait_for(Duration::from_secs(2), |m| has_line(m, "STOPPING=1")).is_some());
    // No timestamps are doubled under the journal; outside it the log keeps its own.
    let mut first = String::new();
    std::fs::File::open(&log_path).unwrap().read_to_string(&mut first).unwrap();
    assert!(first.lines().next().is_some_and(|l| l.starts_with("20")), "{first}");
}

#[test]
fn under_the_journal_lines_carry_no_timestamp_of_their_own() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &format!("127.0.0.1:{port}"), &config_text(300));
    let log_path = dir.path().join("journal-stream");
    let log_file = std::fs::File::create(&log_path).unwrap();
    // systemd names the stream it connects stderr to; here that stream is a file.
    let meta = log_file.metadata().unwrap();
    let mut daemon = fathometer(&config)
        .arg("run")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !connects(port) && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(&mut daemon, Duration::from_secs(10));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("serving statistics over HTTP"), "{log}");
    for line in log.lines() {
        assert!(!line.starts_with("20"), "a timestamp the journal adds again: {line}");
        assert!(!line.contains('\u{1b}'), "colour codes in the journal: {line}");
    }
}
