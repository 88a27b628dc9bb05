//! `rollout history` and `rollout undo` for Deployments, DaemonSets and StatefulSets. A
//! Deployment's revisions are the ReplicaSets it controls, numbered by their
//! `deployment.kubernetes.io/revision` annotation; a DaemonSet's or StatefulSet's are the
//! ControllerRevisions it controls, whose data is the strategic merge patch that restores
//! their template.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use kube::api::ListParams;
use serde_json::{Map, Value, json};

use super::describe::W;
use super::describe_pod::pod_template;
use super::patch::send_patch;
use super::resource::Res;
use super::{Ctx, tabwriter};

/// The revision annotation on Deployments and their ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
const HASH_LABEL: &str = "pod-template-hash";

/// Deployment annotations `undo` keeps from the Deployment rather than the ReplicaSet.
const ANNOTATIONS_TO_SKIP: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// A label selector object (`matchLabels`, `matchExpressions`) as a selector string.
pub fn selector_string(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "DoesNotExist" => format!("!{key}"),
            _ => key.to_string(),
        });
    }
    parts.join(",")
}

/// The ReplicaSets among `rss` whose controller is the Deployment `d`, by revision.
pub fn revisions(d: &Value, rss: &[Value]) -> BTreeMap<i64, Value> {
    rss.iter()
        .filter(|rs| controlled_by(rs, d))
        .filter_map(|rs| {
            let rev = rs["metadata"]["annotations"][REVISION]
                .as_str()?
                .parse::<i64>()
                .ok()?;
            Some((rev, rs.clone()))
        })
        .collect()
}

/// kubectl's `REVISION  CHANGE-CAUSE` table.
pub fn history_table(revs: &BTreeMap<i64, Value>) -> String {
    let mut text = String::from("REVISION\tCHANGE-CAUSE\n");
    for (rev, rs) in revs {
        let cause = rs["metadata"]["annotations"][CHANGE_CAUSE]
            .as_str()
            .filter(|c| !c.is_empty())
            .unwrap_or("<none>");
        text.push_str(&format!("{rev}\t{cause}\n"));
    }
    tabwriter::tabwrite(&text, 2)
}

/// One revision's pod template as kubectl prints it (the change cause shown as a template
/// annotation; tabs left as they are).
pub fn revision_detail(rs: &Value) -> String {
    let mut template = rs["spec"]["template"].clone();
    if let Some(cause) = rs["metadata"]["annotations"][CHANGE_CAUSE].as_str() {
        template["metadata"]["annotations"][CHANGE_CAUSE] = json!(cause);
    }
    let mut w = W::default();
    pod_template(&mut w, &template);
    w.raw()
}

/// Picks the ReplicaSet to roll back to: `to` if given, else the second-newest revision.
pub fn pick_revision<'a>(
    name: &str,
    revs: &'a BTreeMap<i64, Value>,
    to: i64,
) -> Result<(i64, &'a Value)> {
    if to > 0 {
        return match revs.get(&to) {
            Some(rs) => Ok((to, rs)),
            None => bail!("unable to find specified revision {to} in history"),
        };
    }
    match revs.iter().rev().nth(1) {
        Some((rev, rs)) => Ok((*rev, rs)),
        None => bail!("no rollout history found for deployment {name:?}"),
    }
}

fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t["metadata"]["labels"].as_object_mut() {
        labels.remove(HASH_LABEL);
    }
    t
}

/// The JSON patch `undo` sends, or `None` when the template already matches: the
/// ReplicaSet's template without its hash label, and the Deployment's annotations rebuilt
/// from the kept ones plus the ReplicaSet's.
pub fn undo_patch(d: &Value, rs: &Value) -> Option<Value> {
    let template = without_hash(&rs["spec"]["template"]);
    if template == without_hash(&d["spec"]["template"]) {
        return None;
    }
    let mut annotations = Map::new();
    let current = &d["metadata"]["annotations"];
    for k in ANNOTATIONS_TO_SKIP {
        if let Some(v) = current.get(*k) {
            annotations.insert(k.to_string(), v.clone());
        }
    }
    for (k, v) in rs["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    Some(json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]))
}

fn is_kind(res: &Res, kind: &str) -> bool {
    res.group == "apps" && res.kind == kind
}

/// Whether the kind keeps its history in ControllerRevisions (DaemonSets, StatefulSets).
fn has_controller_revisions(res: &Res) -> bool {
    is_kind(res, "DaemonSet") || is_kind(res, "StatefulSet")
}

fn require_history(res: &Res, what: &str) -> Result<()> {
    if !is_kind(res, "Deployment") && !has_controller_revisions(res) {
        bail!(
            "no {what} has been implemented for \"{}.{}\"",
            res.kind,
            res.group
        );
    }
    Ok(())
}

/// Whether `obj` names `owner` as its controller.
fn controlled_by(obj: &Value, owner: &Value) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|o| o["controller"] == true && o["uid"] == owner["metadata"]["uid"])
}

