//! Discovery documents: /api, /apis, and the resource list of every group-version.
