//! `api-resources`: NAME SHORTNAMES APIVERSION NAMESPACED KIND from the server's discovery.

use std::process::ExitCode;

use anyhow::Result;

use super::resource::{self, Discovered};
use super::{Ctx, printer};

/// Flags of `api-resources`.
#[derive(clap::Args, Debug)]
pub struct ApiResourcesArgs {
    /// Only namespaced (true) or cluster-scoped (false) resources.
    #[arg(long)]
    pub namespaced: Option<bool>,
    /// Only resources of this API group (`""` for core).
    #[arg(long)]
    pub api_group: Option<String>,
    /// Output format: wide or name.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Leave the header row out.
    #[arg(long)]
    pub no_headers: bool,
}

/// The rows kubectl prints, core group first and then by group and name.
pub fn rows(mut found: Vec<Discovered>, args: &ApiResourcesArgs) -> Vec<Vec<String>> {
    found.retain(|d| args.namespaced.is_none_or(|n| d.res.namespaced == n));
    found.retain(|d| args.api_group.as_deref().is_none_or(|g| d.res.group == g));
    found.sort_by(|a, b| (&a.res.group, &a.res.plural).cmp(&(&b.res.group, &b.res.plural)));
    let wide = args.output.as_deref() == Some("wide");
    let mut out = Vec::new();
    if args.output.as_deref() == Some("name") {
        for d in &found {
            let name = if d.res.group.is_empty() {
                d.res.plural.clone()
            } else {
                d.res.plural_group()
            };
            out.push(vec![name]);
        }
        return out;
    }
    if !args.no_headers {
        let mut h: Vec<String> = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
            .map(String::from)
            .to_vec();
        if wide {
            h.extend(["VERBS", "CATEGORIES"].map(String::from));
        }
        out.push(h);
    }
    for d in found {
        let mut row = vec![
            d.res.plural.clone(),
            d.short_names.join(","),
            d.res.api_version(),
            d.res.namespaced.to_string(),
            d.res.kind.clone(),
        ];
        if wide {
            row.push(format!("[{}]", d.verbs.join(" ")));
            row.push(d.categories.join(","));
        }
        out.push(row);
    }
    out
}

/// Runs `api-resources`.
pub async fn run(ctx: &Ctx, args: ApiResourcesArgs) -> Result<ExitCode> {
    let found = resource::discover(&ctx.client).await?;
    print!("{}", printer::align(&rows(found, &args)));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::resource::resolve_local;

    fn disc(name: &str, shorts: &[&str]) -> Discovered {
        Discovered {
            res: resolve_local(name).unwrap(),
            singular: String::new(),
            short_names: shorts.iter().map(|s| s.to_string()).collect(),
            verbs: vec!["get".into(), "list".into()],
            categories: vec![],
        }
    }

    #[test]
    fn core_first_then_groups() {
        let args = ApiResourcesArgs {
            namespaced: None,
            api_group: None,
            output: None,
            no_headers: false,
        };
        let found = vec![
            disc("deployments", &["deploy"]),
            disc("pods", &["po"]),
            disc("nodes", &["no"]),
        ];
        let text = printer::align(&rows(found, &args));
        assert_eq!(
            text,
            "NAME          SHORTNAMES   APIVERSION   NAMESPACED   KIND\n\
             nodes         no           v1           false        Node\n\
             pods          po           v1           true         Pod\n\
             deployments   deploy       apps/v1      true         Deployment\n"
        );
        let only_cluster = ApiResourcesArgs {
            namespaced: Some(false),
            output: Some("name".into()),
            ..args
        };
        let found = vec![disc("deployments", &[]), disc("nodes", &[])];
        assert_eq!(rows(found, &only_cluster), vec![vec!["nodes".to_string()]]);
    }
}
