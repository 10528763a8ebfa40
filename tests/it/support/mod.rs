//! Helpers shared by the integration tests: they run the real `fathometer` binary.
#![allow(dead_code)]

pub mod gpg;
pub mod http;
pub mod mail;
pub mod remailer;
pub mod scenario;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fathometer"));
    // The tests must not pick up an operator's config from the environment.
    c.env_remove("FATHOMETER_CONFIG");
    c
}

/// The store of a test's state directory (`<dir>/state/fathometer.sqlite`), opened as a
/// second process would: it waits for the daemon's write lock instead of failing at once.
pub fn state_db(dir: &Path) -> rusqlite::Connection {
    db_file(&dir.join("state/fathometer.sqlite"))
}

/// A SQLite file the daemon may be writing at the same time.
pub fn db_file(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

/// The binary with `--config config`.
pub fn fathometer(config: &Path) -> Command {
    let mut c = bin();
    c.arg("--config").arg(config);
    c
}

/// `fathometer run` on `config`, its log captured for [`stop_with_log`].
pub fn start_daemon(config: &Path) -> Child {
    fathometer(config)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the daemon starts")
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

/// A minimal config in `dir` with state under `dir/state`, returns read from the Maildir
/// `dir/state/Maildir` (unless `extra` has its own `[mailbox]`), HTTP on `listen`, plus
/// `extra` TOML.
pub fn write_config(dir: &Path, listen: &str, extra: &str) -> PathBuf {
    let path = dir.join("fathometer.toml");
    let mailbox =
        if extra.contains("[mailbox") { "" } else { "[mailbox]\nmaildir = \"state/Maildir\"\n" };
    let extra = with_probes_off(extra);
    std::fs::write(
        &path,
        format!(
            "[pinger]\naddress = \"pinger@localhost\"\nstate_dir = \"state\"\n{mailbox}\
             [http]\nlisten = \"{listen}\"\n{extra}"
        ),
    )
    .unwrap();
    path
}

/// `extra` with the weekly replay probes off unless it configures them: a fresh pinger
/// probes every type II remailer whose hashed time this week has passed, which would add
/// mail the tests do not expect.
pub fn with_probes_off(extra: &str) -> String {
    if extra.contains("[replay_probe]") {
        extra.to_owned()
    } else {
        format!("{extra}[replay_probe]\nenabled = false\n")
    }
}

/// Sends SIGTERM and waits up to `limit` for the process to exit; kills it and returns
/// `None` if it did not.
pub fn stop(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let sent = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -TERM failed");
    let start = Instant::now();
    while start.elapsed() <= limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Stops a daemon started with `stderr(Stdio::piped())` like [`stop`], and returns its exit
/// status with everything it logged (for assertion messages).
pub fn stop_with_log(child: &mut Child, limit: Duration) -> (Option<ExitStatus>, String) {
    let status = stop(child, limit);
    let mut log = String::new();
    if let Some(stderr) = child.stderr.as_mut() {
        let _ = std::io::Read::read_to_string(stderr, &mut log);
    }
    (status, log)
}
