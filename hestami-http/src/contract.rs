//! The frozen contract: what a released procedure accepts, answers and refuses with, and the
//! check that a change of the code keeps it.
//!
//! `contract/v1.json` is a snapshot, taken when the contract was tagged, of every procedure's
//! input and output schema (with the schemas they reach) and error codes. [`breaking_changes`]
//! compares it with the contract the code has now, by variance: an input may accept more and an
//! output may say more, never the other way round. A client written against the snapshot keeps
//! working as long as the list is empty; a change that empties it only by editing the snapshot
//! is a new version (`v2` procedures) instead.
//!
//! Breaking, for a procedure: it is gone, or an error code it had is gone (a renamed code is a
//! removed one). For an input: a field removed (an old client sending it is refused), a field
//! newly required, a type, an enum or a `const` narrowed, a bound tightened (`minLength`,
//! `maximum`, `maxItems`, …), a `pattern` or `format` added or changed, a new rule between fields
//! (`allOf`, `if`, `oneOf`). For an output: a field removed or no longer always present, a type
//! or an enum widened (an old client meets a value it does not know). Additions the other way
//! are allowed: a new procedure, a new optional input field, a new output field, a new error
//! code, a value more accepted.

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// The contract the code has now, in the snapshot's form.
pub fn snapshot() -> Value {
    let document: Value =
        serde_json::from_str(&crate::openapi::document_json()).unwrap_or_default();
    let mut procedures = Map::new();
    for p in crate::procedures() {
        let path = p.path();
        let operation = &document["paths"][format!("/api/v1/rpc/{path}")]["post"];
        procedures.insert(
            path,
            json!({
                "input": operation["requestBody"]["content"]["application/json"]["schema"],
                "output": operation["responses"]["200"]["content"]["application/json"]["schema"],
                "errors": crate::openapi::error_codes(&p),
            }),
        );
    }
    json!({
        "procedures": procedures,
        "schemas": document["components"]["schemas"],
    })
}

/// Which way a schema is read: a client sends inputs and reads outputs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Way {
    Input,
    Output,
}

/// Every change from `frozen` to `current` that would break a client written against `frozen`,
/// each as `procedure: where: what`.
pub fn breaking_changes(frozen: &Value, current: &Value) -> Vec<String> {
    let mut check = Check {
        frozen: frozen["schemas"].as_object().cloned().unwrap_or_default(),
        current: current["schemas"].as_object().cloned().unwrap_or_default(),
        seen: BTreeSet::new(),
        found: Vec::new(),
    };
    let empty = Map::new();
    let procedures = current["procedures"].as_object().unwrap_or(&empty);
    for (path, old) in frozen["procedures"].as_object().unwrap_or(&empty) {
        let Some(new) = procedures.get(path) else {
            check
                .found
                .push(format!("{path}: the procedure is removed"));
            continue;
        };
        for code in names(&old["errors"]).difference(&names(&new["errors"])) {
            check
                .found
                .push(format!("{path}: the error code {code} is removed"));
        }
        check.seen.clear();
        check.schema(path, "input", &old["input"], &new["input"], Way::Input);
        check.seen.clear();
        check.schema(path, "output", &old["output"], &new["output"], Way::Output);
    }
    check.found
}

struct Check {
    frozen: Map<String, Value>,
    current: Map<String, Value>,
    /// Pairs of named schemas already compared in this procedure (schemas can be recursive).
    seen: BTreeSet<(String, String, Way)>,
    found: Vec<String>,
}

fn ref_name(schema: &Value) -> Option<&str> {
    schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
}

fn types(schema: &Value) -> Option<BTreeSet<String>> {
    match &schema["type"] {
        Value::String(t) => Some(BTreeSet::from([t.clone()])),
        Value::Array(_) => Some(names(&schema["type"])),
        _ => None,
    }
}

/// The strings of an array (`required`, `errors`, a list of types).
fn names(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The values of an array, each as JSON text (`enum`, `allOf`).
fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .map(|a| a.iter().map(Value::to_string).collect())
        .unwrap_or_default()
}

