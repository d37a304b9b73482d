//! The e-mail channel: SMTP through lettre, configured by one URL.
//!
//! `smtps://user:pass@host:465` (implicit TLS), `smtp://host:587?tls=required` (STARTTLS) or
//! `smtp://host:2525` (plain, for a relay on the same machine and for tests). TLS is rustls on
//! the ring provider, with the Mozilla root certificates.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::error::StoreError;

/// How long one message's whole SMTP conversation (connect, TLS, every command and the data)
/// may take before the attempt counts as failed and is retried. lettre's own timeout covers the
/// connection only; a server that accepts and then says nothing must not hold the relay.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(60);

/// Replies that refuse the recipient's address itself (551 not local, 553 mailbox name not
/// allowed): trying again cannot help. Every other reply — 4xx, and 5xx that can come from the
/// server's own set-up (535 authentication, 530 TLS required, 550 relay denied or no such
/// mailbox, 554) — is retried until the message has failed for the relay's give-up time, so one
/// misconfiguration does not dead-letter every message at its first attempt.
const REFUSES_THE_ADDRESS: [&str; 2] = ["551", "553"];

/// A message ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The stable message id (the outbox row's): the `Message-ID` header, so a message sent
    /// twice after a crash is one message to the recipient's mail system.
    pub id: uuid::Uuid,
    /// The recipient's address.
    pub to: String,
    /// The recipient's name, when known.
    pub to_name: Option<String>,
    /// The name the message is from (the organization's); the address is the server's.
    pub from_name: String,
    /// Where replies go (the organization's contact address), when it has one.
    pub reply_to: Option<String>,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
    /// A PDF attachment: file name and bytes.
    pub attachment: Option<(String, Vec<u8>)>,
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// Whether trying again cannot help (the server refused the recipient or the message).
    pub permanent: bool,
    /// What went wrong.
    pub message: String,
}

/// An SMTP client and the address messages are sent from.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The domain of message ids (`<id@domain>`).
    domain: String,
    /// The longest one message's conversation may take.
    timeout: Duration,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("Mailer").field("from", &self.from).finish()
    }
}

impl Mailer {
    /// A mailer for the SMTP server at `url`, sending from `from` (`billing@example.com` or
    /// `Example <billing@example.com>`).
    pub fn from_url(url: &str, from: &str) -> Result<Self, StoreError> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| StoreError::Internal(format!("the sender address {from:?}: {e}")))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| StoreError::Internal(format!("the SMTP URL: {e}")))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        let domain = from.email.domain().to_owned();
        Ok(Self {
            transport,
            from,
            domain,
            timeout: SMTP_TIMEOUT,
        })
    }

    /// The same mailer with another limit on one message's conversation (tests use a short one).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends one message.
    pub async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let email = self.build(message)?;
        match tokio::time::timeout(self.timeout, self.transport.send(email)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(SendError {
                permanent: e
                    .status()
                    .is_some_and(|code| REFUSES_THE_ADDRESS.contains(&code.to_string().as_str())),
                message: format!("SMTP: {e}"),
            }),
            Err(_) => Err(SendError {
                permanent: false,
                message: format!("SMTP: no answer within {:?}", self.timeout),
            }),
        }
    }

    fn build(&self, message: &Outgoing) -> Result<Message, SendError> {
        let refused = |what: &str, e: &dyn std::fmt::Display| SendError {
            permanent: true,
            message: format!("{what}: {e}"),
        };
        let to = Mailbox::new(
            message.to_name.clone(),
            message
                .to
                .parse()
                .map_err(|e| refused("the recipient's address", &e))?,
        );
        let from = Mailbox::new(Some(message.from_name.clone()), self.from.email.clone());
        let mut builder = Message::builder()
            .message_id(Some(format!("<{}@{}>", message.id, self.domain)))
            .from(from)
            .to(to)
            .subject(message.subject.clone());
        if let Some(reply_to) = &message.reply_to
            && let Ok(address) = reply_to.parse()
        {
            builder = builder.reply_to(Mailbox::new(Some(message.from_name.clone()), address));
        }
        let bodies = MultiPart::alternative_plain_html(message.text.clone(), message.html.clone());
        let body = match &message.attachment {
            None => bodies,
            Some((name, bytes)) => MultiPart::mixed().multipart(bodies).singlepart(
                Attachment::new(name.clone()).body(
                    bytes.clone(),
                    ContentType::parse("application/pdf")
                        .map_err(|e| refused("content type", &e))?,
                ),
            ),
        };
        builder
            .multipart(body)
            .map_err(|e| refused("the message", &e))
    }
}
