//! A remailer's answer to each information request (`matching::reply::read_reply`):
//! capability lines, keys of every kind, vouched-for addresses.
#![no_main]

use fathometer::matching::reply::read_reply;
use fathometer::model::RequestKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for kind in RequestKind::ALL {
        let _ = read_reply(kind, "testmix1@localhost", &text, 1_764_547_200);
    }
});
