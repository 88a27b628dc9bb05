//! The object rules every kind shares, as Kubernetes' generic registry applies them: names
//! and generateName, uid and timestamps, resourceVersion preconditions, generation, the
//! split between spec and status, finalizers and graceful deletion, dry runs.

use serde_json::{Map, Value, json};
use skiff_api::resources::{self, ResourceInfo};
use skiff_api::validation::{self, Cause};

use super::ApiState;
use super::typed::{FieldValidation, normalize};
use crate::error::ApiError;
use crate::storage::{KeyValue, Revision, StoreError};
use crate::strategy::{self, Strategy};
use crate::watchcache::decode;

/// The resource table entry objects of `r` are stored as.
pub fn storage_of(r: &'static ResourceInfo) -> &'static ResourceInfo {
    resources::find(r.storage_group, r.storage_version, r.storage_plural).unwrap_or(r)
}

/// Now, as Kubernetes writes timestamps (RFC 3339, seconds).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn has_status_sub(r: &ResourceInfo) -> bool {
    r.subresource("status").is_some()
}

fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Where an object lives: resource (served version), namespace and name.
pub struct ObjectRef<'a> {
    /// The served resource.
    pub resource: &'static ResourceInfo,
    /// Namespace (namespaced kinds).
    pub namespace: Option<&'a str>,
    /// Name.
    pub name: &'a str,
}

impl ObjectRef<'_> {
    fn key(&self) -> String {
        storage_of(self.resource).key(self.namespace, self.name)
    }

    fn not_found(&self) -> ApiError {
        ApiError::not_found(self.resource.group, self.resource.plural, self.name)
    }

    fn store_err(&self, e: StoreError) -> ApiError {
        ApiError::from_store(e, self.resource.group, self.resource.plural, self.name)
    }
}

/// Converts a stored object into the served version of `r`.
pub fn to_served(r: &'static ResourceInfo, obj: Value) -> Result<Value, ApiError> {
    let s = storage_of(r);
    if std::ptr::eq(s, r) {
        Ok(obj)
    } else {
        strategy::convert(obj, s, r)
    }
}

fn decode_kv(kv: &KeyValue) -> Result<Value, ApiError> {
    decode(&kv.value, kv.mod_revision).map_err(ApiError::internal)
}

fn encode(obj: &Value) -> Vec<u8> {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("selfLink");
        m.remove("managedFields");
    }
    serde_json::to_vec(&o).expect("JSON values always encode")
}

fn set_rv(obj: &mut Value, rev: Revision) {
    meta_mut(obj).insert("resourceVersion".into(), Value::String(rev.to_string()));
}

fn parse_rv(obj: &Value) -> Result<Option<Revision>, ApiError> {
    match meta_str(obj, "resourceVersion").filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "metadata.resourceVersion: Invalid value: {s:?}: must be an integer"
            ))
        }),
    }
}

/// Reads one object in storage form with its revision.
pub async fn read(state: &ApiState, at: &ObjectRef<'_>) -> Result<(Value, Revision), ApiError> {
    let kv = state
        .store
        .get(&at.key())
        .await
        .map_err(|e| at.store_err(e))?;
    let kv = kv.ok_or_else(|| at.not_found())?;
    Ok((decode_kv(&kv)?, kv.mod_revision))
}

/// Checks `apiVersion`/`kind` of a request body against the resource, filling them if absent.
fn check_type(r: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON or YAML object",
        ));
    };
    let api_version = r.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), Value::String(api_version));
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), Value::String(r.kind.into()));
        }
        Some(k) if k == r.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                r.kind
            )));
        }
    }
    Ok(())
}

fn check_namespace(
    r: &ResourceInfo,
    obj: &mut Value,
    path_ns: Option<&str>,
) -> Result<(), ApiError> {
    let body_ns = meta_str(obj, "namespace")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if !r.namespaced {
        meta_mut(obj).remove("namespace");
        return Ok(());
    }
    match (body_ns.as_deref(), path_ns) {
        (Some(b), Some(p)) if b != p => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        (_, Some(p)) => {
            meta_mut(obj).insert("namespace".into(), Value::String(p.into()));
            Ok(())
        }
        (Some(_), None) => Ok(()),
        (None, None) => Err(ApiError::bad_request(
            "a namespace is required for this resource",
        )),
    }
}

