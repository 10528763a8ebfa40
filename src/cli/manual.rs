//! The manual: `fathometer(1)` and a page per command, generated from the command-line
//! definition itself (so they cannot drift from it); `fathometer.toml(5)`, generated from
//! `config.example.toml` (a test checks that file against every key the parser accepts);
//! and completions for bash, zsh and fish. `fathometer manual --out DIR` writes them all
//! (the Debian package installs them).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::Cli;

/// The annotated example configuration every key is documented in.
pub const CONFIG_EXAMPLE: &str = include_str!("../../config.example.toml");

/// Writes `man/*.1`, `man/fathometer.toml.5` and `completions/*` under `out`; returns the
/// files written.
pub fn write_all(out: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let man = out.join("man");
    let completions = out.join("completions");
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut write = |path: PathBuf, bytes: Vec<u8>| -> Result<()> {
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        files.push(path);
        Ok(())
    };
    for (name, page) in command_pages()? {
        write(man.join(name), page)?;
    }
    write(man.join("fathometer.toml.5"), config_page(CONFIG_EXAMPLE).into_bytes())?;
    for (name, shell) in [
        ("fathometer.bash", clap_complete::Shell::Bash),
        ("_fathometer", clap_complete::Shell::Zsh),
        ("fathometer.fish", clap_complete::Shell::Fish),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "fathometer", &mut buf);
        write(completions.join(name), buf)?;
    }
    Ok(files)
}

/// Every visible command path below the top: `["run"]`, `["downtime", "add"]`, ...
pub fn command_paths() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            // clap's own `help`: one page at the top (fathometer(1) lists it), none below.
            let help = sub.get_name() == "help";
            if help && !prefix.is_empty() {
                continue;
            }
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_owned());
            out.push(path.clone());
            if !help {
                walk(sub, &path, out);
            }
        }
    }
    let mut cli = Cli::command();
    // Built, so that clap's own `help` command is there, as fathometer(1) lists it.
    cli.build();
    let mut out = Vec::new();
    walk(&cli, &[], &mut out);
    out
}

/// `fathometer.1` and `fathometer-<command>[-<subcommand>].1` for every visible command.
pub fn command_pages() -> Result<Vec<(String, Vec<u8>)>> {
    let mut cli = Cli::command();
    cli.build();
    let mut pages = Vec::new();
    let mut top = Vec::new();
    let man = clap_mangen::Man::new(cli.clone()).date("").manual("fathometer manual");
    man.render_title(&mut top)?;
    man.render_name_section(&mut top)?;
    man.render_synopsis_section(&mut top)?;
    man.render_description_section(&mut top)?;
    man.render_options_section(&mut top)?;
    man.render_subcommands_section(&mut top)?;
    top.extend_from_slice(TOP_SECTIONS.as_bytes());
    man.render_version_section(&mut top)?;
    pages.push(("fathometer.1".to_owned(), top));
    for path in command_paths() {
        let mut cmd = &cli;
        for name in &path {
            cmd = cmd.find_subcommand(name).expect("a path from command_paths");
        }
        let name = format!("fathometer-{}", path.join("-"));
        let mut page = Vec::new();
        let sub = cmd.clone().name(name.clone()).bin_name(format!("fathometer {}", path.join(" ")));
        clap_mangen::Man::new(sub).date("").manual("fathometer manual").render(&mut page)?;
        page.extend_from_slice(
            b".SH \"SEE ALSO\"\n\\fBfathometer\\fR(1), \\fBfathometer.toml\\fR(5)\n",
        );
        pages.push((format!("{name}.1"), page));
    }
    Ok(pages)
}

const TOP_SECTIONS: &str = r#".SH SIGNALS
.TP
\fBSIGHUP\fR
\fBfathometer run\fR re-reads its configuration, with the checks of \fBfathometer check-config\fR.
A valid file takes effect without a restart (schedule, statistics, publishing, SMTP, mailbox,
listen address); an invalid one is logged with its line and key and the running configuration
stays. \fBsystemctl reload fathometer\fR sends it.
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop between two steps; nothing committed is lost.
.SH SYSTEMD
Under systemd (\fBType=notify\fR) the daemon reports READY once its database is open and its
HTTP port bound, pings the watchdog (\fBWatchdogSec=\fR), keeps a one-line STATUS and reports
RELOADING around a reload. Its log lines carry no timestamp of their own under the journal.
.SH FILES
.TP
\fI/etc/fathometer/fathometer.toml\fR
The configuration; see \fBfathometer.toml\fR(5).
.TP
\fI/var/lib/fathometer\fR
The state directory of the packaged service: the database, the secret, the published files.
.SH ENVIRONMENT
.TP
\fBFATHOMETER_CONFIG\fR
The configuration file, instead of \fI/etc/fathometer/fathometer.toml\fR.
.TP
\fBRUST_LOG\fR
The log filter, e.g. \fBdebug\fR or \fBfathometer=debug\fR (default \fBinfo\fR).
.SH "SEE ALSO"
\fBfathometer.toml\fR(5), \fBfathometer-run\fR(1), \fBfathometer-import-echolot\fR(1),
\fBsystemctl\fR(1), \fBjournalctl\fR(1)
"#;

