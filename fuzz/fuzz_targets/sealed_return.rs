//! The opener of a ping's sealed payload (`compose::openpgp::decrypt_symmetric_salted`):
//! the OpenPGP armour and packets of whatever came back.
#![no_main]

use fathometer::compose::openpgp::{decrypt_symmetric, decrypt_symmetric_salted};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decrypt_symmetric_salted(b"a password", [1, 2, 3, 4, 5, 6, 7, 8], data);
    let _ = decrypt_symmetric(b"a password", data);
});
