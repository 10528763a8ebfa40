//! Native Mixmaster packet building against the cost Echolot pays per ping: it runs the
//! Mixmaster client as a process for every ping, so one `fork`+`exec` of `/bin/true` is a
//! lower bound of that.

use std::hint::black_box;
use std::process::Command;

use criterion::{Criterion, criterion_group, criterion_main};
// In fathometer: `use fathometer::compose::mixmaster::{...}`.
use fathometer::compose::mixmaster::{Hop, OsRandom, Payload, PublicKey, armor, build_packet};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/mixmaster/keys");
const TODAY: i64 = 20778;

fn hop(n: u32) -> Hop {
    let text = std::fs::read_to_string(format!("{KEYS}/testmix{n}.key.txt")).expect("key file");
    Hop {
        key: PublicKey::from_entry(&text).expect("key"),
        address: format!("testmix{n}@localhost"),
    }
}

fn payload() -> Payload {
    Payload {
        destinations: vec!["pinger@example.net".into()],
        headers: vec!["Subject: ping".into()],
        user_data: vec![b'p'; 1024],
    }
}

fn bench(c: &mut Criterion) {
    let payload = payload();
    let one_1024 = [hop(1)];
    let two_4096 = [hop(3), hop(3)];
    c.bench_function("build 1 hop 1024-bit", |b| {
        b.iter(|| build_packet(black_box(&one_1024), &payload, TODAY, &mut OsRandom))
    });
    c.bench_function("build 2 hops 4096-bit", |b| {
        b.iter(|| build_packet(black_box(&two_4096), &payload, TODAY, &mut OsRandom))
    });
    let packet = build_packet(&one_1024, &payload, TODAY, &mut OsRandom).expect("packet");
    c.bench_function("armor", |b| b.iter(|| armor(black_box(&packet))));
    c.bench_function("spawn /bin/true", |b| {
        b.iter(|| Command::new("/bin/true").status().expect("spawn /bin/true"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
