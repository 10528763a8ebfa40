//! Keys from strangers (`compose::keys`): OpenPGP keyrings, pubring.mix files and
//! remailer-key replies, as `import-keys` and discovery read them.
#![no_main]

use fathometer::compose::keys::{find_keys, parse_mix_keys};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = find_keys(data, 1_764_547_200);
    let _ = parse_mix_keys(&String::from_utf8_lossy(data));
});
