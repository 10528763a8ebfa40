//! YAMN pings end to end: the real binary builds YAMN packets natively, Postfix carries them
//! to remailer doubles (test support) holding the keys of the vectors' real YAMN remailers,
//! which decode them hop by hop as YAMN 0.2.7 does and deliver the plaintext to the pinger's
//! Maildir; the daemon counts single and chain returns.
//!
//! The vector keys are valid from 2026-12-02 to 2026-12-16 only: the pinger's clock and the
//! doubles' day are pinned inside that window (today's date while it lasts, 2026-12-02 noon
//! after it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::gpg::GpgHome;
use crate::support::mail::{
    available, clear_mailbox, maildir, pinger_config, smtp_addr, wait_until,
};
use crate::support::remailer::{Behaviour, Profile, TestRemailer};
use crate::support::{fathometer, run_ok};
use fathometer::simulation::yamn::SecretKey;

/// The first day of the vector keys' validity (2026-12-02) and the last.
const FIRST_DAY: i64 = 20_789;
const LAST_DAY: i64 = 20_803;

/// The clock offset that puts "now" inside the keys' validity, and the day it gives.
fn pinned() -> (i64, i64) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    let day = now.div_euclid(86_400);
    if (FIRST_DAY..=LAST_DAY).contains(&day) {
        (0, day)
    } else {
        (FIRST_DAY * 86_400 + 43_200 - now, FIRST_DAY)
    }
}

