//! Field validation as Kubernetes words it: DNS-1123 names, qualified names, label values,
//! and the `Cause` type that carries one field error.

use std::net::IpAddr;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// One field-level cause of an invalid object (`Status.details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`,
    /// `FieldValueDuplicate`, `FieldValueForbidden`, `FieldValueTooLong`, ...
    pub reason: &'static str,
    /// Field path, e.g. `spec.containers[0].image`.
    pub field: String,
    /// Message as Kubernetes words it, without the field prefix.
    pub message: String,
}

impl Cause {
    /// `Required value`.
    pub fn required(field: impl Into<String>) -> Self {
        Self {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        }
    }

    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl AsRef<str>) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!(
                "Invalid value: {}: {}",
                render_value(value),
                detail.as_ref()
            ),
        }
    }

    /// `Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Self {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                render_value(value),
                list.join(", ")
            ),
        }
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Self {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {}", render_value(value)),
        }
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(field: impl Into<String>, detail: impl AsRef<str>) -> Self {
        Self {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {}", detail.as_ref()),
        }
    }

    /// `Invalid value: <value>: field is immutable`.
    pub fn immutable(field: impl Into<String>, value: &Value) -> Self {
        Self::invalid(field, value, "field is immutable")
    }
}

/// How Kubernetes prints a value inside a field error: strings quoted, numbers bare,
/// objects and lists as Go would print them compactly.
pub fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

impl Cause {
    /// `Too long: must have at most <max> bytes`.
    pub fn too_long(field: impl Into<String>, max_bytes: usize) -> Self {
        Self {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: must have at most {max_bytes} bytes"),
        }
    }

    /// `Required value: <detail>`, for the few places Kubernetes adds a detail.
    pub fn required_detail(field: impl Into<String>, detail: impl AsRef<str>) -> Self {
        Self {
            reason: "FieldValueRequired",
            field: field.into(),
            message: format!("Required value: {}", detail.as_ref()),
        }
    }
}

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const ENV_VAR_NAME_FMT: &str = "[-._a-zA-Z][-._a-zA-Z0-9]*";
const ENV_VAR_NAME_ERR: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit";
const CONFIG_MAP_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_MAP_KEY_ERR: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const PERCENT_FMT: &str = "[0-9]+%";
const PERCENT_ERR: &str =
    "a valid percent string must be a numeric string followed by an ending '%'";

/// Longest DNS-1123 label (and DNS-1035 label, and label value, and qualified-name name part).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Longest DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Largest total size of all annotations of one object, keys plus values.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

fn anchored(fmt: &str) -> Regex {
    Regex::new(&format!("^{fmt}$")).expect("static validation regex compiles")
}

static DNS1123_LABEL_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1123_LABEL_FMT));
static DNS1123_SUBDOMAIN_RE: LazyLock<Regex> = LazyLock::new(|| anchored(&dns1123_subdomain_fmt()));
static DNS1035_LABEL_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1035_LABEL_FMT));
static QUALIFIED_NAME_RE: LazyLock<Regex> = LazyLock::new(|| anchored(QUALIFIED_NAME_FMT));
static LABEL_VALUE_RE: LazyLock<Regex> = LazyLock::new(|| anchored(LABEL_VALUE_FMT));
static ENV_VAR_NAME_RE: LazyLock<Regex> = LazyLock::new(|| anchored(ENV_VAR_NAME_FMT));
static CONFIG_MAP_KEY_RE: LazyLock<Regex> = LazyLock::new(|| anchored(CONFIG_MAP_KEY_FMT));
static PERCENT_RE: LazyLock<Regex> = LazyLock::new(|| anchored(PERCENT_FMT));

fn dns1123_subdomain_fmt() -> String {
    format!("{DNS1123_LABEL_FMT}(\\.{DNS1123_LABEL_FMT})*")
}

/// `must be no more than <n> characters`.
pub fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// A regex failure worded as Kubernetes' `RegexError`: the message, examples, and the regex.
pub fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        examples.join(" or ")
    )
}

/// `must be between <lo> and <hi>, inclusive`.
pub fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

/// Checks a DNS-1123 subdomain (most object names): at most 253 characters.
pub fn is_dns1123_subdomain(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !DNS1123_SUBDOMAIN_RE.is_match(v) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            &dns1123_subdomain_fmt(),
            &["example.com"],
        ));
    }
    errs
}

