//! Type II pings end to end: the real binary builds Mixmaster packets natively, Postfix carries
//! them to remailer doubles (test support) holding the vector keys of the real Mixmaster
//! 3.0.2d remailers (1024, 2048 and 4096 bits), which decode and forward them hop by hop
//! through Postfix and deliver the payload to the pinger's Maildir; the daemon counts the
//! returns with their latency.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::gpg::GpgHome;
use crate::support::mail::{
    available, clear_mailbox, maildir, pinger_config, smtp_addr, wait_until,
};
use crate::support::remailer::{Behaviour, Profile, TestRemailer, smtp_send};
use crate::support::{fathometer, run_ok, start_daemon, stop_with_log};
use fathometer::compose::mixmaster;
use fathometer_testkit::mixmaster::SecretKey;

fn vector(name: &str) -> String {
    let path = format!("{}/tests/vectors/mixmaster/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

/// A type II remailer double at `user@localhost` with the key of vector remailer `testmix`.
fn mix_remailer(user: &str, testmix: &str) -> (TestRemailer, String) {
    clear_mailbox(user);
    let address = format!("{user}@localhost");
    let entry = vector(&format!("{testmix}.key.txt")).replacen(
        &format!("{testmix} {testmix}@localhost"),
        &format!("{user} {address}"),
        1,
    );
    let secret = SecretKey::parse_secring(
        &vector(&format!("{testmix}.secring.mix")),
        &format!("pass-{testmix}"),
    )
    .unwrap();
    let double = TestRemailer::start(
        &address,
        maildir(user),
        GpgHome::new(),
        smtp_addr(),
        Behaviour::Forward,
    );
    double.set_profile(Profile {
        nick: user.into(),
        caps: "mix remix inflt50 rhop5".into(),
        mix_entries: vec![entry.clone()],
        mix_secret: secret,
        ..Profile::default()
    });
    (double, entry)
}

fn returned(dir: &Path) -> Vec<(i64, i64, Option<String>)> {
    let conn = crate::support::state_db(dir);
    let mut stmt = conn
        .prepare(
            "SELECT sent_at, returned_at, chain_type FROM pings WHERE outcome = 'returned'
             ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn setup(pinger: &str, entries: &[&str]) -> (tempfile::TempDir, PathBuf) {
    clear_mailbox(pinger);
    let dir = tempfile::tempdir().unwrap();
    let config = pinger_config(dir.path(), pinger, false, "[schedule]\ntick_secs = 1\n");
    let keys = dir.path().join("pubring.mix");
    std::fs::write(&keys, entries.concat()).unwrap();
    let out = run_ok(fathometer(&config).arg("import-keys").arg("--add").arg(&keys));
    assert_eq!(out.matches("added: mix key").count(), entries.len(), "{out}");
    (dir, config)
}

#[test]
fn single_and_chain_type_ii_pings_return_through_postfix_at_every_key_size() {
    if !available() {
        return;
    }
    let (r1024, e1024) = mix_remailer("remailer11", "testmix1");
    let (r4096, e4096) = mix_remailer("remailer12", "testmix3");
    let (r2048, e2048) = mix_remailer("remailer13", "testmix4");
    let (dir, config) = setup("ping10", &[&e1024, &e4096, &e2048]);
    let mut daemon = start_daemon(&config);
    for target in ["remailer11", "remailer12", "remailer13"] {
        let out = run_ok(fathometer(&config).args(["ping", target, "--type", "mix"]));
        assert!(out.contains("accepted by the MTA"), "{out}");
    }
    // A large-key intermediate hop (its anti-tagging HMAC) before a classic final hop, and a
    // classic hop before a 4096-bit final hop.
    for chain in ["remailer13,remailer11", "remailer11,remailer12"] {
        run_ok(fathometer(&config).args(["ping", "--chain", chain, "--type", "mix"]));
    }
    let back = wait_until(Duration::from_secs(40), || returned(dir.path()).len() == 5);
    let (status, log) = stop_with_log(&mut daemon, Duration::from_secs(5));
    let errors: Vec<String> = [&r1024, &r4096, &r2048].iter().flat_map(|r| r.errors()).collect();
    assert!(back, "returns: {:?}; double errors: {errors:?}\n{log}", returned(dir.path()));
    assert!(errors.is_empty(), "{errors:?}");
    assert!(status.is_some_and(|s| s.success()), "{log}");
    let rows = returned(dir.path());
    assert_eq!(rows.iter().filter(|r| r.2.as_deref() == Some("mix")).count(), 2, "{rows:?}");
    for (sent, back, _) in &rows {
        assert!((0..30).contains(&(back - sent)), "latency {} s", back - sent);
    }
    // Every return was a genuine first copy, recorded with the ping it belongs to.
    let conn = crate::support::state_db(dir.path());
    let genuine: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM mails WHERE kind = 'returned' AND ping_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(genuine, 5);
    // remailer13 delivered its single ping and forwarded the chain's packet to remailer11.
    // (It records a mail just after the MTA took it, which can be after the return arrived.)
    wait_until(Duration::from_secs(5), || r2048.forwarded().len() >= 2);
    let forwarded = r2048.forwarded();
    assert_eq!(forwarded.len(), 2, "{forwarded:#?}");
    assert!(forwarded.iter().any(|m| m.contains("To: remailer11@localhost\n\n::\nRemailer-Type:")));
}

#[test]
fn ping_stdout_prints_a_mixmaster_message_that_ingest_once_counts() {
    if !available() {
        return;
    }
    let (double, entry) = mix_remailer("remailer14", "testmix3");
    let (dir, config) = setup("ping11", &[&entry]);
    let message =
        run_ok(fathometer(&config).args(["ping", "remailer14", "--type", "mix", "--stdout"]));
    let body = message.split_once("\n\n").unwrap().1;
    assert!(body.starts_with(
        "::\nRemailer-Type: Mixmaster 3.0.2d\n\n-----BEGIN REMAILER MESSAGE-----\n20480\n"
    ));
    assert!(body.lines().filter(|l| l.len() == 40).count() >= 682, "40-character base64 lines");
    let packet = mixmaster::dearmor(body).unwrap();
    assert_eq!(packet.len(), mixmaster::PACKET_LEN);
    assert_eq!(&packet[..16], &mixmaster::PublicKey::from_entry(&entry).unwrap().key_id()[..]);
    // Piped into an MTA, as an operator would with sendmail.
    smtp_send(smtp_addr(), "ping11@localhost", &["remailer14@localhost".into()], &message).unwrap();
    assert!(double.wait_handled(1, Duration::from_secs(20)), "{:?}", double.errors());
    let arrived = wait_until(Duration::from_secs(20), || {
        std::fs::read_dir(maildir("ping11").join("new")).is_ok_and(|d| d.count() > 0)
    });
    assert!(arrived, "{:?}", double.errors());
    let out = run_ok(fathometer(&config).args(["ingest", "--once"]));
    assert!(out.contains("1 returned"), "{out}");
    assert_eq!(returned(dir.path()).len(), 1);
}
