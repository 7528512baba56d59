//! Resource quantities (`100m`, `1.5Gi`, `2e3`) parsed into the integers the scheduler adds
//! and compares.
//!
//! Upstream compares CPU in millicores and everything else in whole units, rounding up, so a
//! request of `0.5m` CPU counts as `1m` and `1.5` bytes as `2`. The same rounding is kept
//! here, so a pod that fits upstream fits here and the other way round.

/// A quantity that does not follow the Kubernetes quantity grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}")]
pub struct InvalidQuantity(pub String);

/// Parses `s` as milli-units (`1` → `1000`, `100m` → `100`), rounding up.
pub fn parse_milli(s: &str) -> Result<i64, InvalidQuantity> {
    parse_scaled(s, 3)
}

/// Parses `s` as whole units (`1Ki` → `1024`, `1500m` → `2`), rounding up.
pub fn parse_units(s: &str) -> Result<i64, InvalidQuantity> {
    parse_scaled(s, 0)
}

/// Parses `s` and returns its value times `10^scale`, rounded up and saturated to `i64`.
fn parse_scaled(s: &str, scale: i32) -> Result<i64, InvalidQuantity> {
    let invalid = || InvalidQuantity(s.to_owned());
    let trimmed = s.trim();
    let (negative, unsigned) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let number_len = unsigned.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
    let (number, suffix) = unsigned.split_at(number_len);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
        return Err(invalid());
    }
    let (binary_exp, decimal_exp) = suffix_exponents(suffix).ok_or_else(invalid)?;

    // The value is mantissa * 10^(decimal_exp + scale - digits after the point) * 2^binary_exp.
    // Leading zeros are dropped first so long zero-padded inputs do not overflow the mantissa.
    let digits: String = format!("{int_part}{frac_part}").trim_start_matches('0').to_owned();
    let mut mantissa: i128 = 0;
    let mut exp10 = decimal_exp + scale - i32::try_from(frac_part.len()).map_err(|_| invalid())?;
    for (i, d) in digits.bytes().enumerate() {
        if mantissa > i128::MAX / 100 {
            // Further digits cannot change the saturated result except through the
            // exponent: treat them as a power of ten instead.
            exp10 += i32::try_from(digits.len() - i).map_err(|_| invalid())?;
            break;
        }
        mantissa = mantissa * 10 + i128::from(d - b'0');
    }
    let mut value = mantissa;
    for _ in 0..binary_exp {
        value = value.saturating_mul(2);
    }
    if exp10 >= 0 {
        for _ in 0..exp10 {
            value = value.saturating_mul(10);
            if value == i128::MAX {
                break;
            }
        }
    } else {
        let mut divisor: i128 = 1;
        for _ in 0..(-exp10) {
            divisor = divisor.saturating_mul(10);
            if divisor == i128::MAX {
                break;
            }
        }
        // Rounds away from zero, as upstream's MilliValue and Value do for positive numbers.
        value = value / divisor + i128::from(value % divisor != 0);
    }
    let value = if negative { -value } else { value };
    Ok(i64::try_from(value).unwrap_or(if negative { i64::MIN } else { i64::MAX }))
}

/// The binary and decimal exponents of a suffix, or `None` if it is not one.
fn suffix_exponents(suffix: &str) -> Option<(u32, i32)> {
    let binary = |e| Some((e, 0));
    let decimal = |e| Some((0, e));
    match suffix {
        "" => decimal(0),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        _ => {
            let rest = suffix.strip_prefix(['e', 'E'])?;
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Exponents beyond this range saturate anyway; clamping keeps the loops short.
            let exp: i64 = rest.parse().ok()?;
            decimal(i32::try_from(exp.clamp(-100, 100)).ok()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn milli(s: &str) -> i64 {
        parse_milli(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[track_caller]
    fn units(s: &str) -> i64 {
        parse_units(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn cpu_in_millicores() {
        assert_eq!(milli("1"), 1000);
        assert_eq!(milli("100m"), 100);
        assert_eq!(milli("0.5"), 500);
        assert_eq!(milli(".5"), 500);
        assert_eq!(milli("2."), 2000);
        assert_eq!(milli("1.5m"), 2, "rounds up");
        assert_eq!(milli("1n"), 1, "rounds up");
        assert_eq!(milli("250000u"), 250);
        assert_eq!(milli("0"), 0);
        assert_eq!(milli("+3"), 3000);
    }

    #[test]
    fn memory_in_bytes() {
        assert_eq!(units("1Ki"), 1024);
        assert_eq!(units("64Mi"), 64 << 20);
        assert_eq!(units("1.5Gi"), 3 << 29);
        assert_eq!(units("1G"), 1_000_000_000);
        assert_eq!(units("128974848"), 128_974_848);
        assert_eq!(units("129e6"), 129_000_000);
        assert_eq!(units("12E+1"), 120);
        assert_eq!(units("1500m"), 2, "rounds up");
        assert_eq!(units("110"), 110);
        assert_eq!(units("007"), 7);
    }

    #[test]
    fn huge_values_saturate() {
        assert_eq!(units("8Ei"), i64::MAX);
        assert_eq!(milli("1E"), i64::MAX);
        assert_eq!(units("1e99"), i64::MAX);
        assert_eq!(units("99999999999999999999999999999999999999999999"), i64::MAX);
        assert_eq!(units("-1e99"), i64::MIN);
        assert_eq!(units("1e-99"), 1, "a positive value rounds up to one");
    }

    #[test]
    fn negative_values() {
        assert_eq!(milli("-1"), -1000);
        assert_eq!(units("-1Ki"), -1024);
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in ["", "m", "1x", "1.2.3", "Ki", "1 Ki", "1e", "1e+", "1KiB", "--1", "abc", "1ee2"] {
            assert!(parse_units(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