fn vector(name: &str) -> String {
    let path = format!("{}/tests/vectors/yamn/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A YAMN remailer double at `user@localhost` with the key of vector remailer `yamn`.
fn yamn_remailer(user: &str, yamn: &str, day: i64) -> (TestRemailer, String) {
    clear_mailbox(user);
    let address = format!("{user}@localhost");
    let entry = vector(&format!("{yamn}.key.txt")).replacen(
        &format!("{yamn} {yamn}@localhost"),
        &format!("{user} {address}"),
        1,
    );
    let secret = SecretKey::parse_secring(&vector(&format!("{yamn}.secring.mix")));
    assert!(!secret.is_empty(), "{yamn}.secring.mix holds no key");
    let double = TestRemailer::start(
        &address,
        maildir(user),
        GpgHome::new(),
        smtp_addr(),
        Behaviour::Forward,
    );
    double.set_profile(Profile {
        nick: user.into(),
        caps: "v2".into(),
        // What it answers to remailer-key, and the summary line its conf lists.
        mix_entries: vec![entry.clone()],
        supported_type2: entry.lines().next().map(str::to_owned).into_iter().collect(),
        yamn_secret: secret,
        yamn_day: day,
        ..Profile::default()
    });
    (double, entry)
}

/// A pinger for mailbox user `user` whose every command runs with the clock pinned by
/// [`pinned`].
struct PinnedPinger {
    dir: tempfile::TempDir,
    config: PathBuf,
    offset_file: PathBuf,
}

impl PinnedPinger {
    fn new(user: &str, offset: i64, extra: &str) -> PinnedPinger {
        clear_mailbox(user);
        let dir = tempfile::tempdir().unwrap();
        let config = pinger_config(dir.path(), user, false, extra);
        let offset_file = dir.path().join("clock-offset");
        std::fs::write(&offset_file, offset.to_string()).unwrap();
        PinnedPinger { dir, config, offset_file }
    }

    /// `fathometer` on this pinger's config, with the pinned clock.
    fn cmd(&self) -> std::process::Command {
        let mut c = fathometer(&self.config);
        c.env("FATHOMETER_TEST_CLOCK_OFFSET_FILE", &self.offset_file);
        c
    }

    /// The daemon, its log captured for `stop_with_log`.
    fn start(&self) -> std::process::Child {
        self.cmd()
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// The returned pings: (first hop's type, chain type, latency).
fn returned(dir: &Path) -> Vec<(String, Option<String>, i64)> {
    let conn = crate::support::state_db(dir);
    let mut stmt = conn
        .prepare(
            "SELECT type1, chain_type, returned_at - sent_at FROM pings
             WHERE outcome = 'returned' ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn single_and_chain_yamn_pings_return_through_postfix() {
    if !available() {
        return;
    }
    let (offset, day) = pinned();
    let (exit, e_exit) = yamn_remailer("remailer23", "yamn1", day);
    let (middle, e_middle) = yamn_remailer("remailer24", "yamn2", day);
    let (last, e_last) = yamn_remailer("remailer25", "yamn3", day);
    let pinger = PinnedPinger::new(
        "ping19",
        offset,
        "[stats]\nbuild_interval_secs = 1\n[schedule]\ntick_secs = 1\n",
    );
    let (dir, pinned_cmd) = (&pinger.dir, || pinger.cmd());
    let keys = dir.path().join("pubring.mix");
    std::fs::write(&keys, [e_exit, e_middle, e_last].concat()).unwrap();
    let out = run_ok(pinned_cmd().arg("import-keys").arg("--add").arg(&keys));
    assert_eq!(out.matches("added: yamn key").count(), 3, "{out}");
    // Their capability lines, as their remailer-conf replies would give them: listed.
    let db = crate::support::state_db(dir.path());
    for user in ["remailer23", "remailer24", "remailer25"] {
        let caps = format!("$remailer{{\"{user}\"}} = \"<{user}@localhost> mix\";");
        db.execute("UPDATE remailers SET caps = ?2 WHERE nick = ?1", [user, caps.as_str()])
            .unwrap();
    }
    drop(db);
    let mut daemon = pinger.start();
    let out = run_ok(pinned_cmd().args(["ping", "remailer23", "--type", "yamn"]));
    assert!(out.contains("accepted by the MTA"), "{out}");
    run_ok(pinned_cmd().args(["ping", "--chain", "remailer24,remailer25", "--type", "yamn"]));
    let back = wait_until(Duration::from_secs(40), || returned(dir.path()).len() == 2);
    // The next statistics build publishes the exit's return in the YAMN tree.
    let yamn = dir.path().join("state/results/yamn");
    let exit_reliability = || {
        let text = std::fs::read_to_string(yamn.join("mlist2.txt")).unwrap_or_default();
        fathometer::ingest::peer_list::parse_list_v2(&text)
            .ok()
            .and_then(|l| l.rows.into_iter().find(|r| r.nick == "remailer23"))
            .map_or(0.0, |r| r.reliability)
    };
    // Returns are dated by the real clock (the Maildir's): with the clock pinned back to the
    // keys' validity (after 2026-12-16) they lie in the pinger's future and count later.
    let real_clock = offset == 0;
    if real_clock {
        wait_until(Duration::from_secs(20), || exit_reliability() > 0.0);
    }
    let (status, log) = crate::support::stop_with_log(&mut daemon, Duration::from_secs(5));
    let errors: Vec<String> = [&exit, &middle, &last].iter().flat_map(|r| r.errors()).collect();
    assert!(back, "returns: {:?}; double errors: {errors:?}\n{log}", returned(dir.path()));
    assert!(errors.is_empty(), "{errors:?}");
    assert!(status.is_some_and(|s| s.success()), "{log}");
    let rows = returned(dir.path());
    assert!(rows.iter().all(|r| r.0 == "yamn"), "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r.1.as_deref() == Some("yamn")).count(), 1, "{rows:?}");
    // The middle hop mailed the next packet to the last as YAMN does, in YAMN's armour.
    let forwarded = middle.forwarded();
    assert_eq!(forwarded.len(), 1, "{forwarded:#?}");
    assert!(forwarded[0].starts_with("To: remailer25@localhost\n"), "{}", &forwarded[0][..80]);
    assert!(forwarded[0].contains(
        "\n\n::\nRemailer-Type: yamn-0.2.7\n\n-----BEGIN REMAILER MESSAGE-----\n20480\n"
    ));
    // Every return was a genuine first copy, recorded with its ping.
    let conn = crate::support::state_db(dir.path());
    let genuine: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM mails WHERE kind = 'returned' AND ping_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(genuine, 2);
    // The YAMN tree a YAMN client fetches: the list with the exit's return, the keyring.
    let mlist2 = std::fs::read_to_string(yamn.join("mlist2.txt")).unwrap();
    let list = fathometer::ingest::peer_list::parse_list_v2(&mlist2).unwrap();
    let exit_row = list.rows.iter().find(|r| r.nick == "remailer23").expect("listed");
    assert!(!real_clock || exit_row.reliability > 0.0, "{mlist2}");
    let after_rows = mlist2.split("-\n").nth(1).unwrap();
    assert!(after_rows.contains("\n\n"), "the rows end at an empty line: {mlist2}");
    let ring = std::fs::read_to_string(yamn.join("pubring.mix")).unwrap();
    let keys = fathometer::compose::yamn::PublicKey::all_from_text(&ring);
    assert_eq!(keys.iter().filter(|k| k.is_ok()).count(), 3, "{ring}");
    // The pages show the YAMN family and each YAMN remailer with its figures.
    let results = dir.path().join("state/results");
    let index = std::fs::read_to_string(results.join("index.html")).unwrap();
    let section = index.split("<section id=\"yamn\"").nth(1).expect("a YAMN section");
    assert!(section.contains(">remailer23</a>"), "{section}");
    let page = fathometer::publish::html::page_name("remailer23", "remailer23@localhost");
    let page = std::fs::read_to_string(results.join(page)).unwrap();
    assert!(page.contains("<h2>YAMN</h2>"), "{page}");
    // Not mixed into the Mixmaster lists.
    let mlist = std::fs::read_to_string(dir.path().join("state/results/mlist2.txt")).unwrap();
    assert!(!mlist.contains("remailer23"), "{mlist}");
}

/// Discovery of a YAMN remailer: `fathometer add` asks it at once; it answers as YAMN does
/// (to a bare From: only, no `remailer-stats` reply, the `v2` capability string), and the
/// pinger learns its capabilities and YAMN key from the replies, then pings it.
#[test]
fn discovery_learns_a_yamn_remailer_from_its_replies_and_pings_it() {
    if !available() {
        return;
    }
    let (offset, day) = pinned();
    let (remailer, _) = yamn_remailer("remailer26", "yamn1", day);
    let pinger = PinnedPinger::new(
        "ping20",
        offset,
        "[discovery]\nauto_add_min = 0\n[schedule]\ntick_secs = 1\n",
    );
    let (dir, pinned_cmd) = (&pinger.dir, || pinger.cmd());
    run_ok(pinned_cmd().args(["add", "remailer26@localhost"]));
    let mut daemon = pinger.start();
    let learnt = || -> Option<(String, String, String)> {
        crate::support::state_db(dir.path())
            .query_row(
                "SELECT r.nick, r.caps, k.key_id FROM remailers r
                 JOIN keys k ON k.remailer_id = r.id AND k.ping_type = 'yamn'
                 WHERE r.address = 'remailer26@localhost' AND r.caps IS NOT NULL",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .ok()
    };
    let found = wait_until(Duration::from_secs(40), || learnt().is_some());
    let pinged = found.then(|| run_ok(pinned_cmd().args(["ping", "remailer26", "--type", "yamn"])));
    let back = found && wait_until(Duration::from_secs(30), || returned(dir.path()).len() == 1);
    let (status, log) = crate::support::stop_with_log(&mut daemon, Duration::from_secs(5));
    assert!(found, "nothing learnt; double errors {:?}\n{log}", remailer.errors());
    assert!(remailer.errors().is_empty(), "{:?}", remailer.errors());
    let (nick, caps, key_id) = learnt().unwrap();
    assert_eq!(nick, "remailer26");
    assert_eq!(caps, "$remailer{\"remailer26\"} = \"<remailer26@localhost> v2\";");
    assert_eq!(key_id, "c2369176c09334e1c78b7ba2b00361a6");
    assert!(pinged.unwrap_or_default().contains("accepted by the MTA"));
    assert!(back, "the ping did not come back\n{log}");
    assert!(status.is_some_and(|s| s.success()), "{log}");
    // Its replies are kept for the thesaurus; remailer-stats got none, which is no failure.
    let conn = crate::support::state_db(dir.path());
    let kinds: Vec<String> = conn
        .prepare("SELECT kind FROM replies ORDER BY kind")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(kinds.contains(&"conf".to_owned()) && kinds.contains(&"key".to_owned()), "{kinds:?}");
    assert!(!kinds.contains(&"stats".to_owned()), "{kinds:?}");
    let status: String = conn
        .query_row("SELECT status FROM remailers WHERE address = 'remailer26@localhost'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(status, "active");
}
