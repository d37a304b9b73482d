//! Contractor onboarding and compliance (`contractor/v1`, workflow `contractor_onboarding_v1`):
//! the profile, licences, insurance, service areas and the requirements that gate work.
//!
//! The rules themselves live in `hestami_core::compliance` and `hestami_core::area`; this module
//! loads their inputs and saves what the procedures change, each change with its change-feed row.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use hestami_core::area::ServiceArea;
use hestami_core::compliance::{
    self as rules, ExpiringItem, InsuranceKind, InsurancePolicy, Jurisdiction, License,
    LicenseStatus, Requirements, TradeCompliance,
};
use hestami_core::customer::CountryCode;
use hestami_core::ids::{InsuranceId, LicenseId, ServiceAreaSetId, TechnicianId};
use hestami_core::org::TimeZone;
use hestami_core::text::{Email, Name, Phone, TradeCode};
use hestami_core::workforce::Certification;

use super::{Caller, Command, Patch, Services, check_version};
use crate::db::{Row, args};
use crate::directory::{load_organization, parse_stored};
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::{Operation, TenantTx, new_id};

/// The workflow behind every onboarding and compliance change.
pub const WORKFLOW: &str = "contractor_onboarding_v1";

/// The contractor's business profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// 0 until first updated, then +1 on each change.
    pub version: i64,
    /// The registered legal name.
    pub legal_name: Option<Name>,
    /// Names the business trades under.
    pub trade_names: Vec<Name>,
    /// Tax identifier.
    pub tax_id: Option<Name>,
    /// Contact address.
    pub contact_email: Option<Email>,
    /// Contact number.
    pub contact_phone: Option<Phone>,
    /// The organization's time zone (shifts and "the day" are in it).
    pub time_zone: TimeZone,
    /// The day the organization's W-9 (its taxpayer form) was received, when it is on file.
    #[serde(default)]
    pub w9_received_on: Option<NaiveDate>,
}

/// Changes to the profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileUpdate {
    /// Fail with `VERSION_CONFLICT` unless the profile is at this version.
    pub expected_version: Option<i64>,
    /// Legal name.
    pub legal_name: Patch<Name>,
    /// Trade names (replaced).
    pub trade_names: Option<Vec<Name>>,
    /// Tax id.
    pub tax_id: Patch<Name>,
    /// Contact address.
    pub contact_email: Patch<Email>,
    /// Contact number.
    pub contact_phone: Patch<Phone>,
    /// The organization's default time zone.
    pub time_zone: Option<TimeZone>,
    /// The day its W-9 was received (null: none on file).
    #[serde(default)]
    pub w9_received_on: Patch<NaiveDate>,
}

/// A new licence (status pending).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewLicense {
    /// The trade licensed.
    pub trade: TradeCode,
    /// Where it applies.
    pub jurisdiction: Jurisdiction,
    /// Licence number.
    pub number: Name,
    /// Issue date.
    pub issued_on: Option<NaiveDate>,
    /// Last valid day.
    pub expires_on: NaiveDate,
    /// A reference to the scanned document.
    pub document_ref: Option<String>,
}

/// Changes to a licence. A changed number or expiry makes it pending again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseUpdate {
    /// Which licence.
    pub license_id: LicenseId,
    /// Fail with `VERSION_CONFLICT` unless it is at this version.
    pub expected_version: Option<i64>,
    /// A new number.
    pub number: Option<Name>,
    /// A new issue date.
    pub issued_on: Patch<NaiveDate>,
    /// A new expiry.
    pub expires_on: Option<NaiveDate>,
    /// A new document reference.
    pub document_ref: Patch<String>,
}

/// A new insurance policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewInsurance {
    /// Kind of cover.
    pub kind: InsuranceKind,
    /// Insurer.
    pub carrier: Name,
    /// Policy number.
    pub policy_number: Name,
    /// Limit per occurrence.
    pub per_occurrence_limit: Decimal,
    /// Aggregate limit.
    pub aggregate_limit: Decimal,
    /// First day of cover.
    pub effective_on: NaiveDate,
    /// Last day of cover.
    pub expires_on: NaiveDate,
    /// A reference to the certificate of insurance.
    pub certificate_ref: Option<String>,
    /// The parties the certificate names as additional insureds.
    #[serde(default)]
    pub additional_insureds: Vec<Name>,
}

/// Changes to a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InsuranceUpdate {
    /// Which policy.
    pub insurance_id: InsuranceId,
    /// Fail with `VERSION_CONFLICT` unless it is at this version.
    pub expected_version: Option<i64>,
    /// Insurer.
    pub carrier: Option<Name>,
    /// Policy number.
    pub policy_number: Option<Name>,
    /// Limit per occurrence.
    pub per_occurrence_limit: Option<Decimal>,
    /// Aggregate limit.
    pub aggregate_limit: Option<Decimal>,
    /// First day of cover.
    pub effective_on: Option<NaiveDate>,
    /// Last day of cover.
    pub expires_on: Option<NaiveDate>,
    /// Certificate reference.
    pub certificate_ref: Patch<String>,
    /// The additional insureds (replaced).
    #[serde(default)]
    pub additional_insureds: Option<Vec<Name>>,
}

