//! The daemon's consensus of the pinger network (issue 15): every `[consensus] interval_secs`
//! each peer's `mlist2.txt`, `rlist2.txt`, `pubring.mix` and `pgp-all.asc` are fetched (conditional GET,
//! bounded; a failure or a refused file keeps the last good copy and is recorded with the
//! reason), then the consensus of theirs and our own published lists is computed and the
//! agreed lists are written to `consensus/` in the results directory. Below the quorum the
//! consensus files are removed: an old agreed view must not outlive the agreement.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;
use tracing::{info, warn};

use super::context::{Pinger, blocking};
use crate::config::AllpingersSource;
use crate::ingest::peer_fetch::{Fetched, Validators, fetch};
use crate::ingest::peer_list::{
    MAX_LIST_BYTES, parse_allpingers, parse_list_v2, pgp_key_ids, pubring_key_ids,
};
use crate::model::peer::PeerSource;
use crate::publish::consensus::render;
use crate::publish::html::{PeerFetch, Site, render_consensus};
use crate::publish::snapshot::{ConsensusStatus, PeerStatus, Published};
use crate::stats::consensus::{
    KeyDisagreement, KeyFamily, Keyring, Snapshot, consensus, key_disagreements, majority,
};
use crate::store::{Store, StoreError};

pub use crate::model::peer::PEER_FILES as FILES;
/// The store's name for the community index the peers may be read from.
const ALLPINGERS_PEER: &str = "allpingers";
const ALLPINGERS_FILE: &str = "allpingers.txt";
/// The report of the last round under `consensus/`, served at `/api/v1/consensus`.
pub const JSON: &str = "consensus.json";
/// The name our own lists go by in the consensus.
pub const OURS: &str = "this pinger";

/// Where the last round's key disagreements are kept for the statistics build's events.
const KEY_DISAGREEMENTS: &str = "consensus.key_disagreements";

/// The key disagreements the last consensus round found, by lower-cased address, each with
/// who holds what (one line per key family); empty without a consensus.
pub fn stored_key_disagreements(store: &Store) -> Result<BTreeMap<String, String>, StoreError> {
    Ok(store
        .state(KEY_DISAGREEMENTS)?
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default())
}

fn store_key_disagreements(
    store: &mut Store,
    disagreements: &[KeyDisagreement],
) -> Result<(), StoreError> {
    let mut by_address: BTreeMap<String, String> = BTreeMap::new();
    for d in disagreements {
        let line = by_address.entry(d.address.clone()).or_default();
        if !line.is_empty() {
            line.push_str("; ");
        }
        line.push_str(&d.describe());
    }
    let json = serde_json::to_string(&by_address).unwrap_or_else(|_| "{}".into());
    store.set_state(KEY_DISAGREEMENTS, &json)
}

/// What one round found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Round {
    pub mix_agreed: bool,
    pub cpunk_agreed: bool,
    pub key_disagreements: usize,
    /// For `/metrics`.
    pub status: ConsensusStatus,
}

/// Whether a file that failed `failures` times in a row, last at `attempted_at`, is tried
/// again at `now` with rounds every `interval`: at every round for the first two failures,
/// then after 2, 4, 8, 16 and at most 32 intervals, so that a peer that went away costs a
/// connection attempt a day or so, not one an hour forever, and one that comes back is read
/// again within that.
pub fn due_again(failures: i64, attempted_at: i64, interval: i64, now: i64) -> bool {
    if failures < 3 {
        return true;
    }
    let wait = interval.saturating_mul(1 << (failures - 2).min(5));
    // Half an interval early: rounds drift by the time a round takes.
    now - attempted_at >= wait - interval / 2
}

/// The validators of a conditional GET for a file held: none without a good copy (a 304
/// would leave us with nothing).
fn validators_of(held: Option<&crate::store::PeerFile>) -> Validators {
    held.filter(|h| h.body.is_some())
        .map(|h| Validators { etag: h.etag.clone(), last_modified: h.last_modified.clone() })
        .unwrap_or_default()
}

/// Fetches the community index when it is read from a URL (conditional GET, bounded); the
/// last good copy stays when it cannot be had.
async fn refresh_allpingers(pinger: &Arc<Pinger>) -> Result<()> {
    let Some(AllpingersSource::Url(url)) = pinger.config.consensus.allpingers.clone() else {
        return Ok(());
    };
    let p = pinger.clone();
    let held = blocking(move || p.store().peer_file(ALLPINGERS_PEER, ALLPINGERS_FILE)).await??;
    let outcome = fetch(&url, &validators_of(held.as_ref())).await;
    let (p, now) = (pinger.clone(), pinger.now());
    blocking(move || match outcome {
        Ok(Fetched::Body { text, etag, last_modified }) => p.store().peer_file_fetched(
            ALLPINGERS_PEER,
            ALLPINGERS_FILE,
            Some(&text),
            etag.as_deref(),
            last_modified.as_deref(),
            now,
        ),
        Ok(Fetched::NotModified) => {
            p.store().peer_file_fetched(ALLPINGERS_PEER, ALLPINGERS_FILE, None, None, None, now)
        }
        Err(e) => {
            warn!(%url, "consensus: allpingers.txt: {e}");
            p.store().peer_file_failed(ALLPINGERS_PEER, ALLPINGERS_FILE, &e.to_string(), now)
        }
    })
    .await??;
    Ok(())
}

