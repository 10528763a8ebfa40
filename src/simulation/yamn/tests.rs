//! The YAMN vectors (`tests/vectors/yamn`, made by the real YAMN 0.2.7): every client packet
//! rebuilt bit for bit from its recorded draws, every hop decoded field by field with each
//! remailer's output predicted byte for byte, and the real remailers' verdicts on the
//! independent builder's packets. "Now" is pinned to day 20789 (2026-12-02): the keys are
//! valid 2026-12-02 to 2026-12-16.

use std::path::PathBuf;

use proptest::prelude::*;
use rand::SeedableRng;

use super::*;
use crate::compose::payload::hex;
use crate::compose::yamn::{
    Draw, Hop, KeyError, PublicKey, RngRandom, YamnRandom, armor, build_packet, dearmor,
};

const TODAY: i64 = 20789;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/yamn")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(dir().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json(path: &str) -> serde_json::Value {
    serde_json::from_str(&read(path)).unwrap()
}

fn unhex(text: &str) -> Vec<u8> {
    crate::compose::payload::unhex(text).unwrap_or_else(|| panic!("not hex: {text}"))
}

fn pubring() -> Vec<PublicKey> {
    PublicKey::all_from_text(&read("keys/pubring.mix")).into_iter().map(Result::unwrap).collect()
}

fn secret(name: &str) -> Vec<SecretKey> {
    SecretKey::parse_secring(&read(&format!("keys/{name}.secring.mix")))
}

/// Every remailer's secret keys, by address.
fn secrets_by_address() -> Vec<(String, Vec<SecretKey>)> {
    pubring().iter().map(|k| (k.summary.address.clone(), secret(&k.summary.name))).collect()
}

/// Replays recorded draws in order; a draw of another size than recorded is a builder that
/// draws in another order than the client.
struct Replay {
    draws: Vec<(usize, Vec<u8>, String)>,
    next: usize,
}

