//! The mail path's CPU cost per ping: building a type I ping (payload, symmetric layer, one
//! hop's OpenPGP encryption) and opening a return (decrypt and verify).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fathometer::openpgp;
use fathometer::payload::{self, Hop, PayloadFields, PayloadKind};
use fathometer::sender::{HopSpec, Identity, PingSpec, build_ping};
use fathometer::types::PingType;
use rand::SeedableRng;
use rand::rngs::StdRng;

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
    let certs = openpgp::parse_certs(mix_key_cert().as_bytes());
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
        openpgp::encrypt_symmetric_salted(password.as_bytes(), salt, text.as_bytes()).unwrap();
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

criterion_group!(benches, bench);
criterion_main!(benches);
