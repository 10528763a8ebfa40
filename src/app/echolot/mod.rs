//! `fathometer import-echolot`: an Echolot installation brought over with its history
//! (`echolot.md` §8, §9). The home is read in place and never modified ([`home`]); what it
//! holds goes into the store ([`import`]); importing twice adds nothing the second time.

pub mod conf;
pub mod home;
pub mod perl;

use std::path::Path;

use crate::compose::keys::{FoundKey, find_keys};
use crate::model::{ImportSummary, RemailerInfo};
use crate::store::{Store, StoreError};

pub use home::{EcholotHome, read_home};

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EcholotImport {
    pub history: ImportSummary,
    /// Keys stored with their material (usable for pinging), and those kept by id only.
    pub keys_with_material: usize,
    pub keys_without_material: usize,
    pub statuses_set: usize,
    pub replies: usize,
    pub from_lines: usize,
    /// What was skipped, and why: the home's problems and the store's refusals.
    pub skipped: Vec<String>,
}

impl std::fmt::Display for EcholotImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = &self.history;
        writeln!(
            f,
            "remailers: {} added, {} updated ({} statuses set)",
            h.remailers_added, h.remailers_updated, self.statuses_set
        )?;
        writeln!(
            f,
            "keys: {} with their key material, {} by id only (history kept; the pinger asks the remailer for the key)",
            self.keys_with_material, self.keys_without_material
        )?;
        writeln!(
            f,
            "pings: {} imported, {} already present; chain pings: {} imported, {} already present",
            h.pings_added, h.pings_skipped_duplicate, h.chains_added, h.chains_skipped_duplicate
        )?;
        writeln!(
            f,
            "replies (thesaurus): {} stored; From: lines: {} stored",
            self.replies, self.from_lines
        )?;
        if self.skipped.is_empty() {
            writeln!(f, "skipped: nothing")
        } else {
            writeln!(f, "skipped ({}):", self.skipped.len())?;
            self.skipped.iter().try_for_each(|s| writeln!(f, "  {s}"))
        }
    }
}

/// Stores what `home` holds. Remailers and their pings first (in one transaction), then the
/// keys' material, the statuses, the replies and the From: lines (each kept only when newer
/// than what the store has).
pub fn import(
    store: &mut Store,
    home: &EcholotHome,
    now: i64,
) -> Result<EcholotImport, StoreError> {
    let mut report = EcholotImport { skipped: home.skipped.clone(), ..Default::default() };
    let infos: Vec<RemailerInfo> = home
        .remailers
        .iter()
        .map(|r| RemailerInfo {
            address: r.address.clone(),
            nick: r.nick.clone(),
            caps: r.caps.clone(),
            hidden: r.hidden,
        })
        .collect();
    report.history = store.import(&infos, &home.pings, &home.chains, now)?;
    for r in &home.remailers {
        if store.set_status(&r.address, r.status, r.status_reason.as_deref(), now)? {
            report.statuses_set += 1;
        }
        for k in &r.keys {
            let stored = match &k.material {
                Some(material) => store_material(store, &r.address, k, material, now)?,
                None => Err("no key material in Echolot's metadata".to_owned()),
            };
            match stored {
                Ok(()) => report.keys_with_material += 1,
                Err(why) => {
                    store.upsert_key(&r.address, k.ping_type, &k.key_id, now)?;
                    report.keys_without_material += 1;
                    if k.material.is_some() {
                        report.skipped.push(format!(
                            "{} {} key {}: {why}; kept by id",
                            r.address, k.ping_type, k.key_id
                        ));
                    }
                }
            }
        }
    }
    for reply in &home.replies {
        let id = store.find_remailer(&reply.address)?.id;
        report.replies +=
            usize::from(store.store_reply(id, reply.kind, reply.received_at, &reply.body)?);
    }
    for line in &home.from_lines {
        let Ok(remailer) = store.find_remailer(&line.address) else {
            report.skipped.push(format!("From: line of {}: not a known remailer", line.address));
            continue;
        };
        report.from_lines += usize::from(store.store_from_line(
            remailer.id,
            line.ping_type,
            line.with_from,
            &line.from,
            line.seen_at,
        )?);
    }
    Ok(report)
}

/// Stores a key with its material when the material holds that very key (checked as
/// `import-keys` checks it); the reason otherwise.
fn store_material(
    store: &mut Store,
    address: &str,
    key: &home::EcholotKey,
    material: &str,
    now: i64,
) -> Result<Result<(), String>, StoreError> {
    let mut reason = "the key material does not hold this key".to_owned();
    for found in find_keys(material.as_bytes(), now) {
        match found {
            FoundKey::Key {
                address: a,
                ping_type,
                key_id,
                material,
                valid_from,
                valid_until,
                ..
            } if a.eq_ignore_ascii_case(address)
                && ping_type == key.ping_type
                && key_id.eq_ignore_ascii_case(&key.key_id) =>
            {
                store.store_key(
                    address,
                    ping_type,
                    &key.key_id,
                    &material,
                    valid_from,
                    valid_until,
                    now,
                )?;
                return Ok(Ok(()));
            }
            FoundKey::Invalid { reason: r } => reason = r,
            _ => {}
        }
    }
    Ok(Err(reason))
}

/// Reads the home and imports it ([`read_home`], [`import`]).
pub fn import_home(
    store: &mut Store,
    home: &Path,
    pingd_conf: Option<&Path>,
    now: i64,
) -> anyhow::Result<(EcholotImport, EcholotHome)> {
    let read = read_home(home, pingd_conf).map_err(anyhow::Error::msg)?;
    let report = import(store, &read, now)?;
    Ok((report, read))
}
