use super::encrypt::*;
use super::sealed::*;
use super::*;
use proptest::prelude::*;

/// The tests' own clock (the library reads none).
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

const PASSWORD: &[u8] = b"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn sealed(plaintext: &[u8]) -> String {
    encrypt_symmetric(PASSWORD, plaintext, now()).expect("encrypt_symmetric")
}

/// Indices (into the armoured text) of every base64 body character, CRC line excluded.
fn body_char_positions(armored: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut in_body = false;
    for line in armored.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if in_body && !trimmed.starts_with('=') && !trimmed.starts_with("-----") {
            out.extend(trimmed.char_indices().filter(|(_, c)| *c != '=').map(|(i, _)| offset + i));
        }
        if trimmed.is_empty() {
            in_body = true;
        }
        offset += line.len();
    }
    out
}

fn flip(armored: &str, pos: usize) -> String {
    let mut bytes = armored.as_bytes().to_vec();
    bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ascii")
}

#[test]
fn symmetric_round_trip_in_mail_body() {
    let plaintext = b"ping 1234\nline two\n\x00\xffbinary";
    let armored = sealed(plaintext);
    assert!(armored.starts_with("-----BEGIN PGP MESSAGE-----\n\n"), "{armored}");
    assert!(!armored.contains("Version:") && !armored.contains("Comment:"));
    let body = format!(
        "Some prose before.\r\n\r\n{}\r\nand after\r\n",
        armored.replace('\n', "\r\n").trim_end()
    );
    assert_eq!(decrypt_symmetric(PASSWORD, body.as_bytes()).expect("decrypt"), plaintext);
    assert_eq!(decrypt_symmetric(PASSWORD, armored.as_bytes()).expect("decrypt"), plaintext);
    assert_eq!(decrypt_symmetric(PASSWORD, sealed(b"").as_bytes()).expect("empty"), b"");
}

#[test]
fn symmetric_uses_small_s2k_and_no_esk() {
    let armored = sealed(b"x");
    let block = next_armor_block(armored.as_bytes(), MESSAGE_BLOCK, 0).expect("armour");
    let binary = block.data.expect("decodes");
    // SKESK: new CTB tag 3 (0xc3), len 13, v4, AES256 (9), S2K 3, SHA256 (8), salt, count
    // 0x60 = 65536 bytes.
    assert_eq!(&binary[..6], &[0xc3, 13, 4, 9, 3, 8]);
    assert_eq!(binary[14], 0x60);
}

#[test]
fn wrong_password_is_wrong_key() {
    let armored = sealed(b"hello");
    let other = b"ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    assert!(matches!(decrypt_symmetric(other, armored.as_bytes()), Err(DecryptError::WrongKey)));
    let forged = encrypt_symmetric(other, b"forged", now()).expect("encrypt");
    assert!(matches!(decrypt_symmetric(PASSWORD, forged.as_bytes()), Err(DecryptError::WrongKey)));
}

#[test]
fn unencrypted_message_is_wrong_key() {
    let mut sink = armor::Writer::new(Vec::new(), armor::Kind::Message).expect("armor");
    {
        let message = Message::new(&mut sink);
        let mut literal = LiteralWriter::new(message).build().expect("literal");
        literal.write_all(b"not encrypted").expect("write");
        literal.finalize().expect("finalize");
    }
    let armored = sink.finalize().expect("armor");
    assert!(matches!(decrypt_symmetric(PASSWORD, &armored), Err(DecryptError::WrongKey)));
}

#[test]
fn flipped_base64_is_damaged_everywhere() {
    // Long enough for several body lines.
    let plaintext: Vec<u8> = (0..400u32).map(|i| (i * 7 % 251) as u8).collect();
    let armored = sealed(&plaintext);
    let positions = body_char_positions(&armored);
    assert!(positions.len() > 300);
    let mut tried = 0;
    for (n, &pos) in positions.iter().enumerate() {
        // First line (SKESK), every 13th char, and all of the last two lines.
        if n < 64 || n % 13 == 0 || n + 130 > positions.len() {
            let damaged = flip(&armored, pos);
            match decrypt_symmetric(PASSWORD, damaged.as_bytes()) {
                Err(DecryptError::Damaged(_)) => {}
                other => panic!("flip at {pos}: {other:?}"),
            }
            tried += 1;
        }
    }
    assert!(tried > 150);
    // The CRC line itself.
    let crc_pos = armored.find("\n=").expect("crc line") + 2;
    assert!(matches!(
        decrypt_symmetric(PASSWORD, flip(&armored, crc_pos).as_bytes()),
        Err(DecryptError::Damaged(_))
    ));
}

