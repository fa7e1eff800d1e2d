//! Preflight of the github actions (filled in by its own change).
