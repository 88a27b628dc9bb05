//! The shape of the generated protobuf field table (`schema.rs`): messages, fields and how
//! each field's value becomes JSON.

/// The decoding table of one object kind: the index of its root message in `MESSAGES`. Kind
/// registry entries hold one, so which table decodes a kind is said once, in its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageTable(pub(super) usize);

/// One protobuf message: its fields by field number.
#[derive(Debug)]
pub(super) struct Message {
    /// Message path in k8s-pb (`api.core.v1.Pod`), for error messages.
    pub name: &'static str,
    /// Fields sorted by tag.
    pub fields: &'static [Field],
}

/// One field of a message.
#[derive(Debug)]
pub(super) struct Field {
    /// Protobuf field number.
    pub tag: u32,
    /// JSON name; empty for an inline (embedded Go struct) field.
    pub json: &'static str,
    /// How the value is decoded and rendered.
    pub kind: Kind,
    /// A repeated field (a JSON array).
    pub repeated: bool,
    /// A Go struct embedded with `json:",inline"`: its fields merge into the parent object.
    pub inline: bool,
    /// The field's zero value is kept in JSON (a Go pointer, or no `omitempty`).
    pub keep_zero: bool,
}

/// How a field's wire value becomes JSON.
#[derive(Debug)]
pub(super) enum Kind {
    /// UTF-8 string.
    String,
    /// Varint boolean.
    Bool,
    /// Varint int32.
    Int32,
    /// Varint int64.
    Int64,
    /// Bytes, rendered base64 like Go's `[]byte`.
    Bytes,
    /// A nested message, by index into `MESSAGES`.
    Message(usize),
    /// A `map<string, V>`: repeated entries {key=1, value=2}, rendered as an object.
    Map(&'static Kind),
    /// `resource.Quantity` {string=1}: rendered as its string.
    Quantity,
    /// `intstr.IntOrString` {type=1, intVal=2, strVal=3}: a number or a string.
    IntOrString,
    /// `metav1.Time` {seconds=1, nanos=2}: RFC 3339 with whole seconds.
    Time,
    /// `metav1.MicroTime` {seconds=1, nanos=2}: RFC 3339 with six fractional digits.
    MicroTime,
    /// `runtime.RawExtension` / `metav1.FieldsV1` {raw=1}: embedded JSON.
    RawJson,
    /// A message wrapping one repeated string {items=1} (`ExtraValue`): a JSON array.
    StringList,
}
