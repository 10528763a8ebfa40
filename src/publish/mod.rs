//! Publishing: turns a statistics [`Report`] into the files clients scrape.
//!
//! Rendering is pure ([`lists`], [`json`]); [`write_lists`] is the only I/O, and it writes
//! each file under a temporary name and renames it, so a client never fetches half a file.

pub mod consensus;
pub mod feed;
pub mod html;
pub mod http;
pub mod json;
pub mod keyrings;
pub mod lists;
pub mod metrics;
pub mod pages;
pub mod snapshot;

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

/// Public files hold listed remailers only, private ones all.
fn pick(entries: &[ListEntry], private: bool) -> Vec<&ListEntry> {
    entries.iter().filter(|e| private || e.listed).collect()
}

/// The sections of one tree: the broken chains differ between the public and the private one.
struct TreeSections<'a> {
    same_operator: Option<&'a str>,
    broken_type1: Option<String>,
    broken_type2: Option<String>,
}

impl<'a> TreeSections<'a> {
    fn of(report: &Report, private: bool, same_operator: Option<&'a str>) -> Self {
        let broken = |b: &crate::stats::BrokenChains| {
            if private { b.private.clone() } else { b.public.clone() }
        };
        TreeSections {
            same_operator,
            broken_type1: broken(&report.broken_type1),
            broken_type2: broken(&report.broken_type2),
        }
    }

    fn sections(&self) -> Sections<'_> {
        Sections {
            same_operator: self.same_operator,
            broken_type1: self.broken_type1.as_deref(),
            broken_type2: self.broken_type2.as_deref(),
        }
    }
}

/// The names of a split list's two files: `rlist-rsa.txt` and `rlist2-rsa.txt` for cpunk-rsa.
pub fn split_list_names(spec: &crate::stats::ListSpec) -> [String; 2] {
    let suffix = spec.name.trim_start_matches("cpunk-");
    [format!("rlist-{suffix}.txt"), format!("rlist2-{suffix}.txt")]
}

/// Renders one list file.
pub fn render_list(
    report: &Report,
    file: ListFile,
    private: bool,
    same_operator: Option<&str>,
) -> String {
    let tree = TreeSections::of(report, private, same_operator);
    let sections = tree.sections();
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

/// clist.txt (`echolot.md` §7.5): every row of mix and cpunk in one file, or of mix and the
/// three cpunk types when the report has the split lists.
pub fn render_clist(report: &Report, private: bool, same_operator: Option<&str>) -> String {
    let tree = TreeSections::of(report, private, same_operator);
    let sections = tree.sections();
    let mut lists = vec![("mix", pick(&report.mix, private))];
    if report.cpunk_by_type.is_empty() {
        lists.push(("cpunk", pick(&report.cpunk, private)));
    } else {
        for (spec, entries) in &report.cpunk_by_type {
            lists.push((spec.name, pick(entries, private)));
        }
    }
    lists::clist(&lists, &sections, report.now)
}

/// Which optional list files to write besides the four Echolot lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListOptions<'a> {
    /// The operator's same-operator file, verbatim.
    pub same_operator: Option<&'a str>,
    /// Write clist.txt (Echolot's `combined_list`).
    pub combined_list: bool,
    /// Write a `<file>.meta` beside each file, `Expires:` this Unix time (Echolot's
    /// `write_meta_files`, for Apache mod_cern_meta).
    pub meta_expires: Option<i64>,
}

/// Every list file of one tree: mlist, mlist2, rlist, rlist2; `rlist-{rsa,dsa,clear}.txt`
/// and `rlist2-*.txt` when the report has the split lists (each with the statistics of its
/// single type); and clist.txt when asked for. Pairs of file name and content.
pub fn list_files(report: &Report, private: bool, options: &ListOptions) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = ListFile::ALL
        .iter()
        .map(|f| {
            (f.file_name().to_owned(), render_list(report, *f, private, options.same_operator))
        })
        .collect();
    let tree = TreeSections::of(report, private, options.same_operator);
    let sections = tree.sections();
    for (spec, entries) in &report.cpunk_by_type {
        let [v1, v2] = split_list_names(spec);
        let picked = pick(entries, private);
        files.push((v1, lists::rlist(&picked, &sections, report.now)));
        files.push((v2, lists::list_v2(V2Kind::Cypherpunk, &picked, &sections, report.now)));
    }
    if options.combined_list {
        files.push(("clist.txt".to_owned(), render_clist(report, private, options.same_operator)));
    }
    files
}