impl Check {
    fn schema(&mut self, procedure: &str, at: &str, old: &Value, new: &Value, way: Way) {
        let (old_name, new_name) = (ref_name(old), ref_name(new));
        if old_name.is_some() || new_name.is_some() {
            let key = (
                old_name.unwrap_or_default().to_owned(),
                new_name.unwrap_or_default().to_owned(),
                way,
            );
            if !self.seen.insert(key) {
                return;
            }
            let old = match old_name {
                Some(n) => self.frozen.get(n).cloned().unwrap_or_default(),
                None => old.clone(),
            };
            let new = match new_name {
                Some(n) => self.current.get(n).cloned().unwrap_or_default(),
                None => new.clone(),
            };
            return self.resolved(procedure, at, &old, &new, way);
        }
        self.resolved(procedure, at, old, new, way);
    }

    fn found(&mut self, procedure: &str, at: &str, what: String) {
        self.found.push(format!("{procedure}: {at}: {what}"));
    }

    fn resolved(&mut self, procedure: &str, at: &str, old: &Value, new: &Value, way: Way) {
        // Types and enums: an input must keep accepting, an output must not say anything new.
        match way {
            Way::Input => match (types(old), types(new)) {
                (None, Some(_)) => self.found(procedure, at, "its type is new".into()),
                (Some(o), Some(n)) => {
                    for t in o.difference(&n) {
                        self.found(procedure, at, format!("no longer accepts {t}"));
                    }
                }
                _ => {}
            },
            Way::Output => match (types(old), types(new)) {
                (Some(_), None) => self.found(procedure, at, "may now be of any type".into()),
                (Some(o), Some(n)) => {
                    for t in n.difference(&o) {
                        self.found(procedure, at, format!("may now be {t}"));
                    }
                }
                _ => {}
            },
        }
        let (o, n) = (strings(&old["enum"]), strings(&new["enum"]));
        match way {
            Way::Input if !n.is_empty() => {
                if o.is_empty() {
                    self.found(procedure, at, "accepts only listed values now".into());
                }
                for v in o.difference(&n) {
                    self.found(procedure, at, format!("no longer accepts the value {v}"));
                }
            }
            Way::Output if !o.is_empty() => {
                if n.is_empty() {
                    self.found(procedure, at, "may now be any value".into());
                }
                for v in n.difference(&o) {
                    self.found(procedure, at, format!("may now be the value {v}"));
                }
            }
            _ => {}
        }
        if old.get("const") != new.get("const") && new.get("const").is_some() {
            self.found(procedure, at, "its constant changed".into());
        }
        // Fields.
        let empty = Map::new();
        let old_props = old["properties"].as_object().unwrap_or(&empty);
        let new_props = new["properties"].as_object().unwrap_or(&empty);
        let (old_required, new_required) = (names(&old["required"]), names(&new["required"]));
        for (name, old_prop) in old_props {
            let here = format!("{at}.{name}");
            match new_props.get(name) {
                None => self.found(procedure, &here, "the field is removed".into()),
                Some(new_prop) => self.schema(procedure, &here, old_prop, new_prop, way),
            }
        }
        match way {
            Way::Input => {
                for name in new_required.difference(&old_required) {
                    self.found(procedure, &format!("{at}.{name}"), "is now required".into());
                }
            }
            Way::Output => {
                for name in old_required.difference(&new_required) {
                    if new_props.contains_key(name) {
                        self.found(
                            procedure,
                            &format!("{at}.{name}"),
                            "is no longer always present".into(),
                        );
                    }
                }
            }
        }
        // Arrays and maps.
        if let (Some(o), Some(n)) = (old.get("items"), new.get("items")) {
            self.schema(procedure, &format!("{at}[]"), o, n, way);
        }
        if let (Some(o @ Value::Object(_)), Some(n @ Value::Object(_))) = (
            old.get("additionalProperties"),
            new.get("additionalProperties"),
        ) {
            self.schema(procedure, &format!("{at}{{}}"), o, n, way);
        }
        // Alternatives, compared in order.
        for key in ["oneOf", "anyOf"] {
            match (old[key].as_array(), new[key].as_array()) {
                (Some(o), Some(n)) if o.len() == n.len() => {
                    for (i, (o, n)) in o.iter().zip(n).enumerate() {
                        self.schema(procedure, &format!("{at}<{i}>"), o, n, way);
                    }
                }
                (None, None) => {}
                _ => self.found(procedure, at, format!("its {key} alternatives changed")),
            }
        }
        if way == Way::Input {
            self.bounds(procedure, at, old, new);
        }
    }

