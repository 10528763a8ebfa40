//! Remailer keys as remailers publish them: OpenPGP keyrings, `pubring.mix` entries and
//! `remailer-key` replies.
//!
//! Three kinds of input, often mixed in one file: ASCII-armoured OpenPGP keyrings (type I
//! keys), `pubring.mix` / `key.txt` entries (type II keys, `mixmaster.md` §2.1), and saved
//! `remailer-key` reply mails, which carry both after some prose (`mixmaster.md` §5.2). Keys
//! are tied to remailers by address. Pure; `fathometer import-keys` applies what it finds
//! (`crate::app::keys`).

use base64::Engine as _;

use crate::compose::openpgp::{self, KeyKind};
use crate::model::PingType;

/// A type II key entry as a remailer publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixKey {
    pub nick: String,
    pub address: String,
    /// 32 lowercase hex: MD5 of the modulus and exponent.
    pub key_id: String,
    pub version: String,
    pub caps: String,
    pub created: Option<String>,
    pub expires: Option<String>,
    /// RSA modulus size in bits.
    pub bits: usize,
    /// The whole entry (header line, blank line, key block), as pubring.mix carries it.
    pub entry: String,
}

/// One key found in the input, ready to be stored, or the reason it cannot be.
#[derive(Debug, Clone, PartialEq)]
pub enum FoundKey {
    Key {
        address: String,
        ping_type: PingType,
        key_id: String,
        material: String,
        valid_from: Option<i64>,
        valid_until: Option<i64>,
        /// Shown in the import report, e.g. "DSA/ElGamal, 1024 bits".
        description: String,
    },
    Invalid {
        reason: String,
    },
}

/// Every Mix key entry in `text`: a header line of 5 to 7 fields followed (after optional blank
/// lines) by a `-----Begin Mix Key-----` block whose key ID matches MD5(n ‖ e).
pub fn parse_mix_keys(text: &str) -> Vec<Result<MixKey, String>> {
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "-----Begin Mix Key-----" {
            continue;
        }
        let header = lines[..i].iter().rev().find(|l| !l.trim().is_empty()).copied();
        // A YAMN entry (version `4:...`) has the same markers: it is read by
        // `compose::yamn::key`, not as a Mixmaster key.
        if header.is_some_and(|h| h.split_whitespace().nth(3).is_some_and(|v| v.starts_with("4:")))
        {
            continue;
        }
        let Some(end) = lines[i..].iter().position(|l| l.trim() == "-----End Mix Key-----") else {
            out.push(Err(format!("Mix key block at line {} has no end marker", i + 1)));
            continue;
        };
        let block = &lines[i + 1..i + end];
        out.push(
            parse_one_mix_key(header, block, &lines[i..=i + end])
                .map_err(|e| format!("Mix key block at line {}: {e}", i + 1)),
        );
    }
    out
}

fn parse_one_mix_key(header: Option<&str>, block: &[&str], raw: &[&str]) -> Result<MixKey, String> {
    let header = header.ok_or("no header line before the key block")?;
    let fields: Vec<&str> = header.split_whitespace().collect();
    if !(5..=7).contains(&fields.len()) || fields[0].starts_with('#') {
        return Err(format!("`{}` is not a Mix key header line", shorten(header)));
    }
    let (nick, address, key_id, version, caps) =
        (fields[0], fields[1], fields[2].to_ascii_lowercase(), fields[3], fields[4]);
    if !address.contains('@') {
        return Err(format!("`{address}` is not an address"));
    }
    let [id_line, _length, body @ ..] = block else {
        return Err("key block too short".into());
    };
    if !id_line.trim().eq_ignore_ascii_case(&key_id) {
        return Err(format!("key block holds key {}, header says {key_id}", id_line.trim()));
    }
    let b64: String = body.iter().map(|l| l.trim()).collect();
    let binary = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| format!("key is not valid base64: {e}"))?;
    let bits = check_mix_key(&binary, &key_id)?;
    let date = |s: Option<&&str>| s.map(|d| (*d).to_owned());
    let mut entry = format!("{header}\n\n");
    for l in raw {
        entry.push_str(l.trim_end());
        entry.push('\n');
    }
    Ok(MixKey {
        nick: nick.to_owned(),
        address: address.to_ascii_lowercase(),
        key_id,
        version: version.to_owned(),
        caps: caps.to_owned(),
        created: date(fields.get(5)),
        expires: date(fields.get(6)),
        bits,
        entry,
    })
}

