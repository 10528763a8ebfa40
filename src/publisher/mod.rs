//! Publishing: turns a statistics [`Report`] into the files clients scrape.
//!
//! Rendering is pure ([`lists`], [`json`]); [`write_lists`] is the only I/O, and it writes
//! each file under a temporary name and renames it, so a client never fetches half a file.

pub mod html;
pub mod http;
pub mod json;
pub mod keyrings;
pub mod lists;
pub mod metrics;
pub mod pages;

use std::io::Write;
use std::path::Path;

use crate::stats::{ListEntry, Report};

use lists::{Sections, V2Kind};

/// The four Echolot list files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFile {
    Mlist,
    Mlist2,
    Rlist,
    Rlist2,
}

impl ListFile {
    pub const ALL: [ListFile; 4] =
        [ListFile::Mlist, ListFile::Mlist2, ListFile::Rlist, ListFile::Rlist2];

    pub fn file_name(self) -> &'static str {
        match self {
            ListFile::Mlist => "mlist.txt",
            ListFile::Mlist2 => "mlist2.txt",
            ListFile::Rlist => "rlist.txt",
            ListFile::Rlist2 => "rlist2.txt",
        }
    }
}

/// Renders one list file. Public files hold listed remailers only, private ones all.
pub fn render_list(
    report: &Report,
    file: ListFile,
    private: bool,
    same_operator: Option<&str>,
) -> String {
    fn pick(entries: &[ListEntry], private: bool) -> Vec<&ListEntry> {
        entries.iter().filter(|e| private || e.listed).collect()
    }
    let broken = |b: &crate::stats::BrokenChains| {
        if private { b.private.clone() } else { b.public.clone() }
    };
    let (b1, b2) = (broken(&report.broken_type1), broken(&report.broken_type2));
    let sections =
        Sections { same_operator, broken_type1: b1.as_deref(), broken_type2: b2.as_deref() };
    match file {
        ListFile::Mlist => lists::mlist(&pick(&report.mix, private), &sections, report.now),
        ListFile::Mlist2 => {
            lists::list_v2(V2Kind::Mixmaster, &pick(&report.mix, private), &sections, report.now)
        }
        ListFile::Rlist => lists::rlist(&pick(&report.cpunk, private), &sections, report.now),
        ListFile::Rlist2 => {
            lists::list_v2(V2Kind::Cypherpunk, &pick(&report.cpunk, private), &sections, report.now)
        }
    }
}

/// Writes the four lists into `public_dir` and `private_dir`, each atomically.
pub fn write_lists(
    report: &Report,
    public_dir: &Path,
    private_dir: &Path,
    same_operator: Option<&str>,
) -> std::io::Result<()> {
    for (dir, private) in [(public_dir, false), (private_dir, true)] {
        std::fs::create_dir_all(dir)?;
        for file in ListFile::ALL {
            let text = render_list(report, file, private, same_operator);
            write_atomic(&dir.join(file.file_name()), text.as_bytes())?;
        }
    }
    Ok(())
}

/// Writes the keyrings into `public_dir` (keys of publicly listed remailers only) and
/// `private_dir` (every remailer's current key), each file atomically.
pub fn write_keyrings(
    report: &Report,
    keys: &[crate::store::PublishableKey],
    public_dir: &Path,
    private_dir: &Path,
) -> anyhow::Result<()> {
    let listed = |entries: &'_ [ListEntry]| -> std::collections::HashSet<String> {
        entries.iter().filter(|e| e.listed).map(|e| e.address.clone()).collect()
    };
    let (mix, cpunk) = (listed(&report.mix), listed(&report.cpunk));
    let public = keyrings::render(
        keys,
        &mix.iter().map(String::as_str).collect(),
        &cpunk.iter().map(String::as_str).collect(),
    )?;
    let everyone: std::collections::HashSet<&str> =
        keys.iter().map(|k| k.address.as_str()).collect();
    let private = keyrings::render(keys, &everyone, &everyone)?;
    for (dir, rings) in [(public_dir, &public), (private_dir, &private)] {
        std::fs::create_dir_all(dir)?;
        for (name, text) in rings.files() {
            write_atomic(&dir.join(name), text.as_bytes())?;
        }
    }
    Ok(())
}

/// Writes the HTML pages into `public_dir` and `private_dir`, each atomically, and removes
/// the pages of remailers no longer shown (a page must not outlive its remailer's listing).
pub fn write_pages(
    inputs: &pages::PageInputs<'_>,
    public_dir: &Path,
    private_dir: &Path,
) -> anyhow::Result<()> {
    for (dir, private) in [(public_dir, false), (private_dir, true)] {
        std::fs::create_dir_all(dir)?;
        let rendered = pages::render_pages(inputs, private)?;
        for (name, text) in &rendered {
            write_atomic(&dir.join(name), text.as_bytes())?;
        }
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = name.starts_with("remailer-")
                && name.ends_with(".html")
                && !rendered.iter().any(|(n, _)| *n == name);
            if stale {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(())
}

/// This pinger's section of the community `allpingers.txt` (`mixmaster.md` §3.6). The
/// Mixmaster client needs `mlist`, `rlist`, `mixring` and `pgpring` (and replaces its files
/// with whatever those URLs return), so the stanza names only files this pinger always
/// publishes, the keyrings included.
pub fn allpingers_stanza(name: &str, base_url: &str) -> anyhow::Result<String> {
    let base_url = base_url.trim();
    anyhow::ensure!(
        base_url.starts_with("http://") || base_url.starts_with("https://"),
        "--base-url must start with http:// or https:// (the Mixmaster client fetches only those)"
    );
    anyhow::ensure!(
        !base_url.chars().any(|c| c.is_whitespace() || c.is_control()),
        "--base-url must not contain spaces"
    );
    let section: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' })
        .collect();
    let base = if base_url.ends_with('/') { base_url.to_owned() } else { format!("{base_url}/") };
    let mut out = format!("[{section}]\n");
    for (key, file) in [
        ("base", ""),
        ("mlist", "mlist.txt"),
        ("mlist2", "mlist2.txt"),
        ("rlist", "rlist.txt"),
        ("rlist2", "rlist2.txt"),
        ("mixring", "pubring.mix"),
        ("pgpring", "pgp-all.asc"),
        ("pgpring_rsa", "pgp-rsa.asc"),
        ("type2list", "type2.list"),
        ("mlist_html", "index.html"),
        ("rlist_html", "index.html"),
        ("from_html", "from.html"),
        ("thesaurus_html", "thesaurus.html"),
    ] {
        out.push_str(&format!("{key:<14} = {base}{file}\n"));
    }
    Ok(out)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