/// The list files of both trees, as [`list_files`] renders them.
#[derive(Debug, Clone, Default)]
pub struct TreeLists {
    pub public: Vec<(String, String)>,
    pub private: Vec<(String, String)>,
}

impl TreeLists {
    pub fn of(&self, private: bool) -> &[(String, String)] {
        if private { &self.private } else { &self.public }
    }
}

/// Writes the list files into `public_dir` and `private_dir`, each atomically, and returns
/// them for the list pages ([`write_pages`]).
pub fn write_lists(
    report: &Report,
    public_dir: &Path,
    private_dir: &Path,
    options: &ListOptions,
) -> std::io::Result<TreeLists> {
    let lists = TreeLists {
        public: list_files(report, false, options),
        private: list_files(report, true, options),
    };
    for (dir, private) in [(public_dir, false), (private_dir, true)] {
        std::fs::create_dir_all(dir)?;
        for (name, text) in lists.of(private) {
            write_published(dir, name, text.as_bytes(), options.meta_expires)?;
        }
    }
    Ok(lists)
}

/// The folder of the YAMN files inside each results tree.
pub const YAMN_DIR: &str = "yamn";

/// The files a YAMN client fetches (`yamn.md` §9): `mlist2.txt` (Echolot's v2 layout, which
/// YAMN's reader accepts: the rows end at an empty line), `mlist.txt`, and, when `keys` are
/// given (a keyring rebuild), `pubring.mix` of YAMN key entries, as YAMN writes them. Public
/// files hold listed remailers only, private ones all.
pub fn yamn_files(
    report: &Report,
    keys: Option<&[crate::model::PublishableKey]>,
    private: bool,
) -> Vec<(String, String)> {
    let broken = if private { &report.broken_yamn.private } else { &report.broken_yamn.public };
    let sections =
        Sections { same_operator: None, broken_type1: None, broken_type2: broken.as_deref() };
    let entries = pick(&report.yamn, private);
    let mut files = vec![
        ("mlist.txt".to_owned(), lists::mlist(&entries, &sections, report.now)),
        (
            "mlist2.txt".to_owned(),
            lists::list_v2(V2Kind::Mixmaster, &entries, &sections, report.now),
        ),
    ];
    if let Some(keys) = keys {
        let shown: std::collections::HashSet<&str> =
            entries.iter().map(|e| e.address.as_str()).collect();
        let ring: String = keys
            .iter()
            .filter(|k| k.ping_type == crate::model::PingType::Yamn)
            .filter(|k| private || shown.contains(k.address.as_str()))
            .filter_map(|k| crate::compose::yamn::PublicKey::from_text(&k.material).ok())
            .map(|k| k.to_entry() + "\n")
            .collect();
        files.push(("pubring.mix".to_owned(), ring));
    }
    files
}

/// Writes the YAMN files into `yamn/` of both trees, each atomically.
pub fn write_yamn(
    report: &Report,
    keys: Option<&[crate::model::PublishableKey]>,
    public_dir: &Path,
    private_dir: &Path,
    meta_expires: Option<i64>,
) -> std::io::Result<()> {
    for (dir, private) in [(public_dir, false), (private_dir, true)] {
        let dir = dir.join(YAMN_DIR);
        std::fs::create_dir_all(&dir)?;
        for (name, text) in yamn_files(report, keys, private) {
            write_published(&dir, &name, text.as_bytes(), meta_expires)?;
        }
    }
    Ok(())
}

/// Writes one published file atomically, and its `.meta` companion (`Expires: <date>`,
/// `echolot.md` §7.1) when `meta_expires` is set. The data file goes first: a `.meta` never
/// describes a file that is not there yet.
pub fn write_published(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    meta_expires: Option<i64>,
) -> std::io::Result<()> {
    write_atomic(&dir.join(name), bytes)?;
    if let Some(expires) = meta_expires {
        let meta = format!("Expires: {}\n", lists::rfc822_date(expires));
        write_atomic(&dir.join(format!("{name}{META_EXTENSION}")), meta.as_bytes())?;
    }
    Ok(())
}

/// Echolot's `meta_extension`.
pub const META_EXTENSION: &str = ".meta";