    /// An input's bounds: none may tighten, and no new rule may appear.
    fn bounds(&mut self, procedure: &str, at: &str, old: &Value, new: &Value) {
        let number = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
        for key in [
            "minLength",
            "minItems",
            "minimum",
            "exclusiveMinimum",
            "minProperties",
        ] {
            if let Some(n) = number(new, key)
                && number(old, key).is_none_or(|o| n > o)
            {
                self.found(procedure, at, format!("{key} tightened to {n}"));
            }
        }
        for key in [
            "maxLength",
            "maxItems",
            "maximum",
            "exclusiveMaximum",
            "maxProperties",
        ] {
            if let Some(n) = number(new, key)
                && number(old, key).is_none_or(|o| n < o)
            {
                self.found(procedure, at, format!("{key} tightened to {n}"));
            }
        }
        for key in [
            "pattern",
            "format",
            "uniqueItems",
            "if",
            "then",
            "else",
            "not",
        ] {
            if let Some(n) = new.get(key)
                && old.get(key) != Some(n)
            {
                self.found(procedure, at, format!("its {key} is new or changed"));
            }
        }
        if new.get("additionalProperties") == Some(&Value::Bool(false))
            && old.get("additionalProperties") != Some(&Value::Bool(false))
        {
            self.found(procedure, at, "refuses unknown fields now".into());
        }
        // A rule between fields: every current one must have been there, but for demands that
        // a new field be absent.
        let before = strings(&old["allOf"]);
        if let Some(rules) = new["allOf"].as_array()
            && rules.iter().any(|r| {
                ref_name(r).is_none()
                    && !before.contains(&without_absent_new_fields(r, old).to_string())
            })
        {
            self.found(procedure, at, "has a new rule between its fields".into());
        }
    }
}