/// Every pinger the consensus reads: the configured base URLs, then each usable section of
/// the community index (its last good copy), this pinger's own section left out, a pinger
/// already named left out. Unusable sections are logged.
pub fn peer_sources(pinger: &Pinger) -> Result<Vec<PeerSource>> {
    let config = &pinger.config.consensus;
    let mut sources: Vec<PeerSource> =
        config.peers.iter().map(|p| PeerSource::at_base(&p.0)).collect();
    let text = match &config.allpingers {
        None => None,
        Some(AllpingersSource::Url(_)) => {
            pinger.store().peer_file(ALLPINGERS_PEER, ALLPINGERS_FILE)?.and_then(|f| f.body)
        }
        Some(AllpingersSource::File(path)) => match read_index(path) {
            Ok(text) => Some(text),
            Err(e) => {
                warn!("consensus: {e:#}");
                None
            }
        },
    };
    if let Some(text) = text {
        let ours = crate::publish::allpingers_section(&pinger.config.pinger.name);
        let (entries, problems) = parse_allpingers(&text, &[ours.as_str()]);
        for problem in problems {
            warn!("consensus: allpingers.txt: {problem}");
        }
        for entry in entries {
            if !sources.iter().any(|s| s.id == entry.source.id) {
                sources.push(entry.source);
            }
        }
    }
    Ok(sources)
}

/// A local allpingers.txt, at most [`MAX_LIST_BYTES`].
fn read_index(path: &std::path::Path) -> Result<String> {
    let size = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        size.len() <= MAX_LIST_BYTES as u64,
        "{}: more than {MAX_LIST_BYTES} bytes",
        path.display()
    );
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Fetches every peer's files once (those backing off excepted) and records what came.
pub async fn fetch_peers(pinger: &Arc<Pinger>, sources: &[PeerSource]) -> Result<(usize, usize)> {
    let (mut fetched, mut failed) = (0, 0);
    let interval = pinger.config.consensus.interval_secs.as_i64();
    for peer in sources {
        for (file, url) in &peer.files {
            let file: &'static str = file;
            let (p, peer_name) = (pinger.clone(), peer.id.clone());
            let held = blocking(move || p.store().peer_file(&peer_name, file)).await??;
            if let Some(h) = &held
                && !due_again(h.failures, h.attempted_at, interval, pinger.now())
            {
                continue;
            }
            let validators = validators_of(held.as_ref());
            let outcome = match fetch(url, &validators).await {
                Ok(Fetched::Body { text, etag, last_modified }) => {
                    // A list that cannot be read is refused now, with its line, and the last
                    // good copy stays.
                    match file {
                        "pubring.mix" => Ok(Some((text, etag, last_modified))),
                        "pgp-all.asc" => match pgp_key_ids(&text, pinger.now()) {
                            Ok(_) => Ok(Some((text, etag, last_modified))),
                            Err(e) => Err(format!("refused: {e}")),
                        },
                        _ => match parse_list_v2(&text) {
                            Ok(_) => Ok(Some((text, etag, last_modified))),
                            Err(e) => Err(format!("refused: {e}")),
                        },
                    }
                }
                Ok(Fetched::NotModified) => Ok(None),
                Err(e) => Err(e.to_string()),
            };
            let (p, peer_name, now) = (pinger.clone(), peer.id.clone(), pinger.now());
            match outcome {
                Ok(copy) => {
                    fetched += 1;
                    blocking(move || {
                        let (body, etag, modified) = match &copy {
                            Some((b, e, m)) => (Some(b.as_str()), e.as_deref(), m.as_deref()),
                            None => (None, None, None),
                        };
                        p.store().peer_file_fetched(&peer_name, file, body, etag, modified, now)
                    })
                    .await??;
                }
                Err(error) => {
                    failed += 1;
                    warn!(peer = %peer.id, file, "consensus: {error}");
                    blocking(move || p.store().peer_file_failed(&peer_name, file, &error, now))
                        .await??;
                }
            }
        }
    }
    Ok((fetched, failed))
}

