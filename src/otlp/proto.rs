//! The protobuf wire format, as much of it as OTLP needs: varints, 64-bit fixed values and
//! doubles, strings and bytes, packed repeated fixed64 and double, and nested messages.
//! Writing the few messages by hand keeps a code generator and its build step out of the
//! build; the tests decode what this writes with the reference OTLP schema.

/// One message being written. Fields holding their type's default (zero, empty) are left
/// out, as proto3 does, except where presence matters (`double_always`).
#[derive(Debug, Default, Clone)]
pub struct Message {
    buf: Vec<u8>,
}

/// The wire types this writer uses.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;
const FIXED32: u8 = 5;

impl Message {
    /// An empty message.
    pub fn new() -> Message {
        Message::default()
    }

    /// An empty message with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Message {
        Message {
            buf: Vec::with_capacity(capacity),
        }
    }

    /// Bytes a length-delimited field `field` of `len` bytes takes, key and length included.
    pub fn field_len(field: u32, len: usize) -> usize {
        varint_len(u64::from(field) << 3 | u64::from(LENGTH_DELIMITED))
            + varint_len(len as u64)
            + len
    }

    /// The key and length of a nested message of `len` bytes, whose fields are written next.
    pub fn head(&mut self, field: u32, len: usize) {
        self.key(field, LENGTH_DELIMITED);
        self.varint(len as u64);
    }

    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    /// An unsigned integer, a bool or an enum (varint).
    pub fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, VARINT);
            self.varint(v);
        }
    }

    /// A signed 64-bit integer (`int64`: two's complement as a varint).
    pub fn int(&mut self, field: u32, v: i64) {
        if v != 0 {
            self.key(field, VARINT);
            self.varint(v as u64);
        }
    }

    /// A `fixed64` (times in nanoseconds, counts).
    pub fn fixed64(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, FIXED64);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A `fixed32` (span flags).
    pub fn fixed32(&mut self, field: u32, v: u32) {
        if v != 0 {
            self.key(field, FIXED32);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A double, written even when zero: for `oneof` values and `optional` fields, where
    /// being present is the point.
    pub fn double_always(&mut self, field: u32, v: f64) {
        self.key(field, FIXED64);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A string.
    pub fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    /// A string given in `parts` (of `len` bytes in all), written without joining them.
    pub fn string_parts(&mut self, field: u32, len: usize, parts: &[&str]) {
        self.key(field, LENGTH_DELIMITED);
        self.varint(len as u64);
        for part in parts {
            self.buf.extend_from_slice(part.as_bytes());
        }
    }

    /// Bytes (trace and span ids).
    pub fn bytes(&mut self, field: u32, b: &[u8]) {
        if !b.is_empty() {
            self.key(field, LENGTH_DELIMITED);
            self.varint(b.len() as u64);
            self.buf.extend_from_slice(b);
        }
    }

    /// A packed `repeated fixed64`.
    pub fn packed_fixed64(&mut self, field: u32, values: &[u64]) {
        if !values.is_empty() {
            self.key(field, LENGTH_DELIMITED);
            self.varint(values.len() as u64 * 8);
            for v in values {
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    /// A packed `repeated double`.
    pub fn packed_double(&mut self, field: u32, values: &[f64]) {
        if !values.is_empty() {
            self.key(field, LENGTH_DELIMITED);
            self.varint(values.len() as u64 * 8);
            for v in values {
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    /// A nested message, written even when empty (an empty message is still present).
    pub fn message(&mut self, field: u32, m: Message) {
        self.nested(field, &m.buf);
    }

    /// A nested message already encoded in `bytes` (a reused scratch buffer).
    pub fn nested(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, LENGTH_DELIMITED);
        self.varint(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    /// Empties the message, keeping its buffer for the next one.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// A `KeyValue` field whose value is a string, written in place: its lengths are known
    /// up front, so no nested message is built and copied.
    pub fn string_kv(&mut self, field: u32, key: &str, value: &str) {
        self.kv_head(field, key, 1 + varint_len(value.len() as u64) + value.len());
        self.key(1, LENGTH_DELIMITED);
        self.varint(value.len() as u64);
        self.buf.extend_from_slice(value.as_bytes());
    }

    /// A `KeyValue` field whose value is an integer, written in place.
    pub fn int_kv(&mut self, field: u32, key: &str, value: i64) {
        self.kv_head(field, key, 1 + varint_len(value as u64));
        self.key(3, VARINT);
        self.varint(value as u64);
    }

    /// A `KeyValue` field whose value is a bool, written in place.
    pub fn bool_kv(&mut self, field: u32, key: &str, value: bool) {
        self.kv_head(field, key, 2);
        self.key(2, VARINT);
        self.varint(u64::from(value));
    }

    /// A `KeyValue` field whose value is a double, written in place.
    pub fn double_kv(&mut self, field: u32, key: &str, value: f64) {
        self.kv_head(field, key, 9);
        self.double_always(4, value);
    }

    /// A `KeyValue` field whose value is an array of strings, written in place.
    pub fn strings_kv(&mut self, field: u32, key: &str, items: &[&str]) {
        // Each item: an `ArrayValue` entry holding an `AnyValue` holding the string.
        let any_len = |item: &str| 1 + varint_len(item.len() as u64) + item.len();
        let array_len: usize = items
            .iter()
            .map(|item| 1 + varint_len(any_len(item) as u64) + any_len(item))
            .sum();
        self.kv_head(field, key, 1 + varint_len(array_len as u64) + array_len);
        self.key(5, LENGTH_DELIMITED);
        self.varint(array_len as u64);
        for item in items {
            self.key(1, LENGTH_DELIMITED);
            self.varint(any_len(item) as u64);
            self.key(1, LENGTH_DELIMITED);
            self.varint(item.len() as u64);
            self.buf.extend_from_slice(item.as_bytes());
        }
    }

    /// The `KeyValue` field's key, length, its key string and the `AnyValue` field's head,
    /// for an `AnyValue` body of `any_len` bytes.
    fn kv_head(&mut self, field: u32, key: &str, any_len: usize) {
        let key_len = 1 + varint_len(key.len() as u64) + key.len();
        let kv_len = key_len + 1 + varint_len(any_len as u64) + any_len;
        self.key(field, LENGTH_DELIMITED);
        self.varint(kv_len as u64);
        self.key(1, LENGTH_DELIMITED);
        self.varint(key.len() as u64);
        self.buf.extend_from_slice(key.as_bytes());
        self.key(2, LENGTH_DELIMITED);
        self.varint(any_len as u64);
    }
}

/// Bytes a varint of `v` takes.
fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The nested encoding, message inside message, as a reference for the in-place
    // writers the exporters use.

    /// `opentelemetry.proto.common.v1.KeyValue`: `key` and an `AnyValue` holding `any`.
    fn key_value(key: &str, any: Message) -> Message {
        let mut kv = Message::new();
        kv.string(1, key);
        kv.message(2, any);
        kv
    }

    /// `KeyValue` with an array of strings.
    fn strings_attribute(key: &str, items: &[&str]) -> Message {
        let mut array = Message::new();
        for item in items {
            let mut any = Message::new();
            any.key(1, LENGTH_DELIMITED);
            any.varint(item.len() as u64);
            any.buf.extend_from_slice(item.as_bytes());
            array.message(1, any);
        }
        let mut any = Message::new();
        any.message(5, array);
        key_value(key, any)
    }

    /// `KeyValue` with a string value (present even when empty).
    fn string_attribute(key: &str, value: &str) -> Message {
        let mut any = Message::new();
        any.key(1, LENGTH_DELIMITED);
        any.varint(value.len() as u64);
        any.buf.extend_from_slice(value.as_bytes());
        key_value(key, any)
    }

    /// `KeyValue` with an integer value.
    fn int_attribute(key: &str, value: i64) -> Message {
        let mut any = Message::new();
        any.key(3, VARINT);
        any.varint(value as u64);
        key_value(key, any)
    }

    /// `KeyValue` with a bool value.
    fn bool_attribute(key: &str, value: bool) -> Message {
        let mut any = Message::new();
        any.key(2, VARINT);
        any.varint(u64::from(value));
        key_value(key, any)
    }

    /// `KeyValue` with a double value.
    fn double_attribute(key: &str, value: f64) -> Message {
        let mut any = Message::new();
        any.double_always(4, value);
        key_value(key, any)
    }

    #[test]
    fn varints_match_the_specification_examples() {
        // The protobuf encoding guide's examples: 1 is 0x01, 150 is 0x96 0x01.
        let mut m = Message::new();
        m.uint(1, 150);
        assert_eq!(m.into_bytes(), vec![0x08, 0x96, 0x01]);
        let mut m = Message::new();
        m.int(1, -1);
        assert_eq!(
            m.into_bytes().len(),
            1 + 10,
            "a negative int64 takes ten bytes"
        );
    }

    #[test]
    fn defaults_are_left_out_but_present_values_are_not() {
        let mut m = Message::new();
        m.uint(1, 0);
        m.fixed64(2, 0);
        m.string(3, "");
        assert!(m.is_empty());
        m.double_always(4, 0.0);
        assert_eq!(m.len(), 9);
        let kv = string_attribute("k", "");
        // key "k" (3 bytes) and an AnyValue holding an empty string (2 + 2 bytes).
        assert_eq!(
            kv.into_bytes(),
            vec![0x0a, 0x01, b'k', 0x12, 0x02, 0x0a, 0x00]
        );
    }

    #[test]
    fn key_values_written_in_place_equal_the_nested_ones() {
        for value in ["", "chat", &"x".repeat(200)] {
            let mut direct = Message::new();
            direct.string_kv(9, "gen_ai.request.model", value);
            let mut nested = Message::new();
            nested.message(9, string_attribute("gen_ai.request.model", value));
            assert_eq!(direct.into_bytes(), nested.into_bytes(), "{value:?}");
        }
        for value in [0, 1, 300, -5, i64::MAX] {
            let (mut direct, mut nested) = (Message::new(), Message::new());
            direct.int_kv(9, "n", value);
            nested.message(9, int_attribute("n", value));
            assert_eq!(direct.into_bytes(), nested.into_bytes(), "{value}");
        }
        let (mut direct, mut nested) = (Message::new(), Message::new());
        direct.bool_kv(9, "b", true);
        direct.double_kv(9, "d", 0.25);
        nested.message(9, bool_attribute("b", true));
        nested.message(9, double_attribute("d", 0.25));
        assert_eq!(direct.into_bytes(), nested.into_bytes());
        let long = "y".repeat(300);
        for items in [vec![], vec!["stop"], vec!["", long.as_str()]] {
            let (mut direct, mut nested) = (Message::new(), Message::new());
            direct.strings_kv(9, "gen_ai.response.finish_reasons", &items);
            nested.message(
                9,
                strings_attribute("gen_ai.response.finish_reasons", &items),
            );
            assert_eq!(direct.into_bytes(), nested.into_bytes(), "{items:?}");
        }
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(u64::MAX), 10);
    }

    #[test]
    fn packed_fields_carry_their_byte_length() {
        let mut m = Message::new();
        m.packed_fixed64(6, &[1, 2]);
        let bytes = m.into_bytes();
        assert_eq!(&bytes[..2], &[6 << 3 | 2, 16]);
        assert_eq!(bytes.len(), 2 + 16);
    }
}
