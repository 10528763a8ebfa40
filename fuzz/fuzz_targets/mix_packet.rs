//! A type II packet as a remailer reads it: the armour (`compose::mixmaster::dearmor`), then
//! the decoder with the real test key testmix1 (`simulation::mixmaster::decode_packet`). The
//! input is used as the armoured mail and, padded to 20480 bytes, as the packet itself.
#![no_main]

use std::sync::OnceLock;

use fathometer::compose::mixmaster::{OsRandom, dearmor};
use fathometer::simulation::mixmaster::{SecretKey, decode_packet};
use libfuzzer_sys::fuzz_target;

fn key() -> &'static SecretKey {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let text = include_str!("../../tests/vectors/mixmaster/keys/testmix1.secring.mix");
        SecretKey::parse_secring(text, "pass-testmix1").expect("the vector key").remove(0)
    })
}

fuzz_target!(|data: &[u8]| {
    let key = key();
    let packet = match dearmor(&String::from_utf8_lossy(data)) {
        Ok(packet) => packet,
        Err(_) => {
            let mut packet = data.to_vec();
            packet.resize(20480, 0);
            packet
        }
    };
    let _ = decode_packet(&packet, std::slice::from_ref(key), 20778, &mut OsRandom);
});
