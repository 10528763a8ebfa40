//! A raw mail from the mailbox, classified and recorded as the ingester does it
//! (`app::ingest::process`): parsing, the tag, decryption of a return, bounces, replies,
//! downtime announcements. It must never panic, whatever the bytes.
#![no_main]

use std::sync::{Mutex, OnceLock};

use fathometer::app::ingest::process;
use fathometer::ingest::RawMail;
use fathometer::matching::MatchContext;
use fathometer::model::Identity;
use fathometer::store::Store;
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_764_547_200;

fn store() -> &'static Mutex<Store> {
    static STORE: OnceLock<Mutex<Store>> = OnceLock::new();
    STORE.get_or_init(|| Mutex::new(Store::open_in_memory().expect("an in-memory store")))
}

fuzz_target!(|data: &[u8]| {
    let identity = Identity {
        address: "pinger@p.example".to_owned().try_into().expect("an address"),
        delimiter: "+".to_owned().try_into().expect("a delimiter"),
        name: "fathometer".into(),
    };
    let ctx = MatchContext { secret: &[7u8; 32], identity: &identity };
    let mail = RawMail {
        bytes: data.to_vec(),
        size: None,
        delivered_at: Some(NOW),
        source: "fuzz".into(),
    };
    let _ = process(store(), &ctx, &mail, NOW);
});
