//! The benchmarks' workload: N remailers, each with 12 days of 2-hourly pings of two types
//! (mix and cpunk-rsa, random reliability 50–100 %, latencies 1 min–4 h), and every ordered
//! pair of remailers in both chain families pinged weekly.

#![allow(dead_code)]

use rand::{Rng, SeedableRng, rngs::StdRng};

use fathometer::model::{
    ChainPing, ChainType, Dataset, ImportedChain, ImportedPing, Ping, PingType, RemailerHistory,
    RemailerInfo,
};
use fathometer::store::Store;

pub const NOW: i64 = 1_800_000_000;
pub const DAY: i64 = 86_400;

pub fn dataset(n: usize) -> Dataset {
    let mut rng = StdRng::seed_from_u64(n as u64);
    let types = [PingType::Mix, PingType::CpunkRsa];
    let remailers: Vec<RemailerHistory> = (0..n)
        .map(|i| {
            let reliability: f64 = rng.gen_range(0.5..1.0);
            let mut pings = Vec::new();
            for t in types {
                let offset = rng.gen_range(0..7200);
                for slot in 0..(12 * 12) {
                    let sent = NOW - 12 * DAY + 1 + offset + slot * 7200;
                    let returned = (rng.gen_bool(reliability))
                        .then(|| sent + rng.gen_range(60..4 * 3600))
                        .filter(|&r| r <= NOW);
                    pings.push(Ping { ping_type: t, sent, returned, failed: None });
                }
            }
            let nick = format!("r{i:03}");
            RemailerHistory {
                caps: Some(format!("$remailer{{\"{nick}\"}} = \"<{nick}@x.example> cpunk mix\";")),
                address: format!("{nick}@x.example"),
                nick: Some(nick),
                hidden: false,
                key_types: types.to_vec(),
                pings,
            }
        })
        .collect();
    let mut chains = Vec::new();
    for chain_type in ChainType::ALL {
        for a in &remailers {
            for b in &remailers {
                if a.address == b.address {
                    continue;
                }
                // Weekly: two pings in the 12-day window.
                for week in 0..2 {
                    let sent = NOW - rng.gen_range(1..7 * DAY) - week * 7 * DAY;
                    let returned = rng.gen_bool(0.7).then(|| sent + rng.gen_range(600..6 * 3600));
                    chains.push(ChainPing {
                        chain_type,
                        addr1: a.address.clone(),
                        addr2: b.address.clone(),
                        sent,
                        returned: returned.filter(|&r| r <= NOW),
                        failed: None,
                    });
                }
            }
        }
    }
    Dataset { remailers, chains, ..Default::default() }
}

pub fn store_with(data: &Dataset) -> Store {
    let mut store = Store::open_in_memory().expect("in-memory store");
    import_into(&mut store, data);
    store
}

/// Imports the dataset into a store, as `fathometer import-pings` would.
pub fn import_into(store: &mut Store, data: &Dataset) {
    let infos: Vec<RemailerInfo> = data
        .remailers
        .iter()
        .map(|r| RemailerInfo {
            address: r.address.clone(),
            nick: r.nick.clone(),
            caps: r.caps.clone(),
            hidden: false,
        })
        .collect();
    let pings: Vec<ImportedPing> = data
        .remailers
        .iter()
        .flat_map(|r| {
            r.pings.iter().map(|p| ImportedPing {
                address: r.address.clone(),
                ping_type: p.ping_type,
                key_id: None,
                sent: p.sent,
                returned: p.returned,
            })
        })
        .collect();
    let chains: Vec<ImportedChain> = data
        .chains
        .iter()
        .map(|c| ImportedChain {
            chain_type: c.chain_type,
            addr1: c.addr1.clone(),
            addr2: c.addr2.clone(),
            sent: c.sent,
            returned: c.returned,
        })
        .collect();
    store.import(&infos, &pings, &chains, NOW).expect("import");
}
