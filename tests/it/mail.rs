//! The mail path end to end through the real binary, real Postfix and real Dovecot: pings go
//! out through Postfix to a type I remailer double (test support: it decrypts with real GnuPG
//! and re-sends through Postfix, as a real remailer would), come back to the pinger's Maildir
//! or IMAP mailbox, and are ingested and counted. Each test owns its mailbox users.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::RwLock;
use std::time::Duration;

use crate::support::mail::{
    available, clear_mailbox, files_in, maildir, pinger_config, remailer, remailer_with, smtp_addr,
    state_dir, wait_until,
};
use crate::support::remailer::{Behaviour, smtp_send};
use crate::support::{fathometer, run, run_ok, start_daemon, stop, stop_with_log};
use rusqlite::Connection;

/// Tests that stop Postfix take this for writing; every other mail test reads it, so no test
/// sees the MTA vanish under it.
static MTA: RwLock<()> = RwLock::new(());

fn mta_shared() -> std::sync::RwLockReadGuard<'static, ()> {
    MTA.read().unwrap_or_else(|p| p.into_inner())
}

fn db(dir: &Path) -> Connection {
    crate::support::state_db(dir)
}

#[derive(Debug, Clone, PartialEq)]
struct PingRow {
    id: i64,
    outcome: String,
    sent_at: Option<i64>,
    returned_at: Option<i64>,
    attempts: i64,
    tag: Option<String>,
}