/// Text for roff: backslashes doubled, hyphens kept literal, and a leading `.` or `'` (a
/// request to roff) protected.
fn roff_escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// A key line of the example, active or commented out: `key = value  # note`.
fn key_line(line: &str) -> Option<(String, String)> {
    let body = line.strip_prefix('#').map_or(line, str::trim_start);
    let (key, rest) = body.split_once(" = ")?;
    let key = key.trim();
    (!key.is_empty()
        && key.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()))
    .then(|| (key.to_owned(), rest.trim().to_owned()))
}

/// A table header of the example, active or commented out: `[mailbox.imap]`.
fn table_line(line: &str) -> Option<String> {
    let body = line.strip_prefix('#').map_or(line, str::trim_start).trim();
    let name = body.strip_prefix('[')?.strip_suffix(']')?;
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '.'))
        .then(|| name.to_owned())
}

/// Every table and key the example documents, in order: `("smtp", "host")`, ...
pub fn documented_keys(example: &str) -> Vec<(String, String)> {
    let mut table = String::new();
    let mut out = Vec::new();
    for line in example.lines() {
        if let Some(t) = table_line(line) {
            table = t;
        } else if let Some((key, _)) = key_line(line)
            && !table.is_empty()
            && !out.contains(&(table.clone(), key.clone()))
        {
            out.push((table.clone(), key));
        }
    }
    out
}

