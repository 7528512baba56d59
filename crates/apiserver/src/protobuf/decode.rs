//! The schema-driven decoder: protobuf bytes in, `serde_json` values out.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use super::schema::{self, Field, Message, Shape, Ty};
use super::wire::{Reader, WIRE_LEN, WIRE_VARINT, WireError, WireValue};
use super::{CONTENT_TYPE, MAGIC, MAX_DEPTH, ProtobufError};

/// 0001-01-01T00:00:00Z, Go's zero `time.Time`, which `metav1.Time` renders
/// as `null`.
const ZERO_TIME_UNIX: i64 = -62_135_596_800;
/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the years RFC 3339 can
/// write with four digits.
const MIN_UNIX: i64 = -62_167_219_200;
const MAX_UNIX: i64 = 253_402_300_799;

/// What the envelope held, decoded.
pub(crate) struct Envelope {
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) object: Map<String, Value>,
}

/// Decoding state: the JSON path of the field being decoded (for errors and
/// unknown fields) and the unknown fields met so far.
#[derive(Default)]
pub(crate) struct Decoder {
    path: String,
    pub(crate) unknown: Vec<String>,
}

impl Decoder {
    fn path(&self) -> String {
        if self.path.is_empty() { "<root>".to_owned() } else { self.path.clone() }
    }

    fn push_member(&mut self, name: &str) -> usize {
        let mark = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(name);
        mark
    }

    fn push_index(&mut self, index: usize) -> usize {
        let mark = self.path.len();
        let _ = write!(self.path, "[{index}]");
        mark
    }

    fn push_key(&mut self, key: &str) -> usize {
        let mark = self.path.len();
        let _ = write!(self.path, "[{key}]");
        mark
    }

    fn pop(&mut self, mark: usize) {
        self.path.truncate(mark);
    }

    fn unknown_field(&mut self, number: u32) {
        let mark = self.push_member(&format!("#{number}"));
        self.unknown.push(self.path.clone());
        self.pop(mark);
    }

    fn wire_error(&self, error: WireError) -> ProtobufError {
        let path = self.path();
        match error {
            WireError::Truncated => ProtobufError::Truncated { path },
            WireError::VarintOverflow => ProtobufError::VarintOverflow { path },
            WireError::InvalidTag(tag) => ProtobufError::InvalidTag { path, tag },
            WireError::UnsupportedWireType(wire_type) => ProtobufError::UnsupportedWireType { path, wire_type },
        }
    }

    fn invalid(&self, reason: impl Into<String>) -> ProtobufError {
        ProtobufError::InvalidValue { path: self.path(), reason: reason.into() }
    }

