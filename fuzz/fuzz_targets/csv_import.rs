//! The ping-history CSV files of `import-pings` (`app::import`).
#![no_main]

use fathometer::app::import::{parse_chains, parse_pings, parse_remailers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_pings(&text);
    let _ = parse_chains(&text);
    let _ = parse_remailers(&text);
});
