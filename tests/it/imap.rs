//! Integration tests of the IMAP mail source against the real Dovecot (127.0.0.1:1143) and
//! Postfix (127.0.0.1:2525) started by shared/mail-services.sh. Mailbox user: ping7 only.
//!
//! Every test marks its own mail with a unique marker and filters on it, so leftover mail from
//! earlier (failed) runs does not matter. Tests share one mailbox, and `run` processes every
//! unseen message, so they are serialised with a lock.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fathometer::ingest::RawMail;
use fathometer::ingest::imap::{
    Disposition, Extensions, FetchedMail, ImapError, ImapMailbox, ImapSettings, ImapTls, run,
};
use tokio::sync::watch;

static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const USER: &str = "ping7";
const PASSWORD: &str = "ping7-pass";
const QUARANTINE: &str = "Quarantine";

fn imap_port() -> u16 {
    std::env::var("MAIL_IMAP_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(1143)
}

fn smtp_port() -> u16 {
    std::env::var("MAIL_SMTP_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(2525)
}

fn settings() -> ImapSettings {
    let mut s = ImapSettings::new("127.0.0.1", imap_port(), USER, PASSWORD);
    s.quarantine_folder = QUARANTINE.to_owned();
    s
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn marker(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("fmtest-{test}-{nanos}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Minimal SMTP client: one message to ping7+<tag>@localhost carrying `marker`.
fn send_mail_blocking(marker: &str) {
    send_padded_mail_blocking(marker, 0);
}

/// [`send_mail_blocking`] with `padding` more bytes of body (lines of 76 `x`).
fn send_padded_mail_blocking(marker: &str, padding: usize) {
    let stream = TcpStream::connect(("127.0.0.1", smtp_port())).expect("SMTP connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let expect = |code: &str, reader: &mut BufReader<TcpStream>| loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with(code), "SMTP: expected {code}, got {line:?}");
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    };
    expect("220", &mut reader);
    let tag = marker.rsplit('-').next().unwrap();
    let steps: [(String, &str); 4] = [
        ("EHLO test.localhost\r\n".into(), "250"),
        ("MAIL FROM:<tester@localhost>\r\n".into(), "250"),
        (format!("RCPT TO:<{USER}+{tag}@localhost>\r\n"), "250"),
        ("DATA\r\n".into(), "354"),
    ];
    for (cmd, code) in steps {
        writer.write_all(cmd.as_bytes()).unwrap();
        expect(code, &mut reader);
    }
    let line = format!("{}\r\n", "x".repeat(76));
    let body = format!(
        "From: tester@localhost\r\nTo: {USER}@localhost\r\nSubject: {marker}\r\n\
         Message-ID: <{marker}@localhost>\r\n\r\nping reply body {marker}\r\n{}.\r\n",
        line.repeat(padding / line.len())
    );
    writer.write_all(body.as_bytes()).unwrap();
    expect("250", &mut reader);
    writer.write_all(b"QUIT\r\n").unwrap();
}

async fn send_mail(marker: &str) {
    let m = marker.to_owned();
    tokio::task::spawn_blocking(move || send_mail_blocking(&m)).await.unwrap();
}

fn has_marker(mail: &FetchedMail, marker: &str) -> bool {
    mail.raw.windows(marker.len()).any(|w| w == marker.as_bytes())
}

/// What `run` hands its handler: the mail as the ingester sees it.
fn handed_marker(mail: &RawMail, marker: &str) -> bool {
    mail.bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
}

/// The UID in a handed mail's source, `imap:<validity>:<uid>`.
fn handed_uid(mail: &RawMail) -> u32 {
    mail.source.rsplit(':').next().and_then(|u| u.parse().ok()).expect("imap:<validity>:<uid>")
}

/// Fetches until a mail carrying `marker` shows up (delivery takes a moment).
async fn wait_for_marker(mb: &mut ImapMailbox, marker: &str) -> FetchedMail {
    let start = Instant::now();
    loop {
        let mails = mb.fetch_unseen().await.expect("fetch_unseen");
        if let Some(m) = mails.into_iter().find(|m| has_marker(m, marker)) {
            return m;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "mail {marker} never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn find_unseen(mb: &mut ImapMailbox, marker: &str) -> Vec<FetchedMail> {
    mb.fetch_unseen()
        .await
        .expect("fetch_unseen")
        .into_iter()
        .filter(|m| has_marker(m, marker))
        .collect()
}

#[tokio::test]
async fn a_mail_larger_than_the_limit_is_fetched_only_up_to_it() {
    if !crate::support::mail::available() {
        return;
    }
    let _guard = LOCK.lock().await;
    let marker = marker("huge");
    let mut mb = ImapMailbox::connect(&settings()).await.expect("connect");
    let m = marker.clone();
    tokio::task::spawn_blocking(move || send_padded_mail_blocking(&m, 3 << 20)).await.unwrap();
    let mail = wait_for_marker(&mut mb, &marker).await;
    let limit = fathometer::ingest::MAX_MAIL_BYTES;
    assert_eq!(mail.raw.len(), limit + 1, "only the first bytes are fetched");
    assert!(mail.size.is_some_and(|s| s > 3 << 20), "{:?}", mail.size);
    mb.settle(mail.uid, Disposition::Quarantined).await.expect("settle");
    assert!(find_unseen(&mut mb, &marker).await.is_empty());
    mb.logout().await;
}

#[tokio::test]
async fn fetch_peeks_and_settle_processed_marks_seen() {
    if !crate::support::mail::available() {
        return;
    }
    let _guard = LOCK.lock().await;
    let marker = marker("seen");
    let mut mb = ImapMailbox::connect(&settings()).await.expect("connect");
    let sent_at = unix_now();
    send_mail(&marker).await;
    let mail = wait_for_marker(&mut mb, &marker).await;
    assert_eq!(mail.uid_validity, mb.uid_validity());
    let date = mail.internal_date.expect("INTERNALDATE");
    let seen_at = unix_now();
    assert!(
        sent_at - 1 <= date && date <= seen_at,
        "INTERNALDATE {date} between the send ({sent_at}) and the fetch ({seen_at})"
    );
    assert!(
        mail.raw.starts_with(b"Return-Path:")
            || mail.raw.windows(13).any(|w| w == b"Delivered-To:")
    );
    eprintln!("INTERNALDATE - send time = {} s", date - sent_at);

    // Fetching used BODY.PEEK[]: still unseen, on this and on a fresh connection.
    let again = find_unseen(&mut mb, &marker).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].uid, mail.uid);
    assert_eq!(again[0].raw, mail.raw);
    let mut other = ImapMailbox::connect(&settings()).await.expect("connect");
    assert_eq!(find_unseen(&mut other, &marker).await.len(), 1);

    mb.settle(mail.uid, Disposition::Processed).await.expect("settle");
    assert!(find_unseen(&mut mb, &marker).await.is_empty());
    // The other open session sees the change too (fetch_unseen starts with NOOP, which
    // syncs), and so does a fresh one.
    assert!(find_unseen(&mut other, &marker).await.is_empty());
    other.logout().await;
    let mut fresh = ImapMailbox::connect(&settings()).await.expect("connect");
    assert!(find_unseen(&mut fresh, &marker).await.is_empty());
    fresh.logout().await;
    mb.logout().await;
}

/// Checks that `marker` sits unseen in the quarantine folder, then marks it seen there.
async fn assert_in_quarantine(marker: &str) {
    let mut s = settings();
    s.folder = QUARANTINE.to_owned();
    // Earlier runs leave unseen mail in the folder, and a fetch returns a bounded batch,
    // oldest first: mark what is not ours as seen until ours shows up or nothing is left.
    let mut found = Vec::new();
    let mut q = ImapMailbox::connect(&s).await.expect("SELECT quarantine folder");
    for _ in 0..100 {
        let batch = q.fetch_unseen().await.expect("fetch_unseen");
        if batch.is_empty() {
            break;
        }
        for mail in batch {
            q.settle(mail.uid, Disposition::Processed).await.expect("settle in quarantine");
            if has_marker(&mail, marker) {
                found.push(mail);
            }
        }
        if !found.is_empty() {
            break;
        }
    }
    q.logout().await;
    assert_eq!(found.len(), 1, "{marker} not in {QUARANTINE}");
}

#[tokio::test]
async fn settle_quarantined_moves_to_quarantine_folder() {
    if !crate::support::mail::available() {
        return;
    }
    let _guard = LOCK.lock().await;
    let mut mb = ImapMailbox::connect(&settings()).await.expect("connect");
    assert!(mb.extensions().move_, "Dovecot advertises MOVE");

    // With MOVE.
    let m1 = marker("quarantine-move");
    send_mail(&m1).await;
    let mail = wait_for_marker(&mut mb, &m1).await;
    mb.settle(mail.uid, Disposition::Quarantined).await.expect("quarantine (MOVE)");
    assert!(find_unseen(&mut mb, &m1).await.is_empty());
    assert_in_quarantine(&m1).await;

    // Fallback: COPY + \Deleted + UID EXPUNGE.
    mb.restrict_extensions(Extensions { idle: true, move_: false, uidplus: true });
    let m2 = marker("quarantine-copy-uidplus");
    send_mail(&m2).await;
    let mail = wait_for_marker(&mut mb, &m2).await;
    mb.settle(mail.uid, Disposition::Quarantined).await.expect("quarantine (COPY, UID EXPUNGE)");
    assert!(find_unseen(&mut mb, &m2).await.is_empty());
    assert_in_quarantine(&m2).await;

    // Fallback without UIDPLUS: COPY + \Deleted + EXPUNGE.
    mb.restrict_extensions(Extensions { idle: true, move_: false, uidplus: false });
    let m3 = marker("quarantine-copy-expunge");
    send_mail(&m3).await;
    let mail = wait_for_marker(&mut mb, &m3).await;
    mb.settle(mail.uid, Disposition::Quarantined).await.expect("quarantine (COPY, EXPUNGE)");
    assert!(find_unseen(&mut mb, &m3).await.is_empty());
    assert_in_quarantine(&m3).await;
    assert!(mb.is_connected());
    mb.logout().await;
}

#[tokio::test]
async fn refused_settle_keeps_the_session() {
    if !crate::support::mail::available() {
        return;
    }
    let _guard = LOCK.lock().await;
    let mut s = settings();
    s.quarantine_folder = "fmtest-bad\u{1}name*".to_owned();
    let mut mb = ImapMailbox::connect(&s).await.expect("connect");
    let m = marker("refused");
    send_mail(&m).await;
    let mail = wait_for_marker(&mut mb, &m).await;
    let err = mb.settle(mail.uid, Disposition::Quarantined).await.expect_err("bad folder name");
    eprintln!("refused quarantine: {err}");
    assert!(matches!(err, ImapError::Command { .. }), "{err:?}");
    assert!(mb.is_connected(), "a NO/BAD answer must not drop the session");
    // Still unseen, still in the folder; clean up.
    let again = find_unseen(&mut mb, &m).await;
    assert_eq!(again.len(), 1);
    mb.settle(mail.uid, Disposition::Processed).await.expect("settle");
    mb.logout().await;
}

#[tokio::test]
async fn idle_wakes_up_on_delivery() {
    if !crate::support::mail::available() {
        return;
    }
    let _guard = LOCK.lock().await;
    let marker = marker("idle");
    let mut mb = ImapMailbox::connect(&settings()).await.expect("connect");
    assert!(mb.extensions().idle, "Dovecot advertises IDLE");
    mb.fetch_unseen().await.expect("fetch_unseen");
    let (_tx, mut rx) = watch::channel(false);

    let m = marker.clone();
    let sender = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        send_mail(&m).await;
        Instant::now()
    });
    let start = Instant::now();
    let mail = loop {
        mb.wait_for_mail(Duration::from_secs(30), Duration::from_secs(30), &mut rx)
            .await
            .expect("wait_for_mail");
        // Any change wakes IDLE (e.g. late mail from another test); look and go on waiting.
        if let Some(m) = find_unseen(&mut mb, &marker).await.pop() {
            break m;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "IDLE never reported {marker}");
    };
    let woke = Instant::now();
    let sent = sender.await.unwrap();
    let latency = woke.saturating_duration_since(sent);
    eprintln!("IDLE wake-up + fetch latency after SMTP send completed: {latency:?}");
    // Well under the 30 s poll: IDLE, not polling, delivered it (Postfix's own delivery
    // time is in this figure too, so the bound leaves room for a slow machine).
    assert!(latency < Duration::from_secs(15), "IDLE took {latency:?}");
    mb.settle(mail.uid, Disposition::Processed).await.expect("settle");
    mb.logout().await;
}

#[tokio::test]
async fn idle_returns_on_timeout_and_shutdown() {
    if !crate::support::mail::available() {
        return;
    }
    let _guard = LOCK.lock().await;
    let mut mb = ImapMailbox::connect(&settings()).await.expect("connect");
    mb.fetch_unseen().await.expect("fetch_unseen");
    let (tx, mut rx) = watch::channel(false);

    // max_wait bounds IDLE (nothing is delivered meanwhile).
    let start = Instant::now();
    mb.wait_for_mail(Duration::from_millis(1500), Duration::from_secs(60), &mut rx).await.unwrap();
    let took = start.elapsed();
    eprintln!("IDLE with max_wait 1.5 s returned after {took:?}");
    assert!(took >= Duration::from_millis(1400) && took < Duration::from_secs(4), "{took:?}");

    // Shutdown ends IDLE early, and the session (DONE was sent) stays usable.
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        tx.send(true).unwrap();
        tx
    });
    let start = Instant::now();
    mb.wait_for_mail(Duration::from_secs(30), Duration::from_secs(30), &mut rx).await.unwrap();
    let took = start.elapsed();
    eprintln!("IDLE interrupted by shutdown after {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(mb.is_connected());
    mb.fetch_unseen().await.expect("session usable after IDLE DONE");

    // Already shut down: returns at once.
    let start = Instant::now();
    mb.wait_for_mail(Duration::from_secs(30), Duration::from_secs(30), &mut rx).await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(100));
    drop(stopper.await.unwrap());
    mb.logout().await;
}

#[tokio::test]
async fn polling_without_idle() {
    if !crate::support::mail::available() {
        return;
    }
    let _guard = LOCK.lock().await;
    let mut s = settings();
    s.use_idle = false;
    let mut mb = ImapMailbox::connect(&s).await.expect("connect");
    mb.fetch_unseen().await.expect("fetch_unseen");
    let (tx, mut rx) = watch::channel(false);

    let start = Instant::now();
    mb.wait_for_mail(Duration::from_secs(30), Duration::from_millis(800), &mut rx).await.unwrap();
    let took = start.elapsed();
    eprintln!("poll wait (poll_interval 0.8 s) took {took:?}");
    assert!(took >= Duration::from_millis(750) && took < Duration::from_secs(3), "{took:?}");

    // max_wait shorter than the poll interval wins.
    let start = Instant::now();
    mb.wait_for_mail(Duration::from_millis(300), Duration::from_secs(30), &mut rx).await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(2));

    // Polling finds delivered mail.
    let marker = marker("poll");
    send_mail(&marker).await;
    let start = Instant::now();
    let mail = loop {
        mb.wait_for_mail(Duration::from_secs(30), Duration::from_millis(500), &mut rx)
            .await
            .unwrap();
        if let Some(m) = find_unseen(&mut mb, &marker).await.pop() {
            break m;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "polling never found {marker}");
    };
    mb.settle(mail.uid, Disposition::Processed).await.unwrap();

    // Shutdown ends the poll sleep.
    tx.send(true).unwrap();
    let start = Instant::now();
    mb.wait_for_mail(Duration::from_secs(30), Duration::from_secs(30), &mut rx).await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(100));
    mb.logout().await;
}