/// Decodes a request body into the storage form of `r`: type check, pruning or strict
/// rejection of unknown fields, version conversion.
pub fn decode_body(
    r: &'static ResourceInfo,
    mut obj: Value,
    fv: FieldValidation,
) -> Result<Value, ApiError> {
    check_type(r, &mut obj)?;
    let obj = normalize(r, obj, fv)?;
    let s = storage_of(r);
    if std::ptr::eq(s, r) {
        Ok(obj)
    } else {
        strategy::convert(obj, r, s)
    }
}

fn validate(s: &'static ResourceInfo, st: &dyn Strategy, obj: &Value) -> Vec<Cause> {
    let name_check: fn(&str) -> Vec<String> = if s.kind == "Namespace" {
        validation::is_dns1123_label
    } else {
        validation::is_dns1123_subdomain
    };
    let empty = json!({});
    let mut causes = validation::validate_object_meta(
        obj.get("metadata").unwrap_or(&empty),
        s.namespaced,
        name_check,
    );
    causes.extend(st.validate(obj));
    causes
}

fn invalid(s: &ResourceInfo, obj: &Value, causes: &[Cause]) -> ApiError {
    let name = meta_str(obj, "name")
        .or(meta_str(obj, "generateName"))
        .unwrap_or("");
    ApiError::invalid(s.group, s.kind, name, causes)
}

