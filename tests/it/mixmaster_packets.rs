//! Type II packets built and decoded: round trips at every key size and chain length, the
//! builder's draw order and checks, and hostile packets against the remailer's decoder.

use std::sync::OnceLock;

use num_bigint::BigUint;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use fathometer::compose::mixmaster::crypto::{self, ChainedCfb};
use fathometer::compose::mixmaster::*;
use fathometer_testkit::mixmaster::*;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/mixmaster/keys");
const TODAY: i64 = 20778;

/// The 3072-bit test key (no vector has one): primes from `gen_prime(1536)` twice with
/// `StdRng::seed_from_u64(3072)`; `the_3072_bit_fixture_is_what_its_seed_makes` redoes it.
const P3072: [&str; 4] = [
    "ec01960a30727428d3480d5ebadf7b4f53c880584f0258ce40e2d7dc51f5cc087cd8be1990bf1ab2bdde6228a0eef056",
    "6a6b0d6ede1f799bec0783c49f0452de9aca7a1af5f72bbcc35edf0f0b7c07104727f9fad4eb928ced27c48ee74dbf3d",
    "69c28782ff5ff1b595ff2670500882e5ef85e5ba6556eef015ec6c5eeb2a10d66f394b6923358f5fa8d0e10d2f60b4fe",
    "46616d739231d9fce317af3db9ede341b6874a8752035891cecd74f3257abb7c0d97a7331adb130ffbbcc64e1e620261",
];
const Q3072: [&str; 4] = [
    "dad923e10199047c9bf4056732ab5edc0df4e9bb1ae2a3f977523dbb3ca8634d37e19464adaf6e508d691bcfaf52a078",
    "f35810ed0c5793efa0f8feba40d9dfa3d102ed9f4e0b4c0e860bbdc5404a71861e53e1b3a92f6c8c007060e838dcd719",
    "af30a3804a89258205709b866d1999e5d429a84c92992a2cbb0aeb65c55f291683529e0982f7073c9c167128c0abe855",
    "4485b63807dfd1a3ebed440e0cf2d5ac5a76568acd0dfa27b3ed24ee0b5feb928fe93f4556b731fce0a33c433f7013f5",
];

use fathometer_testkit::mixmaster::keygen::gen_prime;

fn fixture_prime(parts: &[&str; 4]) -> BigUint {
    BigUint::parse_bytes(parts.concat().as_bytes(), 16).unwrap()
}

/// The fixture is what its seed makes (about 4 s in a debug build, so it runs in CI too).
#[test]
fn the_3072_bit_fixture_is_what_its_seed_makes() {
    let mut rng = StdRng::seed_from_u64(3072);
    assert_eq!(gen_prime(1536, &mut rng), fixture_prime(&P3072));
    assert_eq!(gen_prime(1536, &mut rng), fixture_prime(&Q3072));
}

/// The test keys: testmix1..4 from the vectors (1024, 1024, 4096, 2048) and the 3072 fixture.
fn keys() -> &'static [SecretKey] {
    static KEYS_CELL: OnceLock<Vec<SecretKey>> = OnceLock::new();
    KEYS_CELL.get_or_init(|| {
        let mut keys: Vec<SecretKey> = (1..=4)
            .flat_map(|n| {
                let text =
                    std::fs::read_to_string(format!("{KEYS}/testmix{n}.secring.mix")).unwrap();
                SecretKey::parse_secring(&text, &format!("pass-testmix{n}")).unwrap()
            })
            .collect();
        let e = BigUint::from(65537u32);
        keys.push(SecretKey::from_primes(fixture_prime(&P3072), fixture_prime(&Q3072), e).unwrap());
        keys
    })
}

fn key_of_bits(bits: usize) -> &'static SecretKey {
    keys().iter().find(|k| k.public().bits() == bits).unwrap()
}

fn hop(key: &SecretKey, i: usize) -> Hop {
    Hop { key: key.public(), address: format!("remailer{i}@example.org") }
}

fn ping_payload(user_data: &[u8]) -> Payload {
    Payload {
        destinations: vec!["pinger@example.net".into()],
        headers: vec!["Subject: ping".into()],
        user_data: user_data.to_vec(),
    }
}

fn seeded(seed: u64) -> RngRandom<StdRng> {
    RngRandom(StdRng::seed_from_u64(seed))
}

