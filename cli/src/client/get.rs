//! `get`: server-side Tables printed as kubectl prints them, `-o yaml|json|name|wide`,
//! selectors, `-A`, `--show-labels` and `-w`.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use futures::{AsyncBufReadExt, TryStreamExt};
use kube::Client;
use kube::api::{GetParams, ListParams, WatchParams};
use kube::core::Request;
use serde_json::Value;

use super::printer::{self, TableOptions};
use super::resource::{self, Res};
use super::{Ctx, errors};

/// What kubectl sends to ask for a server-side Table.
pub const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// Flags of `get`.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// `TYPE[,TYPE...] [NAME...]` or `TYPE/NAME...`.
    pub args: Vec<String>,
    /// Output format: yaml, json, name or wide.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// After listing, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Show labels as the last column.
    #[arg(long)]
    pub show_labels: bool,
    /// Leave the header row out.
    #[arg(long)]
    pub no_headers: bool,
}

/// One block of output: a type and the names asked for (none = list).
struct Query {
    res: Res,
    names: Vec<String>,
}

/// Runs `get`.
pub async fn run(ctx: &Ctx, args: GetArgs) -> Result<ExitCode> {
    if args.args.is_empty() {
        bail!(
            "You must specify the type of resource to get. Use \"skiff api-resources\" for a complete list of supported resources."
        );
    }
    let output = args.output.clone().unwrap_or_default();
    if !matches!(output.as_str(), "" | "wide" | "yaml" | "json" | "name") {
        bail!(
            "unable to match a printer suitable for the output format \"{output}\", allowed formats are: json,name,wide,yaml"
        );
    }
    let mut queries: Vec<Query> = Vec::new();
    let mut saw_all = false;
    for (t, name) in resource::split_args(&args.args)? {
        let types = if t == "all" {
            saw_all = true;
            resource::category_all()
        } else {
            vec![resource::resolve(&ctx.client, &t).await?]
        };
        for res in types {
            match queries.iter_mut().find(|q| q.res == res) {
                Some(q) => q.names.extend(name.clone()),
                None => queries.push(Query {
                    res,
                    names: name.clone().into_iter().collect(),
                }),
            }
        }
    }
    let namespace = (!args.all_namespaces).then_some(ctx.namespace.as_str());
    let several = queries.len() > 1 || saw_all;
    let single_named = queries.len() == 1 && queries[0].names.len() == 1;
    let mut failed = false;
    // kubectl prints what it found first and the errors after it.
    let mut error_lines: Vec<String> = Vec::new();
    let mut objects: Vec<(Res, Value)> = Vec::new();
    let mut tables: Vec<(Res, Value)> = Vec::new();
    let table_output = matches!(output.as_str(), "" | "wide");
    for q in &queries {
        let ns = namespace.filter(|_| q.res.namespaced);
        let collection = q.res.collection_path(ns);
        let fetched = if q.names.is_empty() {
            list(&ctx.client, &collection, &args, table_output)
                .await
                .map(|v| vec![v])
        } else {
            let mut out = Vec::new();
            for n in &q.names {
                match get_one(&ctx.client, &collection, n, table_output).await {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        error_lines.push(errors::format(&e));
                        failed = true;
                    }
                }
            }
            Ok(out)
        };
        for v in fetched? {
            if table_output {
                let table = as_table(v);
                // Several names of one type share one table, as with kubectl.
                match tables.last_mut() {
                    Some((res, t)) if *res == q.res => {
                        let rows = table["rows"].as_array().cloned().unwrap_or_default();
                        if let Some(existing) = t["rows"].as_array_mut() {
                            existing.extend(rows);
                        }
                    }
                    _ => tables.push((q.res.clone(), table)),
                }
            } else if v.get("items").is_some() {
                for mut item in v["items"].as_array().cloned().unwrap_or_default() {
                    item["apiVersion"] = Value::String(q.res.api_version());
                    item["kind"] = Value::String(q.res.kind.clone());
                    objects.push((q.res.clone(), item));
                }
            } else {
                objects.push((q.res.clone(), v));
            }
        }
    }
    let empty = if table_output {
        tables
            .iter()
            .all(|(_, t)| t["rows"].as_array().is_none_or(Vec::is_empty))
    } else {
        objects.is_empty()
    };
    match output.as_str() {
        "yaml" | "json" => {
            if !objects.is_empty() || !single_named {
                let doc = if single_named && objects.len() == 1 {
                    objects[0].1.clone()
                } else {
                    printer::list_of(objects.iter().map(|(_, o)| o.clone()).collect())
                };
                let text = if output == "yaml" {
                    printer::to_yaml(&doc)?
                } else {
                    printer::to_json(&doc)?
                };
                print!("{text}");
            }
        }
        "name" => {
            for (res, o) in &objects {
                println!(
                    "{}/{}",
                    res.display(),
                    o["metadata"]["name"].as_str().unwrap_or_default()
                );
            }
        }
        _ => {
            let mut first = true;
            for (res, table) in &tables {
                if table["rows"].as_array().is_none_or(Vec::is_empty) {
                    continue;
                }
                let opts = TableOptions {
                    wide: output == "wide",
                    namespace_column: args.all_namespaces && res.namespaced,
                    show_labels: args.show_labels,
                    kind_prefix: several.then(|| res.display()),
                    no_headers: args.no_headers,
                };
                if !first {
                    println!();
                }
                first = false;
                print!("{}", printer::align(&printer::table_rows(table, &opts)));
            }
        }
    }
    for line in &error_lines {
        eprintln!("{line}");
    }
    if empty
        && !failed
        && (queries.iter().any(|q| q.names.is_empty()))
        && !(output == "json" || output == "yaml")
    {
        if args.all_namespaces || queries.iter().all(|q| !q.res.namespaced) {
            eprintln!("No resources found");
        } else {
            eprintln!("No resources found in {} namespace.", ctx.namespace);
        }
    }
    if args.watch {
        let [q] = queries.as_slice() else {
            bail!("you may only specify a single resource type");
        };
        let initial = tables
            .first()
            .map(|(_, t)| t.clone())
            .unwrap_or(Value::Null);
        let ns = namespace.filter(|_| q.res.namespaced);
        watch(ctx, &q.res, ns, &args, initial, q.names.first().cloned()).await?;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn send_json(client: &Client, mut req: http::Request<Vec<u8>>, table: bool) -> Result<Value> {
    if table {
        req.headers_mut().insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static(TABLE_ACCEPT),
        );
    }
    let text = client.request_text(req).await?;
    serde_json::from_str(&text).context("decoding the server's answer")
}

