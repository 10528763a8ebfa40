//! The ingester's verdicts on genuine, altered, replayed, forged and random mail, against an
//! in-memory store. The payloads are real (built and encrypted by the sender); the remailer's
//! part is played by stripping the `::` layer as a cpunk-clear remailer would.

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::compose::{HopSpec, PingSpec, build_ping};
use crate::model::{DueSinglePing, Identity, PingType, RequestKind};

const SECRET: &[u8] = &[9u8; 32];
const NOW: i64 = 1_800_000_000;

fn identity() -> Identity {
    Identity {
        address: "pinger@p.example".to_owned().try_into().unwrap(),
        delimiter: "+".to_owned().try_into().unwrap(),
        name: "fathometer".into(),
    }
}

/// A store with one sent cpunk-clear ping; returns it with the return mail a remailer would
/// deliver for it.
fn sent_ping() -> (Store, String) {
    let mut store = Store::open_in_memory().unwrap();
    store.add_remailer("r@x.example", 0).unwrap();
    let key = store.upsert_key("r@x.example", PingType::CpunkClear, "none", 0).unwrap();
    store.queue_single_pings(&[DueSinglePing { key_row_id: key, slot_time: NOW }], NOW).unwrap();
    let ping = store.outbox_due(NOW, 10).unwrap().remove(0);
    let tag = "abcdefghijklmnop";
    store.begin_attempt(ping.id, tag, false).unwrap();
    store.mark_sent(ping.id, NOW).unwrap();
    let spec = PingSpec {
        id: ping.id,
        hops: vec![HopSpec {
            address: "r@x.example".into(),
            ping_type: PingType::CpunkClear,
            key_id: "none".into(),
            material: None,
        }],
        with_from: false,
    };
    let built =
        build_ping(&spec, SECRET, &identity(), tag, NOW, &mut StdRng::seed_from_u64(1)).unwrap();
    let message = String::from_utf8(built.outgoing.message).unwrap();
    // What the remailer delivers: our payload, below its own headers.
    let armour_start = message.find("-----BEGIN PGP MESSAGE-----").unwrap();
    let mail = format!(
        "Delivered-To: pinger+{tag}@p.example\nFrom: Anonymous <nobody@x.example>\n\
         To: pinger+{tag}@p.example\nSubject: hi\n\n{}",
        &message[armour_start..]
    );
    (store, mail)
}

fn ingest(store: &mut Store, mail: &[u8]) -> Processed {
    let identity = identity();
    let ctx = MatchContext { secret: SECRET, identity: &identity };
    let raw = RawMail {
        bytes: mail.to_vec(),
        size: None,
        delivered_at: Some(NOW + 60),
        source: "test".into(),
    };
    // The store is lent to a mutex for the call and taken back.
    let shared = Mutex::new(std::mem::replace(store, Store::open_in_memory().unwrap()));
    let processed = process(&shared, &ctx, &raw, NOW + 120).unwrap();
    *store = shared.into_inner().unwrap();
    processed
}

#[test]
fn a_genuine_return_counts_once_and_a_second_copy_is_a_duplicate() {
    let (mut store, mail) = sent_ping();
    let first = ingest(&mut store, mail.as_bytes());
    assert_eq!((first.kind, first.disposition), (MailKind::Returned, Disposition::Processed));
    // The same bytes again (re-read after a crash): recognised, nothing changes.
    let again = ingest(&mut store, mail.as_bytes());
    assert!(!again.newly_recorded);
    // Another copy (a replay through another MTA hop): a duplicate.
    let copy = format!("Received: from elsewhere\n{mail}");
    assert_eq!(ingest(&mut store, copy.as_bytes()).kind, MailKind::Duplicate);
    let d = crate::stats::window::dataset(store.history(0, NOW + 1000).unwrap(), NOW + 1000);
    assert_eq!(d.remailers[0].pings[0].returned, Some(NOW + 60), "latency ends at delivery");
    assert_eq!(d.returns["r@x.example"].duplicate, 1);
}