impl Replay {
    fn of(build: &serde_json::Value) -> Replay {
        let draws = build["random_draws_in_order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["n"].as_u64().unwrap() as usize,
                    unhex(d["hex"].as_str().unwrap()),
                    d["label"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        Replay { draws, next: 0 }
    }
}

impl YamnRandom for Replay {
    fn fill(&mut self, draw: Draw, buf: &mut [u8]) {
        let (n, bytes, label) = &self.draws[self.next];
        assert_eq!(
            *n,
            buf.len(),
            "draw {} ({label}) asked as {draw:?} of {}",
            self.next,
            buf.len()
        );
        buf.copy_from_slice(bytes);
        self.next += 1;
    }
}

/// The armour part of a mail: from the `::` line on.
fn armour_of(mail: &str) -> &str {
    &mail[mail.find("::\n").unwrap()..]
}

#[test]
fn keys_parse_and_their_ids_are_blake2s_16_of_the_key() {
    let ring = pubring();
    let names: Vec<&str> = ring.iter().map(|k| k.summary.name.as_str()).collect();
    assert_eq!(names, ["yamn1", "yamn2", "yamn3", "yamn4"]);
    for key in &ring {
        let alone =
            PublicKey::from_text(&read(&format!("keys/{}.key.txt", key.summary.name))).unwrap();
        assert_eq!(&alone, key);
        assert!(
            key.is_valid_on(TODAY) && key.is_valid_on(TODAY + 14) && !key.is_valid_on(TODAY + 15)
        );
        assert_eq!(key.is_middleman(), key.summary.name == "yamn4");
        let secrets = secret(&key.summary.name);
        assert_eq!(secrets.len(), 1);
        assert_eq!(secrets[0].public(), key.public, "{}", key.summary.name);
        assert_eq!(hex(&secrets[0].key_id), key.summary.key_id);
        // Written back exactly as the remailer wrote it.
        assert_eq!(key.to_entry(), read(&format!("keys/{}.key.txt", key.summary.name)));
    }
    assert_eq!(ring[0].summary.key_id, "c2369176c09334e1c78b7ba2b00361a6");
}

#[test]
fn a_key_whose_id_is_not_its_hash_or_a_mangled_summary_is_refused() {
    let good = read("keys/yamn1.key.txt");
    let wrong_id =
        good.replace("c2369176c09334e1c78b7ba2b00361a6", "c2369176c09334e1c78b7ba2b00361a7");
    assert!(matches!(PublicKey::from_text(&wrong_id), Err(KeyError::WrongKeyId { .. })));
    // A double space makes the entry invisible to YAMN's reader, and to ours.
    let double = good.replacen(" yamn1@", "  yamn1@", 1);
    assert_eq!(PublicKey::from_text(&double), Err(KeyError::NoEntry));
    let short_key = good.replace("f5b0e22a04e8", "f5b0e22a04");
    assert_eq!(PublicKey::from_text(&short_key), Err(KeyError::BadKey));
}

#[test]
fn info_replies_give_keys_capabilities_and_the_remailers_they_know() {
    let key_reply = read("replies/remailer-key.yamn1.reply.eml");
    let keys: Vec<PublicKey> =
        PublicKey::all_from_text(&key_reply).into_iter().map(Result::unwrap).collect();
    assert_eq!(keys, vec![pubring()[0].clone()]);
    let exit =
        crate::compose::yamn::parse_conf(&read("replies/remailer-conf.yamn1.reply.eml")).unwrap();
    assert_eq!(
        (exit.name.as_str(), exit.address.as_str(), exit.middleman),
        ("yamn1", "yamn1@localhost", false)
    );
    let middle =
        crate::compose::yamn::parse_conf(&read("replies/remailer-conf.yamn4.reply.eml")).unwrap();
    assert!(middle.middleman);
    assert_eq!(middle.caps_line, "$remailer{\"yamn4\"} = \"<yamn4@localhost> middle v2\";");
    let known: Vec<(&str, &str)> =
        middle.supported.iter().map(|s| (s.name.as_str(), s.caps.as_str())).collect();
    assert_eq!(known, [("yamn1", "E"), ("yamn2", "E"), ("yamn3", "E"), ("yamn4", "M")]);
    assert_eq!(middle.supported[3].key_id, pubring()[3].summary.key_id);
    assert_eq!(middle.supported[0].valid_until_day, TODAY + 14);
    // A Mixmaster conf reply (no `v2`) is not a YAMN one.
    let mix =
        std::fs::read_to_string(dir().join("../mixmaster/replies/testmix1.remailer-conf.eml"))
            .unwrap();
    assert_eq!(crate::compose::yamn::parse_conf(&mix), None);
    // YAMN answers no remailer-stats request.
    assert!(read("replies/remailer-stats.yamn1.no-reply.txt").contains("ignoring request"));
}

#[test]
fn every_client_packet_is_rebuilt_bit_for_bit_from_its_draws() {
    let ring = pubring();
    for v in 1..=6 {
        let vector = json(&format!("packets/v{v}.json"));
        let chain: Vec<Hop> = vector["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| {
                Hop::of(ring.iter().find(|k| k.summary.name == name.as_str().unwrap()).unwrap())
            })
            .collect();
        let plaintext = read(&format!("packets/v{v}.input.txt"));
        let today = vector["days_since_epoch_at_build"].as_i64().unwrap();
        let mut replay = Replay::of(&vector["build"]);
        let packet = build_packet(&chain, plaintext.as_bytes(), today, &mut replay).unwrap();
        assert_eq!(
            hex(&crypto::blake2s256(&packet)),
            vector["packet_blake2s_256"].as_str().unwrap(),
            "v{v}"
        );
        let left = replay.draws.len() - replay.next;
        assert_eq!(left as u64, vector["build"]["draws_left_after_packet"].as_u64().unwrap());
        // The armour is the client's, byte for byte.
        let pool = read(&format!("packets/v{v}.client-pool.txt"));
        assert_eq!(armor(&packet), armour_of(&pool), "v{v}");
    }
}

#[test]
fn every_hop_of_every_vector_decodes_as_the_real_remailers_did() {
    let secrets = secrets_by_address();
    let keys_of = |address: &str| secrets.iter().find(|(a, _)| a == address).unwrap().1.clone();
    for v in 1..=6 {
        let vector = json(&format!("packets/v{v}.json"));
        let hops = vector["hops"].as_array().unwrap();
        let input = read(&format!("packets/v{v}.input.txt"));
        let mut expected_packet: Option<Vec<u8>> = None;
        for (k, hop) in hops.iter().enumerate() {
            let decoded = &hop["decoded"];
            let mail = read(&format!("packets/{}", decoded["file"].as_str().unwrap()));
            let packet = dearmor(&mail).unwrap_or_else(|e| panic!("v{v} hop {}: {e}", k + 1));
            if let Some(expected) = &expected_packet {
                assert!(expected == &packet, "v{v} hop {}: not the packet we predicted", k + 1);
            }
            let to = mail.lines().find_map(|l| l.strip_prefix("To: ")).unwrap().trim().to_owned();
            let mut seen = IdLog::default();
            let out = decode_packet(&packet, &keys_of(&to), TODAY, &mut seen)
                .unwrap_or_else(|e| panic!("v{v} hop {}: {e}", k + 1));
            let fields = &decoded["slot"];
            let slot = match &out {
                Decoded::Intermediate { slot, .. } | Decoded::Exit { slot, .. } => slot,
            };
            assert_eq!(hex(&slot.packet_id), fields["packet_id"].as_str().unwrap());
            assert_eq!(hex(&slot.aes_key), fields["aes_key"].as_str().unwrap());
            assert_eq!(i64::from(slot.day_stamp), fields["timestamp_days"].as_i64().unwrap());
            assert_eq!(hex(&slot.packet_info), fields["packet_info_64"].as_str().unwrap());
            assert_eq!(hex(&slot.anti_tag), fields["anti_tag"].as_str().unwrap());
            match out {
                Decoded::Intermediate { next_address, next_packet, partial_iv, .. } => {
                    let fields = &decoded["intermediate"];
                    assert_eq!(next_address, fields["next_hop"].as_str().unwrap());
                    assert_eq!(hex(&partial_iv), fields["partial_iv_12"].as_str().unwrap());
                    assert_eq!(
                        hex(&crypto::blake2s256(&next_packet)),
                        fields["next_packet_blake2s_256"].as_str().unwrap()
                    );
                    expected_packet = Some(next_packet);
                }
                Decoded::Exit {
                    plaintext,
                    message_id,
                    body_iv,
                    chunk,
                    chunks,
                    delivery_method,
                    ..
                } => {
                    assert_eq!(k + 1, hops.len(), "v{v}: an exit before the last hop");
                    let fields = &decoded["exit"];
                    assert_eq!(hex(&body_iv), fields["body_iv_16"].as_str().unwrap());
                    assert_eq!(hex(&message_id), fields["message_id"].as_str().unwrap());
                    assert_eq!((chunk, chunks, delivery_method), (1, 1, 0));
                    assert_eq!(String::from_utf8(plaintext).unwrap(), input, "v{v}");
                }
            }
        }
    }
}

/// Follows a packet mailed to `to` through the remailers to its exit: the plaintext, or the
/// first hop's refusal. `seen`: one ID log per remailer, kept across calls.
fn deliver(
    mut to: String,
    mut packet: Vec<u8>,
    today: i64,
    seen: &mut std::collections::HashMap<String, IdLog>,
) -> Result<Vec<u8>, DecodeError> {
    let secrets = secrets_by_address();
    for _ in 0..10 {
        let keys = secrets.iter().find(|(a, _)| *a == to).map(|s| s.1.clone()).unwrap_or_default();
        match decode_packet(&packet, &keys, today, seen.entry(to.clone()).or_default())? {
            Decoded::Intermediate { next_address, next_packet, .. } => {
                (to, packet) = (next_address, next_packet);
            }
            Decoded::Exit { plaintext, .. } => return Ok(plaintext),
        }
    }
    panic!("more than ten hops")
}

#[test]
fn the_independent_builders_packets_get_the_real_remailers_verdicts() {
    let mut seen = std::collections::HashMap::new();
    let mut verdict = |case: &str| {
        let mail = read(&format!("independent-builder/{case}.eml"));
        let to = mail.lines().find_map(|l| l.strip_prefix("To: ")).unwrap().trim().to_owned();
        let packet = dearmor(&mail).map_err(|e| e.to_string())?;
        deliver(to, packet, TODAY, &mut seen).map_err(|e| e.to_string())
    };
    for case in ["one-hop-yamn3", "two-hop-middle", "four-hop", "ten-hop", "dice3", "age-14"] {
        let input = read(&format!("independent-builder/{case}.input.txt"));
        assert_eq!(verdict(case).map(String::from_utf8), Ok(Ok(input)), "{case}");
    }
    for case in ["crlf-76", "lf-76", "crlf-64"] {
        assert!(verdict(case).is_ok(), "{case}: {:?}", verdict(case));
    }
    assert_eq!(verdict("age-15"), Err(DecodeError::TooOld(15).to_string()));
    assert_eq!(verdict("future"), Err(DecodeError::Future.to_string()));
    assert_eq!(verdict("bad-antitag"), Err(DecodeError::AntiTag.to_string()));
    assert_eq!(verdict("bad-armour-digest"), Err(ArmorErrorText::digest()));
    assert!(verdict("wrong-key").unwrap_err().starts_with("Keyid not found"));
    // The same mail twice: delivered once, then a collision.
    assert!(verdict("replay").is_ok());
    assert_eq!(verdict("replay"), Err(DecodeError::Replay.to_string()));
}

struct ArmorErrorText;
impl ArmorErrorText {
    fn digest() -> String {
        crate::compose::yamn::ArmorError::DigestMismatch.to_string()
    }
}

/// A seeded network of `n` remailers with fresh keys.
fn fresh_keys(seed: u64, n: usize) -> Vec<SecretKey> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut secret = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rng, &mut secret);
            SecretKey::from_secret(secret, TODAY, TODAY + 14)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any chain of 1 to 10 hops, any plaintext that fits: every hop accepts, forwards to the
    /// next, and the exit gives the plaintext back.
    #[test]
    fn random_chains_round_trip(seed: u64, hops in 1usize..=10, len in 0usize..=17910) {
        let keys = fresh_keys(seed, hops);
        let chain: Vec<Hop> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| Hop { address: format!("r{i}@example.org"), public: k.public() })
            .collect();
        let plaintext: Vec<u8> = (0..len).map(|i| b"To: p@example.net\n\nping "[i % 24]).collect();
        let mut rng = RngRandom(rand::rngs::StdRng::seed_from_u64(seed ^ 1));
        let mut packet = build_packet(&chain, &plaintext, TODAY, &mut rng).unwrap();
        packet = dearmor(&armor(&packet)).unwrap();
        for (i, key) in keys.iter().enumerate() {
            let out = decode_packet(&packet, std::slice::from_ref(key), TODAY, &mut IdLog::default());
            match out {
                Ok(Decoded::Intermediate { next_address, next_packet, .. }) => {
                    prop_assert!(i + 1 < hops);
                    prop_assert_eq!(next_address, format!("r{}@example.org", i + 1));
                    packet = next_packet;
                }
                Ok(Decoded::Exit { plaintext: out, .. }) => {
                    prop_assert_eq!(i + 1, hops);
                    prop_assert_eq!(&out, &plaintext);
                }
                Err(e) => prop_assert!(false, "hop {}: {}", i, e),
            }
        }
    }

    /// Hostile packets and armour never panic: a decoded packet with bytes flipped is
    /// refused (the box or the anti-tag), and garbage armour is an error.
    #[test]
    fn hostile_packets_never_panic(seed: u64, flips in proptest::collection::vec((0usize..20480, 1u8..), 1..4), junk in ".{0,300}") {
        let keys = fresh_keys(seed, 2);
        let chain: Vec<Hop> = keys.iter().map(|k| Hop { address: "r@x.org".into(), public: k.public() }).collect();
        let mut rng = RngRandom(rand::rngs::StdRng::seed_from_u64(seed));
        let mut packet = build_packet(&chain, b"To: p@x\n\nping\n", TODAY, &mut rng).unwrap();
        let covered = flips.iter().any(|&(at, _)| !(248..256).contains(&at));
        for (at, bits) in flips {
            packet[at] ^= bits;
        }
        // A flipped key ID is an unknown key; anything else fails the box or the anti-tag,
        // except the entry slot's 8-byte tail, which nothing covers (by design: the previous
        // hop's anti-tag covers it, and the entry has none).
        let decoded = decode_packet(&packet, &keys, TODAY, &mut IdLog::default());
        prop_assert!(decoded.is_err() || !covered, "{:?}", decoded.map(|_| ()));
        let _ = dearmor(&junk);
        let _ = decode_packet(junk.as_bytes(), &keys, TODAY, &mut IdLog::default());
        let _ = PublicKey::all_from_text(&junk);
        let _ = SecretKey::parse_secring(&junk);
    }
}

