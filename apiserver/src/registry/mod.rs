//! The kind registry: one entry per served resource version, carrying everything the generic
//! handlers need to know about a kind — its resource info, how a body decodes (the typed round
//! trip and OpenAPI schema), how it converts to its storage version, its strategy (defaulting,
//! validation, status rules, table columns) and its protobuf field table.
//!
//! Built-in entries come from k8s-openapi types (`builtin.rs`); an entry can as well be made
//! at run time from a JSON schema with no Rust type behind it (`structural.rs`), which is what
//! CustomResourceDefinitions need. The registry is a value held in the server state; lookups
//! go by group/version/plural (URLs) and by apiVersion/kind (bodies).

mod builtin;
mod byte_fields;
mod codec;
mod structural;

use std::sync::{Arc, LazyLock, OnceLock};

use serde_json::Value;
use skiff_api::resources::{ResourceInfo, split_api_version};

pub use codec::{FieldValidation, KindCodec, Typed};
pub use structural::StructuralCodec;

use crate::error::ApiError;
use crate::protobuf::MessageTable;
use crate::strategy::Strategy;

/// Converts objects between a served version and the version its kind is stored in (autoscaling
/// v1 ↔ v2 HorizontalPodAutoscalers, events.k8s.io ↔ core Events). `apiVersion`/`kind` of the
/// result are those of the target version.
pub trait Conversion: Send + Sync {
    /// From the served version of the entry holding this conversion to the storage version.
    fn to_storage(&self, obj: Value) -> Value;
    /// From the storage version to the served version of the entry.
    fn to_served(&self, obj: Value) -> Value;
}

/// A [`Conversion`] made of two functions.
pub struct FnConversion {
    /// Served → storage.
    pub to_storage: fn(Value) -> Value,
    /// Storage → served.
    pub to_served: fn(Value) -> Value,
}

impl Conversion for FnConversion {
    fn to_storage(&self, obj: Value) -> Value {
        (self.to_storage)(obj)
    }

    fn to_served(&self, obj: Value) -> Value {
        (self.to_served)(obj)
    }
}

/// The body kind of a subresource with its own shape (`pods/binding` takes a Binding,
/// `deployments/scale` a Scale): how it decodes, for the OpenAPI document and protobuf bodies.
pub struct SubresourceBody {
    /// The subresource's path segment (`binding`, `eviction`, `scale`).
    pub subresource: &'static str,
    /// The body's schema.
    pub codec: Arc<dyn KindCodec>,
    /// The body's protobuf field table, when clients may send it as protobuf.
    pub protobuf: Option<MessageTable>,
}

/// One served resource version and everything kind-specific about it.
pub struct Kind {
    /// Group, version, kind, plural, scope, short names, subresources, storage location.
    pub info: &'static ResourceInfo,
    codec: Arc<dyn KindCodec>,
    strategy: Arc<dyn Strategy>,
    conversion: Option<Arc<dyn Conversion>>,
    protobuf: Option<MessageTable>,
    bodies: Vec<SubresourceBody>,
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kind")
            .field("info", self.info)
            .field("schema", &self.codec.schema_name())
            .field("protobuf", &self.protobuf)
            .finish_non_exhaustive()
    }
}

impl Kind {
    /// An entry with its body codec and strategy.
    pub fn new(
        info: &'static ResourceInfo,
        codec: Arc<dyn KindCodec>,
        strategy: Arc<dyn Strategy>,
    ) -> Self {
        Self {
            info,
            codec,
            strategy,
            conversion: None,
            protobuf: None,
            bodies: Vec::new(),
        }
    }

    /// Sets the conversion to and from the storage version (for entries that are not it).
    pub fn with_conversion(mut self, conversion: Arc<dyn Conversion>) -> Self {
        self.conversion = Some(conversion);
        self
    }

    /// Sets the protobuf field table request bodies of this kind decode with.
    pub fn with_protobuf(mut self, table: MessageTable) -> Self {
        self.protobuf = Some(table);
        self
    }

