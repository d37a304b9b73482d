//! `contractor/v1`: the organization's onboarding and compliance: profile, licences, insurance,
//! service areas, the requirement table and what it says today.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::Invalid;
use hestami_core::area::{AreaKind, MultiPolygon, RadiusKm, ServiceArea};
use hestami_core::compliance::{
    ComplianceReason, ExpiringItem, ExpiringKind, InsuranceKind, InsurancePolicy,
    InsuranceRequirement, Jurisdiction, License, LicenseStatus, RequirementRule, Requirements,
    TradeCompliance,
};
use hestami_core::customer::{CountryCode, GeoPoint, PostalCode};
use hestami_core::ids::{InsuranceId, LicenseId};
use hestami_core::org::TimeZone;
use hestami_core::text::{Email, Name as PersonName, Phone, TradeCode};
use hestami_core::trade::TradeCatalogue;
use hestami_store::app::Patch;
use hestami_store::app::contractor::{
    AreaSet, ContractorCommand, InsuranceUpdate, LicenseUpdate, NewInsurance, NewLicense, Profile,
    ProfileUpdate, RequirementsDoc,
};
use hestami_store::app::trades::TradesDoc;

use super::Empty;
use super::customer::{LocationDto, patch};
use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, Validator, double_option, mutation, query, validate};

// ---------------------------------------------------------------------------------------------
// Shared wire shapes (also used by `technician/v1`).
// ---------------------------------------------------------------------------------------------

/// Where a licence or a rule applies: a country, optionally a region and a locality in it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JurisdictionDto {
    /// ISO 3166-1 alpha-2 country code, such as `US`.
    pub country: String,
    /// State, province or region code, such as `TX`.
    #[serde(default)]
    pub region: Option<String>,
    /// City or county (needs a region).
    #[serde(default)]
    pub locality: Option<String>,
}

impl From<&Jurisdiction> for JurisdictionDto {
    fn from(j: &Jurisdiction) -> Self {
        Self {
            country: j.country().as_str().to_owned(),
            region: j.region().map(str::to_owned),
            locality: j.locality().map(str::to_owned),
        }
    }
}

/// Parses a jurisdiction at `path`, recording every field at fault.
pub(crate) fn jurisdiction(
    v: &mut Validator,
    path: &str,
    j: &JurisdictionDto,
) -> Option<Jurisdiction> {
    let country = v.check(&format!("{path}.country"), CountryCode::parse(&j.country))?;
    match Jurisdiction::parse(country, j.region.as_deref(), j.locality.as_deref()) {
        Ok(place) => Some(place),
        Err(invalid) => {
            let field = if invalid.code == "invalid_region" {
                "region"
            } else {
                "locality"
            };
            v.fail(&format!("{path}.{field}"), invalid.code, &invalid.message);
            None
        }
    }
}

/// A service area, by `kind`: `postalCodes`, `polygon` or `radius`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum AreaDto {
    /// A set of postal codes.
    #[serde(rename_all = "camelCase")]
    PostalCodes {
        /// The codes; `12345` also covers `12345-6789`, `K1A` covers `K1A 0B1`.
        postal_codes: Vec<String>,
        /// The trades taken there; empty or absent: every trade.
        #[serde(default)]
        trades: Vec<String>,
    },
    /// A GeoJSON geometry.
    #[serde(rename_all = "camelCase")]
    Polygon {
        /// A GeoJSON `Polygon` or `MultiPolygon` geometry object (returned as a
        /// `MultiPolygon`).
        #[schema(value_type = Object)]
        geojson: serde_json::Value,
        /// The trades taken there; empty or absent: every trade.
        #[serde(default)]
        trades: Vec<String>,
    },
    /// Everything within a distance of a point.
    #[serde(rename_all = "camelCase")]
    Radius {
        /// The centre.
        center: LocationDto,
        /// The distance, more than 0 and at most 1000 km.
        radius_km: f64,
        /// The trades taken there; empty or absent: every trade.
        #[serde(default)]
        trades: Vec<String>,
    },
}

impl From<&ServiceArea> for AreaDto {
    fn from(a: &ServiceArea) -> Self {
        let trades = a.trades.iter().map(|t| t.as_str().to_owned()).collect();
        match &a.kind {
            AreaKind::PostalCodes { postal_codes } => Self::PostalCodes {
                postal_codes: postal_codes.iter().map(|p| p.as_str().to_owned()).collect(),
                trades,
            },
            AreaKind::Polygon { geojson } => Self::Polygon {
                geojson: geojson.to_geojson(),
                trades,
            },
            AreaKind::Radius { center, radius_km } => Self::Radius {
                center: LocationDto {
                    lat: center.lat(),
                    lon: center.lon(),
                },
                radius_km: radius_km.km(),
                trades,
            },
        }
    }
}

/// Parses a list of trade codes at `path`.
pub(crate) fn trade_list(v: &mut Validator, path: &str, raw: &[String]) -> Option<Vec<TradeCode>> {
    let parsed: Vec<Option<TradeCode>> = raw
        .iter()
        .enumerate()
        .map(|(n, t)| v.check(&format!("{path}[{n}]"), TradeCode::parse(t)))
        .collect();
    parsed.into_iter().collect()
}

/// Parses a list of names (certifications) at `path`.
pub(crate) fn name_list(v: &mut Validator, path: &str, raw: &[String]) -> Option<Vec<PersonName>> {
    let parsed: Vec<Option<PersonName>> = raw
        .iter()
        .enumerate()
        .map(|(n, t)| v.check(&format!("{path}[{n}]"), PersonName::parse(t)))
        .collect();
    parsed.into_iter().collect()
}

/// At most this many areas in one set.
const MAX_AREAS: usize = 500;

