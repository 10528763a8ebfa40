use proptest::prelude::*;

use super::*;
use crate::model::caps::*;
use crate::model::*;

fn reply_body(name: &str) -> String {
    let path = format!("{}/tests/vectors/mixmaster/replies/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.split_once("\n\n").map(|(_, b)| b.to_owned()).unwrap()
}

/// 2026-11-21, the day the vectors were made.
const NOW: i64 = 1_795_219_200;

#[test]
fn conf_reply_gives_type_caps_and_vouched_remailers() {
    let body = reply_body("testmix3.remailer-conf.eml");
    let f = read_reply(RequestKind::Conf, "testmix3@localhost", &body, NOW).unwrap();
    assert_eq!(f.remailer_type.as_deref(), Some("Mixmaster 3.0.2d"));
    let caps = f.caps.unwrap();
    assert_eq!(caps.nick, "testmix3");
    assert_eq!(caps.address, "testmix3@localhost");
    assert!(caps.has("mix") && caps.has("pgponly") && !caps.is_testing());
    assert!(!caps.accepts_clear());
    assert_eq!(supported_types(&caps), vec![PingType::Mix, PingType::CpunkRsa, PingType::CpunkDsa]);
    assert!(caps.line.starts_with("$remailer{\"testmix3\"} = \"<testmix3@localhost> cpunk"));
    let vouched: Vec<&str> = f.candidates.iter().map(|c| c.address.as_str()).collect();
    // Its own line in the list is not a vouch for itself.
    assert_eq!(vouched, ["testmix1@localhost", "testmix2@localhost", "testmix4@localhost"]);
    assert!(f.candidates.iter().all(|c| c.reason == CandidateReason::VouchedType2));
    assert!(f.problems.is_empty(), "{:?}", f.problems);
}

#[test]
fn key_reply_gives_the_mix_and_dsa_keys_of_the_asked_address() {
    let body = reply_body("testmix1.remailer-key.eml");
    let f = read_reply(RequestKind::Key, "testmix1@localhost", &body, NOW).unwrap();
    let types: Vec<PingType> = f.keys.iter().map(|k| k.ping_type).collect();
    assert!(types.contains(&PingType::Mix) && types.contains(&PingType::CpunkDsa), "{types:?}");
    let mix = f.keys.iter().find(|k| k.ping_type == PingType::Mix).unwrap();
    assert_eq!(mix.key_id, "400c909fdd158b5b69ca52eef13b1d60");
    assert!(mix.material.contains("-----Begin Mix Key-----"));
    assert!(f.complete_key_types.contains(&PingType::Mix));
    assert_eq!(f.caps.unwrap().nick, "testmix1");
    // Asked at another address, the same reply yields nothing for it but a candidate.
    let other = read_reply(RequestKind::Key, "old@localhost", &body, NOW).unwrap();
    assert!(other.keys.is_empty());
    assert_eq!(
        other.candidates,
        [Candidate { address: "testmix1@localhost".into(), reason: CandidateReason::SelfKey }]
    );
}

#[test]
fn a_4096_bit_key_reply_parses() {
    let body = reply_body("testmix3.remailer-key.eml");
    let f = read_reply(RequestKind::Key, "testmix3@localhost", &body, NOW).unwrap();
    let mix = f.keys.iter().find(|k| k.ping_type == PingType::Mix).unwrap();
    assert_eq!(mix.key_id, "bb772a6974ab33b6306264b52ec375ba");
}

#[test]
fn stats_help_adminkey_replies_are_kept_as_they_are() {
    for name in ["testmix1.remailer-stats.eml", "testmix1.remailer-adminkey.eml"] {
        let f =
            read_reply(RequestKind::Stats, "testmix1@localhost", &reply_body(name), NOW).unwrap();
        assert_eq!(f, Findings::default());
    }
    assert!(read_reply(RequestKind::Help, "a@b", "  \n", NOW).unwrap_err().contains("empty"));
}

#[test]
fn not_a_remailer_is_recognised_in_any_reply() {
    for kind in RequestKind::ALL {
        let f = read_reply(kind, "a@b", "\n  Not a remailer, please stop.\n", NOW).unwrap();
        assert!(f.not_a_remailer);
    }
}

#[test]
fn conf_reply_for_another_address_only_names_a_candidate() {
    let body = reply_body("testmix3.remailer-conf.eml");
    let f = read_reply(RequestKind::Conf, "old-address@localhost", &body, NOW).unwrap();
    assert!(f.caps.is_none());
    assert_eq!(f.candidates[0].address, "testmix3@localhost");
    assert_eq!(f.candidates[0].reason, CandidateReason::SelfConf);
    assert!(f.problems[0].contains("instead of"));
}

#[test]
fn malformed_replies_are_refused_with_a_reason() {
    let no_caps = read_reply(RequestKind::Conf, "a@b", "Remailer-Type: x\nhello\n", NOW);
    assert!(no_caps.unwrap_err().contains("capability line"));
    let bad_nick = "$remailer{\"has space\"} = \"<a@b> mix\";\n";
    assert!(read_reply(RequestKind::Conf, "a@b", bad_nick, NOW).is_err());
    let bad_addr = "$remailer{\"x\"} = \"<a@b@c> mix\";\n";
    assert!(read_reply(RequestKind::Conf, "a@b", bad_addr, NOW).is_err());
    let tampered = reply_body("testmix1.remailer-key.eml").replace("AAS7k356", "AAS7k357");
    let err = read_reply(RequestKind::Key, "testmix1@localhost", &tampered, NOW);
    // The DSA key is still good, so the reply is accepted with the Mix key as a problem.
    let f = err.unwrap();
    assert!(f.keys.iter().all(|k| k.ping_type != PingType::Mix));
    assert!(f.problems.iter().any(|p| p.contains("does not match")), "{:?}", f.problems);
    let nothing = read_reply(RequestKind::Key, "a@b", "no keys here\n", NOW);
    assert!(nothing.unwrap_err().contains("without a usable key"));
}

#[test]
fn expired_keys_are_skipped() {
    let body = reply_body("testmix1.remailer-key.eml");
    let after_expiry = 2_426_025_600; // 2046-11-18
    let f = read_reply(RequestKind::Key, "testmix1@localhost", &body, after_expiry).unwrap();
    assert!(f.keys.iter().all(|k| k.ping_type != PingType::Mix));
    assert!(f.problems.iter().any(|p| p.contains("expired")), "{:?}", f.problems);
}

#[test]
fn signed_replies_are_unescaped() {
    let body = reply_body("testmix1.remailer-key.eml");
    let signed: String = body
        .lines()
        .map(|l| if l.starts_with('-') { format!("- {l}\n") } else { format!("{l}\n") })
        .collect();
    let f = read_reply(RequestKind::Key, "testmix1@localhost", &signed, NOW).unwrap();
    assert!(f.keys.iter().any(|k| k.ping_type == PingType::Mix));
}

#[test]
fn testing_and_clear_capabilities() {
    let caps = parse_caps_line("$remailer{\"t\"} = \"<t@x> cpunk mix testing\";").unwrap();
    assert!(caps.is_testing() && caps.accepts_clear());
    assert!(says_testing(&caps.line));
    assert!(!says_testing("$remailer{\"t\"} = \"<t@x> cpunk mix\";"));
    let hostile = parse_caps_line("$remailer{\"<script>alert(1)</script>\"} = \"<e@x> mix\";");
    assert_eq!(hostile.unwrap().nick, "<script>alert(1)</script>");
}

#[test]
fn supported_lists_are_bounded_and_stop_at_the_first_foreign_line() {
    let mut body = String::from("$remailer{\"a\"} = \"<a@x> mix\";\n\n");
    body.push_str("SUPPORTED MIXMASTER (TYPE II) REMAILERS\n");
    for i in 0..500 {
        body.push_str(&format!("n{i} n{i}@x 0123 2:3.0 C\n"));
    }
    body.push_str("end of list\nlate late@x 0 2 C\n");
    let f = read_reply(RequestKind::Conf, "a@x", &body, NOW).unwrap();
    assert_eq!(f.candidates.len(), MAX_CANDIDATES_PER_REPLY);
    assert!(f.candidates.iter().all(|c| c.address != "late@x"));
    let type1 = "$remailer{\"a\"} = \"<a@x> cpunk\";\nSUPPORTED CPUNK (TYPE I) REMAILERS\n\
                 0xDC7532F9\t\"Name <b@y>\"\n";
    let f = read_reply(RequestKind::Conf, "a@x", type1, NOW).unwrap();
    assert_eq!(
        f.candidates,
        [Candidate { address: "b@y".into(), reason: CandidateReason::VouchedType1 }]
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_replies_never_panic(body in ".{0,400}", kind in 0usize..5) {
        let _ = read_reply(RequestKind::ALL[kind], "a@b", &body, NOW);
    }

    #[test]
    fn mutated_vector_replies_never_panic(
        name in prop::sample::select(vec![
            "testmix1.remailer-conf.eml",
            "testmix1.remailer-key.eml",
            "testmix3.remailer-key.eml",
        ]),
        cuts in prop::collection::vec((0usize..8000, any::<u8>()), 1..8),
    ) {
        let mut bytes = reply_body(name).into_bytes();
        for (at, b) in cuts {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] = b;
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        for kind in RequestKind::ALL {
            let _ = read_reply(kind, "testmix1@localhost", &text, NOW);
        }
    }
}

/// The replies of a real YAMN 0.2.7 remailer (the YAMN vectors, day 20789 = 2026-12-02).
#[test]
fn yamn_replies_give_the_v2_caps_the_vouched_remailers_and_the_yamn_key() {
    let read = |name: &str| {
        let path = format!("{}/tests/vectors/yamn/replies/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.split_once("\n\n").map(|(_, b)| b.to_owned()).unwrap()
    };
    let day = 20_789 * 86_400 + 3_600;
    let conf = read_reply(
        RequestKind::Conf,
        "yamn1@localhost",
        &read("remailer-conf.yamn1.reply.eml"),
        day,
    )
    .unwrap();
    assert_eq!(conf.remailer_type.as_deref(), Some("Mixmaster 0.2.7"));
    let caps = conf.caps.unwrap();
    assert_eq!((caps.nick.as_str(), caps.address.as_str()), ("yamn1", "yamn1@localhost"));
    assert!(caps.has("v2") && !caps.has("mix"), "YAMN says v2, not mix: {}", caps.line);
    let vouched: Vec<&str> = conf.candidates.iter().map(|c| c.address.as_str()).collect();
    assert_eq!(vouched, ["yamn2@localhost", "yamn3@localhost", "yamn4@localhost"]);
    let middle = read_reply(
        RequestKind::Conf,
        "yamn4@localhost",
        &read("remailer-conf.yamn4.reply.eml"),
        day,
    )
    .unwrap();
    assert!(middle.caps.unwrap().has("middle"));
    let key =
        read_reply(RequestKind::Key, "yamn1@localhost", &read("remailer-key.yamn1.reply.eml"), day)
            .unwrap();
    assert_eq!(key.keys.len(), 1, "{:?}", key.problems);
    assert_eq!(key.keys[0].ping_type, PingType::Yamn);
    assert_eq!(key.keys[0].key_id, "c2369176c09334e1c78b7ba2b00361a6");
    assert_eq!(key.complete_key_types, [PingType::Yamn]);
    // After 2026-12-16 the key has expired: refused with the reason.
    let late = read_reply(
        RequestKind::Key,
        "yamn1@localhost",
        &read("remailer-key.yamn1.reply.eml"),
        20_805 * 86_400,
    );
    assert!(late.is_err_and(|e| e.contains("expired")));
    for kind in [RequestKind::Help, RequestKind::Adminkey] {
        let name = format!("remailer-{kind}.yamn1.reply.eml");
        assert!(read_reply(kind, "yamn1@localhost", &read(&name), day).is_ok(), "{name}");
    }
}