/// Decodes `packet` hop by hop along `chain` and returns the final payload, checking every
/// forwarding address and key ID on the way.
fn walk(mut packet: Vec<u8>, chain: &[Hop], rng: &mut dyn MixRandom) -> DecodedPayload {
    for (i, hop) in chain.iter().enumerate() {
        let decoded = decode_packet(&packet, keys(), TODAY, rng)
            .unwrap_or_else(|e| panic!("hop {i} of {}: {e}", chain.len()));
        assert_eq!(decoded.fields().keyid, hop.key.key_id(), "hop {i}");
        let days = i64::from(decoded.fields().timestamp_days);
        assert!((TODAY - 3..=TODAY).contains(&days), "hop {i}: timestamp {days}");
        match decoded {
            Decoded::Intermediate { next_address, next_packet, fields } => {
                assert_eq!(fields.packet_type, 0);
                assert_eq!(fields.next_headers_hmac_ok.is_some(), hop.key.bits() > 1024);
                assert_eq!(next_address, chain.get(i + 1).unwrap().address, "hop {i}");
                packet = next_packet;
            }
            Decoded::Final { payload, fields } => {
                assert_eq!(fields.packet_type, 1);
                assert_eq!(i + 1, chain.len(), "final too early");
                return payload;
            }
            Decoded::Partial { .. } => panic!("the builder never makes type 2"),
        }
    }
    panic!("no final hop");
}

fn round_trip(chain: &[Hop], seed: u64) {
    let payload = ping_payload(format!("ping through {} hops\n", chain.len()).as_bytes());
    let packet = build_packet(chain, &payload, TODAY, &mut seeded(seed)).unwrap();
    assert_eq!(packet.len(), PACKET_LEN);
    // Through the mail wrapper, as it travels.
    let packet = dearmor(&armor(&packet)).unwrap();
    let got = walk(packet, chain, &mut seeded(seed + 1));
    assert_eq!(got.destinations, payload.destinations);
    assert_eq!(got.headers, payload.headers);
    assert_eq!(got.user_data, payload.user_data);
    assert!(!got.user_data_was_gzip);
}

#[test]
fn round_trip_every_key_size_and_length() {
    for bits in [1024, 2048, 3072, 4096] {
        let key = key_of_bits(bits);
        let max = MAX_SLOTS / key.public().slots();
        for n in [1, 2, max] {
            let chain: Vec<Hop> = (0..n).map(|i| hop(key, i)).collect();
            round_trip(&chain, (bits * 100 + n) as u64);
        }
    }
}

#[test]
fn round_trip_mixed_chains() {
    let k = |bits| key_of_bits(bits);
    let chains: Vec<Vec<&SecretKey>> = vec![
        // The vectors' v4 shape: large intermediate, classic final.
        vec![k(2048), k(1024)],
        vec![k(1024), k(4096)],
        vec![k(4096), k(3072), k(2048), k(1024)],
        // 10 alternating large hops: exactly 20 slots.
        (0..10).map(|i| if i % 2 == 0 { k(4096) } else { k(2048) }).collect(),
        // Found by round_trip_random_chains before slots_needed: 19 slots, the last large
        // hop's HMAC'd slots 3-4 at original slots 19-20.
        [0, 0, 2, 2, 0, 0, 2, 2, 2, 2, 2, 0].iter().map(|&i| &keys()[i]).collect(),
        // 18 classic + 1 large = 20 slots, the large one in every position.
        (0..19).map(|i| if i == 0 { k(3072) } else { &keys()[i % 2] }).collect(),
        (0..19).map(|i| if i == 9 { k(4096) } else { &keys()[i % 2] }).collect(),
        (0..19).map(|i| if i == 18 { k(2048) } else { &keys()[i % 2] }).collect(),
    ];
    for (seed, keys) in chains.iter().enumerate() {
        let chain: Vec<Hop> = keys.iter().enumerate().map(|(i, key)| hop(key, i)).collect();
        round_trip(&chain, seed as u64);
    }
}

