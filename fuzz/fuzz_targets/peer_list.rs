//! Another pinger's mlist2.txt/rlist2.txt as the consensus reads it
//! (`ingest::peer_list::parse_list_v2`): a stranger's file, read strictly, never a panic.
#![no_main]

use fathometer::ingest::peer_list::parse_list_v2;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_list_v2(&String::from_utf8_lossy(data));
});
