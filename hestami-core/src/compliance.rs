//! Compliance: the licences and insurance an organization holds, the requirements it must meet,
//! and the gate "may this organization work trade T in jurisdiction J on date D".
//!
//! Requirements are data ([`Requirements`]), not code: a new organization starts from
//! [`Requirements::default_table`] and may change it, and a work order may add its own insurance
//! minimums on top ([`check`]'s `extra_minimums`). [`check`] returns every reason the answer is
//! no, so that a dispatcher sees "licence expired AND general liability below the minimum" at
//! once.
//!
//! Dates are whole local days: a licence or policy is valid on its expiry date and lapses the day
//! after ([`lapsed`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Invalid;
use crate::customer::CountryCode;
use crate::ids::{InsuranceId, LicenseId, TechnicianId, UserId};
use crate::text::{Name, TradeCode};
use crate::workforce::Certification;

/// Where work happens or a licence applies: a country, optionally a region (state, province:
/// upper-cased, such as `TX`) and a locality (city or county, compared without regard to case).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "JurisdictionWire")]
pub struct Jurisdiction {
    country: CountryCode,
    region: Option<String>,
    locality: Option<String>,
}

/// The wire form of [`Jurisdiction`], checked on the way in.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JurisdictionWire {
    country: CountryCode,
    region: Option<String>,
    locality: Option<String>,
}

impl TryFrom<JurisdictionWire> for Jurisdiction {
    type Error = Invalid;
    fn try_from(w: JurisdictionWire) -> Result<Self, Invalid> {
        Self::parse(w.country, w.region.as_deref(), w.locality.as_deref())
    }
}

impl Jurisdiction {
    /// Accepts a region of 1 to 10 ASCII letters, digits or hyphens (upper-cased) and a locality
    /// of 1 to 100 characters; blank ones count as absent. A locality needs a region.
    pub fn parse(
        country: CountryCode,
        region: Option<&str>,
        locality: Option<&str>,
    ) -> Result<Self, Invalid> {
        let region = region.map(str::trim).filter(|r| !r.is_empty());
        let region = match region {
            Some(r)
                if r.len() <= 10 && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
            {
                Some(r.to_ascii_uppercase())
            }
            Some(_) => {
                return Err(Invalid::new(
                    "invalid_region",
                    "a region is 1 to 10 letters, digits or hyphens, such as TX",
                ));
            }
            None => None,
        };
        let locality = locality.map(str::trim).filter(|l| !l.is_empty());
        let locality = match locality {
            Some(l)
                if l.chars().count() <= MAX_LOCALITY_CHARS && !l.chars().any(char::is_control) =>
            {
                Some(l.split_whitespace().collect::<Vec<_>>().join(" "))
            }
            Some(_) => {
                return Err(Invalid::new(
                    "invalid_locality",
                    "a locality is 1 to 100 characters",
                ));
            }
            None => None,
        };
        if locality.is_some() && region.is_none() {
            return Err(Invalid::new(
                "locality_without_region",
                "a locality needs a region",
            ));
        }
        Ok(Self {
            country,
            region,
            locality,
        })
    }

    /// The country.
    pub fn country(&self) -> &CountryCode {
        &self.country
    }

    /// The region, upper-cased.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The locality.
    pub fn locality(&self) -> Option<&str> {
        self.locality.as_deref()
    }

    /// Whether this jurisdiction (a rule's or a licence's) covers `place`: same country, and the
    /// same region and locality where this one names them; a missing region or locality here
    /// is a wildcard. A state licence (`US`, `TX`) covers work in Austin, TX; a city licence does
    /// not cover the rest of the state.
    pub fn matches(&self, place: &Jurisdiction) -> bool {
        self.country == place.country
            && self
                .region
                .as_ref()
                .is_none_or(|r| place.region.as_ref() == Some(r))
            && self.locality.as_ref().is_none_or(|l| {
                place
                    .locality
                    .as_ref()
                    .is_some_and(|p| p.to_lowercase() == l.to_lowercase())
            })
    }
}

impl std::fmt::Display for Jurisdiction {
    /// `US`, `US-TX` or `US-TX, Austin`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.country.as_str())?;
        if let Some(r) = &self.region {
            write!(f, "-{r}")?;
        }
        if let Some(l) = &self.locality {
            write!(f, ", {l}")?;
        }
        Ok(())
    }
}

/// Where a licence is in its verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenseStatus {
    /// Recorded, not yet checked by an owner or admin.
    Pending,
    /// Checked against the issuer.
    Verified,
    /// Checked and found wanting.
    Rejected,
}