#[test]
fn a_plaintext_over_one_chunk_or_a_long_address_is_refused() {
    let keys = fresh_keys(1, 1);
    let hop = Hop { address: "r@example.org".into(), public: keys[0].public() };
    let mut rng = RngRandom(rand::rngs::StdRng::seed_from_u64(1));
    assert!(matches!(
        build_packet(std::slice::from_ref(&hop), &[b'x'; 17911], TODAY, &mut rng),
        Err(crate::compose::yamn::BuildError::TooLong(17911))
    ));
    let long = Hop { address: format!("{}@example.org", "a".repeat(50)), public: hop.public };
    assert!(build_packet(&[long, hop.clone()], b"To: a@b\n\n", TODAY, &mut rng).is_err());
    assert!(build_packet(&vec![hop; 11], b"To: a@b\n\n", TODAY, &mut rng).is_err());
}

/// A YAMN ping as the pinger builds it (`compose::build_ping`), through a middle and an exit
/// holding the vector keys: the middle forwards to the exit, and the exit delivers an RFC 822
/// message to our tagged return address whose body is our sealed payload.
#[test]
fn a_yamn_ping_travels_hop_by_hop_to_our_return_address() {
    use crate::compose::{HopSpec, PingSpec, build_ping};
    use crate::model::{Identity, PingType};
    let identity = Identity {
        address: "pinger@p.example".to_owned().try_into().unwrap(),
        delimiter: "+".to_owned().try_into().unwrap(),
        name: "fathometer".into(),
    };
    let hop = |name: &str| HopSpec {
        address: format!("{name}@localhost"),
        ping_type: PingType::Yamn,
        key_id: PublicKey::from_text(&read(&format!("keys/{name}.key.txt")))
            .unwrap()
            .summary
            .key_id,
        material: Some(read(&format!("keys/{name}.key.txt"))),
    };
    let spec = PingSpec { id: 7, hops: vec![hop("yamn2"), hop("yamn1")], with_from: true };
    let sent = TODAY * 86_400 + 3_600;
    let tag = "abcdefghijklmnop";
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let built = build_ping(&spec, b"secret", &identity, tag, sent, &mut rng).unwrap();
    assert_eq!(built.outgoing.to, "yamn2@localhost");
    let text = String::from_utf8(built.outgoing.message).unwrap();
    assert!(!text.to_ascii_lowercase().contains("subject: remailer-"));
    let secret = |name: &str| SecretKey::parse_secring(&read(&format!("keys/{name}.secring.mix")));
    let mut seen = IdLog::default();
    let first = decode_packet(&dearmor(&text).unwrap(), &secret("yamn2"), TODAY, &mut seen);
    let Ok(Decoded::Intermediate { next_address, next_packet, .. }) = first else {
        panic!("the middle hop: {first:?}");
    };
    assert_eq!(next_address, "yamn1@localhost");
    let last = decode_packet(&next_packet, &secret("yamn1"), TODAY, &mut seen);
    let Ok(Decoded::Exit { plaintext, chunks: 1, .. }) = last else { panic!("the exit: {last:?}") };
    let plaintext = String::from_utf8(plaintext).unwrap();
    let expected = format!(
        "To: pinger+{tag}@p.example\nFrom: {}\n\n-----BEGIN PGP MESSAGE-----",
        identity.signature()
    );
    assert!(plaintext.starts_with(&expected), "{plaintext}");
    // A chain mixing YAMN and Mixmaster hops is refused.
    let mut mixed = spec.clone();
    mixed.hops[1].ping_type = PingType::Mix;
    assert!(build_ping(&mixed, b"secret", &identity, tag, sent, &mut rng).is_err());
}
