//! The IP family fields of a Service (`ipFamilyPolicy`, `ipFamilies`, `clusterIPs`),
//! defaulted and checked against the cluster's service CIDRs as kube-apiserver's
//! `initIPFamilyFields` does, before any address is allocated.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::ServiceSpec;
use serde_json::json;
use skiff_api::validation::Cause;

use super::range::{Family, ServiceCidrs};

const SINGLE: &str = "SingleStack";
const PREFER: &str = "PreferDualStack";
const REQUIRE: &str = "RequireDualStack";

fn family_of(ip: &str) -> Option<Family> {
    ip.parse::<IpAddr>().ok().map(Family::of)
}

fn is_headless(spec: &ServiceSpec) -> bool {
    spec.cluster_ip.as_deref() == Some("None")
        || spec
            .cluster_ips
            .as_ref()
            .is_some_and(|ips| ips.first().is_some_and(|ip| ip == "None"))
}

fn selectorless(spec: &ServiceSpec) -> bool {
    spec.selector.as_ref().is_none_or(|s| s.is_empty())
}

/// Fills and checks the family fields of `spec` (an ExternalName Service has none). `old`
/// is the Service's spec before an update.
pub fn init(
    cidrs: &ServiceCidrs,
    spec: &mut ServiceSpec,
    old: Option<&ServiceSpec>,
) -> Result<(), Vec<Cause>> {
    if spec.type_.as_deref() == Some("ExternalName") {
        return Ok(());
    }
    // `clusterIP` and `clusterIPs[0]` are one field.
    match (&spec.cluster_ip, &mut spec.cluster_ips) {
        (Some(ip), None) if !ip.is_empty() => spec.cluster_ips = Some(vec![ip.clone()]),
        (_, Some(ips)) if !ips.is_empty() => spec.cluster_ip = Some(ips[0].clone()),
        _ => {}
    }
    if spec.ip_family_policy.as_deref().unwrap_or("").is_empty() {
        let inherited = old
            .and_then(|o| o.ip_family_policy.clone())
            .filter(|p| !p.is_empty());
        spec.ip_family_policy = Some(match inherited {
            Some(p) => p,
            None if is_headless(spec) && selectorless(spec) => REQUIRE.into(),
            None if spec.ip_families.as_ref().is_some_and(|f| f.len() == 2) => REQUIRE.into(),
            None => SINGLE.into(),
        });
    }
    let policy = spec.ip_family_policy.clone().unwrap_or_default();
    let mut errs = Vec::new();
    if ![SINGLE, PREFER, REQUIRE].contains(&policy.as_str()) {
        errs.push(Cause::not_supported(
            "spec.ipFamilyPolicy",
            &json!(policy),
            &[PREFER, REQUIRE, SINGLE],
        ));
    }
    let mut families = Vec::new();
    for (i, f) in spec.ip_families.iter().flatten().enumerate() {
        match Family::parse(f) {
            Some(fam) if families.contains(&fam) => {
                errs.push(Cause::duplicate(format!("spec.ipFamilies[{i}]"), &json!(f)));
            }
            Some(fam) => families.push(fam),
            None => errs.push(Cause::not_supported(
                format!("spec.ipFamilies[{i}]"),
                &json!(f),
                &["IPv4", "IPv6"],
            )),
        }
    }
    let ips: Vec<String> = spec.cluster_ips.clone().unwrap_or_default();
    if ips.len() > 2 {
        errs.push(Cause::invalid(
            "spec.clusterIPs",
            &json!(ips),
            "may only hold up to 2 values",
        ));
    }
    if families.len() > 2 {
        errs.push(Cause::invalid(
            "spec.ipFamilies",
            &json!(spec.ip_families),
            "may only hold up to 2 values",
        ));
    }
    if !is_headless(spec) {
        let mut seen = Vec::new();
        for (i, ip) in ips.iter().enumerate() {
            let Some(fam) = family_of(ip) else { continue };
            if seen.contains(&fam) {
                errs.push(Cause::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    &json!(ips),
                    "may specify no more than one IP for each IP family",
                ));
            }
            seen.push(fam);
            if let Some(want) = families.get(i)
                && *want != fam
            {
                errs.push(Cause::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    &json!(ip),
                    format!(
                        "expected an {} value as indicated by `ipFamilies[{i}]`",
                        want.as_str()
                    ),
                ));
            }
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    if let Some(old) = old {
        if policy == SINGLE {
            // Setting single-stack over unchanged dual-stack fields releases the second.
            if spec.cluster_ips == old.cluster_ips && ips.len() > 1 {
                spec.cluster_ips = Some(ips[..1].to_vec());
            }
            if spec.ip_families == old.ip_families && families.len() > 1 {
                families.truncate(1);
            }
        } else {
            let old_ips = old.cluster_ips.as_ref().map_or(0, Vec::len);
            let old_fams = old.ip_families.as_ref().map_or(0, Vec::len);
            if ips.len() < old_ips && !ips.is_empty() {
                errs.push(Cause::invalid(
                    "spec.ipFamilyPolicy",
                    &json!(policy),
                    "must be 'SingleStack' to release the secondary cluster IP",
                ));
            }
            if families.len() < old_fams && !families.is_empty() {
                errs.push(Cause::invalid(
                    "spec.ipFamilyPolicy",
                    &json!(policy),
                    "must be 'SingleStack' to release the secondary IP family",
                ));
            }
        }
    }
    let ips: Vec<String> = spec.cluster_ips.clone().unwrap_or_default();
    if policy == SINGLE {
        if ips.len() == 2 {
            errs.push(Cause::invalid("spec.ipFamilyPolicy", &json!(policy), "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified"));
        }
        if families.len() == 2 {
            errs.push(Cause::invalid("spec.ipFamilyPolicy", &json!(policy), "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"));
        }
    }
    if !is_headless(spec) {
        for (i, ip) in ips.iter().enumerate() {
            let Some(fam) = family_of(ip) else { continue };
            if i >= families.len() {
                if cidrs.range(fam).is_some() {
                    families.push(fam);
                } else {
                    errs.push(Cause::invalid(
                        format!("spec.clusterIPs[{i}]"),
                        &json!(ips),
                        format!("{} is not configured on this cluster", fam.as_str()),
                    ));
                }
            }
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    if is_headless(spec) && selectorless(spec) {
        if families.is_empty() {
            families.push(cidrs.primary().family());
        }
        if families.len() < 2 && policy != SINGLE {
            families.push(families[0].other());
        }
        spec.ip_families = Some(families.iter().map(|f| f.as_str().into()).collect());
        return Ok(());
    }
    if policy == REQUIRE && !cidrs.dual_stack() {
        errs.push(Cause::invalid(
            "spec.ipFamilyPolicy",
            &json!(policy),
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, f) in families.iter().enumerate() {
        if cidrs.range(*f).is_none() {
            errs.push(Cause::invalid(
                format!("spec.ipFamilies[{i}]"),
                &json!(f.as_str()),
                "not configured on this cluster",
            ));
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    if families.is_empty() {
        families.push(cidrs.primary().family());
    }
    if policy != SINGLE && families.len() == 1 && cidrs.dual_stack() {
        families.push(families[0].other());
    }
    spec.ip_families = Some(families.iter().map(|f| f.as_str().into()).collect());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> ServiceSpec {
        serde_json::from_value(v).unwrap()
    }

    fn fams(s: &ServiceSpec) -> Vec<String> {
        s.ip_families.clone().unwrap_or_default()
    }

    #[test]
    fn single_stack_defaults_to_the_primary_family() {
        let v4: ServiceCidrs = "10.96.0.0/12".parse().unwrap();
        let mut s = spec(json!({"ports": [{"port": 80}]}));
        init(&v4, &mut s, None).unwrap();
        assert_eq!(s.ip_family_policy.as_deref(), Some("SingleStack"));
        assert_eq!(fams(&s), ["IPv4"]);

        let mut s = spec(json!({"ipFamilyPolicy": "PreferDualStack"}));
        init(&v4, &mut s, None).unwrap();
        assert_eq!(
            fams(&s),
            ["IPv4"],
            "prefer on a single-stack cluster stays single"
        );

        let mut s = spec(json!({"ipFamilyPolicy": "RequireDualStack"}));
        let e = init(&v4, &mut s, None).unwrap_err();
        assert_eq!(
            e[0].message,
            "Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"
        );

        let mut s = spec(json!({"ipFamilies": ["IPv6"]}));
        let e = init(&v4, &mut s, None).unwrap_err();
        assert_eq!(e[0].field, "spec.ipFamilies[0]");
        assert_eq!(
            e[0].message,
            "Invalid value: \"IPv6\": not configured on this cluster"
        );

        let mut s = spec(json!({"clusterIP": "fd00::5"}));
        let e = init(&v4, &mut s, None).unwrap_err();
        assert_eq!(e[0].field, "spec.clusterIPs[0]");
        assert!(
            e[0].message
                .ends_with("IPv6 is not configured on this cluster")
        );
    }

    #[test]
    fn dual_stack_cluster_adds_the_other_family() {
        let ds: ServiceCidrs = "10.96.0.0/12,fd00:10:96::/112".parse().unwrap();
        let mut s = spec(json!({"ipFamilyPolicy": "PreferDualStack"}));
        init(&ds, &mut s, None).unwrap();
        assert_eq!(fams(&s), ["IPv4", "IPv6"]);

        let mut s = spec(json!({"ipFamilies": ["IPv6", "IPv4"]}));
        init(&ds, &mut s, None).unwrap();
        assert_eq!(s.ip_family_policy.as_deref(), Some("RequireDualStack"));
        assert_eq!(fams(&s), ["IPv6", "IPv4"]);

        let mut s = spec(json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"]}));
        let e = init(&ds, &mut s, None).unwrap_err();
        assert!(
            e[0].message
                .contains("when multiple IP families are specified")
        );

        let mut s = spec(json!({"clusterIP": "fd00:10:96::9"}));
        init(&ds, &mut s, None).unwrap();
        assert_eq!(fams(&s), ["IPv6"]);

        let mut s = spec(json!({"clusterIPs": ["10.96.0.9"], "ipFamilies": ["IPv6"]}));
        let e = init(&ds, &mut s, None).unwrap_err();
        assert_eq!(
            e[0].message,
            "Invalid value: \"10.96.0.9\": expected an IPv6 value as indicated by `ipFamilies[0]`"
        );
    }

    #[test]
    fn updates_keep_the_old_policy_and_single_stack_drops_the_second_ip() {
        let ds: ServiceCidrs = "10.96.0.0/12,fd00:10:96::/112".parse().unwrap();
        let old = spec(
            json!({"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"],
            "clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9", "fd00:10:96::9"]}),
        );
        let mut s = old.clone();
        s.ip_family_policy = None;
        init(&ds, &mut s, Some(&old)).unwrap();
        assert_eq!(s.ip_family_policy.as_deref(), Some("PreferDualStack"));
        let mut s = old.clone();
        s.ip_family_policy = Some("SingleStack".into());
        init(&ds, &mut s, Some(&old)).unwrap();
        assert_eq!(s.cluster_ips.clone().unwrap(), ["10.96.0.9"]);
        assert_eq!(fams(&s), ["IPv4"]);
    }

    #[test]
    fn headless_selectorless_is_dual_where_it_can_be() {
        let v4: ServiceCidrs = "10.96.0.0/12".parse().unwrap();
        let mut s = spec(json!({"clusterIP": "None"}));
        init(&v4, &mut s, None).unwrap();
        assert_eq!(s.ip_family_policy.as_deref(), Some("RequireDualStack"));
        assert_eq!(fams(&s), ["IPv4", "IPv6"]);
        let mut s = spec(json!({"clusterIP": "None", "selector": {"app": "x"}}));
        init(&v4, &mut s, None).unwrap();
        assert_eq!(fams(&s), ["IPv4"]);
    }
}
