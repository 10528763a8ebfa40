//! Golden files for every text file `fathometer publish` writes (lists, split lists, clist,
//! keyrings), public and private, for a network with hidden and `testing` remailers, both
//! broken-chain sections and nicks at the 12/14-character column limits, and for an empty
//! store. Run with `FATHOMETER_BLESS=1` to rewrite the golden files after a deliberate
//! change, and review the diff.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use support::{bin, run_ok, scenario, write_config};

/// 2027-01-15 08:00:00 UTC: inside the test keys' validity (2024-01-01 to 2046-11-16).
const NOW: i64 = 1_800_000_000;

fn golden_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name)
}

/// The text files of a results tree (the HTML pages have their own golden file and browser
/// test), by name.
fn text_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| [".txt", ".mix", ".list", ".asc"].iter().any(|ext| n.ends_with(ext)))
        .collect()
}

fn compare_tree(written: &Path, golden: &Path) {
    let bless = std::env::var_os("FATHOMETER_BLESS").is_some();
    let names = text_files(written);
    if bless {
        let _ = std::fs::remove_dir_all(golden);
        std::fs::create_dir_all(golden).unwrap();
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

#[test]
fn every_published_text_file_matches_its_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "127.0.0.1:0", "");
    scenario::import(dir.path(), &config, NOW);
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