/// A trade licence held by the organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct License {
    /// Its id.
    pub id: LicenseId,
    /// 1 on creation, +1 on each change.
    pub version: i64,
    /// The trade it licenses.
    pub trade: TradeCode,
    /// Where it applies.
    pub jurisdiction: Jurisdiction,
    /// The licence number.
    pub number: Name,
    /// When it was issued, when known; it is not valid before.
    pub issued_on: Option<NaiveDate>,
    /// The last day it is valid.
    pub expires_on: NaiveDate,
    /// A reference to the stored document.
    pub document_ref: Option<String>,
    /// Whether it has been verified.
    pub status: LicenseStatus,
    /// Who verified or rejected it.
    pub verified_by: Option<UserId>,
    /// When it was verified or rejected.
    pub verified_at: Option<DateTime<Utc>>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A kind of insurance (or a surety bond).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InsuranceKind {
    /// General liability.
    GeneralLiability,
    /// Workers' compensation.
    WorkersComp,
    /// Commercial auto.
    CommercialAuto,
    /// Umbrella (excess liability).
    Umbrella,
    /// A surety bond.
    Bond,
}

impl InsuranceKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GeneralLiability => "general_liability",
            Self::WorkersComp => "workers_comp",
            Self::CommercialAuto => "commercial_auto",
            Self::Umbrella => "umbrella",
            Self::Bond => "bond",
        }
    }
}

/// An insurance policy or bond held by the organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InsurancePolicy {
    /// Its id.
    pub id: InsuranceId,
    /// 1 on creation, +1 on each change.
    pub version: i64,
    /// What it insures.
    pub kind: InsuranceKind,
    /// The insurer.
    pub carrier: Name,
    /// The policy number.
    pub policy_number: Name,
    /// Cover per occurrence, in the organization's currency.
    pub per_occurrence_limit: Decimal,
    /// Cover over the policy term.
    pub aggregate_limit: Decimal,
    /// The first day it covers.
    pub effective_on: NaiveDate,
    /// The last day it covers.
    pub expires_on: NaiveDate,
    /// A reference to the stored certificate of insurance.
    pub certificate_ref: Option<String>,
    /// The parties the certificate names as additional insureds (a community association
    /// may require to be one).
    #[serde(default)]
    pub additional_insureds: Vec<Name>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A kind of insurance that must be held, with its minimum limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InsuranceRequirement {
    /// The kind.
    pub kind: InsuranceKind,
    /// The least cover per occurrence, if any.
    pub min_per_occurrence: Option<Decimal>,
    /// The least aggregate cover, if any.
    pub min_aggregate: Option<Decimal>,
}

/// One requirement rule: what work of a trade (or of every trade) in a jurisdiction (or
/// anywhere) needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequirementRule {
    /// The trade; `None` (`null` on the wire) means every trade.
    pub trade: Option<TradeCode>,
    /// Where; `None` means everywhere. Matched with [`Jurisdiction::matches`].
    pub jurisdiction: Option<Jurisdiction>,
    /// Whether a verified, unexpired licence for the trade, covering the place, is needed.
    pub license_required: bool,
    /// The insurance needed.
    #[serde(default)]
    pub insurance: Vec<InsuranceRequirement>,
    /// Certifications the technician doing the work must hold (by name); enforced by
    /// eligibility, not by the organization's compliance.
    #[serde(default)]
    pub certifications: Vec<Name>,
}

impl RequirementRule {
    /// Whether the rule applies to work of `trade` at `place`.
    pub fn applies_to(&self, trade: &TradeCode, place: &Jurisdiction) -> bool {
        self.trade.as_ref().is_none_or(|t| t == trade)
            && self.jurisdiction.as_ref().is_none_or(|j| j.matches(place))
    }
}

/// An organization's requirement table. Every rule that applies to a piece of work applies:
/// a licence is needed if any rule says so, each kind of insurance at the highest minimum any
/// rule sets, and every certification any rule names.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Requirements {
    /// The rules.
    pub rules: Vec<RequirementRule>,
}

/// The longest locality (a city or county) a jurisdiction names, in characters.
pub const MAX_LOCALITY_CHARS: usize = 100;

/// The trades that need a licence in the shipped default table.
pub const DEFAULT_LICENSED_TRADES: [&str; 4] = ["plumbing", "electrical", "hvac", "gas_fitting"];

impl Requirements {
    /// The table a new organization starts from: a licence for plumbing, electrical, hvac and
    /// gas fitting anywhere, and general liability of at least 1,000,000 per occurrence for
    /// every trade (a rule with no trade and no jurisdiction).
    pub fn default_table() -> Self {
        let mut rules: Vec<RequirementRule> = DEFAULT_LICENSED_TRADES
            .iter()
            .map(|t| RequirementRule {
                // Invariant: the constants are valid trade codes (a test parses them all).
                trade: Some(TradeCode::parse(t).expect("default trades are valid codes")),
                jurisdiction: None,
                license_required: true,
                insurance: Vec::new(),
                certifications: Vec::new(),
            })
            .collect();
        rules.push(RequirementRule {
            trade: None,
            jurisdiction: None,
            license_required: false,
            insurance: vec![InsuranceRequirement {
                kind: InsuranceKind::GeneralLiability,
                min_per_occurrence: Some(Decimal::from(1_000_000)),
                min_aggregate: None,
            }],
            certifications: Vec::new(),
        });
        Self { rules }
    }