    /// Adds the body kind of one of the entry's subresources.
    pub fn with_body(
        mut self,
        subresource: &'static str,
        codec: Arc<dyn KindCodec>,
        protobuf: Option<MessageTable>,
    ) -> Self {
        debug_assert!(self.info.subresource(subresource).is_some());
        self.bodies.push(SubresourceBody {
            subresource,
            codec,
            protobuf,
        });
        self
    }

    /// The kind's strategy.
    pub fn strategy(&self) -> &dyn Strategy {
        self.strategy.as_ref()
    }

    /// The kind's body codec (round trip and schema).
    pub fn codec(&self) -> &dyn KindCodec {
        self.codec.as_ref()
    }

    /// The protobuf field table of the kind, if it decodes from protobuf.
    pub fn protobuf(&self) -> Option<MessageTable> {
        self.protobuf
    }

    /// The body kinds of the entry's subresources.
    pub fn bodies(&self) -> &[SubresourceBody] {
        &self.bodies
    }

    /// Decodes `obj` through the kind's schema and re-encodes it, so the result has exactly
    /// the fields the kind knows. See [`codec::normalize`].
    pub fn normalize(&self, obj: Value, validation: FieldValidation) -> Result<Value, ApiError> {
        codec::normalize(self.info, self.codec(), obj, validation)
    }

    /// Whether objects of this entry are stored as `other`'s.
    fn stored_as(&self, other: &Kind) -> bool {
        self.info.storage_group == other.info.group
            && self.info.storage_version == other.info.version
            && self.info.storage_plural == other.info.plural
    }
}

/// Every served kind. Immutable once built: a change of served kinds (a CRD) builds a new
/// registry, so caches derived from one (OpenAPI documents) stay right for it.
pub struct Registry {
    kinds: Vec<Arc<Kind>>,
    openapi: OnceLock<crate::openapi::Documents>,
}

impl Registry {
    /// A registry of the given entries, in discovery order.
    pub fn new(kinds: Vec<Kind>) -> Self {
        Self {
            kinds: kinds.into_iter().map(Arc::new).collect(),
            openapi: OnceLock::new(),
        }
    }

    /// The built-in kinds.
    pub fn builtin() -> Self {
        Self::new(builtin::entries())
    }

    /// This registry plus `kind` (a kind added at run time).
    pub fn with(&self, kind: Kind) -> Self {
        let mut kinds = self.kinds.clone();
        kinds.push(Arc::new(kind));
        Self {
            kinds,
            openapi: OnceLock::new(),
        }
    }

    /// This registry plus `extra` (the kinds of CustomResourceDefinitions).
    pub fn extended(&self, extra: Vec<Kind>) -> Self {
        let mut kinds = self.kinds.clone();
        kinds.extend(extra.into_iter().map(Arc::new));
        Self {
            kinds,
            openapi: OnceLock::new(),
        }
    }

