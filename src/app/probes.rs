//! Replay probes started by hand (`fathometer replay-probe NICK`), outside the weekly
//! schedule, and what the probes of one remailer found. The running daemon's outbox sends
//! both copies; the scheduler's tick reaches the verdict.

use anyhow::{Result, anyhow};

use crate::compose::payload;
use crate::model::PingType;
use crate::store::{ProbeRow, Store};

/// Starts a probe of the remailer `name` (nick or address) through its newest current type
/// II key. Returns the probe's row and the remailer's address.
pub fn start(store: &mut Store, name: &str, now: i64) -> Result<(i64, String)> {
    let remailer = store.find_remailer(name)?;
    let key = remailer
        .keys
        .iter()
        .filter(|k| k.ping_type == PingType::Mix && k.is_current(now))
        .max_by_key(|k| k.id)
        .ok_or_else(|| {
            anyhow!(
                "{} has no current type II (Mix) key: only a Mixmaster packet can be replayed",
                remailer.address
            )
        })?;
    let tag = payload::new_tag(&mut rand::rngs::OsRng);
    let id = store.create_replay_probe(key.id, &tag, true, now)?;
    Ok((id, remailer.address))
}

/// Every probe of the remailer `name`, newest first.
pub fn of(store: &Store, name: &str) -> Result<(String, Vec<ProbeRow>)> {
    let remailer = store.find_remailer(name)?;
    let rows = store.replay_probes_of(&remailer.address)?;
    Ok((remailer.address, rows))
}