/// The consensus of the held copies and our own published lists as of `now`, written to
/// `consensus/` when agreed (and removed when not).
pub fn compute_and_publish(pinger: &Pinger, sources: &[PeerSource], now: i64) -> Result<Round> {
    let known = |peer: &str| sources.iter().any(|s| s.id == peer);
    let config = &pinger.config;
    let held = pinger.store().peer_files()?;
    let results = config.results_dir();
    let ours = |file: &str| std::fs::read_to_string(results.join(file)).ok();
    let mut mix = Vec::new();
    let mut cpunk = Vec::new();
    let mut keyrings = Vec::new();
    let mut add = |pinger: &str, file: &str, body: &str| match file {
        "pubring.mix" => keyrings.push(Keyring {
            pinger: pinger.to_owned(),
            family: KeyFamily::Mix,
            keys: pubring_key_ids(body),
        }),
        "pgp-all.asc" => keyrings.push(Keyring {
            pinger: pinger.to_owned(),
            family: KeyFamily::Openpgp,
            keys: pgp_key_ids(body, now).unwrap_or_default(),
        }),
        _ => {
            if let Ok(list) = parse_list_v2(body) {
                let into = if file == "mlist2.txt" { &mut mix } else { &mut cpunk };
                into.push(Snapshot { pinger: pinger.to_owned(), list });
            }
        }
    };
    for file in FILES {
        if let Some(text) = ours(file) {
            add(OURS, file, &text);
        }
    }
    for f in &held {
        // Only peers still configured count (a removed peer's copies stay in the store).
        if known(&f.peer)
            && let Some(body) = &f.body
        {
            add(&f.peer, &f.file, body);
        }
    }
    let quorum = match config.consensus.quorum.0 {
        0 => majority(sources.len() + 1),
        q => q as usize,
    };
    let mix = consensus(&mix, quorum, now);
    let cpunk = consensus(&cpunk, quorum, now);
    let disagreements = key_disagreements(&keyrings);
    for d in &disagreements {
        warn!(remailer = %d.address, "consensus: pingers hold different keys: {}", d.describe());
    }
    store_key_disagreements(&mut pinger.store(), &disagreements)?;
    let dir = results.join("consensus");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let fetches: Vec<PeerFetch> = held
        .iter()
        .filter(|f| known(&f.peer))
        .map(|f| PeerFetch {
            peer: f.peer.clone(),
            file: f.file.clone(),
            fetched_at: f.fetched_at,
            error: f.error.clone(),
            failures: f.failures,
        })
        .collect();
    let site = Site {
        name: config.pinger.name.clone(),
        operator: None,
        generated: crate::publish::lists::rfc822_date(now),
        model: config.stats.model.as_str().to_owned(),
        base_path: "../".into(),
        extra_lists: Vec::new(),
    };
    let page = render_consensus(&site, &mix, &cpunk, &disagreements, &fetches)
        .map_err(|e| anyhow::anyhow!("rendering the consensus page: {e}"))?;
    crate::publish::write_atomic(&dir.join("index.html"), page.as_bytes())
        .with_context(|| format!("writing {}", dir.join("index.html").display()))?;
    // The whole picture, agreed or not, for /api/v1/consensus.
    let peers: Vec<serde_json::Value> = held
        .iter()
        .filter(|f| known(&f.peer))
        .map(|f| {
            serde_json::json!({
                "peer": f.peer, "file": f.file, "fetched_at": f.fetched_at,
                "attempted_at": f.attempted_at, "error": f.error, "failures": f.failures,
            })
        })
        .collect();
    let report = serde_json::json!({
        "generated": now,
        "mix": mix,
        "cpunk": cpunk,
        "key_disagreements": disagreements,
        "peers": peers,
    });
    crate::publish::write_atomic(&dir.join(JSON), report.to_string().as_bytes())
        .with_context(|| format!("writing {}", dir.join(JSON).display()))?;
    let lists = render(&mix, &cpunk, now);
    let written = [
        ("mlist.txt", &lists.mlist),
        ("mlist2.txt", &lists.mlist2),
        ("rlist.txt", &lists.rlist),
        ("rlist2.txt", &lists.rlist2),
    ];
    for (file, text) in written {
        let path = dir.join(file);
        match text {
            Some(text) => crate::publish::write_atomic(&path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?,
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}", path.display()));
                }
                _ => {}
            },
        }
    }
    let peers = sources
        .iter()
        .map(|peer| {
            let files: Vec<&crate::store::PeerFile> =
                held.iter().filter(|f| f.peer == peer.id).collect();
            let list = files.iter().find(|f| f.file == "mlist2.txt");
            PeerStatus {
                peer: peer.id.clone(),
                up: list.is_some_and(|f| f.error.is_none() && f.fetched_at.is_some()),
                generated: list
                    .and_then(|f| f.body.as_deref())
                    .and_then(|b| parse_list_v2(b).ok())
                    .map(|l| l.generated),
                failures: files.iter().map(|f| f.failures).sum(),
                refused: files
                    .iter()
                    .filter(|f| f.error.as_deref().is_some_and(|e| e.starts_with("refused")))
                    .count() as i64,
            }
        })
        .collect();
    let summary = |name: &str, c: &crate::stats::consensus::Consensus| {
        let outliers = c
            .remailers
            .iter()
            .flat_map(|r| &r.views)
            .filter(|v| v.reliability_outlier || v.latency_outlier)
            .count();
        let alive = c.remailers.iter().filter(|r| r.alive).count();
        (name.to_owned(), c.agreed, outliers, alive)
    };
    Ok(Round {
        mix_agreed: mix.agreed,
        cpunk_agreed: cpunk.agreed,
        key_disagreements: disagreements.len(),
        status: ConsensusStatus {
            peers,
            lists: vec![summary("mix", &mix), summary("cpunk", &cpunk)],
            key_disagreements: disagreements.len(),
        },
    })
}