/// Parses service areas at `path` (`areas`), recording every field at fault.
pub(crate) fn areas(v: &mut Validator, path: &str, raw: Vec<AreaDto>) -> Option<Vec<ServiceArea>> {
    if raw.len() > MAX_AREAS {
        v.fail(
            path,
            "too_many",
            &format!("at most {MAX_AREAS} service areas"),
        );
        return None;
    }
    let parsed: Vec<Option<ServiceArea>> = raw
        .into_iter()
        .enumerate()
        .map(|(n, a)| {
            let at = format!("{path}[{n}]");
            let (kind, trades) = match a {
                AreaDto::PostalCodes {
                    postal_codes,
                    trades,
                } => {
                    let codes: Vec<Option<PostalCode>> = postal_codes
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            v.check(&format!("{at}.postalCodes[{i}]"), PostalCode::parse(c))
                        })
                        .collect();
                    if postal_codes.is_empty() {
                        v.fail(
                            &format!("{at}.postalCodes"),
                            "required",
                            "give at least one postal code",
                        );
                    }
                    let trades = trade_list(v, &format!("{at}.trades"), &trades);
                    let codes: Option<Vec<PostalCode>> = codes.into_iter().collect();
                    (
                        codes.map(|c| AreaKind::PostalCodes {
                            postal_codes: c.into_iter().collect(),
                        }),
                        trades,
                    )
                }
                AreaDto::Polygon { geojson, trades } => {
                    let geojson = v.check(
                        &format!("{at}.geojson"),
                        MultiPolygon::from_geojson(&geojson),
                    );
                    let trades = trade_list(v, &format!("{at}.trades"), &trades);
                    (geojson.map(|geojson| AreaKind::Polygon { geojson }), trades)
                }
                AreaDto::Radius {
                    center,
                    radius_km,
                    trades,
                } => {
                    let center = match GeoPoint::parse(center.lat, center.lon) {
                        Ok(c) => Some(c),
                        Err((field, invalid)) => {
                            v.fail(
                                &format!("{at}.center.{field}"),
                                invalid.code,
                                &invalid.message,
                            );
                            None
                        }
                    };
                    let radius = v.check(&format!("{at}.radiusKm"), RadiusKm::parse(radius_km));
                    let trades = trade_list(v, &format!("{at}.trades"), &trades);
                    let kind = match (center, radius) {
                        (Some(center), Some(radius_km)) => {
                            Some(AreaKind::Radius { center, radius_km })
                        }
                        _ => None,
                    };
                    (kind, trades)
                }
            };
            Some(ServiceArea::new(kind?, trades?))
        })
        .collect();
    parsed.into_iter().collect()
}

/// Parses a money amount given as a decimal string, such as `"1000000.00"`.
pub(crate) fn amount(raw: &str) -> Result<Decimal, Invalid> {
    let invalid = || {
        Invalid::new(
            "invalid_amount",
            "an amount is a decimal string of digits with an optional fraction, such as \"1000000.00\"",
        )
    };
    // Limits are never negative.
    if raw.starts_with('-') {
        return Err(invalid());
    }
    hestami_core::money::parse_decimal(raw).ok_or_else(invalid)
}

/// Parses an optional amount at `field`.
fn optional_amount(v: &mut Validator, field: &str, raw: Option<&str>) -> Option<Option<Decimal>> {
    v.optional(field, raw, amount)
}