// Cases are few: RSA-4096 in a debug build takes ~0.1 s per private operation.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn round_trip_random_chains(picks in prop::collection::vec(0usize..5, 2..=20), seed: u64) {
        let mut chain: Vec<Hop> = picks.iter().enumerate().map(|(i, &k)| hop(&keys()[k], i)).collect();
        while slots_needed(&chain) > MAX_SLOTS {
            chain.pop();
        }
        round_trip(&chain, seed);
    }

    #[test]
    fn round_trip_payloads(
        destinations in prop::collection::vec("[a-z0-9.@:-]{0,80}", 0..4),
        headers in prop::collection::vec("[ -~]{0,80}", 0..4),
        user_data in prop::collection::vec(any::<u8>(), 0..9000),
        key in 0usize..5,
        seed: u64,
    ) {
        let payload = Payload { destinations, headers, user_data };
        let chain = [hop(&keys()[key], 0)];
        let packet = build_packet(&chain, &payload, TODAY, &mut seeded(seed)).unwrap();
        let got = walk(packet, &chain, &mut seeded(seed));
        prop_assert_eq!(got.destinations, payload.destinations);
        prop_assert_eq!(got.headers, payload.headers);
        if payload.user_data.starts_with(&[0x1f, 0x8b]) {
            prop_assert!(got.user_data_was_gzip);
        } else {
            prop_assert_eq!(got.user_data, payload.user_data);
        }
    }
}

#[test]
fn slot_accounting_and_build_errors() {
    let small = key_of_bits(1024);
    let large = key_of_bits(2048);
    let payload = ping_payload(b"x");
    let build = |keys: &[&SecretKey]| {
        let chain: Vec<Hop> = keys.iter().enumerate().map(|(i, k)| hop(k, i)).collect();
        build_packet(&chain, &payload, TODAY, &mut seeded(1))
    };
    assert_eq!(build(&[]), Err(BuildError::EmptyChain));
    assert_eq!(build(&[small; 21]), Err(BuildError::ChainTooLong { slots: 21 }));
    assert_eq!(build(&[large; 11]), Err(BuildError::ChainTooLong { slots: 22 }));
    let mut mixed = vec![large; 10];
    mixed.push(small);
    assert_eq!(build(&mixed), Err(BuildError::ChainTooLong { slots: 22 }));
    assert!(build(&[small; 20]).is_ok());
    assert!(build(&[large; 10]).is_ok());
    // A large intermediate hop right before a classic final hop in a full chain would check
    // its HMAC over a section an earlier remailer filled with random bytes.
    let mut tail = vec![small; 17];
    tail.extend([large, small]);
    assert_eq!(build(&tail), Err(BuildError::ChainTooLong { slots: 21 }));
    tail.remove(0);
    assert!(build(&tail).is_ok());

    let chain = [hop(small, 0), Hop { key: small.public(), address: "a b@c".into() }];
    assert!(matches!(
        build_packet(&chain, &payload, TODAY, &mut seeded(1)),
        Err(BuildError::BadAddress { hop: 1, .. })
    ));
    let chain = [hop(small, 0), Hop { key: small.public(), address: "x".repeat(81) }];
    assert!(matches!(
        build_packet(&chain, &payload, TODAY, &mut seeded(1)),
        Err(BuildError::BadAddress { hop: 1, .. })
    ));
    let chain = [hop(small, 0)];
    let big = ping_payload(&vec![b'a'; MAX_PAYLOAD - 162 + 1]);
    assert_eq!(
        build_packet(&chain, &big, TODAY, &mut seeded(1)),
        Err(BuildError::PayloadTooLarge(MAX_PAYLOAD + 1))
    );
    assert!(
        build_packet(&chain, &ping_payload(&vec![b'a'; MAX_PAYLOAD - 162]), TODAY, &mut seeded(1))
            .is_ok()
    );
    let bad_field = Payload { headers: vec!["Subject: a\nb".into()], ..ping_payload(b"") };
    assert!(matches!(
        build_packet(&chain, &bad_field, TODAY, &mut seeded(1)),
        Err(BuildError::BadField { .. })
    ));
    let long_field = Payload { destinations: vec!["d".repeat(81)], ..ping_payload(b"") };
    assert!(matches!(
        build_packet(&chain, &long_field, TODAY, &mut seeded(1)),
        Err(BuildError::BadField { .. })
    ));
    assert_eq!(
        build_packet_dated(&chain, &payload, 65536, &mut seeded(1)),
        Err(BuildError::BadTimestamp(65536))
    );
    assert_eq!(
        build_packet_dated(&chain, &payload, -1, &mut seeded(1)),
        Err(BuildError::BadTimestamp(-1))
    );
}

