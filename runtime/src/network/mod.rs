//! Pod sandbox networking (in progress).
