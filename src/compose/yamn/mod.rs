//! Native YAMN packets (`yamn.md`): the builder a pinger uses instead of shelling out to the
//! `yamn` client, bit for bit what YAMN 0.2.7's client builds from the same random draws.
//!
//! A packet is 20480 bytes: ten 256-byte header slots and a 17920-byte body. Each slot is the
//! recipient's key ID, a fresh ephemeral X25519 key, a nonce, a NaCl box of the 160-byte inner
//! header and 8 random bytes. Layers are AES-256-CTR; each hop checks a BLAKE2s-256 anti-tag
//! over everything after its own slot, so the builder predicts the filler the earlier hops'
//! appended zero slots turn into (§4.3).
//!
//! Randomness is a parameter: every draw goes through [`YamnRandom::fill`] with a [`Draw`]
//! naming it, in the Go client's order (§4.5), so the vectors' recorded draws replay. Time is
//! a parameter (`today`, days since 1970-01-01 UTC). The remailer's side (the decoder) is in
//! `simulation::yamn`.

mod armor;
pub mod crypto;
mod key;
mod reply;

pub use armor::{ArmorError, REMAILER_TYPE, armor, dearmor};
pub use key::{KeyError, PublicKey};
pub use reply::{Capabilities, Summary, date_to_day, day_to_date, parse_conf};

/// The packet, its slots and its body.
pub const PACKET_LEN: usize = 20480;
pub const SLOT_LEN: usize = 256;
pub const SLOTS: usize = 10;
pub const HEADERS_LEN: usize = SLOT_LEN * SLOTS;
pub const BODY_LEN: usize = PACKET_LEN - HEADERS_LEN;
/// The inner header sealed in a slot, and its packet info.
pub const INNER_LEN: usize = 160;
pub const INFO_LEN: usize = 64;
/// The longest chain.
pub const MAX_HOPS: usize = 10;
/// The most plaintext one packet carries: one chunk (YAMN 0.2.7 cannot deliver more, §4.6).
pub const MAX_PLAINTEXT: usize = 17910;
/// The next-hop address field.
pub const MAX_ADDRESS: usize = 52;
/// Packet version, and the packet types.
pub const VERSION: u8 = 2;
pub const TYPE_INTERMEDIATE: u8 = 0;
pub const TYPE_EXIT: u8 = 1;
/// Delivery methods of an exit slot.
pub const DELIVER_SMTP: u8 = 0;
pub const DELIVER_DUMMY: u8 = 255;

/// What a random draw is for, in the order the Go client draws them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    /// Per message: the exit body IV, the message ID, the exit packet ID.
    BodyIv,
    MessageId,
    ExitPacketId,
    /// The unused slots of a chain shorter than ten.
    Padding,
    /// Per intermediate, drawn in advance: its AES key and 12-byte partial IV.
    LayerKey,
    PartialIv,
    /// Per slot: the day-stamp dice byte (0 to 3 days back).
    Dice,
    /// Per intermediate slot: its packet ID. The exit slot draws one too, then uses the
    /// message's exit packet ID instead (the client does).
    PacketId,
    /// The exit's AES key.
    ExitKey,
    /// Per slot: the ephemeral X25519 secret, the box nonce, the 8-byte tail.
    EphemeralSecret,
    Nonce,
    SlotTail,
}

/// A source of random bytes whose every draw is named, so that a recorded sequence can be
/// replayed.
pub trait YamnRandom {
    fn fill(&mut self, draw: Draw, buf: &mut [u8]);
}

/// The operating system's generator, for real pings.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl YamnRandom for OsRandom {
    fn fill(&mut self, _draw: Draw, buf: &mut [u8]) {
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, buf);
    }
}

/// Any `rand` generator (seeded tests, benchmarks).
#[derive(Debug, Clone)]
pub struct RngRandom<R>(pub R);

impl<R: rand::RngCore> YamnRandom for RngRandom<R> {
    fn fill(&mut self, _draw: Draw, buf: &mut [u8]) {
        self.0.fill_bytes(buf);
    }
}

/// One hop of a chain: where the packet goes and the key it is sealed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub address: String,
    pub public: [u8; 32],
}

impl Hop {
    pub fn of(key: &PublicKey) -> Hop {
        Hop { address: key.summary.address.clone(), public: key.public }
    }
}