/// Parses a reference to a stored document (a file name, a URL, a document id).
fn reference(raw: &str) -> Result<String, Invalid> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(Invalid::new("required", "a reference must not be empty"));
    }
    if trimmed.chars().count() > 1000 {
        return Err(Invalid::new(
            "too_long",
            "a reference must be at most 1000 characters",
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Invalid::new(
            "invalid_characters",
            "a reference must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// An insurance kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InsuranceKindDto {
    /// General liability.
    GeneralLiability,
    /// Workers' compensation.
    WorkersComp,
    /// Commercial auto.
    CommercialAuto,
    /// Umbrella.
    Umbrella,
    /// A surety bond.
    Bond,
}

impl From<InsuranceKindDto> for InsuranceKind {
    fn from(k: InsuranceKindDto) -> Self {
        match k {
            InsuranceKindDto::GeneralLiability => Self::GeneralLiability,
            InsuranceKindDto::WorkersComp => Self::WorkersComp,
            InsuranceKindDto::CommercialAuto => Self::CommercialAuto,
            InsuranceKindDto::Umbrella => Self::Umbrella,
            InsuranceKindDto::Bond => Self::Bond,
        }
    }
}

impl From<InsuranceKind> for InsuranceKindDto {
    fn from(k: InsuranceKind) -> Self {
        match k {
            InsuranceKind::GeneralLiability => Self::GeneralLiability,
            InsuranceKind::WorkersComp => Self::WorkersComp,
            InsuranceKind::CommercialAuto => Self::CommercialAuto,
            InsuranceKind::Umbrella => Self::Umbrella,
            InsuranceKind::Bond => Self::Bond,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Outputs.
// ---------------------------------------------------------------------------------------------

/// The organization's contractor profile.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileDto {
    /// 0 until first set, +1 on each change.
    pub version: i64,
    /// The registered legal name.
    pub legal_name: Option<String>,
    /// Names traded under.
    pub trade_names: Vec<String>,
    /// Tax identifier.
    pub tax_id: Option<String>,
    /// Contact address.
    pub contact_email: Option<String>,
    /// Contact number.
    pub contact_phone: Option<String>,
    /// The organization's time zone (IANA name).
    pub time_zone: String,
    /// The day its W-9 was received, when one is on file.
    pub w9_received_on: Option<NaiveDate>,
}

impl From<Profile> for ProfileDto {
    fn from(p: Profile) -> Self {
        Self {
            version: p.version,
            legal_name: p.legal_name.map(|n| n.as_str().to_owned()),
            trade_names: p
                .trade_names
                .iter()
                .map(|n| n.as_str().to_owned())
                .collect(),
            tax_id: p.tax_id.map(|n| n.as_str().to_owned()),
            contact_email: p.contact_email.map(|e| e.as_str().to_owned()),
            contact_phone: p.contact_phone.map(|e| e.as_str().to_owned()),
            time_zone: p.time_zone.name().to_owned(),
            w9_received_on: p.w9_received_on,
        }
    }
}

fn status_name(s: LicenseStatus) -> &'static str {
    match s {
        LicenseStatus::Pending => "pending",
        LicenseStatus::Verified => "verified",
        LicenseStatus::Rejected => "rejected",
    }
}

/// A licence.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LicenseDto {
    /// Its id.
    pub id: Uuid,
    /// 1 on creation, +1 on each change.
    pub version: i64,
    /// The trade it licenses.
    pub trade: String,
    /// Where.
    pub jurisdiction: JurisdictionDto,
    /// The licence number.
    pub number: String,
    /// First valid day.
    pub issued_on: Option<NaiveDate>,
    /// Last valid day.
    pub expires_on: NaiveDate,
    /// The scanned licence.
    pub document_ref: Option<String>,
    /// pending, verified or rejected.
    pub status: String,
    /// Who verified or rejected it.
    pub verified_by: Option<Uuid>,
    /// When.
    pub verified_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<License> for LicenseDto {
    fn from(l: License) -> Self {
        Self {
            id: l.id.as_uuid(),
            version: l.version,
            trade: l.trade.as_str().to_owned(),
            jurisdiction: (&l.jurisdiction).into(),
            number: l.number.as_str().to_owned(),
            issued_on: l.issued_on,
            expires_on: l.expires_on,
            document_ref: l.document_ref,
            status: status_name(l.status).to_owned(),
            verified_by: l.verified_by.map(|u| u.as_uuid()),
            verified_at: l.verified_at,
            created_at: l.created_at,
            updated_at: l.updated_at,
        }
    }
}

/// An insurance policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDto {
    /// Its id.
    pub id: Uuid,
    /// 1 on creation, +1 on each change.
    pub version: i64,
    /// general_liability, workers_comp, commercial_auto, umbrella or bond.
    pub kind: InsuranceKindDto,
    /// The insurer.
    pub carrier: String,
    /// The policy number.
    pub policy_number: String,
    /// Cover per occurrence, a decimal string in `currency`.
    pub per_occurrence_limit: String,
    /// Cover in aggregate, a decimal string in `currency`.
    pub aggregate_limit: String,
    /// The organization's currency (ISO 4217).
    pub currency: String,
    /// First day of cover.
    pub effective_on: NaiveDate,
    /// Last day of cover.
    pub expires_on: NaiveDate,
    /// The certificate of insurance.
    pub certificate_ref: Option<String>,
    /// The parties the certificate names as additional insureds.
    pub additional_insureds: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl PolicyDto {
    fn new(p: InsurancePolicy, currency: &str) -> Self {
        Self {
            id: p.id.as_uuid(),
            version: p.version,
            kind: p.kind.into(),
            carrier: p.carrier.as_str().to_owned(),
            policy_number: p.policy_number.as_str().to_owned(),
            per_occurrence_limit: p.per_occurrence_limit.to_string(),
            aggregate_limit: p.aggregate_limit.to_string(),
            currency: currency.to_owned(),
            effective_on: p.effective_on,
            expires_on: p.expires_on,
            certificate_ref: p.certificate_ref,
            additional_insureds: p
                .additional_insureds
                .iter()
                .map(|n| n.as_str().to_owned())
                .collect(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }

    /// The rendering of a recorded outcome; [`with_currency`] fills in the currency.
    fn recorded(p: InsurancePolicy) -> Self {
        Self::new(p, "")
    }
}

/// The organization's licences and insurance in force.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsDto {
    /// Licences not removed, by id.
    pub licenses: Vec<LicenseDto>,
    /// Policies not removed, by id.
    pub insurance: Vec<PolicyDto>,
}

/// A set of service areas.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AreaSetDto {
    /// 0 until first set, +1 on each replacement (earlier sets stay in the history).
    pub version: i64,
    /// The areas.
    pub areas: Vec<AreaDto>,
}

impl From<AreaSet> for AreaSetDto {
    fn from(s: AreaSet) -> Self {
        Self {
            version: s.version,
            areas: s.areas.iter().map(Into::into).collect(),
        }
    }
}

/// A minimum insurance cover.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InsuranceRequirementDto {
    /// Which kind of policy.
    pub kind: InsuranceKindDto,
    /// The lowest per-occurrence limit accepted, a decimal string.
    #[serde(default)]
    pub min_per_occurrence: Option<String>,
    /// The lowest aggregate limit accepted, a decimal string.
    #[serde(default)]
    pub min_aggregate: Option<String>,
}

impl From<&InsuranceRequirement> for InsuranceRequirementDto {
    fn from(i: &InsuranceRequirement) -> Self {
        Self {
            kind: i.kind.into(),
            min_per_occurrence: i.min_per_occurrence.map(|d| d.to_string()),
            min_aggregate: i.min_aggregate.map(|d| d.to_string()),
        }
    }
}

/// Parses the insurance minimums at `at` (`rules[0].insurance`), every field at fault.
pub(crate) fn insurance_needs(
    v: &mut Validator,
    at: &str,
    raw: &[InsuranceRequirementDto],
) -> Option<Vec<InsuranceRequirement>> {
    let parsed: Vec<Option<InsuranceRequirement>> = raw
        .iter()
        .enumerate()
        .map(|(k, ins)| {
            let ins_at = format!("{at}[{k}]");
            let per = optional_amount(
                v,
                &format!("{ins_at}.minPerOccurrence"),
                ins.min_per_occurrence.as_deref(),
            );
            let agg = optional_amount(
                v,
                &format!("{ins_at}.minAggregate"),
                ins.min_aggregate.as_deref(),
            );
            Some(InsuranceRequirement {
                kind: ins.kind.into(),
                min_per_occurrence: per?,
                min_aggregate: agg?,
            })
        })
        .collect();
    parsed.into_iter().collect()
}

/// One requirement rule: what doing `trade` in `jurisdiction` needs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleDto {
    /// The trade it is for; absent or null: every trade.
    #[serde(default)]
    pub trade: Option<String>,
    /// Where it applies; absent or null: everywhere.
    #[serde(default)]
    pub jurisdiction: Option<JurisdictionDto>,
    /// Whether a verified licence for the trade and place is needed.
    pub license_required: bool,
    /// The policies needed.
    #[serde(default)]
    pub insurance: Vec<InsuranceRequirementDto>,
    /// Certifications a technician doing the work must hold.
    #[serde(default)]
    pub certifications: Vec<String>,
}

impl From<&RequirementRule> for RuleDto {
    fn from(r: &RequirementRule) -> Self {
        Self {
            trade: r.trade.as_ref().map(|t| t.as_str().to_owned()),
            jurisdiction: r.jurisdiction.as_ref().map(Into::into),
            license_required: r.license_required,
            insurance: r.insurance.iter().map(Into::into).collect(),
            certifications: r
                .certifications
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
        }
    }
}

/// The organization's requirement table.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequirementsDto {
    /// 0 while the shipped default table applies, +1 on each change.
    pub version: i64,
    /// The rules; every rule that applies to a trade and place must be met.
    pub rules: Vec<RuleDto>,
}

impl From<RequirementsDoc> for RequirementsDto {
    fn from(d: RequirementsDoc) -> Self {
        Self {
            version: d.version,
            rules: d.requirements.rules.iter().map(Into::into).collect(),
        }
    }
}

/// Why something is refused or missing: a stable code, a sentence, and the data at fault.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleFailureDto {
    /// A stable UPPER_SNAKE code, such as `LICENSE_EXPIRED`.
    pub code: String,
    /// A sentence for a person.
    pub message: String,
    /// The data that failed, such as the expiry date.
    pub data: serde_json::Value,
}