/// One round's fetching: the index (when it comes from a URL), then every peer's files.
pub async fn fetch_round(pinger: &Arc<Pinger>) -> Result<(Vec<PeerSource>, usize, usize)> {
    refresh_allpingers(pinger).await?;
    let p = pinger.clone();
    let sources = blocking(move || peer_sources(&p)).await??;
    let (fetched, failed) = fetch_peers(pinger, &sources).await?;
    Ok((sources, fetched, failed))
}

/// The daemon's task: a round shortly after the start and then every interval, with the
/// latest configuration (a reload can add or remove peers), until `shutdown`.
pub async fn run<S: Clone>(
    setup: watch::Receiver<(Arc<Pinger>, S)>,
    published: Arc<watch::Sender<Published>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut wait = Duration::from_secs(5);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let pinger = setup.borrow().0.clone();
        wait = Duration::from_secs(pinger.config.consensus.interval_secs.0);
        let configured = &pinger.config.consensus;
        if configured.peers.is_empty() && configured.allpingers.is_none() {
            wait = wait.min(Duration::from_secs(60));
            // Without peers there is nothing to disagree with (the consensus may have been
            // switched off by a reload).
            let p = pinger.clone();
            let cleared = blocking(move || {
                let mut store = p.store();
                if stored_key_disagreements(&store)?.is_empty() {
                    return Ok(());
                }
                store_key_disagreements(&mut store, &[])
            })
            .await;
            if let Ok(Err(e)) = cleared {
                warn!("consensus: {e}");
            }
            continue;
        }
        let fetched = tokio::select! {
            _ = shutdown.changed() => return,
            f = fetch_round(&pinger) => f,
        };
        let (sources, fetched, failed) = match fetched {
            Ok(round) => round,
            Err(e) => {
                warn!("consensus: {e:#}");
                continue;
            }
        };
        let p = pinger.clone();
        match blocking(move || compute_and_publish(&p, &sources, p.now())).await {
            Ok(Ok(round)) => {
                info!(
                    fetched,
                    failed,
                    mix_agreed = round.mix_agreed,
                    cpunk_agreed = round.cpunk_agreed,
                    key_disagreements = round.key_disagreements,
                    "consensus computed"
                );
                published.send_modify(|p| p.consensus = Some(Arc::new(round.status)));
            }
            Ok(Err(e)) => warn!("consensus: {e:#}"),
            Err(e) => warn!("consensus: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::due_again;

    #[test]
    fn a_failing_peer_is_tried_less_and_less_often() {
        let hour = 3600;
        assert!(due_again(0, 0, hour, hour));
        assert!(due_again(2, 0, hour, hour));
        assert!(!due_again(3, 0, hour, hour), "after three failures, every second round");
        assert!(due_again(3, 0, hour, 2 * hour));
        assert!(!due_again(7, 0, hour, 31 * hour));
        assert!(due_again(7, 0, hour, 32 * hour));
        assert!(due_again(70, 0, hour, 32 * hour), "never more than 32 intervals");
    }

    proptest! {
        /// More failures never make a peer due sooner, and a peer is always due again within
        /// 32 intervals.
        #[test]
        fn backoff_grows_and_is_bounded(failures in 0i64..100, interval in 1i64..86_400, waited in 0i64..10_000_000) {
            if due_again(failures + 1, 0, interval, waited) {
                prop_assert!(due_again(failures, 0, interval, waited));
            }
            prop_assert!(due_again(failures, 0, interval, 32 * interval));
        }
    }
}
