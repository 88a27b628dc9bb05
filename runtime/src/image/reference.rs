//! Image references normalised the way Docker does (`busybox` → `docker.io/library/busybox:latest`).

use std::net::IpAddr;

use oci_client::Reference;

use super::ImageError;

/// Parses and normalises an image reference: Docker Hub short names gain `docker.io/` and
/// `library/`, a missing tag becomes `latest` (unless a digest is given).
pub fn parse(reference: &str) -> Result<Reference, ImageError> {
    reference
        .trim()
        .parse::<Reference>()
        .map_err(|e| ImageError::InvalidReference {
            reference: reference.to_string(),
            message: e.to_string(),
        })
}

/// The normalised, fully qualified form of `reference` (`docker.io/library/busybox:latest`,
/// `127.0.0.1:5000/app@sha256:...`).
pub fn normalize(reference: &str) -> Result<String, ImageError> {
    Ok(whole(&parse(reference)?))
}

/// The fully qualified text of a parsed reference. When both a tag and a digest are given the
/// digest wins, as it names the content exactly.
pub fn whole(r: &Reference) -> String {
    let name = format!("{}/{}", r.registry(), r.repository());
    match (r.digest(), r.tag()) {
        (Some(d), _) => format!("{name}@{d}"),
        (None, Some(t)) => format!("{name}:{t}"),
        (None, None) => format!("{name}:latest"),
    }
}

/// Splits a normalised reference into repository and tag (or `<none>` for digest references).
pub fn repo_and_tag(normalized: &str) -> (String, String) {
    if let Some((repo, _)) = normalized.split_once('@') {
        return (repo.to_string(), "<none>".to_string());
    }
    match normalized.rfind(':') {
        Some(i) if !normalized[i..].contains('/') => {
            (normalized[..i].to_string(), normalized[i + 1..].to_string())
        }
        _ => (normalized.to_string(), "<none>".to_string()),
    }
}

/// Whether a registry host is on a loopback address (`127.0.0.1:5000`, `localhost:5000`,
/// `[::1]:5000`), where Docker allows plain HTTP without any flag.
pub fn is_loopback_registry(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(registry)
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_normalised_like_docker() {
        assert_eq!(
            normalize("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalize("user/app:2").unwrap(), "docker.io/user/app:2");
        assert_eq!(
            normalize("127.0.0.1:5000/app:1").unwrap(),
            "127.0.0.1:5000/app:1"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            normalize(&format!("localhost:5000/app@{d}")).unwrap(),
            format!("localhost:5000/app@{d}")
        );
        assert!(matches!(
            normalize("UPPER/Case"),
            Err(ImageError::InvalidReference { .. })
        ));
    }

    #[test]
    fn repo_and_tag_split_at_the_last_colon_of_the_name() {
        assert_eq!(
            repo_and_tag("127.0.0.1:5000/app:1"),
            ("127.0.0.1:5000/app".to_string(), "1".to_string())
        );
        assert_eq!(repo_and_tag("host:5000/app@sha256:ab").1, "<none>");
    }

    #[test]
    fn loopback_registries_are_recognised() {
        assert!(is_loopback_registry("127.0.0.1:5000"));
        assert!(is_loopback_registry("localhost:41000"));
        assert!(is_loopback_registry("[::1]:5000"));
        assert!(!is_loopback_registry("registry.example.com:5000"));
        assert!(!is_loopback_registry("10.0.0.1:5000"));
        assert!(!is_loopback_registry("docker.io"));
    }
}