/// A set of service areas, as set at one time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AreaSet {
    /// 0 before any set, then +1 per replacement (older sets are kept).
    pub version: i64,
    /// The areas.
    pub areas: Vec<ServiceArea>,
}

/// The requirements in force, and their version (0: the shipped default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequirementsDoc {
    /// 0 for the shipped default table, then +1 per change.
    pub version: i64,
    /// The rules.
    pub requirements: Requirements,
}

/// The onboarding namespace's mutating procedures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum ContractorCommand {
    /// `contractor/v1/updateProfile`.
    #[serde(rename = "contractor/v1/updateProfile")]
    UpdateProfile(ProfileUpdate),
    /// `contractor/v1/addLicense`.
    #[serde(rename = "contractor/v1/addLicense")]
    AddLicense(NewLicense),
    /// `contractor/v1/updateLicense`.
    #[serde(rename = "contractor/v1/updateLicense")]
    UpdateLicense(LicenseUpdate),
    /// `contractor/v1/removeLicense`.
    #[serde(rename = "contractor/v1/removeLicense")]
    RemoveLicense {
        /// Which licence.
        license_id: LicenseId,
    },
    /// `contractor/v1/verifyLicense`.
    #[serde(rename = "contractor/v1/verifyLicense")]
    VerifyLicense {
        /// Which licence.
        license_id: LicenseId,
        /// verified or rejected.
        status: LicenseStatus,
        /// Fail with `VERSION_CONFLICT` unless it is at this version.
        expected_version: Option<i64>,
    },
    /// `contractor/v1/addInsurance`.
    #[serde(rename = "contractor/v1/addInsurance")]
    AddInsurance(NewInsurance),
    /// `contractor/v1/updateInsurance`.
    #[serde(rename = "contractor/v1/updateInsurance")]
    UpdateInsurance(InsuranceUpdate),
    /// `contractor/v1/removeInsurance`.
    #[serde(rename = "contractor/v1/removeInsurance")]
    RemoveInsurance {
        /// Which policy.
        insurance_id: InsuranceId,
    },
    /// `contractor/v1/setServiceAreas`.
    #[serde(rename = "contractor/v1/setServiceAreas")]
    SetServiceAreas {
        /// The new set (replaces the current one).
        areas: Vec<ServiceArea>,
    },
    /// `contractor/v1/setRequirements`.
    #[serde(rename = "contractor/v1/setRequirements")]
    SetRequirements {
        /// The new rules.
        requirements: Requirements,
        /// Fail with `VERSION_CONFLICT` unless the rules are at this version.
        expected_version: Option<i64>,
    },
    /// `contractor/v1/setTrades`.
    #[serde(rename = "contractor/v1/setTrades")]
    SetTrades {
        /// The new catalogue.
        trades: hestami_core::trade::TradeCatalogue,
        /// Fail with `VERSION_CONFLICT` unless the catalogue is at this version.
        expected_version: Option<i64>,
    },
}