/// Why a packet was not built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("a chain has 1 to 10 hops, not {0}")]
    ChainLength(usize),
    #[error("the plaintext is {0} bytes; one YAMN packet carries at most 17910")]
    TooLong(usize),
    #[error("the address {0:?} is longer than 52 bytes")]
    AddressTooLong(String),
    #[error("the day stamp {0} does not fit in 16 bits")]
    BadDay(i64),
}

fn draw<const N: usize>(rng: &mut dyn YamnRandom, what: Draw) -> [u8; N] {
    let mut buf = [0u8; N];
    rng.fill(what, &mut buf);
    buf
}

/// The day stamp of a slot: today minus 0 to 3 days (one dice byte mod 4), as the client.
fn day_stamp(today: i64, rng: &mut dyn YamnRandom) -> Result<u16, BuildError> {
    let [dice] = draw::<1>(rng, Draw::Dice);
    let day = today - i64::from(dice % 4);
    u16::try_from(day).map_err(|_| BuildError::BadDay(day))
}

/// The 160-byte inner header (§2.2).
fn inner_header(
    packet_type: u8,
    packet_id: &[u8; 16],
    aes_key: &[u8; 32],
    stamp: u16,
    info: &[u8; INFO_LEN],
    anti_tag: &[u8; 32],
) -> [u8; INNER_LEN] {
    let mut inner = [0u8; INNER_LEN];
    inner[0] = VERSION;
    inner[1] = packet_type;
    inner[2] = 0; // SMTP
    inner[3..19].copy_from_slice(packet_id);
    inner[19..51].copy_from_slice(aes_key);
    inner[51..53].copy_from_slice(&stamp.to_le_bytes());
    inner[53..117].copy_from_slice(info);
    inner[117..149].copy_from_slice(anti_tag);
    inner
}

/// A header slot (§2.1) sealing `inner` to `recipient`.
fn seal_slot(
    recipient: &[u8; 32],
    inner: &[u8; INNER_LEN],
    rng: &mut dyn YamnRandom,
) -> [u8; SLOT_LEN] {
    let ephemeral: [u8; 32] = draw(rng, Draw::EphemeralSecret);
    let nonce: [u8; 24] = draw(rng, Draw::Nonce);
    let sealed = crypto::seal(recipient, &ephemeral, &nonce, inner);
    let tail: [u8; 8] = draw(rng, Draw::SlotTail);
    let mut slot = [0u8; SLOT_LEN];
    slot[..16].copy_from_slice(&crypto::key_id(recipient));
    slot[16..48].copy_from_slice(&crypto::public_of(&ephemeral));
    slot[48..72].copy_from_slice(&nonce);
    slot[72..248].copy_from_slice(&sealed);
    slot[248..].copy_from_slice(&tail);
    slot
}

/// Slots 0..8 move to 1..9; slot 9 is dropped; slot 0 keeps stale bytes until the header is
/// written (`shiftHeaders`).
fn shift_down(packet: &mut [u8]) {
    packet.copy_within(0..HEADERS_LEN - SLOT_LEN, SLOT_LEN);
}

/// The keystream of an intermediate's layer for slot counter `c` (0..=9).
fn slot_stream(key: &[u8; 32], partial: &[u8; 12], counter: u32) -> [u8; SLOT_LEN] {
    let mut stream = [0u8; SLOT_LEN];
    crypto::aes_ctr(key, &crypto::seq_iv(partial, counter), &mut stream);
    stream
}

/// The secrets of one intermediate's layer.
struct Layer {
    key: [u8; 32],
    partial_iv: [u8; 12],
}

/// Writes into the bottom `i − 1` slots what the appended zero slots of hops 1..i−1 (chain
/// positions, 1-based) have become when the packet reaches hop `i` (§4.3): at slot
/// `10 − i + k`, `S_k(9) ⊕ S_(k+1)(8) ⊕ … ⊕ S_(i−1)(9 − (i−1−k))`. `layer(k)` is hop k's.
fn write_filler<'a>(packet: &mut [u8], i: usize, layer: impl Fn(usize) -> &'a Layer) {
    for k in 1..i {
        let mut slot = [0u8; SLOT_LEN];
        for hop in k..i {
            let l = layer(hop);
            let counter = (9 - (hop - k)) as u32;
            let stream = slot_stream(&l.key, &l.partial_iv, counter);
            slot.iter_mut().zip(stream).for_each(|(b, s)| *b ^= s);
        }
        let at = (SLOTS - i + k) * SLOT_LEN;
        packet[at..at + SLOT_LEN].copy_from_slice(&slot);
    }
}

