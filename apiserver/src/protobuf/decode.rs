//! Table-driven decoding of one Kubernetes protobuf message into the JSON object Go's
//! encoding/json would have produced from the same Go struct.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::DecodeError;
use super::schema::MESSAGES;
use super::schema_types::{Field, Kind, Message};
use super::wire::{Reader, WireType, WireValue};

/// Deeper nesting than any Kubernetes type has: the bound keeps hostile input from recursing.
const MAX_DEPTH: usize = 64;

/// Decodes the message at `MESSAGES[index]` from `buf` into `out`.
pub(super) fn message_into(
    index: usize,
    buf: &[u8],
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::Malformed("objects nested too deeply".into()));
    }
    let msg = &MESSAGES[index];
    let mut reader = Reader::new(buf);
    while let Some((tag, value)) = reader.next_field()? {
        // Fields newer than our table are dropped, as Kubernetes drops unknown fields.
        let Ok(at) = msg.fields.binary_search_by_key(&tag, |f| f.tag) else {
            continue;
        };
        field_into(msg, &msg.fields[at], value, out, depth)?;
    }
    Ok(())
}

fn field_into(
    msg: &Message,
    field: &Field,
    value: WireValue<'_>,
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), DecodeError> {
    if field.inline {
        let Kind::Message(index) = field.kind else {
            return unreachable_kind(msg, field);
        };
        return message_into(index, len(msg, field, value)?, out, depth + 1);
    }
    if let Kind::Map(value_kind) = field.kind {
        let (key, entry) = map_entry(msg, field, value_kind, len(msg, field, value)?, depth)?;
        let map = out
            .entry(field.json)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(map) = map {
            map.insert(key, entry);
        }
        return Ok(());
    }
    if field.repeated {
        let items = out
            .entry(field.json)
            .or_insert_with(|| Value::Array(Vec::new()));
        let Value::Array(items) = items else {
            return Ok(());
        };
        return match (value, packable(&field.kind)) {
            (WireValue::Len(bytes), true) => unpack(field, bytes, items),
            _ => {
                items.push(single(msg, field, &field.kind, value, depth)?.unwrap_or(Value::Null));
                Ok(())
            }
        };
    }
    if let (Kind::Message(index), Some(Value::Object(existing))) =
        (&field.kind, out.get_mut(field.json))
    {
        // A repeated occurrence of a singular message merges into the first, per protobuf.
        return message_into(*index, len(msg, field, value)?, existing, depth + 1);
    }
    match single(msg, field, &field.kind, value, depth)? {
        Some(v) if field.keep_zero || !is_zero(&v) || !is_scalar(&field.kind) => {
            out.insert(field.json.to_string(), v);
        }
        _ => {
            out.remove(field.json);
        }
    }
    Ok(())
}

/// One value of `kind`; `None` when Go's JSON has no value for it (a zero `metav1.Time`).
fn single(
    msg: &Message,
    field: &Field,
    kind: &Kind,
    value: WireValue<'_>,
    depth: usize,
) -> Result<Option<Value>, DecodeError> {
    let v = match kind {
        Kind::String => Value::String(utf8(msg, field, len(msg, field, value)?)?),
        Kind::Bool => Value::Bool(varint(msg, field, value)? != 0),
        Kind::Int32 => Value::from(varint(msg, field, value)? as i64 as i32),
        Kind::Int64 => Value::from(varint(msg, field, value)? as i64),
        Kind::Bytes => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(len(msg, field, value)?))
        }
        Kind::Message(index) => {
            let mut obj = Map::new();
            message_into(*index, len(msg, field, value)?, &mut obj, depth + 1)?;
            Value::Object(obj)
        }
        Kind::Map(_) => unreachable_kind(msg, field)?,
        Kind::Quantity => quantity(len(msg, field, value)?)?,
        Kind::IntOrString => int_or_string(len(msg, field, value)?)?,
        Kind::Time => return time(len(msg, field, value)?, false),
        Kind::MicroTime => return time(len(msg, field, value)?, true),
        Kind::RawJson => return raw_json(msg, field, len(msg, field, value)?),
        Kind::StringList => string_list(msg, field, len(msg, field, value)?)?,
    };
    Ok(Some(v))
}

/// A map entry message {key=1, value=2}; a missing value is the value type's zero.
fn map_entry(
    msg: &Message,
    field: &Field,
    kind: &Kind,
    buf: &[u8],
    depth: usize,
) -> Result<(String, Value), DecodeError> {
    let mut key = String::new();
    let mut entry = None;
    let mut reader = Reader::new(buf);
    while let Some((tag, value)) = reader.next_field()? {
        match tag {
            1 => key = utf8(msg, field, len(msg, field, value)?)?,
            2 => entry = single(msg, field, kind, value, depth)?,
            _ => {}
        }
    }
    let entry = match entry {
        Some(v) => v,
        None => match kind {
            Kind::Message(_) => Value::Object(Map::new()),
            Kind::Quantity => Value::String("0".into()),
            Kind::StringList => Value::Array(Vec::new()),
            _ => Value::String(String::new()),
        },
    };
    Ok((key, entry))
}

fn packable(kind: &Kind) -> bool {
    matches!(kind, Kind::Bool | Kind::Int32 | Kind::Int64)
}

fn is_scalar(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::String | Kind::Bool | Kind::Int32 | Kind::Int64 | Kind::Bytes
    )
}

