//! Table-driven tests for label selector parsing, printing and matching.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde_json::json;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn parse_and_print_canonical() {
    let cases = [
        ("", ""),
        ("a=b", "a=b"),
        ("a==b", "a==b"),
        ("a!=b", "a!=b"),
        ("  a = b ,  c  ", "a=b,c"),
        (
            "x in (foo,,baz),y,z notin ()",
            "x in (,baz,foo),y,z notin ()",
        ),
        ("z notin (b, a, a)", "z notin (a,b)"),
        ("!a", "!a"),
        ("b,a=x", "a=x,b"),
        ("a=", "a="),
        ("a>1,b<2", "a>1,b<2"),
        ("example.com/app=web", "example.com/app=web"),
        ("in=notin", "in=notin"),
        ("a in (in,notin)", "a in (in,notin)"),
    ];
    for (input, want) in cases {
        let sel = Selector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(sel.to_string(), want, "input {input:?}");
        // Canonical form parses back to the same selector.
        assert_eq!(
            Selector::parse(&sel.to_string()).unwrap(),
            sel,
            "input {input:?}"
        );
    }
}

#[test]
fn parse_operators() {
    let sel = Selector::parse("a=1,b!=2,c in (x),d notin (y),e,!f,g>3,h<4,i==5").unwrap();
    let ops: Vec<Operator> = sel.requirements.iter().map(|r| r.operator).collect();
    assert_eq!(
        ops,
        vec![
            Operator::Equals,
            Operator::NotEquals,
            Operator::In,
            Operator::NotIn,
            Operator::Exists,
            Operator::DoesNotExist,
            Operator::GreaterThan,
            Operator::LessThan,
            Operator::DoubleEquals,
        ]
    );
}

#[test]
fn parse_errors_match_kubernetes() {
    let name_part = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    let label_value = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
    let cases = [
        (
            "a b",
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
                .to_string(),
        ),
        ("a=b,", "found '', expected: identifier after ','".to_string()),
        ("a=b c", "found 'c', expected: ',' or 'end of string'".to_string()),
        (",a", "found ',', expected: !, identifier, or 'end of string'".to_string()),
        ("a in x", "unable to parse requirement: found 'x' expected: '('".to_string()),
        ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'".to_string()),
        ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier".to_string()),
        ("a==(", "unable to parse requirement: found '(', expected: identifier".to_string()),
        ("! =a", "unable to parse requirement: found '=', expected: identifier".to_string()),
        ("!=a", "found '!=', expected: !, identifier, or 'end of string'".to_string()),
        ("!a=b", "found '=', expected: ',' or 'end of string'".to_string()),
        ("a>x", "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer".to_string()),
        (
            "-a=b",
            format!("unable to parse requirement: <nil>: Invalid value: \"-a\": {name_part}"),
        ),
        (
            "a=-b",
            format!("unable to parse requirement: values[0][a]: Invalid value: \"-b\": {label_value}"),
        ),
    ];
    for (input, want) in cases {
        let err = Selector::parse(input).expect_err(input);
        assert_eq!(err.to_string(), want, "input {input:?}");
    }
}

#[test]
fn matching() {
    let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
    let cases = [
        ("", true),
        ("app=web", true),
        ("app==web", true),
        ("app=db", false),
        ("app!=db", true),
        ("missing!=x", true),
        ("app in (db,web)", true),
        ("app in (db)", false),
        ("app notin (db)", true),
        ("app notin (web)", false),
        ("missing notin (web)", true),
        ("app", true),
        ("missing", false),
        ("!missing", true),
        ("!app", false),
        ("n>4", true),
        ("n>5", false),
        ("n<6", true),
        ("app>1", false),
        ("missing<1", false),
        ("app=web,tier=back", false),
        ("app=web,tier=front", true),
    ];
    for (input, want) in cases {
        let sel = Selector::parse(input).unwrap();
        assert_eq!(sel.matches(&l), want, "selector {input:?}");
        let obj = json!({"app": "web", "tier": "front", "n": "5"});
        assert_eq!(
            sel.matches_json(Some(&obj)),
            want,
            "json selector {input:?}"
        );
    }
}

#[test]
fn matching_absent_json_labels() {
    assert!(Selector::parse("!a,b!=c").unwrap().matches_json(None));
    assert!(!Selector::parse("a").unwrap().matches_json(None));
    assert!(Selector::everything().matches_json(None));
    assert!(Selector::everything().is_empty());
}

#[test]
fn from_label_selector() {
    let sel = Selector::from_label_selector(&LabelSelector {
        match_labels: Some([("b".to_string(), "1".to_string())].into()),
        match_expressions: Some(vec![
            LabelSelectorRequirement {
                key: "a".into(),
                operator: "In".into(),
                values: Some(vec!["y".into(), "x".into()]),
            },
            LabelSelectorRequirement {
                key: "c".into(),
                operator: "DoesNotExist".into(),
                values: None,
            },
        ]),
    })
    .unwrap();
    assert_eq!(sel.to_string(), "a in (x,y),b=1,!c");
    assert!(sel.matches(&labels(&[("a", "x"), ("b", "1")])));
    assert!(!sel.matches(&labels(&[("a", "x"), ("b", "1"), ("c", "")])));

    let empty = Selector::from_label_selector(&LabelSelector::default()).unwrap();
    assert!(empty.is_empty());
    assert!(empty.matches(&labels(&[("x", "y")])));
}

#[test]
fn from_label_selector_errors() {
    let bad_op = LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "a".into(),
            operator: "Gt".into(),
            values: Some(vec!["1".into()]),
        }]),
        ..Default::default()
    };
    assert_eq!(
        Selector::from_label_selector(&bad_op)
            .unwrap_err()
            .to_string(),
        "\"Gt\" is not a valid label selector operator"
    );
    let empty_in = LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "a".into(),
            operator: "In".into(),
            values: None,
        }]),
        ..Default::default()
    };
    assert_eq!(
        Selector::from_label_selector(&empty_in)
            .unwrap_err()
            .to_string(),
        "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
    );
    let exists_with_values = LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "a".into(),
            operator: "Exists".into(),
            values: Some(vec!["x".into()]),
        }]),
        ..Default::default()
    };
    assert_eq!(
        Selector::from_label_selector(&exists_with_values)
            .unwrap_err()
            .to_string(),
        "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist"
    );
}