/// Builds the packet for `chain` (entry first, exit last) carrying `plaintext`, a complete
/// RFC 822 message whose `To:` the exit mails it to. `today`: days since 1970-01-01 UTC.
pub fn build_packet(
    chain: &[Hop],
    plaintext: &[u8],
    today: i64,
    rng: &mut dyn YamnRandom,
) -> Result<Vec<u8>, BuildError> {
    let n = chain.len();
    if !(1..=MAX_HOPS).contains(&n) {
        return Err(BuildError::ChainLength(n));
    }
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(BuildError::TooLong(plaintext.len()));
    }
    if let Some(hop) = chain.iter().find(|h| h.address.len() > MAX_ADDRESS) {
        return Err(BuildError::AddressTooLong(hop.address.clone()));
    }
    // Per message.
    let body_iv: [u8; 16] = draw(rng, Draw::BodyIv);
    let message_id: [u8; 16] = draw(rng, Draw::MessageId);
    let exit_packet_id: [u8; 16] = draw(rng, Draw::ExitPacketId);

    let mut packet = vec![0u8; PACKET_LEN];
    if n < MAX_HOPS {
        rng.fill(Draw::Padding, &mut packet[..(SLOTS - n) * SLOT_LEN]);
    }
    // layers[j]: intermediate j counted from the exit side (j = 0 is chain position n − 1).
    let layers: Vec<Layer> = (0..n - 1)
        .map(|_| Layer { key: draw(rng, Draw::LayerKey), partial_iv: draw(rng, Draw::PartialIv) })
        .collect();
    let layer_of_position = |position: usize| &layers[n - 1 - position];
    packet[HEADERS_LEN..HEADERS_LEN + plaintext.len()].copy_from_slice(plaintext);

    // The exit.
    let stamp = day_stamp(today, rng)?;
    let _discarded_packet_id: [u8; 16] = draw(rng, Draw::PacketId);
    let exit_key: [u8; 32] = draw(rng, Draw::ExitKey);
    let mut info = [0u8; INFO_LEN];
    info[..16].copy_from_slice(&body_iv);
    info[16] = 1; // chunk 1
    info[17] = 1; // of 1
    info[18..34].copy_from_slice(&message_id);
    info[34..38].copy_from_slice(&(plaintext.len() as u32).to_le_bytes());
    info[38] = DELIVER_SMTP;
    crypto::aes_ctr(&exit_key, &body_iv, &mut packet[HEADERS_LEN..]);
    shift_down(&mut packet);
    write_filler(&mut packet, n, layer_of_position);
    let anti_tag = crypto::blake2s256(&packet[SLOT_LEN..]);
    let inner = inner_header(TYPE_EXIT, &exit_packet_id, &exit_key, stamp, &info, &anti_tag);
    let slot = seal_slot(&chain[n - 1].public, &inner, rng);
    packet[..SLOT_LEN].copy_from_slice(&slot);

    // The intermediates, from the one before the exit back to the entry.
    for (j, layer) in layers.iter().enumerate() {
        let position = n - 1 - j; // 1-based chain position of this hop
        let stamp = day_stamp(today, rng)?;
        let packet_id: [u8; 16] = draw(rng, Draw::PacketId);
        let mut info = [0u8; INFO_LEN];
        info[..12].copy_from_slice(&layer.partial_iv);
        let next = chain[position].address.as_bytes();
        info[12..12 + next.len()].copy_from_slice(next);
        for k in 0..SLOTS {
            let stream = slot_stream(&layer.key, &layer.partial_iv, k as u32);
            let at = k * SLOT_LEN;
            packet[at..at + SLOT_LEN].iter_mut().zip(stream).for_each(|(b, s)| *b ^= s);
        }
        crypto::aes_ctr(
            &layer.key,
            &crypto::seq_iv(&layer.partial_iv, 10),
            &mut packet[HEADERS_LEN..],
        );
        shift_down(&mut packet);
        write_filler(&mut packet, position, layer_of_position);
        let anti_tag = crypto::blake2s256(&packet[SLOT_LEN..]);
        let inner =
            inner_header(TYPE_INTERMEDIATE, &packet_id, &layer.key, stamp, &info, &anti_tag);
        let slot = seal_slot(&chain[position - 1].public, &inner, rng);
        packet[..SLOT_LEN].copy_from_slice(&slot);
    }
    Ok(packet)
}
