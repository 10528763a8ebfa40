//! Type I (cypherpunk) ping messages, built from the innermost hop outwards
//! (`echolot.md` §3.2, `mixmaster.md` §4.1).
//!
//! Innermost layer, to the last hop:
//! ```text
//! ::
//! Anon-To: <our return address>
//!
//! ##                                  (only when asking for our From: line)
//! From: <name> <our address>
//!
//! <armoured payload>
//! ```
//! Each encrypted hop's text is OpenPGP-encrypted to that hop's key and wrapped as
//! `::\nEncrypted: PGP\n\n<armour>`; that becomes the payload of the hop before it, whose
//! `Anon-To` is the next hop's address. A `cpunk-clear` hop is not encrypted (the remailer
//! must accept plaintext). No `Latent-Time`: pings measure the remailer as clients use it.

use std::time::SystemTime;

use crate::compose::openpgp::{self, PgpError};
use crate::model::PingType;

/// One hop of a type I ping.
#[derive(Debug, Clone)]
pub struct CpunkHop<'a> {
    pub address: &'a str,
    pub ping_type: PingType,
    /// The remailer's armoured OpenPGP key; None for cpunk-clear.
    pub cert: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum CpunkError {
    #[error("{0} is not a type I ping type")]
    NotTypeOne(PingType),
    #[error("no OpenPGP key stored for {0}; import it with `fathometer import-keys`")]
    NoKey(String),
    #[error("cannot encrypt to the key of {address}: {source}")]
    Encrypt {
        address: String,
        #[source]
        source: PgpError,
    },
}

/// The message body for the first hop. `from_line` is pasted with `##` in the innermost layer.
pub fn build(
    hops: &[CpunkHop<'_>],
    return_address: &str,
    from_line: Option<&str>,
    payload: &str,
    now: SystemTime,
) -> Result<String, CpunkError> {
    let mut text = format!("::\nAnon-To: {return_address}\n\n");
    if let Some(from) = from_line {
        text.push_str(&format!("##\nFrom: {from}\n\n"));
    }
    text.push_str(payload);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    for (i, hop) in hops.iter().enumerate().rev() {
        if i + 1 < hops.len() {
            text = format!("::\nAnon-To: {}\n\n{text}", hops[i + 1].address);
        }
        text = wrap(hop, &text, now)?;
    }
    Ok(text)
}

/// Encrypts one hop's text to its key (unless the hop is cpunk-clear).
fn wrap(hop: &CpunkHop<'_>, text: &str, now: SystemTime) -> Result<String, CpunkError> {
    match hop.ping_type {
        PingType::CpunkClear => Ok(text.to_owned()),
        PingType::CpunkRsa | PingType::CpunkDsa => {
            let cert = hop.cert.ok_or_else(|| CpunkError::NoKey(hop.address.to_owned()))?;
            let encrypted =
                openpgp::encrypt_to_cert(cert, text.as_bytes(), now).map_err(|source| {
                    CpunkError::Encrypt { address: hop.address.to_owned(), source }
                })?;
            Ok(format!("::\nEncrypted: PGP\n\n{}", encrypted.armored))
        }
        PingType::Mix | PingType::Yamn => Err(CpunkError::NotTypeOne(hop.ping_type)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_single_hop_has_the_echolot_layout() {
        let hops =
            [CpunkHop { address: "a@x.example", ping_type: PingType::CpunkClear, cert: None }];
        let body = build(
            &hops,
            "pinger+tag@p.example",
            Some("Pinger <pinger@p.example>"),
            "-----BEGIN PGP MESSAGE-----\n\nabc\n-----END PGP MESSAGE-----\n",
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(
            body,
            "::\nAnon-To: pinger+tag@p.example\n\n##\nFrom: Pinger <pinger@p.example>\n\n\
             -----BEGIN PGP MESSAGE-----\n\nabc\n-----END PGP MESSAGE-----\n"
        );
    }

    #[test]
    fn clear_chain_nests_the_second_hop_inside_the_first() {
        let hops = [
            CpunkHop { address: "a@x.example", ping_type: PingType::CpunkClear, cert: None },
            CpunkHop { address: "b@y.example", ping_type: PingType::CpunkClear, cert: None },
        ];
        let body = build(&hops, "ret@p.example", None, "PAYLOAD\n", SystemTime::now()).unwrap();
        assert_eq!(body, "::\nAnon-To: b@y.example\n\n::\nAnon-To: ret@p.example\n\nPAYLOAD\n");
    }

    #[test]
    fn an_encrypted_hop_without_a_key_is_an_error() {
        let hops = [CpunkHop { address: "a@x.example", ping_type: PingType::CpunkDsa, cert: None }];
        let err = build(&hops, "r@p.example", None, "P", SystemTime::now()).unwrap_err();
        assert!(err.to_string().contains("import-keys"), "{err}");
    }
}
