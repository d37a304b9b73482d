//! The organization's trade catalogue (`contractor/v1/getTrades`, `contractor/v1/setTrades` in
//! `contractor_onboarding_v1`), and the gate every step that takes a trade calls.
//!
//! The check runs inside the step that writes the trade, against the catalogue that step's
//! transaction reads, so what it checked is what the step commits against. A trade outside the
//! catalogue is `422 TRADE_UNKNOWN` with a field error per unknown trade, naming the closest known
//! one. Like every `422`, the refusal is recorded with its key.

use serde::{Deserialize, Serialize};

use hestami_core::text::TradeCode;
use hestami_core::trade::TradeCatalogue;

use super::{Caller, OrgSetting, Services, check_version};
use crate::error::{Failure, FailureKind, FieldError, StoreError};
use crate::store::TenantTx;

/// The catalogue in force, and its version (0: the shipped default).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TradesDoc {
    /// 0 for the shipped default list, then +1 per change.
    pub version: i64,
    /// The trades.
    pub trades: TradeCatalogue,
}

/// The organization's catalogue (the default list until it sets one), locked with `lock`.
pub(crate) async fn load_trades(tx: &mut TenantTx, lock: bool) -> Result<TradesDoc, StoreError> {
    Ok(match CATALOGUE.load(tx, lock).await? {
        None => TradesDoc {
            version: 0,
            trades: TradeCatalogue::default_catalogue(),
        },
        Some((version, trades)) => TradesDoc { version, trades },
    })
}

/// Where the catalogue is kept.
pub(crate) const CATALOGUE: OrgSetting = OrgSetting {
    table: "trade_catalogues",
    column: "trades",
    entity: "trade_catalogue",
};

/// `422 TRADE_UNKNOWN`, with a field error for each of `given` (field path, trade) that is not in
/// the organization's catalogue; nothing when all are.
pub(crate) async fn ensure_known(
    tx: &mut TenantTx,
    given: Vec<(String, TradeCode)>,
) -> Result<(), StoreError> {
    if given.is_empty() {
        return Ok(());
    }
    let catalogue = load_trades(tx, false).await?.trades;
    ensure_known_in(&catalogue, &given)
}

/// [`ensure_known`] against a catalogue already read.
pub(crate) fn ensure_known_in(
    catalogue: &TradeCatalogue,
    given: &[(String, TradeCode)],
) -> Result<(), StoreError> {
    let unknown = catalogue.unknown(given.iter().map(|(f, t)| (f.clone(), t)));
    if unknown.is_empty() {
        return Ok(());
    }
    let details = serde_json::json!({
        "unknown": unknown.iter().map(|u| serde_json::json!({
            "field": u.field, "trade": u.trade, "closest": u.closest,
        })).collect::<Vec<_>>(),
    });
    Err(Failure {
        field_errors: unknown
            .iter()
            .map(|u| FieldError {
                field: u.field.clone(),
                code: "unknown_trade".into(),
                message: u.message(),
            })
            .collect(),
        ..Failure::new(
            FailureKind::RuleViolation,
            "TRADE_UNKNOWN",
            unknown
                .iter()
                .map(hestami_core::trade::UnknownTrade::message)
                .collect::<Vec<_>>()
                .join("; "),
        )
        .with_details(details)
    }
    .into())
}

/// `(field, trade)` pairs for a list field: `trades[0]`, `trades[1]`…
pub(crate) fn each(field: &str, trades: &[TradeCode]) -> Vec<(String, TradeCode)> {
    trades
        .iter()
        .enumerate()
        .map(|(n, t)| (format!("{field}[{n}]"), t.clone()))
        .collect()
}

/// Replaces the catalogue (the `setTrades` step).
pub(crate) async fn set_trades(
    tx: &mut TenantTx,
    trades: TradeCatalogue,
    expected_version: Option<i64>,
) -> Result<TradesDoc, StoreError> {
    let current = load_trades(tx, true).await?;
    check_version("trade catalogue", expected_version, current.version)?;
    let version = CATALOGUE.save(tx, current.version, &trades).await?;
    Ok(TradesDoc { version, trades })
}

impl Services {
    /// `contractor/v1/getTrades`.
    pub async fn contractor_trades(&self, caller: &Caller) -> Result<TradesDoc, StoreError> {
        self.read(caller, |tx| Box::pin(load_trades(tx, false)))
            .await
    }
}
