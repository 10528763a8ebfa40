//! What the consensus reads from other pingers, as strangers' files: their mlist2.txt and
//! rlist2.txt (`ingest::peer_list::parse_list_v2`), their pubring.mix summary lines, and the
//! community index allpingers.txt. Read strictly, never a panic, every URL taken http(s).
#![no_main]

use fathometer::ingest::peer_list::{parse_allpingers, parse_list_v2, pubring_key_ids};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_list_v2(&text);
    let _ = pubring_key_ids(&text);
    let (entries, _) = parse_allpingers(&text, &["ours"]);
    for entry in entries {
        for (_, url) in &entry.source.files {
            assert!(url.starts_with("http://") || url.starts_with("https://"), "{url}");
        }
    }
});