async fn check_namespace_exists(
    state: &ApiState,
    s: &ResourceInfo,
    obj: &Value,
) -> Result<(), ApiError> {
    if !s.namespaced {
        return Ok(());
    }
    let ns = meta_str(obj, "namespace").unwrap_or("");
    let nsr = resources::find("", "v1", "namespaces").expect("namespaces are served");
    match state
        .store
        .get(&nsr.key(None, ns))
        .await
        .map_err(ApiError::internal)?
    {
        None => Err(ApiError::not_found("", "namespaces", ns)),
        Some(kv) => {
            let nso = decode_kv(&kv)?;
            if nso.pointer("/metadata/deletionTimestamp").is_some() {
                Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        s.plural,
                        meta_str(obj, "name").unwrap_or("")
                    ),
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// Creates an object from a decoded body (storage form). Returns the stored object in storage
/// form with its resourceVersion (not stored when `dry_run`).
pub async fn create(
    state: &ApiState,
    r: &'static ResourceInfo,
    mut obj: Value,
    namespace: Option<&str>,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let s = storage_of(r);
    let st = strategy::strategy_for(s);
    check_namespace(s, &mut obj, namespace)?;
    {
        let meta = meta_mut(&mut obj);
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            if let Some(g) = meta
                .get("generateName")
                .and_then(Value::as_str)
                .filter(|g| !g.is_empty())
            {
                let generated = format!("{g}{}", random_suffix());
                meta.insert("name".into(), Value::String(generated));
            }
        }
        meta.insert(
            "uid".into(),
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
        meta.insert("creationTimestamp".into(), Value::String(now()));
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ] {
            meta.remove(f);
        }
        if st.uses_generation() {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
    }
    if has_status_sub(s) && s.kind != "Node" {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    }
    st.default(&mut obj);
    st.prepare_create(&mut obj);
    let causes = validate(s, st, &obj);
    if !causes.is_empty() {
        return Err(invalid(s, &obj, &causes));
    }
    check_namespace_exists(state, s, &obj).await?;
    let name = meta_str(&obj, "name").unwrap_or("").to_string();
    let ns = meta_str(&obj, "namespace").map(str::to_string);
    let key = s.key(ns.as_deref(), &name);
    if dry_run {
        if state
            .store
            .get(&key)
            .await
            .map_err(ApiError::internal)?
            .is_some()
        {
            return Err(ApiError::already_exists(r.group, r.plural, &name));
        }
        return Ok(obj);
    }
    let rev = state
        .store
        .create(&key, encode(&obj))
        .await
        .map_err(|e| ApiError::from_store(e, r.group, r.plural, &name))?;
    set_rv(&mut obj, rev);
    Ok(obj)
}

/// Which part of an object an update may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateScope {
    /// The main resource: everything but status (for kinds with a status subresource).
    Main,
    /// The status subresource: only status.
    Status,
    /// An internal update allowed to touch both (bindings, scale).
    Both,
    /// The approval subresource: only `status.conditions` (CertificateSigningRequests).
    Approval,
}

fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}

/// Merges an incoming object (storage form) over the current one according to the update
/// scope and the generic metadata rules, then defaults and validates it.
fn prepare_update(
    s: &'static ResourceInfo,
    st: &dyn Strategy,
    old: &Value,
    incoming: Value,
    scope: UpdateScope,
) -> Result<Value, ApiError> {
    let mut new = match scope {
        UpdateScope::Status => {
            let mut n = old.clone();
            n["status"] = incoming.get("status").cloned().unwrap_or(Value::Null);
            if n["status"].is_null() {
                n.as_object_mut().map(|m| m.remove("status"));
            }
            n
        }
        UpdateScope::Approval => {
            let mut n = old.clone();
            match incoming.pointer("/status/conditions") {
                Some(c) if !c.is_null() => n["status"]["conditions"] = c.clone(),
                _ => {
                    if let Some(st) = n.get_mut("status").and_then(Value::as_object_mut) {
                        st.remove("conditions");
                    }
                }
            }
            n
        }
        UpdateScope::Main if has_status_sub(s) => {
            let mut n = incoming;
            match old.get("status") {
                Some(st) => n["status"] = st.clone(),
                None => {
                    n.as_object_mut().map(|m| m.remove("status"));
                }
            }
            n
        }
        _ => incoming,
    };
    let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
    {
        let meta = meta_mut(&mut new);
        for f in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(f) {
                Some(v) => meta.insert(f.into(), v.clone()),
                None => meta.remove(f),
            };
        }
        meta.remove("managedFields");
    }
    st.default(&mut new);
    st.prepare_update(&mut new, old);
    if scope == UpdateScope::Status {
        st.prepare_status_update(&mut new, old);
    }
    if st.uses_generation() && spec_part(&new) != spec_part(old) {
        let g = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta_mut(&mut new).insert("generation".into(), json!(g + 1));
    }
    let mut causes = validate(s, st, &new);
    if scope != UpdateScope::Both {
        causes.extend(st.validate_update(&new, old));
    }
    if old_meta.get("deletionTimestamp").is_some() {
        // Finalizers may be removed but not added once deletion has started.
        let old_f: Vec<&Value> = old_meta
            .get("finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        if let Some(newf) = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
        {
            for f in newf {
                if !old_f.contains(&f) {
                    causes.push(Cause::forbidden("metadata.finalizers", format!("no new finalizers can be added if the object is being deleted, found new finalizers [{}]", f.as_str().unwrap_or(""))));
                }
            }
        }
    }
    if !causes.is_empty() {
        return Err(invalid(s, &new, &causes));
    }
    Ok(new)
}

fn finalizers_empty(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty())
}