/// Writes the keyrings into `public_dir` (keys of publicly listed remailers only) and
/// `private_dir` (every remailer's current key), each file atomically.
pub fn write_keyrings(
    report: &Report,
    keys: &[crate::model::PublishableKey],
    public_dir: &Path,
    private_dir: &Path,
    meta_expires: Option<i64>,
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
            write_published(dir, name, text.as_bytes(), meta_expires)?;
        }
    }
    Ok(())
}

/// Writes the HTML pages and the thesaurus into `public_dir` and `private_dir`, each file
/// atomically, and removes what is no longer published: the pages of remailers no longer
/// shown (and their feeds) and the replies that left the thesaurus (a page must not outlive its remailer's
/// listing, nor a reply the 21 days).
pub fn write_pages(
    inputs: &pages::PageInputs<'_>,
    lists: &TreeLists,
    public_dir: &Path,
    private_dir: &Path,
    meta_expires: Option<i64>,
) -> anyhow::Result<()> {
    // The two trees are independent: render and write them on two threads.
    std::thread::scope(|scope| {
        let private =
            scope.spawn(|| write_tree_pages(inputs, lists, private_dir, true, meta_expires));
        let public = write_tree_pages(inputs, lists, public_dir, false, meta_expires);
        let private =
            private.join().map_err(|_| anyhow::anyhow!("rendering the private pages failed"))?;
        public.and(private)
    })
}