/// A packed repeated scalar field: the values back to back in one length-delimited field.
fn unpack(field: &Field, bytes: &[u8], items: &mut Vec<Value>) -> Result<(), DecodeError> {
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        items.push(match field.kind {
            Kind::Bool => Value::Bool(r.varint()? != 0),
            Kind::Int32 => Value::from(r.varint()? as i64 as i32),
            _ => Value::from(r.varint()? as i64),
        });
    }
    Ok(())
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// A `{items=1}` wrapper of a repeated string, rendered as the bare array Go's JSON writes.
fn string_list(msg: &Message, field: &Field, buf: &[u8]) -> Result<Value, DecodeError> {
    let mut items = Vec::new();
    let mut r = Reader::new(buf);
    while let Some((tag, value)) = r.next_field()? {
        if tag == 1 {
            items.push(Value::String(utf8(msg, field, len(msg, field, value)?)?));
        }
    }
    Ok(Value::Array(items))
}

fn quantity(buf: &[u8]) -> Result<Value, DecodeError> {
    let mut s = String::new();
    let mut r = Reader::new(buf);
    while let Some((tag, value)) = r.next_field()? {
        if let (1, WireValue::Len(bytes)) = (tag, value) {
            s = String::from_utf8(bytes.to_vec())
                .map_err(|_| DecodeError::Malformed("quantity is not UTF-8".into()))?;
        }
    }
    Ok(Value::String(if s.is_empty() { "0".into() } else { s }))
}

fn int_or_string(buf: &[u8]) -> Result<Value, DecodeError> {
    let (mut ty, mut int_val, mut str_val) = (0u64, 0i32, String::new());
    let mut r = Reader::new(buf);
    while let Some((tag, value)) = r.next_field()? {
        match (tag, value) {
            (1, WireValue::Varint(v)) => ty = v,
            (2, WireValue::Varint(v)) => int_val = v as i64 as i32,
            (3, WireValue::Len(b)) => {
                str_val = String::from_utf8(b.to_vec())
                    .map_err(|_| DecodeError::Malformed("IntOrString is not UTF-8".into()))?
            }
            (1..=3, other) => {
                return Err(DecodeError::Malformed(format!(
                    "IntOrString field {tag} has wire type {:?}",
                    other.wire_type()
                )));
            }
            _ => {}
        }
    }
    Ok(if ty == 1 {
        Value::String(str_val)
    } else {
        Value::from(int_val)
    })
}

/// `metav1.Time` keeps whole seconds (Kubernetes drops the nanos on decode); `MicroTime`
/// keeps microseconds. Both render in UTC; an empty message is Go's zero time (JSON null).
fn time(buf: &[u8], micro: bool) -> Result<Option<Value>, DecodeError> {
    let (mut seconds, mut nanos) = (0i64, 0i32);
    let mut r = Reader::new(buf);
    while let Some((tag, value)) = r.next_field()? {
        match (tag, value) {
            (1, WireValue::Varint(v)) => seconds = v as i64,
            (2, WireValue::Varint(v)) => nanos = v as i64 as i32,
            (1 | 2, other) => {
                return Err(DecodeError::Malformed(format!(
                    "time field {tag} has wire type {:?}",
                    other.wire_type()
                )));
            }
            _ => {}
        }
    }
    const GO_ZERO_TIME: i64 = -62_135_596_800;
    if buf.is_empty() || seconds == GO_ZERO_TIME {
        return Ok(None);
    }
    let nanos = if micro {
        nanos - nanos.rem_euclid(1000)
    } else {
        0
    };
    let ts = jiff::Timestamp::new(seconds, nanos)
        .map_err(|e| DecodeError::Malformed(format!("time out of range: {e}")))?;
    let format = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Ok(Some(Value::String(ts.strftime(format).to_string())))
}

/// `RawExtension` / `FieldsV1`: the raw bytes are JSON; none at all is Go's nil (JSON null).
fn raw_json(msg: &Message, field: &Field, buf: &[u8]) -> Result<Option<Value>, DecodeError> {
    let mut raw: &[u8] = &[];
    let mut r = Reader::new(buf);
    while let Some((tag, value)) = r.next_field()? {
        if tag == 1 {
            raw = len(msg, field, value)?;
        }
    }
    if raw.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(raw).map(Some).map_err(|e| {
        DecodeError::Malformed(format!(
            "{}.{}: embedded JSON is invalid: {e}",
            msg.name, field.json
        ))
    })
}

fn len<'a>(msg: &Message, field: &Field, value: WireValue<'a>) -> Result<&'a [u8], DecodeError> {
    match value {
        WireValue::Len(bytes) => Ok(bytes),
        other => Err(wrong_wire(msg, field, other.wire_type())),
    }
}

fn varint(msg: &Message, field: &Field, value: WireValue<'_>) -> Result<u64, DecodeError> {
    match value {
        WireValue::Varint(v) => Ok(v),
        other => Err(wrong_wire(msg, field, other.wire_type())),
    }
}

fn utf8(msg: &Message, field: &Field, bytes: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        DecodeError::Malformed(format!(
            "{}.{}: string is not valid UTF-8",
            msg.name, field.json
        ))
    })
}

fn wrong_wire(msg: &Message, field: &Field, got: WireType) -> DecodeError {
    DecodeError::Malformed(format!(
        "{}.{} (field {}): unexpected wire type {got:?}",
        msg.name, field.json, field.tag
    ))
}

/// The generated table never pairs these flags with these kinds; answering an error rather
/// than panicking keeps a bad regeneration from taking the server down.
fn unreachable_kind<T>(msg: &Message, field: &Field) -> Result<T, DecodeError> {
    Err(DecodeError::Malformed(format!(
        "{}.{}: field kind {:?} cannot be decoded here",
        msg.name, field.json, field.kind
    )))
}