/// A DaemonSet's or StatefulSet's ControllerRevisions by revision, each shown as `{metadata, spec.template}`
/// (the template its data restores) so history prints them as it prints ReplicaSets.
pub fn controller_revisions(ds: &Value, history: &[Value]) -> BTreeMap<i64, Value> {
    history
        .iter()
        .filter(|h| controlled_by(h, ds))
        .filter_map(|h| {
            let mut template = h["data"]["spec"]["template"].clone();
            if let Some(t) = template.as_object_mut() {
                t.remove("$patch");
            }
            let view = json!({"metadata": h["metadata"], "spec": {"template": template}, "data": h["data"]});
            Some((h["revision"].as_i64()?, view))
        })
        .collect()
}

async fn list_values(ctx: &Ctx, plural: &str, selector: &Value) -> Result<Vec<Value>> {
    let res = super::resource::resolve_local(plural).expect("built-in resource");
    let lp = ListParams::default().labels(&selector_string(selector));
    let list = res.api(&ctx.client, Some(&ctx.namespace)).list(&lp).await?;
    Ok(list
        .items
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?)
}

async fn load(ctx: &Ctx, res: &Res, name: &str) -> Result<(Value, BTreeMap<i64, Value>)> {
    let obj = serde_json::to_value(res.api(&ctx.client, Some(&ctx.namespace)).get(name).await?)?;
    let selector = &obj["spec"]["selector"];
    let revs = if has_controller_revisions(res) {
        controller_revisions(
            &obj,
            &list_values(ctx, "controllerrevisions", selector).await?,
        )
    } else {
        revisions(&obj, &list_values(ctx, "replicasets", selector).await?)
    };
    Ok((obj, revs))
}

/// Runs `rollout history`.
pub async fn history(ctx: &Ctx, res: &Res, name: &str, revision: i64) -> Result<()> {
    require_history(res, "history viewer")?;
    let (_, revs) = load(ctx, res, name).await?;
    let target = format!("{}/{name}", res.display());
    if revision > 0 {
        let Some(rs) = revs.get(&revision) else {
            bail!("unable to find the specified revision");
        };
        println!("{target} with revision #{revision}");
        println!("{}", revision_detail(rs));
    } else {
        println!("{target} ");
        println!("{}", history_table(&revs));
    }
    Ok(())
}

/// Runs `rollout undo`.
pub async fn undo(ctx: &Ctx, res: &Res, name: &str, to_revision: i64) -> Result<()> {
    require_history(res, "rollbacker")?;
    if to_revision < 0 {
        bail!("unable to find specified revision {to_revision} in history");
    }
    let (d, revs) = load(ctx, res, name).await?;
    let (rev, rs) = pick_revision(name, &revs, to_revision)?;
    if d["spec"]["paused"] == true {
        bail!(
            "you cannot rollback a paused deployment; resume it first with 'skiff rollout resume' and try again"
        );
    }
    let target = format!("{}/{name}", res.display());
    if has_controller_revisions(res) {
        if rs["spec"]["template"] == d["spec"]["template"] {
            println!("{target} skipped rollback (current template already matches revision {rev})");
            return Ok(());
        }
        send_patch(
            &ctx.client,
            res,
            Some(&ctx.namespace),
            name,
            None,
            "application/strategic-merge-patch+json",
            &rs["data"],
        )
        .await
        .map_err(|e| restore_failed(rev, &e))?;
        println!("{target} rolled back");
        return Ok(());
    }
    let Some(patch) = undo_patch(&d, rs) else {
        println!("{target} skipped rollback (current template already matches revision {rev})");
        return Ok(());
    };
    send_patch(
        &ctx.client,
        res,
        Some(&ctx.namespace),
        name,
        None,
        "application/json-patch+json",
        &patch,
    )
    .await
    .map_err(|e| restore_failed(rev, &e))?;
    println!("{target} rolled back");
    Ok(())
}