#[test]
fn flipped_without_crc_is_damaged_after_session_key() {
    // Without the CRC line, damage past the SKESK must still be Damaged (MDC / parse).
    let plaintext: Vec<u8> = (0..300u32).map(|i| (i % 256) as u8).collect();
    let armored = sealed(&plaintext);
    let no_crc: String =
        armored.lines().filter(|l| !l.starts_with('=')).map(|l| format!("{l}\n")).collect();
    assert_eq!(decrypt_symmetric(PASSWORD, no_crc.as_bytes()).expect("no crc ok"), plaintext);
    let positions = body_char_positions(&no_crc);
    // Skip the SKESK (first 20 base64 chars = 15 bytes) and the SEIPD header/IV region:
    // damage there is indistinguishable from another password without a CRC.
    for &pos in positions.iter().skip(60).step_by(11) {
        match decrypt_symmetric(PASSWORD, flip(&no_crc, pos).as_bytes()) {
            Err(DecryptError::Damaged(_)) => {}
            other => panic!("flip at {pos}: {other:?}"),
        }
    }
}

#[test]
fn truncated_armour_is_damaged() {
    // Incompressible, so the armour has many lines.
    let plaintext: Vec<u8> =
        (0..600u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let armored = sealed(&plaintext);
    let lines: Vec<&str> = armored.lines().collect();
    // Cut off: no END line.
    for keep in [3, lines.len() / 2, lines.len() - 2, lines.len() - 1] {
        let cut = lines[..keep].join("\n");
        assert!(
            matches!(decrypt_symmetric(PASSWORD, cut.as_bytes()), Err(DecryptError::Damaged(_))),
            "keep {keep}"
        );
    }
    // Middle lines lost, END present (CRC catches it).
    let mut missing = lines.clone();
    missing.remove(4);
    let missing = missing.join("\n");
    assert!(matches!(
        decrypt_symmetric(PASSWORD, missing.as_bytes()),
        Err(DecryptError::Damaged(_))
    ));
    // Same without the CRC line: MDC / truncation after the session key opened.
    let no_crc: Vec<&str> =
        lines.iter().copied().filter(|l| !l.starts_with('=')).collect::<Vec<_>>();
    let mut short = no_crc.clone();
    short.remove(no_crc.len() - 3);
    assert!(matches!(
        decrypt_symmetric(PASSWORD, short.join("\n").as_bytes()),
        Err(DecryptError::Damaged(_))
    ));
    // A following armour block before our END.
    let two = format!("{}\n{}", lines[..5].join("\n"), armored);
    assert!(matches!(decrypt_symmetric(PASSWORD, two.as_bytes()), Err(DecryptError::Damaged(_))));
}

#[test]
fn no_message() {
    for text in [
        &b""[..],
        b"hello world, no armour here\n",
        b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n",
        b"\x00\x01\x02\xff\xfe random",
    ] {
        assert!(matches!(decrypt_symmetric(PASSWORD, text), Err(DecryptError::NoMessage)));
    }
}

#[test]
fn garbage_inside_valid_armour_is_not_ours() {
    let mut sink = armor::Writer::new(Vec::new(), armor::Kind::Message).expect("armor");
    sink.write_all(b"\x01\x02\x03 not openpgp at all").expect("write");
    let armored = sink.finalize().expect("armor");
    assert!(matches!(decrypt_symmetric(PASSWORD, &armored), Err(DecryptError::WrongKey)));
}

#[test]
fn expensive_s2k_is_not_tried() {
    // A message with gpg's usual 65 MB S2K count is refused without hashing it.
    let s2k = S2K::new_iterated(HashAlgorithm::SHA256, 0x3e0_0000).expect("s2k");
    let skesk = SKESK4::new(SymmetricAlgorithm::AES256, s2k, None).expect("skesk");
    let mut sink = armor::Writer::new(Vec::new(), armor::Kind::Message).expect("armor");
    {
        let mut message = Message::new(&mut sink);
        Packet::from(skesk).serialize(&mut message).expect("skesk");
        let key = SessionKey::new(32).expect("key");
        let message = Encryptor::with_session_key(message, SymmetricAlgorithm::AES256, key)
            .expect("enc")
            .build()
            .expect("build");
        let mut literal = LiteralWriter::new(message).build().expect("literal");
        literal.write_all(b"x").expect("write");
        literal.finalize().expect("finalize");
    }
    let armored = sink.finalize().expect("armor");
    let started = std::time::Instant::now();
    assert!(matches!(decrypt_symmetric(PASSWORD, &armored), Err(DecryptError::WrongKey)));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// Re-armours a sealed message after `edit` changed its binary form (no CRC line, which
/// our decoder accepts, as a forger would leave it).
fn rearmoured(armored: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let block = next_armor_block(armored.as_bytes(), MESSAGE_BLOCK, 0).expect("block");
    let mut binary = block.data.expect("intact");
    edit(&mut binary);
    let body = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &binary);
    format!("-----BEGIN PGP MESSAGE-----\n\n{body}\n-----END PGP MESSAGE-----\n")
}

#[test]
fn the_coded_count_is_the_one_sequoia_writes() {
    let salt = [9u8; 8];
    let armored = encrypt_symmetric_salted(PASSWORD, salt, b"x", now()).expect("seal");
    let block = next_armor_block(armored.as_bytes(), MESSAGE_BLOCK, 0).expect("block");
    assert_eq!(sealed_header(&block.body), Some(SealedHeader::ours(salt)));
    assert_eq!(decrypt_symmetric_salted(PASSWORD, salt, armored.as_bytes()).unwrap(), b"x");
}

#[test]
fn a_copied_header_with_another_shape_is_refused_unopened() {
    let salt = [3u8; 8];
    let armored = encrypt_symmetric_salted(PASSWORD, salt, b"payload", now()).expect("seal");
    type Edit = fn(&mut Vec<u8>);
    let edits: [(&str, Edit); 4] = [
        // The count that made one return cost 3 ms of hashing per copy.
        ("largest affordable count", |b| b[14] = 0x80),
        ("the maximum count", |b| b[14] = 0xff),
        ("AES-128", |b| b[3] = 7),
        ("a second SKESK", |b| {
            let skesk = b[..15].to_vec();
            b.splice(15..15, skesk);
        }),
    ];
    for (what, edit) in edits {
        let crafted = rearmoured(&armored, edit);
        let started = std::time::Instant::now();
        let result = decrypt_symmetric_salted(PASSWORD, salt, crafted.as_bytes());
        assert!(matches!(result, Err(DecryptError::NotOurs(_))), "{what}: {result:?}");
        assert!(started.elapsed() < std::time::Duration::from_millis(50), "{what}");
    }
    let other_salt = rearmoured(&armored, |b| b[6] ^= 1);
    assert!(matches!(
        decrypt_symmetric_salted(PASSWORD, salt, other_salt.as_bytes()),
        Err(DecryptError::WrongKey)
    ));
}

#[test]
fn an_armour_larger_than_any_payload_is_refused_unopened() {
    let salt = [4u8; 8];
    let armored = encrypt_symmetric_salted(PASSWORD, salt, b"p", now()).expect("seal");
    let padded = rearmoured(&armored, |b| b.extend(std::iter::repeat_n(0u8, 40 * 1024)));
    assert!(matches!(
        decrypt_symmetric_salted(PASSWORD, salt, padded.as_bytes()),
        Err(DecryptError::NotOurs(_))
    ));
}

#[test]
fn oversize_plaintext_is_capped() {
    let big = vec![0u8; MAX_PLAINTEXT + 10];
    let armored = sealed(&big);
    assert!(armored.len() < 64 * 1024, "compressed");
    match decrypt_symmetric(PASSWORD, armored.as_bytes()) {
        Err(DecryptError::Damaged(e)) => assert!(e.contains("exceeds"), "{e}"),
        other => panic!("{:?}", other.map(|v| v.len())),
    }
}

#[test]
fn armour_decoder() {
    assert_eq!(crc24(b""), 0xB704CE);
    assert_eq!(base64_decode(b"SGVsbG8gd29ybGQh").as_deref(), Some(&b"Hello world!"[..]));
    assert_eq!(base64_decode(b"SGk=").as_deref(), Some(&b"Hi"[..]));
    assert_eq!(base64_decode(b"SA==").as_deref(), Some(&b"H"[..]));
    assert_eq!(base64_decode(b"SA=").as_deref(), None);
    assert_eq!(base64_decode(b"S").as_deref(), None);
    assert_eq!(base64_decode(b"S*==").as_deref(), None);
    assert_eq!(base64_decode(b"SB==").as_deref(), None, "non-zero pad bits");
    assert_eq!(base64_decode(b"SGl=").as_deref(), None, "non-zero pad bits");
    // Sequoia's own armour, with a header, decodes and its CRC checks.
    let mut w = armor::Writer::with_headers(Vec::new(), armor::Kind::File, [("Key", "Value")])
        .expect("armor");
    w.write_all(&[7u8; 100]).expect("write");
    let text = w.finalize().expect("armor");
    let block = next_armor_block(&text, "PGP ARMORED FILE", 0).expect("found");
    assert_eq!(block.data.expect("decodes"), vec![7u8; 100]);
}

#[test]
fn user_id_addresses() {
    assert_eq!(
        addr_spec("Test Remailer testmix1 <testmix1@localhost>").as_deref(),
        Some("testmix1@localhost")
    );
    assert_eq!(addr_spec("Remailer@Example.ORG").as_deref(), Some("remailer@example.org"));
    assert_eq!(addr_spec("<a@b> (comment)").as_deref(), Some("a@b"));
    assert_eq!(addr_spec("no address here"), None);
    assert_eq!(addr_spec("Name <not an address>"), None);
    assert_eq!(addr_spec("Name <a@b@c>"), None);
}

#[test]
fn text_mode_line_ends() {
    assert_eq!(canonical_text(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    assert_eq!(canonical_text(b""), b"");
}

#[test]
#[allow(deprecated)]
fn cipher_choice() {
    use SymmetricAlgorithm::*;
    assert_eq!(choose_cipher(None), TripleDES);
    assert_eq!(choose_cipher(Some(&[IDEA])), TripleDES);
    assert_eq!(choose_cipher(Some(&[IDEA, CAST5, TripleDES])), CAST5);
    assert_eq!(choose_cipher(Some(&[CAST5, AES128, TripleDES])), CAST5);
    assert_eq!(choose_cipher(Some(&[AES256, AES192])), AES256);
    assert_eq!(choose_cipher(Some(&[Unknown(99), AES128])), AES128);
    assert_eq!(cipher_name(TripleDES), "3DES");
}

#[test]
fn parse_certs_ignores_non_keys() {
    assert!(parse_certs(b"", now()).is_empty());
    assert!(parse_certs(b"just some text", now()).is_empty());
    let broken =
        b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n";
    let parsed = parse_certs(broken, now());
    assert_eq!(parsed.len(), 1);
    assert!(parsed[0].is_err());
}

#[test]
fn encrypt_to_non_key_fails_cleanly() {
    let now = SystemTime::now();
    assert!(matches!(encrypt_to_cert("", b"x", now), Err(PgpError::NoKey)));
    assert!(encrypt_to_cert("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n", b"x", now).is_err());
}

/// Random bytes, base64-armoured with a valid CRC so they reach the OpenPGP parsers.
fn armour(kind: armor::Kind, data: &[u8]) -> Vec<u8> {
    let mut w = armor::Writer::new(Vec::new(), kind).expect("armor");
    w.write_all(data).expect("write");
    w.finalize().expect("armor")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_certs(&data, now());
        let _ = decrypt_symmetric(PASSWORD, &data);
        let _ = encrypt_to_cert(&String::from_utf8_lossy(&data), b"x", SystemTime::now());
    }

    #[test]
    fn armoured_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_certs(&armour(armor::Kind::PublicKey, &data), now());
        let result = decrypt_symmetric(PASSWORD, &armour(armor::Kind::Message, &data));
        prop_assert!(result.is_err());
    }

    #[test]
    fn mutated_messages_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)
    ) {
        let message = sealed(b"payload payload payload");
        let block = next_armor_block(message.as_bytes(), MESSAGE_BLOCK, 0).expect("armour");
        let mut binary = block.data.expect("decodes");
        for (at, byte) in edits {
            let i = at.index(binary.len());
            binary[i] = byte;
        }
        // Re-armoured with a fresh CRC: only the OpenPGP layer can notice.
        let _ = decrypt_symmetric(PASSWORD, &armour(armor::Kind::Message, &binary));
    }
}
