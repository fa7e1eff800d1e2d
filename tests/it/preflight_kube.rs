//! Preflight of the kube actions (filled in by its own change).