    /// The certifications the rules for `trade` at `place` ask of the technician, sorted,
    /// without duplicates (ignoring case).
    pub fn certifications_for(&self, trade: &TradeCode, place: &Jurisdiction) -> Vec<Name> {
        let mut seen = BTreeSet::new();
        let mut out: Vec<Name> = Vec::new();
        for rule in self.rules.iter().filter(|r| r.applies_to(trade, place)) {
            for name in &rule.certifications {
                if seen.insert(name.as_str().to_lowercase()) {
                    out.push(name.clone());
                }
            }
        }
        out.sort_by_key(|n| n.as_str().to_lowercase());
        out
    }
}

/// One reason an organization is not compliant.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceReason {
    /// A stable code: `LICENSE_MISSING`, `LICENSE_EXPIRED`, `LICENSE_NOT_YET_VALID`,
    /// `LICENSE_UNVERIFIED`, `LICENSE_REJECTED`, `INSURANCE_MISSING`, `INSURANCE_EXPIRED`,
    /// `INSURANCE_NOT_YET_EFFECTIVE`, `INSURANCE_BELOW_MINIMUM` or (at scheduling, see
    /// [`outside_service_areas`]) `OUTSIDE_SERVICE_AREA`.
    pub code: &'static str,
    /// A sentence for a person.
    pub message: String,
    /// What failed: ids, dates, required and actual limits.
    pub data: Value,
}

/// The answer to "may the organization do this work": yes, or every reason why not.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceVerdict {
    /// Whether there is no reason against.
    pub compliant: bool,
    /// Every reason against, licences first, then insurance by kind.
    pub reasons: Vec<ComplianceReason>,
    /// Certifications the applicable rules ask of the technician doing the work (checked by
    /// eligibility, not part of `compliant`).
    pub required_certifications: Vec<Name>,
}

impl ComplianceVerdict {
    /// A verdict with no reasons against and no certifications asked.
    pub fn compliant() -> Self {
        Self {
            compliant: true,
            reasons: Vec::new(),
            required_certifications: Vec::new(),
        }
    }
}

/// Why the organization may not take work at a place: none of its service areas covers it for
/// the trade. `None` when one does. Scheduling adds this reason to [`check`]'s: the seed names
/// service-area boundaries among the safety rules, and a job nobody may take should be refused
/// when it is scheduled, not when a technician is sought.
pub fn outside_service_areas(
    areas: &[crate::area::ServiceArea],
    location: Option<crate::customer::GeoPoint>,
    postal_code: &crate::customer::PostalCode,
    trade: &TradeCode,
) -> Option<ComplianceReason> {
    let message = crate::area::outside_organization_areas(areas, location, postal_code, trade)?;
    Some(reason(
        "OUTSIDE_SERVICE_AREA",
        message,
        json!({ "postalCode": postal_code, "location": location, "trade": trade }),
    ))
}

fn reason(code: &'static str, message: String, data: Value) -> ComplianceReason {
    ComplianceReason {
        code,
        message,
        data,
    }
}

/// Why one licence does not make the work compliant on `on`; empty when it does.
fn license_problems(l: &License, on: NaiveDate) -> Vec<ComplianceReason> {
    let base = json!({
        "licenseId": l.id,
        "number": l.number,
        "trade": l.trade,
        "jurisdiction": l.jurisdiction,
    });
    let with = |extra: Value| {
        let mut data = base.clone();
        if let (Some(d), Value::Object(e)) = (data.as_object_mut(), extra) {
            d.extend(e);
        }
        data
    };
    let mut out = Vec::new();
    if lapsed(on, l.expires_on) {
        out.push(reason(
            "LICENSE_EXPIRED",
            format!(
                "the {} licence {} for {} expired on {}",
                l.trade, l.number, l.jurisdiction, l.expires_on
            ),
            with(json!({ "expiresOn": l.expires_on })),
        ));
    }
    if let Some(issued) = l.issued_on.filter(|d| *d > on) {
        out.push(reason(
            "LICENSE_NOT_YET_VALID",
            format!(
                "the {} licence {} is valid from {issued}",
                l.trade, l.number
            ),
            with(json!({ "issuedOn": issued })),
        ));
    }
    match l.status {
        LicenseStatus::Verified => {}
        LicenseStatus::Pending => out.push(reason(
            "LICENSE_UNVERIFIED",
            format!("the {} licence {} is not verified yet", l.trade, l.number),
            with(json!({ "status": l.status })),
        )),
        LicenseStatus::Rejected => out.push(reason(
            "LICENSE_REJECTED",
            format!("the {} licence {} was rejected", l.trade, l.number),
            with(json!({ "status": l.status })),
        )),
    }
    out
}

