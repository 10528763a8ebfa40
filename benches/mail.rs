//! The mail path's CPU cost per ping: building a type I ping (payload, symmetric layer, one
//! hop's OpenPGP encryption) and opening a return (decrypt and verify).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fathometer::compose::openpgp;
use fathometer::compose::payload::{self, Hop, PayloadFields, PayloadKind};
use fathometer::compose::{HopSpec, PingSpec, build_ping};
use fathometer::model::Identity;
use fathometer::model::PingType;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The tests' own clock (the library reads none).
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

const SECRET: &[u8] = &[5u8; 32];
const TAG: &str = "abcdefghijklmnop";

fn identity() -> Identity {
    Identity {
        address: "pinger@p.example".to_owned().try_into().unwrap(),
        delimiter: "+".to_owned().try_into().unwrap(),
        name: "fathometer".into(),
    }
}

fn mix_key_cert() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/mixmaster/keys/pubring.asc");
    std::fs::read_to_string(path).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let certs = openpgp::parse_certs(mix_key_cert().as_bytes(), now());
    let cert = certs.into_iter().next().unwrap().unwrap();
    let spec = |ping_type, material: Option<String>| PingSpec {
        id: 1,
        hops: vec![HopSpec {
            address: cert.emails[0].clone(),
            ping_type,
            key_id: cert.key_id.clone(),
            material,
        }],
        with_from: false,
    };
    let clear = spec(PingType::CpunkClear, None);
    let dsa = spec(PingType::CpunkDsa, Some(cert.armored.clone()));
    c.bench_function("build cpunk-clear ping", |b| {
        b.iter(|| build_ping(&clear, SECRET, &identity(), TAG, 1_800_000_000, &mut rng).unwrap())
    });
    c.bench_function("build cpunk-dsa ping (ElGamal-1024)", |b| {
        b.iter(|| build_ping(&dsa, SECRET, &identity(), TAG, 1_800_000_000, &mut rng).unwrap())
    });
    let fields = PayloadFields {
        kind: PayloadKind::Ping,
        id: 1,
        hops: vec![Hop {
            address: "r@x".into(),
            ping_type: PingType::CpunkClear,
            key_id: "none".into(),
        }],
        with_from: false,
        sent: 1_800_000_000,
        tag: TAG.into(),
    };
    let text = payload::render(&fields, SECRET, &mut rng);
    let password = payload::payload_password(SECRET);
    let salt = payload::payload_salt(SECRET, TAG);
    let armoured =
        openpgp::encrypt_symmetric_salted(password.as_bytes(), salt, text.as_bytes(), now())
            .unwrap();
    c.bench_function("open a return (decrypt + verify)", |b| {
        b.iter(|| {
            let plain = openpgp::decrypt_symmetric_salted(
                password.as_bytes(),
                salt,
                black_box(armoured.as_bytes()),
            )
            .unwrap();
            payload::verify(&plain, SECRET).unwrap()
        })
    });
}

