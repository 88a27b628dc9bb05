//! Authentication and the cluster's credentials: CA and serving certificates, tokens,
//! kubeconfig files.