impl Command for ContractorCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::UpdateProfile(_) => "contractor/v1/updateProfile",
            Self::AddLicense(_) => "contractor/v1/addLicense",
            Self::UpdateLicense(_) => "contractor/v1/updateLicense",
            Self::RemoveLicense { .. } => "contractor/v1/removeLicense",
            Self::VerifyLicense { .. } => "contractor/v1/verifyLicense",
            Self::AddInsurance(_) => "contractor/v1/addInsurance",
            Self::UpdateInsurance(_) => "contractor/v1/updateInsurance",
            Self::RemoveInsurance { .. } => "contractor/v1/removeInsurance",
            Self::SetServiceAreas { .. } => "contractor/v1/setServiceAreas",
            Self::SetRequirements { .. } => "contractor/v1/setRequirements",
            Self::SetTrades { .. } => "contractor/v1/setTrades",
        }
    }
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: ContractorCommand,
) -> Result<serde_json::Value, StoreError> {
    use ContractorCommand as C;
    let value = match command {
        C::UpdateProfile(u) => {
            let p = ctx
                .step("update_profile", move |tx| Box::pin(update_profile(tx, u)))
                .await?;
            serde_json::to_value(p)?
        }
        C::AddLicense(new) => {
            let l = ctx
                .step("insert_license", move |tx| {
                    Box::pin(insert_license(tx, new))
                })
                .await?;
            serde_json::to_value(l)?
        }
        C::UpdateLicense(u) => {
            let l = ctx
                .step("update_license", move |tx| {
                    Box::pin(async move {
                        let current = load_license(tx, u.license_id, true).await?;
                        check_version("licence", u.expected_version, current.version)?;
                        let reverify = u.number.as_ref().is_some_and(|n| *n != current.number)
                            || u.expires_on.is_some_and(|e| e != current.expires_on);
                        let next = License {
                            number: u.number.unwrap_or(current.number.clone()),
                            issued_on: u.issued_on.apply(current.issued_on),
                            expires_on: u.expires_on.unwrap_or(current.expires_on),
                            document_ref: u.document_ref.apply(current.document_ref.clone()),
                            status: if reverify {
                                LicenseStatus::Pending
                            } else {
                                current.status
                            },
                            verified_by: if reverify { None } else { current.verified_by },
                            verified_at: if reverify { None } else { current.verified_at },
                            ..current
                        };
                        save_license(tx, next, Operation::Updated).await
                    })
                })
                .await?;
            serde_json::to_value(l)?
        }
        C::RemoveLicense { license_id } => {
            let l = ctx
                .step("remove_license", move |tx| {
                    Box::pin(async move {
                        let current = load_license(tx, license_id, true).await?;
                        let org = tx.org();
                        let now = tx.now();
                        tx.execute(
                            "UPDATE licenses SET removed_at = $1, version = version + 1, updated_at = $1 \
                             WHERE organization_id = $2 AND id = $3",
                            args![now, org, license_id.as_uuid()],
                        )
                        .await?;
                        let removed = License { version: current.version + 1, updated_at: now, ..current };
                        tx.record_change("license", license_id.as_uuid(), removed.version, Operation::Deleted)
                            .await?;
                        Ok(removed)
                    })
                })
                .await?;
            serde_json::to_value(l)?
        }
        C::VerifyLicense {
            license_id,
            status,
            expected_version,
        } => {
            let l = ctx
                .step("verify_license", move |tx| {
                    Box::pin(async move {
                        if status == LicenseStatus::Pending {
                            return Err(Failure::new(
                                FailureKind::Validation,
                                "VALIDATION_FAILED",
                                "a licence is verified or rejected, not set back to pending",
                            )
                            .into());
                        }
                        let current = load_license(tx, license_id, true).await?;
                        check_version("licence", expected_version, current.version)?;
                        let next = License {
                            status,
                            verified_by: tx.actor(),
                            verified_at: Some(tx.now()),
                            ..current
                        };
                        save_license(tx, next, Operation::Updated).await
                    })
                })
                .await?;
            serde_json::to_value(l)?
        }
        C::AddInsurance(new) => {
            let p = ctx
                .step("insert_insurance", move |tx| {
                    Box::pin(insert_policy(tx, new))
                })
                .await?;
            serde_json::to_value(p)?
        }
        C::UpdateInsurance(u) => {
            let p = ctx
                .step("update_insurance", move |tx| {
                    Box::pin(async move {
                        let current = load_policy(tx, u.insurance_id, true).await?;
                        check_version("insurance policy", u.expected_version, current.version)?;
                        let next = InsurancePolicy {
                            carrier: u.carrier.unwrap_or(current.carrier.clone()),
                            policy_number: u.policy_number.unwrap_or(current.policy_number.clone()),
                            per_occurrence_limit: u
                                .per_occurrence_limit
                                .unwrap_or(current.per_occurrence_limit),
                            aggregate_limit: u.aggregate_limit.unwrap_or(current.aggregate_limit),
                            effective_on: u.effective_on.unwrap_or(current.effective_on),
                            expires_on: u.expires_on.unwrap_or(current.expires_on),
                            certificate_ref: u
                                .certificate_ref
                                .apply(current.certificate_ref.clone()),
                            additional_insureds: u
                                .additional_insureds
                                .unwrap_or(current.additional_insureds.clone()),
                            ..current
                        };
                        check_policy_dates(&next)?;
                        save_policy(tx, next).await
                    })
                })
                .await?;
            serde_json::to_value(p)?
        }
        C::RemoveInsurance { insurance_id } => {
            let p = ctx
                .step("remove_insurance", move |tx| {
                    Box::pin(async move {
                        let current = load_policy(tx, insurance_id, true).await?;
                        let org = tx.org();
                        let now = tx.now();
                        tx.execute(
                            "UPDATE insurance_policies SET removed_at = $1, version = version + 1, updated_at = $1 \
                             WHERE organization_id = $2 AND id = $3",
                            args![now, org, insurance_id.as_uuid()],
                        )
                        .await?;
                        let removed = InsurancePolicy { version: current.version + 1, updated_at: now, ..current };
                        tx.record_change("insurance", insurance_id.as_uuid(), removed.version, Operation::Deleted)
                            .await?;
                        Ok(removed)
                    })
                })
                .await?;
            serde_json::to_value(p)?
        }
        C::SetServiceAreas { areas } => {
            let set = ctx
                .step("set_service_areas", move |tx| {
                    Box::pin(set_areas(tx, None, areas))
                })
                .await?;
            serde_json::to_value(set)?
        }
        C::SetTrades {
            trades,
            expected_version,
        } => {
            let doc = ctx
                .step("set_trades", move |tx| {
                    Box::pin(super::trades::set_trades(tx, trades, expected_version))
                })
                .await?;
            serde_json::to_value(doc)?
        }
        C::SetRequirements {
            requirements,
            expected_version,
        } => {
            let doc = ctx
                .step("set_requirements", move |tx| {
                    Box::pin(async move {
                        super::trades::ensure_known(
                            tx,
                            requirements
                                .rules
                                .iter()
                                .enumerate()
                                .filter_map(|(n, r)| {
                                    r.trade.clone().map(|t| (format!("rules[{n}].trade"), t))
                                })
                                .collect(),
                        )
                        .await?;
                        let current = load_requirements(tx, true).await?;
                        check_version("requirements", expected_version, current.version)?;
                        let version = REQUIREMENTS
                            .save(tx, current.version, &requirements)
                            .await?;
                        Ok(RequirementsDoc {
                            version,
                            requirements,
                        })
                    })
                })
                .await?;
            serde_json::to_value(doc)?
        }
    };
    Ok(value)
}

