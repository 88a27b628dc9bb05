//! `wait TYPE/NAME... --for=condition=C[=V] | --for=delete | --for=jsonpath={...}[=V]
//! [--timeout=30s]`: polls each object until the condition holds, printing
//! `<type>/<name> condition met` as kubectl's `wait` does, or fails on the timeout.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use serde_json::Value;

use super::resource::{self, Res};
use super::rollout::parse_duration;
use super::{Ctx, errors};

/// How often an object is read again.
const POLL: Duration = Duration::from_millis(250);

/// Flags of `wait`.
#[derive(clap::Args, Debug)]
pub struct WaitArgs {
    /// `TYPE/NAME...` or `TYPE NAME...`.
    pub args: Vec<String>,
    /// `delete`, `condition=NAME[=VALUE]` or `jsonpath={EXPR}[=VALUE]`.
    #[arg(long = "for")]
    pub for_: String,
    /// How long to wait; 0 checks once, a negative value waits a week.
    #[arg(long, default_value = "30s", allow_hyphen_values = true)]
    pub timeout: String,
}

/// What `--for` asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// The object is gone.
    Delete,
    /// A `status.conditions` entry of this type has this status (both case-insensitive).
    Condition { type_: String, status: String },
    /// The path resolves; with a value, to that value.
    JsonPath {
        path: Vec<Step>,
        value: Option<String>,
    },
}

/// One step of the JSONPath subset `wait` accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `.name`
    Field(String),
    /// `[n]`
    Index(usize),
    /// `[?(@.field=="value")]`: the first element whose field has the value.
    Filter(String, String),
}

/// Parses `--for`.
pub fn parse_for(text: &str) -> Result<Wanted> {
    if text.eq_ignore_ascii_case("delete") {
        return Ok(Wanted::Delete);
    }
    if let Some(rest) = text.strip_prefix("condition=") {
        let (type_, status) = rest.split_once('=').unwrap_or((rest, "true"));
        if type_.is_empty() {
            bail!("condition name must not be empty");
        }
        return Ok(Wanted::Condition {
            type_: type_.into(),
            status: status.into(),
        });
    }
    if let Some(rest) = text.strip_prefix("jsonpath=") {
        let Some(close) = rest.rfind('}') else {
            bail!("jsonpath wait format must be --for=jsonpath='{{.status.readyReplicas}}'=3");
        };
        let expr = &rest[..=close];
        let value = match &rest[close + 1..] {
            "" => None,
            v => Some(
                v.strip_prefix('=')
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| anyhow!("jsonpath wait has to have a value after equal sign"))?
                    .to_string(),
            ),
        };
        return Ok(Wanted::JsonPath {
            path: parse_path(expr)?,
            value,
        });
    }
    bail!("unrecognized condition: {text:?}")
}

/// Parses `{.a.b[0][?(@.type=="Ready")].status}`.
fn parse_path(expr: &str) -> Result<Vec<Step>> {
    let bad = || anyhow!("unsupported jsonpath expression {expr:?}");
    let inner = expr
        .strip_prefix('{')
        .and_then(|e| e.strip_suffix('}'))
        .ok_or_else(bad)?;
    let mut rest = inner.strip_prefix('$').unwrap_or(inner);
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return Err(bad());
            }
            steps.push(Step::Field(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("[?(@.") {
            let end = r.find(")]").ok_or_else(bad)?;
            let (field, value) = r[..end].split_once("==").ok_or_else(bad)?;
            let value = value.trim().trim_matches(['"', '\'']).to_string();
            steps.push(Step::Filter(field.trim().to_string(), value));
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(bad)?;
            let inside = &r[..end];
            match inside.parse::<usize>() {
                Ok(n) => steps.push(Step::Index(n)),
                Err(_) => {
                    let key = inside.trim_matches(['"', '\'']);
                    if key.is_empty() || key == inside {
                        return Err(bad());
                    }
                    steps.push(Step::Field(key.to_string()));
                }
            }
            rest = &r[end + 1..];
        } else {
            return Err(bad());
        }
    }
    Ok(steps)
}

/// The value at `path` in `obj`.
fn lookup<'a>(obj: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, step| match step {
        Step::Field(f) => v.get(f),
        Step::Index(i) => v.get(*i),
        Step::Filter(f, want) => v.as_array()?.iter().find(|e| {
            e.get(f)
                .is_some_and(|x| text_of(x).as_deref() == Some(want))
        }),
    })
}

/// A primitive as kubectl's JSONPath prints it; `None` for maps and lists.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(_) | Value::Number(_) | Value::Null => Some(v.to_string()),
        _ => None,
    }
}