impl From<ComplianceReason> for RuleFailureDto {
    fn from(r: ComplianceReason) -> Self {
        Self {
            code: r.code.to_owned(),
            message: r.message,
            data: r.data,
        }
    }
}

/// Compliance for one trade in one jurisdiction.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TradeComplianceDto {
    /// The trade.
    pub trade: String,
    /// Where.
    pub jurisdiction: JurisdictionDto,
    /// Whether the organization may do the work there on that day.
    pub compliant: bool,
    /// Every reason it may not (LICENSE_MISSING, LICENSE_EXPIRED, LICENSE_UNVERIFIED,
    /// INSURANCE_MISSING, INSURANCE_EXPIRED, INSURANCE_BELOW_MINIMUM, …).
    pub reasons: Vec<RuleFailureDto>,
    /// Certifications the rules ask of a technician doing this work.
    pub required_certifications: Vec<String>,
}

impl From<TradeCompliance> for TradeComplianceDto {
    fn from(t: TradeCompliance) -> Self {
        Self {
            trade: t.trade.as_str().to_owned(),
            jurisdiction: (&t.jurisdiction).into(),
            compliant: t.verdict.compliant,
            reasons: t.verdict.reasons.into_iter().map(Into::into).collect(),
            required_certifications: t
                .verdict
                .required_certifications
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
        }
    }
}

/// Something that lapses soon.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpiringDto {
    /// license, insurance or certification.
    pub kind: String,
    /// The licence, policy or certification id.
    pub id: Uuid,
    /// Whose certification.
    pub technician_id: Option<Uuid>,
    /// A label for a person, such as `plumbing licence 12345 (US-TX)`.
    pub label: String,
    /// Its last valid day.
    pub expires_on: NaiveDate,
    /// Days until then; 0 when it is today.
    pub days_left: i64,
}

impl From<ExpiringItem> for ExpiringDto {
    fn from(e: ExpiringItem) -> Self {
        Self {
            kind: match e.kind {
                ExpiringKind::License => "license",
                ExpiringKind::Insurance => "insurance",
                ExpiringKind::Certification => "certification",
            }
            .to_owned(),
            id: e.id,
            technician_id: e.technician_id.map(|t| t.as_uuid()),
            label: e.label,
            expires_on: e.expires_on,
            days_left: e.days_left,
        }
    }
}

/// The organization's compliance on a day.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceStatusDto {
    /// The day.
    pub at: NaiveDate,
    /// Per trade and jurisdiction it holds a licence for, names in a rule, or works in.
    pub trades: Vec<TradeComplianceDto>,
    /// What lapses within 30 days of `at`.
    pub expiring: Vec<ExpiringDto>,
}

/// What lapses soon.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpiringList {
    /// By expiry date, soonest first.
    pub items: Vec<ExpiringDto>,
}

// ---------------------------------------------------------------------------------------------
// Inputs.
// ---------------------------------------------------------------------------------------------

/// `contractor/v1/updateProfile`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateProfileInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the profile is at this version.
    pub expected_version: Option<i64>,
    /// The legal name, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub legal_name: Option<Option<String>>,
    /// The new list of trade names.
    pub trade_names: Option<Vec<String>>,
    /// The tax id, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub tax_id: Option<Option<String>>,
    /// The contact e-mail address, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub contact_email: Option<Option<String>>,
    /// The contact phone number, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub contact_phone: Option<Option<String>>,
    /// The organization's default time zone (IANA name, such as `America/Chicago`).
    pub time_zone: Option<String>,
    /// The day its W-9 was received, or null: none on file.
    #[serde(default, deserialize_with = "crate::wire::patch_date")]
    #[schema(value_type = Option<NaiveDate>)]
    pub w9_received_on: Option<Option<NaiveDate>>,
}

/// `contractor/v1/addLicense`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddLicenseInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The trade it licenses.
    pub trade: String,
    /// Where it is valid.
    pub jurisdiction: JurisdictionDto,
    /// The licence number.
    pub number: String,
    /// First valid day.
    #[serde(default, deserialize_with = "crate::wire::option_date")]
    pub issued_on: Option<NaiveDate>,
    /// Last valid day.
    #[serde(deserialize_with = "crate::wire::date")]
    pub expires_on: NaiveDate,
    /// The scanned licence.
    pub document_ref: Option<String>,
}

/// `contractor/v1/updateLicense`. A new number or expiry date sets the licence back to
/// pending.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateLicenseInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which licence.
    pub license_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the licence is at this version.
    pub expected_version: Option<i64>,
    /// A new number.
    pub number: Option<String>,
    /// A new first valid day, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub issued_on: Option<Option<NaiveDate>>,
    /// A new last valid day.
    #[serde(default, deserialize_with = "crate::wire::option_date")]
    pub expires_on: Option<NaiveDate>,
    /// A new document reference, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub document_ref: Option<Option<String>>,
}

