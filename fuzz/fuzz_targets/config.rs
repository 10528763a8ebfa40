//! A configuration file (`config::Config::parse`): every value checked, every error with
//! its key and line.
#![no_main]

use fathometer::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse(text, std::path::Path::new("fuzz.toml"));
    }
});
