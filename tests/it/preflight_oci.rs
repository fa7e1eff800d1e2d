//! Preflight of the oci actions (filled in by its own change).
