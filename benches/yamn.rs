//! Native YAMN packet building: packets per second for one and two hops, and the armour,
//! against the cost echolot4yamn pays per ping (one `yamn` process; a `fork`+`exec` of
//! `/bin/true` is a lower bound of that, measured by the mixmaster bench).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fathometer::compose::yamn::{Hop, OsRandom, PublicKey, armor, build_packet};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/yamn/keys");
const TODAY: i64 = 20789;

fn hop(name: &str) -> Hop {
    let text = std::fs::read_to_string(format!("{KEYS}/{name}.key.txt")).expect("key file");
    Hop::of(&PublicKey::from_text(&text).expect("key"))
}

fn bench(c: &mut Criterion) {
    // A ping's plaintext is about a kilobyte: headers and the sealed payload.
    let mut plaintext = b"To: pinger+tag@example.net\nSubject: ping\n\n".to_vec();
    plaintext.extend(std::iter::repeat_n(b'p', 1024));
    let one = [hop("yamn1")];
    let two = [hop("yamn2"), hop("yamn1")];
    c.bench_function("yamn build 1 hop", |b| {
        b.iter(|| build_packet(black_box(&one), &plaintext, TODAY, &mut OsRandom))
    });
    c.bench_function("yamn build 2 hops", |b| {
        b.iter(|| build_packet(black_box(&two), &plaintext, TODAY, &mut OsRandom))
    });
    let packet = build_packet(&one, &plaintext, TODAY, &mut OsRandom).expect("packet");
    c.bench_function("yamn armor", |b| b.iter(|| armor(black_box(&packet))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
