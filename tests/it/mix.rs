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

/// The replay-protection probe through Postfix: two type II remailer doubles with the vector
/// keys, one keeping Mixmaster's replay log (it drops the second copy) and one without (it
/// delivers both). The daemon sends each probe's packet twice, byte for byte; the broken one
/// is flagged, the honest one is not, and no copy ever counts as a ping.
#[test]
fn the_replay_probe_flags_a_remailer_that_delivers_a_replayed_packet_and_leaves_an_honest_one() {
    if !available() {
        return;
    }
    let (honest, e_honest) = mix_remailer("remailer21", "testmix1");
    let (broken, e_broken) = mix_remailer("remailer22", "testmix4");
    broken.without_replay_log();
    clear_mailbox("ping18");
    let dir = tempfile::tempdir().unwrap();
    // Scheduled probes off (their weekly time is hashed); the ones started by hand below are
    // sent 2 s apart and decided 5 s after the second copy. The doubles answer the
    // information requests, so both remailers are listed with their capabilities.
    let config = pinger_config(
        dir.path(),
        "ping18",
        false,
        "[replay_probe]\nenabled = false\ngap_secs = 2\nwait_secs = 5\n\
         [discovery]\nauto_add_min = 0\n[stats]\nbuild_interval_secs = 1\n\
         [schedule]\ntick_secs = 1\n",
    );
    let keys = dir.path().join("pubring.mix");
    std::fs::write(&keys, [e_honest.as_str(), e_broken.as_str()].concat()).unwrap();
    // Added remailers are asked at once: their conf replies list them.
    run_ok(fathometer(&config).args(["add", "remailer21@localhost", "remailer22@localhost"]));
    run_ok(fathometer(&config).arg("import-keys").arg("--add").arg(&keys));
    let mut daemon = start_daemon(&config);
    for target in ["remailer21", "remailer22"] {
        let out = run_ok(fathometer(&config).args(["replay-probe", target]));
        assert!(out.contains("started"), "{out}");
    }
    let verdicts = || -> Vec<(String, String, i64)> {
        let conn = crate::support::state_db(dir.path());
        let mut stmt = conn
            .prepare(
                "SELECT r.address, p.verdict, p.returns FROM replay_probes p
                 JOIN remailers r ON r.id = p.remailer_id ORDER BY r.address",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let decided =
        wait_until(Duration::from_secs(60), || verdicts().iter().all(|(_, v, _)| v != "pending"));
    let page_of = |nick: &str| {
        let name = fathometer::publish::html::page_name(nick, &format!("{nick}@localhost"));
        dir.path().join("state/results").join(name)
    };
    let page = page_of("remailer22");
    let flagged_page = wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(&page).is_ok_and(|p| p.contains("Replay protection broken"))
    });
    let (status, log) = stop_with_log(&mut daemon, Duration::from_secs(5));
    let errors: Vec<String> = [&honest, &broken].iter().flat_map(|r| r.errors()).collect();
    assert!(decided, "{:?}; double errors: {errors:?}\n{log}", verdicts());
    assert!(errors.is_empty(), "{errors:?}");
    assert!(status.is_some_and(|s| s.success()), "{log}");
    assert_eq!(
        verdicts(),
        vec![
            ("remailer21@localhost".to_owned(), "protected".to_owned(), 1),
            ("remailer22@localhost".to_owned(), "replayed".to_owned(), 2),
        ]
    );
    // The honest double saw the same packet twice and dropped the second; the broken one
    // processed both.
    assert_eq!((honest.replays_dropped(), broken.replays_dropped()), (1, 0));
    // One packet, sent twice: the broken double delivered the same payload twice (only its
    // own Message-ID differs); its other mail answered our requests.
    let delivered: Vec<String> =
        broken.forwarded().into_iter().filter(|m| m.contains("remailed automatically")).collect();
    assert_eq!(delivered.len(), 2);
    let body = |m: &str| m.split_once("\n\n").map(|(_, b)| b.to_owned());
    assert_eq!(body(&delivered[0]), body(&delivered[1]));
    // Flagged on the page, in the JSON and by the command; never a ping.
    let listing: Vec<String> = std::fs::read_dir(dir.path().join("state/results"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into()).collect())
        .unwrap_or_default();
    assert!(flagged_page, "{listing:?}: {}", std::fs::read_to_string(&page).unwrap_or_default());
    let honest_page = std::fs::read_to_string(page_of("remailer21")).unwrap();
    assert!(!honest_page.contains("Replay protection broken"));
    assert!(honest_page.contains("replayed packet was dropped"), "{honest_page}");
    let index = std::fs::read_to_string(dir.path().join("state/results/index.html")).unwrap();
    let section = index.split("id=\"replay\"").nth(1).expect("the index flags it");
    let section = section.split("</section>").next().unwrap();
    assert!(section.contains(">remailer22</a>") && !section.contains("remailer21"), "{section}");
    let json = run_ok(fathometer(&config).args(["stats", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let entry = |nick: &str| {
        v["lists"]["mix"].as_array().unwrap().iter().find(|e| e["nick"] == nick).cloned().unwrap()
    };
    assert_eq!(entry("remailer22")["replay_protection"]["broken"], true, "{json}");
    assert_eq!(entry("remailer22")["replay_protection"]["replayed"], 1);
    assert_eq!(entry("remailer21")["replay_protection"]["broken"], false);
    assert_eq!(entry("remailer21")["pings_sent"], 0, "a probe is no ping");
    let shown = run_ok(fathometer(&config).args(["replay-probe", "remailer22", "--show"]));
    assert!(shown.contains("REPLAYED: replay protection broken"), "{shown}");
    let conn = crate::support::state_db(dir.path());
    let pings: i64 = conn.query_row("SELECT COUNT(*) FROM pings", [], |r| r.get(0)).unwrap();
    let probe_mails: i64 = conn
        .query_row("SELECT COUNT(*) FROM mails WHERE kind = 'probe'", [], |r| r.get(0))
        .unwrap();
    assert_eq!((pings, probe_mails), (0, 3));
    let event: String = conn
        .query_row("SELECT kind FROM events WHERE kind LIKE 'replay%'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(event, "replay-broken");
}