    fn next<'a>(&self, reader: &mut Reader<'a>) -> Result<Option<(u32, WireValue<'a>)>, ProtobufError> {
        reader.next_field().map_err(|e| self.wire_error(e))
    }

    fn mismatch(&self, expected: u8, value: WireValue<'_>) -> ProtobufError {
        ProtobufError::WireTypeMismatch { path: self.path(), expected, found: value.wire_type() }
    }

    fn bytes<'a>(&self, value: WireValue<'a>) -> Result<&'a [u8], ProtobufError> {
        match value {
            WireValue::Len(bytes) => Ok(bytes),
            other => Err(self.mismatch(WIRE_LEN, other)),
        }
    }

    fn varint(&self, value: WireValue<'_>) -> Result<u64, ProtobufError> {
        match value {
            WireValue::Varint(v) => Ok(v),
            other => Err(self.mismatch(WIRE_VARINT, other)),
        }
    }

    fn string(&self, value: WireValue<'_>) -> Result<String, ProtobufError> {
        let bytes = self.bytes(value)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(ProtobufError::InvalidUtf8 { path: self.path() }),
        }
    }

    fn too_deep(&self, depth: usize) -> Result<(), ProtobufError> {
        if depth > MAX_DEPTH {
            return Err(ProtobufError::TooDeep { path: self.path(), max: MAX_DEPTH });
        }
        Ok(())
    }

    /// `k8s\0` + `runtime.Unknown`, with the raw object decoded by the schema
    /// its `apiVersion`/`kind` select. `defaults` fill an empty `apiVersion`
    /// or `kind`, as upstream fills them from the request's endpoint.
    pub(crate) fn envelope(
        &mut self,
        body: &[u8],
        defaults: Option<(&str, &str)>,
        depth: usize,
    ) -> Result<Envelope, ProtobufError> {
        self.too_deep(depth)?;
        let Some(rest) = body.strip_prefix(MAGIC) else {
            return Err(ProtobufError::MissingMagic);
        };
        let mut api_version = String::new();
        let mut kind = String::new();
        let mut raw: Option<&[u8]> = None;
        let mut content_encoding = String::new();
        let mut content_type = String::new();
        let mut reader = Reader::new(rest);
        while let Some((number, value)) = self.next(&mut reader)? {
            match number {
                1 => {
                    let mut type_meta = Reader::new(self.bytes(value)?);
                    while let Some((number, value)) = self.next(&mut type_meta)? {
                        match number {
                            1 => api_version = self.string(value)?,
                            2 => kind = self.string(value)?,
                            _ => {}
                        }
                    }
                }
                2 => raw = Some(self.bytes(value)?),
                3 => content_encoding = self.string(value)?,
                4 => content_type = self.string(value)?,
                // Upstream's decoder ignores unknown envelope fields too.
                _ => {}
            }
        }
        if !content_encoding.is_empty() {
            return Err(ProtobufError::UnsupportedContentEncoding(content_encoding));
        }
        if !content_type.is_empty() && content_type != CONTENT_TYPE {
            return Err(ProtobufError::UnsupportedContentType(content_type));
        }
        if let Some((default_api_version, default_kind)) = defaults {
            if api_version.is_empty() {
                default_api_version.clone_into(&mut api_version);
            }
            if kind.is_empty() {
                default_kind.clone_into(&mut kind);
            }
        }
        let Some(message) = schema::lookup(&api_version, &kind) else {
            return Err(ProtobufError::UnknownKind { api_version, kind });
        };
        let mut object = Map::new();
        if let Some(raw) = raw {
            self.message(raw, message, &mut object, depth + 1)?;
        }
        object.insert("apiVersion".to_owned(), Value::String(api_version.clone()));
        object.insert("kind".to_owned(), Value::String(kind.clone()));
        Ok(Envelope { api_version, kind, object })
    }

    /// Decodes `buf` as `message` into `out`, merging with what `out` holds
    /// (protobuf merges a message field that occurs twice).
    pub(crate) fn message(
        &mut self,
        buf: &[u8],
        message: &'static Message,
        out: &mut Map<String, Value>,
        depth: usize,
    ) -> Result<(), ProtobufError> {
        self.too_deep(depth)?;
        let mut reader = Reader::new(buf);
        while let Some((number, value)) = self.next(&mut reader)? {
            match message.field(number) {
                Some(field) => self.field(field, value, out, depth)?,
                None => self.unknown_field(number),
            }
        }
        Ok(())
    }

    fn field(
        &mut self,
        field: &Field,
        value: WireValue<'_>,
        out: &mut Map<String, Value>,
        depth: usize,
    ) -> Result<(), ProtobufError> {
        match (field.shape, field.ty) {
            (Shape::Inline, Ty::Msg(message)) => {
                let bytes = self.bytes(value)?;
                self.message(bytes, message, out, depth + 1)
            }
            // `inline` is only ever built with a message type.
            (Shape::Inline, _) => Ok(()),
            (Shape::Single { .. }, Ty::Msg(message)) => {
                let mark = self.push_member(field.json);
                let bytes = self.bytes(value)?;
                let slot = out.entry(field.json).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(object) = slot {
                    self.message(bytes, message, object, depth + 1)?;
                }
                self.pop(mark);
                Ok(())
            }
            (Shape::Single { omit_zero }, ty) => {
                let mark = self.push_member(field.json);
                let decoded = self.value(ty, value, depth)?;
                self.pop(mark);
                if omit_zero && is_zero(&decoded) {
                    out.remove(field.json);
                } else {
                    out.insert(field.json.to_owned(), decoded);
                }
                Ok(())
            }
            (Shape::List, ty) => self.list_element(field.json, ty, value, out, depth),
            (Shape::Map, ty) => self.map_entry(field.json, ty, value, out, depth),
        }
    }

    fn list_element(
        &mut self,
        name: &str,
        ty: Ty,
        value: WireValue<'_>,
        out: &mut Map<String, Value>,
        depth: usize,
    ) -> Result<(), ProtobufError> {
        let slot = out.entry(name).or_insert_with(|| Value::Array(Vec::new()));
        if !slot.is_array() {
            *slot = Value::Array(Vec::new());
        }
        let Value::Array(items) = slot else {
            return Ok(());
        };
        let mark = self.push_member(name);
        match (ty, value) {
            // A packed run of varints.
            (Ty::I32 | Ty::I64 | Ty::Bool, WireValue::Len(bytes)) => {
                let mut reader = Reader::new(bytes);
                while !reader.is_empty() {
                    let inner = self.push_index(items.len());
                    let v = reader.varint().map_err(|e| self.wire_error(e))?;
                    self.pop(inner);
                    items.push(varint_value(ty, v));
                }
            }
            (ty, value) => {
                let inner = self.push_index(items.len());
                let decoded = self.value(ty, value, depth)?;
                self.pop(inner);
                items.push(decoded);
            }
        }
        self.pop(mark);
        Ok(())
    }

    fn map_entry(
        &mut self,
        name: &str,
        ty: Ty,
        value: WireValue<'_>,
        out: &mut Map<String, Value>,
        depth: usize,
    ) -> Result<(), ProtobufError> {
        let mark = self.push_member(name);
        self.too_deep(depth + 1)?;
        let mut reader = Reader::new(self.bytes(value)?);
        let mut key = String::new();
        let mut raw_value = None;
        while let Some((number, value)) = self.next(&mut reader)? {
            match number {
                1 => key = self.string(value)?,
                2 => raw_value = Some(value),
                other => self.unknown_field(other),
            }
        }
        let inner = self.push_key(&key);
        let decoded = match raw_value {
            Some(value) => self.value(ty, value, depth + 1)?,
            None => zero_value(ty),
        };
        self.pop(inner);
        self.pop(mark);
        let slot = out.entry(name).or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        if let Value::Object(entries) = slot {
            entries.insert(key, decoded);
        }
        Ok(())
    }

    /// One value of type `ty`, standing alone (a list element, a map value,
    /// a scalar field).
    fn value(&mut self, ty: Ty, value: WireValue<'_>, depth: usize) -> Result<Value, ProtobufError> {
        Ok(match ty {
            Ty::Str => Value::String(self.string(value)?),
            Ty::Bytes => Value::String(BASE64.encode(self.bytes(value)?)),
            Ty::I32 | Ty::I64 | Ty::Bool => varint_value(ty, self.varint(value)?),
            Ty::Msg(message) => {
                let mut object = Map::new();
                self.message(self.bytes(value)?, message, &mut object, depth + 1)?;
                Value::Object(object)
            }
            Ty::Time => self.time(self.bytes(value)?, false, depth + 1)?,
            Ty::MicroTime => self.time(self.bytes(value)?, true, depth + 1)?,
            Ty::IntOrString => self.int_or_string(self.bytes(value)?, depth + 1)?,
            Ty::Quantity => self.quantity(self.bytes(value)?, depth + 1)?,
            Ty::RawExtension => self.raw_extension(self.bytes(value)?, depth + 1)?,
            Ty::FieldsV1 => self.fields_v1(self.bytes(value)?, depth + 1)?,
            Ty::StrList => self.string_list(self.bytes(value)?, depth + 1)?,
        })
    }

    /// `meta.v1.Time` / `MicroTime`: `{1: int64 seconds, 2: int32 nanos}`.
    /// Like upstream, `Time` drops the nanoseconds and `MicroTime` truncates
    /// them to microseconds; an empty message is the zero time, `null`.
    fn time(&mut self, buf: &[u8], micro: bool, depth: usize) -> Result<Value, ProtobufError> {
        self.too_deep(depth)?;
        if buf.is_empty() {
            return Ok(Value::Null);
        }
        let mut seconds = 0i64;
        let mut nanos = 0i32;
        let mut reader = Reader::new(buf);
        while let Some((number, value)) = self.next(&mut reader)? {
            match number {
                1 => seconds = self.varint(value)? as i64,
                2 => nanos = self.varint(value)? as i32,
                other => self.unknown_field(other),
            }
        }
        let (seconds, micros) = if micro {
            let total = i128::from(seconds) * 1_000_000 + i128::from(nanos / 1_000);
            let seconds =
                i64::try_from(total.div_euclid(1_000_000)).map_err(|_| self.invalid("timestamp out of range"))?;
            // rem_euclid of 1_000_000 always fits.
            let micros = u32::try_from(total.rem_euclid(1_000_000)).unwrap_or(0);
            (seconds, Some(micros))
        } else {
            (seconds, None)
        };
        if seconds == ZERO_TIME_UNIX && micros.unwrap_or(0) == 0 {
            return Ok(Value::Null);
        }
        rfc3339(seconds, micros)
            .map(Value::String)
            .ok_or_else(|| self.invalid(format!("timestamp {seconds} is outside years 0 to 9999")))
    }

    /// `intstr.IntOrString`: `{1: int64 type, 2: int32 intVal, 3: string strVal}`.
    fn int_or_string(&mut self, buf: &[u8], depth: usize) -> Result<Value, ProtobufError> {
        self.too_deep(depth)?;
        let mut kind = 0i64;
        let mut int_val = 0i32;
        let mut str_val = String::new();
        let mut reader = Reader::new(buf);
        while let Some((number, value)) = self.next(&mut reader)? {
            match number {
                1 => kind = self.varint(value)? as i64,
                2 => int_val = self.varint(value)? as i32,
                3 => str_val = self.string(value)?,
                other => self.unknown_field(other),
            }
        }
        match kind {
            0 => Ok(Value::from(int_val)),
            1 => Ok(Value::String(str_val)),
            other => Err(self.invalid(format!("IntOrString type {other} is neither 0 (int) nor 1 (string)"))),
        }
    }

    /// `resource.Quantity`: `{1: string}`.
    fn quantity(&mut self, buf: &[u8], depth: usize) -> Result<Value, ProtobufError> {
        self.too_deep(depth)?;
        let mut quantity = None;
        let mut reader = Reader::new(buf);
        while let Some((number, value)) = self.next(&mut reader)? {
            match number {
                1 => quantity = Some(self.string(value)?),
                other => self.unknown_field(other),
            }
        }
        Ok(Value::String(quantity.unwrap_or_else(|| "0".to_owned())))
    }

    /// The `bytes` field 1 of `RawExtension` and `FieldsV1`.
    fn raw_bytes<'a>(&mut self, buf: &'a [u8], depth: usize) -> Result<&'a [u8], ProtobufError> {
        self.too_deep(depth)?;
        let mut raw: &[u8] = &[];
        let mut reader = Reader::new(buf);
        while let Some((number, value)) = self.next(&mut reader)? {
            match number {
                1 => raw = self.bytes(value)?,
                other => self.unknown_field(other),
            }
        }
        Ok(raw)
    }

    fn json(&self, raw: &[u8]) -> Result<Value, ProtobufError> {
        if raw.is_empty() {
            return Ok(Value::Null);
        }
        // serde_json bounds its own recursion (128 levels).
        serde_json::from_slice(raw).map_err(|e| self.invalid(format!("embedded JSON: {e}")))
    }

    /// `runtime.RawExtension`: embedded JSON, or an embedded protobuf
    /// envelope, decoded in turn.
    fn raw_extension(&mut self, buf: &[u8], depth: usize) -> Result<Value, ProtobufError> {
        let raw = self.raw_bytes(buf, depth)?;
        if raw.starts_with(MAGIC) {
            let envelope = self.envelope(raw, None, depth + 1)?;
            return Ok(Value::Object(envelope.object));
        }
        self.json(raw)
    }

    /// `meta.v1.FieldsV1`: embedded JSON.
    fn fields_v1(&mut self, buf: &[u8], depth: usize) -> Result<Value, ProtobufError> {
        let raw = self.raw_bytes(buf, depth)?;
        self.json(raw)
    }

    /// `{repeated string items = 1}` → array; no items → `null`, as Go
    /// renders the nil slice.
    fn string_list(&mut self, buf: &[u8], depth: usize) -> Result<Value, ProtobufError> {
        self.too_deep(depth)?;
        let mut items = Vec::new();
        let mut reader = Reader::new(buf);
        while let Some((number, value)) = self.next(&mut reader)? {
            match number {
                1 => items.push(Value::String(self.string(value)?)),
                other => self.unknown_field(other),
            }
        }
        Ok(if items.is_empty() { Value::Null } else { Value::Array(items) })
    }
}