/// Checks a DNS-1123 label (namespace names, service names): at most 63 characters, no dots.
pub fn is_dns1123_label(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !DNS1123_LABEL_RE.is_match(v) {
        if DNS1123_SUBDOMAIN_RE.is_match(v) {
            // A valid subdomain that is not a label can only be failing on its dots.
            errs.push("must not contain dots".into());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// Checks a DNS-1035 label (service names): must start with a letter.
pub fn is_dns1035_label(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !DNS1035_LABEL_RE.is_match(v) {
        errs.push(regex_error(
            DNS1035_LABEL_ERR,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Checks a qualified name (label and annotation keys): an optional DNS subdomain prefix and
/// `/`, then a name part of at most 63 characters.
pub fn is_qualified_name(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = v.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(DNS1123_LABEL_MAX_LENGTH)
        ));
    }
    if !QUALIFIED_NAME_RE.is_match(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Checks a label value: empty, or at most 63 alphanumerics, `-`, `_`, `.`.
pub fn is_valid_label_value(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !LABEL_VALUE_RE.is_match(v) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

fn has_chdir_prefix(v: &str) -> Option<String> {
    match v {
        "." => Some("must not be '.'".into()),
        ".." => Some("must not be '..'".into()),
        _ if v.starts_with("..") => Some("must not start with '..'".into()),
        _ => None,
    }
}

/// Checks an environment variable name (Kubernetes' strict `IsEnvVarName`).
pub fn is_env_var_name(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if !ENV_VAR_NAME_RE.is_match(v) {
        errs.push(regex_error(
            ENV_VAR_NAME_ERR,
            ENV_VAR_NAME_FMT,
            &["my.env-name", "MY_ENV.NAME", "MyEnvName1"],
        ));
    }
    errs.extend(has_chdir_prefix(v));
    errs
}

/// Checks a ConfigMap or Secret data key.
pub fn is_config_map_key(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !CONFIG_MAP_KEY_RE.is_match(v) {
        errs.push(regex_error(
            CONFIG_MAP_KEY_ERR,
            CONFIG_MAP_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    errs.extend(has_chdir_prefix(v));
    errs
}

/// Checks a port number: 1 to 65535.
pub fn is_valid_port_num(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![inclusive_range_error(1, 65535)]
    }
}

/// Checks a named port (IANA_SVC_NAME): at most 15 characters, `[-a-z0-9]`, at least one
/// letter, no leading, trailing or doubled hyphen.
pub fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push(max_len_error(15));
    }
    if port.is_empty()
        || !port
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !port.bytes().any(|b| b.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// Checks an IPv4 or IPv6 address. Like Kubernetes' sloppy parser, IPv4 octets may carry
/// leading zeros (read as decimal).
pub fn is_valid_ip(v: &str) -> Vec<String> {
    if v.parse::<IpAddr>().is_ok() || parse_sloppy_ipv4(v) {
        Vec::new()
    } else {
        vec!["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into()]
    }
}

fn parse_sloppy_ipv4(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

/// Checks a percent string such as `25%`.
pub fn is_valid_percent(v: &str) -> Vec<String> {
    if PERCENT_RE.is_match(v) {
        Vec::new()
    } else {
        vec![regex_error(PERCENT_ERR, PERCENT_FMT, &["1%", "93%"])]
    }
}

/// Validates `metadata.labels` (or any label map): keys are qualified names, values label
/// values. Causes name the map's field path, as Kubernetes does.
pub fn validate_labels(labels: &Value, field: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(map) = labels.as_object() else {
        if !labels.is_null() {
            causes.push(Cause::invalid(field, labels, "must be a map of strings"));
        }
        return causes;
    };
    for (k, v) in map {
        for msg in is_qualified_name(k) {
            causes.push(Cause::invalid(field, &Value::String(k.clone()), msg));
        }
        match v.as_str() {
            Some(s) => {
                for msg in is_valid_label_value(s) {
                    causes.push(Cause::invalid(field, v, msg));
                }
            }
            None => causes.push(Cause::invalid(field, v, "must be a string")),
        }
    }
    causes
}

/// Validates `metadata.annotations`: keys are qualified names (case-insensitive) and all keys
/// and values together are at most 256 KiB.
pub fn validate_annotations(annotations: &Value, field: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(map) = annotations.as_object() else {
        if !annotations.is_null() {
            causes.push(Cause::invalid(
                field,
                annotations,
                "must be a map of strings",
            ));
        }
        return causes;
    };
    let mut total = 0usize;
    for (k, v) in map {
        for msg in is_qualified_name(&k.to_lowercase()) {
            causes.push(Cause::invalid(field, &Value::String(k.clone()), msg));
        }
        total += k.len();
        match v.as_str() {
            Some(s) => total += s.len(),
            None => causes.push(Cause::invalid(field, v, "must be a string")),
        }
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        causes.push(Cause::too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    causes
}

/// Replaces a trailing dash with a letter so a `generateName` prefix can be checked with the
/// name rule (a random suffix follows it).
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        format!("{}a", &name[..name.len() - 1])
    } else {
        name.to_string()
    }
}

/// Validates the parts of `metadata` every kind shares: name (or generateName), namespace
/// format, labels and annotations. Whether a namespace must or must not be set is the
/// caller's business; here it is only checked when present.
pub fn validate_object_meta(
    meta: &Value,
    namespaced: bool,
    name_check: fn(&str) -> Vec<String>,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let str_field = |k: &str| meta.get(k).and_then(Value::as_str).unwrap_or("");
    let generate_name = str_field("generateName");
    if !generate_name.is_empty() {
        for msg in name_check(&mask_trailing_dash(generate_name)) {
            causes.push(Cause::invalid(
                "metadata.generateName",
                &Value::String(generate_name.into()),
                msg,
            ));
        }
    }
    let name = str_field("name");
    if name.is_empty() {
        if generate_name.is_empty() {
            causes.push(Cause::required_detail(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        for msg in name_check(name) {
            causes.push(Cause::invalid(
                "metadata.name",
                &Value::String(name.into()),
                msg,
            ));
        }
    }
    let namespace = str_field("namespace");
    if !namespace.is_empty() && namespaced {
        for msg in is_dns1123_label(namespace) {
            causes.push(Cause::invalid(
                "metadata.namespace",
                &Value::String(namespace.into()),
                msg,
            ));
        }
    }
    if let Some(labels) = meta.get("labels") {
        causes.extend(validate_labels(labels, "metadata.labels"));
    }
    if let Some(annotations) = meta.get("annotations") {
        causes.extend(validate_annotations(annotations, "metadata.annotations"));
    }
    causes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
    const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    fn check(f: fn(&str) -> Vec<String>, cases: &[(&str, &[&str])]) {
        for (input, want) in cases {
            assert_eq!(f(input), want.to_vec(), "input {input:?}");
        }
    }

    #[test]
    fn dns1123_subdomain() {
        let long = "a".repeat(254);
        check(
            is_dns1123_subdomain,
            &[
                ("a", &[]),
                ("my-app.example.com", &[]),
                ("0", &[]),
                ("", &[SUBDOMAIN_MSG]),
                ("A", &[SUBDOMAIN_MSG]),
                ("a_b", &[SUBDOMAIN_MSG]),
                ("-a", &[SUBDOMAIN_MSG]),
                ("a.", &[SUBDOMAIN_MSG]),
                (&long, &["must be no more than 253 characters"]),
            ],
        );
    }

    #[test]
    fn dns1123_label() {
        let long = "a".repeat(64);
        check(
            is_dns1123_label,
            &[
                ("kube-system", &[]),
                ("1abc", &[]),
                ("a.b", &["must not contain dots"]),
                ("Abc", &[LABEL_MSG]),
                ("a-", &[LABEL_MSG]),
                ("", &[LABEL_MSG]),
                (&long, &["must be no more than 63 characters"]),
            ],
        );
    }

    #[test]
    fn dns1035_label() {
        check(
            is_dns1035_label,
            &[
                ("my-svc", &[]),
                ("1abc", &[DNS1035_MSG]),
                ("a.b", &[DNS1035_MSG]),
            ],
        );
    }

    #[test]
    fn qualified_name() {
        let long_name = "a".repeat(64);
        let long_prefixed = format!("example.com/{long_name}");
        let prefix_msg = format!("prefix part {SUBDOMAIN_MSG}");
        let three_parts = "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
        check(
            is_qualified_name,
            &[
                ("app", &[]),
                ("App.Name_1", &[]),
                ("example.com/app", &[]),
                ("a b", &[NAME_PART_MSG]),
                ("", &["name part must be non-empty", NAME_PART_MSG]),
                ("/a", &["prefix part must be non-empty"]),
                ("Example.com/a", &[&prefix_msg]),
                ("a/b/c", &[three_parts]),
                (
                    &long_name,
                    &["name part must be no more than 63 characters"],
                ),
                (
                    &long_prefixed,
                    &["name part must be no more than 63 characters"],
                ),
            ],
        );
    }

    #[test]
    fn label_value() {
        let long = "a".repeat(64);
        check(
            is_valid_label_value,
            &[
                ("", &[]),
                ("v1.2_x-y", &[]),
                ("-a", &[LABEL_VALUE_MSG]),
                ("a b", &[LABEL_VALUE_MSG]),
                (&long, &["must be no more than 63 characters"]),
            ],
        );
    }

    #[test]
    fn env_var_and_config_key() {
        let env_msg = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')";
        check(
            is_env_var_name,
            &[
                ("PATH", &[]),
                ("my.env-name", &[]),
                ("1A", &[env_msg]),
                ("A=B", &[env_msg]),
                ("..", &["must not be '..'"]),
                ("..a", &["must not start with '..'"]),
            ],
        );
        let key_msg = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
        check(
            is_config_map_key,
            &[
                ("app.conf", &[]),
                ("a/b", &[key_msg]),
                ("", &[key_msg]),
                (".", &["must not be '.'"]),
            ],
        );
    }

    #[test]
    fn ports_ips_percent() {
        assert!(is_valid_port_num(1).is_empty());
        assert!(is_valid_port_num(65535).is_empty());
        assert_eq!(
            is_valid_port_num(0),
            vec!["must be between 1 and 65535, inclusive"]
        );
        assert_eq!(
            is_valid_port_num(65536),
            vec!["must be between 1 and 65535, inclusive"]
        );
        check(
            is_valid_port_name,
            &[
                ("http", &[]),
                ("h2c-1", &[]),
                ("1234", &["must contain at least one letter (a-z)"]),
                ("a--b", &["must not contain consecutive hyphens"]),
                ("-ab", &["must not begin or end with a hyphen"]),
                (
                    "HTTP",
                    &[
                        "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                        "must contain at least one letter (a-z)",
                    ],
                ),
                ("abcdefghijklmnop", &["must be no more than 15 characters"]),
            ],
        );
        let ip_msg = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
        check(
            is_valid_ip,
            &[
                ("10.0.0.1", &[]),
                ("010.000.000.001", &[]),
                ("::1", &[]),
                ("2001:db8::ffff", &[]),
                ("256.0.0.1", &[ip_msg]),
                ("host", &[ip_msg]),
                ("", &[ip_msg]),
            ],
        );
        let pct_msg = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";
        check(
            is_valid_percent,
            &[("25%", &[]), ("25", &[pct_msg]), ("%", &[pct_msg])],
        );
    }

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn labels_and_annotations() {
        let causes = validate_labels(&json!({"a b": "ok", "k": "-v"}), "metadata.labels");
        assert_eq!(
            messages(&causes),
            vec![
                format!("metadata.labels: Invalid value: \"a b\": {NAME_PART_MSG}"),
                format!("metadata.labels: Invalid value: \"-v\": {LABEL_VALUE_MSG}"),
            ]
        );
        assert!(validate_labels(&json!({"app": "web"}), "metadata.labels").is_empty());
        assert!(validate_labels(&Value::Null, "metadata.labels").is_empty());

        // Annotation keys are checked case-insensitively.
        assert!(validate_annotations(&json!({"Example.COM/Key": "x"}), "a").is_empty());
        let causes = validate_annotations(&json!({"a b": "x"}), "metadata.annotations");
        assert_eq!(
            messages(&causes),
            vec![format!(
                "metadata.annotations: Invalid value: \"a b\": {NAME_PART_MSG}"
            )]
        );
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        let causes = validate_annotations(&json!({ "k": big }), "metadata.annotations");
        assert_eq!(
            messages(&causes),
            vec!["metadata.annotations: Too long: must have at most 262144 bytes"]
        );
        assert_eq!(causes[0].reason, "FieldValueTooLong");
        let fits = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT - 1);
        assert!(validate_annotations(&json!({ "k": fits }), "metadata.annotations").is_empty());
    }

    #[test]
    fn object_meta() {
        let ok = json!({"name": "web", "namespace": "default", "labels": {"app": "web"}});
        assert!(validate_object_meta(&ok, true, is_dns1123_subdomain).is_empty());

        let missing = validate_object_meta(&json!({}), true, is_dns1123_subdomain);
        assert_eq!(
            messages(&missing),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
        assert_eq!(missing[0].reason, "FieldValueRequired");

        // A generateName ending in '-' is fine: the random suffix follows it.
        let generated = json!({"generateName": "web-"});
        assert!(validate_object_meta(&generated, true, is_dns1123_subdomain).is_empty());
        let bad_gen =
            validate_object_meta(&json!({"generateName": "Web-"}), true, is_dns1123_subdomain);
        assert_eq!(
            messages(&bad_gen),
            vec![format!(
                "metadata.generateName: Invalid value: \"Web-\": {SUBDOMAIN_MSG}"
            )]
        );

        let bad = json!({"name": "Web", "namespace": "a.b", "labels": {"k": "-"}});
        assert_eq!(
            messages(&validate_object_meta(&bad, true, is_dns1123_label)),
            vec![
                format!("metadata.name: Invalid value: \"Web\": {LABEL_MSG}"),
                "metadata.namespace: Invalid value: \"a.b\": must not contain dots".to_string(),
                format!("metadata.labels: Invalid value: \"-\": {LABEL_VALUE_MSG}"),
            ]
        );
        // Cluster-scoped objects: the namespace is cleared elsewhere, not checked here.
        let cluster = json!({"name": "n1", "namespace": "a.b"});
        assert!(validate_object_meta(&cluster, false, is_dns1123_subdomain).is_empty());
    }
}
