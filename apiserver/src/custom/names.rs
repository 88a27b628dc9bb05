//! The status the apiextensions naming and establishing controllers give a CRD, as a pure
//! function of the CRD and the other CRDs: the accepted names (unless another CRD of the group
//! holds one of them), and the NamesAccepted and Established conditions.

use super::str_at;
use serde_json::{Value, json};

fn names_of(names: &Value) -> Vec<String> {
    let mut out: Vec<String> = ["/plural", "/singular"]
        .iter()
        .map(|p| str_at(names, p).to_string())
        .filter(|s| !s.is_empty())
        .collect();
    out.extend(
        names
            .get("shortNames")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string),
    );
    out
}

/// Why the CRD's requested names cannot be accepted, as (reason, message).
fn conflict(crd: &Value, others: &[&Value]) -> Option<(&'static str, String)> {
    let group = str_at(crd, "/spec/group");
    let wanted = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let name = str_at(crd, "/metadata/name");
    for other in others {
        if str_at(other, "/metadata/name") == name || str_at(other, "/spec/group") != group {
            continue;
        }
        let taken = other
            .pointer("/status/acceptedNames")
            .cloned()
            .unwrap_or(json!({}));
        let taken_names = names_of(&taken);
        let plural = str_at(&wanted, "/plural");
        if taken_names.iter().any(|n| n == plural) {
            return Some(("PluralConflict", format!("{plural:?} is already in use")));
        }
        let singular = str_at(&wanted, "/singular");
        if taken_names.iter().any(|n| n == singular) {
            return Some((
                "SingularConflict",
                format!("{singular:?} is already in use"),
            ));
        }
        for short in names_of(&wanted).iter().skip(2) {
            if taken_names.contains(short) {
                return Some(("ShortNamesConflict", format!("{short:?} is already in use")));
            }
        }
        for (field, reason) in [("/kind", "KindConflict"), ("/listKind", "ListKindConflict")] {
            let k = str_at(&wanted, field);
            if !k.is_empty() && (k == str_at(&taken, "/kind") || k == str_at(&taken, "/listKind")) {
                return Some((reason, format!("{k:?} is already in use")));
            }
        }
    }
    None
}

fn condition(kind: &str, status: bool, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": kind, "status": if status { "True" } else { "False" },
        "lastTransitionTime": now, "reason": reason, "message": message})
}

/// Sets `cond` in `conditions`, keeping its transition time when its status is unchanged.
fn set_condition(conditions: &mut Vec<Value>, cond: Value) {
    match conditions.iter_mut().find(|c| c["type"] == cond["type"]) {
        Some(c) if c["status"] == cond["status"] => {
            let time = c["lastTransitionTime"].clone();
            *c = cond;
            c["lastTransitionTime"] = time;
        }
        Some(c) => *c = cond,
        None => conditions.push(cond),
    }
}

/// The CRD's status as the controllers would write it, or `None` when it already is so.
/// `now` is the RFC 3339 time new transitions carry.
pub fn plan_status(crd: &Value, others: &[&Value], now: &str) -> Option<Value> {
    if crd.pointer("/metadata/deletionTimestamp").is_some() {
        return None;
    }
    let current = crd.get("status").cloned().unwrap_or(json!({}));
    let mut status = current.clone();
    let mut conditions: Vec<Value> = current
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match conflict(crd, others) {
        Some((reason, message)) => {
            set_condition(
                &mut conditions,
                condition("NamesAccepted", false, reason, &message, now),
            );
        }
        None => {
            status["acceptedNames"] = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
            set_condition(
                &mut conditions,
                condition(
                    "NamesAccepted",
                    true,
                    "NoConflicts",
                    "no conflicts found",
                    now,
                ),
            );
            set_condition(
                &mut conditions,
                condition(
                    "Established",
                    true,
                    "InitialNamesAccepted",
                    "the initial names have been accepted",
                    now,
                ),
            );
        }
    }
    status["conditions"] = Value::Array(conditions);
    (status != current).then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str, plural: &str, kind: &str) -> Value {
        json!({"metadata": {"name": format!("{plural}.example.com")},
            "spec": {"group": "example.com", "names": {"plural": plural, "singular": name,
                "kind": kind, "listKind": format!("{kind}List"), "shortNames": ["ct"]}}})
    }

    #[test]
    fn a_fresh_crd_is_accepted_and_established_once() {
        let c = crd("crontab", "crontabs", "CronTab");
        let status = plan_status(&c, &[], "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(status["acceptedNames"]["plural"], "crontabs");
        let types: Vec<&str> = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["NamesAccepted", "Established"]);
        let mut done = c.clone();
        done["status"] = status;
        assert_eq!(plan_status(&done, &[], "2026-01-01T00:00:09Z"), None);
    }

    #[test]
    fn names_taken_by_another_crd_of_the_group_are_refused() {
        let mut first = crd("crontab", "crontabs", "CronTab");
        first["status"] = plan_status(&first, &[], "t").unwrap();
        let mut second = crd("crontab2", "crontabs2", "CronTab2");
        second["metadata"]["name"] = json!("crontabs2.example.com");
        let status = plan_status(&second, &[&first], "t").unwrap();
        let cond = &status["conditions"][0];
        assert_eq!(cond["status"], "False");
        assert_eq!(cond["reason"], "ShortNamesConflict");
        assert_eq!(cond["message"], "\"ct\" is already in use");
        assert!(status.get("acceptedNames").is_none());
    }
}