/// Serializes a snake_case enum to its name.
pub(crate) fn enum_name<T: Serialize>(value: &T) -> Result<String, StoreError> {
    match serde_json::to_value(value)? {
        serde_json::Value::String(s) => Ok(s),
        other => Err(StoreError::Internal(format!("{other} is not an enum name"))),
    }
}

/// Parses a stored snake_case enum name.
pub(crate) fn parse_enum<T: DeserializeOwned>(raw: String) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(raw))
        .map_err(|e| StoreError::Internal(format!("stored enum value is invalid: {e}")))
}

async fn update_profile(tx: &mut TenantTx, u: ProfileUpdate) -> Result<Profile, StoreError> {
    let current = load_profile(tx, true).await?;
    check_version("profile", u.expected_version, current.version)?;
    let next = Profile {
        version: current.version + 1,
        legal_name: u.legal_name.apply(current.legal_name),
        trade_names: u.trade_names.unwrap_or(current.trade_names),
        tax_id: u.tax_id.apply(current.tax_id),
        contact_email: u.contact_email.apply(current.contact_email),
        contact_phone: u.contact_phone.apply(current.contact_phone),
        time_zone: u.time_zone.unwrap_or(current.time_zone),
        w9_received_on: u.w9_received_on.apply(current.w9_received_on),
    };
    let org = tx.org();
    let now = tx.now();
    let values = args![
        org,
        next.version,
        next.legal_name.as_ref().map(Name::as_str),
        serde_json::to_string(&next.trade_names)?,
        next.tax_id.as_ref().map(Name::as_str),
        next.contact_email.as_ref().map(Email::as_str),
        next.contact_phone.as_ref().map(Phone::as_str),
        now,
        next.w9_received_on
    ];
    if current.version == 0 {
        tx.execute(
            "INSERT INTO contractor_profiles (organization_id, version, legal_name, trade_names, tax_id, \
             contact_email, contact_phone, created_at, updated_at, w9_received_on) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
            values,
        )
        .await?;
    } else {
        tx.execute(
            "UPDATE contractor_profiles SET version = $2, legal_name = $3, trade_names = $4, tax_id = $5, \
             contact_email = $6, contact_phone = $7, updated_at = $8, w9_received_on = $9 \
             WHERE organization_id = $1",
            values,
        )
        .await?;
    }
    if next.time_zone != current.time_zone {
        tx.execute(
            "UPDATE organizations SET time_zone = $1, version = version + 1, updated_at = $2 WHERE id = $3",
            args![next.time_zone.name(), now, org],
        )
        .await?;
        let org_version = load_organization(tx, false).await?.version;
        tx.record_change("organization", org, org_version, Operation::Updated)
            .await?;
    }
    tx.record_change("contractor_profile", org, next.version, Operation::Updated)
        .await?;
    Ok(next)
}

