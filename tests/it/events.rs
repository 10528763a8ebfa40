//! Status events, stability and announced downtime end to end: the real daemon, real Postfix,
//! real GnuPG and the type I remailer double (test support: no real remailer runs here; it
//! decrypts with GnuPG and re-sends through Postfix as a real one does).
//!
//! Time: the daemon's clock is moved forward through the test hook
//! `FATHOMETER_TEST_CLOCK_OFFSET_FILE` (the system clock plus an offset read from a file), so
//! that two-hour ping slots and six-hour loss allowances pass in seconds. Mail still takes
//! real time; the pinger's clock only ever moves ahead of it.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use crate::support::gpg::{GpgHome, KeyShape};
use crate::support::http::{free_port, get};
use crate::support::mail::{
    available, clear_mailbox, files_in, pinger_config, remailer, wait_until,
};
use crate::support::remailer::{Behaviour, TestRemailer, smtp_send};
use crate::support::{fathometer, run_ok, state_db, stop_with_log};

const SLOT: i64 = 7200;

/// A pinger that pings `remailer`'s DSA key once a slot, ticks every second and rebuilds at
/// every tick, with its clock offset in `dir/clock-offset`.
struct Pinger {
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
    offset: i64,
    daemon: Option<Child>,
}

impl Pinger {
    fn new(user: &str, reply: &str, extra: &str) -> Pinger {
        clear_mailbox(user);
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let schedule = "[schedule]\nping_types = [\"cpunk-dsa\"]\nchain_pings = false\ntick_secs = 1\n\
                        max_lateness_secs = 10800\nself_check_secs = 86400\n\
                        [stats]\nbuild_interval_secs = 1\n";
        let config = pinger_config(dir.path(), user, false, &format!("{schedule}{extra}"));
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, text.replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))).unwrap();
        let mut pinger = Pinger { dir, config, port, offset: 0, daemon: None };
        pinger.set_offset(0);
        let address = reply.split('<').nth(1).unwrap().split('>').next().unwrap().to_owned();
        run_ok(pinger.cmd().args(["add", &address]));
        let key = pinger.dir.path().join("key-reply.txt");
        std::fs::write(&key, reply).unwrap();
        run_ok(pinger.cmd().arg("import-keys").arg(&key));
        pinger
    }

    fn offset_file(&self) -> PathBuf {
        self.dir.path().join("clock-offset")
    }

    fn set_offset(&mut self, offset: i64) {
        self.offset = offset;
        let tmp = self.dir.path().join("clock-offset.tmp");
        std::fs::write(&tmp, offset.to_string()).unwrap();
        std::fs::rename(tmp, self.offset_file()).unwrap();
    }

    fn cmd(&self) -> std::process::Command {
        let mut c = fathometer(&self.config);
        c.env("FATHOMETER_TEST_CLOCK_OFFSET_FILE", self.offset_file());
        c
    }

    fn start(&mut self) {
        let child = self
            .cmd()
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(self.log_file())
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let port = self.port;
        assert!(
            wait_until(Duration::from_secs(20), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "the daemon serves HTTP"
        );
    }

    /// The daemon's log, appended to by every start.
    fn log_file(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        let mut child = self.daemon.take().expect("running");
        let (status, _) = stop_with_log(&mut child, Duration::from_secs(15));
        assert!(status.is_some_and(|s| s.success()), "clean stop:\n{}", self.log());
    }

    fn db(&self) -> rusqlite::Connection {
        state_db(self.dir.path())
    }

    /// (sent, returned) single pings by outcome.
    fn count(&self, outcome: &str) -> i64 {
        self.db()
            .query_row("SELECT COUNT(*) FROM pings WHERE outcome = ?1", [outcome], |r| r.get(0))
            .unwrap()
    }

    /// Pings not back six hours (the allowance) after they were sent, as of now.
    fn known_lost(&self) -> i64 {
        let now = unix_now() + self.offset;
        self.db()
            .query_row(
                "SELECT COUNT(*) FROM pings WHERE outcome = 'sent' AND sent_at <= ?1",
                [now - 6 * 3600],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// The pings, for failure messages.
    fn dump(&self) -> String {
        let db = self.db();
        let mut stmt = db
            .prepare("SELECT id, slot_time, outcome, sent_at, returned_at FROM pings ORDER BY id")
            .unwrap();
        let rows: Vec<String> = stmt
            .query_map([], |r| {
                Ok(format!(
                    "{} slot {} {} sent {:?} returned {:?}",
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<i64>>(4)?
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        format!("now {}\n{}\n{}", unix_now() + self.offset, rows.join("\n"), self.log())
    }

    fn api(&self, path: &str) -> serde_json::Value {
        let response = get(self.port, path, "");
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        serde_json::from_str(&response.text()).unwrap()
    }

    fn event_kinds(&self) -> Vec<String> {
        self.api("/api/v1/events")["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The cpunk WFU the API shows.
    fn wfu(&self) -> f64 {
        let remailers = self.api("/api/v1/remailers");
        remailers["lists"]["cpunk"][0]["stability"]["wfu"].as_f64().expect("a WFU")
    }

    /// The daemon has built the statistics as of the current offset.
    fn wait_built(&self) {
        let at = unix_now() + self.offset;
        let built = wait_until(Duration::from_secs(30), || {
            let h = get(self.port, "/healthz", "");
            let json: serde_json::Value = serde_json::from_str(&h.text()).unwrap_or_default();
            json["last_build"].as_i64().is_some_and(|t| t >= at)
        });
        assert!(built, "a build after the clock moved");
    }

    /// Moves the clock one slot ahead and waits for that slot's ping to be sent and, when
    /// the remailer forwards, to come back.
    fn next_slot(&mut self, rem: &TestRemailer, forwards: bool) {
        let sent_before = self.count("sent") + self.count("returned");
        let returned_before = self.count("returned");
        let handled = rem.handled();
        // A key's instant falls at a different offset in each slot: a two-hour step passes
        // one instant, or none, or two. Step until one passed.
        let mut sent = false;
        for _ in 0..4 {
            self.set_offset(self.offset + SLOT);
            sent = wait_until(Duration::from_secs(10), || {
                self.count("sent") + self.count("returned") > sent_before
            });
            if sent {
                break;
            }
        }
        assert!(sent, "a ping was sent at offset {}: {}", self.offset, self.dump());
        assert!(rem.wait_handled(handled + 1, Duration::from_secs(30)), "{:?}", rem.errors());
        if forwards {
            assert!(
                wait_until(Duration::from_secs(30), || self.count("returned") > returned_before),
                "the ping came back"
            );
        }
        self.wait_built();
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Validates feeds with an independent parser (feedparser, Debian's python3-feedparser) and
/// the rules of RFC 4287 (`tests/tools/check_atom.py`).
pub fn check_atom(feeds: &[PathBuf]) {
    let python = "/usr/bin/python3";
    let usable = std::process::Command::new(python)
        .args(["-c", "import feedparser"])
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        assert!(
            std::env::var("FATHOMETER_REQUIRE_FEEDPARSER").as_deref() != Ok("1"),
            "python3-feedparser is missing and FATHOMETER_REQUIRE_FEEDPARSER=1"
        );
        eprintln!("SKIPPED the Atom check: apt-get install python3-feedparser");
        return;
    }
    let checker = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/check_atom.py");
    let out = std::process::Command::new(python).arg(checker).args(feeds).output().unwrap();
    assert!(
        out.status.success(),
        "the feeds are not valid Atom:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A hook script that appends each event it is given to `out`.
fn hook(dir: &Path, out: &Path) -> PathBuf {
    let script = dir.join("hook.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncat >> '{}'\necho \"$FATHOMETER_EVENT_KIND\" >> '{}.kinds'\n",
            out.display(),
            out.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn a_remailer_that_goes_silent_and_comes_back_is_reported_and_its_uptime_follows() {
    if !available() {
        return;
    }
    let (rem, reply) = remailer("remailer15", Behaviour::Forward);
    let tmp = tempfile::tempdir().unwrap();
    let hook_out = tmp.path().join("events.jsonl");
    let script = hook(tmp.path(), &hook_out);
    clear_mailbox("operator1");
    let extra = format!(
        "[events]\ncommand = [\"{}\"]\ntimeout_secs = 5\nmail_to = \"operator1@localhost\"\n",
        script.display()
    );
    let mut p = Pinger::new("ping13", &reply, &extra);
    p.start();

    // Four slots it answers: up.
    for _ in 0..4 {
        p.next_slot(&rem, true);
    }
    let wfu_up = p.wfu();
    assert_eq!(wfu_up, 1.0);

    // It stops answering. A lost ping counts only after its allowance (six hours): three
    // slots of silence are known three slots later.
    rem.set_behaviour(Behaviour::Drop);
    let mut silent = false;
    for _ in 0..12 {
        p.next_slot(&rem, false);
        silent = p.event_kinds().contains(&"silent".to_owned());
        let known_lost = p.known_lost();
        assert!(!silent || known_lost >= 3, "silent after {known_lost} known losses");
        if silent {
            break;
        }
    }
    assert!(silent, "{}", p.dump());
    let wfu_down = p.wfu();
    assert!(wfu_down < wfu_up, "{wfu_down}");

    // It answers again: two returns in a row are a resumption; the uptime recovers.
    rem.set_behaviour(Behaviour::Forward);
    for _ in 0..10 {
        p.next_slot(&rem, true);
    }
    let events = p.api("/api/v1/events");
    let kinds: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let silent = kinds.iter().position(|k| *k == "silent").unwrap();
    let resumed = kinds.iter().position(|k| *k == "resumed").expect("resumed");
    assert!(silent < resumed, "{kinds:?}");
    let wfu_back = p.wfu();
    assert!(wfu_back > wfu_down, "{wfu_back} after {wfu_down}");
    let entry = &events["events"][silent];
    assert_eq!(entry["remailer"]["nick"], "remailer15");
    assert_eq!(entry["family"], "cpunk");
    assert!(entry["title"].as_str().unwrap().contains("not responding"), "{entry}");

    // `since` filters by when the pinger recorded them.
    let later = entry["recorded_at"].as_i64().unwrap() + 1;
    let after = p.api(&format!("/api/v1/events?since={later}"));
    assert!(after["events"].as_array().unwrap().iter().all(|e| e["kind"] != "silent"));
    assert_eq!(get(p.port, "/api/v1/events?since=yesterday", "").status, 400);

    // The feeds carry them too, and are valid Atom 1.0.
    let feed = get(p.port, "/events.atom", "").text();
    assert!(feed.contains("<category term=\"silent\"/>"), "{feed}");
    assert!(feed.contains("<category term=\"resumed\"/>"));
    assert_eq!(
        get(p.port, "/events.atom", "").header("content-type"),
        Some("application/atom+xml")
    );
    let results = p.dir.path().join("state/results");
    let feeds: Vec<PathBuf> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.extension().is_some_and(|x| x == "atom"))
        .collect();
    assert_eq!(feeds.len(), 2, "events.atom and the remailer's: {feeds:?}");
    check_atom(&feeds);

    // The hook got each event as JSON, in order.
    assert!(wait_until(Duration::from_secs(10), || std::fs::read_to_string(&hook_out)
        .is_ok_and(|t| t.contains("\"resumed\""))));
    let lines = std::fs::read_to_string(&hook_out).unwrap();
    let hooked: Vec<serde_json::Value> =
        lines.lines().map(|l| serde_json::from_str(l).expect("one JSON event per line")).collect();
    let hooked_kinds: Vec<&str> = hooked.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let silent_at = hooked_kinds.iter().position(|k| *k == "silent").expect("silent hooked");
    assert!(hooked_kinds[silent_at..].contains(&"resumed"), "{hooked_kinds:?}");
    let env_kinds = std::fs::read_to_string(format!("{}.kinds", hook_out.display())).unwrap();
    assert!(env_kinds.contains("silent\n") && env_kinds.contains("resumed\n"), "{env_kinds}");
    assert!(hooked.iter().all(|e| e["id"].as_i64().unwrap() > 0));

    // And the operator got them by mail, through the MTA.
    let mailed = |needle: &str| {
        files_in("operator1", "new")
            .iter()
            .any(|f| std::fs::read_to_string(f).is_ok_and(|m| m.contains(needle)))
    };
    assert!(wait_until(Duration::from_secs(20), || mailed("remailer15: service resumed (cpunk)")));
    assert!(mailed("Subject: [fathometer test] remailer15: not responding (cpunk)"));

    // `/metrics` counts them.
    let metrics = get(p.port, "/metrics", "").text();
    assert!(metrics.contains("fathometer_events_total{kind=\"silent\"} 1"), "{metrics}");
    assert!(metrics.contains("fathometer_remailer_wfu{list=\"cpunk\",nick=\"remailer15\"}"));
    p.stop();
}

#[test]
fn a_pinger_stopped_for_an_hour_charges_no_remailer_for_it() {
    if !available() {
        return;
    }
    let (rem, reply) = remailer("remailer16", Behaviour::Forward);
    let mut p = Pinger::new("ping14", &reply, "");
    p.start();
    for _ in 0..3 {
        p.next_slot(&rem, true);
    }
    // The next ping goes out, and the pinger stops before its return is read: the remailer
    // swallows it (say our mailbox lost it while we were away). The pinger stays down for
    // an hour.
    rem.set_behaviour(Behaviour::Drop);
    p.next_slot(&rem, false);
    p.stop();
    p.set_offset(p.offset + 3600);
    rem.set_behaviour(Behaviour::Forward);
    p.start();
    // Long after the allowance of that ping.
    for _ in 0..6 {
        p.next_slot(&rem, true);
    }
    let stats: serde_json::Value =
        serde_json::from_str(&run_ok(p.cmd().args(["stats", "--format", "json"]))).unwrap();
    let stability = &stats["lists"]["cpunk"][0]["stability"];
    assert_eq!(
        stability["wfu"], 1.0,
        "the lost ping in our downtime is not the remailer's: {stability}"
    );
    let kinds = p.event_kinds();
    assert!(kinds.contains(&"pinger-down".to_owned()), "{kinds:?}");
    assert!(!kinds.contains(&"silent".to_owned()), "{kinds:?}");
    let events = p.api("/api/v1/events");
    let down =
        events["events"].as_array().unwrap().iter().find(|e| e["kind"] == "pinger-down").unwrap();
    assert!(down["detail"].as_str().unwrap().contains("no remailer is charged"), "{down}");
    assert!(down["remailer"].is_null());
    // The 12-day reliability still counts the lost ping: clients must see what happened.
    let reliability = stats["lists"]["cpunk"][0]["reliability"].as_f64().unwrap();
    assert!(reliability < 1.0, "{reliability}");
    p.stop();
}

/// The announcement a remailer operator would sign.
fn announcement(remailer: &str, reason: &str) -> String {
    format!(
        "Fathometer-Downtime: 1\nRemailer: {remailer}\nUnavailable-From: +0m\nExpected-Back: +3h\n\
         Reason: {reason}\n"
    )
}

fn mail_to_pinger(to: &str, from: &str, body: &str) {
    let text = format!(
        "From: {from}\nTo: {to}\nSubject: downtime\nDate: {}\nMessage-ID: <{}.dt@test>\n\n{body}",
        chrono::Utc::now().to_rfc2822(),
        unix_now_nanos()
    );
    smtp_send(crate::support::mail::smtp_addr(), from, &[to.to_owned()], &text).unwrap();
}

fn unix_now_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

#[test]
fn a_signed_downtime_announcement_is_shown_and_forged_ones_are_quarantined() {
    if !available() {
        return;
    }
    clear_mailbox("ping15");
    let (rem, reply) = remailer("remailer17", Behaviour::Forward);
    let mut p = Pinger::new("ping15", &reply, "");
    // The remailer operator's admin key, made by real GnuPG; the pinger holds it as the
    // remailer's admin key (imported here; `remailer-adminkey` collects it the same way).
    let admin = GpgHome::new();
    let admin_key =
        admin.generate(KeyShape::Rsa2048, "Remailer Admin", "admin@remailer17.example", "");
    let stranger = GpgHome::new();
    stranger.generate(KeyShape::Rsa2048, "Mallory", "admin@remailer17.example", "");
    let key_file = p.dir.path().join("admin.asc");
    std::fs::write(&key_file, &admin_key).unwrap();
    let out =
        run_ok(p.cmd().args(["downtime", "admin-key", "remailer17@localhost"]).arg(&key_file));
    assert!(out.contains("now verifies"), "{out}");
    p.start();

    let hostile_reason = "new disks <script>document.title='pwned'</script>";
    let signed = admin.clearsign(
        "admin@remailer17.example",
        &announcement("remailer17@localhost", hostile_reason),
    );
    let forged = stranger
        .clearsign("admin@remailer17.example", &announcement("remailer17@localhost", "forged"));
    let unsigned = announcement("remailer17@localhost", "unsigned");
    let altered = signed.replace("new disks", "old disks");
    for body in [&forged, &unsigned, &altered] {
        mail_to_pinger("ping15@localhost", "admin@remailer17.example", body);
    }
    mail_to_pinger(
        "ping15@localhost",
        "admin@remailer17.example",
        &format!("Hello,\n\n{signed}\n-- \nadmin\n"),
    );
    let announcements = |p: &Pinger| -> Vec<(String, String)> {
        let db = p.db();
        let mut stmt = db
            .prepare("SELECT kind, detail FROM mails WHERE detail LIKE '%downtime announcement%' ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    };
    assert!(wait_until(Duration::from_secs(30), || announcements(&p).len() >= 4));
    let kinds = announcements(&p);
    let of = |needle: &str| kinds.iter().find(|(_, d)| d.contains(needle)).cloned();
    let accepted = of("accepted").expect("the signed one is accepted");
    assert_eq!(accepted.0, "reply");
    let quarantined: Vec<&(String, String)> =
        kinds.iter().filter(|(k, _)| k == "forged" || k == "unknown").collect();
    assert_eq!(quarantined.len(), 3, "{kinds:?}");
    assert!(kinds.iter().any(|(_, d)| d.contains("not signed")), "{kinds:?}");
    assert!(kinds.iter().any(|(_, d)| d.contains("does not verify")), "{kinds:?}");
    let quarantine = run_ok(p.cmd().arg("quarantine"));
    assert!(quarantine.contains("downtime announcement"), "{quarantine}");

    // Shown the RFC 636 way in the API, on the pages, and in /metrics.
    p.wait_built();
    p.set_offset(p.offset + 60);
    p.wait_built();
    let remailers = p.api("/api/v1/remailers");
    let notice = &remailers["lists"]["cpunk"][0]["downtime"];
    assert_eq!(notice["state"], "active", "{remailers}");
    assert_eq!(notice["source"], "signed");
    let text = notice["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("unavailable because of {hostile_reason}, expected back ")),
        "{text}"
    );
    let index = get(p.port, "/index.html", "").text();
    assert!(index.contains("unavailable because of new disks &lt;script&gt;"), "{index}");
    assert!(!index.contains("<script>document"));
    let metrics = get(p.port, "/metrics", "").text();
    assert!(
        metrics.contains(
            "fathometer_remailer_announced_downtime{nick=\"remailer17\",state=\"active\"} 1"
        ),
        "{metrics}"
    );
    // The events name the hostile reason; the feeds stay valid Atom and carry it as text.
    let feed_path = p.dir.path().join("state/results/events.atom");
    let feed = std::fs::read_to_string(&feed_path).unwrap();
    assert!(feed.contains("new disks &lt;script&gt;"), "{feed}");
    check_atom(&[feed_path]);
    let kinds = p.event_kinds();
    assert!(
        kinds.contains(&"downtime-announced".to_owned())
            && kinds.contains(&"downtime-started".to_owned()),
        "{kinds:?}"
    );

    // The same mail again (a replay, with new headers) changes nothing.
    mail_to_pinger("ping15@localhost", "admin@remailer17.example", &signed);
    assert!(wait_until(Duration::from_secs(30), || announcements(&p).len() >= 5));
    let (kind, detail) = announcements(&p).pop().unwrap();
    assert_eq!(kind, "duplicate", "{detail}");
    let n: i64 = p.db().query_row("SELECT COUNT(*) FROM downtimes", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);

    // Expected back in three hours: after that, with no return, it is overdue.
    rem.set_behaviour(Behaviour::Drop);
    p.set_offset(p.offset + 4 * 3600);
    p.wait_built();
    let remailers = p.api("/api/v1/remailers");
    let notice = &remailers["lists"]["cpunk"][0]["downtime"];
    assert_eq!(notice["state"], "overdue", "{notice}");
    assert!(notice["text"].as_str().unwrap().ends_with(": overdue"));
    assert!(p.event_kinds().contains(&"downtime-overdue".to_owned()));
    assert!(files_in("ping15", "new").is_empty());
    p.stop();
}