/// Why one policy does not meet `need` on `on`; empty when it does.
fn policy_problems(
    p: &InsurancePolicy,
    need: &(Option<Decimal>, Option<Decimal>),
    on: NaiveDate,
) -> Vec<ComplianceReason> {
    let kind = p.kind.as_str();
    let mut out = Vec::new();
    if lapsed(on, p.expires_on) {
        out.push(reason(
            "INSURANCE_EXPIRED",
            format!(
                "the {kind} policy {} expired on {}",
                p.policy_number, p.expires_on
            ),
            json!({ "policyId": p.id, "kind": p.kind, "expiresOn": p.expires_on }),
        ));
    }
    if on < p.effective_on {
        out.push(reason(
            "INSURANCE_NOT_YET_EFFECTIVE",
            format!(
                "the {kind} policy {} takes effect on {}",
                p.policy_number, p.effective_on
            ),
            json!({ "policyId": p.id, "kind": p.kind, "effectiveOn": p.effective_on }),
        ));
    }
    let limits = [
        (
            "perOccurrence",
            "per occurrence",
            need.0,
            p.per_occurrence_limit,
        ),
        ("aggregate", "aggregate", need.1, p.aggregate_limit),
    ];
    for (key, words, required, actual) in limits {
        if let Some(required) = required.filter(|r| actual < *r) {
            out.push(reason(
                "INSURANCE_BELOW_MINIMUM",
                format!(
                    "the {kind} policy {} covers {actual} {words}; at least {required} is required",
                    p.policy_number
                ),
                json!({
                    "policyId": p.id,
                    "kind": p.kind,
                    "limit": key,
                    "required": required,
                    "actual": actual,
                }),
            ));
        }
    }
    out
}

/// May the organization do work of `trade` at `place` on `on`? Applies every rule of
/// `requirements` that matches, plus `extra_minimums` (a work order's own), and returns every
/// reason against. A requirement is met when at least one licence (or one policy of the kind)
/// passes every check; when none does, the problems of each candidate are all reported.
pub fn check(
    trade: &TradeCode,
    place: &Jurisdiction,
    on: NaiveDate,
    licenses: &[License],
    policies: &[InsurancePolicy],
    requirements: &Requirements,
    extra_minimums: &[InsuranceRequirement],
) -> ComplianceVerdict {
    let applicable: Vec<&RequirementRule> = requirements
        .rules
        .iter()
        .filter(|r| r.applies_to(trade, place))
        .collect();
    let mut reasons = Vec::new();

    if applicable.iter().any(|r| r.license_required) {
        let mut candidates: Vec<&License> = licenses
            .iter()
            .filter(|l| &l.trade == trade && l.jurisdiction.matches(place))
            .collect();
        candidates.sort_by_key(|l| (std::cmp::Reverse(l.expires_on), l.id));
        if candidates.is_empty() {
            reasons.push(reason(
                "LICENSE_MISSING",
                format!("no {trade} licence covers {place}"),
                json!({ "trade": trade, "jurisdiction": place }),
            ));
        } else {
            let problems: Vec<Vec<ComplianceReason>> =
                candidates.iter().map(|l| license_problems(l, on)).collect();
            if problems.iter().all(|p| !p.is_empty()) {
                reasons.extend(problems.into_iter().flatten());
            }
        }
    }

    let mut needs: BTreeMap<InsuranceKind, (Option<Decimal>, Option<Decimal>)> = BTreeMap::new();
    let all_needs = applicable
        .iter()
        .flat_map(|r| r.insurance.iter())
        .chain(extra_minimums);
    for need in all_needs {
        let entry = needs.entry(need.kind).or_default();
        entry.0 = entry.0.max(need.min_per_occurrence);
        entry.1 = entry.1.max(need.min_aggregate);
    }
    for (kind, need) in &needs {
        let mut candidates: Vec<&InsurancePolicy> =
            policies.iter().filter(|p| p.kind == *kind).collect();
        candidates.sort_by_key(|p| (std::cmp::Reverse(p.expires_on), p.id));
        if candidates.is_empty() {
            reasons.push(reason(
                "INSURANCE_MISSING",
                format!("no {} insurance is on file", kind.as_str()),
                json!({
                    "kind": kind,
                    "minPerOccurrence": need.0,
                    "minAggregate": need.1,
                }),
            ));
            continue;
        }
        let problems: Vec<Vec<ComplianceReason>> = candidates
            .iter()
            .map(|p| policy_problems(p, need, on))
            .collect();
        if problems.iter().all(|p| !p.is_empty()) {
            reasons.extend(problems.into_iter().flatten());
        }
    }

    ComplianceVerdict {
        compliant: reasons.is_empty(),
        reasons,
        required_certifications: requirements.certifications_for(trade, place),
    }
}

