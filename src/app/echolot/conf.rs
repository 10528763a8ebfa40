//! A `fathometer.toml` suggested from Echolot's `pingd.conf` (`echolot.md` §9): the settings
//! that map, each with the Echolot key it came from, and what does not map, said in comments.

use std::fmt::Write as _;

use super::perl::Value;

/// TOML's basic string.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn text<'a>(config: &'a Value, key: &str) -> Option<&'a str> {
    config.get(key).and_then(Value::as_text).filter(|s| !s.is_empty())
}

fn int(config: &Value, key: &str) -> Option<i64> {
    config.get(key).and_then(Value::as_i64)
}

fn flag(config: &Value, key: &str) -> Option<bool> {
    config.get(key).map(Value::truthy)
}

/// The suggested configuration for a pinger whose state goes to `state_dir`, from the Echolot
/// configuration `config` (`None`: Echolot's defaults were in force).
pub fn suggest(config: Option<&Value>, state_dir: &str, home: &std::path::Path) -> String {
    let empty = Value::Hash(Default::default());
    let c = config.unwrap_or(&empty);
    // Echolot's relative paths are relative to its home.
    let in_home = |p: &str| home.join(p).display().to_string();
    let mut out = String::from(
        "# Suggested by `fathometer import-echolot` from Echolot's pingd.conf.\n\
         # Review it, then check it with `fathometer check-config --config <this file>`.\n\n",
    );
    out.push_str("[pinger]\n");
    match (text(c, "my_localpart"), text(c, "my_domain")) {
        (Some(local), Some(domain)) => {
            let _ = writeln!(out, "# my_localpart, my_domain\naddress = {}", quoted(&format!("{local}@{domain}")));
        }
        _ => out.push_str("# pingd.conf names no my_localpart/my_domain: set the pinger's address.\naddress = \"pinger@example.net\"\n"),
    }
    // Echolot's default is `+`; an empty one is its `(token)` comment form.
    let delimiter = match c.get("recipient_delimiter") {
        None => Some("+"),
        Some(v) => v.as_text().filter(|d| d.chars().count() == 1 && "+-_=.".contains(*d)),
    };
    match delimiter {
        Some(d) => {
            let _ = writeln!(out, "# recipient_delimiter\nrecipient_delimiter = {}", quoted(d));
        }
        None => out.push_str(
            "# Echolot used the `(token)` comment form (recipient_delimiter ''); fathometer tags the\n\
             # local part instead: set the MTA's recipient_delimiter to + (docs/OPERATING.md).\n\
             recipient_delimiter = \"+\"\n",
        ),
    }
    let _ = writeln!(out, "state_dir = {}", quoted(state_dir));
    if let Some(name) = text(c, "sitename") {
        let _ = writeln!(out, "# sitename\nname = {}", quoted(name));
    }
    if let Some(operator) = text(c, "operator_address") {
        let _ = writeln!(out, "# operator_address\noperator_address = {}", quoted(operator));
    }

    out.push_str("\n[smtp]\n# Echolot handed mail to sendmail");
    if let Some(sendmail) = text(c, "sendmail") {
        let _ = write!(out, " ({sendmail})");
    }
    out.push_str("; fathometer speaks SMTP to the local MTA.\nhost = \"127.0.0.1\"\nport = 25\n");

    out.push_str("\n[mailbox]\n");
    match text(c, "mailin") {
        Some(m) => {
            let _ = writeln!(
                out,
                "# mailin ({m}); a directory is a Maildir (an mbox is not read: deliver to a Maildir)\n\
                 maildir = {}",
                quoted(&in_home(m))
            );
        }
        None => {
            let _ = writeln!(
                out,
                "# Echolot's default mailin, the Maildir `mail` in its home\nmaildir = {}",
                quoted(&in_home("mail"))
            );
        }
    }

    out.push_str("\n[stats]\n");
    if let Some(every) = int(c, "buildstats").filter(|n| (1..=86_400).contains(n)) {
        let _ = writeln!(out, "# buildstats\nbuild_interval_secs = {every}");
    }
    if let Some(n @ -1..=1) = int(c, "stats_sort_by_latency") {
        let _ = writeln!(out, "# stats_sort_by_latency\nsort_by_latency = {n}");
    }
    out.push_str("# Echolot's own numbers; the default, methodology, counts outstanding pings by their age.\nmodel = \"echolot\"\n");
    for (echolot, ours) in [
        ("broken1", "broken_type1_file"),
        ("broken2", "broken_type2_file"),
        ("sameop", "same_operator_file"),
    ] {
        if let Some(file) = text(c, echolot) {
            let _ = writeln!(
                out,
                "# {echolot} (if the file exists)\n# {ours} = {}",
                quoted(&in_home(file))
            );
        }
    }

    out.push_str("\n[schedule]\n");
    if let Some(chains) = flag(c, "do_chainpings") {
        let _ = writeln!(out, "# do_chainpings\nchain_pings = {chains}");
    }
    if let Some(pings) = c.get("do_pings").and_then(Value::as_hash) {
        let types: Vec<String> = ["mix", "cpunk-rsa", "cpunk-dsa", "cpunk-clear"]
            .into_iter()
            .filter(|t| pings.get(*t).is_none_or(Value::truthy))
            .map(quoted)
            .collect();
        let _ = writeln!(out, "# do_pings\nping_types = [{}]", types.join(", "));
    }

    out.push_str("\n[discovery]\n");
    if let Some(n) = int(c, "reliable_auto_add_min").filter(|n| (0..=1000).contains(n)) {
        let _ = writeln!(out, "# reliable_auto_add_min\nauto_add_min = {n}");
    }
    if let Some(n) = int(c, "addresses_default_ttl").filter(|n| (1..=1000).contains(n)) {
        let _ = writeln!(out, "# addresses_default_ttl\nunanswered_limit = {n}");
    }

    out.push_str("\n[publish]\n");
    if let Some(every) = int(c, "buildkeys").filter(|n| (1..=604_800).contains(n)) {
        let _ = writeln!(out, "# buildkeys\nkeyring_interval_secs = {every}");
    }
    for (echolot, ours) in [
        ("separate_rlists", "separate_rlists"),
        ("seperate_rlists", "separate_rlists"),
        ("combined_list", "combined_list"),
        ("write_meta_files", "meta_files"),
    ] {
        if let Some(on) = flag(c, echolot) {
            let _ = writeln!(out, "# {echolot}\n{ours} = {on}");
        }
    }
    out.push_str(
        "\n# Not carried over: the Perl paths (gnupghome, mixhome, mixmaster, gzip, tmpdir), the\n\
         # timers fathometer fixes by design (pings every 2 hours, requests daily), and the\n\
         # HTML templates (fathometer renders its own pages).\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::echolot::perl::parse_assignment;

    #[test]
    fn a_debian_echolot_configuration_maps_to_a_valid_fathometer_one() {
        let conf = parse_assignment(
            "$CONFIG = { 'my_localpart' => 'pinger', 'my_domain' => 'example.net', \
             'sitename' => 'Ex \"ample\"', 'operator_address' => 'op@example.net', \
             'recipient_delimiter' => '', 'mailin' => '/var/mail/echolot', \
             'separate_rlists' => 1, 'combined_list' => 1, 'buildstats' => 600, \
             'do_pings' => { 'cpunk-clear' => 0 }, 'do_chainpings' => 0 };",
            "CONFIG",
        )
        .unwrap();
        let toml = suggest(Some(&conf), "/var/lib/fathometer", std::path::Path::new("/home/e"));
        assert!(toml.contains("address = \"pinger@example.net\""), "{toml}");
        assert!(toml.contains("name = \"Ex \\\"ample\\\"\""), "{toml}");
        assert!(toml.contains("ping_types = [\"mix\", \"cpunk-rsa\", \"cpunk-dsa\"]"), "{toml}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(&path, &toml).unwrap();
        let config = crate::config::Config::load(&path).expect("the suggestion parses");
        assert_eq!(config.stats.build_interval_secs.0, 600);
        assert!(!config.schedule.chain_pings && config.publish.combined_list);
        assert_eq!(
            config.mailbox.maildir.as_deref(),
            Some(std::path::Path::new("/var/mail/echolot"))
        );
        // With no pingd.conf at all, still a valid file.
        let defaults = suggest(None, "state", std::path::Path::new("/home/e"));
        assert!(defaults.contains("recipient_delimiter = \"+\""), "Echolot's default: {defaults}");
        assert!(defaults.contains("maildir = \"/home/e/mail\""), "{defaults}");
        std::fs::write(&path, defaults).unwrap();
        crate::config::Config::load(&path).expect("defaults parse");
    }
}
