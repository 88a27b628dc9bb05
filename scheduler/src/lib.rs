//! The skiff scheduler: scheduling queue, filter and score plugins, binder (arrives with the scheduling issue).
