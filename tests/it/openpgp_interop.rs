//! Interop of `fathometer::compose::openpgp` with real GnuPG 2.2 and with the Mixmaster test remailer
//! keys. Every test uses its own throw-away GnuPG home.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::support::gpg::{GpgHome, KeyShape};
use fathometer::compose::openpgp::{
    DecryptError, KeyKind, PgpError, RemailerCert, decrypt_symmetric, encrypt_symmetric,
    encrypt_to_cert, parse_certs,
};

/// The tests' own clock (the library reads none).
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/mixmaster/keys");
const PING: &[u8] = b"::\nAnon-To: x@localhost\n\n##\nSubject: s\n\nbody line\n";

/// Runs gpg in `home` with extra arguments; returns (success, stdout, stderr).
fn gpg_raw(home: &GpgHome, args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new("gpg")
        .arg("--homedir")
        .arg(home.path())
        .args(["--batch", "--no-tty", "--pinentry-mode", "loopback", "--no-options"])
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gpg");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("gpg output");
    let _ = writer.join();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn only_cert(armored: &str) -> RemailerCert {
    let mut certs = parse_certs(armored.as_bytes(), now());
    assert_eq!(certs.len(), 1, "{certs:?}");
    certs.remove(0).expect("cert parses")
}

/// gpg's text mode output drops the CRs we put in; compare on LF line ends.
fn lf(data: &[u8]) -> Vec<u8> {
    data.iter().copied().filter(|&b| b != b'\r').collect()
}

/// Generates a key, encrypts PING to it with our code, and has gpg decrypt it.
fn round_trip(shape: KeyShape, prefs: &str, cipher: &str, pk_algo: u8, kind: KeyKind) {
    let home = GpgHome::new();
    let email = format!("rem-{}@example.net", cipher.to_lowercase());
    let public = home.generate(shape, "Remailer", &email, prefs);
    if prefs == "S1" {
        // Really only IDEA in the key, so 3DES below is our fallback, not a preference.
        let listing = home.list_packets(public.as_bytes());
        assert!(listing.contains("(pref-sym-algos: 1)"), "{listing}");
    }
    let cert = only_cert(&public);
    assert_eq!(cert.kind, kind);
    assert_eq!(cert.emails, vec![email.clone()]);
    assert_eq!(cert.expires, None);

    let enc = encrypt_to_cert(&cert.armored, PING, SystemTime::now()).expect("encrypt");
    assert_eq!(enc.cipher, cipher, "prefs {prefs}");
    assert!(enc.armored.starts_with("-----BEGIN PGP MESSAGE-----\n\n"), "{}", enc.armored);
    assert!(!enc.armored.contains("Version:") && !enc.armored.contains("Comment:"));

    let packets = home.list_packets(enc.armored.as_bytes());
    let pkesk =
        format!(":pubkey enc packet: version 3, algo {pk_algo}, keyid {}", enc.recipient_key_id);
    assert!(packets.contains(&pkesk), "want {pkesk} in\n{packets}");
    assert!(packets.contains("mdc_method: 2"), "{packets}");
    assert!(packets.contains("mode t"), "text mode literal:\n{packets}");

    let dec = home.decrypt(enc.armored.as_bytes()).expect("gpg decrypts");
    assert_eq!(lf(&dec.plaintext), lf(PING));
    assert_eq!(dec.cipher, cipher);
    assert_eq!(dec.pkesk_algo, Some(pk_algo));
    assert!(dec.mdc);
    eprintln!("gpg decrypted {shape:?} prefs [{prefs}]: {cipher}, pkesk algo {pk_algo}");
}

#[test]
fn gpg_rsa1024_cast5() {
    round_trip(KeyShape::Rsa1024, "S3 S2", "CAST5", 1, KeyKind::Rsa);
}

#[test]
fn gpg_rsa1024_idea_only_falls_back_to_3des() {
    round_trip(KeyShape::Rsa1024, "S1", "3DES", 1, KeyKind::Rsa);
}

#[test]
fn gpg_rsa2048_aes256() {
    round_trip(KeyShape::Rsa2048, "S9", "AES256", 1, KeyKind::Rsa);
}

#[test]
fn gpg_dsa1024_elgamal1024_sha1_cast5() {
    round_trip(KeyShape::OldDsaElg1024, "S3 S7 S2", "CAST5", 16, KeyKind::DsaElGamal);
}

#[test]
fn gpg_dsa2048_elgamal2048_aes128() {
    round_trip(KeyShape::DsaElg2048, "S7 S2", "AES128", 16, KeyKind::DsaElGamal);
}

#[test]
fn gpg_dsa1024_elgamal1024_3des() {
    round_trip(KeyShape::OldDsaElg1024, "S2", "3DES", 16, KeyKind::DsaElGamal);
}

#[test]
fn gpg_decrypts_symmetric() {
    let home = GpgHome::new();
    let password = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let payload = b"return payload\x00\x01 binary ok";
    let armored = encrypt_symmetric(password.as_bytes(), payload, now()).expect("encrypt");
    let dec = home.decrypt_with_passphrase(armored.as_bytes(), password).expect("gpg decrypts");
    assert_eq!(dec.plaintext, payload);
    assert_eq!(dec.cipher, "AES256");
    assert_eq!(dec.pkesk_algo, None);
    assert!(dec.mdc);
    // And we decrypt gpg's own symmetric output (gpg's default 65 MB S2K is too expensive for
    // us by design, so give it a small count).
    let (ok, out, err) = gpg_raw(
        &home,
        &[
            "--armor",
            "--passphrase",
            password,
            "--s2k-count",
            "65536",
            "--s2k-digest-algo",
            "SHA256",
            "--symmetric",
        ],
        payload,
    );
    assert!(ok, "{err}");
    assert_eq!(decrypt_symmetric(password.as_bytes(), out.as_bytes()).expect("ours"), payload);
    assert!(matches!(decrypt_symmetric(b"other", out.as_bytes()), Err(DecryptError::WrongKey)));
}

#[test]
fn expired_key_is_refused() {
    let home = GpgHome::new();
    let (ok, _, err) = gpg_raw(
        &home,
        &[
            "--passphrase",
            "",
            "--debug-quick-random",
            "--quick-gen-key",
            "Exp <exp@example.net>",
            "rsa2048",
            "sign,encr",
            "2d",
        ],
        b"",
    );
    assert!(ok, "{err}");
    let (ok, public, err) = gpg_raw(&home, &["--armor", "--export", "exp@example.net"], b"");
    assert!(ok, "{err}");
    let cert = only_cert(&public);
    let expires = cert.expires.expect("has expiry");
    assert!(expires > cert.created);
    let now = SystemTime::now();
    encrypt_to_cert(&cert.armored, PING, now).expect("still valid today");
    let later = now + Duration::from_secs(5 * 86400);
    match encrypt_to_cert(&cert.armored, PING, later) {
        Err(PgpError::Expired(msg)) => eprintln!("expired: {msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn revoked_key_is_refused() {
    let home = GpgHome::new();
    let public = home.generate(KeyShape::Rsa2048, "Rev", "rev@example.net", "");
    let cert = only_cert(&public);
    // gpg 2.2 leaves a ready revocation certificate, its BEGIN line disarmed with a ':'.
    let revs = home.path().join("openpgp-revocs.d");
    let file = std::fs::read_dir(&revs).expect("revocs dir").next().expect("a rev").expect("entry");
    let rev = std::fs::read_to_string(file.path()).expect("read rev");
    let rev = rev
        .replace(":-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----");
    home.import(&rev);
    let (ok, revoked, err) = gpg_raw(&home, &["--armor", "--export", &cert.key_id], b"");
    assert!(ok, "{err}");
    match encrypt_to_cert(&revoked, PING, SystemTime::now()) {
        Err(PgpError::Revoked(msg)) => eprintln!("revoked: {msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn signing_only_key_has_no_encryption_key() {
    let home = GpgHome::new();
    let (ok, _, err) = gpg_raw(
        &home,
        &["--passphrase", "", "--quick-gen-key", "Sig <sig@example.net>", "rsa2048", "sign", "0"],
        b"",
    );
    assert!(ok, "{err}");
    let (ok, public, err) = gpg_raw(&home, &["--armor", "--export", "sig@example.net"], b"");
    assert!(ok, "{err}");
    assert!(matches!(
        encrypt_to_cert(&public, PING, SystemTime::now()),
        Err(PgpError::NoEncryptionKey)
    ));
}

#[test]
fn secret_material_never_exported() {
    let home = GpgHome::new();
    let public = home.generate(KeyShape::Rsa1024, "Sec", "sec@example.net", "");
    let cert = only_cert(&public);
    let (ok, secret, err) = gpg_raw(&home, &["--armor", "--export-secret-keys", &cert.key_id], b"");
    assert!(ok, "{err}");
    assert!(secret.contains("PRIVATE KEY BLOCK"));
    // A secret key smuggled inside a PUBLIC KEY BLOCK armour (the CRC covers only the data).
    let relabelled = secret.replace("PRIVATE KEY BLOCK", "PUBLIC KEY BLOCK");
    let from_secret = only_cert(&relabelled);
    assert_eq!(from_secret.key_id, cert.key_id);
    let packets = home.list_packets(from_secret.armored.as_bytes());
    assert!(packets.contains(":public key packet:"), "{packets}");
    assert!(!packets.contains("secret"), "{packets}");
    // A PRIVATE KEY BLOCK itself is not read at all.
    assert!(parse_certs(secret.as_bytes(), now()).is_empty());
}

#[test]
fn several_certs_with_prose_and_a_broken_one() {
    let home = GpgHome::new();
    let a = home.generate(KeyShape::Rsa1024, "A", "a@example.net", "");
    let b = home.generate(KeyShape::Rsa1024, "B", "b@example.net", "");
    let (ok, both, err) = gpg_raw(&home, &["--armor", "--export"], b"");
    assert!(ok, "{err}");
    let broken = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBGAAAAA=\n-----END PGP PUBLIC KEY BLOCK-----\n";
    let mail =
        format!("Hi,\r\nhere are keys:\r\n{a}\r\nbroken:\r\n{broken}\r\n{both}\r\n-- \r\nsig\r\n")
            .replace("\r\n", "\n")
            .replace('\n', "\r\n");
    let certs = parse_certs(mail.as_bytes(), now());
    assert_eq!(certs.len(), 4, "{certs:?}");
    assert!(certs[1].is_err());
    let emails: Vec<String> = certs.iter().flatten().flat_map(|c| c.emails.clone()).collect();
    assert_eq!(emails, ["a@example.net", "a@example.net", "b@example.net"]);
    let _ = b;
}

/// `gpg --with-colons --import-options show-only --import`: (primary key id, emails) per key.
fn gpg_show_only(home: &GpgHome, path: &str) -> Vec<(String, Vec<String>)> {
    let (ok, out, err) =
        gpg_raw(home, &["--with-colons", "--import-options", "show-only", "--import", path], b"");
    assert!(ok, "{err}");
    let mut keys: Vec<(String, Vec<String>)> = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split(':').collect();
        match f.first() {
            Some(&"pub") => keys.push((f[4].to_string(), Vec::new())),
            Some(&"uid") => {
                let uid = f[9];
                let email =
                    uid.rsplit_once('<').and_then(|(_, r)| r.split_once('>')).map(|(e, _)| e);
                if let (Some(key), Some(email)) = (keys.last_mut(), email) {
                    key.1.push(email.to_lowercase());
                }
            }
            _ => {}
        }
    }
    keys
}

#[test]
fn mixmaster_remailer_keys() {
    let home = GpgHome::new();
    let pubring = format!("{KEYS}/pubring.asc");
    let expected = gpg_show_only(&home, &pubring);
    assert_eq!(expected.len(), 4);
    let text = std::fs::read(&pubring).expect("pubring.asc");
    let certs: Vec<RemailerCert> =
        parse_certs(&text, now()).into_iter().map(|c| c.expect("mixmaster key parses")).collect();
    let got: Vec<(String, Vec<String>)> =
        certs.iter().map(|c| (c.key_id.clone(), c.emails.clone())).collect();
    assert_eq!(got, expected);

    for n in 1..=4 {
        let path = format!("{KEYS}/testmix{n}.pgpkey.txt");
        let text = std::fs::read(&path).expect("pgpkey.txt");
        let mut parsed = parse_certs(&text, now());
        assert_eq!(parsed.len(), 1);
        let cert = parsed.remove(0).expect("parses");
        assert_eq!(cert.kind, KeyKind::DsaElGamal);
        assert_eq!(cert.kind.ping_type(), "cpunk-dsa");
        assert_eq!(cert.emails, vec![format!("testmix{n}@localhost")]);
        assert_eq!(cert.bits, Some(1024));
        assert_eq!(cert.expires, None);
        assert_eq!(cert.key_id, expected[n - 1].0);
        assert!(!cert.armored.contains("PRIVATE"));

        // ElGamal subkey id as gpg sees it.
        let (ok, colons, err) = gpg_raw(
            &home,
            &["--with-colons", "--import-options", "show-only", "--import", &path],
            b"",
        );
        assert!(ok, "{err}");
        let sub = colons
            .lines()
            .find_map(|l| {
                l.strip_prefix("sub:").map(|r| r.split(':').nth(3).unwrap_or("").to_string())
            })
            .expect("sub line");

        // The whole pgpkey.txt (summary + armour with a Version header) is accepted directly.
        let enc = encrypt_to_cert(&String::from_utf8_lossy(&text), PING, SystemTime::now())
            .expect("encrypt to mixmaster key");
        assert_eq!(enc.recipient_key_id, sub);
        assert_eq!(enc.cipher, "CAST5", "prefs are CAST5 AES128 3DES");
        let packets = home.list_packets(enc.armored.as_bytes());
        let want = format!(":pubkey enc packet: version 3, algo 16, keyid {sub}");
        assert!(packets.contains(&want), "want {want} in\n{packets}");
        let enc2 = encrypt_to_cert(&cert.armored, PING, SystemTime::now()).expect("again");
        assert_eq!(enc2.recipient_key_id, sub);
        eprintln!("testmix{n}: key {} sub {sub} {}", cert.key_id, enc.cipher);
    }
}
