//! Golden files for every text file `fathometer publish` writes (lists, split lists, clist,
//! keyrings, the thesaurus index and raw replies), public and private, for a network with
//! hidden and `testing` remailers, both broken-chain sections and nicks at the
//! 12/14-character column limits, and for an empty store. Run with `FATHOMETER_BLESS=1` to
//! rewrite the golden files after a deliberate change, and review the diff.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::support::{bin, run_ok, scenario, write_config};

/// 2027-01-15 08:00:00 UTC: inside the test keys' validity (2024-01-01 to 2046-11-16).
const NOW: i64 = 1_800_000_000;

fn golden_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name)
}

/// The text files of a results tree and of its thesaurus directory (the HTML pages have
/// their own golden file and browser test), by path relative to the tree.
fn text_files(dir: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for subdir in ["", "thesaurus/"] {
        let Ok(entries) = std::fs::read_dir(dir.join(subdir)) else { continue };
        for entry in entries {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let text = [".txt", ".mix", ".list", ".asc"].iter().any(|ext| name.ends_with(ext))
                || (!subdir.is_empty() && !name.ends_with(".html"));
            if text {
                names.insert(format!("{subdir}{name}"));
            }
        }
    }
    names
}

fn compare_tree(written: &Path, golden: &Path) {
    let bless = std::env::var_os("FATHOMETER_BLESS").is_some();
    let names = text_files(written);
    if bless {
        let _ = std::fs::remove_dir_all(golden);
        std::fs::create_dir_all(golden.join("thesaurus")).unwrap();
        for n in &names {
            std::fs::copy(written.join(n), golden.join(n)).unwrap();
        }
        return;
    }
    assert_eq!(names, text_files(golden), "the set of files in {}", written.display());
    for n in &names {
        let got = std::fs::read_to_string(written.join(n)).unwrap();
        let want = std::fs::read_to_string(golden.join(n)).unwrap();
        assert!(
            got == want,
            "{} differs from {}:\n--- golden\n{want}\n--- written\n{got}",
            written.join(n).display(),
            golden.join(n).display()
        );
    }
}

fn publish(config: &Path) {
    let out =
        run_ok(bin().arg("--config").arg(config).args(["publish", "--now", &NOW.to_string()]));
    assert!(out.starts_with("published "), "{out}");
}

/// Stores a reply as the ingester does (the latest of each kind per remailer).
fn store_reply(dir: &Path, address: &str, kind: &str, received_at: i64, body: &str) {
    let conn = crate::support::state_db(dir);
    let n = conn
        .execute(
            "INSERT INTO replies (remailer_id, kind, received_at, body)
             SELECT id, ?2, ?3, ?4 FROM remailers WHERE address = ?1
             ON CONFLICT (remailer_id, kind) DO UPDATE
             SET received_at = excluded.received_at, body = excluded.body",
            rusqlite::params![address, kind, received_at, body],
        )
        .unwrap();
    assert_eq!(n, 1, "{address} is in the scenario");
}

/// The replies of the golden network: testmix1's conf and key, testmix2's conf from before
/// the thesaurus window, and the hidden and `testing` remailers' confs (private tree only).
fn store_replies(dir: &Path) {
    let conf = |nick: &str, address: &str| {
        format!("Remailer-Type: Mixmaster 3.0\n$remailer{{\"{nick}\"}} = \"<{address}> mix\";\n")
    };
    store_reply(
        dir,
        "testmix1@localhost",
        "conf",
        NOW - 7200,
        &conf("testmix1", "testmix1@localhost"),
    );
    store_reply(
        dir,
        "testmix1@localhost",
        "key",
        NOW - 86_400,
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n",
    );
    store_reply(
        dir,
        "testmix2@localhost",
        "conf",
        NOW - 30 * 86_400,
        &conf("testmix2", "testmix2@localhost"),
    );
    store_reply(dir, "hidden@h.example", "conf", NOW - 3600, &conf("hidden", "hidden@h.example"));
    store_reply(dir, "tester@t.example", "conf", NOW - 3600, &conf("tester", "tester@t.example"));
}

fn thesaurus_replies(tree: &Path) -> BTreeSet<String> {
    std::fs::read_dir(tree.join("thesaurus"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with("index."))
        .collect()
}

/// The id the thesaurus gives a remailer, from `index.txt` (`nick \t id \t address`).
fn thesaurus_id(tree: &Path, nick: &str) -> Option<String> {
    let index = std::fs::read_to_string(tree.join("thesaurus/index.txt")).unwrap();
    index.lines().find_map(|l| {
        let mut fields = l.split('\t');
        (fields.next() == Some(nick)).then(|| fields.next().unwrap().to_owned())
    })
}

#[test]
fn the_thesaurus_publishes_recent_replies_of_shown_remailers_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "127.0.0.1:0", "");
    scenario::import(dir.path(), &config, NOW);
    store_replies(dir.path());
    publish(&config);
    let (public, private) =
        (dir.path().join("state/results"), dir.path().join("state/results.private"));
    let id = |tree: &Path, nick| thesaurus_id(tree, nick).unwrap_or_else(|| panic!("{nick}"));
    let t1 = id(&public, "testmix1");
    assert_eq!(
        thesaurus_replies(&public),
        BTreeSet::from([format!("{t1}.conf"), format!("{t1}.key")])
    );
    assert!(thesaurus_id(&public, "hidden").is_none() && thesaurus_id(&public, "tester").is_none());
    let (hidden, tester) = (id(&private, "hidden"), id(&private, "tester"));
    assert_eq!(
        thesaurus_replies(&private),
        BTreeSet::from([
            format!("{t1}.conf"),
            format!("{t1}.key"),
            format!("{hidden}.conf"),
            format!("{tester}.conf")
        ]),
        "testmix2's reply is older than 21 days"
    );
    // A reply that ages out of the window is removed at the next build, the others stay.
    store_reply(dir.path(), "testmix1@localhost", "conf", NOW - 22 * 86_400, "old");
    publish(&config);
    assert_eq!(thesaurus_replies(&public), BTreeSet::from([format!("{t1}.key")]));
    let page = std::fs::read_to_string(public.join("thesaurus/index.html")).unwrap();
    assert!(page.contains(&format!("href=\"{t1}.key\"")) && !page.contains(&format!("{t1}.conf")));
}

#[test]
fn every_published_text_file_matches_its_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "127.0.0.1:0", "");
    scenario::import(dir.path(), &config, NOW);
    store_replies(dir.path());
    publish(&config);
    let state = dir.path().join("state");
    compare_tree(&state.join("results"), &golden_dir("published/public"));
    compare_tree(&state.join("results.private"), &golden_dir("published/private"));
}

#[test]
fn an_empty_store_publishes_every_file_empty_but_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "127.0.0.1:0", "");
    publish(&config);
    let state = dir.path().join("state");
    compare_tree(&state.join("results"), &golden_dir("published-empty"));
}