/// The compliance of one trade in one jurisdiction.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TradeCompliance {
    /// The trade.
    pub trade: TradeCode,
    /// Where.
    pub jurisdiction: Jurisdiction,
    /// The answer.
    pub verdict: ComplianceVerdict,
}

/// The organization's compliance on `on` for every (trade, jurisdiction) it holds a licence for
/// or has a rule naming both, and for every trade named by a rule without a jurisdiction in each
/// of `work_in` (the jurisdictions it works in, such as those of its properties or profile).
/// Sorted by trade, then jurisdiction.
pub fn status(
    on: NaiveDate,
    work_in: &[Jurisdiction],
    licenses: &[License],
    policies: &[InsurancePolicy],
    requirements: &Requirements,
) -> Vec<TradeCompliance> {
    let mut pairs: BTreeSet<(TradeCode, Jurisdiction)> = licenses
        .iter()
        .map(|l| (l.trade.clone(), l.jurisdiction.clone()))
        .collect();
    for rule in &requirements.rules {
        let Some(trade) = &rule.trade else { continue };
        match &rule.jurisdiction {
            Some(j) => {
                pairs.insert((trade.clone(), j.clone()));
            }
            None => pairs.extend(work_in.iter().map(|j| (trade.clone(), j.clone()))),
        }
    }
    pairs
        .into_iter()
        .map(|(trade, jurisdiction)| TradeCompliance {
            verdict: check(
                &trade,
                &jurisdiction,
                on,
                licenses,
                policies,
                requirements,
                &[],
            ),
            trade,
            jurisdiction,
        })
        .collect()
}

/// What kind of thing expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiringKind {
    /// An organization's licence.
    License,
    /// An organization's insurance policy.
    Insurance,
    /// A technician's certification.
    Certification,
}

/// Something that lapses soon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiringItem {
    /// What kind.
    pub kind: ExpiringKind,
    /// Its id (a licence, policy or certification id, by `kind`).
    pub id: Uuid,
    /// Whose certification, for a certification.
    pub technician_id: Option<TechnicianId>,
    /// A label for a person, such as `plumbing licence 12345 (US-TX)`.
    pub label: String,
    /// Its last valid day.
    pub expires_on: NaiveDate,
    /// Days from `on` to `expires_on`: 0 when it expires today.
    pub days_left: i64,
}

/// Licences (other than rejected ones), policies and certifications whose last valid day is
/// between `on` and `within_days` later, inclusive; sorted by expiry, kind and id.
pub fn expiring(
    on: NaiveDate,
    within_days: u32,
    licenses: &[License],
    policies: &[InsurancePolicy],
    certifications: &[(TechnicianId, Certification)],
) -> Vec<ExpiringItem> {
    let days_left = |d: NaiveDate| (d - on).num_days();
    let soon = |d: NaiveDate| (0..=i64::from(within_days)).contains(&days_left(d));
    let mut out: Vec<ExpiringItem> = Vec::new();
    for l in licenses
        .iter()
        .filter(|l| l.status != LicenseStatus::Rejected && soon(l.expires_on))
    {
        out.push(ExpiringItem {
            kind: ExpiringKind::License,
            id: l.id.as_uuid(),
            technician_id: None,
            label: format!("{} licence {} ({})", l.trade, l.number, l.jurisdiction),
            expires_on: l.expires_on,
            days_left: days_left(l.expires_on),
        });
    }
    for p in policies.iter().filter(|p| soon(p.expires_on)) {
        out.push(ExpiringItem {
            kind: ExpiringKind::Insurance,
            id: p.id.as_uuid(),
            technician_id: None,
            label: format!(
                "{} policy {} ({})",
                p.kind.as_str(),
                p.policy_number,
                p.carrier
            ),
            expires_on: p.expires_on,
            days_left: days_left(p.expires_on),
        });
    }
    for (tech, c) in certifications {
        if let Some(expires_on) = c.expires_on.filter(|d| soon(*d)) {
            out.push(ExpiringItem {
                kind: ExpiringKind::Certification,
                id: c.id.as_uuid(),
                technician_id: Some(*tech),
                label: format!("{} ({})", c.name, c.issuer),
                expires_on,
                days_left: days_left(expires_on),
            });
        }
    }
    out.sort_by_key(|i| (i.expires_on, i.kind, i.id));
    out
}

/// The days before expiry on which the daily scan records a reminder.
pub const REMINDER_DAYS: [u32; 3] = [30, 7, 1];