pub(crate) async fn load_profile(tx: &mut TenantTx, lock: bool) -> Result<Profile, StoreError> {
    let time_zone = load_organization(tx, false).await?.time_zone;
    let org = tx.org();
    let sql = format!(
        "SELECT version, legal_name, trade_names, tax_id, contact_email, contact_phone, w9_received_on \
         FROM contractor_profiles \
         WHERE organization_id = $1{}",
        if lock { tx.for_update() } else { "" }
    );
    let Some(row) = tx.fetch_optional(&sql, args![org]).await? else {
        return Ok(Profile {
            version: 0,
            legal_name: None,
            trade_names: Vec::new(),
            tax_id: None,
            contact_email: None,
            contact_phone: None,
            time_zone,
            w9_received_on: None,
        });
    };
    let name = |col: &str| -> Result<Option<Name>, StoreError> {
        row.get::<Option<String>>(col)?
            .map(|v| parse_stored(&v, Name::parse))
            .transpose()
    };
    Ok(Profile {
        version: row.get("version")?,
        legal_name: name("legal_name")?,
        trade_names: serde_json::from_str(&row.get::<String>("trade_names")?)?,
        tax_id: name("tax_id")?,
        contact_email: row
            .get::<Option<String>>("contact_email")?
            .map(|v| parse_stored(&v, Email::parse))
            .transpose()?,
        contact_phone: row
            .get::<Option<String>>("contact_phone")?
            .map(|v| parse_stored(&v, Phone::parse))
            .transpose()?,
        time_zone,
        w9_received_on: row.get("w9_received_on")?,
    })
}

async fn insert_license(tx: &mut TenantTx, new: NewLicense) -> Result<License, StoreError> {
    super::trades::ensure_known(tx, vec![("trade".to_owned(), new.trade.clone())]).await?;
    if let Some(issued) = new.issued_on
        && issued > new.expires_on
    {
        return Err(Failure::validation(vec![crate::error::FieldError {
            field: "expiresOn".into(),
            code: "before_issue".into(),
            message: "a licence expires after it is issued".into(),
        }])
        .into());
    }
    let now = tx.now();
    let license = License {
        id: LicenseId::from_uuid(new_id()),
        version: 1,
        trade: new.trade,
        jurisdiction: new.jurisdiction,
        number: new.number,
        issued_on: new.issued_on,
        expires_on: new.expires_on,
        document_ref: new.document_ref,
        status: LicenseStatus::Pending,
        verified_by: None,
        verified_at: None,
        created_at: now,
        updated_at: now,
    };
    let j = &license.jurisdiction;
    tx.execute(
        "INSERT INTO licenses (organization_id, id, version, trade, country, region, locality, number, issued_on, \
         expires_on, document_ref, status, created_at, updated_at) \
         VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
        args![
            tx.org(),
            license.id.as_uuid(),
            license.trade.as_str(),
            j.country().as_str(),
            j.region(),
            j.locality(),
            license.number.as_str(),
            license.issued_on,
            license.expires_on,
            license.document_ref.clone(),
            enum_name(&license.status)?,
            now
        ],
    )
    .await?;
    tx.record_change("license", license.id.as_uuid(), 1, Operation::Created)
        .await?;
    Ok(license)
}

async fn save_license(
    tx: &mut TenantTx,
    license: License,
    op: Operation,
) -> Result<License, StoreError> {
    let next = License {
        version: license.version + 1,
        updated_at: tx.now(),
        ..license
    };
    tx.execute(
        "UPDATE licenses SET version = $1, number = $2, issued_on = $3, expires_on = $4, document_ref = $5, \
         status = $6, verified_by = $7, verified_at = $8, updated_at = $9 WHERE organization_id = $10 AND id = $11",
        args![
            next.version,
            next.number.as_str(),
            next.issued_on,
            next.expires_on,
            next.document_ref.clone(),
            enum_name(&next.status)?,
            next.verified_by.map(|u| u.as_uuid()),
            next.verified_at,
            next.updated_at,
            tx.org(),
            next.id.as_uuid()
        ],
    )
    .await?;
    tx.record_change("license", next.id.as_uuid(), next.version, op)
        .await?;
    Ok(next)
}

const LICENSE_COLUMNS: &str = "id, version, trade, country, region, locality, number, issued_on, expires_on, \
                               document_ref, status, verified_by, verified_at, created_at, updated_at";

