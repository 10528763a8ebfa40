//! Helpers shared by the integration tests: they run the real `fathometer` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fathometer"));
    // The tests must not pick up an operator's config from the environment.
    c.env_remove("FATHOMETER_CONFIG");
    c
}

pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("fathometer runs");
    assert!(
        out.status.success(),
        "{:?} failed: {}\n{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("fathometer runs")
}

pub fn vectors(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/echolot").join(name)
}

/// A fresh database with one of Echolot's ping histories imported.
pub fn imported_db(dir: &Path, name: &str) -> PathBuf {
    let v = vectors(name);
    let db = dir.join(format!("{name}.sqlite"));
    run_ok(
        bin()
            .arg("--db")
            .arg(&db)
            .arg("import-pings")
            .arg("--pings")
            .arg(v.join("pings.csv"))
            .arg("--remailers")
            .arg(v.join("remailers.csv"))
            .arg("--chains")
            .arg(v.join("chains.csv")),
    );
    db
}

pub fn now_of(name: &str) -> i64 {
    std::fs::read_to_string(vectors(name).join("now")).unwrap().trim().parse().unwrap()
}
