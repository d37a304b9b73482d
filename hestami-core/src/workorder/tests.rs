use rust_decimal::Decimal;

use super::*;
use crate::compliance::tests::{d, j, licence, policy, t};

fn association() -> Name {
    Name::parse("Maple Grove HOA").expect("valid")
}

fn work<'a>(trade: &'a TradeCode, place: &'a Jurisdiction) -> Work<'a> {
    Work {
        trade,
        place,
        from: d("2031-03-02"),
        to: d("2031-03-20"),
    }
}

/// An association asking, of plumbers: a licence, general liability of 2,000,000 per
/// occurrence naming it as additional insured, workers' compensation held, and a W-9.
fn theirs() -> VendorRequirements {
    VendorRequirements {
        rules: vec![
            VendorRule {
                trade: Some(t("plumbing")),
                license_required: true,
                insurance: vec![
                    InsuranceRequirement {
                        kind: InsuranceKind::GeneralLiability,
                        min_per_occurrence: Some(Decimal::from(2_000_000)),
                        min_aggregate: None,
                    },
                    InsuranceRequirement {
                        kind: InsuranceKind::WorkersComp,
                        min_per_occurrence: None,
                        min_aggregate: None,
                    },
                ],
                additional_insured: vec![InsuranceKind::GeneralLiability],
                w9_required: false,
            },
            VendorRule {
                trade: None,
                license_required: false,
                insurance: Vec::new(),
                additional_insured: Vec::new(),
                w9_required: true,
            },
        ],
    }
}

fn codes(verdict: &ComplianceVerdict) -> Vec<&'static str> {
    verdict.reasons.iter().map(|r| r.code).collect()
}

#[test]
fn a_contractor_meeting_both_tables_is_eligible() {
    let place = j("US", Some("IL"), Some("Springfield"));
    let plumbing = t("plumbing");
    let licences = [licence(
        1,
        "plumbing",
        j("US", Some("IL"), None),
        "2032-01-01",
    )];
    let mut liability = policy(
        2,
        InsuranceKind::GeneralLiability,
        2_000_000,
        "2030-01-01",
        "2031-12-31",
    );
    liability.additional_insureds = vec![Name::parse("maple grove hoa").expect("valid")];
    let policies = [
        liability,
        policy(
            3,
            InsuranceKind::WorkersComp,
            500_000,
            "2030-01-01",
            "2031-12-31",
        ),
    ];
    let own = Requirements::default_table();
    let vendor = Vendor {
        licenses: &licences,
        policies: &policies,
        requirements: &own,
        w9_on_file: true,
    };
    let verdict = eligibility(&vendor, &association(), &theirs(), &work(&plumbing, &place));
    assert!(verdict.compliant, "{:?}", verdict.reasons);
    assert!(findings(&verdict).is_empty());
}

#[test]
fn every_reason_of_both_tables_is_reported_once() {
    let place = j("US", Some("IL"), Some("Springfield"));
    let plumbing = t("plumbing");
    // The liability policy meets the contractor's own 1,000,000 but not the association's
    // 2,000,000, does not name the association, and lapses within the requested days; no
    // workers' compensation, no licence, no W-9.
    let policies = [policy(
        2,
        InsuranceKind::GeneralLiability,
        1_500_000,
        "2030-01-01",
        "2031-03-10",
    )];
    let own = Requirements::default_table();
    let vendor = Vendor {
        licenses: &[],
        policies: &policies,
        requirements: &own,
        w9_on_file: false,
    };
    let verdict = eligibility(&vendor, &association(), &theirs(), &work(&plumbing, &place));
    assert!(!verdict.compliant);
    assert_eq!(
        codes(&verdict),
        [
            "LICENSE_MISSING",
            "INSURANCE_BELOW_MINIMUM",
            "INSURANCE_MISSING",
            "INSURANCE_EXPIRED",
            "ADDITIONAL_INSURED_MISSING",
            "W9_MISSING",
        ]
    );
    // The association sees codes and kinds, nothing of the contractor's documents.
    let seen = serde_json::to_string(&findings(&verdict)).expect("serializes");
    assert_eq!(
        seen,
        r#"[{"code":"ADDITIONAL_INSURED_MISSING","kind":"general_liability"},{"code":"INSURANCE_BELOW_MINIMUM","kind":"general_liability"},{"code":"INSURANCE_EXPIRED","kind":"general_liability"},{"code":"INSURANCE_MISSING","kind":"workers_comp"},{"code":"LICENSE_MISSING","kind":null},{"code":"W9_MISSING","kind":null}]"#
    );
    assert!(!seen.contains("P-2") && !seen.contains("1500000"));
}

#[test]
fn rules_for_other_trades_do_not_apply() {
    let place = j("US", Some("IL"), None);
    let painting = t("painting");
    let own = Requirements::default();
    let vendor = Vendor {
        licenses: &[],
        policies: &[],
        requirements: &own,
        w9_on_file: true,
    };
    // Only the every-trade rule (a W-9) applies to painting, and it is met.
    let verdict = eligibility(&vendor, &association(), &theirs(), &work(&painting, &place));
    assert!(verdict.compliant, "{:?}", verdict.reasons);
}

#[test]
fn a_table_is_checked_with_paths() {
    let mut table = theirs();
    table.rules[0].insurance.push(InsuranceRequirement {
        kind: InsuranceKind::GeneralLiability,
        min_per_occurrence: Some(Decimal::from(-1)),
        min_aggregate: None,
    });
    let problems = table.validate().expect_err("refused");
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["rules[0].insurance[2].minPerOccurrence"]);
    assert_eq!(theirs().validate(), Ok(()));
    let many = VendorRequirements {
        rules: vec![theirs().rules[1].clone(); MAX_VENDOR_RULES + 1],
    };
    assert_eq!(many.validate().expect_err("refused")[0].field, "rules");
}

#[test]
fn only_a_policy_in_force_on_the_requested_days_names_the_association() {
    let place = j("US", Some("IL"), None);
    let painting = t("painting");
    let own = Requirements::default();
    let names = |mut p: InsurancePolicy| {
        p.additional_insureds = vec![association()];
        p
    };
    // Liability must name the association; no minimum is set, so only the endorsement decides.
    let theirs = VendorRequirements {
        rules: vec![VendorRule {
            trade: None,
            license_required: false,
            insurance: Vec::new(),
            additional_insured: vec![InsuranceKind::GeneralLiability],
            w9_required: false,
        }],
    };
    let verdict = |policies: &[InsurancePolicy]| {
        let vendor = Vendor {
            licenses: &[],
            policies,
            requirements: &own,
            w9_on_file: true,
        };
        codes(&eligibility(
            &vendor,
            &association(),
            &theirs,
            &work(&painting, &place),
        ))
    };
    let lapsed = names(policy(
        1,
        InsuranceKind::GeneralLiability,
        1,
        "2030-01-01",
        "2031-03-10",
    ));
    let later = names(policy(
        2,
        InsuranceKind::GeneralLiability,
        1,
        "2031-03-05",
        "2032-01-01",
    ));
    let other_kind = names(policy(
        3,
        InsuranceKind::CommercialAuto,
        1,
        "2030-01-01",
        "2032-01-01",
    ));
    let in_force = policy(
        4,
        InsuranceKind::GeneralLiability,
        1,
        "2030-01-01",
        "2032-01-01",
    );
    assert_eq!(
        verdict(&[lapsed, later, other_kind, in_force.clone()]),
        ["ADDITIONAL_INSURED_MISSING"]
    );
    assert_eq!(verdict(&[names(in_force)]), Vec::<&str>::new());
}