/// `contractor/v1/removeLicense`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoveLicenseInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which licence.
    pub license_id: Uuid,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationDto {
    /// The licence was checked and is good.
    Verified,
    /// The licence was checked and is not.
    Rejected,
}

/// `contractor/v1/verifyLicense`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyLicenseInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which licence.
    pub license_id: Uuid,
    /// verified or rejected.
    pub status: VerificationDto,
    /// Refuse with `VERSION_CONFLICT` unless the licence is at this version.
    pub expected_version: Option<i64>,
}

/// `contractor/v1/addInsurance`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddInsuranceInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which kind of policy.
    pub kind: InsuranceKindDto,
    /// The insurer.
    pub carrier: String,
    /// The policy number.
    pub policy_number: String,
    /// Cover per occurrence, a decimal string in the organization's currency, such as
    /// `"1000000.00"`.
    pub per_occurrence_limit: String,
    /// Cover in aggregate, a decimal string.
    pub aggregate_limit: String,
    /// First day of cover.
    #[serde(deserialize_with = "crate::wire::date")]
    pub effective_on: NaiveDate,
    /// Last day of cover.
    #[serde(deserialize_with = "crate::wire::date")]
    pub expires_on: NaiveDate,
    /// The certificate of insurance.
    pub certificate_ref: Option<String>,
    /// The parties the certificate names as additional insureds (a community association may
    /// require to be one), at most 20.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub additional_insureds: Vec<String>,
}

/// `contractor/v1/updateInsurance`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateInsuranceInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which policy.
    pub insurance_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the policy is at this version.
    pub expected_version: Option<i64>,
    /// A new insurer.
    pub carrier: Option<String>,
    /// A new policy number.
    pub policy_number: Option<String>,
    /// A new per-occurrence limit, a decimal string.
    pub per_occurrence_limit: Option<String>,
    /// A new aggregate limit, a decimal string.
    pub aggregate_limit: Option<String>,
    /// A new first day of cover.
    #[serde(default, deserialize_with = "crate::wire::option_date")]
    pub effective_on: Option<NaiveDate>,
    /// A new last day of cover.
    #[serde(default, deserialize_with = "crate::wire::option_date")]
    pub expires_on: Option<NaiveDate>,
    /// A new certificate reference, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub certificate_ref: Option<Option<String>>,
    /// The new list of additional insureds, at most 20.
    #[schema(max_items = 20)]
    pub additional_insureds: Option<Vec<String>>,
}

/// `contractor/v1/removeInsurance`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoveInsuranceInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which policy.
    pub insurance_id: Uuid,
}

/// `contractor/v1/setServiceAreas`: replaces the organization's areas.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetOrgAreasInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The new set (the old one stays in the history).
    pub areas: Vec<AreaDto>,
}

/// `contractor/v1/setRequirements`: replaces the requirement table.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetRequirementsInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the table is at this version.
    pub expected_version: Option<i64>,
    /// The rules.
    pub rules: Vec<RuleDto>,
}

/// `contractor/v1/setTrades`: replaces the trade catalogue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetTradesInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the catalogue is at this version.
    pub expected_version: Option<i64>,
    /// The trades: 1 to 200 codes (lower-case letters, digits and underscores, starting with a
    /// letter; `Gas Fitting` is read as `gas_fitting`). Duplicates are folded.
    #[schema(min_items = 1, max_items = 200)]
    pub trades: Vec<String>,
}

/// The trade catalogue.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TradesDto {
    /// 0 for the shipped default list, then +1 per change.
    pub version: i64,
    /// The trades, in order.
    pub trades: Vec<String>,
}

impl From<TradesDoc> for TradesDto {
    fn from(d: TradesDoc) -> Self {
        Self {
            version: d.version,
            trades: d.trades.trades().map(|t| t.as_str().to_owned()).collect(),
        }
    }
}

async fn get_trades(ctx: Ctx, _: Empty) -> Result<TradesDto, ApiError> {
    Ok(ctx.services.contractor_trades(ctx.caller()?).await?.into())
}

fn convert_set_trades(i: SetTradesInput) -> Result<ContractorCommand, ApiError> {
    validate(|v| {
        let trades: Vec<Option<TradeCode>> = i
            .trades
            .iter()
            .enumerate()
            .map(|(n, t)| v.check(&format!("trades[{n}]"), TradeCode::parse(t)))
            .collect();
        let trades: Vec<TradeCode> = trades.into_iter().collect::<Option<_>>()?;
        let trades = v.check("trades", TradeCatalogue::parse(trades))?;
        Some(ContractorCommand::SetTrades {
            trades,
            expected_version: i.expected_version,
        })
    })
}

/// `contractor/v1/complianceStatus`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComplianceStatusInput {
    /// The day to judge (default: today in the organization's time zone).
    #[serde(default, deserialize_with = "crate::wire::option_date")]
    pub at: Option<NaiveDate>,
}

/// `contractor/v1/listExpiring`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListExpiringInput {
    /// How far ahead to look from today (in the organization's time zone), 1 to 365 days.
    pub within_days: i64,
}

mutating!(
    UpdateProfileInput,
    AddLicenseInput,
    UpdateLicenseInput,
    RemoveLicenseInput,
    VerifyLicenseInput,
    AddInsuranceInput,
    UpdateInsuranceInput,
    RemoveInsuranceInput,
    SetOrgAreasInput,
    SetRequirementsInput,
    SetTradesInput
);

// ---------------------------------------------------------------------------------------------
// Conversions.
// ---------------------------------------------------------------------------------------------

