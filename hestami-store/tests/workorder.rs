//! HOA work orders on every backend, through the services: an association's properties and
//! vendor requirements, and the vendor link between an association and a contractor, visible
//! to exactly those two organizations.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use serde_json::json;

use hestami_core::ids::{OrganizationId, VendorLinkId};
use hestami_core::org::OrgKind;
use hestami_core::workorder::LinkStatus;
use hestami_store::app::workorder::{
    HoaProperty, VendorLink, VendorRequirementsDoc, WorkOrderCommand,
};

use common::*;

on_every_backend!(
    an_association_keeps_its_properties_and_vendor_requirements,
    a_vendor_link_is_seen_by_exactly_its_two_organizations,
);

fn invite(contractor: OrganizationId) -> WorkOrderCommand {
    WorkOrderCommand::InviteVendor {
        contractor_organization_id: contractor,
    }
}

fn answer(link: VendorLinkId, accept: bool) -> WorkOrderCommand {
    WorkOrderCommand::AnswerInvitation {
        link_id: link,
        accept,
        expected_version: None,
    }
}

async fn an_association_keeps_its_properties_and_vendor_requirements(fx: Fixture) {
    let s = &fx.services;
    let hoa = fx.org_of_kind("Maple Grove HOA", OrgKind::Hoa).await;
    let h = &hoa.caller;
    let pool = WorkOrderCommand::AddProperty(from_json(json!({
        "name": "Pool house", "kind": "common_area",
        "address": { "line1": "1 Maple Way", "line2": null, "city": "Springfield", "region": "IL",
                     "postalCode": "62701", "country": "US" }
    })));
    let added: HoaProperty = ok(s, h, pool.clone()).await;
    assert_eq!(added.name.as_str(), "Pool house");
    let again = refused(s, h, pool.clone()).await;
    assert_eq!(again.code, "PROPERTY_EXISTS");
    assert_eq!(s.hoa_properties(h).await.unwrap(), vec![added]);

    let rules = || WorkOrderCommand::SetVendorRequirements {
        requirements: from_json(json!({ "rules": [{
                "trade": "plumbing", "licenseRequired": true,
                "insurance": [{ "kind": "general_liability", "minPerOccurrence": "2000000",
                                "minAggregate": null }],
                "additionalInsured": ["general_liability"], "w9Required": true
            }] })),
        expected_version: Some(0),
    };
    let set: VendorRequirementsDoc = ok(s, h, rules()).await;
    assert_eq!(set.version, 1);
    assert_eq!(s.vendor_requirements(h).await.unwrap(), set);
    // A stale version is refused; a negative minimum names its field.
    assert_eq!(refused(s, h, rules()).await.code, "VERSION_CONFLICT");
    let negative = refused(
        s,
        h,
        WorkOrderCommand::SetVendorRequirements {
            requirements: from_json(json!({ "rules": [{ "trade": null,
                "insurance": [{ "kind": "workers_comp", "minPerOccurrence": "-1",
                                "minAggregate": null }] }] })),
            expected_version: None,
        },
    )
    .await;
    assert_eq!(
        negative.field_errors[0].field,
        "requirements.rules[0].insurance[0].minPerOccurrence"
    );

    // A contractor does none of this.
    let contractor = fx.org("Ada Plumbing").await;
    let refusal = refused(s, &contractor.caller, pool).await;
    assert_eq!(refusal.code, "NOT_AN_ASSOCIATION");
    assert!(
        s.hoa_properties(&contractor.caller)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_vendor_link_is_seen_by_exactly_its_two_organizations(fx: Fixture) {
    let s = &fx.services;
    let hoa = fx.org_of_kind("Maple Grove HOA", OrgKind::Hoa).await;
    let ada = fx.org("Ada Plumbing").await;
    let other = fx.org("Bob Electric").await;
    let (h, a, o) = (&hoa.caller, &ada.caller, &other.caller);

    let invited: VendorLink = ok(s, h, invite(ada.id())).await;
    assert_eq!(invited.status, LinkStatus::Invited);
    // Inviting again while the invitation is open changes nothing.
    let same: VendorLink = ok(s, h, invite(ada.id())).await;
    assert_eq!(same, invited);
    // Both sides see the link; a third organization sees nothing.
    assert_eq!(s.vendor_links(h).await.unwrap(), vec![invited.clone()]);
    assert_eq!(s.vendor_links(a).await.unwrap(), vec![invited.clone()]);
    assert!(s.vendor_links(o).await.unwrap().is_empty());
    // Only the invited contractor answers: the association cannot, another contractor does
    // not find the link.
    assert_eq!(
        refused(s, h, answer(invited.id, true)).await.code,
        "NOT_A_CONTRACTOR"
    );
    assert_eq!(
        refused(s, o, answer(invited.id, true)).await.code,
        "NOT_FOUND"
    );
    let accepted: VendorLink = ok(s, a, answer(invited.id, true)).await;
    assert_eq!((accepted.status, accepted.version), (LinkStatus::Active, 2));
    assert_eq!(s.vendor_links(h).await.unwrap(), vec![accepted.clone()]);
    assert_eq!(
        refused(s, a, answer(invited.id, false)).await.code,
        "NOT_INVITED"
    );
    assert_eq!(
        refused(s, h, invite(ada.id())).await.code,
        "ALREADY_A_VENDOR"
    );

    // A declined invitation may be sent again.
    let bob_invited: VendorLink = ok(s, h, invite(other.id())).await;
    let declined: VendorLink = ok(s, o, answer(bob_invited.id, false)).await;
    assert_eq!(declined.status, LinkStatus::Declined);
    let reinvited: VendorLink = ok(s, h, invite(other.id())).await;
    assert_eq!(
        (reinvited.status, reinvited.version, reinvited.answered_at),
        (LinkStatus::Invited, 3, None)
    );
    // Each contractor sees its own link only; the association sees both.
    assert_eq!(s.vendor_links(h).await.unwrap().len(), 2);
    assert_eq!(s.vendor_links(a).await.unwrap(), vec![accepted]);
    assert_eq!(s.vendor_links(o).await.unwrap(), vec![reinvited]);

    // An id that names no organization, or the association itself, is refused as such.
    let nobody = OrganizationId::from_uuid(uuid::Uuid::now_v7());
    assert_eq!(refused(s, h, invite(nobody)).await.code, "NOT_FOUND");
    assert_eq!(
        refused(s, h, invite(hoa.id())).await.field_errors[0].field,
        "contractorOrganizationId"
    );
    // A contractor does not invite.
    assert_eq!(
        refused(s, a, invite(other.id())).await.code,
        "NOT_AN_ASSOCIATION"
    );
}
