//! StatefulSet status (`updateStatefulSetStatus`): the counts and revisions of the last
//! pass, a rolling update completed once every replica is updated and ready, and a write
//! only when something changed.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use kube::api::{Api, Patch};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::plan::Counts;
use crate::error::{Error, Result, not_found};

/// The status a pass computed.
pub fn status_of(
    set: &StatefulSet,
    counts: Counts,
    current_revision: &str,
    update_revision: &str,
    collision_count: i32,
) -> StatefulSetStatus {
    let mut st = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        replicas: counts.replicas,
        ready_replicas: Some(counts.ready),
        available_replicas: Some(counts.available),
        current_replicas: Some(counts.current),
        updated_replicas: Some(counts.updated),
        current_revision: Some(current_revision.to_string()),
        update_revision: Some(update_revision.to_string()),
        collision_count: Some(collision_count),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    // `completeRollingUpdate`.
    let rolling = set
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate");
    if rolling && counts.updated == counts.replicas && counts.ready == counts.replicas {
        st.current_replicas = st.updated_replicas;
        st.current_revision = st.update_revision.clone();
    }
    st
}

/// Writes `status` unless the set already shows it.
pub async fn write(client: &Client, set: &StatefulSet, status: &StatefulSetStatus) -> Result<()> {
    let old = set.status.clone().unwrap_or_default();
    let zero = |v: Option<i32>| v.unwrap_or(0);
    let unchanged = old.observed_generation == status.observed_generation
        && old.replicas == status.replicas
        && zero(old.ready_replicas) == zero(status.ready_replicas)
        && zero(old.available_replicas) == zero(status.available_replicas)
        && zero(old.current_replicas) == zero(status.current_replicas)
        && zero(old.updated_replicas) == zero(status.updated_replicas)
        && old.current_revision == status.current_revision
        && old.update_revision == status.update_revision
        && zero(old.collision_count) == zero(status.collision_count);
    if unchanged {
        return Ok(());
    }
    let api: Api<StatefulSet> =
        Api::namespaced(client.clone(), &set.namespace().unwrap_or_default());
    let patch = json!({"status": {
        "observedGeneration": status.observed_generation,
        "replicas": status.replicas,
        "readyReplicas": status.ready_replicas,
        "availableReplicas": status.available_replicas,
        "currentReplicas": status.current_replicas,
        "updatedReplicas": status.updated_replicas,
        "currentRevision": status.current_revision,
        "updateRevision": status.update_revision,
        "collisionCount": status.collision_count,
    }});
    match api
        .patch_status(
            &set.name_any(),
            &crate::patch_params(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if not_found(&e) => Ok(()),
        Err(e) => Err(Error::api(crate::replicaset::key_of(set))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_finished_rolling_update_becomes_current() {
        let set: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 3},
            "spec": {"selector": {}, "template": {}, "updateStrategy": {"type": "RollingUpdate"}}
        }))
        .unwrap();
        let c = |ready, current, updated| Counts {
            replicas: 3,
            ready,
            available: ready,
            current,
            updated,
        };
        let st = status_of(&set, c(3, 0, 3), "web-a", "web-b", 0);
        assert_eq!(st.current_revision.as_deref(), Some("web-b"));
        assert_eq!(st.current_replicas, Some(3));
        assert_eq!(st.observed_generation, Some(3));
        let st = status_of(&set, c(2, 0, 3), "web-a", "web-b", 0);
        assert_eq!(st.current_revision.as_deref(), Some("web-a"));
        let st = status_of(&set, c(3, 1, 2), "web-a", "web-b", 1);
        assert_eq!(st.current_revision.as_deref(), Some("web-a"));
        assert_eq!(st.collision_count, Some(1));
        let mut on_delete = set.clone();
        on_delete
            .spec
            .as_mut()
            .unwrap()
            .update_strategy
            .as_mut()
            .unwrap()
            .type_ = Some("OnDelete".into());
        let st = status_of(&on_delete, c(3, 0, 3), "web-a", "web-b", 0);
        assert_eq!(st.current_revision.as_deref(), Some("web-a"));
    }
}