/// Replaces an object (PUT or the second half of PATCH). `incoming` is in storage form;
/// `precondition` is the resourceVersion the client based its change on, if any.
pub async fn update(
    state: &ApiState,
    at: &ObjectRef<'_>,
    incoming: Value,
    scope: UpdateScope,
    dry_run: bool,
    current: Option<(Value, Revision)>,
) -> Result<Value, ApiError> {
    let s = storage_of(at.resource);
    let st = strategy::strategy_for(s);
    let body_name = meta_str(&incoming, "name").unwrap_or("");
    if !body_name.is_empty() && body_name != at.name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            at.name
        )));
    }
    if let (Some(b), Some(p)) = (
        meta_str(&incoming, "namespace").filter(|s| !s.is_empty()),
        at.namespace,
    ) {
        if s.namespaced && b != p {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let precondition = parse_rv(&incoming)?;
    let (old, rev) = match current {
        Some(c) => c,
        None => read(state, at).await?,
    };
    if let Some(p) = precondition {
        if p != rev {
            return Err(ApiError::conflict(
                at.resource.group,
                at.resource.plural,
                at.name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
    }
    let new = prepare_update(s, st, &old, incoming, scope)?;
    let mut cmp_old = old.clone();
    let mut cmp_new = new.clone();
    for o in [&mut cmp_old, &mut cmp_new] {
        meta_mut(o).remove("resourceVersion");
    }
    if cmp_old == cmp_new {
        return Ok(old);
    }
    if dry_run {
        return Ok(new);
    }
    let key = at.key();
    if new.pointer("/metadata/deletionTimestamp").is_some()
        && finalizers_empty(&new)
        && !is_graceful_pod(s, &new)
    {
        let (drev, _) = state
            .store
            .delete(&key, Some(rev))
            .await
            .map_err(|e| at.store_err(e))?;
        let mut out = new;
        set_rv(&mut out, drev);
        return Ok(out);
    }
    let nrev = state
        .store
        .update(&key, encode(&new), rev)
        .await
        .map_err(|e| at.store_err(e))?;
    let mut out = new;
    set_rv(&mut out, nrev);
    Ok(out)
}

/// A pod bound to a node waits for its kubelet to finish a graceful deletion.
fn is_graceful_pod(s: &ResourceInfo, obj: &Value) -> bool {
    s.group.is_empty()
        && s.kind == "Pod"
        && obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
        && obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            > 0
        && !matches!(
            obj.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        )
}

/// The finalizer that makes the garbage collector delete dependents before the owner.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer that makes the garbage collector orphan dependents before the owner goes.
pub const ORPHAN: &str = "orphan";

/// Adds a finalizer if absent (and drops the opposite GC finalizer, as Kubernetes does when
/// the propagation policy changes); true when the object changed.
fn add_finalizer(obj: &mut Value, finalizer: &str) -> bool {
    let other = if finalizer == FOREGROUND {
        ORPHAN
    } else {
        FOREGROUND
    };
    let meta = meta_mut(obj);
    let list = meta
        .entry("finalizers")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(arr) = list.as_array_mut() else {
        return false;
    };
    let before = arr.len();
    arr.retain(|f| f != other);
    let removed = arr.len() != before;
    if arr.iter().any(|f| f == finalizer) {
        return removed;
    }
    arr.push(Value::String(finalizer.to_string()));
    true
}

/// Options of a delete, from the DeleteOptions body or the query.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    /// `propagationPolicy`.
    pub propagation: Option<String>,
    /// `gracePeriodSeconds`.
    pub grace_period: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun: [All]`.
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads DeleteOptions from a JSON body (may be empty), overlaying query values.
    pub fn parse(
        body: &[u8],
        propagation: Option<String>,
        grace: Option<i64>,
        dry_run: bool,
    ) -> Result<Self, ApiError> {
        let mut o = DeleteOptions {
            propagation,
            grace_period: grace,
            dry_run,
            ..Default::default()
        };
        if body.iter().any(|b| !b.is_ascii_whitespace()) {
            // kubectl's typed clients send DeleteOptions as protobuf.
            let v: Value = if body.starts_with(b"k8s\0") {
                crate::protobuf::decode_request(body)?
            } else {
                serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
            };
            if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
                o.propagation = Some(p.into());
            }
            if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
                o.grace_period = Some(g);
            }
            o.uid = v
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(Into::into);
            o.resource_version = v
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(Into::into);
            if v.get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x == "All"))
            {
                o.dry_run = true;
            }
        }
        if let Some(p) = &o.propagation {
            if !matches!(p.as_str(), "Background" | "Foreground" | "Orphan") {
                return Err(ApiError::invalid(
                    "",
                    "DeleteOptions",
                    "",
                    &[Cause::not_supported(
                        "propagationPolicy",
                        &json!(p),
                        &["Foreground", "Background", "Orphan"],
                    )],
                ));
            }
        }
        Ok(o)
    }
}

/// Deletes an object. Returns the object and whether it is gone (`false`: deletion pending
/// on finalizers or a graceful pod shutdown).
pub async fn delete(
    state: &ApiState,
    at: &ObjectRef<'_>,
    opts: &DeleteOptions,
) -> Result<(Value, bool), ApiError> {
    let s = storage_of(at.resource);
    let key = at.key();
    for _ in 0..8 {
        let (mut obj, rev) = read(state, at).await?;
        if let Some(uid) = &opts.uid {
            if meta_str(&obj, "uid") != Some(uid.as_str()) {
                return Err(ApiError::conflict(
                    at.resource.group,
                    at.resource.plural,
                    at.name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta_str(&obj, "uid").unwrap_or("")
                    ),
                ));
            }
        }
        if let Some(want) = &opts.resource_version {
            if *want != rev.to_string() {
                return Err(ApiError::conflict(
                    at.resource.group,
                    at.resource.plural,
                    at.name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rev}"
                    ),
                ));
            }
        }
        let graceful_pod = s.kind == "Pod"
            && s.group.is_empty()
            && obj
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty())
            && !matches!(
                obj.pointer("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            );
        let grace = if graceful_pod {
            opts.grace_period
                .unwrap_or_else(|| {
                    obj.pointer("/spec/terminationGracePeriodSeconds")
                        .and_then(Value::as_i64)
                        .unwrap_or(30)
                })
                .max(0)
        } else {
            0
        };
        let namespace_finalizing = s.kind == "Namespace" && s.group.is_empty();
        // Foreground and Orphan deletion hand the object to the garbage collector through a
        // finalizer, as Kubernetes does; Background deletes the owner now.
        let gc_finalizer = match opts.propagation.as_deref() {
            Some("Foreground") if !namespace_finalizing => Some(FOREGROUND),
            Some("Orphan") if !namespace_finalizing => Some(ORPHAN),
            _ => None,
        };
        let added_finalizer = gc_finalizer.is_some_and(|f| add_finalizer(&mut obj, f));
        let pending = !finalizers_empty(&obj) || grace > 0 || namespace_finalizing;
        if pending {
            let already = obj.pointer("/metadata/deletionTimestamp").is_some();
            let old_grace = obj
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            let shorter = old_grace.is_some_and(|g| g > grace);
            if already && !shorter && !added_finalizer {
                return Ok((obj, false));
            }
            let when = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
            if !already || shorter {
                let m = meta_mut(&mut obj);
                m.insert(
                    "deletionTimestamp".into(),
                    Value::String(when.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
                );
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            }
            if namespace_finalizing {
                obj["status"] = json!({"phase": "Terminating"});
            }
            if opts.dry_run {
                return Ok((obj, false));
            }
            match state.store.update(&key, encode(&obj), rev).await {
                Ok(nrev) => {
                    set_rv(&mut obj, nrev);
                    if namespace_finalizing {
                        super::namespace::spawn_finalizer(
                            state.clone_handle(),
                            at.name.to_string(),
                        );
                    }
                    return Ok((obj, false));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(at.store_err(e)),
            }
        }
        if opts.dry_run {
            return Ok((obj, true));
        }
        match state.store.delete(&key, Some(rev)).await {
            Ok((drev, _)) => {
                set_rv(&mut obj, drev);
                return Ok((obj, true));
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(at.store_err(e)),
        }
    }
    Err(ApiError::conflict(
        at.resource.group,
        at.resource.plural,
        at.name,
        "the object kept changing during deletion; try again",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_use_kubernetes_alphabet() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn spec_part_ignores_metadata_and_status() {
        let a = json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"y": 1}});
        let b = json!({"metadata": {"name": "b"}, "spec": {"x": 1}, "status": {"y": 2}});
        assert_eq!(spec_part(&a), spec_part(&b));
    }
}
