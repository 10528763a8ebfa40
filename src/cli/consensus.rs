//! `fathometer consensus`: the consensus of pingers' published files (each pinger the base
//! URL it serves its `mlist2.txt`, `rlist2.txt` and `pubring.mix` at, or a directory holding
//! them): the agreed figures per remailer with every pinger's view and the outliers marked,
//! stale pingers, key disagreements, and, when agreed, the consensus lists written under
//! `--out`. The daemon's periodic fetching of peers builds on this (issue 15).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::output::terminal_safe;
use crate::ingest::peer_fetch::{FetchError, Fetched, Validators, fetch};
use crate::ingest::peer_list::{MAX_LIST_BYTES, parse_list_v2, pgp_key_ids, pubring_key_ids};
use crate::publish::consensus::render;
use crate::stats::consensus::{
    Consensus, KeyFamily, Keyring, Snapshot, consensus, key_disagreements, majority,
};

pub struct ConsensusArgs<'a> {
    /// `NAME=DIR`, `NAME=URL`, `DIR` or `URL` (named after its last part).
    pub pingers: &'a [String],
    pub quorum: Option<usize>,
    pub now: i64,
    pub out: Option<&'a Path>,
}

/// A file of a pinger, bounded in size; None when absent.
fn read_bounded(path: &Path) -> Result<Option<String>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        Ok(m) if m.len() > MAX_LIST_BYTES as u64 => {
            anyhow::bail!("{}: {} bytes, more than {MAX_LIST_BYTES}", path.display(), m.len())
        }
        Ok(_) => {}
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Where a pinger's files are: a directory, or the base URL it serves them at.
enum Source {
    Dir(PathBuf),
    Url(String),
}

impl Source {
    /// One of its files; None when it has none (absent, 404).
    fn read(&self, file: &str, runtime: &tokio::runtime::Runtime) -> Result<Option<String>> {
        match self {
            Source::Dir(dir) => read_bounded(&dir.join(file)),
            Source::Url(base) => {
                let url = format!("{}/{file}", base.trim_end_matches('/'));
                match runtime.block_on(fetch(&url, &Validators::default())) {
                    Ok(Fetched::Body { text, .. }) => Ok(Some(text)),
                    Ok(Fetched::NotModified) => Ok(None),
                    Err(FetchError::Status(404)) => Ok(None),
                    Err(e) => Err(anyhow::anyhow!("{url}: {e}")),
                }
            }
        }
    }
}

pub fn run(args: ConsensusArgs<'_>) -> Result<ExitCode> {
    anyhow::ensure!(!args.pingers.is_empty(), "name at least one pinger: --pinger [NAME=]DIR");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let mut mix = Vec::new();
    let mut cpunk = Vec::new();
    let mut keyrings = Vec::new();
    for spec in args.pingers {
        let is_url = |s: &str| s.starts_with("http://") || s.starts_with("https://");
        let (name, location) = match spec.split_once('=') {
            Some((name, location)) if !is_url(spec) => (name.to_owned(), location.to_owned()),
            _ => {
                let name = spec.trim_end_matches('/').rsplit('/').next().unwrap_or(spec);
                (name.to_owned(), spec.clone())
            }
        };
        let source = if is_url(&location) {
            Source::Url(location)
        } else {
            Source::Dir(PathBuf::from(location))
        };
        for (file, into) in [("mlist2.txt", &mut mix), ("rlist2.txt", &mut cpunk)] {
            match source.read(file, &runtime) {
                Ok(None) => {}
                Ok(Some(text)) => match parse_list_v2(&text) {
                    Ok(list) => into.push(Snapshot { pinger: name.clone(), list }),
                    Err(e) => eprintln!("fathometer: {name}: {file} refused: {e}"),
                },
                Err(e) => eprintln!("fathometer: {name}: {e:#}"),
            }
        }
        if let Ok(Some(ring)) = source.read("pubring.mix", &runtime) {
            let keys = pubring_key_ids(&ring);
            keyrings.push(Keyring { pinger: name.clone(), family: KeyFamily::Mix, keys });
        }
        if let Ok(Some(ring)) = source.read("pgp-all.asc", &runtime) {
            match pgp_key_ids(&ring, args.now) {
                Ok(keys) => keyrings.push(Keyring {
                    pinger: name.clone(),
                    family: KeyFamily::Openpgp,
                    keys,
                }),
                Err(e) => eprintln!("fathometer: {name}: pgp-all.asc refused: {e}"),
            }
        }
    }
    let quorum = args.quorum.unwrap_or_else(|| majority(args.pingers.len()));
    let mix = consensus(&mix, quorum, args.now);
    let cpunk = consensus(&cpunk, quorum, args.now);
    print("Type II (mlist2.txt)", &mix)?;
    print("Type I (rlist2.txt)", &cpunk)?;
    let disagreements = key_disagreements(&keyrings);
    for d in &disagreements {
        outln!("KEY DISAGREEMENT {} ({} keys):", terminal_safe(&d.address), d.family.label());
        for (key, holders) in &d.holders {
            outln!("  {} held by {}", terminal_safe(key), terminal_safe(&holders.join(", ")));
        }
    }
    if let Some(out) = args.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        for (file, text) in render(&mix, &cpunk, args.now).files() {
            let path = out.join(file);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            outln!("wrote {}", path.display());
        }
    }
    Ok(if mix.agreed || cpunk.agreed { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

fn print(title: &str, c: &Consensus) -> Result<()> {
    outln!(
        "{title}: {} fresh of {} pingers, quorum {}: {}",
        c.fresh.len(),
        c.fresh.len() + c.stale.len(),
        c.quorum,
        if c.agreed { "agreed" } else { "NOT AGREED (below quorum: nothing published)" }
    );
    for (pinger, why) in &c.stale {
        outln!("  stale: {} ({why})", terminal_safe(pinger));
    }
    for r in &c.remailers {
        let latency = r
            .latency
            .map_or("?".to_owned(), |l| format!("{}:{:02}", l as i64 / 3600, (l as i64 / 60) % 60));
        outln!(
            "  {:<12} {:>6.1}% {:>6} {}",
            terminal_safe(&r.nick),
            r.reliability,
            latency,
            if r.alive { "alive" } else { "FAILED" }
        );
        for v in r.views.iter().filter(|v| v.reliability_outlier || v.latency_outlier) {
            outln!(
                "      outlier: {} says {:.1}%{}",
                terminal_safe(&v.pinger),
                v.reliability,
                v.latency.map(|l| format!(", {} min", l / 60)).unwrap_or_default()
            );
        }
    }
    Ok(())
}
