//! The SMTP edge: hands finished messages to the configured MTA (lettre, async).

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
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

/// One configured MTA.
#[derive(Clone)]
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    retry_secs: i64,
}

impl SmtpSender {
    pub fn new(config: &SmtpConfig, password: Option<String>) -> anyhow::Result<SmtpSender> {
        let tls = || TlsParameters::new(config.host.clone());
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
        Ok(SmtpSender { transport: builder.build(), retry_secs: config.retry_secs.0 as i64 })
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
            Err(e) => Err(SendError::Transient(e.to_string())),
        }
    }
}
