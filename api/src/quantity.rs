//! Resource quantities (`100m`, `128Mi`, `1e3`): Kubernetes' `resource.Quantity` parsing,
//! exact integer arithmetic at nano precision, and canonical printing.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A quantity string that is not a Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string does not have the quantity shape.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Format,
    /// The suffix is shaped right but not a known one (`1Ki` is, `1kb` is not).
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The numeric part does not parse (`1.2.3`).
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    /// The value does not fit the exact representation.
    #[error("quantity is out of range")]
    Range,
}

/// How a quantity was written, which decides how it prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Powers of 1024: `Ki`, `Mi`, ... `Ei`.
    BinarySI,
    /// Powers of 1000: `n`, `u`, `m`, ``, `k`, `M`, ... `E`.
    DecimalSI,
    /// `e3`, `E6`.
    DecimalExponent,
}

/// An exact quantity, held in units of 10^-9 (values finer than a nano round away from zero,
/// as Kubernetes does).
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

const NANO: i128 = 1_000_000_000;

impl Quantity {
    /// Parses a quantity string.
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let (negative, digits, frac, suffix) = split(s)?;
        let (base, exponent, format) = parse_suffix(suffix)?;
        // mantissa = digits.frac as an integer with `frac.len()` decimal places.
        let mut mantissa: i128 = 0;
        for b in digits.bytes().chain(frac.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(b - b'0')))
                .ok_or(QuantityError::Range)?;
        }
        let mut scale = -(frac.len() as i64);
        if base == 2 {
            for _ in 0..exponent / 10 {
                mantissa = mantissa.checked_mul(1024).ok_or(QuantityError::Range)?;
            }
        } else {
            scale += i64::from(exponent);
        }
        // Convert mantissa * 10^scale to nanos, rounding leftover precision up (away from 0).
        let shift = scale + 9;
        let nanos = if shift >= 0 {
            let mut n = mantissa;
            for _ in 0..shift {
                n = n.checked_mul(10).ok_or(QuantityError::Range)?;
            }
            n
        } else {
            let div = 10i128.checked_pow((-shift) as u32);
            match div {
                Some(div) => mantissa / div + i128::from(mantissa % div != 0),
                None => i128::from(mantissa != 0),
            }
        };
        let nanos = if negative { -nanos } else { nanos };
        Ok(Quantity { nanos, format })
    }

    /// A whole-number quantity in the given format.
    pub fn from_integer(value: i64, format: Format) -> Quantity {
        Quantity {
            nanos: i128::from(value) * NANO,
            format,
        }
    }

    /// A quantity of thousandths (`250` → `250m`).
    pub fn from_milli(milli: i64) -> Quantity {
        Quantity {
            nanos: i128::from(milli) * 1_000_000,
            format: Format::DecimalSI,
        }
    }

    /// The value in thousandths, rounded away from zero (Kubernetes' `MilliValue`).
    pub fn milli_value(&self) -> i128 {
        div_away(self.nanos, 1_000_000)
    }

    /// The value in whole units, rounded away from zero (Kubernetes' `Value`).
    pub fn value(&self) -> i128 {
        div_away(self.nanos, NANO)
    }

    /// The exact value in units of 10^-9.
    pub fn nano_value(&self) -> i128 {
        self.nanos
    }

    /// Whether the quantity is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// Whether the quantity is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// An approximate floating-point value, for ratios and display only.
    pub fn as_f64(&self) -> f64 {
        self.nanos as f64 / NANO as f64
    }

    /// The format the quantity prints in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The sum of two quantities, in this one's format; `None` on overflow.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        Some(Quantity {
            nanos: self.nanos.checked_add(other.nanos)?,
            format: self.format,
        })
    }

    /// The difference of two quantities, in this one's format; `None` on overflow.
    pub fn checked_sub(&self, other: &Quantity) -> Option<Quantity> {
        Some(Quantity {
            nanos: self.nanos.checked_sub(other.nanos)?,
            format: self.format,
        })
    }
}

fn div_away(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d == 0 {
        q
    } else if n > 0 {
        q + 1
    } else {
        q - 1
    }
}

/// Splits `[+-]digits[.digits]suffix`, checking the shape of the suffix as Kubernetes'
/// `parseQuantityString` does.
fn split(s: &str) -> Result<(bool, &str, &str, &str), QuantityError> {
    if s.is_empty() {
        return Err(QuantityError::Format);
    }
    let (negative, rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let int_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let digits = &rest[..int_end];
    let mut rest = &rest[int_end..];
    let mut frac = "";
    if let Some(after_dot) = rest.strip_prefix('.') {
        let end = after_dot
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after_dot.len());
        frac = &after_dot[..end];
        rest = &after_dot[end..];
        if rest.starts_with('.') {
            return Err(QuantityError::Numeric);
        }
    }
    if digits.is_empty() && frac.is_empty() {
        return Err(
            if s.len() > usize::from(negative || s.starts_with('+')) && rest.is_empty() {
                QuantityError::Numeric
            } else {
                QuantityError::Format
            },
        );
    }
    let suffix = rest;
    let letters_end = suffix
        .find(|c: char| !"eEinumkKMGTP".contains(c))
        .unwrap_or(suffix.len());
    let mut tail = &suffix[letters_end..];
    if let Some(t) = tail.strip_prefix(['-', '+']) {
        tail = t;
    }
    if !tail.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::Format);
    }
    Ok((negative, digits, frac, suffix))
}

