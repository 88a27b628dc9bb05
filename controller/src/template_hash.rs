//! The `pod-template-hash` of a Deployment's pod template: a 32-bit FNV-1a hash of the
//! template plus the collision count, encoded with Kubernetes' vowel-free alphabet.
//!
//! Kubernetes hashes a `spew` dump of its Go structs, which cannot be reproduced outside Go;
//! we hash the template's canonical JSON instead. The shape (fnv32a, little-endian collision
//! count, `SafeEncodeString` of the decimal sum) is the same, so names look alike and a
//! collision is resolved the same way, but the values differ from kube-controller-manager's.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// Kubernetes' `rand.SafeEncodeString` alphabet: no vowels, no confusable characters.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Maps each character of `s` into the safe alphabet (`rand.SafeEncodeString`).
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// The FNV-1a 32-bit sum of `bytes` followed by the collision count (as `ComputeHash` does).
fn fnv32a(bytes: &[u8], collision_count: Option<i32>) -> u32 {
    // fnv's Hasher is the 64-bit variant; 32-bit FNV-1a is short enough to spell out.
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    let mut h = OFFSET;
    let mut write = |data: &[u8]| {
        for b in data {
            h ^= u32::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    write(bytes);
    if let Some(c) = collision_count {
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&(c as u32).to_le_bytes());
        write(&buf);
    }
    h
}

/// The `pod-template-hash` label value for `template` with `collision_count`.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut t = template.clone();
    // The label itself never takes part in the hash.
    if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove(POD_TEMPLATE_HASH);
    }
    let bytes = serde_json::to_vec(&t).unwrap_or_default();
    safe_encode(&fnv32a(&bytes, collision_count).to_string())
}

/// The label carrying the hash on ReplicaSets and their pods.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Whether two templates are equal apart from the `pod-template-hash` label
/// (Kubernetes' `EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let norm = |t: &PodTemplateSpec| {
        let mut v = serde_json::to_value(t).unwrap_or_default();
        if let Some(labels) = v
            .pointer_mut("/metadata/labels")
            .and_then(|l| l.as_object_mut())
        {
            labels.remove(POD_TEMPLATE_HASH);
            if labels.is_empty() {
                v["metadata"].as_object_mut().map(|m| m.remove("labels"));
            }
        }
        if v.pointer("/metadata")
            .and_then(|m| m.as_object())
            .is_some_and(|m| m.is_empty())
        {
            v.as_object_mut().map(|m| m.remove("metadata"));
        }
        v
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}})).unwrap()
    }

    #[test]
    fn fnv32a_matches_the_reference_vectors() {
        // Published FNV-1a 32-bit test vectors.
        assert_eq!(fnv32a(b"", None), 0x811c9dc5);
        assert_eq!(fnv32a(b"a", None), 0xe40c292c);
        assert_eq!(fnv32a(b"foobar", None), 0xbf9cf968);
    }

    #[test]
    fn safe_encode_maps_digits_like_kubernetes() {
        // '0' is byte 48, 48 % 27 = 21 -> '4'; '1' -> 22 -> '5'.
        assert_eq!(safe_encode("01"), "45");
        assert!(
            safe_encode("4294967295")
                .chars()
                .all(|c| ALPHANUMS.contains(&(c as u8)))
        );
    }

    #[test]
    fn hash_depends_on_template_and_collision_count_not_on_the_hash_label() {
        let a = compute_hash(&template("nginx:1"), None);
        assert_eq!(a, compute_hash(&template("nginx:1"), None));
        assert_ne!(a, compute_hash(&template("nginx:2"), None));
        assert_ne!(a, compute_hash(&template("nginx:1"), Some(1)));
        let mut labelled = template("nginx:1");
        labelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(POD_TEMPLATE_HASH.into(), a.clone());
        assert_eq!(a, compute_hash(&labelled, None));
        assert!(equal_ignore_hash(&labelled, &template("nginx:1")));
        assert!(!equal_ignore_hash(&labelled, &template("nginx:2")));
    }
}