fn pings(dir: &Path) -> Vec<PingRow> {
    let conn = db(dir);
    let mut stmt = conn
        .prepare("SELECT id, outcome, sent_at, returned_at, attempts, tag FROM pings ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| {
        Ok(PingRow {
            id: r.get(0)?,
            outcome: r.get(1)?,
            sent_at: r.get(2)?,
            returned_at: r.get(3)?,
            attempts: r.get(4)?,
            tag: r.get(5)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn mail_kinds(dir: &Path) -> Vec<(String, Option<String>)> {
    let conn = db(dir);
    let mut stmt = conn.prepare("SELECT kind, detail FROM mails ORDER BY id").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
}

fn mtime(path: &Path) -> i64 {
    std::fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A pinger in a temp dir that knows `remailer` with the key reply `reply`.
fn setup(user: &str, imap: bool, reply: &str, extra: &str) -> (tempfile::TempDir, PathBuf) {
    clear_mailbox(user);
    let dir = tempfile::tempdir().unwrap();
    let config = pinger_config(dir.path(), user, imap, extra);
    let address = reply.split('<').nth(1).unwrap().split('>').next().unwrap().to_owned();
    run_ok(fathometer(&config).args(["add", &address]));
    let key = dir.path().join("key-reply.txt");
    std::fs::write(&key, reply).unwrap();
    let out = run_ok(fathometer(&config).arg("import-keys").arg(&key));
    assert!(out.contains("added: cpunk-dsa key"), "{out}");
    (dir, config)
}

fn stats_json(config: &Path) -> serde_json::Value {
    serde_json::from_str(&run_ok(fathometer(config).args(["stats", "--format", "json"]))).unwrap()
}

#[test]
fn a_ping_goes_through_postfix_and_a_remailer_and_is_counted_from_the_maildir() {
    let _mta = mta_shared();
    if !available() {
        return;
    }
    let (rem, reply) = remailer("remailer1", Behaviour::Forward);
    let (dir, config) = setup("ping1", false, &reply, "");

    let out = run_ok(fathometer(&config).args(["ping", "remailer1"]));
    assert!(out.contains("accepted by the MTA"), "{out}");
    assert!(rem.wait_handled(1, Duration::from_secs(20)), "remailer errors: {:?}", rem.errors());
    assert!(wait_until(Duration::from_secs(20), || files_in("ping1", "new").len() == 1));
    let delivered_by = unix_now();
    // Latency is measured at delivery, not when the ingester gets round to it.
    std::thread::sleep(Duration::from_secs(2));
    let out = run_ok(fathometer(&config).args(["ingest", "--once"]));
    assert!(out.contains("1 returned"), "{out}");

    let rows = pings(dir.path());
    assert_eq!(rows.len(), 1);
    let ping = &rows[0];
    assert_eq!(ping.outcome, "returned");
    let settled = files_in("ping1", "cur");
    assert_eq!(settled.len(), 1, "the mail moved to cur/ after the commit");
    assert!(files_in("ping1", "new").is_empty());
    assert_eq!(ping.returned_at, Some(mtime(&settled[0])), "latency ends at the file time");
    let (sent, returned) = (ping.sent_at.unwrap(), ping.returned_at.unwrap());
    assert!(sent <= returned && returned <= delivered_by, "latency excludes the 2 s wait");

    let stats = stats_json(&config);
    let entry = &stats["lists"]["cpunk"][0];
    assert_eq!(entry["nick"], "remailer1");
    assert_eq!(entry["pings_returned"], 1);
    assert_eq!(entry["returns"]["returned"], 1);
    assert_eq!(entry["reliability"], 1.0);

    // `ping --stdout` for piping into another MTA: a real remailer decrypts what it prints.
    let message = run_ok(fathometer(&config).args(["ping", "remailer1", "--stdout"]));
    assert!(message.contains("\nEncrypted: PGP\n"), "{message}");
    smtp_send(smtp_addr(), "ping1@localhost", &["remailer1@localhost".into()], &message).unwrap();
    assert!(rem.wait_handled(2, Duration::from_secs(20)), "{:?}", rem.errors());
    assert!(wait_until(Duration::from_secs(20), || files_in("ping1", "new").len() == 1));
    let out = run_ok(fathometer(&config).args(["ingest", "--once"]));
    assert!(out.contains("1 returned"), "{out}");
    assert!(pings(dir.path()).iter().all(|p| p.outcome == "returned"));
}

#[test]
fn a_two_hop_chain_returns_through_both_remailers() {
    let _mta = mta_shared();
    if !available() {
        return;
    }
    let (first, reply1) =
        remailer_with("remailer3", crate::support::gpg::KeyShape::Rsa2048, Behaviour::Forward);
    let (second, reply2) = remailer("remailer4", Behaviour::Forward);
    let (dir, config) = setup("ping3", false, &reply2, "");
    run_ok(fathometer(&config).args(["add", "remailer3@localhost"]));
    let key = dir.path().join("rsa-reply.txt");
    std::fs::write(&key, &reply1).unwrap();
    let out = run_ok(fathometer(&config).arg("import-keys").arg(&key));
    assert!(out.contains("added: cpunk-rsa key"), "{out}");

    let out = run_ok(fathometer(&config).args(["ping", "--chain", "remailer3,remailer4"]));
    assert!(out.contains("remailer3 -> remailer4"), "{out}");
    assert!(first.wait_handled(1, Duration::from_secs(20)), "{:?}", first.errors());
    assert!(second.wait_handled(1, Duration::from_secs(20)), "{:?}", second.errors());
    // The first hop saw only the second hop's encrypted layer.
    let hop1 = first.forwarded();
    assert!(hop1[0].contains("To: remailer4@localhost") && hop1[0].contains("Encrypted: PGP"));
    assert!(!hop1[0].contains("ping3+"), "hop 1 must not see our return address");
    assert!(wait_until(Duration::from_secs(20), || files_in("ping3", "new").len() == 1));
    let out = run_ok(fathometer(&config).args(["ingest", "--once"]));
    assert!(out.contains("1 returned"), "{out}");
    let conn = db(dir.path());
    let (chain_type, outcome): (String, String) = conn
        .query_row("SELECT chain_type, outcome FROM pings", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!((chain_type.as_str(), outcome.as_str()), ("cpunk", "returned"));
}

#[test]
fn the_daemon_sends_and_ingests_over_imap_idle() {
    let _mta = mta_shared();
    if !available() {
        return;
    }
    let (rem, reply) = remailer("remailer2", Behaviour::Forward);
    let (dir, config) = setup("ping2", true, &reply, "[schedule]\ntick_secs = 1\n");
    let mut daemon = start_daemon(&config);
    // Give IMAP time to log in and enter IDLE, then ping.
    std::thread::sleep(Duration::from_secs(1));
    run_ok(fathometer(&config).args(["ping", "remailer2"]));
    assert!(rem.wait_handled(1, Duration::from_secs(20)), "{:?}", rem.errors());
    let back = wait_until(Duration::from_secs(20), || {
        pings(dir.path()).iter().any(|p| p.outcome == "returned")
    });
    // The daemon's own control mail went round the same MTA and mailbox.
    let self_check = wait_until(Duration::from_secs(20), || {
        db(dir.path())
            .query_row("SELECT COUNT(*) FROM self_checks WHERE returned_at IS NOT NULL", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
            >= 1
    });
    let (status, log) = stop_with_log(&mut daemon, Duration::from_secs(5));
    assert!(back, "the return was not ingested over IMAP; daemon log:\n{log}");
    assert!(self_check, "the self-check did not come back; daemon log:\n{log}");
    assert!(status.is_some_and(|s| s.success()), "daemon exit {status:?}\n{log}");
    let ping = pings(dir.path()).into_iter().find(|p| p.outcome == "returned").unwrap();
    let latency = ping.returned_at.unwrap() - ping.sent_at.unwrap();
    assert!((0..30).contains(&latency), "INTERNALDATE latency {latency}");
}

/// Sends `text` as a mail to `to` through Postfix.
fn deliver(to: &str, text: &str) {
    smtp_send(smtp_addr(), "attacker@localhost", &[to.to_owned()], text).unwrap();
}

#[test]
fn forged_replayed_corrupted_and_bounced_returns_are_never_counted_as_returned() {
    let _mta = mta_shared();
    if !available() {
        return;
    }
    // A remailer that delivers every return twice (a replay) ...
    let (dup, reply) = remailer("remailer5", Behaviour::Duplicate);
    let (dir, config) = setup("ping4", false, &reply, "");
    run_ok(fathometer(&config).args(["ping", "remailer5"]));
    assert!(dup.wait_handled(1, Duration::from_secs(20)), "{:?}", dup.errors());
    assert!(wait_until(Duration::from_secs(20), || files_in("ping4", "new").len() == 2));
    drop(dup);
    let out = run_ok(fathometer(&config).args(["ingest", "--once"]));
    assert!(out.contains("1 returned") && out.contains("1 duplicate"), "{out}");

    // ... and one that alters what it forwards.
    let (bad, bad_reply) = remailer("remailer7", Behaviour::Corrupt);
    let key = dir.path().join("remailer7-reply.txt");
    std::fs::write(&key, bad_reply).unwrap();
    run_ok(fathometer(&config).args(["add", "remailer7@localhost"]));
    run_ok(fathometer(&config).arg("import-keys").arg(&key));
    run_ok(fathometer(&config).args(["ping", "remailer7"]));
    assert!(bad.wait_handled(1, Duration::from_secs(20)), "{:?}", bad.errors());
    assert!(wait_until(Duration::from_secs(20), || files_in("ping4", "new").len() == 1));
    let out = run_ok(fathometer(&config).args(["ingest", "--once"]));
    assert!(out.contains("1 corrupted"), "{out}");
    // It mends its ways: the next ping comes back intact.
    bad.set_behaviour(Behaviour::Forward);
    run_ok(fathometer(&config).args(["ping", "remailer7"]));
    assert!(bad.wait_handled(2, Duration::from_secs(20)), "{:?}", bad.errors());
    assert!(wait_until(Duration::from_secs(20), || files_in("ping4", "new").len() == 1));
    let out = run_ok(fathometer(&config).args(["ingest", "--once"]));
    assert!(out.contains("1 returned"), "{out}");
    drop(bad);

    // Made up without the secret: to a real ping's tag (the last hop knows it) and to a tag
    // we never issued.
    let rows = pings(dir.path());
    let tag = rows[0].tag.clone().unwrap();
    let armour = "-----BEGIN PGP MESSAGE-----\n\njA0ECQMCbm90IG91cnMgYXQgYWxs0kQBAgMEBQYHCAkKCwwNDg8Q\n=abcd\n-----END PGP MESSAGE-----\n";
    deliver(&format!("ping4+{tag}@localhost"), &format!("Subject: x\n\n{armour}"));
    deliver("ping4+abcdefghijklmnop@localhost", &format!("Subject: y\n\n{armour}"));
    // A delivery status notification for the corrupted ping.
    let bounced_tag = rows[1].tag.clone().unwrap();
    deliver(
        &format!("ping4+{bounced_tag}@localhost"),
        "From: MAILER-DAEMON@localhost (Mail Delivery System)\n\
         Subject: Undelivered Mail Returned to Sender\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n\
         --B\nContent-Type: text/plain\n\nI could not deliver your message.\n\
         --B\nContent-Type: message/delivery-status\n\n\
         Reporting-MTA: dns; mx.example\n\nFinal-Recipient: rfc822; gone@example.org\n\
         Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\n\n--B--\n",
    );
    assert!(wait_until(Duration::from_secs(20), || files_in("ping4", "new").len() == 3));
    let out = run_ok(fathometer(&config).args(["ingest", "--once"]));
    assert!(out.contains("2 forged") && out.contains("1 bounced"), "{out}");

    let kinds = mail_kinds(dir.path());
    let count = |k: &str| kinds.iter().filter(|(kind, _)| kind == k).count();
    assert_eq!(
        (count("returned"), count("duplicate"), count("corrupted"), count("forged")),
        (2, 1, 1, 2),
        "{kinds:?}"
    );
    let bounce = kinds.iter().find(|(k, _)| k == "bounced").unwrap();
    assert!(bounce.1.as_deref().unwrap().contains("550 5.1.1"), "{bounce:?}");
    // The forgeries and the corrupted copy wait in the quarantine with their reasons.
    assert_eq!(files_in("ping4", ".Quarantine/cur").len(), 3);
    let out = run_ok(fathometer(&config).arg("quarantine"));
    assert!(out.contains("no ping has tag abcdefghijklmnop"), "{out}");
    // Only the genuine first copy counts (and remailer7's intact return).
    let rows = pings(dir.path());
    assert_eq!(rows.iter().filter(|p| p.outcome == "returned").count(), 2);
    let stats = stats_json(&config);
    let entry = |nick: &str| {
        stats["lists"]["cpunk"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["nick"] == nick)
            .unwrap()
            .clone()
    };
    let replayed = entry("remailer5");
    assert_eq!(replayed["returns"]["duplicate"], 1, "{replayed}");
    assert_eq!(replayed["returns"]["forged"], 1, "attributed to the ping's remailer: {replayed}");
    assert_eq!(replayed["pings_returned"], 1, "{replayed}");
    let altered = entry("remailer7");
    assert_eq!(altered["returns"]["corrupted"], 1, "{altered}");
    assert_eq!(altered["returns"]["bounced"], 1, "{altered}");
    assert_eq!(altered["pings_returned"], 1, "{altered}");
    // Two pings, one came back altered: 50 % at once, minutes after it was sent (the
    // pinger knew the moment the mail arrived).
    assert_eq!(altered["reliability"], 0.5, "{altered}");
    // Echolot cannot tell, and counts the altered ping as still in flight: too young to weigh.
    let echolot: serde_json::Value = serde_json::from_str(&run_ok(
        fathometer(&config).args(["stats", "--format", "json", "--model", "echolot"]),
    ))
    .unwrap();
    let altered = echolot["lists"]["cpunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["nick"] == "remailer7")
        .unwrap()
        .clone();
    assert_eq!(altered["reliability"], 1.0, "{altered}");
}

#[test]
fn a_crash_between_receipt_and_commit_loses_nothing_and_counts_nothing_twice() {
    let _mta = mta_shared();
    if !available() {
        return;
    }
    let (rem, reply) = remailer("remailer6", Behaviour::Forward);
    let (dir, config) = setup("ping5", false, &reply, "");
    for crash_point in ["ingest-before-commit", "ingest-after-commit"] {
        run_ok(fathometer(&config).args(["ping", "remailer6"]));
        assert!(wait_until(Duration::from_secs(20), || files_in("ping5", "new").len() == 1));
        let crashed = run(fathometer(&config)
            .args(["ingest", "--once"])
            .env("FATHOMETER_CRASH_POINT", crash_point));
        assert!(!crashed.status.success(), "{crash_point}: the process must die");
        assert_eq!(files_in("ping5", "new").len(), 1, "{crash_point}: the mail is still there");
        let out = run_ok(fathometer(&config).args(["ingest", "--once"]));
        if crash_point == "ingest-before-commit" {
            assert!(out.contains("1 returned"), "{out}");
        } else {
            assert!(out.contains("1 recorded before a restart"), "{out}");
        }
        assert!(files_in("ping5", "new").is_empty());
    }
    drop(rem);
    let rows = pings(dir.path());
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|p| p.outcome == "returned"), "{rows:?}");
    let kinds = mail_kinds(dir.path());
    assert_eq!(kinds.len(), 2, "each mail recorded once: {kinds:?}");
}

/// Runs `postfix -c <the test instance> <action>`; true on success.
fn postfix(action: &str) -> bool {
    Command::new("postfix")
        .arg("-c")
        .arg(state_dir().join("postfix"))
        .arg(action)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Stops Postfix; starts it again when dropped, even if the test fails, so that no other
/// test finds the MTA gone.
struct PostfixStopped;

impl PostfixStopped {
    fn new() -> PostfixStopped {
        assert!(postfix("stop"), "postfix stop");
        PostfixStopped
    }

    fn restart(&self) {
        // The master may still be shutting down just after a stop: try for a few seconds.
        let started = wait_until(Duration::from_secs(10), || postfix("status") || postfix("start"));
        assert!(started, "postfix start");
    }
}

impl Drop for PostfixStopped {
    fn drop(&mut self) {
        self.restart();
    }
}

#[test]
fn pings_wait_while_the_mta_is_down_and_are_never_charged_for_it() {
    let _mta = MTA.write().unwrap_or_else(|p| p.into_inner());
    if !available() {
        return;
    }
    let (rem, reply) = remailer("remailer8", Behaviour::Forward);
    let (dir, config) = setup("ping6", false, &reply, "[schedule]\ntick_secs = 1\n");
    let outage = PostfixStopped::new();
    // While Postfix is down, a manual ping fails at once: recorded as not sent.
    let refused = run(fathometer(&config).args(["ping", "remailer8"]));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not charged"));
    // A scheduled ping waits in the outbox and retries with backoff.
    {
        let mut store =
            fathometer::store::Store::open(&dir.path().join("state/fathometer.sqlite")).unwrap();
        let r = store.find_remailer("remailer8@localhost").unwrap();
        let now = chrono::Utc::now().timestamp();
        let due = [fathometer::model::DueSinglePing { key_row_id: r.keys[0].id, slot_time: now }];
        assert_eq!(store.queue_single_pings(&due, now).unwrap(), 1);
    }
    let mut daemon =
        fathometer(&config).arg("run").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let retried = wait_until(Duration::from_secs(15), || {
        pings(dir.path()).iter().any(|p| p.outcome == "queued" && p.attempts >= 2)
    });
    outage.restart();
    let returned = wait_until(Duration::from_secs(30), || {
        pings(dir.path()).iter().any(|p| p.outcome == "returned")
    });
    stop(&mut daemon, Duration::from_secs(5));
    assert!(retried, "the daemon retried while Postfix was down: {:?}", pings(dir.path()));
    assert!(returned, "the ping went out once Postfix was back: {:?}", pings(dir.path()));
    drop(rem);
    let rows = pings(dir.path());
    let not_sent: Vec<_> = rows.iter().filter(|p| p.outcome == "not_sent").collect();
    assert_eq!(not_sent.len(), 1, "{rows:?}");
    assert_eq!(not_sent[0].sent_at, None);
    // Not sent is not lost: the remailer's record is the one returned ping.
    let entry = &stats_json(&config)["lists"]["cpunk"][0];
    assert_eq!(entry["pings_sent"], 1, "{entry}");
    assert_eq!(entry["reliability"], 1.0, "{entry}");
    assert!(maildir("ping6").exists());
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
