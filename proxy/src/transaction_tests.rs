use super::*;

fn rules(elements: &[(&str, &str)], ip: &str) -> ServiceRules {
    ServiceRules {
        elements: elements
            .iter()
            .map(|(k, v)| Element {
                map: Map::ServiceIps,
                key: k.to_string(),
                verdict: v.to_string(),
            })
            .collect(),
        held_ips: vec![ip.parse().unwrap()],
        ..Default::default()
    }
}

#[test]
fn shared_addresses_stay_held_until_the_last_service_leaves_and_keys_have_one_owner() {
    let mut k = KernelModel::default();
    let a = ServiceKey::new("d", "a");
    let b = ServiceKey::new("d", "b");
    let p = k.prepare(
        "t",
        vec![
            (
                a.clone(),
                Some(rules(&[("192.0.2.1 . tcp . 80", "drop")], "192.0.2.1")),
            ),
            (
                b.clone(),
                Some(rules(
                    &[
                        ("192.0.2.1 . tcp . 80", "accept"),
                        ("192.0.2.1 . tcp . 81", "drop"),
                    ],
                    "192.0.2.1",
                )),
            ),
        ],
    );
    assert_eq!(
        p.script,
        "add element ip t service-ips { 192.0.2.1 . tcp . 80 : drop, 192.0.2.1 . tcp . 81 : drop }\nadd element ip t cluster-ips { 192.0.2.1 }\n"
    );
    k.commit(p);
    let p = k.prepare("t", vec![(a.clone(), None)]);
    assert_eq!(
        p.script,
        "delete element ip t service-ips { 192.0.2.1 . tcp . 80 }\n"
    );
    k.commit(p);
    let p = k.prepare("t", vec![(b, None)]);
    assert_eq!(
        p.script,
        "delete element ip t service-ips { 192.0.2.1 . tcp . 81 }\ndelete element ip t cluster-ips { 192.0.2.1 }\n"
    );
    k.commit(p);
    assert!(k.is_empty());
}
