//! `fathometer import-keys`: the keys found in files ([`crate::compose::keys`]) stored for the
//! remailers they belong to.

use crate::compose::keys::{FoundKey, find_keys};
use crate::model::caps::find_caps_line;
use crate::model::{KeyChange, PingType};
use crate::store::{Store, StoreError};

/// What happened to one key of an import.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportLine {
    pub outcome: &'static str,
    pub text: String,
}

/// Stores the keys found in `text`. Keys of unknown remailers are skipped unless `add` is
/// set (then the remailer is added). Returns one line per key for the operator.
pub fn import(
    store: &mut Store,
    text: &[u8],
    add: bool,
    now: i64,
) -> Result<Vec<ImportLine>, StoreError> {
    let mut lines = Vec::new();
    let identity = find_caps_line(&String::from_utf8_lossy(text));
    for found in find_keys(text, now) {
        let FoundKey::Key {
            address,
            ping_type,
            key_id,
            material,
            valid_from,
            valid_until,
            description,
        } = found
        else {
            if let FoundKey::Invalid { reason } = found {
                lines.push(ImportLine { outcome: "skipped", text: reason });
            }
            continue;
        };
        let what = format!("{ping_type} key {key_id} ({description}) for {address}");
        if store.find_remailer(&address).is_err() {
            if !add {
                lines.push(ImportLine {
                    outcome: "skipped",
                    text: format!(
                        "{what}: not a known remailer (add it with `fathometer add {address}` \
                         or import with --add)"
                    ),
                });
                continue;
            }
            store.add_remailer(&address, now)?;
            lines.push(ImportLine { outcome: "added", text: format!("remailer {address}") });
        }
        if valid_until.is_some_and(|u| u <= now) {
            lines.push(ImportLine { outcome: "skipped", text: format!("{what}: expired") });
            continue;
        }
        let change = store.store_key(
            &address,
            ping_type,
            &key_id,
            &material,
            valid_from,
            valid_until,
            now,
        )?;
        let outcome = match change {
            KeyChange::Added => "added",
            KeyChange::Updated => "updated",
            KeyChange::Unchanged => "unchanged",
        };
        lines.push(ImportLine { outcome, text: what });
        // A Mix (or YAMN) entry's header line names the remailer: a nick for `ping`, `list`
        // and lists.
        let nick = material.split_whitespace().next().filter(|n| crate::model::caps::valid_nick(n));
        if matches!(ping_type, PingType::Mix | PingType::Yamn)
            && let Some(nick) = nick
            && store.fill_nick(&address, nick, now)?
        {
            lines.push(ImportLine {
                outcome: "updated",
                text: format!("remailer {address}: nick {nick} from its {ping_type} key"),
            });
        }
    }
    if let Some(caps) = identity
        && store.find_remailer(&caps.address).is_ok()
        && store.fill_identity(&caps.address, &caps.nick, &caps.line, now)?
    {
        lines.push(ImportLine {
            outcome: "updated",
            text: format!(
                "remailer {}: nick {} and capabilities from the key reply",
                caps.address, caps.nick
            ),
        });
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::keys::day_start;

    fn vector(name: &str) -> String {
        let path = format!("{}/tests/vectors/mixmaster/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn import_ties_keys_to_known_remailers_and_is_idempotent() {
        let mut store = Store::open_in_memory().unwrap();
        store.add_remailer("testmix1@localhost", 0).unwrap();
        let text = vector("keys/pubring.mix");
        let now = day_start("2026-11-21").unwrap();
        let first = import(&mut store, text.as_bytes(), false, now).unwrap();
        let added: Vec<_> = first.iter().filter(|l| l.outcome == "added").collect();
        assert_eq!(added.len(), 1, "{first:?}");
        assert!(first.iter().any(|l| l.outcome == "skipped" && l.text.contains("testmix2")));
        let again = import(&mut store, text.as_bytes(), false, now).unwrap();
        assert!(again.iter().any(|l| l.outcome == "unchanged"), "{again:?}");
        let r = store.find_remailer("testmix1@localhost").unwrap();
        assert_eq!(r.keys.len(), 1);
        assert_eq!(r.keys[0].ping_type, PingType::Mix);
        assert_eq!(r.keys[0].valid_from, day_start("2024-01-01"));
        let with_add = import(&mut store, text.as_bytes(), true, now).unwrap();
        assert_eq!(store.remailers().unwrap().len(), 4, "{with_add:?}");
    }
}