/// [`write_pages`] for one tree.
fn write_tree_pages(
    inputs: &pages::PageInputs<'_>,
    lists: &TreeLists,
    dir: &Path,
    private: bool,
    meta_expires: Option<i64>,
) -> anyhow::Result<()> {
    let thesaurus = dir.join(pages::THESAURUS_DIR);
    std::fs::create_dir_all(&thesaurus)?;
    let rendered = pages::render_pages(inputs, private, lists.of(private))?;
    for (name, text) in &rendered {
        let (subdir, file) = match name.rsplit_once('/') {
            Some((subdir, file)) => (dir.join(subdir), file),
            None => (dir.to_path_buf(), name.as_str()),
        };
        write_published(&subdir, file, text.as_bytes(), meta_expires)?;
    }
    let published = |relative: &str| rendered.iter().any(|(n, _)| n == relative);
    for (subdir, generated) in [
        (dir.to_path_buf(), is_remailer_page as fn(&str) -> bool),
        (thesaurus.clone(), is_thesaurus_reply),
    ] {
        for entry in std::fs::read_dir(&subdir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let file = name.strip_suffix(META_EXTENSION).unwrap_or(&name);
            let relative = if subdir == dir {
                file.to_owned()
            } else {
                format!("{}/{file}", pages::THESAURUS_DIR)
            };
            if generated(file) && !published(&relative) {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(())
}

/// `remailer-….html`, a page [`write_pages`] owns.
fn is_remailer_page(name: &str) -> bool {
    name.starts_with("remailer-") && (name.ends_with(".html") || name.ends_with(".atom"))
}

/// `<id>.<kind>`, a raw reply of the thesaurus.
fn is_thesaurus_reply(name: &str) -> bool {
    name.split_once('.').is_some_and(|(id, kind)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && html::REPLY_KINDS.contains(&kind)
    })
}

/// This pinger's section of the community `allpingers.txt` (`mixmaster.md` §3.6). The
/// Mixmaster client needs `mlist`, `rlist`, `mixring` and `pgpring` (and replaces its files
/// with whatever those URLs return), so the stanza names only files this pinger always
/// publishes, the keyrings included.
/// The section name this pinger's stanza goes by in `allpingers.txt`: its name with
/// everything but letters, digits, `-`, `_` and `.` made `-`.
pub fn allpingers_section(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' })
        .collect()
}

/// The stanza of this pinger's YAMN files (`results/yamn/`), in the same INI layout, as
/// YAMN pingers list theirs: section `<name>-yamn`, the v1 and v2 lists and the YAMN
/// keyring (no type I files: YAMN has none).
pub fn allpingers_yamn_stanza(name: &str, base_url: &str) -> anyhow::Result<String> {
    let full = allpingers_stanza(name, base_url)?;
    let base = full
        .lines()
        .find_map(|l| l.strip_prefix("base").map(|r| r.trim_start().trim_start_matches('=')))
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    let base = format!("{base}{YAMN_DIR}/");
    let mut out = format!("[{}-yamn]\n", allpingers_section(name));
    for (key, file) in
        [("base", ""), ("mlist", "mlist.txt"), ("mlist2", "mlist2.txt"), ("mixring", "pubring.mix")]
    {
        out.push_str(&format!("{key:<14} = {base}{file}\n"));
    }
    Ok(out)
}

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
    let section = allpingers_section(name);
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
        ("mlist_html", "mlist.html"),
        ("rlist_html", "rlist.html"),
        ("from_html", "from.html"),
        ("thesaurus_html", "thesaurus/index.html"),
    ] {
        out.push_str(&format!("{key:<14} = {base}{file}\n"));
    }
    Ok(out)
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`: a reader
/// sees the old file or the new one, never half of one.
///
/// No fsync: every published file is derived from the database and rewritten at each start
/// and each build, so a file a crash leaves empty is replaced within seconds of the restart,
/// while syncing some 250 files per build cost more than the rest of the build.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A file whose content did not change is only touched: its modification time is when
    // it was last built (the web server's freshness counts from it), and rewriting it
    // (a rename over the old file, its blocks freed) was a third of a build's time.
    if unchanged(path, bytes) {
        let now = std::time::SystemTime::now();
        if std::fs::File::options().write(true).open(path).and_then(|f| f.set_modified(now)).is_ok()
        {
            return Ok(());
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Whether `path` is a regular file holding exactly `bytes`.
fn unchanged(path: &Path, bytes: &[u8]) -> bool {
    use std::io::Read;
    let Ok(meta) = std::fs::symlink_metadata(path) else { return false };
    if !meta.is_file() || meta.len() != bytes.len() as u64 {
        return false;
    }
    let mut old = Vec::with_capacity(bytes.len());
    std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut old)).is_ok() && old == bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PingType;
    use crate::model::{Dataset, Ping, RemailerHistory};
    use crate::stats::{StatsOptions, compute};

    const NOW: i64 = 1_700_000_000;

    /// One remailer whose RSA pings all came back and whose plaintext pings were all lost.
    fn split_report(separate_rlists: bool) -> Report {
        let mut pings = Vec::new();
        for i in 1..=20 {
            let sent = NOW - i * 3600 * 5;
            pings.push(Ping {
                ping_type: PingType::CpunkRsa,
                sent,
                returned: Some(sent + 300),
                failed: None,
            });
            pings.push(Ping {
                ping_type: PingType::CpunkClear,
                sent,
                returned: None,
                failed: None,
            });
        }
        let remailer = RemailerHistory {
            address: "half@x.example".into(),
            nick: Some("half".into()),
            caps: Some("$remailer{\"half\"} = \"<half@x.example> cpunk pgp\";".into()),
            hidden: false,
            key_types: vec![PingType::CpunkRsa, PingType::CpunkClear],
            pings,
        };
        let data = Dataset { remailers: vec![remailer], ..Default::default() };
        compute(&data, NOW, &StatsOptions { separate_rlists, ..StatsOptions::default() })
    }

    /// The YAMN tree: its mlist2.txt as the YAMN client reads it (rows up to the empty
    /// line, the figures we mean), and its pubring.mix of YAMN entries, listed ones only.
    #[test]
    fn the_yamn_files_are_what_a_yamn_client_reads() {
        let key = |name: &str| {
            std::fs::read_to_string(format!(
                "{}/tests/vectors/yamn/keys/{name}.key.txt",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        let history = |nick: &str, hidden: bool, back: bool| {
            let pings = (1..=20)
                .map(|i| {
                    let sent = NOW - i * 3600 * 5;
                    Ping {
                        ping_type: PingType::Yamn,
                        sent,
                        returned: back.then_some(sent + 600),
                        failed: None,
                    }
                })
                .collect();
            RemailerHistory {
                address: format!("{nick}@localhost"),
                nick: Some(nick.into()),
                caps: Some(format!("$remailer{{\"{nick}\"}} = \"<{nick}@localhost> mix\";")),
                hidden,
                key_types: vec![PingType::Yamn],
                pings,
            }
        };
        let data = Dataset {
            remailers: vec![history("yamn1", false, true), history("yamn2", true, false)],
            ..Default::default()
        };
        let report = compute(&data, NOW, &StatsOptions::default());
        let keys: Vec<crate::model::PublishableKey> = ["yamn1", "yamn2"]
            .iter()
            .map(|n| crate::model::PublishableKey {
                address: format!("{n}@localhost"),
                nick: (*n).into(),
                ping_type: PingType::Yamn,
                key_id: String::new(),
                material: key(n),
            })
            .collect();
        for private in [false, true] {
            let files = yamn_files(&report, Some(&keys), private);
            let text = |name: &str| &files.iter().find(|(n, _)| n == name).unwrap().1;
            let rows = lists::yamn_client::import(text("mlist2.txt"), &["yamn1", "yamn2"]).unwrap();
            let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
            assert_eq!(names, if private { vec!["yamn1", "yamn2"] } else { vec!["yamn1"] });
            assert_eq!((rows[0].latency_minutes, rows[0].uptime_tenths), (10, 1000));
            let ring = crate::compose::yamn::PublicKey::all_from_text(text("pubring.mix"));
            assert_eq!(ring.len(), if private { 2 } else { 1 }, "{}", text("pubring.mix"));
            assert!(ring.iter().all(Result::is_ok));
        }
        assert!(report.mix.is_empty() && report.cpunk.is_empty(), "YAMN is its own list");
    }

    fn row<'a>(files: &'a [(String, String)], name: &str) -> &'a str {
        let text = &files.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name}")).1;
        text.lines().find(|l| l.starts_with("half ")).unwrap_or_else(|| panic!("{text}"))
    }

    #[test]
    fn split_rlists_carry_the_statistics_of_their_own_type() {
        let options = ListOptions { combined_list: true, ..ListOptions::default() };
        let files = list_files(&split_report(true), false, &options);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "mlist.txt",
                "mlist2.txt",
                "rlist.txt",
                "rlist2.txt",
                "rlist-rsa.txt",
                "rlist2-rsa.txt",
                "rlist-dsa.txt",
                "rlist2-dsa.txt",
                "rlist-clear.txt",
                "rlist2-clear.txt",
                "clist.txt"
            ]
        );
        assert!(row(&files, "rlist-rsa.txt").ends_with("100.00%"), "{files:?}");
        assert!(row(&files, "rlist-clear.txt").ends_with("  0.00%"), "{files:?}");
        // The pooled list lies between the two.
        let pooled = row(&files, "rlist.txt");
        assert!(!pooled.ends_with("100.00%") && !pooled.ends_with(" 0.00%"), "{pooled}");
        // No DSA key: no row in the DSA list, which is still written (clients expect it).
        let dsa = &files.iter().find(|(n, _)| n == "rlist-dsa.txt").unwrap().1;
        assert!(!dsa.contains("half "), "{dsa}");
        // clist: one row per (nick, list), the split names in the Type column.
        let clist = &files.last().unwrap().1;
        let types: Vec<&str> = clist
            .lines()
            .filter(|l| l.starts_with("half "))
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(types, ["cpunk-clear", "cpunk-rsa"], "{clist}");
    }

    #[test]
    fn without_split_lists_clist_pools_the_cpunk_types() {
        let options = ListOptions { combined_list: true, ..ListOptions::default() };
        let files = list_files(&split_report(false), false, &options);
        assert_eq!(files.len(), 5, "{files:?}");
        let clist = &files[4].1;
        assert!(clist.lines().any(|l| l.starts_with("half ") && l.ends_with(" cpunk")), "{clist}");
        assert_eq!(list_files(&split_report(false), false, &ListOptions::default()).len(), 4);
    }

    #[test]
    fn meta_files_follow_their_file_and_say_when_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let (public, private) = (dir.path().join("results"), dir.path().join("results.private"));
        let options = ListOptions { meta_expires: Some(NOW + 300), ..ListOptions::default() };
        write_lists(&split_report(false), &public, &private, &options).unwrap();
        for d in [&public, &private] {
            let meta = std::fs::read_to_string(d.join("mlist.txt.meta")).unwrap();
            assert_eq!(meta, "Expires: Tue, 14 Nov 2023 22:18:20 +0000\n");
        }
        let without = dir.path().join("plain");
        write_lists(&split_report(false), &without, &without, &ListOptions::default()).unwrap();
        assert!(without.join("rlist.txt").exists() && !without.join("rlist.txt.meta").exists());
    }
}
