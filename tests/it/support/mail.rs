//! The real mail services for the mail-path tests: Postfix (SMTP) and Dovecot (IMAP) started by
//! `../shared/mail-services.sh` (`.ci/run` starts them; its header documents ports, users and
//! Maildir paths). Each test owns its mailbox users (tests/mail-users.txt), so tests running in
//! parallel never read each other's mail.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::gpg::{GpgHome, KeyShape};
use super::remailer::{Behaviour, TestRemailer};

pub fn smtp_addr() -> SocketAddr {
    let bind = std::env::var("MAIL_BIND").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("MAIL_SMTP_PORT").unwrap_or_else(|_| "2525".into());
    format!("{bind}:{port}").parse().expect("MAIL_BIND:MAIL_SMTP_PORT")
}

pub fn imap_port() -> u16 {
    std::env::var("MAIL_IMAP_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(1143)
}

pub fn state_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("MAIL_STATE_DIR").unwrap_or_else(|_| "/var/lib/fathometer-mail".into()),
    )
}

pub fn maildir(user: &str) -> PathBuf {
    state_dir().join("maildirs").join(user)
}

/// Whether Postfix and Dovecot answer. CI sets FATHOMETER_REQUIRE_MAIL=1, and then their
/// absence fails the test instead of skipping it.
pub fn available() -> bool {
    let imap: SocketAddr = SocketAddr::new(smtp_addr().ip(), imap_port());
    let up = [smtp_addr(), imap]
        .iter()
        .all(|a| TcpStream::connect_timeout(a, Duration::from_secs(2)).is_ok());
    if !up {
        assert!(
            std::env::var("FATHOMETER_REQUIRE_MAIL").is_err(),
            "the mail services are not running: start them with ../shared/mail-services.sh"
        );
        eprintln!("SKIPPED: Postfix/Dovecot not running (see ../shared/mail-services.sh)");
    }
    up
}

/// Empties a test user's mailbox (new, cur and the quarantine folder).
pub fn clear_mailbox(user: &str) {
    let root = maildir(user);
    for sub in ["new", "cur", ".Quarantine/new", ".Quarantine/cur"] {
        if let Ok(entries) = std::fs::read_dir(root.join(sub)) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Files in a Maildir subfolder.
pub fn files_in(user: &str, sub: &str) -> Vec<PathBuf> {
    std::fs::read_dir(maildir(user).join(sub))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Waits until `cond` holds, polling every 50 ms; false after `limit`.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

const QUIET_SCHEDULE: &str = "ping_types = [\"cpunk-clear\"]\nchain_pings = false\n";

/// A pinger config for mailbox user `user` (Maildir unless `imap` is set), in `dir`. It sends
/// no information requests unless `extra` has a `[discovery]` table: the mail-path tests give
/// their remailers' keys by hand.
///
/// Its scheduler queues no pings of its own unless `extra` names ping types (only the
/// cpunk-clear type, which these tests' remailers never have, and no chains): a scheduled slot
/// falling inside a test would add a ping the test did not expect.
pub fn pinger_config(dir: &Path, user: &str, imap: bool, extra: &str) -> PathBuf {
    let discovery =
        if extra.contains("[discovery]") { "" } else { "[discovery]\nrequests = false\n" };
    let extra = if extra.contains("ping_types") {
        extra.to_owned()
    } else if extra.contains("[schedule]\n") {
        extra.replacen("[schedule]\n", &format!("[schedule]\n{QUIET_SCHEDULE}"), 1)
    } else {
        format!("{extra}[schedule]\n{QUIET_SCHEDULE}")
    };
    let extra = crate::support::with_probes_off(&extra);
    let mailbox = if imap {
        std::fs::write(dir.join("imap-password"), format!("{user}-pass\n")).unwrap();
        format!(
            "[mailbox]\npoll_secs = 1\n[mailbox.imap]\nhost = \"127.0.0.1\"\nport = {}\n\
             user = \"{user}\"\npassword_file = \"imap-password\"\n",
            imap_port()
        )
    } else {
        format!("[mailbox]\npoll_secs = 1\nmaildir = \"{}\"\n", maildir(user).display())
    };
    let path = dir.join("fathometer.toml");
    std::fs::write(
        &path,
        format!(
            "[pinger]\naddress = \"{user}@localhost\"\nstate_dir = \"state\"\n\
             name = \"fathometer test\"\n\
             [smtp]\nhost = \"{}\"\nport = {}\nretry_secs = 1\n\
             [http]\nlisten = \"127.0.0.1:0\"\n{discovery}{mailbox}{extra}",
            smtp_addr().ip(),
            smtp_addr().port()
        ),
    )
    .unwrap();
    path
}

/// A type I remailer double for `user@localhost` with a fresh key of the old remailer shape
/// (DSA-1024/ElGamal-1024, SHA-1), and its key as a remailer-key reply would carry it: the
/// capability line followed by the armoured key.
pub fn remailer(user: &str, behaviour: Behaviour) -> (TestRemailer, String) {
    remailer_with(user, KeyShape::OldDsaElg1024, behaviour)
}

pub fn remailer_with(user: &str, shape: KeyShape, behaviour: Behaviour) -> (TestRemailer, String) {
    clear_mailbox(user);
    let gpg = GpgHome::new();
    let address = format!("{user}@localhost");
    let key = gpg.generate(shape, &format!("Test Remailer {user}"), &address, "S3 S7 S2");
    let reply = format!(
        "$remailer{{\"{user}\"}} = \"<{address}> cpunk pgp hash ksub latent\";\n\n\
         Here is the DSA PGP key:\n\n{key}\n"
    );
    (TestRemailer::start(&address, maildir(user), gpg, smtp_addr(), behaviour), reply)
}
