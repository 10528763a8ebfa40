//! One published network for the golden files and the Mixmaster client test: the four test
//! remailers of `tests/vectors/mixmaster` (their real Mix and OpenPGP keys) with histories
//! that reproduce the client run recorded in `mixmaster.md` §3.5 (testmix2 between MINREL and
//! RELFINAL, testmix4 at 50 %, `(testmix1 testmix2)` broken), plus remailers that test the
//! lists' edges: a hidden one, a `testing` one, and nicks of 12, 14 and 15 characters.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{bin, run_ok};

/// Pings per remailer and list: one every 72 minutes over ten days.
const PINGS: i64 = 200;
const EVERY: i64 = 72 * 60;
/// The newest ping is this old, so even the slowest one has come back by `now`.
const NEWEST_AGE: i64 = 9 * 3600;

/// A history: latency in seconds, and which pings (by index, newest first) were lost.
type History = Option<(i64, fn(i64) -> bool)>;

struct Remailer {
    address: &'static str,
    nick: &'static str,
    caps: &'static str,
    showit: bool,
    mix: History,
    /// Type I, as cpunk-dsa pings.
    cpunk: History,
}

fn none(_: i64) -> bool {
    false
}

const REMAILERS: &[Remailer] = &[
    Remailer {
        address: "testmix1@localhost",
        nick: "testmix1",
        caps: "$remailer{\"testmix1\"} = \"<testmix1@localhost> mix cpunk pgp pgponly klen1000\";",
        showit: true,
        mix: Some((12 * 60, none)),
        cpunk: Some((10 * 60, none)),
    },
    Remailer {
        address: "testmix2@localhost",
        nick: "testmix2",
        caps: "$remailer{\"testmix2\"} = \"<testmix2@localhost> mix cpunk pgp pgponly\";",
        showit: true,
        // 3 of 200 lost: 98.5 %, below RELFINAL (99) and above MINREL (98).
        mix: Some((5 * 60, |i| i % 60 == 30)),
        cpunk: Some((10 * 60, none)),
    },
    Remailer {
        address: "testmix3@localhost",
        nick: "testmix3",
        caps: "$remailer{\"testmix3\"} = \"<testmix3@localhost> mix cpunk pgp pgponly middle\";",
        showit: true,
        mix: Some((3723, none)),
        cpunk: Some((20 * 60, none)),
    },
    Remailer {
        address: "testmix4@localhost",
        nick: "testmix4",
        caps: "$remailer{\"testmix4\"} = \"<testmix4@localhost> mix cpunk pgp pgponly\";",
        showit: true,
        mix: Some((8 * 3600, |i| i % 2 == 1)),
        cpunk: Some((30 * 60, |i| i % 10 == 3)),
    },
    Remailer {
        address: "hidden@h.example",
        nick: "hidden",
        caps: "$remailer{\"hidden\"} = \"<hidden@h.example> mix\";",
        showit: false,
        mix: Some((600, none)),
        cpunk: None,
    },
    Remailer {
        address: "tester@t.example",
        nick: "tester",
        caps: "$remailer{\"tester\"} = \"<tester@t.example> mix testing\";",
        showit: true,
        mix: Some((600, none)),
        cpunk: None,
    },
    Remailer {
        address: "twelve@n.example",
        nick: "twelvecharsx",
        caps: "$remailer{\"twelvecharsx\"} = \"<twelve@n.example> mix cpunk\";",
        showit: true,
        mix: Some((180, none)),
        cpunk: Some((180, none)),
    },
    Remailer {
        address: "fourteen@n.example",
        nick: "fourteenchars1",
        caps: "$remailer{\"fourteenchars1\"} = \"<fourteen@n.example> mix\";",
        showit: true,
        mix: Some((240, |i| i % 20 == 0)),
        cpunk: None,
    },
    Remailer {
        address: "fifteen@n.example",
        nick: "fifteencharsxyz",
        caps: "$remailer{\"fifteencharsxyz\"} = \"<fifteen@n.example> mix\";",
        showit: true,
        mix: Some((300, none)),
        cpunk: None,
    },
];

/// Chain pings: type, first hop, second hop, returned. Six each, one a day.
const CHAINS: &[(&str, &str, &str, bool)] = &[
    ("mix", "testmix1@localhost", "testmix2@localhost", false),
    ("mix", "testmix2@localhost", "testmix1@localhost", true),
    ("mix", "hidden@h.example", "testmix1@localhost", false),
    ("cpunk", "testmix3@localhost", "testmix1@localhost", false),
    ("cpunk", "testmix1@localhost", "testmix3@localhost", true),
];

fn pings_csv(now: i64) -> String {
    let mut out = String::from("address,type,sent_unix,received_unix\n");
    for r in REMAILERS {
        for (ping_type, history) in [("mix", r.mix), ("cpunk-dsa", r.cpunk)] {
            let Some((latency, lost)) = history else { continue };
            for i in 0..PINGS {
                let sent = now - NEWEST_AGE - i * EVERY;
                let returned = if lost(i) { String::new() } else { (sent + latency).to_string() };
                writeln!(out, "{},{ping_type},{sent},{returned}", r.address).unwrap();
            }
        }
    }
    out
}

fn remailers_csv() -> String {
    let mut out = String::from("address,nick,caps,showit\n");
    for r in REMAILERS {
        writeln!(out, "{},{},{},{}", r.address, r.nick, r.caps, u8::from(r.showit)).unwrap();
    }
    out
}

fn chains_csv(now: i64) -> String {
    let mut out = String::from("chaintype,addr1,addr2,sent_unix,received_unix\n");
    for (chain_type, a1, a2, returned) in CHAINS {
        for day in 1..=6 {
            let sent = now - day * 86_400;
            let back = if *returned { (sent + 1800).to_string() } else { String::new() };
            writeln!(out, "{chain_type},{a1},{a2},{sent},{back}").unwrap();
        }
    }
    out
}

pub fn mix_keys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/mixmaster/keys")
}

/// Loads the network into the store of `config`, with histories ending at `now`.
pub fn import(dir: &Path, config: &Path, now: i64) {
    let files = [
        ("scenario-pings.csv", pings_csv(now)),
        ("scenario-remailers.csv", remailers_csv()),
        ("scenario-chains.csv", chains_csv(now)),
    ];
    for (name, text) in &files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    run_ok(
        bin()
            .arg("--config")
            .arg(config)
            .arg("import-keys")
            .arg("--add")
            .arg(mix_keys().join("pubring.mix"))
            .arg(mix_keys().join("pubring.asc")),
    );
    run_ok(
        bin()
            .arg("--config")
            .arg(config)
            .arg("import-pings")
            .arg("--pings")
            .arg(dir.join(files[0].0))
            .arg("--remailers")
            .arg(dir.join(files[1].0))
            .arg("--chains")
            .arg(dir.join(files[2].0)),
    );
}
