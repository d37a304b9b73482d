//! Work orders a community association (an HOA) sends to contractors, and vendor eligibility:
//! what the association asks of the contractors it trusts, and whether one meets it. Pure: no
//! clock is read; every check takes the days it is about.
//!
//! **The association's requirements are data**, like a contractor's own requirement table
//! ([`crate::compliance::Requirements`]): per trade, or for every trade, whether a licence is
//! needed, the least insurance of each kind (per occurrence and aggregate), the kinds of policy
//! that must name the association as an *additional insured*, and whether a W-9 must be on file
//! ([`VendorRequirements`]).
//!
//! **Eligibility is the union** ([`eligibility`]): a contractor may take a work order when it
//! meets its own requirement table *and* the association's, for the work order's trade and
//! place, on every requested day (the first and the last: a licence or policy is valid over an
//! interval of days). Every reason against is returned at once, in the codes of
//! [`crate::compliance::check`] plus `ADDITIONAL_INSURED_MISSING` and `W9_MISSING`.
//!
//! **The association sees the verdict, not the documents** ([`Finding`]): each reason's code
//! and the insurance kind it is about, never the contractor's policy or licence numbers, limits
//! or ids.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::compliance::{
    self, ComplianceReason, ComplianceVerdict, InsuranceKind, InsurancePolicy,
    InsuranceRequirement, Jurisdiction, License, RequirementRule, Requirements,
};
use crate::money::FieldError;
use crate::text::{Name, TradeCode};

/// What an association's property is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoaPropertyKind {
    /// An owner's unit (a house, an apartment).
    Unit,
    /// A common area the association maintains (a pool, a clubhouse, the grounds).
    CommonArea,
}

impl HoaPropertyKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unit => "unit",
            Self::CommonArea => "common_area",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Unit, Self::CommonArea]
            .into_iter()
            .find(|k| k.as_str() == raw)
    }
}

/// Where a link between an association and a contractor stands: the association invites, the
/// contractor accepts (the link is `active`: an approved vendor) or declines; either side may
/// end an active link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    /// Invited, not answered yet.
    Invited,
    /// Accepted: the contractor is an approved vendor of the association.
    Active,
    /// The contractor declined.
    Declined,
    /// Ended by either side.
    Ended,
}

impl LinkStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invited => "invited",
            Self::Active => "active",
            Self::Declined => "declined",
            Self::Ended => "ended",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Invited, Self::Active, Self::Declined, Self::Ended]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }

    /// The status a contractor's answer moves an invitation to, or `None` when the link is not
    /// an invitation any more. An invitation declined may be sent again (`invite` on a declined
    /// or ended link makes it `Invited`).
    pub fn answered(self, accept: bool) -> Option<Self> {
        match (self, accept) {
            (Self::Invited, true) => Some(Self::Active),
            (Self::Invited, false) => Some(Self::Declined),
            _ => None,
        }
    }

    /// Whether the association may invite again over a link in this status.
    pub fn may_invite(self) -> bool {
        matches!(self, Self::Declined | Self::Ended)
    }
}

/// The most rules an association's requirement table holds.
pub const MAX_VENDOR_RULES: usize = 50;

/// One of an association's vendor rules: what work of a trade (or of every trade) needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VendorRule {
    /// The trade; `None` (`null` on the wire) means every trade.
    pub trade: Option<TradeCode>,
    /// Whether a verified, unexpired licence for the trade, covering the place, is needed.
    #[serde(default)]
    pub license_required: bool,
    /// The insurance needed, each kind with its least limits (a kind with no limits must
    /// simply be held).
    #[serde(default)]
    pub insurance: Vec<InsuranceRequirement>,
    /// The kinds of policy that must name the association as an additional insured.
    #[serde(default)]
    pub additional_insured: Vec<InsuranceKind>,
    /// Whether the contractor's W-9 must be on file.
    #[serde(default)]
    pub w9_required: bool,
}

impl VendorRule {
    /// Whether the rule applies to work of `trade`.
    pub fn applies_to(&self, trade: &TradeCode) -> bool {
        self.trade.as_ref().is_none_or(|t| t == trade)
    }
}

/// An association's vendor requirement table. Every rule that applies to a work order
/// applies, as in a contractor's own table.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VendorRequirements {
    /// The rules.
    pub rules: Vec<VendorRule>,
}

