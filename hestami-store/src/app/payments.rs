//! Payment providers: who moves the money for a card or ACH payment.
//!
//! `invoice/v1/collectPayment` calls the provider as an *external step*
//! ([`crate::engine::WorkflowCtx::external`]) with an idempotency key derived from the workflow
//! id and the step's index. The key is the whole defence against double charges: a crash after
//! the provider charged and before our journal recorded it re-runs the step with the same key,
//! and a provider worth the name answers a repeated key with the original charge instead of
//! charging again. Both providers here do.
//!
//! - [`ManualProvider`] records cash, cheques and other payments taken by hand; it refuses card
//!   and ACH (no processor is configured).
//! - [`TestProvider`] is a deterministic processor for tests and demos: it approves by default
//!   and can be scripted to decline, to time out, or to charge and then crash the caller.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use hestami_core::ids::{InvoiceId, OrganizationId};
use hestami_core::invoice::PaymentMethod;
use hestami_core::money::Money;

/// What to charge or refund.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeRequest {
    /// Stable across re-runs of the same workflow step; the provider deduplicates on it.
    pub idempotency_key: String,
    /// The organization collecting.
    pub organization_id: OrganizationId,
    /// The invoice paid.
    pub invoice_id: InvoiceId,
    /// How much.
    pub amount: Money,
    /// How.
    pub method: PaymentMethod,
    /// The caller's reference (a card token, a cheque number).
    pub reference: Option<String>,
    /// For a refund: the provider's id of the original charge.
    pub original: Option<String>,
}

/// The provider's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ChargeOutcome {
    /// The money moved; `provider_ref` is the provider's id for it.
    Approved {
        /// The provider's charge (or refund) id.
        provider_ref: String,
    },
    /// The provider said no.
    Declined {
        /// The provider's reason code, such as `card_declined`.
        code: String,
        /// A sentence for a person.
        message: String,
    },
}

/// Why the provider gave no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// No answer in time: the charge may or may not have happened; retrying with the same key
    /// finds out.
    #[error("the payment provider did not answer in time")]
    Timeout,
    /// The caller's process died after the provider acted (a test provider's scripted crash).
    #[error("the process crashed after the provider acted")]
    Crashed,
}

/// A boxed future, so the trait stays object-safe.
pub type ProviderFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ChargeOutcome, ProviderError>> + Send + 'a>>;

/// Something that moves money.
pub trait PaymentProvider: Send + Sync + std::fmt::Debug {
    /// Its name, recorded with each payment (`manual`, `test`).
    fn name(&self) -> &'static str;
    /// Charges, or returns the answer already given for this idempotency key.
    fn charge(&self, request: ChargeRequest) -> ProviderFuture<'_>;
    /// Refunds (part of) an earlier charge, or returns the answer already given for this key.
    fn refund(&self, request: ChargeRequest) -> ProviderFuture<'_>;
}

/// Whether a method is taken by hand (cash, cheque, other) rather than through a processor.
pub fn is_manual(method: PaymentMethod) -> bool {
    matches!(
        method,
        PaymentMethod::Cash | PaymentMethod::Check | PaymentMethod::Other
    )
}

/// Records payments taken by hand; refuses card and ACH.
#[derive(Clone, Copy, Debug, Default)]
pub struct ManualProvider;

impl ManualProvider {
    fn answer(request: &ChargeRequest) -> ChargeOutcome {
        if is_manual(request.method) {
            ChargeOutcome::Approved {
                provider_ref: format!("manual-{}", request.idempotency_key),
            }
        } else {
            ChargeOutcome::Declined {
                code: "method_unavailable".into(),
                message: format!(
                    "no payment processor is configured for {} payments",
                    request.method.as_str()
                ),
            }
        }
    }
}

impl PaymentProvider for ManualProvider {
    fn name(&self) -> &'static str {
        "manual"
    }
    fn charge(&self, request: ChargeRequest) -> ProviderFuture<'_> {
        Box::pin(async move { Ok(Self::answer(&request)) })
    }
    fn refund(&self, request: ChargeRequest) -> ProviderFuture<'_> {
        Box::pin(async move { Ok(Self::answer(&request)) })
    }
}

