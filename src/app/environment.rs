//! The checks of a configuration that need the machine: files it names exist and can be read,
//! the state directory is a private directory, the listen address is free.
//!
//! `fathometer check-config` runs them after parsing, and so does `fathometer run` before it
//! starts anything, so a configuration that `check-config` accepts starts, and one it refuses
//! is refused with the same words: each problem names its key and line.

use std::path::Path;

use super::state;
use crate::config::{Config, ConfigError, find_key_line};

/// Loads a configuration and checks it against the machine: every problem, each with its
/// key and line. `check-config`, the daemon's start (and its reload) share this.
pub fn load_checked(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let config = Config::load(path).map_err(|e| vec![e])?;
    let problems = check(&config);
    if problems.is_empty() { Ok(config) } else { Err(problems) }
}

/// Every problem the machine has with `config`, in the order of the file's tables.
///
/// The listen address counts as free when the daemon of this very state directory holds it
/// (checking the configuration of a running pinger before reloading it must pass).
pub fn check(config: &Config) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    let mut problem = |table: &str, key: &str, message: String| {
        problems.push(locate(config, table, key, message));
    };

    let state_dir = &config.pinger.state_dir;
    // SAFETY: geteuid has no preconditions.
    let us = unsafe { libc::geteuid() };
    // Root checks the configuration of the service user (`sudo fathometer check-config`):
    // ownership is then the service's business, everything else still counts.
    let as_root = us == 0;
    if state_dir.exists() {
        match state::check_dir(state_dir) {
            Err(state::StateError::OwnedByAnother { .. }) if as_root => {}
            Err(e) => problem("pinger", "state_dir", e.to_string()),
            Ok(()) => {}
        }
        let secret = config.secret_path();
        if let Ok(meta) = std::fs::metadata(&secret) {
            use std::os::unix::fs::MetadataExt;
            if meta.uid() != us && !as_root {
                problem(
                    "pinger",
                    "state_dir",
                    format!(
                        "{} belongs to uid {}, not to the user running fathometer (uid {us})",
                        secret.display(),
                        meta.uid()
                    ),
                );
            }
        }
    } else if let Some(existing) = state_dir.ancestors().skip(1).find(|p| p.exists())
        && !existing.is_dir()
    {
        problem(
            "pinger",
            "state_dir",
            format!("cannot be created: {} is not a directory", existing.display()),
        );
    }

    if let Some(path) = &config.smtp.password_file {
        readable(path, "the SMTP password file").unwrap_or_else(|m| {
            problem("smtp", "password_file", m);
        });
    }
    if let Some(path) = &config.mailbox.maildir
        && path.exists()
        && !path.is_dir()
    {
        problem("mailbox", "maildir", format!("{} is not a directory", path.display()));
    }
    if let Some(imap) = &config.mailbox.imap {
        readable(&imap.password_file, "the IMAP password file").unwrap_or_else(|m| {
            problem("mailbox.imap", "password_file", m);
        });
    }
    let imap_ca = config.mailbox.imap.as_ref().and_then(|i| i.ca_file.as_ref());
    for (table, path) in [("smtp", config.smtp.ca_file.as_ref()), ("mailbox.imap", imap_ca)] {
        if let Some(path) = path
            && let Err(e) = super::context::read_ca_file(path)
        {
            problem(table, "ca_file", format!("{e:#}"));
        }
    }
    for (key, path, what) in [
        ("broken_type1_file", &config.stats.broken_type1_file, "the type I broken-chain file"),
        ("broken_type2_file", &config.stats.broken_type2_file, "the type II broken-chain file"),
        ("same_operator_file", &config.stats.same_operator_file, "the same-operator file"),
    ] {
        if let Some(path) = path {
            readable(path, what).unwrap_or_else(|m| problem("stats", key, m));
        }
    }

    if let Some(program) = config.events.command.first() {
        executable(Path::new(program)).unwrap_or_else(|m| problem("events", "command", m));
    }

    let listen = config.http.listen.0;
    if let Err(e) = std::net::TcpListener::bind(listen) {
        let ours = e.kind() == std::io::ErrorKind::AddrInUse
            && state::running_daemon(&config.pinger.state_dir).is_some();
        if !ours {
            problem("http", "listen", format!("cannot listen on {listen}: {e}"));
        }
    }
    problems
}

/// Ok when `path` is a file this process can open for reading.
fn readable(path: &Path, what: &str) -> Result<(), String> {
    match std::fs::File::open(path) {
        Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => Ok(()),
        Ok(_) => Err(format!("{what} {} is not a file", path.display())),
        Err(e) => Err(format!("{what} {} cannot be read: {e}", path.display())),
    }
}

/// Ok when `program` is an executable file, named by its path (the daemon runs with a
/// minimal environment: no PATH search).
fn executable(program: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    if program.components().count() == 1 {
        return Err(format!(
            "`{}` must be the path to the program (e.g. /usr/local/bin/{0}): no PATH search",
            program.display()
        ));
    }
    match std::fs::metadata(program) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(format!("{} is not an executable file", program.display())),
        Err(e) => Err(format!("{} cannot be run: {e}", program.display())),
    }
}

fn locate(config: &Config, table: &str, key: &str, message: String) -> ConfigError {
    let (path, line) = match &config.origin {
        Some(o) => (o.path.clone(), find_key_line(&o.text, table, key)),
        None => (Default::default(), None),
    };
    ConfigError { path, line, key: Some(format!("{table}.{key}")), message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(dir: &Path, extra: &str) -> Config {
        let path = dir.join("f.toml");
        std::fs::write(
            &path,
            format!(
                "[pinger]\naddress = \"p@localhost\"\nstate_dir = \"st\"\n[http]\nlisten = \
                 \"127.0.0.1:0\"\n{extra}"
            ),
        )
        .unwrap();
        Config::load(&path).unwrap()
    }

    #[test]
    fn a_good_configuration_has_no_problem() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check(&load(dir.path(), "")), vec![]);
    }

    #[test]
    fn missing_files_a_file_as_state_dir_and_a_busy_port_are_named_with_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("st"), b"not a directory").unwrap();
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = busy.local_addr().unwrap().port();
        let mut config = load(
            dir.path(),
            "[smtp]\nuser = \"u\"\npassword_file = \"nope\"\n[stats]\nbroken_type1_file = \
             \"broken1.txt\"\n[events]\ncommand = [\"/nonexistent/notify\", \"-x\"]\n",
        );
        config.http.listen = crate::config::ListenAddr(([127, 0, 0, 1], port).into());
        let problems = check(&config);
        let found: Vec<(Option<String>, Option<usize>)> =
            problems.iter().map(|p| (p.key.clone(), p.line)).collect();
        assert_eq!(
            found,
            vec![
                (Some("pinger.state_dir".into()), Some(3)),
                (Some("smtp.password_file".into()), Some(8)),
                (Some("stats.broken_type1_file".into()), Some(10)),
                (Some("events.command".into()), Some(12)),
                (Some("http.listen".into()), Some(5)),
            ],
            "{problems:?}"
        );
        assert!(problems[0].message.contains("not a directory"), "{}", problems[0]);
        assert!(problems[3].message.contains("cannot be run"), "{}", problems[3]);
        assert!(problems[4].message.contains("cannot listen"), "{}", problems[4]);
    }
}