impl VendorRequirements {
    /// Checks the table: at most [`MAX_VENDOR_RULES`] rules, no minimum limit negative. Every
    /// problem, with its path (`rules[2].insurance[0].minAggregate`). A kind named twice is
    /// harmless (the highest minimum applies, as across rules) and is not refused.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut problems = Vec::new();
        if self.rules.len() > MAX_VENDOR_RULES {
            problems.push(FieldError::new(
                "rules",
                "too_many",
                format!("an association has at most {MAX_VENDOR_RULES} vendor rules"),
            ));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            for (j, need) in rule.insurance.iter().enumerate() {
                for (name, limit) in [
                    ("minPerOccurrence", need.min_per_occurrence),
                    ("minAggregate", need.min_aggregate),
                ] {
                    if limit.is_some_and(|l| l.is_sign_negative() && !l.is_zero()) {
                        problems.push(FieldError::new(
                            format!("rules[{i}].insurance[{j}].{name}"),
                            "must_not_be_negative",
                            "a minimum limit is not negative",
                        ));
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The rules that apply to work of `trade`.
    fn applicable<'a>(&'a self, trade: &'a TradeCode) -> impl Iterator<Item = &'a VendorRule> {
        self.rules.iter().filter(move |r| r.applies_to(trade))
    }
}

/// What eligibility reads of the contractor: its own records and requirement table.
#[derive(Clone, Copy, Debug)]
pub struct Vendor<'a> {
    /// Its licences.
    pub licenses: &'a [License],
    /// Its insurance policies.
    pub policies: &'a [InsurancePolicy],
    /// Its own requirement table.
    pub requirements: &'a Requirements,
    /// Whether its W-9 is on file.
    pub w9_on_file: bool,
}

/// The work a contractor is asked to take: its trade, where, and the requested days.
#[derive(Clone, Debug)]
pub struct Work<'a> {
    /// The trade.
    pub trade: &'a TradeCode,
    /// Where (the association's property).
    pub place: &'a Jurisdiction,
    /// The first requested day.
    pub from: NaiveDate,
    /// The last requested day (`from` or later).
    pub to: NaiveDate,
}

/// May the contractor take `work` for the association named `association`, whose vendor
/// requirements are `theirs`? The contractor's own table and the association's both apply, on
/// the first and the last requested day; every reason against is returned, once each.
pub fn eligibility(
    vendor: &Vendor<'_>,
    association: &Name,
    theirs: &VendorRequirements,
    work: &Work<'_>,
) -> ComplianceVerdict {
    let rules: Vec<&VendorRule> = theirs.applicable(work.trade).collect();
    // The association's licence rule joins the contractor's table; its insurance minimums go
    // through the check's hook for a work order's own minimums.
    let mut table = vendor.requirements.clone();
    if rules.iter().any(|r| r.license_required) {
        table.rules.push(RequirementRule {
            trade: Some(work.trade.clone()),
            jurisdiction: None,
            license_required: true,
            insurance: Vec::new(),
            certifications: Vec::new(),
        });
    }
    let minimums: Vec<InsuranceRequirement> = rules
        .iter()
        .flat_map(|r| r.insurance.iter().cloned())
        .collect();
    let mut reasons: Vec<ComplianceReason> = Vec::new();
    let mut required_certifications = Vec::new();
    let days: BTreeSet<NaiveDate> = [work.from, work.to.max(work.from)].into();
    for on in &days {
        let verdict = compliance::check(
            work.trade,
            work.place,
            *on,
            vendor.licenses,
            vendor.policies,
            &table,
            &minimums,
        );
        for reason in verdict.reasons {
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
        }
        required_certifications = verdict.required_certifications;
    }
    let named: BTreeSet<InsuranceKind> = rules
        .iter()
        .flat_map(|r| r.additional_insured.iter().copied())
        .collect();
    // The endorsement counts on a policy in force on every requested day: an expired policy
    // naming the association protects it no more than no policy.
    for kind in named {
        let names_them = vendor.policies.iter().any(|p| {
            p.kind == kind
                && days
                    .iter()
                    .all(|on| p.effective_on <= *on && !compliance::lapsed(*on, p.expires_on))
                && p.additional_insureds
                    .iter()
                    .any(|n| n.as_str().eq_ignore_ascii_case(association.as_str()))
        });
        if !names_them {
            reasons.push(ComplianceReason {
                code: "ADDITIONAL_INSURED_MISSING",
                message: format!(
                    "no {} policy names {association} as an additional insured",
                    kind.as_str()
                ),
                data: json!({ "kind": kind, "additionalInsured": association }),
            });
        }
    }
    if rules.iter().any(|r| r.w9_required) && !vendor.w9_on_file {
        reasons.push(ComplianceReason {
            code: "W9_MISSING",
            message: "no W-9 is on file".into(),
            data: json!({}),
        });
    }
    ComplianceVerdict {
        compliant: reasons.is_empty(),
        reasons,
        required_certifications,
    }
}

/// One reason against, as the association sees it: the code and, for insurance, the kind;
/// never the contractor's numbers, limits, dates or ids.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The reason's code (`INSURANCE_BELOW_MINIMUM`, `ADDITIONAL_INSURED_MISSING`, …).
    pub code: String,
    /// The kind of insurance it is about, for an insurance reason.
    pub kind: Option<InsuranceKind>,
}

/// What the association is told of a verdict: each distinct finding once, in order.
pub fn findings(verdict: &ComplianceVerdict) -> Vec<Finding> {
    let found: BTreeSet<Finding> = verdict
        .reasons
        .iter()
        .map(|r| Finding {
            code: r.code.to_owned(),
            kind: r
                .data
                .get("kind")
                .and_then(|k| serde_json::from_value(k.clone()).ok()),
        })
        .collect();
    found.into_iter().collect()
}

#[cfg(test)]
mod tests;
