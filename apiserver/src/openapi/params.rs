//! Path and query parameters of the operations in an OpenAPI v3 document, named and typed
//! as the Kubernetes API server accepts them.

use serde_json::{Value, json};

fn param(name: &str, location: &str, ty: &str, description: &str) -> Value {
    let mut p = json!({
        "name": name,
        "in": location,
        "description": description,
        "schema": { "type": ty },
    });
    if location == "path" {
        p["required"] = json!(true);
    }
    p
}

/// `name` (items), `namespace` (namespaced resources) and `pretty`, shared by a path's operations.
pub fn path_params(namespaced: bool, item: bool) -> Vec<Value> {
    let mut out = Vec::new();
    if item {
        out.push(param("name", "path", "string", "name of the object"));
    }
    if namespaced {
        out.push(param(
            "namespace",
            "path",
            "string",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    out.push(param(
        "pretty",
        "query",
        "string",
        "If 'true', then the output is pretty printed.",
    ));
    out
}

/// Create, replace and patch: `dryRun`, `fieldManager`, `fieldValidation` (and `force` for patch).
pub fn write_params(patch: bool) -> Vec<Value> {
    let mut out = vec![
        param(
            "dryRun",
            "query",
            "string",
            "When present (All), validate and admit the request without persisting it.",
        ),
        param(
            "fieldManager",
            "query",
            "string",
            "Name of the actor making these changes, recorded in managedFields.",
        ),
        param(
            "fieldValidation",
            "query",
            "string",
            "How to treat unknown or duplicate fields in the object: Ignore, Warn (the default) or Strict (reject the request).",
        ),
    ];
    if patch {
        out.push(param(
            "force",
            "query",
            "boolean",
            "Take over conflicting fields in server-side apply.",
        ));
    }
    out
}

/// List and deletecollection: paging, selectors, resource versions; `watch` ones when watchable.
pub fn list_params(watch: bool) -> Vec<Value> {
    let mut out = vec![
        param(
            "continue",
            "query",
            "string",
            "Continue token from the previous page of a list.",
        ),
        param(
            "fieldSelector",
            "query",
            "string",
            "Restrict the returned objects by their fields.",
        ),
        param(
            "labelSelector",
            "query",
            "string",
            "Restrict the returned objects by their labels.",
        ),
        param(
            "limit",
            "query",
            "integer",
            "Maximum number of objects in one page.",
        ),
        param(
            "resourceVersion",
            "query",
            "string",
            "Constraint on the resource version a request may be served from.",
        ),
        param(
            "resourceVersionMatch",
            "query",
            "string",
            "How resourceVersion is applied to list calls.",
        ),
        param(
            "timeoutSeconds",
            "query",
            "integer",
            "Duration limit of the list or watch call.",
        ),
    ];
    if watch {
        out.push(param(
            "allowWatchBookmarks",
            "query",
            "boolean",
            "Ask for BOOKMARK watch events.",
        ));
        out.push(param(
            "sendInitialEvents",
            "query",
            "boolean",
            "Start a watch with synthetic ADDED events for existing objects.",
        ));
        out.push(param(
            "watch",
            "query",
            "boolean",
            "Stream changes instead of listing.",
        ));
    }
    out
}

/// Delete and deletecollection: `dryRun`, grace period and propagation policy.
pub fn delete_params() -> Vec<Value> {
    vec![
        param(
            "dryRun",
            "query",
            "string",
            "When present (All), validate the request without deleting.",
        ),
        param(
            "gracePeriodSeconds",
            "query",
            "integer",
            "Seconds before the object is deleted; 0 deletes immediately.",
        ),
        param(
            "orphanDependents",
            "query",
            "boolean",
            "Deprecated: use propagationPolicy.",
        ),
        param(
            "propagationPolicy",
            "query",
            "string",
            "Garbage collection of dependents: Orphan, Background or Foreground.",
        ),
    ]
}

/// `pods/log`: container selection and tailing options.
pub fn log_params() -> Vec<Value> {
    vec![
        param(
            "container",
            "query",
            "string",
            "The container whose log to stream; defaults to the only or default container.",
        ),
        param("follow", "query", "boolean", "Follow the log stream."),
        param(
            "limitBytes",
            "query",
            "integer",
            "Stop after this many bytes.",
        ),
        param(
            "previous",
            "query",
            "boolean",
            "The log of the previous, terminated container instance.",
        ),
        param(
            "sinceSeconds",
            "query",
            "integer",
            "Only lines newer than this many seconds.",
        ),
        param(
            "tailLines",
            "query",
            "integer",
            "Only this many lines from the end.",
        ),
        param(
            "timestamps",
            "query",
            "boolean",
            "Prefix each line with an RFC3339 timestamp.",
        ),
    ]
}

/// Connect subresources (`exec`, `attach`, `portforward`): streams, command, ports.
pub fn connect_params(sub: &str) -> Vec<Value> {
    let stream = |n: &str| {
        param(
            n,
            "query",
            "boolean",
            &format!("Redirect the {n} stream of the process."),
        )
    };
    match sub {
        "portforward" => vec![param("ports", "query", "integer", "Ports to forward.")],
        "exec" | "attach" => {
            let mut out = vec![param(
                "container",
                "query",
                "string",
                "The container to connect to.",
            )];
            if sub == "exec" {
                out.push(param(
                    "command",
                    "query",
                    "string",
                    "The command to run, one argument per parameter.",
                ));
            }
            out.extend(["stdin", "stdout", "stderr"].map(stream));
            out.push(param("tty", "query", "boolean", "Allocate a terminal."));
            out
        }
        _ => Vec::new(),
    }
}