fn restore_failed(rev: i64, e: &anyhow::Error) -> anyhow::Error {
    let cause = super::errors::status_of(e).map_or_else(|| e.to_string(), |s| s.message.clone());
    anyhow::anyhow!("failed restoring revision {rev}: {cause}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({
            "metadata": {"name": "web", "uid": "d-1", "annotations": {
                REVISION: "3", "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "team": "a"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox:3"}]}}}
        })
    }

    fn rs(rev: &str, image: &str, owner: &str, cause: Option<&str>) -> Value {
        let mut annotations = json!({REVISION: rev});
        if let Some(c) = cause {
            annotations[CHANGE_CAUSE] = json!(c);
        }
        json!({
            "metadata": {"name": format!("web-{rev}"), "annotations": annotations,
                "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": owner,
                    "controller": true}]},
            "spec": {"template": {"metadata": {"labels": {"app": "web",
                HASH_LABEL: format!("h{rev}")}},
                "spec": {"containers": [{"name": "c", "image": image}]}}}
        })
    }

    fn sample() -> BTreeMap<i64, Value> {
        let rss = vec![
            rs("3", "busybox:3", "d-1", None),
            rs("1", "busybox:1", "d-1", None),
            rs("2", "busybox:2", "d-1", Some("set image to 2")),
            rs("9", "busybox:9", "someone-else", None),
        ];
        revisions(&deployment(), &rss)
    }

    #[test]
    fn history_lists_owned_revisions_in_order() {
        let revs = sample();
        assert_eq!(revs.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(
            history_table(&revs),
            "REVISION  CHANGE-CAUSE\n1         <none>\n2         set image to 2\n3         <none>\n"
        );
    }

    #[test]
    fn undo_defaults_to_the_previous_revision() {
        let revs = sample();
        assert_eq!(pick_revision("web", &revs, 0).unwrap().0, 2);
        assert_eq!(pick_revision("web", &revs, 1).unwrap().0, 1);
        assert_eq!(
            pick_revision("web", &revs, 7).unwrap_err().to_string(),
            "unable to find specified revision 7 in history"
        );
        let one: BTreeMap<i64, Value> = revs.into_iter().take(1).collect();
        assert_eq!(
            pick_revision("web", &one, 0).unwrap_err().to_string(),
            "no rollout history found for deployment \"web\""
        );
    }

    #[test]
    fn undo_patch_replaces_template_and_annotations() {
        let revs = sample();
        let patch = undo_patch(&deployment(), &revs[&2]).unwrap();
        assert_eq!(
            patch,
            json!([
                {"op": "replace", "path": "/spec/template", "value": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}},
                {"op": "replace", "path": "/metadata/annotations", "value": {
                    REVISION: "3",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    CHANGE_CAUSE: "set image to 2"}}
            ])
        );
        // The current revision's template matches the Deployment's: nothing to do.
        assert!(undo_patch(&deployment(), &revs[&3]).is_none());
    }

    #[test]
    fn selectors_become_strings() {
        let sel = json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "old", "operator": "DoesNotExist"}]});
        assert_eq!(selector_string(&sel), "app=web,tier in (a,b),!old");
    }

    #[test]
    fn statefulset_history_comes_from_its_controller_revisions() {
        let sts = json!({"metadata": {"name": "web", "uid": "sts-uid"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "b:2"}]}}}});
        let rev = |name: &str, n: i64, owner: &str, image: &str| {
            json!({"metadata": {"name": name, "ownerReferences": [{"uid": owner, "controller": true}]},
                "revision": n,
                "data": {"spec": {"template": {"$patch": "replace",
                    "spec": {"containers": [{"name": "c", "image": image}]}}}}})
        };
        let history = [
            rev("web-b", 2, "sts-uid", "b:2"),
            rev("web-a", 1, "sts-uid", "b:1"),
            rev("other-x", 7, "other-uid", "x"),
        ];
        let revs = controller_revisions(&sts, &history);
        assert_eq!(revs.keys().copied().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            revs[&1]["spec"]["template"],
            json!({"spec": {"containers": [{"name": "c", "image": "b:1"}]}})
        );
        assert_eq!(revs[&2]["spec"]["template"], sts["spec"]["template"]);
        // Undo goes to the revision before the newest, whose data is the patch to send.
        let (n, picked) = pick_revision("web", &revs, 0).unwrap();
        assert_eq!(n, 1);
        assert_eq!(picked["data"]["spec"]["template"]["$patch"], "replace");
    }
}
