//! The SMTP edge: hands finished messages to the configured MTA (lettre, async).

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::compose::Outgoing;
use crate::config::{SmtpConfig, TlsMode};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: connection refused, timeout, 4xx.
    #[error("temporary SMTP failure: {0}")]
    Transient(String),
    /// The MTA refused for good (5xx): retrying cannot help.
    #[error("SMTP refused: {0}")]
    Permanent(String),
}

/// An error with its causes, and what a refused certificate means for the operator.
fn describe(e: &lettre::transport::smtp::Error, server: &str) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    if text.contains("certificate verify failed") {
        format!(
            "the TLS certificate of SMTP server {server} is not trusted (not issued by a CA in \
             `smtp.ca_file` or the system's store, or not for this host name); nothing was sent: {text}"
        )
    } else {
        text
    }
}

/// One configured MTA.
#[derive(Clone)]
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    retry_secs: i64,
    /// `host:port`, for error messages.
    server: String,
}

impl SmtpSender {
    /// `roots`: the PEM certificates trusted instead of the system's store (`ca_file`).
    /// With TLS configured, lettre authenticates only after the handshake: STARTTLS refused
    /// or a certificate not trusted ends the session before the password is sent.
    pub fn new(
        config: &SmtpConfig,
        password: Option<String>,
        roots: Option<Vec<Vec<u8>>>,
    ) -> anyhow::Result<SmtpSender> {
        let tls = || -> anyhow::Result<TlsParameters> {
            let mut builder = TlsParameters::builder(config.host.clone());
            if let Some(roots) = &roots {
                builder = builder.certificate_store(CertificateStore::None);
                for pem in roots {
                    builder = builder.add_root_certificate(Certificate::from_pem(pem)?);
                }
            }
            Ok(builder.build()?)
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port.0)
            .timeout(Some(Duration::from_secs(60)))
            .tls(match config.tls {
                TlsMode::None => Tls::None,
                TlsMode::Starttls => Tls::Required(tls()?),
                TlsMode::Tls => Tls::Wrapper(tls()?),
            });
        if let (Some(user), Some(password)) = (&config.user, password) {
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let server = format!("{}:{}", config.host, config.port.0);
        Ok(SmtpSender {
            transport: builder.build(),
            retry_secs: config.retry_secs.0 as i64,
            server,
        })
    }

    /// The first wait after a temporary failure (`[smtp] retry_secs`).
    pub fn retry_secs(&self) -> i64 {
        self.retry_secs
    }

    /// Sends one message; Ok only when the MTA answered 250 to the whole transaction.
    pub async fn send(&self, mail: &Outgoing) -> Result<(), SendError> {
        let parse = |a: &str| {
            a.parse::<Address>().map_err(|e| SendError::Permanent(format!("address `{a}`: {e}")))
        };
        let envelope = lettre::address::Envelope::new(
            Some(parse(&mail.envelope_from)?),
            vec![parse(&mail.to)?],
        )
        .map_err(|e| SendError::Permanent(e.to_string()))?;
        match self.transport.send_raw(&envelope, &mail.message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) => Err(SendError::Transient(describe(&e, &self.server))),
        }
    }
}
