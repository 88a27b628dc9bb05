//! The string formats a CRD schema may name (kube-openapi's `strfmt` registry as
//! apiextensions allows it); unknown formats accept any string, as Kubernetes does.

use std::net::{Ipv4Addr, Ipv6Addr};

use base64::Engine;

/// Whether `s` is a valid `format` string.
pub fn matches(format: &str, s: &str) -> bool {
    match format {
        "date-time" | "datetime" => s.parse::<jiff::Timestamp>().is_ok(),
        "date" => s.parse::<jiff::civil::Date>().is_ok() && s.len() == 10,
        "byte" => base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => cidr(s),
        "uuid" => uuid::Uuid::try_parse(s).is_ok() && s.len() == 36,
        "hostname" => skiff_api::validation::is_dns1123_subdomain(s).is_empty(),
        "email" => email(s),
        "duration" => duration(s),
        _ => true,
    }
}

fn cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match (ip.parse::<Ipv4Addr>(), ip.parse::<Ipv6Addr>()) {
        (Ok(_), _) => bits <= 32,
        (_, Ok(_)) => bits <= 128,
        _ => false,
    }
}

fn email(s: &str) -> bool {
    s.split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
}

/// Go's `time.ParseDuration` forms (`1h30m`, `10s`, `1.5h`).
fn duration(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    let mut rest = s;
    let mut any = false;
    while !rest.is_empty() {
        let num = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num == 0 {
            return false;
        }
        rest = &rest[num..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(**u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
        any = true;
    }
    any
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn formats() {
        assert!(matches("date-time", "2026-12-02T10:00:00Z"));
        assert!(!matches("date-time", "yesterday"));
        assert!(matches("ipv4", "10.0.0.1") && !matches("ipv4", "10.0.0"));
        assert!(matches("cidr", "10.0.0.0/8") && !matches("cidr", "10.0.0.0/40"));
        assert!(matches("duration", "1h30m") && !matches("duration", "ten"));
        assert!(matches("byte", "aGk=") && !matches("byte", "!!"));
        assert!(matches("whatever", "x"));
    }
}