/// `rule` without its demands that a field the `old` schema did not know be absent. When the
/// old schema refused unknown fields, an old client never sends such a field, so demanding its
/// absence (a new optional field that some cases of the rule do not take) narrows nothing.
fn without_absent_new_fields(rule: &Value, old: &Value) -> Value {
    let mut rule = rule.clone();
    if old.get("additionalProperties") != Some(&Value::Bool(false)) {
        return rule;
    }
    let empty = Map::new();
    let known = old["properties"].as_object().unwrap_or(&empty);
    let absent = json!({ "type": "null" });
    for branch in ["then", "else"] {
        if let Some(demands) = rule
            .get_mut(branch)
            .and_then(|b| b.get_mut("properties"))
            .and_then(Value::as_object_mut)
        {
            demands.retain(|name, demand| known.contains_key(name) || *demand != absent);
        }
    }
    rule
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn frozen() -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contract/v1.json");
        let text = std::fs::read_to_string(path).expect("hestami-http/contract/v1.json exists");
        serde_json::from_str(&text).unwrap()
    }

    /// The code keeps the frozen contract. Additions pass without touching the snapshot;
    /// `UPDATE_CONTRACT=1 cargo test -p hestami-http contract` freezes them too, and writes
    /// nothing while a change would break the snapshot.
    #[test]
    fn the_code_keeps_the_frozen_contract() {
        let current = snapshot();
        let broken = breaking_changes(&frozen(), &current);
        assert!(
            broken.is_empty(),
            "breaking changes to the frozen v1 contract (make them a new version instead):\n{}",
            broken.join("\n")
        );
        if std::env::var_os("UPDATE_CONTRACT").is_some() {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contract/v1.json");
            let mut text = serde_json::to_string_pretty(&current).unwrap();
            text.push('\n');
            std::fs::write(path, text).unwrap();
        }
    }

    /// The current contract, changed by `edit`, against itself.
    fn after(edit: impl FnOnce(&mut Value)) -> Vec<String> {
        let before = snapshot();
        let mut changed = before.clone();
        edit(&mut changed);
        breaking_changes(&before, &changed)
    }

    fn input<'a>(v: &'a mut Value, schema: &str) -> &'a mut Value {
        &mut v["schemas"][schema]
    }

    #[test]
    fn breaking_changes_are_found() {
        let removed = after(|v| {
            input(v, "CreateJobInput")["properties"]
                .as_object_mut()
                .unwrap()
                .remove("description");
        });
        assert!(
            removed.contains(&"job/v1/create: input.description: the field is removed".to_owned()),
            "{removed:?}"
        );
        let required = after(|v| {
            input(v, "CreateJobInput")["required"]
                .as_array_mut()
                .unwrap()
                .push("description".into());
        });
        assert!(
            required.contains(&"job/v1/create: input.description: is now required".to_owned()),
            "{required:?}"
        );
        let narrowed = after(|v| {
            input(v, "CreateJobInput")["properties"]["summary"]["maxLength"] = json!(20);
        });
        assert!(
            narrowed
                .contains(&"job/v1/create: input.summary: maxLength tightened to 20".to_owned()),
            "{narrowed:?}"
        );
        let retyped = after(|v| {
            input(v, "CreateJobInput")["properties"]["summary"]["type"] = json!("integer");
        });
        assert!(
            retyped.contains(&"job/v1/create: input.summary: no longer accepts string".to_owned()),
            "{retyped:?}"
        );
        // A rule that refuses a field an old client may send (a service's bundled materials).
        let refused = after(|v| {
            for rule in input(v, "ItemDetailsInput")["allOf"]
                .as_array_mut()
                .unwrap()
            {
                rule["then"]["properties"]["bundledMaterials"] = json!({ "type": "null" });
            }
        });
        assert!(
            refused.contains(
                &"pricebook/v1/createItem: input.details: has a new rule between its fields"
                    .to_owned()
            ),
            "{refused:?}"
        );
        // An output enum that gains a value: an old client meets a kind it does not know.
        let widened = after(|v| {
            v["schemas"]["AttachmentKindDto"]["enum"]
                .as_array_mut()
                .unwrap()
                .push("teleported".into());
        });
        assert!(
            widened
                .iter()
                .any(|b| b.starts_with("attachment/v1/attach: output.kind: may now be the value")),
            "{widened:?}"
        );
        let gone = after(|v| {
            v["procedures"]
                .as_object_mut()
                .unwrap()
                .remove("job/v1/get");
        });
        assert_eq!(
            gone,
            vec!["job/v1/get: the procedure is removed".to_owned()]
        );
        let code = after(|v| {
            let errors = v["procedures"]["job/v1/get"]["errors"]
                .as_array_mut()
                .unwrap();
            errors.retain(|c| c != "NOT_FOUND");
        });
        assert_eq!(
            code,
            vec!["job/v1/get: the error code NOT_FOUND is removed".to_owned()]
        );
        let output_field = after(|v| {
            v["schemas"]["JobDto"]["properties"]
                .as_object_mut()
                .unwrap()
                .remove("summary");
        });
        assert!(
            output_field.contains(&"job/v1/get: output.summary: the field is removed".to_owned()),
            "{output_field:?}"
        );
    }

    #[test]
    fn additions_are_not_breaking() {
        let added = after(|v| {
            let job = input(v, "CreateJobInput");
            job["properties"]["colour"] = json!({ "type": ["string", "null"] });
            v["schemas"]["JobDto"]["properties"]["colour"] = json!({ "type": "string" });
            v["procedures"]["job/v9/new"] = v["procedures"]["job/v1/get"].clone();
            v["procedures"]["job/v1/get"]["errors"]
                .as_array_mut()
                .unwrap()
                .push("NEW_CODE".into());
            v["schemas"]["CreateJobInput"]["properties"]["summary"]["maxLength"] = json!(100_000);
            // A new optional field of one kind of item, which the other kinds refuse.
            let details = input(v, "ItemDetailsInput");
            details["properties"]["tripFee"] = json!({ "type": ["boolean", "null"] });
            for rule in details["allOf"].as_array_mut().unwrap() {
                if rule["if"]["properties"]["kind"]["const"] != "service" {
                    rule["then"]["properties"]["tripFee"] = json!({ "type": "null" });
                }
            }
        });
        assert_eq!(added, Vec::<String>::new());
    }
}