/// The reminder due on `on` for something whose last valid day is `expires_on`: `Some(30)`,
/// `Some(7)` or `Some(1)` when it is exactly that many days away, otherwise `None`.
pub fn reminders_due(on: NaiveDate, expires_on: NaiveDate) -> Option<u32> {
    let days = (expires_on - on).num_days();
    REMINDER_DAYS.into_iter().find(|&d| i64::from(d) == days)
}

/// Whether something whose last valid day is `expires_on` has lapsed by `on`.
pub fn lapsed(on: NaiveDate, expires_on: NaiveDate) -> bool {
    on > expires_on
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ids::CertificationId;

    pub(crate) fn d(s: &str) -> NaiveDate {
        s.parse().expect("valid date")
    }

    pub(crate) fn t(s: &str) -> TradeCode {
        TradeCode::parse(s).expect("valid trade")
    }

    pub(crate) fn j(country: &str, region: Option<&str>, locality: Option<&str>) -> Jurisdiction {
        Jurisdiction::parse(
            CountryCode::parse(country).expect("valid country"),
            region,
            locality,
        )
        .expect("valid jurisdiction")
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000, 0).expect("valid instant")
    }

    pub(crate) fn licence(n: u128, trade: &str, place: Jurisdiction, expires: &str) -> License {
        License {
            id: LicenseId::from_uuid(Uuid::from_u128(n)),
            version: 1,
            trade: t(trade),
            jurisdiction: place,
            number: Name::parse(&format!("L-{n}")).expect("valid"),
            issued_on: None,
            expires_on: d(expires),
            document_ref: None,
            status: LicenseStatus::Verified,
            verified_by: None,
            verified_at: None,
            created_at: at(),
            updated_at: at(),
        }
    }

    pub(crate) fn policy(
        n: u128,
        kind: InsuranceKind,
        per: i64,
        from: &str,
        to: &str,
    ) -> InsurancePolicy {
        InsurancePolicy {
            id: InsuranceId::from_uuid(Uuid::from_u128(n)),
            version: 1,
            kind,
            carrier: Name::parse("Acme Mutual").expect("valid"),
            policy_number: Name::parse(&format!("P-{n}")).expect("valid"),
            per_occurrence_limit: Decimal::from(per),
            aggregate_limit: Decimal::from(per * 2),
            effective_on: d(from),
            expires_on: d(to),
            certificate_ref: None,
            additional_insureds: Vec::new(),
            created_at: at(),
            updated_at: at(),
        }
    }

    fn codes(v: &ComplianceVerdict) -> Vec<&'static str> {
        v.reasons.iter().map(|r| r.code).collect()
    }

    #[test]
    fn jurisdictions_match_with_wildcards() {
        let austin = j("us", Some("tx"), Some("Austin"));
        assert_eq!(austin.to_string(), "US-TX, Austin");
        assert!(j("US", None, None).matches(&austin));
        assert!(j("US", Some("TX"), None).matches(&austin));
        assert!(j("US", Some("TX"), Some("AUSTIN")).matches(&austin));
        assert!(!j("US", Some("TX"), Some("Dallas")).matches(&austin));
        assert!(!j("US", Some("CA"), None).matches(&austin));
        assert!(!j("CA", None, None).matches(&austin));
        assert!(!austin.matches(&j("US", Some("TX"), None)));
        let us = CountryCode::parse("US").expect("valid");
        assert!(Jurisdiction::parse(us.clone(), None, Some("Austin")).is_err());
        assert!(Jurisdiction::parse(us.clone(), Some("T X!"), None).is_err());
        assert_eq!(
            Jurisdiction::parse(us, Some("  "), None).map(|j| j.region().map(str::to_owned)),
            Ok(None)
        );
        let back: Jurisdiction =
            serde_json::from_value(serde_json::to_value(&austin).expect("serializes"))
                .expect("deserializes");
        assert_eq!(back, austin);
    }

    #[test]
    fn the_default_table_needs_licences_and_liability() {
        for trade in DEFAULT_LICENSED_TRADES {
            assert!(TradeCode::parse(trade).is_ok());
        }
        let table = Requirements::default_table();
        let tx = j("US", Some("TX"), None);
        let on = d("2031-06-01");
        let v = check(&t("plumbing"), &tx, on, &[], &[], &table, &[]);
        assert_eq!(codes(&v), ["LICENSE_MISSING", "INSURANCE_MISSING"]);
        assert!(!v.compliant);
        // Painting needs no licence, only the liability insurance.
        let v = check(&t("painting"), &tx, on, &[], &[], &table, &[]);
        assert_eq!(codes(&v), ["INSURANCE_MISSING"]);
        let gl = policy(
            1,
            InsuranceKind::GeneralLiability,
            1_000_000,
            "2031-01-01",
            "2031-12-31",
        );
        let lic = licence(2, "plumbing", j("US", Some("TX"), None), "2032-01-01");
        let v = check(&t("plumbing"), &tx, on, &[lic], &[gl], &table, &[]);
        assert!(v.compliant, "{v:?}");
    }

    #[test]
    fn every_reason_is_returned() {
        let table = Requirements::default_table();
        let place = j("US", Some("TX"), Some("Austin"));
        let on = d("2031-06-01");
        let mut expired = licence(1, "plumbing", j("US", Some("TX"), None), "2031-05-31");
        expired.status = LicenseStatus::Pending;
        let mut rejected = licence(2, "plumbing", place.clone(), "2032-05-31");
        rejected.status = LicenseStatus::Rejected;
        // Another state's licence is not a candidate.
        let elsewhere = licence(3, "plumbing", j("US", Some("CA"), None), "2032-01-01");
        let low = policy(
            4,
            InsuranceKind::GeneralLiability,
            500_000,
            "2031-01-01",
            "2031-12-31",
        );
        let future = policy(
            5,
            InsuranceKind::GeneralLiability,
            2_000_000,
            "2031-07-01",
            "2032-06-30",
        );
        let v = check(
            &t("plumbing"),
            &place,
            on,
            &[expired, rejected, elsewhere],
            &[low, future],
            &table,
            &[InsuranceRequirement {
                kind: InsuranceKind::WorkersComp,
                min_per_occurrence: None,
                min_aggregate: None,
            }],
        );
        let rendered: Vec<String> = v
            .reasons
            .iter()
            .map(|r| format!("{} | {} | {}", r.code, r.message, r.data))
            .collect();
        expect_test::expect![[r#"
            [
                "LICENSE_REJECTED | the plumbing licence L-2 was rejected | {\"jurisdiction\":{\"country\":\"US\",\"locality\":\"Austin\",\"region\":\"TX\"},\"licenseId\":\"00000000-0000-0000-0000-000000000002\",\"number\":\"L-2\",\"status\":\"rejected\",\"trade\":\"plumbing\"}",
                "LICENSE_EXPIRED | the plumbing licence L-1 for US-TX expired on 2031-05-31 | {\"expiresOn\":\"2031-05-31\",\"jurisdiction\":{\"country\":\"US\",\"locality\":null,\"region\":\"TX\"},\"licenseId\":\"00000000-0000-0000-0000-000000000001\",\"number\":\"L-1\",\"trade\":\"plumbing\"}",
                "LICENSE_UNVERIFIED | the plumbing licence L-1 is not verified yet | {\"jurisdiction\":{\"country\":\"US\",\"locality\":null,\"region\":\"TX\"},\"licenseId\":\"00000000-0000-0000-0000-000000000001\",\"number\":\"L-1\",\"status\":\"pending\",\"trade\":\"plumbing\"}",
                "INSURANCE_NOT_YET_EFFECTIVE | the general_liability policy P-5 takes effect on 2031-07-01 | {\"effectiveOn\":\"2031-07-01\",\"kind\":\"general_liability\",\"policyId\":\"00000000-0000-0000-0000-000000000005\"}",
                "INSURANCE_BELOW_MINIMUM | the general_liability policy P-4 covers 500000 per occurrence; at least 1000000 is required | {\"actual\":\"500000\",\"kind\":\"general_liability\",\"limit\":\"perOccurrence\",\"policyId\":\"00000000-0000-0000-0000-000000000004\",\"required\":\"1000000\"}",
                "INSURANCE_MISSING | no workers_comp insurance is on file | {\"kind\":\"workers_comp\",\"minAggregate\":null,\"minPerOccurrence\":null}",
            ]
        "#]]
        .assert_debug_eq(&rendered);
    }

    #[test]
    fn one_good_candidate_is_enough_and_minimums_combine() {
        let place = j("US", Some("TX"), None);
        let on = d("2031-06-01");
        let old = policy(
            1,
            InsuranceKind::GeneralLiability,
            5_000_000,
            "2030-01-01",
            "2030-12-31",
        );
        let good = policy(
            2,
            InsuranceKind::GeneralLiability,
            2_000_000,
            "2031-01-01",
            "2031-12-31",
        );
        let table = Requirements::default_table();
        let v = check(
            &t("painting"),
            &place,
            on,
            &[],
            &[old.clone(), good.clone()],
            &table,
            &[],
        );
        assert!(v.compliant);
        // A work order asking for 3,000,000 raises the bar; each candidate's problems show.
        let extra = [InsuranceRequirement {
            kind: InsuranceKind::GeneralLiability,
            min_per_occurrence: Some(Decimal::from(3_000_000)),
            min_aggregate: Some(Decimal::from(1)),
        }];
        let v = check(
            &t("painting"),
            &place,
            on,
            &[],
            &[old, good],
            &table,
            &extra,
        );
        assert_eq!(codes(&v), ["INSURANCE_BELOW_MINIMUM", "INSURANCE_EXPIRED"]);
        assert_eq!(v.reasons[1].data["expiresOn"], "2030-12-31");
        assert_eq!(v.reasons[0].data["required"], "3000000");
    }

    #[test]
    fn licence_validity_bounds_are_inclusive() {
        let table = Requirements::default_table();
        let place = j("US", Some("TX"), None);
        let gl = policy(
            1,
            InsuranceKind::GeneralLiability,
            1_000_000,
            "2031-06-01",
            "2031-06-30",
        );
        let mut lic = licence(2, "hvac", place.clone(), "2031-06-30");
        lic.issued_on = Some(d("2031-06-01"));
        let ok = |on: &str| {
            check(
                &t("hvac"),
                &place,
                d(on),
                std::slice::from_ref(&lic),
                std::slice::from_ref(&gl),
                &table,
                &[],
            )
        };
        assert!(ok("2031-06-01").compliant);
        assert!(ok("2031-06-30").compliant);
        assert_eq!(
            codes(&ok("2031-07-01")),
            ["LICENSE_EXPIRED", "INSURANCE_EXPIRED"]
        );
        assert_eq!(
            codes(&ok("2031-05-31")),
            ["LICENSE_NOT_YET_VALID", "INSURANCE_NOT_YET_EFFECTIVE"]
        );
    }

    #[test]
    fn status_covers_licences_and_rules() {
        let tx = j("US", Some("TX"), None);
        let ok_gl = policy(
            1,
            InsuranceKind::GeneralLiability,
            1_000_000,
            "2031-01-01",
            "2031-12-31",
        );
        let lic = licence(2, "electrical", tx.clone(), "2031-12-31");
        let mut table = Requirements::default_table();
        table.rules.push(RequirementRule {
            trade: Some(t("roofing")),
            jurisdiction: Some(j("US", Some("FL"), None)),
            license_required: true,
            insurance: vec![],
            certifications: vec![Name::parse("OSHA 10").expect("valid")],
        });
        let rows = status(
            d("2031-06-01"),
            std::slice::from_ref(&tx),
            &[lic],
            &[ok_gl],
            &table,
        );
        let rendered: Vec<String> = rows
            .iter()
            .map(|r| format!("{} {} {:?}", r.trade, r.jurisdiction, codes(&r.verdict)))
            .collect();
        assert_eq!(
            rendered,
            [
                "electrical US-TX []",
                "gas_fitting US-TX [\"LICENSE_MISSING\"]",
                "hvac US-TX [\"LICENSE_MISSING\"]",
                "plumbing US-TX [\"LICENSE_MISSING\"]",
                "roofing US-FL [\"LICENSE_MISSING\"]",
            ]
        );
        assert_eq!(
            rows[4].verdict.required_certifications[0].as_str(),
            "OSHA 10"
        );
    }

    #[test]
    fn expiring_items_and_reminders() {
        let on = d("2031-06-01");
        let tx = j("US", Some("TX"), None);
        let lic = licence(1, "plumbing", tx.clone(), "2031-06-08");
        let mut rejected = licence(2, "hvac", tx, "2031-06-02");
        rejected.status = LicenseStatus::Rejected;
        let gl = policy(
            3,
            InsuranceKind::GeneralLiability,
            1,
            "2031-01-01",
            "2031-07-01",
        );
        let old = policy(4, InsuranceKind::Bond, 1, "2030-01-01", "2031-05-31");
        let tech = TechnicianId::from_uuid(Uuid::from_u128(9));
        let cert = Certification {
            id: CertificationId::from_uuid(Uuid::from_u128(5)),
            name: Name::parse("EPA 608").expect("valid"),
            issuer: Name::parse("EPA").expect("valid"),
            number: None,
            expires_on: Some(on),
            trades: vec![],
            created_at: at(),
        };
        let items = expiring(on, 30, &[lic, rejected], &[gl, old], &[(tech, cert)]);
        let rendered: Vec<String> = items
            .iter()
            .map(|i| format!("{:?} {} {} {}", i.kind, i.label, i.expires_on, i.days_left))
            .collect();
        assert_eq!(
            rendered,
            [
                "Certification EPA 608 (EPA) 2031-06-01 0",
                "License plumbing licence L-1 (US-TX) 2031-06-08 7",
                "Insurance general_liability policy P-3 (Acme Mutual) 2031-07-01 30",
            ]
        );
        assert_eq!(reminders_due(on, d("2031-07-01")), Some(30));
        assert_eq!(reminders_due(on, d("2031-06-08")), Some(7));
        assert_eq!(reminders_due(on, d("2031-06-02")), Some(1));
        for none in ["2031-06-01", "2031-06-03", "2031-07-02", "2031-05-31"] {
            assert_eq!(reminders_due(on, d(none)), None, "{none}");
        }
        assert!(!lapsed(on, on));
        assert!(lapsed(on, d("2031-05-31")));
    }
}
