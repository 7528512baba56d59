//! FNV-1a hashing, for pod-template hashes and pod slot names.

use serde_json::Value;

const FNV32_OFFSET: u32 = 0x811c_9dc5;
const FNV32_PRIME: u32 = 0x0100_0193;
const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV64_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 32-bit FNV-1a, Go's `hash/fnv.New32a`.
pub struct Fnv32(u32);

impl Default for Fnv32 {
    fn default() -> Self {
        Fnv32(FNV32_OFFSET)
    }
}

impl Fnv32 {
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(FNV32_PRIME);
        }
    }

    pub fn finish(&self) -> u32 {
        self.0
    }
}

/// 64-bit FNV-1a.
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(FNV64_OFFSET)
    }
}

impl Fnv64 {
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(FNV64_PRIME);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// Writes `v` as JSON with object keys sorted, so that equal values hash equally whatever
/// order their maps were built in.
pub fn write_canonical(h: &mut Fnv32, v: &Value) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            h.write(b"{");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    h.write(b",");
                }
                h.write(Value::String(k.clone()).to_string().as_bytes());
                h.write(b":");
                write_canonical(h, &map[k]);
            }
            h.write(b"}");
        }
        Value::Array(items) => {
            h.write(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    h.write(b",");
                }
                write_canonical(h, item);
            }
            h.write(b"]");
        }
        other => h.write(other.to_string().as_bytes()),
    }
}

/// Upstream's `rand.SafeEncodeString`: each byte mapped into an alphabet without vowels,
/// so that hashes never spell words.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes().map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fnv_matches_reference_vectors() {
        let mut h = Fnv32::default();
        h.write(b"a");
        assert_eq!(h.finish(), 0xe40c_292c);
        let mut h = Fnv64::default();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn canonical_json_ignores_key_order() {
        let (mut a, mut b) = (Fnv32::default(), Fnv32::default());
        write_canonical(&mut a, &json!({"x": 1, "y": [1, {"b": 2, "a": 1}]}));
        write_canonical(&mut b, &json!({"y": [1, {"a": 1, "b": 2}], "x": 1}));
        assert_eq!(a.finish(), b.finish());
    }

    #[test]
    fn safe_encoding_uses_upstreams_alphabet() {
        // Upstream maps '0' (48) to alphanums[48 % 27] = '4' and '9' (57) to alphanums[3] = 'f'.
        assert_eq!(safe_encode("09"), "4f");
        assert_eq!(safe_encode("1234567890").len(), 10);
    }
}