/// The costliest mails a stranger can send: what one of them costs the ingester, from the
/// bytes a mailbox edge hands over to the committed verdict (an in-memory store holding the
/// ping whose genuine return the attacker copied).
fn hostile(c: &mut Criterion) {
    use fathometer::app::ingest::process;
    use fathometer::ingest::RawMail;
    use fathometer::matching::MatchContext;
    // As `fathometer` itself does at start (src/cli.rs): no backtrace per library error.
    // SAFETY: before criterion starts any thread.
    unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    use fathometer::model::DueSinglePing;
    use fathometer::store::Store;
    let mut rng = StdRng::seed_from_u64(2);
    let mut store = Store::open_in_memory().unwrap();
    store.add_remailer("r@x.example", 0).unwrap();
    let key = store.upsert_key("r@x.example", PingType::CpunkClear, "none", 0).unwrap();
    let now = 1_800_000_000;
    store.queue_single_pings(&[DueSinglePing { key_row_id: key, slot_time: now }], now).unwrap();
    let ping = store.outbox_due(now, 1).unwrap().remove(0);
    store.begin_attempt(ping.id, TAG, false).unwrap();
    store.mark_sent(ping.id, now).unwrap();
    let store = std::sync::Mutex::new(store);
    let fields = PayloadFields {
        kind: PayloadKind::Ping,
        id: ping.id,
        hops: vec![Hop {
            address: "r@x.example".into(),
            ping_type: PingType::CpunkClear,
            key_id: "none".into(),
        }],
        with_from: false,
        sent: now,
        tag: TAG.into(),
    };
    let text = payload::render(&fields, SECRET, &mut rng);
    let genuine = openpgp::encrypt_symmetric_salted(
        payload::payload_password(SECRET).as_bytes(),
        payload::payload_salt(SECRET, TAG),
        text.as_bytes(),
        now,
    )
    .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let body: String =
        genuine.lines().filter(|l| !l.starts_with('-') && !l.starts_with('=')).collect();
    let binary = base64::Engine::decode(&b64, body.trim()).unwrap();
    let armour = |packet: &[u8]| {
        format!(
            "-----BEGIN PGP MESSAGE-----\r\n\r\n{}\r\n-----END PGP MESSAGE-----\r\n",
            base64::Engine::encode(&b64, packet)
        )
    };
    let mail = |part: &str, parts: usize| {
        let mut m = format!(
            "Delivered-To: pinger+{TAG}@p.example\r\nSubject: r\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
        );
        for _ in 0..parts {
            m.push_str("--b\r\nContent-Type: text/plain\r\n\r\n");
            m.push_str(part);
        }
        m.push_str("--b--\r\n");
        m.into_bytes()
    };
    // The reported attack: the genuine first packet with the S2K count raised, 18,000 times.
    let mut raised = binary[..60].to_vec();
    raised[14] = 0xA0;
    let reported = mail(&armour(&raised), 18_000);
    // The most parts that fit under the size limit.
    let many_parts = mail(&armour(&raised), 4_000);
    // The worst the limits let through to decryption: our genuine header on the largest
    // message we open (8 KiB of incompressible plaintext), altered in the middle, so the whole
    // packet is decrypted and parsed before the MDC fails; in each of the parts we try.
    let noise: Vec<u8> = (0..8_000).map(|_| rand::Rng::r#gen::<u8>(&mut rng)).collect();
    let large = openpgp::encrypt_symmetric_salted(
        payload::payload_password(SECRET).as_bytes(),
        payload::payload_salt(SECRET, TAG),
        &noise,
        now,
    )
    .unwrap();
    let body: String =
        large.lines().filter(|l| !l.starts_with('-') && !l.starts_with('=')).collect();
    let mut altered = base64::Engine::decode(&b64, body.trim()).unwrap();
    let middle = altered.len() / 2;
    altered[middle] ^= 0xff;
    let worst = mail(&armour(&altered), 60);
    let identity = identity();
    let ctx = MatchContext { secret: SECRET, identity: &identity };
    for (name, bytes) in [
        ("hostile mail: the reported attack (4 MB, 18,000 parts)", &reported),
        ("hostile mail: 4,000 parts under the size limit", &many_parts),
        ("hostile mail: our largest message, altered, in 60 parts", &worst),
    ] {
        let limit = fathometer::ingest::MAX_MAIL_BYTES + 1;
        let raw = RawMail {
            bytes: bytes[..bytes.len().min(limit)].to_vec(),
            size: Some(bytes.len() as u64),
            delivered_at: Some(now + 60),
            source: "bench".into(),
        };
        let mut n = 0u64;
        c.bench_function(name, |b| {
            b.iter(|| {
                // A new mail each time (another digest), so it is classified, not recognised.
                n += 1;
                let mut raw = raw.clone();
                raw.bytes.extend_from_slice(format!("X-N: {n}\r\n").as_bytes());
                process(&store, &ctx, black_box(&raw), now + 120).unwrap()
            })
        });
    }
}

criterion_group!(benches, bench, hostile);
criterion_main!(benches);