/// Whether `obj` meets the condition (for `Delete`, the caller checks existence).
pub fn met(obj: &Value, wanted: &Wanted) -> Result<bool> {
    match wanted {
        Wanted::Delete => Ok(false),
        Wanted::Condition { type_, status } => {
            let generation = obj["metadata"]["generation"].as_i64();
            Ok(obj["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| {
                    // A condition written for an older generation does not count.
                    match (c["observedGeneration"].as_i64(), generation) {
                        (Some(o), Some(g)) => o >= g,
                        _ => true,
                    }
                })
                .any(|c| {
                    c["type"]
                        .as_str()
                        .is_some_and(|t| t.eq_ignore_ascii_case(type_))
                        && c["status"]
                            .as_str()
                            .is_some_and(|s| s.eq_ignore_ascii_case(status))
                }))
        }
        Wanted::JsonPath { path, value } => match (lookup(obj, path), value) {
            (None, _) => Ok(false),
            (Some(v), None) => Ok(match v {
                Value::Null => false,
                Value::Array(a) => !a.is_empty(),
                Value::Object(m) => !m.is_empty(),
                _ => true,
            }),
            (Some(v), Some(want)) => match text_of(v) {
                Some(t) => Ok(t == *want),
                None => bail!("jsonpath leads to a nested object or list which is not supported"),
            },
        },
    }
}

fn timeout_of(text: &str) -> Result<Duration> {
    if text.starts_with('-') {
        return Ok(Duration::from_secs(7 * 24 * 3600));
    }
    parse_duration(text)
}

/// Runs `wait`.
pub async fn run(ctx: &Ctx, args: WaitArgs) -> Result<ExitCode> {
    let wanted = parse_for(&args.for_)?;
    let timeout = timeout_of(&args.timeout)?;
    let deadline = Instant::now() + timeout;
    let mut targets: Vec<(Res, String)> = Vec::new();
    for (t, name) in resource::split_args(&args.args)? {
        let Some(name) = name else {
            bail!("resource name may not be empty");
        };
        targets.push((resource::resolve(&ctx.client, &t).await?, name));
    }
    for (res, name) in &targets {
        let api = res.api(
            &ctx.client,
            res.namespaced.then_some(ctx.namespace.as_str()),
        );
        let mut seen = false;
        loop {
            match api.get(name).await {
                Ok(obj) => {
                    seen = true;
                    if met(&serde_json::to_value(&obj)?, &wanted)? {
                        break;
                    }
                }
                Err(kube::Error::Api(s)) if s.code == 404 && wanted == Wanted::Delete => break,
                Err(e) => return Err(errors::with_prefix(e, "")),
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out waiting for the condition on {}/{name}",
                    res.plural
                );
            }
            tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
        if seen || wanted != Wanted::Delete {
            println!("{}/{name} condition met", res.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(conditions: Value) -> Value {
        json!({"metadata": {"name": "x", "generation": 1},
            "status": {"conditions": conditions, "succeeded": 5, "ready": 0,
                "active": 0, "uncountedTerminatedPods": {}}})
    }

    #[test]
    fn conditions_match_case_insensitively_with_an_optional_status() {
        let w = parse_for("condition=complete").unwrap();
        assert_eq!(
            w,
            Wanted::Condition {
                type_: "complete".into(),
                status: "true".into()
            }
        );
        let done = job(json!([{"type": "Complete", "status": "True"}]));
        assert!(met(&done, &w).unwrap());
        assert!(!met(&job(json!([])), &w).unwrap());
        let failed = job(json!([{"type": "Complete", "status": "False"}]));
        assert!(!met(&failed, &w).unwrap());
        assert!(met(&failed, &parse_for("condition=Complete=false").unwrap()).unwrap());
        let stale = job(json!([{"type": "Complete", "status": "True", "observedGeneration": 0}]));
        assert!(!met(&stale, &w).unwrap());
        assert!(parse_for("condition=").is_err());
        assert!(parse_for("ready").is_err());
        assert_eq!(parse_for("delete").unwrap(), Wanted::Delete);
    }

    #[test]
    fn jsonpath_values_existence_and_filters() {
        let j = job(json!([{"type": "SuccessCriteriaMet", "status": "True"},
            {"type": "Complete", "status": "True"}]));
        let ok = |f: &str| met(&j, &parse_for(f).unwrap()).unwrap();
        assert!(ok("jsonpath={.status.succeeded}=5"));
        assert!(!ok("jsonpath={.status.succeeded}=4"));
        assert!(ok("jsonpath={.status.conditions[1].type}=Complete"));
        assert!(ok(
            "jsonpath={.status.conditions[?(@.type==\"Complete\")].status}=True"
        ));
        assert!(ok("jsonpath={.metadata['name']}=x"));
        assert!(ok("jsonpath={.status.conditions}"));
        assert!(!ok("jsonpath={.status.uncountedTerminatedPods}"));
        assert!(!ok("jsonpath={.status.completionTime}"));
        assert!(met(&j, &parse_for("jsonpath={.status}=x").unwrap()).is_err());
        assert!(parse_for("jsonpath={.status.succeeded}=").is_err());
        assert!(parse_for("jsonpath={status}").is_err());
    }

    #[test]
    fn timeouts_as_kubectl_reads_them() {
        assert_eq!(timeout_of("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(timeout_of("0").unwrap(), Duration::ZERO);
        assert_eq!(timeout_of("-1s").unwrap(), Duration::from_secs(604800));
    }
}
