//! A YAMN packet as a remailer reads it: the armour (`compose::yamn::dearmor`), then the
//! decoder with the vector key of yamn1 (`simulation::yamn::decode_packet`, on day 20789 when
//! the key is valid); and the same bytes as a key file (`compose::yamn::PublicKey`). The input
//! is used as the armoured mail and, padded to 20480 bytes, as the packet itself.
#![no_main]

use std::sync::OnceLock;

use fathometer::compose::yamn::{PublicKey, dearmor};
use fathometer::simulation::yamn::{IdLog, SecretKey, decode_packet};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static [SecretKey] {
    static KEYS: OnceLock<Vec<SecretKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let text = include_str!("../../tests/vectors/yamn/keys/yamn1.secring.mix");
        SecretKey::parse_secring(text)
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = PublicKey::all_from_text(&text);
    let packet = match dearmor(&text) {
        Ok(packet) => packet,
        Err(_) => {
            let mut packet = data.to_vec();
            packet.resize(20480, 0);
            packet
        }
    };
    let _ = decode_packet(&packet, keys(), 20789, &mut IdLog::default());
});