#[derive(Default)]
struct Seen {
    attempts: u32,
    processed_uid: Option<u32>,
    others: u32,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

async fn run_round_trip(use_idle: bool) {
    init_tracing();
    let marker = marker(if use_idle { "run-idle" } else { "run-poll" });
    let mut s = settings();
    s.use_idle = use_idle;
    s.poll_interval = Duration::from_secs(1);
    let state = Arc::new(Mutex::new(Seen::default()));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();

    let st = state.clone();
    let m = marker.clone();
    let handler = move |mail: RawMail| {
        let st = st.clone();
        let done_tx = done_tx.clone();
        let ours = handed_marker(&mail, &m);
        let uid = handed_uid(&mail);
        async move {
            tokio::task::yield_now().await;
            if !ours {
                // Leftovers from earlier runs: clean them up.
                st.lock().unwrap().others += 1;
                return Ok(Disposition::Processed);
            }
            let attempt = {
                let mut st = st.lock().unwrap();
                st.attempts += 1;
                st.attempts
            };
            if attempt == 1 {
                return Err(format!("simulated database failure for uid {uid}"));
            }
            st.lock().unwrap().processed_uid = Some(uid);
            let _ = done_tx.send(uid);
            Ok(Disposition::Processed)
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(s.clone(), handler, stop_rx));

    // Deliver while `run` is already waiting.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let sent = Instant::now();
    send_mail(&marker).await;
    let uid = tokio::time::timeout(Duration::from_secs(20), done_rx.recv())
        .await
        .expect("run never processed the mail")
        .unwrap();
    eprintln!(
        "run (idle={use_idle}): mail processed {:?} after send, on attempt {}",
        sent.elapsed(),
        state.lock().unwrap().attempts
    );
    assert_eq!(state.lock().unwrap().attempts, 2, "first attempt fails, second succeeds");

    let start = Instant::now();
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("run did not stop").unwrap();
    let took = start.elapsed();
    eprintln!("run (idle={use_idle}) stopped {took:?} after shutdown");
    assert!(took < Duration::from_secs(2), "{took:?}");

    let mut mb = ImapMailbox::connect(&s).await.expect("connect");
    assert!(find_unseen(&mut mb, &marker).await.is_empty(), "uid {uid} still unseen");
    mb.logout().await;
}

#[tokio::test]
async fn run_processes_retries_and_stops_with_idle() {
    if !crate::support::mail::available() {
        return;
    }
    let _guard = LOCK.lock().await;
    run_round_trip(true).await;
}

#[tokio::test]
async fn run_processes_retries_and_stops_polling() {
    if !crate::support::mail::available() {
        return;
    }
    let _guard = LOCK.lock().await;
    run_round_trip(false).await;
}

#[tokio::test]
async fn run_keeps_retrying_a_dead_server_and_stops_on_shutdown() {
    if !crate::support::mail::available() {
        return;
    }
    init_tracing();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = ImapSettings::new("127.0.0.1", port, USER, PASSWORD);
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let handler = move |_mail: RawMail| {
        c.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, String>(Disposition::Processed) }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(s, handler, stop_rx));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!task.is_finished(), "run must not give up");
    let start = Instant::now();
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task).await.expect("run did not stop").unwrap();
    eprintln!("run (dead server) stopped {:?} after shutdown", start.elapsed());
    assert_eq!(calls.load(Ordering::Relaxed), 0);

    // A dropped sender counts as shutdown too.
    let (stop_tx, stop_rx) = watch::channel(false);
    let s = ImapSettings::new("127.0.0.1", port, USER, PASSWORD);
    let task = tokio::spawn(run(
        s,
        |_m: RawMail| async { Ok::<_, String>(Disposition::Processed) },
        stop_rx,
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stop_tx);
    tokio::time::timeout(Duration::from_secs(2), task).await.expect("run did not stop").unwrap();
}