/// Interprets a suffix as (base, exponent, format).
fn parse_suffix(suffix: &str) -> Result<(u32, i32, Format), QuantityError> {
    let decimal = |e| Ok((10, e, Format::DecimalSI));
    let binary = |e| Ok((2, e, Format::BinarySI));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let exp = suffix
                .strip_prefix(['e', 'E'])
                .ok_or(QuantityError::Suffix)?;
            let e: i32 = exp.parse().map_err(|_| QuantityError::Suffix)?;
            if !(-100..=100).contains(&e) {
                return Err(QuantityError::Range);
            }
            Ok((10, e, Format::DecimalExponent))
        }
    }
}

impl fmt::Display for Quantity {
    /// The canonical form: no fractional digits, the largest suffix that loses nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let binary_ok = self.format == Format::BinarySI
            && self.nanos.abs() >= 1024 * NANO
            && self.nanos % NANO == 0;
        if binary_ok {
            let mut n = self.nanos / NANO;
            let mut exp = 0;
            while exp < 60 && n % 1024 == 0 {
                n /= 1024;
                exp += 10;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp / 10];
            return write!(f, "{n}{suffix}");
        }
        let mut n = self.nanos;
        let mut exp: i32 = -9;
        let max_exp = if self.format == Format::DecimalExponent {
            i32::MAX
        } else {
            18
        };
        while n % 1000 == 0 && exp + 3 <= max_exp {
            n /= 1000;
            exp += 3;
        }
        if self.format == Format::DecimalExponent {
            if exp == 0 {
                write!(f, "{n}")
            } else {
                write!(f, "{n}e{exp}")
            }
        } else {
            let suffix = match exp {
                -9 => "n",
                -6 => "u",
                -3 => "m",
                0 => "",
                3 => "k",
                6 => "M",
                9 => "G",
                12 => "T",
                15 => "P",
                _ => "E",
            };
            write!(f, "{n}{suffix}")
        }
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl TryFrom<&k8s_openapi::apimachinery::pkg::api::resource::Quantity> for Quantity {
    type Error = QuantityError;

    fn try_from(
        q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    ) -> Result<Self, Self::Error> {
        Quantity::parse(&q.0)
    }
}

impl From<Quantity> for k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    fn from(q: Quantity) -> Self {
        k8s_openapi::apimachinery::pkg::api::resource::Quantity(q.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_canonicalizes() {
        // input, milli, value, canonical
        let cases: &[(&str, i128, i128, &str)] = &[
            ("0", 0, 0, "0"),
            ("100m", 100, 1, "100m"),
            ("1.5", 1500, 2, "1500m"),
            ("0.5", 500, 1, "500m"),
            ("1", 1000, 1, "1"),
            ("1000", 1_000_000, 1000, "1k"),
            ("+1k", 1_000_000, 1000, "1k"),
            (
                "128Mi",
                128 * 1024 * 1024 * 1000,
                128 * 1024 * 1024,
                "128Mi",
            ),
            ("2Gi", 2 * (1 << 30) * 1000, 2 * (1 << 30), "2Gi"),
            ("1.5Gi", 1536 * (1 << 20) * 1000, 1536 * (1 << 20), "1536Mi"),
            ("0.5Ki", 512_000, 512, "512"),
            ("1Ki", 1_024_000, 1024, "1Ki"),
            ("1e3", 1_000_000, 1000, "1e3"),
            ("1.5e3", 1_500_000, 1500, "1500"),
            ("1E6", 1_000_000_000, 1_000_000, "1e6"),
            ("1e-3", 1, 1, "1e-3"),
            ("-100m", -100, -1, "-100m"),
            ("-1.5", -1500, -2, "-1500m"),
            ("1n", 1, 1, "1n"),
            ("1u", 1, 1, "1u"),
            ("0.1m", 1, 1, "100u"),
            ("1.0000000001", 1001, 2, "1000000001n"),
            ("5M", 5_000_000_000, 5_000_000, "5M"),
            ("12.", 12_000, 12, "12"),
            (".5", 500, 1, "500m"),
            (
                "1E",
                1_000_000_000_000_000_000_000,
                1_000_000_000_000_000_000,
                "1E",
            ),
        ];
        for (input, milli, value, canonical) in cases {
            let q = Quantity::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(q.milli_value(), *milli, "milli of {input}");
            assert_eq!(q.value(), *value, "value of {input}");
            assert_eq!(q.to_string(), *canonical, "canonical of {input}");
            assert_eq!(
                Quantity::parse(&q.to_string()).unwrap(),
                q,
                "round trip of {input}"
            );
        }
    }

    #[test]
    fn rejects_malformed() {
        let format = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
        let cases = [
            ("", format),
            ("abc", format),
            ("1 Gi", format),
            ("1Gb", format),
            ("Mi", format),
            ("1kb", format),
            ("1.2.3", "unable to parse numeric part of quantity"),
            ("1Mk", "unable to parse quantity's suffix"),
            ("1i", "unable to parse quantity's suffix"),
            ("1e", "unable to parse quantity's suffix"),
        ];
        for (input, want) in cases {
            assert_eq!(
                Quantity::parse(input).unwrap_err().to_string(),
                want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn sign_float_and_order() {
        let a = Quantity::parse("-1").unwrap();
        assert!(a.is_negative());
        assert!(!Quantity::parse("0").unwrap().is_negative());
        assert!((Quantity::parse("250m").unwrap().as_f64() - 0.25).abs() < 1e-12);
        assert_eq!(
            Quantity::parse("1Ki").unwrap(),
            Quantity::parse("1024").unwrap()
        );
        assert!(Quantity::parse("1Gi").unwrap() > Quantity::parse("1G").unwrap());
        let sum = Quantity::parse("1.5")
            .unwrap()
            .checked_add(&Quantity::from_milli(500))
            .unwrap();
        assert_eq!(sum.to_string(), "2");
    }
}