fn convert_update_profile(i: UpdateProfileInput) -> Result<ContractorCommand, ApiError> {
    validate(|v| {
        let legal_name = patch(v, "legalName", i.legal_name, PersonName::parse);
        let trade_names = match &i.trade_names {
            None => Some(None),
            Some(raw) => name_list(v, "tradeNames", raw).map(Some),
        };
        let tax_id = patch(v, "taxId", i.tax_id, PersonName::parse);
        let contact_email = patch(v, "contactEmail", i.contact_email, Email::parse);
        let contact_phone = patch(v, "contactPhone", i.contact_phone, Phone::parse);
        let time_zone = v.optional("timeZone", i.time_zone.as_deref(), TimeZone::parse);
        Some(ContractorCommand::UpdateProfile(ProfileUpdate {
            expected_version: i.expected_version,
            legal_name: legal_name?,
            trade_names: trade_names?,
            tax_id: tax_id?,
            contact_email: contact_email?,
            contact_phone: contact_phone?,
            time_zone: time_zone?,
            w9_received_on: match i.w9_received_on {
                None => Patch::Keep,
                Some(None) => Patch::Clear,
                Some(Some(day)) => Patch::Set(day),
            },
        }))
    })
}

fn convert_add_license(i: AddLicenseInput) -> Result<ContractorCommand, ApiError> {
    validate(|v| {
        let trade = v.check("trade", TradeCode::parse(&i.trade));
        let place = jurisdiction(v, "jurisdiction", &i.jurisdiction);
        let number = v.check("number", PersonName::parse(&i.number));
        let document_ref = v.optional("documentRef", i.document_ref.as_deref(), reference);
        if i.issued_on.is_some_and(|d| d > i.expires_on) {
            v.fail(
                "expiresOn",
                "before_issue",
                "a licence expires after it is issued",
            );
        }
        Some(ContractorCommand::AddLicense(NewLicense {
            trade: trade?,
            jurisdiction: place?,
            number: number?,
            issued_on: i.issued_on,
            expires_on: i.expires_on,
            document_ref: document_ref?,
        }))
    })
}

fn convert_update_license(i: UpdateLicenseInput) -> Result<ContractorCommand, ApiError> {
    validate(|v| {
        let number = v.optional("number", i.number.as_deref(), PersonName::parse);
        let document_ref = patch(v, "documentRef", i.document_ref, reference);
        let issued_on = match i.issued_on {
            None => hestami_store::app::Patch::Keep,
            Some(None) => hestami_store::app::Patch::Clear,
            Some(Some(d)) => hestami_store::app::Patch::Set(d),
        };
        Some(ContractorCommand::UpdateLicense(LicenseUpdate {
            license_id: LicenseId::from_uuid(i.license_id),
            expected_version: i.expected_version,
            number: number?,
            issued_on,
            expires_on: i.expires_on,
            document_ref: document_ref?,
        }))
    })
}

fn convert_remove_license(i: RemoveLicenseInput) -> Result<ContractorCommand, ApiError> {
    Ok(ContractorCommand::RemoveLicense {
        license_id: LicenseId::from_uuid(i.license_id),
    })
}

fn convert_verify_license(i: VerifyLicenseInput) -> Result<ContractorCommand, ApiError> {
    Ok(ContractorCommand::VerifyLicense {
        license_id: LicenseId::from_uuid(i.license_id),
        status: match i.status {
            VerificationDto::Verified => LicenseStatus::Verified,
            VerificationDto::Rejected => LicenseStatus::Rejected,
        },
        expected_version: i.expected_version,
    })
}

fn positive(v: &mut Validator, field: &str, amount: Option<Decimal>) -> Option<Decimal> {
    let amount = amount?;
    if amount <= Decimal::ZERO {
        v.fail(field, "must_be_positive", "a limit is greater than 0");
        return None;
    }
    Some(amount)
}

fn convert_add_insurance(i: AddInsuranceInput) -> Result<ContractorCommand, ApiError> {
    validate(|v| {
        let carrier = v.check("carrier", PersonName::parse(&i.carrier));
        let policy_number = v.check("policyNumber", PersonName::parse(&i.policy_number));
        let per_occurrence = v.check("perOccurrenceLimit", amount(&i.per_occurrence_limit));
        let per_occurrence = positive(v, "perOccurrenceLimit", per_occurrence);
        let aggregate = v.check("aggregateLimit", amount(&i.aggregate_limit));
        let aggregate = positive(v, "aggregateLimit", aggregate);
        let certificate_ref = v.optional("certificateRef", i.certificate_ref.as_deref(), reference);
        let additional_insureds = insureds(v, &i.additional_insureds);
        if i.expires_on < i.effective_on {
            v.fail(
                "expiresOn",
                "before_effective",
                "cover ends on or after the day it starts",
            );
        }
        Some(ContractorCommand::AddInsurance(NewInsurance {
            kind: i.kind.into(),
            carrier: carrier?,
            policy_number: policy_number?,
            per_occurrence_limit: per_occurrence?,
            aggregate_limit: aggregate?,
            effective_on: i.effective_on,
            expires_on: i.expires_on,
            certificate_ref: certificate_ref?,
            additional_insureds: additional_insureds?,
        }))
    })
}

/// The most additional insureds a policy lists.
const MAX_INSUREDS: usize = 20;

/// Parses a policy's additional insureds, at most [`MAX_INSUREDS`].
fn insureds(v: &mut Validator, raw: &[String]) -> Option<Vec<PersonName>> {
    const FIELD: &str = "additionalInsureds";
    if raw.len() > MAX_INSUREDS {
        v.fail(
            FIELD,
            "too_many",
            &format!("a policy lists at most {MAX_INSUREDS} additional insureds"),
        );
        return None;
    }
    name_list(v, FIELD, raw)
}

fn convert_update_insurance(i: UpdateInsuranceInput) -> Result<ContractorCommand, ApiError> {
    validate(|v| {
        let carrier = v.optional("carrier", i.carrier.as_deref(), PersonName::parse);
        let policy_number = v.optional(
            "policyNumber",
            i.policy_number.as_deref(),
            PersonName::parse,
        );
        let per_occurrence =
            optional_amount(v, "perOccurrenceLimit", i.per_occurrence_limit.as_deref()).and_then(
                |a| match a {
                    None => Some(None),
                    Some(a) => positive(v, "perOccurrenceLimit", Some(a)).map(Some),
                },
            );
        let aggregate = optional_amount(v, "aggregateLimit", i.aggregate_limit.as_deref())
            .and_then(|a| match a {
                None => Some(None),
                Some(a) => positive(v, "aggregateLimit", Some(a)).map(Some),
            });
        let certificate_ref = patch(v, "certificateRef", i.certificate_ref, reference);
        let additional_insureds = match &i.additional_insureds {
            None => Some(None),
            Some(raw) => insureds(v, raw).map(Some),
        };
        if let (Some(from), Some(to)) = (i.effective_on, i.expires_on)
            && to < from
        {
            v.fail(
                "expiresOn",
                "before_effective",
                "cover ends on or after the day it starts",
            );
        }
        Some(ContractorCommand::UpdateInsurance(InsuranceUpdate {
            insurance_id: InsuranceId::from_uuid(i.insurance_id),
            expected_version: i.expected_version,
            carrier: carrier?,
            policy_number: policy_number?,
            per_occurrence_limit: per_occurrence?,
            aggregate_limit: aggregate?,
            effective_on: i.effective_on,
            expires_on: i.expires_on,
            certificate_ref: certificate_ref?,
            additional_insureds: additional_insureds?,
        }))
    })
}

