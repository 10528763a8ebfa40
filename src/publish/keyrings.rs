//! The keyrings clients download (`echolot.md` §7.7, §7.8): `pubring.mix` and `type2.list`
//! (type II), `pgp-rsa.asc` and `pgp-all.asc` (type I).
//!
//! Only a remailer's current key is published (valid now, not retired, the newest of its type),
//! and a public keyring holds only the keys of remailers listed in the public statistics of that
//! family: never a key of anyone else (Echolot once exported its whole keyring when the list
//! was empty, §11).

use std::collections::HashSet;

use crate::compose::openpgp::{self, PgpError};
use crate::model::{PingType, PublishableKey};

/// The four keyring files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyrings {
    pub pubring_mix: String,
    pub type2_list: String,
    pub pgp_rsa: String,
    pub pgp_all: String,
}

/// The keyring files, rebuilt every `[publish] keyring_interval_secs`.
pub const FILE_NAMES: [&str; 4] = ["pubring.mix", "type2.list", "pgp-rsa.asc", "pgp-all.asc"];

impl Keyrings {
    pub fn files(&self) -> [(&'static str, &str); 4] {
        let [mix, type2, rsa, all] = FILE_NAMES;
        [
            (mix, &self.pubring_mix),
            (type2, &self.type2_list),
            (rsa, &self.pgp_rsa),
            (all, &self.pgp_all),
        ]
    }
}

/// Renders the keyrings from `keys`, keeping Mix keys of addresses in `mix_listed` and OpenPGP
/// keys of addresses in `cpunk_listed` (the private keyrings pass every address).
pub fn render(
    keys: &[PublishableKey],
    mix_listed: &HashSet<&str>,
    cpunk_listed: &HashSet<&str>,
) -> Result<Keyrings, PgpError> {
    let mut mix: Vec<(&str, &str)> = keys
        .iter()
        .filter(|k| k.ping_type == PingType::Mix && mix_listed.contains(k.address.as_str()))
        .filter_map(|k| {
            let summary = k.material.lines().next()?;
            Some((summary, k.material.as_str()))
        })
        .collect();
    // Bytewise by summary line, as Echolot sorts them.
    mix.sort();
    let mut rings = Keyrings::default();
    for (summary, entry) in &mix {
        rings.type2_list.push_str(summary);
        rings.type2_list.push('\n');
        rings.pubring_mix.push_str(entry.trim_end_matches('\n'));
        rings.pubring_mix.push_str("\n\n");
    }
    let pgp = |t: PingType| -> Vec<&str> {
        keys.iter()
            .filter(|k| k.ping_type == t && cpunk_listed.contains(k.address.as_str()))
            .map(|k| k.material.as_str())
            .collect()
    };
    let (rsa, dsa) = (pgp(PingType::CpunkRsa), pgp(PingType::CpunkDsa));
    if !rsa.is_empty() {
        rings.pgp_rsa = openpgp::keyring(rsa.iter().copied())?;
    }
    if !rsa.is_empty() || !dsa.is_empty() {
        rings.pgp_all = openpgp::keyring(rsa.iter().chain(&dsa).copied())?;
    }
    Ok(rings)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector keys were made on 2026-11-21 and are valid until 2026-12-16.
    fn now() -> i64 {
        1_795_219_200
    }

    fn vector(name: &str) -> String {
        let path = format!("{}/tests/vectors/mixmaster/keys/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap()
    }

    fn keys() -> Vec<PublishableKey> {
        let mut keys: Vec<PublishableKey> =
            crate::compose::keys::parse_mix_keys(&vector("pubring.mix"))
                .into_iter()
                .map(|k| {
                    let k = k.unwrap();
                    PublishableKey {
                        address: k.address,
                        nick: k.nick,
                        ping_type: PingType::Mix,
                        key_id: k.key_id,
                        material: k.entry,
                    }
                })
                .collect();
        for n in [1, 3] {
            let cert =
                openpgp::parse_certs(vector(&format!("testmix{n}.pgpkey.txt")).as_bytes(), now())
                    .remove(0)
                    .unwrap();
            keys.push(PublishableKey {
                address: format!("testmix{n}@localhost"),
                nick: format!("testmix{n}"),
                ping_type: PingType::CpunkDsa,
                key_id: cert.key_id,
                material: cert.armored,
            });
        }
        keys
    }

    #[test]
    fn all_listed_reproduces_the_vector_pubring_and_both_pgp_keys() {
        let keys = keys();
        let all: HashSet<&str> = keys.iter().map(|k| k.address.as_str()).collect();
        let rings = render(&keys, &all, &all).unwrap();
        assert_eq!(rings.pubring_mix, vector("pubring.mix"));
        assert_eq!(rings.type2_list.lines().count(), 4);
        assert!(rings.type2_list.starts_with("testmix1 testmix1@localhost 400c909f"));
        assert!(rings.pgp_rsa.is_empty(), "no RSA keys");
        let certs = openpgp::parse_certs(rings.pgp_all.as_bytes(), now());
        assert_eq!(certs.len(), 2);
        let ids: Vec<String> = certs.into_iter().map(|c| c.unwrap().key_id).collect();
        assert_eq!(ids, [keys[4].key_id.clone(), keys[5].key_id.clone()]);
    }

    #[test]
    fn unlisted_remailers_never_reach_a_public_keyring() {
        let keys = keys();
        let mix: HashSet<&str> = ["testmix2@localhost"].into();
        let cpunk: HashSet<&str> = ["testmix3@localhost"].into();
        let rings = render(&keys, &mix, &cpunk).unwrap();
        assert_eq!(rings.type2_list.lines().count(), 1);
        assert!(
            rings.pubring_mix.starts_with("testmix2 ") && !rings.pubring_mix.contains("testmix1")
        );
        let certs = openpgp::parse_certs(rings.pgp_all.as_bytes(), now());
        assert_eq!(certs.len(), 1);
        assert!(certs[0].as_ref().unwrap().emails.contains(&"testmix3@localhost".to_owned()));
        // Nobody listed: empty files, not the whole keyring.
        let none = render(&keys, &HashSet::new(), &HashSet::new()).unwrap();
        assert_eq!(none, Keyrings::default());
    }
}
