//! OpenAPI v3 documents, enough for kubectl --validate=strict and kubectl explain.