#[test]
fn timestamp_fuzz_covers_zero_to_three_days() {
    let chain = [hop(key_of_bits(1024), 0)];
    let mut seen = [0usize; 4];
    for seed in 0..64 {
        let packet = build_packet(&chain, &ping_payload(b"t"), TODAY, &mut seeded(seed)).unwrap();
        let decoded = decode_packet(&packet, keys(), TODAY, &mut seeded(0)).unwrap();
        let back = TODAY - i64::from(decoded.fields().timestamp_days);
        seen[usize::try_from(back).unwrap()] += 1;
    }
    assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
    // Dated builds draw no fuzz.
    let packet = build_packet_dated(&chain, &ping_payload(b"t"), 12345, &mut seeded(0)).unwrap();
    let decoded = decode_packet(&packet, keys(), TODAY, &mut seeded(0)).unwrap();
    assert_eq!(decoded.fields().timestamp_days, 12345);
}

/// Records the names of the draws (and returns seeded bytes).
struct Recorder(StdRng, Vec<(&'static str, usize)>);

impl MixRandom for Recorder {
    fn fill(&mut self, draw: Draw, buf: &mut [u8]) {
        self.0.fill(buf);
        self.1.push((draw.name(), buf.len()));
    }
}

#[test]
fn draw_order_is_as_documented() {
    let chain = [hop(key_of_bits(4096), 0), hop(key_of_bits(1024), 1)];
    let payload = ping_payload(b"order");
    let mut rec = Recorder(StdRng::seed_from_u64(9), Vec::new());
    build_packet(&chain, &payload, TODAY, &mut rec).unwrap();
    // Runs of rsa_pad_byte collapse to one entry; their count is checked separately.
    let mut names: Vec<(&str, usize)> = Vec::new();
    let mut pad_bytes = Vec::new();
    for (name, len) in rec.1 {
        if name == "rsa_pad_byte" {
            assert_eq!(len, 1);
            if names.last().map(|n| n.0) != Some("rsa_pad_byte") {
                names.push((name, 1));
                pad_bytes.push(0);
            }
            *pad_bytes.last_mut().unwrap() += 1;
        } else {
            names.push((name, len));
        }
    }
    let payload_len = 1 + 80 + 1 + 80 + 5;
    assert_eq!(
        names,
        [
            ("body_padding", 10240 - 4 - payload_len),
            ("message_id", 16),
            // Final hop (1024 bits).
            ("packet_id", 16),
            ("des_key", 24),
            ("body_iv", 8),
            ("other_random", 9728),
            ("timestamp_fuzz", 1),
            ("pad_328", 240),
            ("session_key", 24),
            ("header_iv", 8),
            ("rsa_pad_byte", 1),
            ("header_pad", 31),
            // First hop (4096 bits).
            ("packet_id", 16),
            ("des_key", 24),
            ("ivs", 152),
            ("timestamp_fuzz", 1),
            ("pad_328", 32),
            ("session_key", 24),
            ("header_iv", 8),
            ("hmac_key", 64),
            ("aes_pre_key", 32),
            ("rsa_pad_byte", 1),
            ("header_pad", 1024 - 353 - 512),
        ]
    );
    // At least k - 3 - len bytes (more if a zero was drawn and thrown away).
    assert!(pad_bytes[0] >= 128 - 3 - 24 && pad_bytes[1] >= 512 - 3 - 216, "{pad_bytes:?}");
}

/// Gives a zero for every other draw of a PKCS#1 pad byte.
struct ZeroEveryOther(bool, usize);

impl MixRandom for ZeroEveryOther {
    fn fill(&mut self, draw: Draw, buf: &mut [u8]) {
        assert_eq!(draw, Draw::RsaPadByte);
        self.1 += 1;
        self.0 = !self.0;
        buf.fill(if self.0 { 0 } else { 0x5a });
    }
}

#[test]
fn pkcs1_padding_redraws_zero_bytes() {
    let mut rng = ZeroEveryOther(false, 0);
    let em = crypto::pkcs1_v15_pad(128, &[7u8; 24], &mut rng).unwrap();
    assert_eq!(em.len(), 128);
    assert_eq!(&em[..2], &[0, 2]);
    assert!(em[2..103].iter().all(|&b| b == 0x5a));
    assert_eq!(em[103], 0);
    assert_eq!(rng.1, 2 * 101);
    assert_eq!(fathometer_testkit::mixmaster::pkcs1_v15_unpad(&em), Some(&[7u8; 24][..]));
    // Too little padding, wrong block type, no separator.
    assert!(crypto::pkcs1_v15_pad(32, &[0u8; 24], &mut rng).is_none());
    let mut bad = em.clone();
    bad[1] = 1;
    assert!(fathometer_testkit::mixmaster::pkcs1_v15_unpad(&bad).is_none());
    let mut short = vec![0, 2, 1, 1, 1, 1, 1, 1, 1, 0];
    short.extend_from_slice(&[9; 20]);
    assert!(fathometer_testkit::mixmaster::pkcs1_v15_unpad(&short).is_none());
    assert!(
        fathometer_testkit::mixmaster::pkcs1_v15_unpad(&[0, 2, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5])
            .is_none()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn chained_cfb_round_trips(data in prop::collection::vec(any::<u8>(), 0..2000), cuts in prop::collection::vec(0usize..2000, 0..4), key: [u8; 32], iv: [u8; 16]) {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
        cuts.push(0);
        cuts.push(data.len());
        cuts.sort_unstable();
        let mut enc = data.clone();
        let mut cfb = ChainedCfb::new(iv);
        for w in cuts.windows(2) {
            cfb.encrypt(&key, &mut enc[w[0]..w[1]]);
        }
        let mut dec = enc.clone();
        let mut cfb = ChainedCfb::new(iv);
        for w in cuts.windows(2) {
            cfb.decrypt(&key, &mut dec[w[0]..w[1]]);
        }
        prop_assert_eq!(dec, data);
    }
}

#[test]
fn chained_cfb_register_after_a_partial_block() {
    // After 24 bytes (1.5 blocks) the register is the last 8 ciphertext bytes followed by the
    // 8 unused keystream bytes; plain CFB from that register would differ.
    let key = [3u8; 32];
    let mut data = [0u8; 24];
    let mut cfb = ChainedCfb::new([1u8; 16]);
    cfb.encrypt(&key, &mut data);
    let reg = cfb.register();
    assert_eq!(reg[..8], data[16..]);
    // Keystream = ciphertext for a zero plaintext; the unused half is E(block 1 register)[8..].
    let mut more = [0u8; 16];
    let mut second_block = [0u8; 16];
    second_block.copy_from_slice(&data[..16]);
    let mut probe = ChainedCfb::new(second_block);
    probe.encrypt(&key, &mut more);
    assert_eq!(reg[8..], more[8..]);
}

// ---------------------------------------------------------------------------------------------
// Hostile input.

/// A 1024-bit packet for `key` with an arbitrary 328-byte block and body plaintext, so the
/// decoder's parsing behind the RSA and 3DES layers can be fed anything.
fn forge(
    key: &SecretKey,
    rsa_plain: &[u8],
    block: &[u8; 328],
    body_iv: [u8; 8],
    body: &[u8],
) -> Vec<u8> {
    let public = key.public();
    let session_key: [u8; 24] = rsa_plain[..24].try_into().unwrap();
    let mut rng = seeded(5);
    let k = public.bits() / 8;
    let em = crypto::pkcs1_v15_pad(k, rsa_plain, &mut rng).unwrap();
    let rsa = crypto::rsa_public(public.n(), public.e(), &em, k).unwrap();
    let header_iv = [9u8; 8];
    let mut enc = *block;
    crypto::des3_cbc_encrypt(&session_key, &header_iv, &mut enc).unwrap();
    let mut packet = public.key_id().to_vec();
    packet.push(0x80);
    packet.extend_from_slice(&rsa);
    packet.extend_from_slice(&header_iv);
    packet.extend_from_slice(&enc);
    packet.resize(HEADER_LEN, 0x11);
    let mut body = body.to_vec();
    body.resize(BODY_LEN, 0);
    let des_key: [u8; 24] = block[16..40].try_into().unwrap();
    crypto::des3_cbc_encrypt(&des_key, &body_iv, &mut body).unwrap();
    packet.extend_from_slice(&body);
    packet
}

/// A type 1 block with a correct marker, date and digest.
fn final_block(days: u16) -> [u8; 328] {
    let mut block = [0x42u8; 328];
    block[40] = 1;
    block[65..70].copy_from_slice(b"0000\0");
    block[70..72].copy_from_slice(&days.to_le_bytes());
    let digest = crypto::md5(&block[..72]);
    block[72..88].copy_from_slice(&digest);
    block
}

fn body_iv_of(block: &[u8; 328]) -> [u8; 8] {
    block[57..65].try_into().unwrap()
}

#[test]
fn forged_packets_hit_each_check() {
    let key = key_of_bits(1024);
    let session = [0x24u8; 24];
    let mut body = 5u32.to_le_bytes().to_vec();
    body.extend_from_slice(&[0, 0, b'h', b'i', b'!']);
    let decode = |p: &[u8]| decode_packet(p, keys(), TODAY, &mut seeded(0));

    let block = final_block(TODAY as u16);
    let ok = decode(&forge(key, &session, &block, body_iv_of(&block), &body)).unwrap();
    let Decoded::Final { payload, .. } = ok else { panic!() };
    assert_eq!(payload.user_data, b"hi!");

    let err = decode(&forge(key, &[0x24; 30][..], &block, body_iv_of(&block), &body)).unwrap_err();
    assert_eq!(err, DecodeError::BadSessionKeyLength { expected: 24, found: 30 });

    let mut no_marker = block;
    no_marker[65] = b'1';
    let err = decode(&forge(key, &session, &no_marker, body_iv_of(&block), &body)).unwrap_err();
    assert_eq!(err, DecodeError::MissingTimestamp);

    let future = final_block(TODAY as u16 + 1);
    let err = decode(&forge(key, &session, &future, body_iv_of(&future), &body)).unwrap_err();
    assert!(matches!(err, DecodeError::FutureTimestamp { .. }));

    let mut bad_digest = block;
    bad_digest[41] ^= 1;
    let err = decode(&forge(key, &session, &bad_digest, body_iv_of(&block), &body)).unwrap_err();
    assert_eq!(err, DecodeError::DigestMismatch);

    let mut type3 = block;
    type3[40] = 3;
    let err = decode(&forge(key, &session, &type3, body_iv_of(&block), &body)).unwrap_err();
    assert_eq!(err, DecodeError::UnknownPacketType(3));

    let mut long = body.clone();
    long[..4].copy_from_slice(&10237u32.to_le_bytes());
    let err = decode(&forge(key, &session, &block, body_iv_of(&block), &long)).unwrap_err();
    assert_eq!(err, DecodeError::BadBodyLength(10237));

    let mut fields_cut = body.clone();
    fields_cut[4] = 3; // three destination fields in a 5-byte payload
    let err = decode(&forge(key, &session, &block, body_iv_of(&block), &fields_cut)).unwrap_err();
    assert!(matches!(err, DecodeError::BadPayload(_)));

    let mut unknown = forge(key, &session, &block, body_iv_of(&block), &body);
    unknown[0] ^= 1;
    assert!(matches!(decode(&unknown), Err(DecodeError::UnknownKey(_))));
    assert_eq!(decode(&unknown[..100]), Err(DecodeError::BadLength(100)));
    let mut wrong_len_byte = forge(key, &session, &block, body_iv_of(&block), &body);
    wrong_len_byte[16] = 2;
    assert!(matches!(decode(&wrong_len_byte), Err(DecodeError::BadRsaLengthByte { .. })));
}

#[test]
fn payload_parsing_and_gzip() {
    use std::io::Write;
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    deflate.write_all(&b"hello hello hello\n".repeat(100)).unwrap();
    let raw = deflate.finish().unwrap();
    let mut payload = vec![0u8, 0];
    payload.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    payload.extend_from_slice(&raw);
    let parsed = parse_payload(&payload).unwrap();
    assert!(parsed.user_data_was_gzip);
    assert_eq!(parsed.user_data, b"hello hello hello\n".repeat(100));
    // A standard gzip stream with a name and a trailer works too.
    let mut gz =
        flate2::GzBuilder::new().filename("x.txt").write(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"named").unwrap();
    let mut payload = vec![0u8, 0];
    payload.extend_from_slice(&gz.finish().unwrap());
    assert_eq!(parse_payload(&payload).unwrap().user_data, b"named");
    // Bad method, truncated headers.
    assert!(parse_payload(&[0, 0, 0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 3]).is_err());
    assert!(parse_payload(&[0, 0, 0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 3, 0xff]).is_err());
    assert!(parse_payload(&[0, 0, 0x1f, 0x8b, 8, 8, 0, 0, 0, 0, 0, 3, b'a']).is_err());
    assert!(parse_payload(&[]).is_err());
    assert!(parse_payload(&[1]).is_err());
}

/// A valid packet for each interesting shape, built once.
fn sample_packets() -> &'static [Vec<u8>] {
    static CELL: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CELL.get_or_init(|| {
        let shapes: [&[usize]; 4] = [&[1024], &[1024, 1024], &[4096], &[2048, 1024]];
        shapes
            .iter()
            .enumerate()
            .map(|(s, bits)| {
                let chain: Vec<Hop> =
                    bits.iter().enumerate().map(|(i, &b)| hop(key_of_bits(b), i)).collect();
                build_packet(&chain, &ping_payload(b"sample"), TODAY, &mut seeded(s as u64))
                    .unwrap()
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..25000)) {
        let _ = dearmor(&String::from_utf8_lossy(&bytes));
        let _ = decode_packet(&bytes, keys(), TODAY, &mut seeded(0));
        // Same, but addressed to a real key so the RSA layer is reached.
        let mut packet = bytes.clone();
        packet.resize(PACKET_LEN, 0);
        packet[..16].copy_from_slice(&keys()[0].key_id());
        packet[16] = 0x80;
        let _ = decode_packet(&packet, keys(), TODAY, &mut seeded(0));
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn mutated_packets_never_panic(which in 0usize..4, edits in prop::collection::vec((0usize..PACKET_LEN, any::<u8>()), 1..8)) {
        let mut packet = sample_packets()[which].clone();
        for (at, xor) in edits {
            packet[at] ^= xor;
        }
        let _ = decode_packet(&packet, keys(), TODAY, &mut seeded(0));
    }

    #[test]
    fn forged_plaintexts_never_panic(block in prop::collection::vec(any::<u8>(), 328), body in prop::collection::vec(any::<u8>(), 0..BODY_LEN), ptype in 0u8..4, len in prop::option::of(0u32..10300), gzip: bool) {
        let mut block: [u8; 328] = block.try_into().unwrap();
        block[40] = ptype;
        let at = match ptype { 0 => 273, 1 => 65, _ => 67 };
        block[at..at + 5].copy_from_slice(b"0000\0");
        block[at + 5..at + 7].copy_from_slice(&(TODAY as u16).to_le_bytes());
        let digest = crypto::md5(&block[..at + 7]);
        block[at + 7..at + 23].copy_from_slice(&digest);
        let mut body = body;
        body.resize(BODY_LEN, 0);
        if let Some(len) = len {
            body[..4].copy_from_slice(&len.to_le_bytes());
        }
        if gzip {
            body[4] = 0;
            body[5] = 0;
            body[6..10].copy_from_slice(&[0x1f, 0x8b, 8, 0]);
        }
        let iv: [u8; 8] = match ptype { 0 => block[185..193].try_into().unwrap(), 1 => body_iv_of(&block), _ => block[59..67].try_into().unwrap() };
        let packet = forge(key_of_bits(1024), &[0x24; 24], &block, iv, &body);
        let _ = decode_packet(&packet, keys(), TODAY, &mut seeded(0));
    }

    #[test]
    fn mutated_armor_never_panics_and_never_lies(which in 0usize..4, edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<char>()), 1..6)) {
        let original = &sample_packets()[which];
        let mut text: Vec<char> = armor(original).chars().collect();
        for (at, kind, c) in edits {
            let i = at.index(text.len());
            match kind {
                0 => { text.remove(i); }
                1 => text.insert(i, c),
                2 => text[i] = c,
                _ => text.insert(i, '\n'),
            }
        }
        let text: String = text.into_iter().collect();
        if let Ok(packet) = dearmor(&text) {
            prop_assert_eq!(&packet, original);
        }
    }

    #[test]
    fn large_key_body_bit_flip_is_rejected(offset in HEADER_LEN..PACKET_LEN, bit in 0u8..8, which in prop::sample::select(vec![2usize, 3])) {
        let mut packet = sample_packets()[which].clone();
        packet[offset] ^= 1 << bit;
        let err = decode_packet(&packet, keys(), TODAY, &mut seeded(0)).unwrap_err();
        prop_assert_eq!(err, DecodeError::Antitagging("body"));
    }

    #[test]
    fn large_key_header_bit_flips_are_rejected(offset in 17usize..2048, bit in 0u8..8) {
        // 2048-bit type 0 hop: RSA block, IV, 328-byte block and bytes 1024..2047 are covered.
        let mut packet = sample_packets()[3].clone();
        let covered = !(17 + 256 + 8 + 328..1024).contains(&offset);
        packet[offset] ^= 1 << bit;
        let result = decode_packet(&packet, keys(), TODAY, &mut seeded(0));
        prop_assert_eq!(result.is_err(), covered, "offset {}", offset);
    }
}

#[test]
fn armor_format_and_leniency() {
    let packet = &sample_packets()[0];
    let text = armor(packet);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..5],
        ["::", "Remailer-Type: Mixmaster 3.0.2d", "", "-----BEGIN REMAILER MESSAGE-----", "20480"]
    );
    assert_eq!(lines[5].len(), 24);
    assert_eq!(lines.len(), 6 + 683 + 1);
    assert!(lines[6..6 + 682].iter().all(|l| l.len() == 40));
    assert_eq!(lines[688].len(), 28);
    assert_eq!(lines[689], "-----END REMAILER MESSAGE-----");
    assert!(text.ends_with("-----END REMAILER MESSAGE-----\n"));

    // Full mail, header in the mail header, no length line, extra blank lines, CRLF.
    let full = format!("From: a@b\nTo: c@d\n\n{text}");
    assert_eq!(&dearmor(&full).unwrap(), packet);
    let in_header = text.replacen("::\nRemailer-Type: Mixmaster 3.0.2d\n\n", "", 1);
    let in_header = format!("To: x@y\nremailer-type: MIXMASTER 2.9b38\n\n\n\n{in_header}");
    assert_eq!(&dearmor(&in_header).unwrap(), packet);
    assert_eq!(&dearmor(&text.replacen("20480\n", "", 1)).unwrap(), packet);
    assert_eq!(&dearmor(&text.replace('\n', "\r\n")).unwrap(), packet);
    // What matters is strict.
    assert_eq!(
        dearmor(&text.replacen("Mixmaster", "Cypherpunk", 1)),
        Err(ArmorError::NotMixmaster)
    );
    assert_eq!(
        dearmor(&text.replacen(
            "-----BEGIN REMAILER MESSAGE-----",
            "-----BEGIN REMAILER MESSAGE----- ",
            1
        )),
        Err(ArmorError::NoBeginMarker)
    );
    let flipped = {
        let mut p = packet.clone();
        p[100] ^= 1;
        let other = armor(&p);
        // Keep the original checksum line with the altered data.
        let mut l: Vec<&str> = other.lines().collect();
        l[5] = lines[5];
        l.join("\n") + "\n"
    };
    assert_eq!(dearmor(&flipped), Err(ArmorError::ChecksumMismatch));
    assert_eq!(
        dearmor(&text.replacen("-----END REMAILER MESSAGE-----", "", 1)),
        Err(ArmorError::NoEndMarker)
    );
    let short = armor(&packet[..20000]);
    assert_eq!(dearmor(&short), Err(ArmorError::BadLength(20000)));
}

#[test]
fn secret_key_from_primes_matches_secring() {
    for key in &keys()[..4] {
        let again =
            SecretKey::from_primes(key.p().clone(), key.q().clone(), key.public().e().clone())
                .unwrap();
        assert_eq!(again.public(), key.public());
        let c = [7u8; 8];
        let k = key.public().bits() / 8;
        let em = crypto::rsa_public(key.public().n(), key.public().e(), &c, k).unwrap();
        assert_eq!(&again.raw_decrypt(&em).unwrap()[k - 8..], &c);
    }
    assert_eq!(keys()[4].public().bits(), 3072);
    assert!(PublicKey::from_binary(&[0, 4]).is_err());
    assert!(matches!(PublicKey::from_binary(&[0, 5, 1]), Err(KeyError::UnsupportedSize(1280))));
}

#[test]
fn join_parts_errors() {
    let part = |chunk, nchunks, id: u8, data: &[u8]| Decoded::Partial {
        chunk,
        nchunks,
        message_id: [id; 16],
        payload_part: data.to_vec(),
        fields: decode_packet(&sample_packets()[0], keys(), TODAY, &mut seeded(0))
            .unwrap()
            .fields()
            .clone(),
    };
    assert_eq!(join_parts(&[]), Err(DecodeError::Join("no parts")));
    let mut first = vec![1, b'x'];
    first.resize(1 + 80, 0);
    first.push(0);
    let ok = join_parts(&[part(2, 2, 1, b"abc"), part(1, 2, 1, &first)]).unwrap();
    assert_eq!(ok.destinations, ["x"]);
    assert_eq!(ok.user_data, b"abc");
    assert!(join_parts(&[part(1, 2, 1, b""), part(2, 2, 2, b"")]).is_err());
    assert!(join_parts(&[part(1, 2, 1, b""), part(2, 3, 1, b"")]).is_err());
    assert!(join_parts(&[part(1, 2, 1, b"")]).is_err());
    assert!(join_parts(&[part(3, 2, 1, b"")]).is_err());
}
