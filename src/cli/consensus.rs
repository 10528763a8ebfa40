//! `fathometer consensus`: the consensus of pingers' published files already on disk (each
//! pinger a directory holding its `mlist2.txt`, `rlist2.txt` and `pubring.mix`, as served
//! at its base URL): the agreed figures per remailer with every pinger's view and the
//! outliers marked, stale pingers, key disagreements, and, when agreed, the consensus lists
//! written under `--out`. The daemon's fetching of peers over HTTP builds on this (issue 15).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::output::terminal_safe;
use crate::ingest::peer_list::{MAX_LIST_BYTES, parse_list_v2, pubring_key_ids};
use crate::publish::consensus::render;
use crate::stats::consensus::{Consensus, Snapshot, consensus, key_disagreements, majority};

pub struct ConsensusArgs<'a> {
    /// `NAME=DIR` or `DIR` (named after the directory).
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

pub fn run(args: ConsensusArgs<'_>) -> Result<ExitCode> {
    anyhow::ensure!(!args.pingers.is_empty(), "name at least one pinger: --pinger [NAME=]DIR");
    let mut mix = Vec::new();
    let mut cpunk = Vec::new();
    let mut keyrings = Vec::new();
    for spec in args.pingers {
        let (name, dir) = match spec.split_once('=') {
            Some((name, dir)) => (name.to_owned(), PathBuf::from(dir)),
            None => {
                let dir = PathBuf::from(spec);
                let name = dir.file_name().map_or(spec.clone(), |n| n.to_string_lossy().into());
                (name, dir)
            }
        };
        for (file, into) in [("mlist2.txt", &mut mix), ("rlist2.txt", &mut cpunk)] {
            match read_bounded(&dir.join(file)) {
                Ok(None) => {}
                Ok(Some(text)) => match parse_list_v2(&text) {
                    Ok(list) => into.push(Snapshot { pinger: name.clone(), list }),
                    Err(e) => eprintln!("fathometer: {name}: {file} refused: {e}"),
                },
                Err(e) => eprintln!("fathometer: {name}: {e:#}"),
            }
        }
        if let Ok(Some(ring)) = read_bounded(&dir.join("pubring.mix")) {
            keyrings.push((name.clone(), pubring_key_ids(&ring)));
        }
    }
    let quorum = args.quorum.unwrap_or_else(|| majority(args.pingers.len()));
    let mix = consensus(&mix, quorum, args.now);
    let cpunk = consensus(&cpunk, quorum, args.now);
    print("Type II (mlist2.txt)", &mix)?;
    print("Type I (rlist2.txt)", &cpunk)?;
    let disagreements = key_disagreements(&keyrings);
    for d in &disagreements {
        outln!("KEY DISAGREEMENT {}:", terminal_safe(&d.address));
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
