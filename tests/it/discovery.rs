//! Discovery end to end: `fathometer add` on a remailer leads, with no further help, to its
//! capabilities and keys and to scheduled pings of every type it supports. The remailer is the
//! test double (test support), answering `remailer-conf`/`-key`/... through real Postfix the
//! way Mixmaster 3.0.2d does (`mixmaster.md` §5); the daemon reads the answers from its Maildir.

use std::path::Path;
use std::time::Duration;

use crate::support::gpg::{GpgHome, KeyShape};
use crate::support::mail::{
    available, clear_mailbox, maildir, pinger_config, smtp_addr, wait_until,
};
use crate::support::remailer::{Behaviour, Profile, TestRemailer};
use crate::support::{fathometer, run_ok, start_daemon, stop_with_log};

/// The vector key testmix1 (1024-bit) presented as `nick`'s key at `address`: the key ID
/// covers only n and e, so the header line can name any remailer.
fn mix_entry(nick: &str, address: &str) -> String {
    let path =
        format!("{}/tests/vectors/mixmaster/keys/testmix1.key.txt", env!("CARGO_MANIFEST_DIR"));
    let entry = std::fs::read_to_string(path).unwrap();
    entry.replacen("testmix1 testmix1@localhost", &format!("{nick} {address}"), 1)
}

fn count(dir: &Path, sql: &str) -> i64 {
    let conn = crate::support::state_db(dir);
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn add_leads_to_capabilities_keys_and_scheduled_pings() {
    if !available() {
        return;
    }
    let (pinger, user) = ("ping9", "remailer9");
    clear_mailbox(pinger);
    clear_mailbox(user);
    clear_mailbox("remailer10");
    let address = format!("{user}@localhost");
    let gpg = GpgHome::new();
    let pgp_key = gpg.generate(
        KeyShape::OldDsaElg1024,
        &format!("Test Remailer {user}"),
        &address,
        "S3 S7 S2",
    );
    let remailer =
        TestRemailer::start(&address, maildir(user), gpg, smtp_addr(), Behaviour::Forward);
    remailer.set_profile(Profile {
        nick: user.into(),
        caps: "cpunk max mix pgp pgponly repgp remix esubbf hsub latent hash cut test ekx inflt50 \
               rhop5"
            .into(),
        pgp_key: Some(pgp_key),
        mix_entries: vec![mix_entry(user, &address)],
        // It vouches for remailer10; with auto_add_min = 1 that is enough.
        supported_type2: vec![
            mix_entry(user, &address).lines().next().unwrap().to_owned(),
            "remailer10 remailer10@localhost 51a026b896e310a73eaae735c8895577 2:3.0.2d C".into(),
        ],
        // The key it offers is testmix1's: with its secret part the double also handles a
        // scheduled mix ping that may fall due once the key is learnt, instead of an error.
        mix_secret: fathometer_testkit::mixmaster::SecretKey::parse_secring(
            &std::fs::read_to_string(format!(
                "{}/tests/vectors/mixmaster/keys/testmix1.secring.mix",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
            "pass-testmix1",
        )
        .unwrap(),
        ..Profile::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = pinger_config(
        dir.path(),
        pinger,
        false,
        // The first tick reaches back a whole day, so every daily request slot of the added
        // remailer is due at once: each must be covered by the question `add` just asked.
        "[schedule]\ntick_secs = 1\nmax_lateness_secs = 86400\n\
         ping_types = [\"mix\", \"cpunk-rsa\", \"cpunk-dsa\", \"cpunk-clear\"]\n\
         [discovery]\nauto_add_min = 1\n",
    );
    let added = run_ok(fathometer(&config).args(["add", &address]));
    assert!(added.contains("requests queued"), "{added}");
    let before = run_ok(fathometer(&config).args(["list"]));
    assert!(before.contains(&address) && !before.contains("mix,"), "{before}");

    let mut daemon = start_daemon(&config);
    let learnt = wait_until(Duration::from_secs(30), || {
        count(dir.path(), "SELECT COUNT(*) FROM replies") >= 5
            && count(dir.path(), "SELECT COUNT(*) FROM keys WHERE ping_type = 'mix'") == 1
    });
    // The vouched-for address became a remailer and was asked at once.
    let vouched = wait_until(Duration::from_secs(10), || {
        count(
            dir.path(),
            "SELECT COUNT(*) FROM requests q JOIN remailers r ON r.id = q.remailer_id
             WHERE r.address = 'remailer10@localhost' AND q.outcome = 'sent'",
        ) == 5
    });
    let (status, log) = stop_with_log(&mut daemon, Duration::from_secs(5));
    assert!(learnt, "the replies were not learnt; double errors {:?}\n{log}", remailer.errors());
    assert!(vouched, "the vouched-for remailer was not added and asked\n{log}");
    assert!(status.is_some_and(|s| s.success()), "{log}");
    assert!(remailer.errors().is_empty(), "{:?}", remailer.errors());

    let list = run_ok(fathometer(&config).args(["list", "--verbose"]));
    let row = list.lines().find(|l| l.contains(&address)).unwrap();
    assert!(row.starts_with(user), "the nick comes from the conf reply: {row}");
    assert!(row.contains("mix") && row.contains("cpunk-dsa"), "{row}");
    assert!(!row.contains("cpunk-clear"), "pgponly: no plaintext pings: {row}");
    assert!(list.contains("software: Mixmaster 3.0.2d"), "{list}");
    assert!(
        list.contains(&format!("caps: $remailer{{\"{user}\"}} = \"<{address}> cpunk")),
        "{list}"
    );
    // Every type it supports has a current key with its next scheduled ping.
    for t in ["mix", "cpunk-dsa"] {
        assert!(
            list.lines().any(|l| l.contains(&format!("key {t}")) && l.contains("next ping")),
            "no scheduled {t} ping:\n{list}"
        );
    }
    assert!(
        list.contains("history") && list.contains("added mix 400c909fdd158b5b69ca52eef13b1d60")
    );
    assert!(list.contains("remailer10@localhost"), "{list}");
    // The replies were answers to our tagged requests, not strays.
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM mails WHERE kind = 'reply'"), 5, "{list}");
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM requests WHERE outcome = 'answered'"), 5);
}