/// Checks the binary public key (`mixmaster.md` §2.2): its layout, and that MD5(n ‖ e) is the
/// key id the entry claims. Returns the modulus size in bits.
fn check_mix_key(binary: &[u8], key_id: &str) -> Result<usize, String> {
    let key =
        crate::compose::mixmaster::PublicKey::from_binary(binary).map_err(|e| e.to_string())?;
    let actual = key.key_id_hex();
    if actual != key_id {
        return Err(format!("key ID {key_id} does not match the key (MD5 gives {actual})"));
    }
    Ok(key.bits())
}

/// Parses a `YYYY-MM-DD` date as the unix time of its midnight UTC.
pub fn day_start(date: &str) -> Option<i64> {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp())
}

/// Every key in `text`, OpenPGP and Mix.
pub fn find_keys(text: &[u8], now: i64) -> Vec<FoundKey> {
    let mut out = Vec::new();
    for cert in openpgp::parse_certs(text, now) {
        match cert {
            Err(e) => out.push(FoundKey::Invalid { reason: format!("OpenPGP key: {e}") }),
            Ok(c) => {
                let (ping_type, algo) = match c.kind {
                    KeyKind::Rsa => (PingType::CpunkRsa, "RSA"),
                    KeyKind::DsaElGamal => (PingType::CpunkDsa, "DSA/ElGamal"),
                };
                let bits = c.bits.map(|b| format!(", {b} bits")).unwrap_or_default();
                if c.emails.is_empty() {
                    out.push(FoundKey::Invalid {
                        reason: format!("OpenPGP key {} has no address in its user IDs", c.key_id),
                    });
                }
                for address in &c.emails {
                    out.push(FoundKey::Key {
                        address: address.clone(),
                        ping_type,
                        key_id: c.key_id.clone(),
                        material: c.armored.clone(),
                        valid_from: Some(c.created),
                        valid_until: c.expires,
                        description: format!("{algo}{bits}"),
                    });
                }
            }
        }
    }
    let text = String::from_utf8_lossy(text);
    for mix in parse_mix_keys(&text) {
        out.push(match mix {
            Err(reason) => FoundKey::Invalid { reason },
            Ok(k) => FoundKey::Key {
                address: k.address.clone(),
                ping_type: PingType::Mix,
                key_id: k.key_id.clone(),
                valid_from: k.created.as_deref().and_then(day_start),
                // A key is valid through its expiry day.
                valid_until: k.expires.as_deref().and_then(day_start).map(|t| t + 86_400),
                description: format!("Mix, {} bits, {} {}", k.bits, k.version, k.caps),
                material: k.entry,
            },
        });
    }
    for key in crate::compose::yamn::PublicKey::all_from_text(&text) {
        out.push(match key {
            Err(e) => FoundKey::Invalid { reason: format!("YAMN key: {e}") },
            Ok(k) => {
                let day = |d: i64| d * crate::model::SECONDS_PER_DAY;
                let s = &k.summary;
                FoundKey::Key {
                    address: s.address.to_ascii_lowercase(),
                    ping_type: PingType::Yamn,
                    key_id: s.key_id.clone(),
                    valid_from: Some(day(s.valid_from_day)),
                    // Valid through its last day (YAMN's client: until the midnight after).
                    valid_until: Some(day(s.valid_until_day + 1)),
                    description: format!("YAMN, X25519, {} {}", s.version, s.caps),
                    material: k.to_entry(),
                }
            }
        });
    }
    out
}