#[test]
fn a_payload_sent_to_another_tag_is_forged() {
    let (mut store, mail) = sent_ping();
    let moved = mail.replace("pinger+abcdefghijklmnop", "pinger+zzzzzzzzzzzzzzzz");
    let p = ingest(&mut store, moved.as_bytes());
    assert_eq!(p.kind, MailKind::Forged);
    assert_eq!(p.disposition, Disposition::Quarantined);
}

fn vector_reply(name: &str) -> String {
    let path = format!("{}/tests/vectors/mixmaster/replies/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

/// A store that asked testmix1 for `kind` under tag `tag`; returns the reply mail to it.
fn asked(store: &mut Store, kind: RequestKind, tag: &str, vector: &str) -> String {
    store.add_remailer("testmix1@localhost", 0).ok();
    let id = store.find_remailer("testmix1@localhost").unwrap().id;
    let due = crate::model::DueRequest { remailer_id: id, kind, slot_time: NOW };
    store.queue_request(&due, true, tag, NOW).unwrap();
    let request = store.requests_due(NOW, 10).unwrap().into_iter().find(|r| r.tag == tag).unwrap();
    store.mark_request_sent(request.id, NOW, 5).unwrap();
    vector_reply(vector).replace("To: vecreq@localhost", &format!("To: pinger+{tag}@p.example"))
}

#[test]
fn replies_to_our_requests_teach_capabilities_and_keys() {
    let mut store = Store::open_in_memory().unwrap();
    let conf =
        asked(&mut store, RequestKind::Conf, "confconfconfconf", "testmix1.remailer-conf.eml");
    let p = ingest(&mut store, conf.as_bytes());
    assert_eq!((p.kind, p.disposition), (MailKind::Reply, Disposition::Processed));
    let r = store.find_remailer("testmix1@localhost").unwrap();
    assert_eq!(r.nick.as_deref(), Some("testmix1"));
    assert_eq!(r.remailer_type.as_deref(), Some("Mixmaster 3.0.2d"));
    assert!(r.caps.unwrap().contains(" mix "));
    assert!(r.last_answer_at.is_some());
    let key = asked(&mut store, RequestKind::Key, "keykeykeykeykeyk", "testmix1.remailer-key.eml");
    assert_eq!(ingest(&mut store, key.as_bytes()).kind, MailKind::Reply);
    let r = store.find_remailer("testmix1@localhost").unwrap();
    let mut types: Vec<PingType> = r.keys.iter().map(|k| k.ping_type).collect();
    types.sort();
    assert_eq!(types, [PingType::Mix, PingType::CpunkDsa]);
    assert_eq!(store.replies_of(r.id).unwrap().len(), 2);
    assert_eq!(store.key_history(r.id).unwrap().len(), 2);
    // The same reply sent to no request of ours, or to a ping tag, teaches nothing.
    let stray = vector_reply("testmix1.remailer-conf.eml");
    let p = ingest(&mut store, stray.as_bytes());
    assert_eq!((p.kind, p.disposition), (MailKind::Unknown, Disposition::Quarantined));
    assert!(p.detail.unwrap().contains("no request of ours"));
}

#[test]
fn a_broken_reply_is_quarantined_and_changes_nothing() {
    let mut store = Store::open_in_memory().unwrap();
    let conf =
        asked(&mut store, RequestKind::Conf, "brokenbrokenbrok", "testmix1.remailer-conf.eml")
            .replace("$remailer{", "$remailer[");
    let p = ingest(&mut store, conf.as_bytes());
    assert_eq!((p.kind, p.disposition), (MailKind::Unknown, Disposition::Quarantined));
    assert!(p.detail.unwrap().contains("capability line"));
    assert!(store.find_remailer("testmix1@localhost").unwrap().caps.is_none());
}

#[test]
fn strangers_are_classified_with_a_reason() {
    let (mut store, _) = sent_ping();
    let spam = ingest(&mut store, b"To: someone@else.example\nSubject: buy\n\nnow");
    assert_eq!(spam.kind, MailKind::Unknown);
    assert!(spam.detail.unwrap().contains("not addressed"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_mail_never_panics_and_is_never_a_return(
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        addressed in any::<bool>(),
    ) {
        let (mut store, _) = sent_ping();
        let mut mail = if addressed {
            b"Delivered-To: pinger+abcdefghijklmnop@p.example\n\n".to_vec()
        } else {
            Vec::new()
        };
        mail.extend_from_slice(&bytes);
        let p = ingest(&mut store, &mail);
        prop_assert!(p.kind != MailKind::Returned && p.kind != MailKind::Duplicate);
        if p.disposition == Disposition::Quarantined {
            prop_assert!(p.detail.is_some_and(|d| !d.is_empty()));
        }
    }

    #[test]
    fn an_altered_body_is_never_a_return(pos in 0usize..10_000, delta in 1u8..=255) {
        let (mut store, mail) = sent_ping();
        let body_start = mail.find("-----BEGIN PGP MESSAGE-----").unwrap() + 30;
        let body_end = mail.find("-----END PGP MESSAGE-----").unwrap();
        let mut bytes = mail.into_bytes();
        let i = body_start + pos % (body_end - body_start);
        let original = bytes[i];
        bytes[i] = original.wrapping_add(delta);
        // Line breaks and whitespace inside base64 are not data.
        prop_assume!(!original.is_ascii_whitespace() && !bytes[i].is_ascii_whitespace());
        let p = ingest(&mut store, &bytes);
        prop_assert!(
            p.kind != MailKind::Returned,
            "altered byte {} ({:?} -> {:?}) still counted", i, original as char, bytes[i] as char
        );
    }
}

/// The mail a remailer delivers for a replay probe: our sealed payload below its headers
/// (`message_id` tells two deliveries of the same packet apart, as a real remailer's
/// differ).
fn probe_copy(id: i64, tag: &str, secret: &[u8], message_id: &str) -> String {
    use crate::compose::openpgp;
    use crate::compose::payload::{self, Hop, PayloadFields, PayloadKind};
    let fields = PayloadFields {
        kind: PayloadKind::ReplayProbe,
        id,
        hops: vec![Hop {
            address: "r@x.example".into(),
            ping_type: PingType::Mix,
            key_id: "k".into(),
        }],
        with_from: false,
        sent: NOW - 700,
        tag: tag.to_owned(),
    };
    let text = payload::render(&fields, secret, &mut StdRng::seed_from_u64(3));
    let armoured = openpgp::encrypt_symmetric_salted(
        payload::payload_password(secret).as_bytes(),
        payload::payload_salt(secret, tag),
        text.as_bytes(),
        fields.sent,
    )
    .unwrap();
    format!(
        "Delivered-To: pinger+{tag}@p.example\nFrom: Anonymous <nobody@x.example>\n\
         To: pinger+{tag}@p.example\nMessage-ID: <{message_id}@x.example>\n\n{armoured}"
    )
}

#[test]
fn a_replay_probe_counts_its_copies_never_as_pings_and_two_copies_are_a_replay() {
    use crate::model::{ProbeCopy, ProbeVerdict};
    let mut store = Store::open_in_memory().unwrap();
    store.add_remailer("r@x.example", 0).unwrap();
    let key = store.upsert_key("r@x.example", PingType::Mix, "k", 0).unwrap();
    let tag = "probeprobeprobea";
    let id = store.create_replay_probe(key, tag, false, NOW - 700).unwrap();

    // The first copy is due at once; its message is kept; the second waits for the gap and
    // carries the very same bytes.
    let due = store.probes_due(NOW - 700, 600).unwrap();
    assert_eq!((due.len(), due[0].copy, due[0].message.is_none()), (1, ProbeCopy::First, true));
    store.keep_probe_message(id, "pinger+x@p.example", "r@x.example", b"the packet").unwrap();
    store.keep_probe_message(id, "pinger+x@p.example", "r@x.example", b"rebuilt").unwrap();
    store.probe_sent(id, ProbeCopy::First, NOW - 700).unwrap();
    assert!(store.probes_due(NOW - 200, 600).unwrap().is_empty(), "inside the gap");
    let second = store.probes_due(NOW - 100, 600).unwrap().remove(0);
    assert_eq!(second.copy, ProbeCopy::Second);
    assert_eq!(second.message.as_ref().unwrap().2, b"the packet", "byte for byte, kept once");
    store.probe_sent(id, ProbeCopy::Second, NOW - 100).unwrap();
    assert!(store.probes_due(NOW, 600).unwrap().is_empty());

    // A forged copy (another secret) changes nothing.
    let forged = probe_copy(id, tag, &[1u8; 32], "f");
    assert_eq!(ingest(&mut store, forged.as_bytes()).kind, MailKind::Forged);
    assert_eq!(store.replay_probe(id).unwrap().unwrap().returns, 0);

    let first = probe_copy(id, tag, SECRET, "one");
    assert_eq!(ingest(&mut store, first.as_bytes()).kind, MailKind::Probe);
    // Our own mailbox showing the same mail again is not a replay.
    let again = ingest(&mut store, first.as_bytes());
    assert!(!again.newly_recorded);
    let row = store.replay_probe(id).unwrap().unwrap();
    assert_eq!((row.returns, row.verdict), (1, ProbeVerdict::Pending));

    // The remailer delivers the packet a second time.
    let replayed = probe_copy(id, tag, SECRET, "two");
    assert_eq!(ingest(&mut store, replayed.as_bytes()).kind, MailKind::Probe);
    let row = store.replay_probe(id).unwrap().unwrap();
    assert_eq!((row.returns, row.verdict), (2, ProbeVerdict::Replayed));
    let status = store.replay_statuses().unwrap().remove("r@x.example").unwrap();
    assert!(status.is_broken());
    assert_eq!(status.replayed, 1);

    // Neither copy is a ping or a return of one.
    let rows = store.history(0, NOW + 1000).unwrap();
    assert!(rows.singles.is_empty() && rows.chains.is_empty());
    assert!(store.return_counters(0).unwrap().is_empty());
}

#[test]
fn a_probe_with_one_copy_back_is_protected_only_after_the_wait_and_none_back_is_inconclusive() {
    use crate::model::{ProbeCopy, ProbeVerdict};
    let mut store = Store::open_in_memory().unwrap();
    store.add_remailer("r@x.example", 0).unwrap();
    let key = store.upsert_key("r@x.example", PingType::Mix, "k", 0).unwrap();
    let one = store.create_replay_probe(key, "probeprobeprobeb", false, NOW - 700).unwrap();
    let none = store.create_replay_probe(key, "probeprobeprobec", true, NOW - 700).unwrap();
    for id in [one, none] {
        store.probe_sent(id, ProbeCopy::First, NOW - 700).unwrap();
        store.probe_sent(id, ProbeCopy::Second, NOW - 100).unwrap();
    }
    let copy = probe_copy(one, "probeprobeprobeb", SECRET, "one");
    assert_eq!(ingest(&mut store, copy.as_bytes()).kind, MailKind::Probe);
    assert!(store.settle_replay_probes(3600, NOW).unwrap().is_empty(), "still waiting");
    let decided = store.settle_replay_probes(3600, NOW + 3500).unwrap();
    let verdicts: Vec<(i64, ProbeVerdict)> = decided.iter().map(|p| (p.id, p.verdict)).collect();
    assert_eq!(verdicts.len(), 2);
    assert!(verdicts.contains(&(one, ProbeVerdict::Protected)));
    assert!(verdicts.contains(&(none, ProbeVerdict::Inconclusive)));
    let status = store.replay_statuses().unwrap().remove("r@x.example").unwrap();
    assert_eq!(status.verdict, Some(ProbeVerdict::Protected));
    assert!(!status.is_broken());
    // The manual probe does not move the weekly schedule.
    assert_eq!(store.last_scheduled_probes().unwrap().get("r@x.example"), Some(&(NOW - 700)));
}