/// Lists a collection, following `continue` tokens in pages of 500 as kubectl does.
async fn list(client: &Client, collection: &str, args: &GetArgs, table: bool) -> Result<Value> {
    let mut lp = ListParams::default().limit(500);
    lp.label_selector = args.selector.clone();
    lp.field_selector = args.field_selector.clone();
    let mut merged: Option<Value> = None;
    loop {
        let page = send_json(client, Request::new(collection).list(&lp)?, table).await?;
        let cont = page["metadata"]["continue"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = if page.get("rows").is_some() {
            "rows"
        } else {
            "items"
        };
        match merged.as_mut() {
            None => merged = Some(page.clone()),
            Some(m) => {
                let more = page[key].as_array().cloned().unwrap_or_default();
                if let Some(arr) = m[key].as_array_mut() {
                    arr.extend(more);
                }
            }
        }
        if cont.is_empty() {
            break;
        }
        lp.continue_token = Some(cont);
    }
    Ok(merged.unwrap_or(Value::Null))
}

async fn get_one(client: &Client, collection: &str, name: &str, table: bool) -> Result<Value> {
    send_json(
        client,
        Request::new(collection).get(name, &GetParams::default())?,
        table,
    )
    .await
}

/// The answer as a Table; a server that sent plain objects gets kubectl's NAME/AGE fallback.
fn as_table(v: Value) -> Value {
    if v["kind"] == "Table" {
        return v;
    }
    let items = match v.get("items").and_then(Value::as_array) {
        Some(items) => items.clone(),
        None => vec![v.clone()],
    };
    let rows: Vec<Value> = items.iter().map(fallback_row).collect();
    serde_json::json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": v["metadata"]["resourceVersion"]},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "priority": 0},
            {"name": "Age", "type": "string", "format": "", "priority": 0}
        ],
        "rows": rows
    })
}