    /// Every entry, in discovery order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Kind>> {
        self.kinds.iter()
    }

    /// The entry of a resource by group, version and plural, as URLs name it.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<Kind>> {
        self.kinds
            .iter()
            .find(|k| k.info.group == group && k.info.version == version && k.info.plural == plural)
    }

    /// The entry of a kind by `apiVersion` and kind, as bodies name it.
    pub fn find_by_kind(&self, api_version: &str, kind: &str) -> Option<&Arc<Kind>> {
        let (group, version) = split_api_version(api_version);
        self.kinds
            .iter()
            .find(|k| k.info.group == group && k.info.version == version && k.info.kind == kind)
    }

    /// The entry objects of `kind` are stored as (itself unless it is an alias version).
    pub fn storage_of<'a>(&'a self, kind: &'a Arc<Kind>) -> &'a Arc<Kind> {
        self.kinds
            .iter()
            .find(|s| kind.stored_as(s))
            .unwrap_or(kind)
    }

    /// Converts a stored object into the served version of `kind`.
    pub fn to_served(&self, kind: &Arc<Kind>, obj: Value) -> Result<Value, ApiError> {
        convert(obj, self.storage_of(kind), kind)
    }

    /// Converts a served object of `kind` into its storage version.
    pub fn to_storage(&self, kind: &Arc<Kind>, obj: Value) -> Result<Value, ApiError> {
        convert(obj, kind, self.storage_of(kind))
    }

    /// The protobuf field table of `(apiVersion, kind)`: an entry's own or that of one of its
    /// subresource bodies.
    pub fn protobuf_table(&self, api_version: &str, kind: &str) -> Option<MessageTable> {
        self.protobuf_roots()
            .find(|(v, k, _)| *k == kind && v == api_version)
            .map(|(_, _, t)| t)
    }

    /// `(apiVersion, kind, table)` of every kind that decodes from protobuf, each once.
    pub fn protobuf_tables(&self) -> Vec<(String, &'static str, MessageTable)> {
        let mut out: Vec<(String, &'static str, MessageTable)> = Vec::new();
        for root in self.protobuf_roots() {
            if !out.iter().any(|(v, k, _)| *v == root.0 && *k == root.1) {
                out.push(root);
            }
        }
        out
    }

    fn protobuf_roots(&self) -> impl Iterator<Item = (String, &'static str, MessageTable)> + '_ {
        self.kinds.iter().flat_map(|k| {
            let own = k.protobuf.map(|t| (k.info.api_version(), k.info.kind, t));
            let bodies = k.bodies.iter().filter_map(|b| {
                let sub = k.info.subresource(b.subresource)?;
                let (api_version, kind) = body_type(k.info, sub);
                b.protobuf.map(|t| (api_version, kind, t))
            });
            own.into_iter().chain(bodies)
        })
    }

    /// The OpenAPI documents of this registry's group-versions, built on first use.
    pub fn openapi(&self) -> &crate::openapi::Documents {
        self.openapi
            .get_or_init(|| crate::openapi::Documents::build(self))
    }
}

/// Converts an object between two served versions of one resource. `obj` carries
/// `apiVersion`/`kind` of `from`; the result carries those of `to`. Same group-version is the
/// identity; other pairs than a version and its storage version are a 500.
pub fn convert(obj: Value, from: &Kind, to: &Kind) -> Result<Value, ApiError> {
    if from.info.group == to.info.group && from.info.version == to.info.version {
        // A storage entry with a conversion (a custom kind's) rewrites objects stored under
        // an earlier storage version.
        return Ok(match (&to.conversion, to.info.is_storage_version()) {
            (Some(c), true) => c.to_served(obj),
            _ => obj,
        });
    }
    if from.stored_as(to)
        && let Some(c) = &from.conversion
    {
        return Ok(c.to_storage(obj));
    }
    if to.stored_as(from)
        && let Some(c) = &to.conversion
    {
        return Ok(c.to_served(obj));
    }
    Err(ApiError::internal(format!(
        "no conversion from {} to {} for {}",
        from.info.api_version(),
        to.info.api_version(),
        from.info.kind
    )))
}

/// `apiVersion` and kind of a subresource's body (`autoscaling/v1` Scale for `scale`).
pub fn body_type(
    info: &ResourceInfo,
    sub: &skiff_api::resources::Subresource,
) -> (String, &'static str) {
    let (g, v) = match sub.group.is_empty() {
        true => (info.group, info.version),
        false => (sub.group, sub.version),
    };
    (skiff_api::resources::group_version(g, v), sub.kind)
}

/// The built-in registry, shared by every server in the process.
pub fn builtin() -> &'static Arc<Registry> {
    static BUILTIN: LazyLock<Arc<Registry>> = LazyLock::new(|| Arc::new(Registry::builtin()));
    &BUILTIN
}

#[cfg(test)]
mod tests;