/// Truncates a varint the way Go's generated code does for each type.
fn varint_value(ty: Ty, v: u64) -> Value {
    match ty {
        Ty::Bool => Value::Bool(v != 0),
        Ty::I32 => Value::from(v as i32),
        _ => Value::from(v as i64),
    }
}

/// What Go's `encoding/json` `omitempty` considers empty, for scalars.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    }
}

/// A map value absent from its entry: Go's zero value for the type.
fn zero_value(ty: Ty) -> Value {
    match ty {
        Ty::Str | Ty::Bytes => Value::String(String::new()),
        Ty::I32 | Ty::I64 | Ty::IntOrString => Value::from(0),
        Ty::Bool => Value::Bool(false),
        Ty::Msg(_) => Value::Object(Map::new()),
        Ty::Quantity => Value::String("0".to_owned()),
        Ty::Time | Ty::MicroTime | Ty::RawExtension | Ty::FieldsV1 | Ty::StrList => Value::Null,
    }
}

/// RFC 3339 in UTC, as Go formats `time.RFC3339` (no fraction) or
/// `metav1.RFC3339Micro` (6 digits). `None` outside years 0000-9999.
pub(crate) fn rfc3339(seconds: i64, micros: Option<u32>) -> Option<String> {
    if !(MIN_UNIX..=MAX_UNIX).contains(&seconds) {
        return None;
    }
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let second_of_day = seconds.rem_euclid(86_400);
    let (hour, minute, second) = (second_of_day / 3_600, second_of_day % 3_600 / 60, second_of_day % 60);
    let date = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
    Some(match micros {
        None => format!("{date}Z"),
        Some(micros) => format!("{date}.{micros:06}Z"),
    })
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