#[tokio::test]
async fn wrong_password_is_a_login_error() {
    if !crate::support::mail::available() {
        return;
    }
    let mut s = settings();
    s.password = "not-the-password".to_owned();
    let err = ImapMailbox::connect(&s).await.expect_err("login must fail");
    let msg = err.to_string();
    eprintln!("wrong password: {msg}");
    assert!(matches!(err, ImapError::Login { .. }), "{err:?}");
    assert!(msg.contains("login") && msg.contains(USER), "{msg}");
    assert!(!msg.contains("not-the-password"), "password leaked: {msg}");
}

#[tokio::test]
async fn closed_port_is_a_connect_error() {
    if !crate::support::mail::available() {
        return;
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = ImapMailbox::connect(&ImapSettings::new("127.0.0.1", port, USER, PASSWORD))
        .await
        .expect_err("nothing listens there");
    eprintln!("closed port: {err}");
    assert!(matches!(err, ImapError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")));
}

#[tokio::test]
async fn missing_folder_is_a_select_error() {
    if !crate::support::mail::available() {
        return;
    }
    let mut s = settings();
    s.folder = "NoSuchFolder-fmtest".to_owned();
    let err = ImapMailbox::connect(&s).await.expect_err("folder does not exist");
    eprintln!("missing folder: {err}");
    assert!(matches!(err, ImapError::Select { .. }), "{err:?}");
}

#[tokio::test]
async fn tls_errors_against_a_plain_server() {
    if !crate::support::mail::available() {
        return;
    }
    // Dovecot here has no TLS: STARTTLS is refused, never silently skipped.
    let mut s = settings();
    s.tls = ImapTls::Starttls;
    let err = ImapMailbox::connect(&s).await.expect_err("no STARTTLS");
    eprintln!("STARTTLS: {err}");
    assert!(matches!(err, ImapError::Starttls { .. }), "{err:?}");

    // Implicit TLS against a plain-text greeting fails in the handshake.
    s.tls = ImapTls::Tls;
    let err = ImapMailbox::connect(&s).await.expect_err("no TLS");
    eprintln!("TLS: {err}");
    assert!(matches!(err, ImapError::Tls { .. }), "{err:?}");
}

/// Disconnects every session of our user (ping7 only) server-side, like a server restart or a
/// NAT timeout would. None if doveadm is not usable here.
fn kick_our_sessions() -> Option<()> {
    let conf = std::env::var("MAIL_STATE_DIR")
        .unwrap_or_else(|_| "/var/lib/fathometer-mail".to_owned())
        + "/dovecot/dovecot.conf";
    let out =
        std::process::Command::new("doveadm").args(["-c", &conf, "kick", USER]).output().ok()?;
    out.status.success().then_some(())
}

#[tokio::test]
async fn server_disconnect_during_idle() {
    if !crate::support::mail::available() {
        return;
    }
    let _guard = LOCK.lock().await;
    init_tracing();
    let mut mb = ImapMailbox::connect(&settings()).await.expect("connect");
    mb.fetch_unseen().await.expect("fetch_unseen");
    let (_tx, mut rx) = watch::channel(false);
    let kicker = tokio::spawn(async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        tokio::task::spawn_blocking(kick_our_sessions).await.unwrap()
    });
    let start = Instant::now();
    let r = mb.wait_for_mail(Duration::from_secs(30), Duration::from_secs(30), &mut rx).await;
    if kicker.await.unwrap().is_none() {
        eprintln!("doveadm kick not available; skipping");
        return;
    }
    let err = r.expect_err("the server closed the connection during IDLE");
    eprintln!("kicked during IDLE after {:?}: {err}", start.elapsed());
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(!mb.is_connected());
    assert!(matches!(mb.fetch_unseen().await, Err(ImapError::Disconnected)));
    mb.logout().await;

    // `run` reconnects after such a kick and processes mail delivered afterwards.
    let marker = marker("kick");
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
    let m = marker.clone();
    let handler = move |mail: RawMail| {
        if handed_marker(&mail, &m) {
            let _ = done_tx.send(handed_uid(&mail));
        }
        async { Ok::<_, String>(Disposition::Processed) }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(settings(), handler, stop_rx));
    tokio::time::sleep(Duration::from_millis(700)).await;
    tokio::task::spawn_blocking(kick_our_sessions).await.unwrap().expect("kick");
    let sent = Instant::now();
    send_mail(&marker).await;
    tokio::time::timeout(Duration::from_secs(15), done_rx.recv())
        .await
        .expect("run did not recover from the kick")
        .unwrap();
    eprintln!("run: mail after a kick processed {:?} after send", sent.elapsed());
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("run did not stop").unwrap();
}