fn convert_remove_insurance(i: RemoveInsuranceInput) -> Result<ContractorCommand, ApiError> {
    Ok(ContractorCommand::RemoveInsurance {
        insurance_id: InsuranceId::from_uuid(i.insurance_id),
    })
}

fn convert_set_areas(i: SetOrgAreasInput) -> Result<ContractorCommand, ApiError> {
    validate(|v| {
        Some(ContractorCommand::SetServiceAreas {
            areas: areas(v, "areas", i.areas)?,
        })
    })
}

/// At most this many requirement rules.
const MAX_RULES: usize = 500;

fn convert_set_requirements(i: SetRequirementsInput) -> Result<ContractorCommand, ApiError> {
    validate(|v| {
        if i.rules.len() > MAX_RULES {
            v.fail(
                "rules",
                "too_many",
                &format!("at most {MAX_RULES} requirement rules"),
            );
            return None;
        }
        let rules: Vec<Option<RequirementRule>> = i
            .rules
            .iter()
            .enumerate()
            .map(|(n, r)| {
                let at = format!("rules[{n}]");
                let trade =
                    v.optional(&format!("{at}.trade"), r.trade.as_deref(), TradeCode::parse);
                let place = match &r.jurisdiction {
                    None => Some(None),
                    Some(j) => jurisdiction(v, &format!("{at}.jurisdiction"), j).map(Some),
                };
                let insurance = insurance_needs(v, &format!("{at}.insurance"), &r.insurance);
                let certifications =
                    name_list(v, &format!("{at}.certifications"), &r.certifications);
                Some(RequirementRule {
                    trade: trade?,
                    jurisdiction: place?,
                    license_required: r.license_required,
                    insurance: insurance?,
                    certifications: certifications?,
                })
            })
            .collect();
        let rules: Option<Vec<RequirementRule>> = rules.into_iter().collect();
        Some(ContractorCommand::SetRequirements {
            requirements: Requirements { rules: rules? },
            expected_version: i.expected_version,
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Reads.
// ---------------------------------------------------------------------------------------------

/// The organization's currency code.
async fn currency(ctx: &Ctx) -> Result<&'static str, ApiError> {
    Ok(ctx.services.org_get(ctx.caller()?).await?.currency.code())
}

/// Today in the organization's time zone.
async fn today(ctx: &Ctx) -> Result<NaiveDate, ApiError> {
    let tz = ctx.services.org_get(ctx.caller()?).await?.time_zone.tz();
    Ok(Utc::now().with_timezone(&tz).date_naive())
}

async fn get_profile(ctx: Ctx, _: Empty) -> Result<ProfileDto, ApiError> {
    Ok(ctx.services.contractor_profile(ctx.caller()?).await?.into())
}

async fn list_credentials(ctx: Ctx, _: Empty) -> Result<CredentialsDto, ApiError> {
    let (licenses, policies) = ctx.services.contractor_credentials(ctx.caller()?).await?;
    let currency = currency(&ctx).await?;
    Ok(CredentialsDto {
        licenses: licenses.into_iter().map(Into::into).collect(),
        insurance: policies
            .into_iter()
            .map(|p| PolicyDto::new(p, currency))
            .collect(),
    })
}

async fn get_service_areas(ctx: Ctx, _: Empty) -> Result<AreaSetDto, ApiError> {
    Ok(ctx
        .services
        .contractor_service_areas(ctx.caller()?)
        .await?
        .into())
}

async fn get_requirements(ctx: Ctx, _: Empty) -> Result<RequirementsDto, ApiError> {
    Ok(ctx
        .services
        .contractor_requirements(ctx.caller()?)
        .await?
        .into())
}

async fn compliance_status(
    ctx: Ctx,
    i: ComplianceStatusInput,
) -> Result<ComplianceStatusDto, ApiError> {
    let at = match i.at {
        Some(at) => at,
        None => today(&ctx).await?,
    };
    let report = ctx.services.compliance_status(ctx.caller()?, at).await?;
    Ok(ComplianceStatusDto {
        at: report.at,
        trades: report.trades.into_iter().map(Into::into).collect(),
        expiring: report.expiring.into_iter().map(Into::into).collect(),
    })
}

async fn list_expiring(ctx: Ctx, i: ListExpiringInput) -> Result<ExpiringList, ApiError> {
    let within = validate(|v| match u32::try_from(i.within_days) {
        Ok(d) if (1..=365).contains(&d) => Some(d),
        _ => {
            v.fail("withinDays", "out_of_range", "withinDays is 1 to 365");
            None
        }
    })?;
    let on = today(&ctx).await?;
    let items = ctx
        .services
        .list_expiring(ctx.caller()?, on, within)
        .await?;
    Ok(ExpiringList {
        items: items.into_iter().map(Into::into).collect(),
    })
}

/// A policy mutation whose rendering also carries the organization's currency (which is fixed
/// at the organization's creation, so a replay renders the same body).
fn with_currency(inner: Procedure) -> Procedure {
    super::then_render(inner, |ctx, mut dto: PolicyDto| async move {
        dto.currency = currency(&ctx).await?.to_owned();
        Ok(dto)
    })
}

fn name(name: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Name {
    Name {
        namespace: "contractor",
        version: "v1",
        name,
        summary,
        errors,
    }
}

const CHANGE_ERRORS: &[&str] = &["NOT_FOUND", "VERSION_CONFLICT"];

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        query(
            name("getProfile", "The organization's contractor profile", &[]),
            get_profile,
        ),
        mutation(
            name(
                "updateProfile",
                "Change the contractor profile (legal name, trade names, tax id, contact, time zone)",
                &["VERSION_CONFLICT"],
            ),
            convert_update_profile,
            <ProfileDto as From<Profile>>::from,
        ),
        mutation(
            name(
                "addLicense",
                "Record a licence (pending until verified)",
                &["TRADE_UNKNOWN"],
            ),
            convert_add_license,
            <LicenseDto as From<License>>::from,
        ),
        mutation(
            name(
                "updateLicense",
                "Change a licence (a new number or expiry sets it back to pending)",
                CHANGE_ERRORS,
            ),
            convert_update_license,
            <LicenseDto as From<License>>::from,
        ),
        mutation(
            name(
                "removeLicense",
                "Remove a licence (history is kept)",
                &["NOT_FOUND"],
            ),
            convert_remove_license,
            <LicenseDto as From<License>>::from,
        ),
        mutation(
            name(
                "verifyLicense",
                "Mark a licence verified or rejected, recording who and when",
                CHANGE_ERRORS,
            ),
            convert_verify_license,
            <LicenseDto as From<License>>::from,
        ),
        with_currency(mutation(
            name("addInsurance", "Record an insurance policy", &[]),
            convert_add_insurance,
            PolicyDto::recorded,
        )),
        with_currency(mutation(
            name(
                "updateInsurance",
                "Change an insurance policy",
                CHANGE_ERRORS,
            ),
            convert_update_insurance,
            PolicyDto::recorded,
        )),
        with_currency(mutation(
            name(
                "removeInsurance",
                "Remove an insurance policy (history is kept)",
                &["NOT_FOUND"],
            ),
            convert_remove_insurance,
            PolicyDto::recorded,
        )),
        query(
            name(
                "listCredentials",
                "The organization's licences and insurance policies in force",
                &[],
            ),
            list_credentials,
        ),
        mutation(
            name(
                "setServiceAreas",
                "Replace the organization's service areas (the old set stays in the history)",
                &["TRADE_UNKNOWN"],
            ),
            convert_set_areas,
            <AreaSetDto as From<AreaSet>>::from,
        ),
        query(
            name("getServiceAreas", "The organization's service areas", &[]),
            get_service_areas,
        ),
        query(
            name(
                "getRequirements",
                "The compliance requirement table (the shipped default until changed)",
                &[],
            ),
            get_requirements,
        ),
        mutation(
            name(
                "setRequirements",
                "Replace the compliance requirement table",
                &["VERSION_CONFLICT", "TRADE_UNKNOWN"],
            ),
            convert_set_requirements,
            <RequirementsDto as From<RequirementsDoc>>::from,
        ),
        query(
            name(
                "getTrades",
                "The organization's trade catalogue (the shipped default list until changed)",
                &[],
            ),
            get_trades,
        ),
        mutation(
            name(
                "setTrades",
                "Replace the trade catalogue: the trades jobs, technicians, licences, rules, areas and prices may name",
                &["VERSION_CONFLICT"],
            ),
            convert_set_trades,
            <TradesDto as From<TradesDoc>>::from,
        ),
        query(
            name(
                "complianceStatus",
                "Compliance per trade and jurisdiction on a day, with every reason, and what expires within 30 days",
                &[],
            ),
            compliance_status,
        ),
        query(
            name(
                "listExpiring",
                "Licences, insurance and technician certifications that lapse within some days",
                &[],
            ),
            list_expiring,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_plain_decimal_strings() {
        assert_eq!(
            amount("1000000.00").map(|d| d.to_string()),
            Ok("1000000.00".to_owned())
        );
        // One strict decimal parser (issue 9): no surrounding spaces either.
        for bad in [
            "", "-1", "+1", "1e6", "1_000", "1.", ".5", "1.2.3", "abc", "1,000", " 5 ",
        ] {
            assert_eq!(
                amount(bad).map_err(|e| e.code),
                Err("invalid_amount"),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_area_error_is_reported_with_its_path() {
        let raw: Vec<AreaDto> = serde_json::from_value(serde_json::json!([
            { "kind": "postalCodes", "postalCodes": ["78701", "!"], "trades": ["Bad Trade!"] },
            { "kind": "polygon", "geojson": { "type": "Point", "coordinates": [0, 0] } },
            { "kind": "radius", "center": { "lat": 95.0, "lon": 0.0 }, "radiusKm": 0.0 },
        ]))
        .expect("well-formed");
        let err = validate(|v| areas(v, "areas", raw)).expect_err("invalid");
        let fields: Vec<_> = err
            .field_errors
            .iter()
            .map(|f| (f.field.as_str(), f.code.as_str()))
            .collect();
        assert_eq!(
            fields,
            vec![
                ("areas[0].postalCodes[1]", "invalid_postal_code"),
                ("areas[0].trades[0]", "invalid_trade"),
                ("areas[1].geojson", "invalid_geojson"),
                ("areas[2].center.lat", "out_of_range"),
                ("areas[2].radiusKm", "out_of_range"),
            ]
        );
    }

    #[test]
    fn area_kinds_are_camel_case_and_unknown_fields_are_refused() {
        let ok: Result<AreaDto, _> = serde_json::from_value(serde_json::json!(
            { "kind": "radius", "center": { "lat": 30.0, "lon": -97.0 }, "radiusKm": 25.0 }
        ));
        assert!(ok.is_ok());
        let unknown: Result<AreaDto, _> = serde_json::from_value(serde_json::json!(
            { "kind": "radius", "center": { "lat": 30.0, "lon": -97.0 }, "radiusKm": 25.0, "x": 1 }
        ));
        assert!(unknown.is_err());
        let snake: Result<AreaDto, _> = serde_json::from_value(serde_json::json!(
            { "kind": "postal_codes", "postalCodes": ["78701"] }
        ));
        assert!(snake.is_err());
    }
}