/// `fathometer.toml(5)` from the annotated example: each table a subsection, each key a
/// tagged paragraph with its example value and the comments above it.
pub fn config_page(example: &str) -> String {
    let mut page = String::from(
        ".TH FATHOMETER.TOML 5 \"\" \"fathometer\" \"fathometer manual\"\n\
         .SH NAME\nfathometer.toml \\- configuration of the fathometer remailer pinger\n\
         .SH SYNOPSIS\n\\fI/etc/fathometer/fathometer.toml\\fR\n\
         .SH DESCRIPTION\nA TOML file of tables. Every key is optional except \\fBpinger.address\\fR; \
         what is left out takes the default shown. Relative paths are resolved against the \
         directory of the file. \\fBfathometer check\\-config\\fR checks a file and names the \
         key and line of each problem; \\fBfathometer run\\fR re\\-reads it on SIGHUP with the \
         same checks.\n.SH TABLES AND KEYS\n",
    );
    let mut notes: Vec<String> = Vec::new();
    let mut in_header = true;
    for line in example.lines() {
        let trimmed = line.trim();
        if let Some(table) = table_line(line) {
            in_header = false;
            page.push_str(&format!(".SS [{}]\n", roff_escape(&table)));
            if !notes.is_empty() {
                page.push_str(&format!("{}\n", roff_escape(&notes.join(" "))));
            }
            notes.clear();
        } else if let Some((key, value)) = key_line(line) {
            let (value, trailing) = match value.split_once("  #") {
                Some((v, note)) => (
                    v.trim().to_owned(),
                    Some(note.trim().trim_start_matches('#').trim().to_owned()),
                ),
                None => (value, None),
            };
            page.push_str(&format!(
                ".TP\n\\fB{}\\fR = {}\n",
                roff_escape(&key),
                roff_escape(&value)
            ));
            notes.extend(trailing);
            let text = if notes.is_empty() { "See above.".to_owned() } else { notes.join(" ") };
            page.push_str(&format!("{}\n", roff_escape(&text)));
            notes.clear();
        } else if let Some(comment) = trimmed.strip_prefix('#') {
            let comment = comment.trim();
            if !in_header && !comment.is_empty() {
                notes.push(comment.to_owned());
            }
        } else if trimmed.is_empty() {
            notes.clear();
        }
    }
    page.push_str(
        ".SH FILES\n\\fI/usr/share/doc/fathometer/examples/config.example.toml\\fR, the same \
         keys with their comments.\n.SH \"SEE ALSO\"\n\\fBfathometer\\fR(1)\n",
    );
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// The keys the parser accepts in `table` (`""`: the top-level tables), read from the
    /// parser's own refusal of an unknown key ("expected one of `a`, `b`").
    fn accepted_keys(table: &str) -> Vec<String> {
        let text = match table {
            "" => "[zz_unknown]\n".to_owned(),
            "mailbox.imap" => {
                "[mailbox.imap]\nhost = 'h'\nuser = 'u'\npassword_file = 'p'\nzz_unknown = 1\n"
                    .to_owned()
            }
            "pinger" => "[pinger]\naddress = 'a@b'\nzz_unknown = 1\n".to_owned(),
            t => format!("[pinger]\naddress = 'a@b'\n[{t}]\nzz_unknown = 1\n"),
        };
        let error = toml::from_str::<Config>(&text).expect_err("an unknown key is refused");
        let message = error.message().to_owned();
        let list = message.split("expected one of").nth(1).unwrap_or_else(|| panic!("{message}"));
        list.split(',').map(|k| k.trim().trim_matches('`').to_owned()).collect()
    }

    #[test]
    fn the_example_documents_every_key_the_parser_accepts_and_no_other() {
        let documented = documented_keys(CONFIG_EXAMPLE);
        let mut tables: Vec<String> = accepted_keys("");
        tables.push("mailbox.imap".into());
        for table in &tables {
            for key in accepted_keys(table) {
                if table == "mailbox" && key == "imap" {
                    continue;
                }
                assert!(
                    documented.contains(&(table.clone(), key.clone())),
                    "[{table}] {key} is not in config.example.toml"
                );
            }
        }
        for (table, key) in &documented {
            assert!(
                accepted_keys(table).contains(key),
                "config.example.toml documents [{table}] {key}, which the parser refuses"
            );
        }
    }

    #[test]
    fn every_example_value_parses_with_its_key() {
        // Uncommented, each key with its example value is accepted (types and ranges), table
        // by table. A table's keys that exclude each other are tried one at a time.
        for (table, key) in documented_keys(CONFIG_EXAMPLE) {
            let mut current = String::new();
            let mut value = None;
            for l in CONFIG_EXAMPLE.lines() {
                if let Some(t) = table_line(l) {
                    current = t;
                } else if current == table
                    && let Some((k, v)) = key_line(l)
                    && k == key
                {
                    value = Some(v.split("  #").next().unwrap().trim().to_owned());
                    break;
                }
            }
            let value = value.unwrap();
            let mut text = String::from("[pinger]\naddress = \"p@localhost\"\n");
            if table == "mailbox.imap" {
                text.push_str(
                    "[mailbox.imap]\nhost = \"h\"\nuser = \"u\"\npassword_file = \"p\"\n",
                );
                if !["host", "user", "password_file"].contains(&key.as_str()) {
                    text.push_str(&format!("{key} = {value}\n"));
                }
            } else if table == "pinger" {
                if key != "address" {
                    text.push_str(&format!("{key} = {value}\n"));
                }
            } else {
                text.push_str(&format!("[{table}]\n{key} = {value}\n"));
            }
            toml::from_str::<Config>(&text)
                .unwrap_or_else(|e| panic!("[{table}] {key} = {value}: {}", e.message()));
        }
    }

    #[test]
    fn the_config_page_has_every_documented_key() {
        let page = config_page(CONFIG_EXAMPLE);
        for (table, key) in documented_keys(CONFIG_EXAMPLE) {
            assert!(page.contains(&format!(".SS [{}]", roff_escape(&table))), "{table}");
            assert!(page.contains(&format!("\\fB{}\\fR = ", roff_escape(&key))), "{table}.{key}");
        }
        // No line starts a roff request by accident.
        for line in page.lines().filter(|l| l.starts_with('.')) {
            let request = line.split(' ').next().unwrap();
            assert!([".TH", ".SH", ".SS", ".TP"].contains(&request), "{line}");
        }
    }

    #[test]
    fn the_top_page_lists_every_command_and_each_page_every_option() {
        let pages = command_pages().unwrap();
        let top = String::from_utf8(pages[0].1.clone()).unwrap();
        let mut cli = Cli::command();
        cli.build();
        for path in command_paths() {
            let name = format!("fathometer-{}.1", path.join("-"));
            let page = pages.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("{name}"));
            let page = String::from_utf8(page.1.clone()).unwrap();
            if path.len() == 1 {
                assert!(
                    top.contains(&roff_escape(&path[0])),
                    "{} missing from fathometer.1",
                    path[0]
                );
            }
            let mut cmd = &cli;
            for p in &path {
                cmd = cmd.find_subcommand(p).unwrap();
            }
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    assert!(
                        page.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                        "{name}: --{long}"
                    );
                }
            }
        }
    }
}
