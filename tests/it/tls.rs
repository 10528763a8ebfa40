//! Mail servers as operators run them: pings submitted over port 587 with STARTTLS and AUTH,
//! and over SMTPS; returns read over IMAPS and IMAP with STARTTLS; every certificate checked
//! against the private CA of `../shared/mail-services.sh` (`smtp.ca_file`,
//! `mailbox.imap.ca_file`) and the host name. The endpoints whose certificate that CA did not
//! issue are refused with a clear error, and nothing is sent or read through them. Two tiny
//! servers here (they speak only the first lines of SMTP and IMAP) show that no password ever
//! leaves before TLS when TLS is configured.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::mail::{
    available, clear_mailbox, files_in, pinger_config, remailer, wait_until,
};
use crate::support::remailer::Behaviour;
use crate::support::{fathometer, run, run_ok};

fn env_port(name: &str, default: u16) -> u16 {
    std::env::var(name).ok().and_then(|p| p.parse().ok()).unwrap_or(default)
}

fn ca_file() -> PathBuf {
    std::env::var("MAIL_CA_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| crate::support::mail::state_dir().join("tls/ca.pem"))
}

/// A pinger for `user` that submits to `smtp` (`port`, `tls` mode, with AUTH) and reads
/// over IMAP at `imap` (`port`, `tls` mode), trusting only the test CA.
fn tls_config(dir: &Path, user: &str, smtp: (u16, &str), imap: (u16, &str)) -> PathBuf {
    let path = pinger_config(dir, user, false, "");
    std::fs::write(dir.join("password"), format!("{user}-pass\n")).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let smtp_plain = text.lines().skip_while(|l| *l != "[smtp]").nth(1).unwrap().to_owned()
        + "\n"
        + text.lines().skip_while(|l| *l != "[smtp]").nth(2).unwrap()
        + "\n";
    let maildir_line =
        text.lines().find(|l| l.starts_with("maildir = ")).unwrap().to_owned() + "\n";
    let ca = ca_file();
    let text = text
        .replacen(
            &smtp_plain,
            &format!(
                "host = \"localhost\"\nport = {}\ntls = \"{}\"\nuser = \"{user}\"\n\
                 password_file = \"password\"\nca_file = \"{}\"\n",
                smtp.0,
                smtp.1,
                ca.display()
            ),
            1,
        )
        .replacen(
            &maildir_line,
            &format!(
                "[mailbox.imap]\nhost = \"localhost\"\nport = {}\ntls = \"{}\"\nuser = \"{user}\"\n\
                 password_file = \"password\"\nca_file = \"{}\"\n",
                imap.0,
                imap.1,
                ca.display()
            ),
            1,
        );
    std::fs::write(&path, text).unwrap();
    path
}

/// The pinger of `config` knows the remailer `user@localhost` and its key (`reply`, a
/// remailer-key reply).
fn know_remailer(config: &Path, user: &str, reply: &str) {
    run_ok(fathometer(config).args(["add", &format!("{user}@localhost")]));
    let key = config.with_file_name("key-reply.txt");
    std::fs::write(&key, reply).unwrap();
    run_ok(fathometer(config).arg("import-keys").arg(&key));
}

fn returned(config: &Path) -> i64 {
    let json: serde_json::Value =
        serde_json::from_str(&run_ok(fathometer(config).args(["stats", "--format", "json"])))
            .unwrap();
    json["lists"]["cpunk"][0]["pings_returned"].as_i64().unwrap_or(0)
}

#[test]
fn pings_go_through_submission_and_smtps_and_return_over_imaps_and_imap_starttls() {
    if !available() {
        return;
    }
    let (rem, reply) = remailer("remailer18", Behaviour::Forward);
    clear_mailbox("ping16");
    let dir = tempfile::tempdir().unwrap();
    let routes = [
        (
            (env_port("MAIL_SUBMISSION_PORT", 2587), "starttls"),
            (env_port("MAIL_IMAPS_PORT", 1993), "tls"),
        ),
        (
            (env_port("MAIL_SMTPS_PORT", 2465), "tls"),
            (env_port("MAIL_IMAP_STARTTLS_PORT", 1144), "starttls"),
        ),
    ];
    let config = tls_config(dir.path(), "ping16", routes[0].0, routes[0].1);
    run_ok(fathometer(&config).arg("check-config"));
    know_remailer(&config, "remailer18", &reply);

    for (n, (smtp, imap)) in routes.into_iter().enumerate() {
        let config = tls_config(dir.path(), "ping16", smtp, imap);
        let out = run_ok(fathometer(&config).args(["ping", "remailer18"]));
        assert!(out.contains("accepted by the MTA"), "{smtp:?}: {out}");
        assert!(rem.wait_handled(n + 1, Duration::from_secs(20)), "{:?}", rem.errors());
        assert!(wait_until(Duration::from_secs(20), || files_in("ping16", "new").len()
            + files_in("ping16", "cur").len()
            == n + 1));
        let out = run_ok(fathometer(&config).args(["ingest", "--once"]));
        assert!(out.contains("1 returned"), "{imap:?}: {out}");
        assert_eq!(returned(&config), n as i64 + 1, "{smtp:?} / {imap:?}");
    }
    // Postfix says which path each ping took: authenticated, over TLS.
    let log = std::fs::read_to_string(crate::support::mail::state_dir().join("log/postfix.log"))
        .unwrap_or_default();
    assert!(log.contains("sasl_username=ping16"), "Postfix saw no AUTH by ping16");
}

#[test]
fn servers_whose_certificate_the_ca_did_not_issue_are_refused_and_nothing_moves() {
    if !available() {
        return;
    }
    let (rem, reply) = remailer("remailer19", Behaviour::Forward);
    clear_mailbox("ping17");
    let dir = tempfile::tempdir().unwrap();
    let bad_smtp = (env_port("MAIL_SMTPS_BADCERT_PORT", 2466), "tls");
    let bad_imap = (env_port("MAIL_IMAPS_BADCERT_PORT", 1994), "tls");
    let config = tls_config(dir.path(), "ping17", bad_smtp, bad_imap);
    know_remailer(&config, "remailer19", &reply);

    let handled = rem.handled();
    let out = run(fathometer(&config).args(["ping", "remailer19"]));
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("is not trusted") && text.contains("nothing was sent"), "{text}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(rem.handled(), handled, "a ping went out through the untrusted server");

    // A mail waits in the mailbox; the untrusted IMAPS server never gets to show it.
    crate::support::remailer::smtp_send(
        crate::support::mail::smtp_addr(),
        "someone@localhost",
        &["ping17@localhost".into()],
        "Subject: waiting\r\n\r\nhello\r\n",
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(20), || files_in("ping17", "new").len() == 1));
    let out = run(fathometer(&config).args(["ingest", "--once"]));
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("certificate is not trusted"), "{text}");
    assert_eq!(
        files_in("ping17", "new").len(),
        1,
        "the mail was read through the untrusted server"
    );
}