fn shorten(s: &str) -> String {
    s.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-21, the day the vectors were made.
    const NOW: i64 = 1_795_219_200;
    use crate::model::caps::find_caps_line;

    fn vector(name: &str) -> String {
        let path = format!("{}/tests/vectors/mixmaster/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn pubring_mix_entries_parse_and_verify() {
        let keys = parse_mix_keys(&vector("keys/pubring.mix"));
        assert_eq!(keys.len(), 4, "{keys:?}");
        let first = keys[0].as_ref().unwrap();
        assert_eq!(first.nick, "testmix1");
        assert_eq!(first.address, "testmix1@localhost");
        assert_eq!(first.key_id, "400c909fdd158b5b69ca52eef13b1d60");
        assert_eq!(first.bits, 1024);
        assert_eq!(first.created.as_deref(), Some("2024-01-01"));
        assert!(first.entry.starts_with("testmix1 testmix1@localhost 400c"));
        assert!(first.entry.ends_with("-----End Mix Key-----\n"));
        let sizes: Vec<usize> = keys.iter().map(|k| k.as_ref().unwrap().bits).collect();
        assert!(sizes.iter().any(|&b| b > 1024), "the vectors include large keys: {sizes:?}");
    }

    #[test]
    fn yamn_keys_are_read_as_yamn_and_mixmaster_keys_as_mix() {
        let yamn = std::fs::read_to_string(format!(
            "{}/tests/vectors/yamn/keys/pubring.mix",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let both = format!("{}\n{yamn}", vector("keys/pubring.mix"));
        let found = find_keys(both.as_bytes(), NOW);
        let mut kinds: Vec<(PingType, String)> = found
            .iter()
            .map(|k| match k {
                FoundKey::Key { ping_type, address, .. } => (*ping_type, address.clone()),
                FoundKey::Invalid { reason } => panic!("{reason}"),
            })
            .collect();
        kinds.sort();
        assert_eq!(kinds.iter().filter(|k| k.0 == PingType::Mix).count(), 4, "{kinds:?}");
        assert_eq!(kinds.iter().filter(|k| k.0 == PingType::Yamn).count(), 4, "{kinds:?}");
        let yamn1 = found
            .iter()
            .find_map(|k| match k {
                FoundKey::Key {
                    ping_type: PingType::Yamn,
                    address,
                    key_id,
                    valid_from,
                    valid_until,
                    material,
                    ..
                } if address == "yamn1@localhost" => {
                    Some((key_id.clone(), *valid_from, *valid_until, material.clone()))
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(yamn1.0, "c2369176c09334e1c78b7ba2b00361a6");
        // 2026-12-02 00:00 UTC until the midnight after 2026-12-16.
        assert_eq!((yamn1.1, yamn1.2), (Some(20_789 * 86_400), Some(20_804 * 86_400)));
        assert_eq!(
            crate::compose::yamn::PublicKey::from_text(&yamn1.3).unwrap().summary.key_id,
            yamn1.0
        );
        // A tampered YAMN key is refused with the reason, the rest still read.
        let tampered = yamn.replacen("f5b0e22a", "f5b0e22b", 1);
        let found = find_keys(tampered.as_bytes(), NOW);
        assert!(
            found
                .iter()
                .any(|k| matches!(k, FoundKey::Invalid { reason } if reason.contains("YAMN key")))
        );
        assert_eq!(found.iter().filter(|k| matches!(k, FoundKey::Key { .. })).count(), 3);
    }

    #[test]
    fn a_tampered_mix_key_is_refused_with_the_reason() {
        let text = vector("keys/pubring.mix").replacen("AAS7k356", "AAS7k357", 1);
        let keys = parse_mix_keys(&text);
        let err = keys[0].as_ref().unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        assert!(keys[1].is_ok());
    }

    #[test]
    fn key_reply_mail_gives_both_kinds_and_the_identity() {
        let text = vector("replies/testmix1.remailer-key.eml");
        let found = find_keys(text.as_bytes(), NOW);
        let types: Vec<PingType> = found
            .iter()
            .map(|k| match k {
                FoundKey::Key { ping_type, address, .. } => {
                    assert_eq!(address, "testmix1@localhost");
                    *ping_type
                }
                FoundKey::Invalid { reason } => panic!("{reason}"),
            })
            .collect();
        assert!(types.contains(&PingType::CpunkDsa) && types.contains(&PingType::Mix));
        let caps = find_caps_line(&text).unwrap();
        assert_eq!((caps.nick.as_str(), caps.address.as_str()), ("testmix1", "testmix1@localhost"));
        assert!(caps.line.starts_with("$remailer{\"testmix1\"}"));
    }
}
