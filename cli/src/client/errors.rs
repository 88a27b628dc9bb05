//! Error messages as kubectl prints them: `Error from server (Reason): message` for a Status
//! the server returned, kubectl's multi-line layout for 422 Invalid, `error: ...` otherwise.

use kube::core::Status;

/// The Status inside an error chain, when the server answered with one.
pub fn status_of(err: &anyhow::Error) -> Option<&Status> {
    err.chain()
        .find_map(|e| match e.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(s)) => Some(s.as_ref()),
            _ => None,
        })
}

/// Whether the error is the server's 404.
pub fn is_not_found(err: &anyhow::Error) -> bool {
    status_of(err).is_some_and(|s| s.code == 404)
}

/// Whether the error is the server's 409 Conflict (not AlreadyExists).
pub fn is_conflict(err: &anyhow::Error) -> bool {
    status_of(err).is_some_and(|s| s.code == 409 && s.reason == "Conflict")
}

/// Puts `prefix` before the message of a server Status, as kubectl does with
/// `error when creating "web.yaml": ...`; other errors pass through.
pub fn with_prefix(err: kube::Error, prefix: &str) -> anyhow::Error {
    match err {
        kube::Error::Api(mut s) => {
            s.message = format!("{prefix}{}", s.message);
            anyhow::Error::new(kube::Error::Api(s))
        }
        other => anyhow::Error::new(other),
    }
}

/// The text kubectl prints for an error, without the final newline.
pub fn format(err: &anyhow::Error) -> String {
    match status_of(err) {
        Some(s) => format_status(s),
        None => {
            let msg = chain_text(err);
            if msg.starts_with("error:") {
                msg
            } else {
                format!("error: {msg}")
            }
        }
    }
}

/// The error and its causes joined by `: `, leaving out a cause its parent already quoted.
fn chain_text(err: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !msg.contains(&text) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&text);
        }
    }
    msg
}

/// kubectl's rendering of a failure Status.
pub fn format_status(s: &Status) -> String {
    if s.code == 422 || s.reason == "Invalid" {
        return format_invalid(s);
    }
    if s.reason == "Unauthorized" {
        return format!("error: You must be logged in to the server ({})", s.message);
    }
    if s.reason.is_empty() {
        format!("Error from server: {}", s.message)
    } else {
        format!("Error from server ({}): {}", s.reason, s.message)
    }
}

fn format_invalid(s: &Status) -> String {
    let Some(details) = &s.details else {
        return format!("Error from server (Invalid): {}", s.message);
    };
    let head = if !details.kind.is_empty() || !details.name.is_empty() {
        format!("The {} \"{}\" is invalid", details.kind, details.name)
    } else if !s.message.is_empty() && details.causes.is_empty() {
        s.message.clone()
    } else {
        "The request is invalid".to_string()
    };
    let causes: Vec<String> = details
        .causes
        .iter()
        .map(|c| {
            if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            }
        })
        .collect();
    match causes.as_slice() {
        [] => head,
        [one] => format!("{head}: {one}"),
        many => {
            let mut out = format!("{head}: ");
            for c in many {
                out.push_str("\n* ");
                out.push_str(c);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::{StatusCause, StatusDetails};

    fn status(code: u16, reason: &str, message: &str) -> Status {
        let mut s = Status::failure(message, reason).with_code(code);
        s.details = None;
        s
    }

    #[test]
    fn not_found_reads_like_kubectl() {
        let err = anyhow::Error::new(kube::Error::Api(
            status(404, "NotFound", "deployments.apps \"x\" not found").boxed(),
        ));
        assert_eq!(
            format(&err),
            "Error from server (NotFound): deployments.apps \"x\" not found"
        );
        assert!(is_not_found(&err));
        assert!(!is_conflict(&err));
    }

    #[test]
    fn invalid_lists_causes() {
        let mut s = status(422, "Invalid", "Deployment.apps \"x\" is invalid: ...");
        s.details = Some(StatusDetails {
            name: "x".into(),
            group: "apps".into(),
            kind: "Deployment".into(),
            uid: String::new(),
            causes: vec![
                StatusCause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: "spec.selector".into(),
                },
                StatusCause {
                    reason: "FieldValueInvalid".into(),
                    message: "Invalid value: -1: must be greater than or equal to 0".into(),
                    field: "spec.replicas".into(),
                },
            ],
            retry_after_seconds: 0,
        });
        assert_eq!(
            format_status(&s),
            "The Deployment \"x\" is invalid: \n* spec.selector: Required value\n* spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        s.details.as_mut().unwrap().causes.truncate(1);
        assert_eq!(
            format_status(&s),
            "The Deployment \"x\" is invalid: spec.selector: Required value"
        );
    }

    #[test]
    fn source_prefix_goes_into_the_message() {
        let err = kube::Error::Api(status(404, "NotFound", "namespaces \"x\" not found").boxed());
        let err = with_prefix(err, "error when creating \"web.yaml\": ");
        assert_eq!(
            format(&err),
            "Error from server (NotFound): error when creating \"web.yaml\": namespaces \"x\" not found"
        );
    }

    #[test]
    fn client_errors_get_the_error_prefix() {
        let err = anyhow::anyhow!("the path \"x\" does not exist");
        assert_eq!(format(&err), "error: the path \"x\" does not exist");
        let s = status(500, "", "boom");
        assert_eq!(format_status(&s), "Error from server: boom");
    }
}
