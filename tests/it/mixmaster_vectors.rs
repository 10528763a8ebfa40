//! The Mixmaster type II vectors (`tests/vectors/mixmaster`, see its README): v6 rebuilt bit for
//! bit from its encoder record, every field of every decoded hop of v1..v6, the forwarding
//! predictions of v2 and v4, and the keys.

use std::collections::VecDeque;

use fathometer::compose::mixmaster::{
    Draw, Hop, MixRandom, PACKET_LEN, Payload, PublicKey, armor, build_packet_dated, dearmor, hex,
};
use fathometer_testkit::mixmaster::{
    Decoded, DecodedPayload, HopFields, SecretKey, decode_packet, join_parts,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/mixmaster");
/// 2026-11-21, the day the vectors were made (no vector is dated later).
const TODAY: i64 = 20778;

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn json(rel: &str) -> Value {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// The body of a mail file: everything after the first empty line.
fn mail_body(mail: &str) -> &str {
    &mail[mail.find("\n\n").expect("no header/body separator") + 2..]
}

fn secret_key(n: u32) -> SecretKey {
    let keys = SecretKey::parse_secring(
        &read(&format!("keys/testmix{n}.secring.mix")),
        &format!("pass-testmix{n}"),
    )
    .unwrap();
    assert_eq!(keys.len(), 1);
    keys.into_iter().next().unwrap()
}

fn all_secret_keys() -> Vec<SecretKey> {
    (1..=4).map(secret_key).collect()
}

fn public_key(n: u32) -> PublicKey {
    PublicKey::from_entry(&read(&format!("keys/testmix{n}.key.txt"))).unwrap()
}

/// Replays a recorded sequence of named draws, failing on any name or length mismatch.
struct Replay {
    draws: VecDeque<(String, Vec<u8>)>,
    used: usize,
}

impl MixRandom for Replay {
    fn fill(&mut self, draw: Draw, buf: &mut [u8]) {
        let (name, bytes) = self.draws.pop_front().unwrap_or_else(|| {
            panic!("draw {} ({}) past the end of the record", draw.name(), self.used)
        });
        assert_eq!(draw.name(), name, "draw #{} has the wrong name", self.used);
        assert_eq!(buf.len(), bytes.len(), "draw #{} ({name}) has the wrong length", self.used);
        buf.copy_from_slice(&bytes);
        self.used += 1;
    }
}

/// Fills every draw with zeros (the predicted-next files have a zero section 20).
struct Zeros;

impl MixRandom for Zeros {
    fn fill(&mut self, _draw: Draw, buf: &mut [u8]) {
        buf.fill(0);
    }
}

#[test]
fn keys_parse_and_match() {
    let ids = [
        (1, 1024, "400c909fdd158b5b69ca52eef13b1d60"),
        (2, 1024, "51a026b896e310a73eaae735c8895577"),
        (3, 4096, "bb772a6974ab33b6306264b52ec375ba"),
        (4, 2048, "4a8cd52700c2511ef435dc7b76fc87bb"),
    ];
    let ring = PublicKey::all_from_text(&read("keys/pubring.mix")).unwrap();
    assert_eq!(ring.len(), 4);
    for (n, bits, id) in ids {
        let public = public_key(n);
        assert_eq!(public.key_id_hex(), id);
        assert_eq!(public.bits(), bits);
        assert!(ring.contains(&public));
        assert_eq!(secret_key(n).public(), public);
        assert_eq!(PublicKey::from_binary(&public.to_binary()).unwrap(), public);
    }
    let wrong = SecretKey::parse_secring(&read("keys/testmix1.secring.mix"), "pass-testmix2");
    assert!(wrong.is_err(), "a wrong passphrase must be refused");
}

#[test]
fn v6_rebuilt_bit_for_bit() {
    let record = json("packets/v6.encoder-record.json");
    let draws: VecDeque<(String, Vec<u8>)> = record["random_draws_in_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d[0].as_str().unwrap().to_string(), unhex(d[1].as_str().unwrap())))
        .collect();
    let total = draws.len();
    let decoded = json("packets/v6.hop1.at-testmix1.decoded.json");
    let strings = |key: &str| -> Vec<String> {
        decoded[key].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    };
    let payload = Payload {
        destinations: strings("payload_destinations"),
        headers: strings("payload_headers"),
        user_data: read("packets/v6.input-body.txt").into_bytes(),
    };
    let hop = &record["hops"][0];
    let key = public_key(1);
    assert_eq!(key.key_id_hex(), hop["keyid"].as_str().unwrap());
    let chain = [Hop { key, address: "testmix1@localhost".into() }];
    let mut replay = Replay { draws, used: 0 };
    let days = record["timestamp_days"].as_i64().unwrap();
    let packet = build_packet_dated(&chain, &payload, days, &mut replay).unwrap();
    assert_eq!(replay.used, total, "not every recorded draw was used");

    let mail = read("packets/v6.hop1.at-testmix1.eml");
    assert_eq!(packet, dearmor(&mail).unwrap());
    assert_eq!(armor(&packet), mail_body(&mail));

    // The record's intermediate values agree with what the decoder sees.
    let fields = decode_packet(&packet, &[secret_key(1)], TODAY, &mut Zeros).unwrap();
    let fields = fields.fields();
    assert_eq!(hex(&fields.decrypted_328), hop["plain_328"].as_str().unwrap());
    assert_eq!(hex(&fields.rsa_em), hop["rsa_em"].as_str().unwrap());
    assert_eq!(hex(&fields.session_key), hop["session_key"].as_str().unwrap());
    assert_eq!(hex(&fields.header_iv), hop["header_iv"].as_str().unwrap());
}

#[test]
fn armor_matches_every_vector_mail() {
    for name in [
        "v1.hop1.at-testmix1",
        "v2.hop1.at-testmix1",
        "v2.hop2.at-testmix2",
        "v3.hop1.at-testmix3",
        "v4.hop1.at-testmix4",
        "v4.hop2.at-testmix1",
        "v5.chunk1.at-testmix2",
        "v5.chunk2.at-testmix2",
        "v6.hop1.at-testmix1",
    ] {
        let mail = read(&format!("packets/{name}.eml"));
        let packet = dearmor(&mail).unwrap();
        assert_eq!(packet.len(), PACKET_LEN);
        assert_eq!(armor(&packet), mail_body(&mail), "{name}");
        // CRLF mail is accepted too.
        assert_eq!(dearmor(&mail.replace('\n', "\r\n")).unwrap(), packet, "{name} CRLF");
    }
}

/// Days since 1970-01-01 as `YYYY-MM-DD` (proleptic Gregorian).
fn date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn hexes(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
}

/// Compares every key of a `*.decoded.json` with the decoder's output; a key this function does
/// not know fails the test, and so does a field the decoder set that the JSON does not have.
fn compare(name: &str, expected: &Value, decoded: &Decoded) {
    let f: &HopFields = decoded.fields();
    let obj = expected.as_object().unwrap();
    let large = f.large_key.as_ref();
    let lk = |key: &str| -> String {
        let l = large.unwrap_or_else(|| panic!("{name}: {key} but no large-key fields"));
        match key {
            "hmac_key" => hex(&l.hmac_key),
            "hmac_next_headers" => hex(&l.hmac_next_headers),
            "hmac_body" => hex(&l.hmac_body),
            "hmac_328" => hex(&l.hmac_328),
            "aes_pre_key" => hex(&l.aes_pre_key),
            "aes_header_key" => hex(&l.aes_header_key),
            "aes_body_key" => hex(&l.aes_body_key),
            "aes_tte_key" => hex(&l.aes_tte_key),
            "aes_iv" => hex(&l.aes_iv),
            "aes_iv_after_328" => hex(&l.aes_iv_after_328),
            "aes_iv_after_body" => hex(&l.aes_iv_after_body),
            _ => unreachable!(),
        }
    };
    let final_payload = || -> &DecodedPayload {
        match decoded {
            Decoded::Final { payload, .. } => payload,
            _ => panic!("{name}: payload_* key on a packet that is not type 1"),
        }
    };
    for (key, want) in obj {
        let s = want.as_str();
        let ok = match key.as_str() {
            "keyid" => s == Some(&hex(&f.keyid)),
            "rsa_len_byte" => want.as_u64() == Some(u64::from(f.rsa_len_byte)),
            "header_iv" => s == Some(&hex(&f.header_iv)),
            "header_section_len" => want.as_u64() == Some(f.header_section_len as u64),
            "header_pad_len" => want.as_u64() == Some(f.header_pad_len as u64),
            "rsa_em" => s == Some(&hex(&f.rsa_em)),
            "rsa_plaintext" => s == Some(&hex(&f.rsa_plaintext)),
            "hmac_key" | "hmac_next_headers" | "hmac_body" | "hmac_328" | "aes_pre_key"
            | "aes_header_key" | "aes_body_key" | "aes_tte_key" | "aes_iv" | "aes_iv_after_328"
            | "aes_iv_after_body" => s == Some(&lk(key)),
            "session_key" => s == Some(&hex(&f.session_key)),
            "decrypted_328" => s == Some(&hex(&f.decrypted_328)),
            "packet_id" => s == Some(&hex(&f.packet_id)),
            "des_key" => s == Some(&hex(&f.des_key)),
            "packet_type" => want.as_u64() == Some(u64::from(f.packet_type)),
            "ivs" => {
                Some(hexes(want)) == f.ivs.as_ref().map(|v| v.iter().map(|iv| hex(iv)).collect())
            }
            "next_addr" => s == f.next_addr.as_deref(),
            "chunk" => want.as_u64() == f.chunk.map(u64::from),
            "nchunks" => want.as_u64() == f.nchunks.map(u64::from),
            "message_id" => s.map(str::to_string) == f.message_id.map(|m| hex(&m)),
            "body_iv" => s.map(str::to_string) == f.body_iv.map(|m| hex(&m)),
            "timestamp_offset" => want.as_u64() == Some(f.timestamp_offset as u64),
            "timestamp_days" => want.as_u64() == Some(u64::from(f.timestamp_days)),
            "timestamp_date" => s == Some(&date(i64::from(f.timestamp_days))),
            "digest" => s == Some(&hex(&f.digest)),
            "digest_offset" => want.as_u64() == Some(f.digest_offset as u64),
            "digest_ok" => want.as_bool() == Some(f.digest_ok),
            "random_pad_len" => want.as_u64() == Some(f.random_pad_len as u64),
            "next_headers_hmac_ok" => want.as_bool() == f.next_headers_hmac_ok,
            "body_length_field" => want.as_u64() == f.body_length_field.map(u64::from),
            "payload_hex" => s.map(str::to_string) == f.payload.as_ref().map(|p| hex(p)),
            "payload_destinations" => hexes(want) == final_payload().destinations,
            "payload_headers" => hexes(want) == final_payload().headers,
            "payload_user_data" => s.map(str::as_bytes) == Some(&final_payload().user_data[..]),
            "payload_user_data_is_gzip" => {
                want.as_bool() == Some(final_payload().user_data_was_gzip)
            }
            "next_packet_without_last_random_block" => {
                let Decoded::Intermediate { next_packet, .. } = decoded else {
                    panic!("{name}: next packet on a final hop");
                };
                let sha = |b: &[u8]| hex(&Sha256::digest(b));
                assert_eq!(want.as_object().unwrap().len(), 2, "{name}: {key}");
                want["header_19_sections_sha256"].as_str() == Some(&sha(&next_packet[..9728]))
                    && want["body_sha256"].as_str() == Some(&sha(&next_packet[10240..]))
            }
            other => panic!("{name}: unknown key {other:?} in the decoded JSON"),
        };
        assert!(ok, "{name}: field {key} differs: expected {want}");
    }
    // Nothing the decoder found may be missing from the JSON.
    let present = [
        ("hmac_key", large.is_some()),
        ("ivs", f.ivs.is_some()),
        ("next_addr", f.next_addr.is_some()),
        ("chunk", f.chunk.is_some()),
        ("nchunks", f.nchunks.is_some()),
        ("message_id", f.message_id.is_some()),
        ("body_iv", f.body_iv.is_some()),
        ("next_headers_hmac_ok", f.next_headers_hmac_ok.is_some()),
        ("body_length_field", f.body_length_field.is_some()),
        ("payload_hex", f.payload.is_some()),
        ("payload_destinations", matches!(decoded, Decoded::Final { .. })),
        ("next_packet_without_last_random_block", matches!(decoded, Decoded::Intermediate { .. })),
    ];
    for (key, is_set) in present {
        assert_eq!(obj.contains_key(key), is_set, "{name}: decoder and JSON disagree on {key}");
    }
}

const DECODED: [(&str, u32); 9] = [
    ("v1.hop1.at-testmix1", 1),
    ("v2.hop1.at-testmix1", 1),
    ("v2.hop2.at-testmix2", 2),
    ("v3.hop1.at-testmix3", 3),
    ("v4.hop1.at-testmix4", 4),
    ("v4.hop2.at-testmix1", 1),
    ("v5.chunk1.at-testmix2", 2),
    ("v5.chunk2.at-testmix2", 2),
    ("v6.hop1.at-testmix1", 1),
];

fn decode_vector(name: &str) -> Decoded {
    let packet = dearmor(&read(&format!("packets/{name}.eml"))).unwrap();
    decode_packet(&packet, &all_secret_keys(), TODAY, &mut Zeros)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_decoded_field_of_every_hop() {
    let keys = all_secret_keys();
    for (name, n) in DECODED {
        let expected = json(&format!("packets/{name}.decoded.json"));
        let packet = dearmor(&read(&format!("packets/{name}.eml"))).unwrap();
        let decoded = decode_packet(&packet, &keys, TODAY, &mut Zeros)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        compare(name, &expected, &decoded);
        // Only the addressed remailer's key decodes it.
        let others: Vec<SecretKey> = keys
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as u32 + 1 != n)
            .map(|(_, k)| k.clone())
            .collect();
        assert!(decode_packet(&packet, &others, TODAY, &mut Zeros).is_err(), "{name}");
    }
}

#[test]
fn final_payloads_equal_the_input_bodies() {
    for (name, v) in [
        ("v1.hop1.at-testmix1", 1),
        ("v2.hop2.at-testmix2", 2),
        ("v3.hop1.at-testmix3", 3),
        ("v4.hop2.at-testmix1", 4),
        ("v6.hop1.at-testmix1", 6),
    ] {
        let Decoded::Final { payload, .. } = decode_vector(name) else {
            panic!("{name} is not a final hop");
        };
        assert_eq!(payload.destinations, [format!("vec{v}@localhost")]);
        assert_eq!(payload.headers, [format!("Subject: Mixmaster test vector {v}")]);
        assert_eq!(payload.user_data, read(&format!("packets/v{v}.input-body.txt")).as_bytes());
        assert!(!payload.user_data_was_gzip);
    }
}

#[test]
fn v5_parts_join_and_inflate() {
    let chunk1 = decode_vector("v5.chunk1.at-testmix2");
    let chunk2 = decode_vector("v5.chunk2.at-testmix2");
    let expected = read("packets/v5.input-body.txt");
    for parts in [[chunk1.clone(), chunk2.clone()], [chunk2.clone(), chunk1.clone()]] {
        let payload = join_parts(&parts).unwrap();
        assert_eq!(payload.destinations, ["vec5@localhost"]);
        assert_eq!(payload.headers, ["Subject: Mixmaster test vector 5"]);
        assert!(payload.user_data_was_gzip);
        assert_eq!(payload.user_data, expected.as_bytes());
    }
    assert!(join_parts(std::slice::from_ref(&chunk1)).is_err(), "a missing chunk is an error");
    assert!(join_parts(&[chunk1.clone(), chunk1]).is_err(), "a duplicate chunk is an error");
}

#[test]
fn forwarding_matches_the_real_next_hop() {
    for (hop1, hop2, predicted, next_key) in [
        ("v2.hop1.at-testmix1", "v2.hop2.at-testmix2", "v2.hop1.predicted-next.txt", 2),
        ("v4.hop1.at-testmix4", "v4.hop2.at-testmix1", "v4.hop1.predicted-next.txt", 1),
    ] {
        let Decoded::Intermediate { next_address, next_packet, .. } = decode_vector(hop1) else {
            panic!("{hop1} is not an intermediate hop");
        };
        assert_eq!(next_address, format!("testmix{next_key}@localhost"));
        assert_eq!(next_packet.len(), PACKET_LEN);
        // With a zero section 20 the prediction is exact.
        let predicted_text = read(&format!("packets/{predicted}"));
        assert_eq!(next_packet, dearmor(&predicted_text).unwrap(), "{predicted}");
        assert_eq!(armor(&next_packet), predicted_text, "{predicted}");
        // The real remailer's output differs only in the random section 20.
        let real = dearmor(&read(&format!("packets/{hop2}.eml"))).unwrap();
        assert_eq!(next_packet[..9728], real[..9728], "{hop2} header");
        assert_eq!(next_packet[10240..], real[10240..], "{hop2} body");
        assert_ne!(next_packet[9728..10240], real[9728..10240]);
        // And the predicted packet decodes at the next hop like the real one.
        let ours = decode_packet(&next_packet, &[secret_key(next_key)], TODAY, &mut Zeros).unwrap();
        let theirs = decode_packet(&real, &[secret_key(next_key)], TODAY, &mut Zeros).unwrap();
        assert_eq!(ours, theirs);
    }
}

#[test]
fn remailer_checks_reject_vector_packets() {
    let packet = dearmor(&read("packets/v1.hop1.at-testmix1.eml")).unwrap();
    let keys = all_secret_keys();
    // Dated 20778: yesterday's remailer sees a future timestamp.
    let err = decode_packet(&packet, &keys, TODAY - 1, &mut Zeros).unwrap_err();
    assert!(err.to_string().contains("future timestamp"), "{err}");
    // A flipped bit in the RSA block, the encrypted block or the length byte is refused.
    for offset in [16, 20, 160, 200] {
        let mut bad = packet.clone();
        bad[offset] ^= 1;
        assert!(decode_packet(&bad, &keys, TODAY, &mut Zeros).is_err(), "offset {offset}");
    }
    // Classic packets have no MAC: a change that only garbles the block's random tail goes
    // unnoticed, as on a real remailer.
    let mut tail = packet.clone();
    tail[400] ^= 1;
    assert!(decode_packet(&tail, &keys, TODAY, &mut Zeros).is_ok());
    // Large key (v3): any change to the body or the block fails the antitagging HMACs.
    let packet = dearmor(&read("packets/v3.hop1.at-testmix3.eml")).unwrap();
    for (offset, what) in [(20000, "body"), (10240, "body"), (600, "328-byte block")] {
        let mut bad = packet.clone();
        bad[offset] ^= 0x80;
        let err = decode_packet(&bad, &keys, TODAY, &mut Zeros).unwrap_err();
        assert_eq!(err.to_string(), format!("antitagging test failed: {what} HMAC mismatch"));
    }
    // v4 hop 1 (2048-bit, type 0): bytes 1024..2047 are covered too.
    let packet = dearmor(&read("packets/v4.hop1.at-testmix4.eml")).unwrap();
    let mut bad = packet.clone();
    bad[1500] ^= 1;
    let err = decode_packet(&bad, &keys, TODAY, &mut Zeros).unwrap_err();
    assert_eq!(err.to_string(), "antitagging test failed: next headers HMAC mismatch");
    // ...but not bytes 2048.. (the next hop's sections), as on a real remailer.
    let mut other = packet.clone();
    other[3000] ^= 1;
    assert!(decode_packet(&other, &keys, TODAY, &mut Zeros).is_ok());
}
