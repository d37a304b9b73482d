//! The workforce: technicians and the trades they hold.
//!
//! Skills with levels, certifications, shifts and time off arrive with the workforce issue; a
//! technician here is a name, contact details, a set of trades and an active flag.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::TechnicianId;
use crate::text::{Email, Name, Phone, TradeCode};

/// A technician.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Technician {
    /// Its id.
    pub id: TechnicianId,
    /// 1 on creation, +1 on each change.
    pub version: i64,
    /// Display name.
    pub name: Name,
    /// Contact address; unique within the organization when given.
    pub email: Option<Email>,
    /// Contact number.
    pub phone: Option<Phone>,
    /// The trades held, sorted and without duplicates.
    pub trades: Vec<TradeCode>,
    /// Whether the technician takes work. Deactivated technicians keep their history.
    pub active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Sorts trades and drops duplicates, so that two equal sets compare and store equal.
pub fn normalize_trades(mut trades: Vec<TradeCode>) -> Vec<TradeCode> {
    trades.sort();
    trades.dedup();
    trades
}

/// Why a technician may not be assigned a job (the rules that exist before the full
/// eligibility rule set: active, and holding the job's trade). Every failed rule is returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentRefusal {
    /// A stable code, such as `TECHNICIAN_INACTIVE`.
    pub code: &'static str,
    /// A sentence for the dispatcher.
    pub message: String,
}

/// Checks the assignment rules that hold before the eligibility issue: the technician is active
/// and holds `trade`. Returns every rule that fails.
pub fn assignment_refusals(tech: &Technician, trade: &TradeCode) -> Vec<AssignmentRefusal> {
    let mut refusals = Vec::new();
    if !tech.active {
        refusals.push(AssignmentRefusal {
            code: "TECHNICIAN_INACTIVE",
            message: format!("{} is deactivated", tech.name),
        });
    }
    if !tech.trades.contains(trade) {
        refusals.push(AssignmentRefusal {
            code: "TECHNICIAN_TRADE_MISSING",
            message: format!("{} does not hold the trade {trade}", tech.name),
        });
    }
    refusals
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn tech(active: bool, trades: &[&str]) -> Technician {
        let t = Utc
            .with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
            .single()
            .expect("valid date");
        Technician {
            id: TechnicianId::from_uuid(uuid::Uuid::from_u128(7)),
            version: 1,
            name: Name::parse("Ada").expect("valid"),
            email: None,
            phone: None,
            trades: normalize_trades(
                trades
                    .iter()
                    .map(|t| TradeCode::parse(t).expect("valid"))
                    .collect(),
            ),
            active,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn every_failed_rule_is_returned() {
        let plumbing = TradeCode::parse("plumbing").expect("valid");
        assert!(assignment_refusals(&tech(true, &["plumbing", "hvac"]), &plumbing).is_empty());
        let codes: Vec<_> = assignment_refusals(&tech(false, &["hvac"]), &plumbing)
            .into_iter()
            .map(|r| r.code)
            .collect();
        assert_eq!(codes, ["TECHNICIAN_INACTIVE", "TECHNICIAN_TRADE_MISSING"]);
    }

    #[test]
    fn trades_are_normalized() {
        assert_eq!(tech(true, &["hvac", "electrical", "hvac"]).trades.len(), 2);
    }
}
