//! Kubernetes resource quantities (`500m`, `128Mi`, `1.5`, `2e3`) turned into integers the
//! way `resource.Quantity` does: `MilliValue` and `Value`, both rounded up.

use std::fmt;

/// A quantity string that could not be parsed or does not fit in an `i64`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantityError(pub String);

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid quantity {:?}", self.0)
    }
}

impl std::error::Error for QuantityError {}

/// `digits × 10^scale10 × 2^pow2`, with the sign kept apart.
struct Parsed {
    negative: bool,
    digits: i128,
    scale10: i32,
    pow2: u32,
}

fn parse(s: &str) -> Result<Parsed, QuantityError> {
    let err = || QuantityError(s.to_string());
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(err());
    }
    let mut digits: i128 = 0;
    let mut scale10: i32 = 0;
    let mut after_point = false;
    for c in number.chars() {
        if c == '.' {
            after_point = true;
            continue;
        }
        let d = i128::from(c.to_digit(10).ok_or_else(err)?);
        // Digits beyond what an i128 can hold only matter for absurd inputs; refuse them.
        digits = digits.checked_mul(10).and_then(|v| v.checked_add(d)).ok_or_else(err)?;
        if after_point {
            scale10 -= 1;
        }
    }
    let (extra10, pow2) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        exp if exp.starts_with('e') || exp.starts_with('E') => {
            let e: i32 = exp[1..].parse().map_err(|_| err())?;
            if !(-40..=40).contains(&e) {
                return Err(err());
            }
            (e, 0)
        }
        _ => return Err(err()),
    };
    Ok(Parsed { negative, digits, scale10: scale10 + extra10, pow2 })
}

/// `value × 10^shift`, rounded up (away from zero for positives, as Kubernetes does).
fn scaled_ceil(s: &str, shift: i32) -> Result<i64, QuantityError> {
    let err = || QuantityError(s.to_string());
    let p = parse(s)?;
    let base = p.digits.checked_mul(1i128.checked_shl(p.pow2).ok_or_else(err)?).ok_or_else(err)?;
    let scale = p.scale10 + shift;
    let magnitude = if scale >= 0 {
        base.checked_mul(10i128.checked_pow(scale.unsigned_abs()).ok_or_else(err)?).ok_or_else(err)?
    } else {
        let div = 10i128.checked_pow(scale.unsigned_abs()).ok_or_else(err)?;
        // Positive quantities round up; negative ones round towards zero, which is also "up".
        if p.negative { base / div } else { (base + div - 1) / div }
    };
    let signed = if p.negative { -magnitude } else { magnitude };
    i64::try_from(signed).map_err(|_| err())
}

/// The quantity in thousandths, rounded up: `500m` → 500, `1` → 1000, `0.1` → 100.
pub fn milli_value(s: &str) -> Result<i64, QuantityError> {
    scaled_ceil(s.trim(), 3)
}

/// The quantity in units, rounded up: `128Mi` → 134217728, `1k` → 1000, `100m` → 1.
pub fn value(s: &str) -> Result<i64, QuantityError> {
    scaled_ceil(s.trim(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_forms() {
        for (s, milli) in [
            ("500m", 500),
            ("1", 1000),
            ("0.5", 500),
            ("2.25", 2250),
            (".1", 100),
            ("1e3", 1_000_000),
            ("100u", 1),
            ("1n", 1),
            ("0", 0),
            ("+3", 3000),
        ] {
            assert_eq!(milli_value(s), Ok(milli), "{s}");
        }
    }

    #[test]
    fn memory_forms() {
        for (s, bytes) in [
            ("128Mi", 134_217_728),
            ("1Gi", 1_073_741_824),
            ("1G", 1_000_000_000),
            ("64M", 64_000_000),
            ("1k", 1000),
            ("1Ki", 1024),
            ("1.5Gi", 1_610_612_736),
            ("100m", 1),
            ("12345", 12345),
            ("1E", 1_000_000_000_000_000_000),
        ] {
            assert_eq!(value(s), Ok(bytes), "{s}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for s in
            ["", "m", "1x", "1.2.3", "Mi", "--1", "1e", "1e999", "8Ei", "99999999999999999999999999999999999999999"]
        {
            assert!(value(s).is_err(), "{s}");
        }
    }
}