fn decode_license(row: &Row) -> Result<License, StoreError> {
    let country = parse_stored(&row.get::<String>("country")?, CountryCode::parse)?;
    let region: Option<String> = row.get("region")?;
    let locality: Option<String> = row.get("locality")?;
    Ok(License {
        id: LicenseId::from_uuid(row.get("id")?),
        version: row.get("version")?,
        trade: parse_stored(&row.get::<String>("trade")?, TradeCode::parse)?,
        jurisdiction: Jurisdiction::parse(country, region.as_deref(), locality.as_deref())
            .map_err(|e| StoreError::Internal(format!("stored jurisdiction is invalid: {e}")))?,
        number: parse_stored(&row.get::<String>("number")?, Name::parse)?,
        issued_on: row.get("issued_on")?,
        expires_on: row.get("expires_on")?,
        document_ref: row.get("document_ref")?,
        status: parse_enum(row.get("status")?)?,
        verified_by: row
            .get::<Option<uuid::Uuid>>("verified_by")?
            .map(hestami_core::ids::UserId::from_uuid),
        verified_at: row.get("verified_at")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

async fn load_license(tx: &mut TenantTx, id: LicenseId, lock: bool) -> Result<License, StoreError> {
    let sql = format!(
        "SELECT {LICENSE_COLUMNS} FROM licenses WHERE organization_id = $1 AND id = $2 AND removed_at IS NULL{}",
        if lock { tx.for_update() } else { "" }
    );
    let org = tx.org();
    let row = tx.fetch_optional(&sql, args![org, id.as_uuid()]).await?;
    row.map(|r| decode_license(&r))
        .transpose()?
        .ok_or_else(|| Failure::not_found("licence").into())
}

/// Every licence the organization holds (not removed), by id.
pub(crate) async fn load_licenses(tx: &mut TenantTx) -> Result<Vec<License>, StoreError> {
    let org = tx.org();
    let rows = tx
        .fetch_all(
            &format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE organization_id = $1 AND removed_at IS NULL ORDER BY id"),
            args![org],
        )
        .await?;
    rows.iter().map(decode_license).collect()
}

fn check_policy_dates(p: &InsurancePolicy) -> Result<(), StoreError> {
    let mut errors = Vec::new();
    if p.expires_on < p.effective_on {
        errors.push(crate::error::FieldError {
            field: "expiresOn".into(),
            code: "before_effective".into(),
            message: "cover ends on or after the day it starts".into(),
        });
    }
    for (field, amount) in [
        ("perOccurrenceLimit", p.per_occurrence_limit),
        ("aggregateLimit", p.aggregate_limit),
    ] {
        if amount <= Decimal::ZERO {
            errors.push(crate::error::FieldError {
                field: field.into(),
                code: "must_be_positive".into(),
                message: "a limit is greater than 0".into(),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::validation(errors).into())
    }
}

async fn insert_policy(
    tx: &mut TenantTx,
    new: NewInsurance,
) -> Result<InsurancePolicy, StoreError> {
    let now = tx.now();
    let policy = InsurancePolicy {
        id: InsuranceId::from_uuid(new_id()),
        version: 1,
        kind: new.kind,
        carrier: new.carrier,
        policy_number: new.policy_number,
        per_occurrence_limit: new.per_occurrence_limit,
        aggregate_limit: new.aggregate_limit,
        effective_on: new.effective_on,
        expires_on: new.expires_on,
        certificate_ref: new.certificate_ref,
        additional_insureds: new.additional_insureds,
        created_at: now,
        updated_at: now,
    };
    check_policy_dates(&policy)?;
    tx.execute(
        "INSERT INTO insurance_policies (organization_id, id, version, kind, carrier, policy_number, \
         per_occurrence_limit, aggregate_limit, effective_on, expires_on, certificate_ref, created_at, updated_at, \
         additional_insureds) VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12)",
        args![
            tx.org(),
            policy.id.as_uuid(),
            policy.kind.as_str(),
            policy.carrier.as_str(),
            policy.policy_number.as_str(),
            policy.per_occurrence_limit.to_string(),
            policy.aggregate_limit.to_string(),
            policy.effective_on,
            policy.expires_on,
            policy.certificate_ref.clone(),
            now,
            serde_json::to_string(&policy.additional_insureds)?
        ],
    )
    .await?;
    tx.record_change("insurance", policy.id.as_uuid(), 1, Operation::Created)
        .await?;
    Ok(policy)
}

async fn save_policy(
    tx: &mut TenantTx,
    policy: InsurancePolicy,
) -> Result<InsurancePolicy, StoreError> {
    let next = InsurancePolicy {
        version: policy.version + 1,
        updated_at: tx.now(),
        ..policy
    };
    tx.execute(
        "UPDATE insurance_policies SET version = $1, carrier = $2, policy_number = $3, per_occurrence_limit = $4, \
         aggregate_limit = $5, effective_on = $6, expires_on = $7, certificate_ref = $8, updated_at = $9, \
         additional_insureds = $12 WHERE organization_id = $10 AND id = $11",
        args![
            next.version,
            next.carrier.as_str(),
            next.policy_number.as_str(),
            next.per_occurrence_limit.to_string(),
            next.aggregate_limit.to_string(),
            next.effective_on,
            next.expires_on,
            next.certificate_ref.clone(),
            next.updated_at,
            tx.org(),
            next.id.as_uuid(),
            serde_json::to_string(&next.additional_insureds)?
        ],
    )
    .await?;
    tx.record_change(
        "insurance",
        next.id.as_uuid(),
        next.version,
        Operation::Updated,
    )
    .await?;
    Ok(next)
}

const POLICY_COLUMNS: &str = "id, version, kind, carrier, policy_number, per_occurrence_limit, aggregate_limit, \
                              effective_on, expires_on, certificate_ref, created_at, updated_at, additional_insureds";

fn decode_policy(row: &Row) -> Result<InsurancePolicy, StoreError> {
    let amount = |col: &str| -> Result<Decimal, StoreError> {
        row.get::<String>(col)?
            .parse::<Decimal>()
            .map_err(|e| StoreError::Internal(format!("stored amount {col} is invalid: {e}")))
    };
    Ok(InsurancePolicy {
        id: InsuranceId::from_uuid(row.get("id")?),
        version: row.get("version")?,
        kind: parse_enum(row.get("kind")?)?,
        carrier: parse_stored(&row.get::<String>("carrier")?, Name::parse)?,
        policy_number: parse_stored(&row.get::<String>("policy_number")?, Name::parse)?,
        per_occurrence_limit: amount("per_occurrence_limit")?,
        aggregate_limit: amount("aggregate_limit")?,
        effective_on: row.get("effective_on")?,
        expires_on: row.get("expires_on")?,
        certificate_ref: row.get("certificate_ref")?,
        additional_insureds: serde_json::from_str(&row.get::<String>("additional_insureds")?)?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

async fn load_policy(
    tx: &mut TenantTx,
    id: InsuranceId,
    lock: bool,
) -> Result<InsurancePolicy, StoreError> {
    let sql = format!(
        "SELECT {POLICY_COLUMNS} FROM insurance_policies WHERE organization_id = $1 AND id = $2 AND removed_at IS NULL{}",
        if lock { tx.for_update() } else { "" }
    );
    let org = tx.org();
    let row = tx.fetch_optional(&sql, args![org, id.as_uuid()]).await?;
    row.map(|r| decode_policy(&r))
        .transpose()?
        .ok_or_else(|| Failure::not_found("insurance policy").into())
}

/// Every policy the organization holds (not removed), by id.
pub(crate) async fn load_policies(tx: &mut TenantTx) -> Result<Vec<InsurancePolicy>, StoreError> {
    let org = tx.org();
    let rows = tx
        .fetch_all(
            &format!(
                "SELECT {POLICY_COLUMNS} FROM insurance_policies WHERE organization_id = $1 AND removed_at IS NULL ORDER BY id"
            ),
            args![org],
        )
        .await?;
    rows.iter().map(decode_policy).collect()
}

/// Replaces the organization's (technician `None`) or a technician's service areas; the old set
/// stays in the history.
pub(crate) async fn set_areas(
    tx: &mut TenantTx,
    technician: Option<TechnicianId>,
    areas: Vec<ServiceArea>,
) -> Result<AreaSet, StoreError> {
    super::trades::ensure_known(
        tx,
        areas
            .iter()
            .enumerate()
            .flat_map(|(n, a)| {
                a.trades
                    .iter()
                    .map(move |t| (format!("areas[{n}].trades"), t.clone()))
            })
            .collect(),
    )
    .await?;
    let current = load_areas(tx, technician).await?;
    let version = current.version + 1;
    let id = ServiceAreaSetId::from_uuid(new_id());
    let now = tx.now();
    tx.execute(
        "INSERT INTO service_area_sets (organization_id, id, technician_id, version, areas, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        args![tx.org(), id.as_uuid(), technician.map(|t| t.as_uuid()), version, serde_json::to_string(&areas)?, now],
    )
    .await?;
    let entity = technician.map_or(tx.org(), |t| t.as_uuid());
    let kind = if technician.is_some() {
        "technician_service_areas"
    } else {
        "service_areas"
    };
    tx.record_change(kind, entity, version, Operation::Updated)
        .await?;
    Ok(AreaSet { version, areas })
}

/// The current service areas of the organization (`None`) or of a technician.
pub(crate) async fn load_areas(
    tx: &mut TenantTx,
    technician: Option<TechnicianId>,
) -> Result<AreaSet, StoreError> {
    let org = tx.org();
    let row = tx
        .fetch_optional(
            "SELECT version, areas FROM service_area_sets WHERE organization_id = $1 \
             AND (($2 IS NULL AND technician_id IS NULL) OR technician_id = $2) ORDER BY version DESC LIMIT 1",
            args![org, technician.map(|t| t.as_uuid())],
        )
        .await?;
    match row {
        None => Ok(AreaSet {
            version: 0,
            areas: Vec::new(),
        }),
        Some(r) => Ok(AreaSet {
            version: r.get("version")?,
            areas: serde_json::from_str(&r.get::<String>("areas")?)?,
        }),
    }
}

/// The requirements in force: the organization's own, or the shipped default (version 0).
pub(crate) async fn load_requirements(
    tx: &mut TenantTx,
    lock: bool,
) -> Result<RequirementsDoc, StoreError> {
    Ok(match REQUIREMENTS.load(tx, lock).await? {
        None => RequirementsDoc {
            version: 0,
            requirements: Requirements::default_table(),
        },
        Some((version, requirements)) => RequirementsDoc {
            version,
            requirements,
        },
    })
}

/// Where the requirement table is kept.
const REQUIREMENTS: super::OrgSetting = super::OrgSetting {
    table: "compliance_requirements",
    column: "rules",
    entity: "requirements",
};

/// Every technician certification of the organization (not removed).
pub(crate) async fn load_all_certifications(
    tx: &mut TenantTx,
) -> Result<Vec<(TechnicianId, Certification)>, StoreError> {
    super::workforce::load_certifications(tx, None).await
}

/// `contractor/v1/complianceStatus`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceReport {
    /// The day it is about.
    pub at: NaiveDate,
    /// Per trade and jurisdiction: compliant, or every reason why not.
    pub trades: Vec<TradeCompliance>,
    /// What lapses within 30 days.
    pub expiring: Vec<ExpiringItem>,
}

impl Services {
    /// `contractor/v1/getProfile`.
    pub async fn contractor_profile(&self, caller: &Caller) -> Result<Profile, StoreError> {
        self.read(caller, |tx| Box::pin(load_profile(tx, false)))
            .await
    }

    /// `contractor/v1/getRequirements`.
    pub async fn contractor_requirements(
        &self,
        caller: &Caller,
    ) -> Result<RequirementsDoc, StoreError> {
        self.read(caller, |tx| Box::pin(load_requirements(tx, false)))
            .await
    }

    /// The organization's current service areas.
    pub async fn contractor_service_areas(&self, caller: &Caller) -> Result<AreaSet, StoreError> {
        self.read(caller, |tx| Box::pin(load_areas(tx, None))).await
    }

    /// Licences and policies in force.
    pub async fn contractor_credentials(
        &self,
        caller: &Caller,
    ) -> Result<(Vec<License>, Vec<InsurancePolicy>), StoreError> {
        self.read(caller, |tx| {
            Box::pin(async move { Ok((load_licenses(tx).await?, load_policies(tx).await?)) })
        })
        .await
    }

    /// `contractor/v1/complianceStatus`: on `at`, for every trade and jurisdiction the
    /// organization holds a licence for, names in a rule, or works in (its properties' states).
    pub async fn compliance_status(
        &self,
        caller: &Caller,
        at: NaiveDate,
    ) -> Result<ComplianceReport, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let licenses = load_licenses(tx).await?;
                let policies = load_policies(tx).await?;
                let requirements = load_requirements(tx, false).await?.requirements;
                let work_in = work_jurisdictions(tx).await?;
                let certifications = load_all_certifications(tx).await?;
                Ok(ComplianceReport {
                    at,
                    trades: rules::status(at, &work_in, &licenses, &policies, &requirements),
                    expiring: rules::expiring(at, 30, &licenses, &policies, &certifications),
                })
            })
        })
        .await
    }

    /// `contractor/v1/listExpiring`: what lapses between `on` and `within_days` later.
    pub async fn list_expiring(
        &self,
        caller: &Caller,
        on: NaiveDate,
        within_days: u32,
    ) -> Result<Vec<ExpiringItem>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let licenses = load_licenses(tx).await?;
                let policies = load_policies(tx).await?;
                let certifications = load_all_certifications(tx).await?;
                Ok(rules::expiring(
                    on,
                    within_days,
                    &licenses,
                    &policies,
                    &certifications,
                ))
            })
        })
        .await
    }
}

