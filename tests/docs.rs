//! The README's procedure table lists every procedure of every version with its workflow and
//! roles, as the procedure table and the permission tables say.
#![allow(clippy::unwrap_used)]

use hestami::core::org::{PERMISSIONS, PERMISSIONS_V2, Role};

/// How the README names a set of roles.
fn roles_text(roles: &[Role]) -> String {
    use Role::*;
    let all = [Owner, Admin, Dispatcher, Office, Technician, Viewer];
    if all.iter().all(|r| roles.contains(r)) {
        return "everyone".into();
    }
    if all[..5].iter().all(|r| roles.contains(r)) && !roles.contains(&Viewer) {
        return "everyone but viewer".into();
    }
    all.iter()
        .filter(|r| roles.contains(r))
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn the_readme_lists_every_procedure_with_its_workflow_and_roles() {
    let readme = include_str!("../README.md");
    for p in hestami::http::procedures() {
        let path = p.path();
        // Sign-in needs no token; whoami and logout need one but no organization.
        let special = if p.public {
            Some("sign-in (no token) | anyone".to_owned())
        } else if !p.org_scoped {
            Some("no organization | any valid token".to_owned())
        } else if path == "sync/v1/push" {
            Some("each item's own workflow | everyone".to_owned())
        } else {
            None
        };
        if let Some(text) = special {
            let row = format!("| `{path}` | {text} |");
            assert!(
                readme.contains(&row),
                "the README's procedure table lacks {row}"
            );
            continue;
        }
        let roles = PERMISSIONS
            .iter()
            .chain(PERMISSIONS_V2)
            .find(|(name, _)| *name == path)
            .map(|(_, roles)| roles_text(roles))
            .unwrap_or_else(|| panic!("{path} has no permission row"));
        let workflow = match p.workflow {
            Some(w) => format!("`{w}`"),
            None => "read".into(),
        };
        let row = format!("| `{path}` | {workflow} | {roles} |");
        assert!(
            readme.contains(&row),
            "the README's procedure table lacks {row}"
        );
    }
}

/// Every operation in the schemathesis baseline (`.ci/schemathesis-baseline.json`: requests valid
/// by the document that the server refuses) is in ARCHITECTURE.md's table of rules the document
/// cannot state, with its reason, and the table lists nothing the baseline does not.
#[test]
fn architecture_explains_every_schemathesis_baseline_entry() {
    let baseline: serde_json::Value =
        serde_json::from_str(include_str!("../.ci/schemathesis-baseline.json")).unwrap();
    let mut listed: Vec<String> = baseline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["operation"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    listed.dedup();
    let architecture = include_str!("../ARCHITECTURE.md");
    let table = architecture
        .split("<!-- baseline table -->")
        .nth(1)
        .expect("ARCHITECTURE.md marks the baseline table with <!-- baseline table -->")
        .trim_start();
    let mut explained: Vec<String> = table
        .lines()
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let cell = l.split('|').nth(1).unwrap().trim().trim_matches('`');
            if cell.starts_with("PUT ") {
                cell.to_owned()
            } else {
                format!("POST /api/v1/rpc/{cell}")
            }
        })
        .collect();
    explained.sort();
    assert_eq!(
        explained, listed,
        "ARCHITECTURE.md's baseline table and the baseline differ"
    );
    for row in table.lines().take_while(|l| l.starts_with('|')).skip(2) {
        let reason = row.split('|').nth(2).unwrap().trim();
        assert!(!reason.is_empty(), "no reason given in {row}");
    }
}

/// The README's table of import columns per item kind names exactly the columns each kind
/// takes (besides kind, name, description and category), required or optional.
#[test]
fn the_readme_lists_the_import_columns_of_each_kind() {
    use hestami::core::pricebook::ItemKind;
    use hestami::core::pricebook::import::columns_of;
    let readme = include_str!("../README.md");
    let general = ["kind", "name", "description", "category"];
    for kind in ItemKind::ALL {
        let text = serde_json::to_value(kind).unwrap();
        let prefix = format!("| `{}` |", text.as_str().unwrap());
        let row = readme
            .lines()
            .map(str::trim_start)
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("the README has no import row for {prefix}"));
        let cells: Vec<&str> = row.split('|').collect();
        // | kind | required | optional | not allowed |
        let taken: std::collections::BTreeSet<&str> = cells[2..4]
            .iter()
            .flat_map(|c| c.split('`').skip(1).step_by(2))
            .filter(|c| !general.contains(c) && !c.contains(':') && !c.contains(';'))
            .collect();
        let expected: std::collections::BTreeSet<&str> = columns_of(kind).iter().copied().collect();
        assert_eq!(taken, expected, "{prefix}");
    }
}