fn fallback_row(o: &Value) -> Value {
    let meta = &o["metadata"];
    serde_json::json!({
        "cells": [meta["name"], printer::age(meta["creationTimestamp"].as_str())],
        "object": {"metadata": meta}
    })
}

/// Streams changes after the initial listing, printing each changed object's row.
async fn watch(
    ctx: &Ctx,
    res: &Res,
    ns: Option<&str>,
    args: &GetArgs,
    initial: Value,
    name: Option<String>,
) -> Result<()> {
    let collection = res.collection_path(ns);
    let wp = WatchParams {
        label_selector: args.selector.clone(),
        field_selector: match (&name, &args.field_selector) {
            (Some(n), _) => Some(format!("metadata.name={n}")),
            (None, f) => f.clone(),
        },
        ..Default::default()
    };
    let columns = initial["columnDefinitions"].clone();
    let mut last_rows: HashMap<String, Value> = HashMap::new();
    for row in initial["rows"].as_array().into_iter().flatten() {
        last_rows.insert(row_key(row), row.clone());
    }
    let mut rv = initial["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let mut headers_printed = !initial["rows"].as_array().is_none_or(Vec::is_empty);
    let mut widths = Vec::new();
    if headers_printed {
        let opts = TableOptions {
            wide: args.output.as_deref() == Some("wide"),
            namespace_column: args.all_namespaces && res.namespaced,
            show_labels: args.show_labels,
            kind_prefix: None,
            no_headers: args.no_headers,
        };
        printer::align_remembering(&printer::table_rows(&initial, &opts), &mut widths);
    }
    loop {
        let mut req = Request::new(&collection).watch(&wp, &rv)?;
        req.headers_mut().insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static(TABLE_ACCEPT),
        );
        let stream = ctx.client.request_stream(req).await?;
        let mut lines = stream.lines();
        while let Some(line) = lines.try_next().await? {
            if line.trim().is_empty() {
                continue;
            }
            let event: Value = serde_json::from_str(&line).context("decoding a watch event")?;
            let kind = event["type"].as_str().unwrap_or_default();
            let obj = &event["object"];
            if kind == "ERROR" {
                // Too old a revision: start again from now.
                rv = "0".into();
                break;
            }
            if let Some(v) = obj["metadata"]["resourceVersion"].as_str() {
                rv = v.to_string();
            }
            if kind == "BOOKMARK" {
                continue;
            }
            let rows = if obj["kind"] == "Table" {
                obj["rows"].as_array().cloned().unwrap_or_default()
            } else {
                let oname = obj["metadata"]["name"].as_str().unwrap_or_default();
                let key = format!(
                    "{}/{oname}",
                    obj["metadata"]["namespace"].as_str().unwrap_or_default()
                );
                let fetched = if kind == "DELETED" {
                    None
                } else {
                    let path = res.collection_path(obj["metadata"]["namespace"].as_str().or(ns));
                    get_one(&ctx.client, &path, oname, true)
                        .await
                        .ok()
                        .filter(|t| t["kind"] == "Table")
                };
                match fetched {
                    Some(t) => t["rows"].as_array().cloned().unwrap_or_default(),
                    None => last_rows
                        .get(&key)
                        .cloned()
                        .map(|r| vec![r])
                        .unwrap_or_else(|| vec![fallback_row(obj)]),
                }
            };
            let cols = if columns.is_array() && !columns.as_array().is_some_and(Vec::is_empty) {
                columns.clone()
            } else {
                as_table(obj.clone())["columnDefinitions"].clone()
            };
            for row in &rows {
                last_rows.insert(row_key(row), row.clone());
            }
            let table = serde_json::json!({"columnDefinitions": cols, "rows": rows});
            let opts = TableOptions {
                wide: args.output.as_deref() == Some("wide"),
                namespace_column: args.all_namespaces && res.namespaced,
                show_labels: args.show_labels,
                kind_prefix: None,
                no_headers: headers_printed || args.no_headers,
            };
            headers_printed = true;
            let rows = printer::table_rows(&table, &opts);
            print!("{}", printer::align_remembering(&rows, &mut widths));
        }
    }
}

fn row_key(row: &Value) -> String {
    let meta = &row["object"]["metadata"];
    format!(
        "{}/{}",
        meta["namespace"].as_str().unwrap_or_default(),
        meta["name"].as_str().unwrap_or_default()
    )
}