/// The jurisdictions the organization works in: the country and region of its properties.
async fn work_jurisdictions(tx: &mut TenantTx) -> Result<Vec<Jurisdiction>, StoreError> {
    let org = tx.org();
    let rows = tx
        .fetch_all(
            "SELECT DISTINCT country, region FROM properties WHERE organization_id = $1 ORDER BY country, region",
            args![org],
        )
        .await?;
    let mut places = Vec::with_capacity(rows.len());
    for r in &rows {
        let country = parse_stored(&r.get::<String>("country")?, CountryCode::parse)?;
        let region: String = r.get("region")?;
        let place = Jurisdiction::parse(country.clone(), Some(&region), None)
            .or_else(|_| Jurisdiction::parse(country, None, None))
            .map_err(|e| StoreError::Internal(format!("no jurisdiction for a property: {e}")))?;
        if !places.contains(&place) {
            places.push(place);
        }
    }
    Ok(places)
}

/// The jurisdiction of a property: its country, region (when it is a valid region code) and
/// city.
pub(crate) fn property_jurisdiction(address: &hestami_core::customer::Address) -> Jurisdiction {
    let country = address.country.clone();
    Jurisdiction::parse(country.clone(), Some(address.region.as_str()), Some(address.city.as_str()))
        .or_else(|_| Jurisdiction::parse(country.clone(), Some(address.region.as_str()), None))
        .or_else(|_| Jurisdiction::parse(country, None, None))
        .expect("a country alone is always a jurisdiction: Jurisdiction::parse only refuses regions and localities")
}