/// A server on a free loopback port that answers each line with `respond` (after sending
/// `greeting`) and returns everything the client sent.
fn one_session_server(
    greeting: &'static str,
    respond: fn(&str) -> Option<String>,
) -> (u16, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut writer = stream.try_clone().unwrap();
        writer.write_all(greeting.as_bytes()).unwrap();
        let mut seen = String::new();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            seen.push_str(&line);
            match respond(line.trim_end()) {
                Some(answer) => {
                    if writer.write_all(answer.as_bytes()).is_err() {
                        break;
                    }
                }
                None => break,
            }
            line.clear();
        }
        seen
    });
    (port, handle)
}

#[test]
fn no_password_leaves_before_tls_when_tls_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    // An SMTP server that offers AUTH but not STARTTLS.
    let (smtp_port, smtp_seen) = one_session_server("220 fake ESMTP\r\n", |line| {
        let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => Some("250-fake\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n".into()),
            "QUIT" => None,
            _ => Some("250 ok\r\n".into()),
        }
    });
    // An IMAP server that refuses STARTTLS.
    let (imap_port, imap_seen) =
        one_session_server("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] fake\r\n", |line| {
            let mut words = line.split(' ');
            let tag = words.next().unwrap_or("*").to_owned();
            match words.next().unwrap_or("").to_ascii_uppercase().as_str() {
                "STARTTLS" => Some(format!("{tag} NO not today\r\n")),
                "LOGOUT" => None,
                _ => Some(format!("{tag} OK done\r\n")),
            }
        });
    let config = tls_config(dir.path(), "ping17", (smtp_port, "starttls"), (imap_port, "starttls"));
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("host = \"localhost\"", "host = \"127.0.0.1\"");
    std::fs::write(&config, text).unwrap();
    let (_rem, reply) = remailer("remailer20", Behaviour::Forward);
    know_remailer(&config, "remailer20", &reply);

    let out = run(fathometer(&config).args(["ping", "remailer20"]));
    assert!(!out.status.success());
    let out = run(fathometer(&config).args(["ingest", "--once"]));
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(text.contains("STARTTLS"), "{text}");

    let smtp = smtp_seen.join().unwrap();
    let imap = imap_seen.join().unwrap();
    for (what, seen) in [("SMTP", &smtp), ("IMAP", &imap)] {
        assert!(!seen.to_ascii_uppercase().contains("AUTH "), "{what} client sent AUTH:\n{seen}");
        assert!(!seen.to_ascii_uppercase().contains("LOGIN"), "{what} client logged in:\n{seen}");
        assert!(!seen.contains("ping17-pass"), "{what} password in clear:\n{seen}");
    }
    assert!(smtp.to_ascii_uppercase().contains("EHLO"), "{smtp}");
    assert!(imap.to_ascii_uppercase().contains("STARTTLS"), "{imap}");
}
