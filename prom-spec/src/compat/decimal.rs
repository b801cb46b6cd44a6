//! Exact decimal numbers, so bounds and `multipleOf` never suffer binary float rounding
//! (0.3 is a multiple of 0.1 here, unlike in `f64`).

use std::cmp::Ordering;
use std::fmt;

/// The exact value `mant × 10^exp`, normalised so equal values are equal structs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Dec {
    mant: i128,
    exp: i32,
}

fn pow10(k: u32) -> Option<i128> {
    10i128.checked_pow(k)
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

impl Dec {
    /// Zero.
    pub(super) const ZERO: Dec = Dec { mant: 0, exp: 0 };
    /// One.
    pub(super) const ONE: Dec = Dec { mant: 1, exp: 0 };

    pub(super) fn new(mut mant: i128, mut exp: i32) -> Dec {
        if mant == 0 {
            return Dec::ZERO;
        }
        while mant % 10 == 0 {
            match exp.checked_add(1) {
                Some(e) => {
                    mant /= 10;
                    exp = e;
                }
                None => break,
            }
        }
        Dec { mant, exp }
    }

    pub(super) fn from_int(i: i128) -> Dec {
        Dec::new(i, 0)
    }

    /// Reads a JSON number exactly (integers directly, floats via their shortest decimal form).
    pub(super) fn from_number(n: &serde_json::Number) -> Option<Dec> {
        if let Some(i) = n.as_i64() {
            return Some(Dec::from_int(i128::from(i)));
        }
        if let Some(u) = n.as_u64() {
            return Some(Dec::from_int(i128::from(u)));
        }
        Dec::parse(&n.to_string())
    }

    /// Parses decimal/scientific notation such as `-12.5e-3`.
    pub(super) fn parse(s: &str) -> Option<Dec> {
        let (neg, rest) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (num, exp_part) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let mut exp: i32 = match exp_part {
            Some(e) => e.parse().ok()?,
            None => 0,
        };
        let (int_part, frac_part) = match num.find('.') {
            Some(i) => (&num[..i], &num[i + 1..]),
            None => (num, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let mut mant: i128 = 0;
        for c in int_part.chars().chain(frac_part.chars()) {
            let d = c.to_digit(10)?;
            match mant.checked_mul(10).and_then(|m| m.checked_add(i128::from(d))) {
                Some(m) => mant = m,
                // Beyond 38 significant digits: keep the magnitude by shifting the exponent.
                None => exp = exp.checked_add(1)?,
            }
        }
        exp = exp.checked_sub(i32::try_from(frac_part.len()).ok()?)?;
        Some(Dec::new(if neg { -mant } else { mant }, exp))
    }

    pub(super) fn is_zero(self) -> bool {
        self.mant == 0
    }

    pub(super) fn is_positive(self) -> bool {
        self.mant > 0
    }

    pub(super) fn is_integer(self) -> bool {
        self.exp >= 0
    }

    /// The value as an integer, if it is one and fits.
    pub(super) fn to_i128(self) -> Option<i128> {
        if self.exp < 0 {
            return None;
        }
        self.mant.checked_mul(pow10(self.exp.unsigned_abs())?)
    }

    pub(super) fn to_f64(self) -> f64 {
        format!("{}e{}", self.mant, self.exp).parse().unwrap_or(f64::NAN)
    }

    /// Both values as integers over a common exponent.
    fn align(a: Dec, b: Dec) -> Option<(i128, i128, i32)> {
        let e = a.exp.min(b.exp);
        let ka = u32::try_from(i64::from(a.exp) - i64::from(e)).ok()?;
        let kb = u32::try_from(i64::from(b.exp) - i64::from(e)).ok()?;
        let am = a.mant.checked_mul(pow10(ka)?)?;
        let bm = b.mant.checked_mul(pow10(kb)?)?;
        Some((am, bm, e))
    }

    /// Smallest k with k·step ≥ self (step > 0).
    pub(super) fn ceil_index(self, step: Dec) -> Option<i128> {
        let (x, s, _) = Dec::align(self, step)?;
        if s <= 0 {
            return None;
        }
        let q = x.div_euclid(s);
        Some(if x.rem_euclid(s) != 0 { q + 1 } else { q })
    }

    /// Largest k with k·step ≤ self (step > 0).
    pub(super) fn floor_index(self, step: Dec) -> Option<i128> {
        let (x, s, _) = Dec::align(self, step)?;
        if s <= 0 {
            return None;
        }
        Some(x.div_euclid(s))
    }

    /// k·step.
    pub(super) fn times(step: Dec, k: i128) -> Option<Dec> {
        Some(Dec::new(step.mant.checked_mul(k)?, step.exp))
    }

    /// Whether self is an integer multiple of `step`; `None` if the arithmetic overflows.
    pub(super) fn is_multiple_of(self, step: Dec) -> Option<bool> {
        if step.is_zero() {
            return None;
        }
        let (x, s, _) = Dec::align(self, step)?;
        Some(x % s == 0)
    }

    /// Least common multiple of two positive decimals.
    pub(super) fn lcm(self, other: Dec) -> Option<Dec> {
        let (a, b, e) = Dec::align(self, other)?;
        if a <= 0 || b <= 0 {
            return None;
        }
        let l = (a / gcd(a, b)).checked_mul(b)?;
        Some(Dec::new(l, e))
    }
}

impl Ord for Dec {
    fn cmp(&self, other: &Self) -> Ordering {
        let (sa, sb) = (self.mant.signum(), other.mant.signum());
        if sa != sb {
            return sa.cmp(&sb);
        }
        match Dec::align(*self, *other) {
            Some((a, b, _)) => a.cmp(&b),
            // Exponents too far apart to align: the magnitudes differ by many orders, which
            // the float view orders correctly.
            None => self.to_f64().partial_cmp(&other.to_f64()).unwrap_or(Ordering::Equal),
        }
    }
}

impl PartialOrd for Dec {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exp >= 0 && self.exp <= 20 {
            write!(f, "{}{}", self.mant, "0".repeat(self.exp.unsigned_abs() as usize))
        } else if self.exp < 0 && self.exp >= -30 {
            let digits = self.mant.unsigned_abs().to_string();
            let sign = if self.mant < 0 { "-" } else { "" };
            let k = self.exp.unsigned_abs() as usize;
            if digits.len() > k {
                let (i, fr) = digits.split_at(digits.len() - k);
                write!(f, "{sign}{i}.{fr}")
            } else {
                write!(f, "{sign}0.{}{digits}", "0".repeat(k - digits.len()))
            }
        } else {
            write!(f, "{}e{}", self.mant, self.exp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dec {
        Dec::parse(s).unwrap_or(Dec::ZERO)
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(d("1.50").to_string(), "1.5");
        assert_eq!(d("-0.001").to_string(), "-0.001");
        assert_eq!(d("1e3").to_string(), "1000");
        assert_eq!(d("2.5e-1").to_string(), "0.25");
        assert_eq!(d("1e300").to_string(), "1e300");
    }

    #[test]
    fn exact_multiples() {
        assert_eq!(d("0.3").is_multiple_of(d("0.1")), Some(true));
        assert_eq!(d("0.35").is_multiple_of(d("0.1")), Some(false));
        assert_eq!(d("6").is_multiple_of(d("1.5")), Some(true));
        assert_eq!(d("0.5").lcm(Dec::ONE), Some(Dec::ONE));
        assert_eq!(d("1.5").lcm(Dec::ONE), Some(d("3")));
    }

    #[test]
    fn ordering_and_indices() {
        assert!(d("1.5") < d("2"));
        assert!(d("-1e300") < d("1e-300"));
        assert_eq!(d("1.5").ceil_index(Dec::ONE), Some(2));
        assert_eq!(d("-1.5").floor_index(Dec::ONE), Some(-2));
        assert_eq!(d("7").ceil_index(d("5")), Some(2));
    }
}
