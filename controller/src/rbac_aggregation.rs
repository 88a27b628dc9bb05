//! The ClusterRole aggregation controller: a ClusterRole with an `aggregationRule` gets as
//! its rules the union of the rules of every other ClusterRole its selectors match (in name
//! order, each rule once), as kube-controller-manager's `clusterrole-aggregation` does. That
//! is how `admin`, `edit` and `view` grow when a role labelled
//! `rbac.authorization.k8s.io/aggregate-to-view: "true"` is added, for a CRD say.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use skiff_api::labels::Selector;
use skiff_client::controller::drive;
use skiff_client::watched_store;

use crate::Shutdown;
use crate::error::{Error, Result};
use crate::metrics::timed;

/// What the reconciler shares between calls.
pub struct AggregationContext {
    client: Client,
    roles: Store<ClusterRole>,
}

/// The rules `role` aggregates from `all` (`None` when it has no aggregationRule).
pub fn aggregated_rules(role: &ClusterRole, all: &[Arc<ClusterRole>]) -> Option<Vec<PolicyRule>> {
    let rule = role.aggregation_rule.as_ref()?;
    let selectors: Vec<Selector> = rule
        .cluster_role_selectors
        .iter()
        .flatten()
        .filter_map(|s| Selector::from_label_selector(s).ok())
        .collect();
    let mut sources: Vec<&Arc<ClusterRole>> = all
        .iter()
        .filter(|r| r.name_any() != role.name_any())
        .filter(|r| selectors.iter().any(|s| s.matches(r.labels())))
        .collect();
    sources.sort_by_key(|r| r.name_any());
    let mut rules: Vec<PolicyRule> = Vec::new();
    for r in sources {
        for p in r.rules.iter().flatten() {
            if !rules.contains(p) {
                rules.push(p.clone());
            }
        }
    }
    Some(rules)
}

async fn reconcile(role: Arc<ClusterRole>, ctx: Arc<AggregationContext>) -> Result<Action> {
    let all = ctx.roles.state();
    let Some(rules) = aggregated_rules(&role, &all) else {
        return Ok(Action::await_change());
    };
    if role.rules.as_ref().unwrap_or(&Vec::new()) == &rules {
        return Ok(Action::await_change());
    }
    let name = role.name_any();
    tracing::info!(clusterrole = %name, rules = rules.len(), "aggregating cluster role rules");
    let api: Api<ClusterRole> = Api::all(ctx.client.clone());
    let patch = serde_json::json!({"rules": rules});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::api(name))?;
    Ok(Action::await_change())
}

fn error_policy(role: Arc<ClusterRole>, err: &Error, _ctx: Arc<AggregationContext>) -> Action {
    tracing::warn!(clusterrole = %role.name_any(), error = %err, "cluster role aggregation failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the aggregation controller until `shutdown`.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let (roles, _ready, events) = watched_store::<ClusterRole>(&client);
    // Any change to any ClusterRole may change what an aggregated one holds: each event
    // also asks for every role to be looked at again (those without a rule return at once).
    let (tx, rx) = futures::channel::mpsc::unbounded::<()>();
    let events = futures::StreamExt::inspect(events, move |_| {
        let _ = tx.unbounded_send(());
    });
    let controller = Controller::for_stream(events, roles.clone()).reconcile_all_on(rx);
    let ctx = Arc::new(AggregationContext { client, roles });
    let timed_reconcile = |obj, ctx| timed("clusterrole-aggregation", reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role(v: serde_json::Value) -> Arc<ClusterRole> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn aggregates_matching_roles_once_in_name_order() {
        let view = role(
            json!({"metadata": {"name": "view"}, "aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]}}),
        );
        let pods = json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]});
        let crons =
            json!({"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["crontabs"]});
        let all = vec![
            view.clone(),
            role(
                json!({"metadata": {"name": "b", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                "rules": [crons, pods]}),
            ),
            role(
                json!({"metadata": {"name": "a", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                "rules": [pods]}),
            ),
            role(
                json!({"metadata": {"name": "c"}, "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]}),
            ),
        ];
        let rules = aggregated_rules(&view, &all).unwrap();
        let want: Vec<PolicyRule> = serde_json::from_value(json!([pods, crons])).unwrap();
        assert_eq!(rules, want);
        assert!(aggregated_rules(&all[3], &all).is_none());
    }
}