/// What the [`TestProvider`] does with the next new request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behavior {
    /// Approve.
    Approve,
    /// Decline with this code.
    Decline(String),
    /// Give no answer to the next request, whatever its key (an outage; nothing is charged).
    Timeout,
    /// Charge, then give no answer: a retry with the same key finds the charge.
    ChargeThenTimeout,
    /// Charge, then crash the caller before it records the answer.
    ChargeThenCrash,
}

/// One charge or refund the test provider made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The caller's key.
    pub idempotency_key: String,
    /// `charge` or `refund`.
    pub kind: &'static str,
    /// How much.
    pub amount: Money,
    /// The answer.
    pub outcome: ChargeOutcome,
}

#[derive(Debug, Default)]
struct Ledger {
    script: VecDeque<Behavior>,
    answers: HashMap<String, ChargeOutcome>,
    moved: Vec<Recorded>,
    calls: usize,
}

/// A deterministic processor: approves unless scripted otherwise, deduplicates on the key, and
/// keeps a ledger of the money it moved. Clones share the ledger (it is "the outside world",
/// which outlives a crashed process).
#[derive(Clone, Debug, Default)]
pub struct TestProvider {
    ledger: Arc<Mutex<Ledger>>,
}

impl TestProvider {
    /// A provider that approves everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues what to do with the next new requests (repeated keys are answered as before).
    pub fn script(&self, behaviors: impl IntoIterator<Item = Behavior>) {
        self.lock().script.extend(behaviors);
    }

    /// The charges and refunds that moved money, in order.
    pub fn moved(&self) -> Vec<Recorded> {
        self.lock().moved.clone()
    }

    /// How many requests it received (repeats included).
    pub fn calls(&self) -> usize {
        self.lock().calls
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // A panic while holding the lock can only come from a test that already failed.
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handle(
        &self,
        kind: &'static str,
        request: ChargeRequest,
    ) -> Result<ChargeOutcome, ProviderError> {
        let mut ledger = self.lock();
        ledger.calls += 1;
        // An outage answers nobody, whatever the key.
        if ledger.script.front() == Some(&Behavior::Timeout) {
            ledger.script.pop_front();
            return Err(ProviderError::Timeout);
        }
        if let Some(answer) = ledger.answers.get(&request.idempotency_key) {
            return Ok(answer.clone());
        }
        let behavior = ledger.script.pop_front().unwrap_or(Behavior::Approve);
        let approved = ChargeOutcome::Approved {
            provider_ref: format!("test_{kind}_{}", ledger.moved.len() + 1),
        };
        let record = |ledger: &mut Ledger, outcome: &ChargeOutcome| {
            ledger
                .answers
                .insert(request.idempotency_key.clone(), outcome.clone());
            if matches!(outcome, ChargeOutcome::Approved { .. }) {
                ledger.moved.push(Recorded {
                    idempotency_key: request.idempotency_key.clone(),
                    kind,
                    amount: request.amount,
                    outcome: outcome.clone(),
                });
            }
        };
        match behavior {
            Behavior::Approve => {
                record(&mut ledger, &approved);
                Ok(approved)
            }
            Behavior::Decline(code) => {
                let declined = ChargeOutcome::Declined {
                    message: format!("the test processor declined the {kind} ({code})"),
                    code,
                };
                record(&mut ledger, &declined);
                Ok(declined)
            }
            Behavior::Timeout => Err(ProviderError::Timeout),
            Behavior::ChargeThenTimeout => {
                record(&mut ledger, &approved);
                Err(ProviderError::Timeout)
            }
            Behavior::ChargeThenCrash => {
                record(&mut ledger, &approved);
                Err(ProviderError::Crashed)
            }
        }
    }
}

impl PaymentProvider for TestProvider {
    fn name(&self) -> &'static str {
        "test"
    }
    fn charge(&self, request: ChargeRequest) -> ProviderFuture<'_> {
        Box::pin(async move { self.handle("charge", request) })
    }
    fn refund(&self, request: ChargeRequest) -> ProviderFuture<'_> {
        Box::pin(async move { self.handle("refund", request) })
    }
}
