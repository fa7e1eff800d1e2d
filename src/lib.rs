//! Recall: a bad-release incident response orchestrator.
//!
//! See `docs/ARCHITECTURE.md` for the code map and the invariants.

pub mod actions;
pub mod blast;
pub mod bundled;
pub mod cli;
pub mod cli_credentials;
pub mod cli_gameday;
pub mod cli_kube;
pub mod cli_sbom;
pub mod config;
pub mod duration;
pub mod engine;
pub mod expr;
pub mod gameday;
pub mod http;
pub mod k8s;
pub mod net;
pub mod playbook;
pub mod postmortem;
pub mod report;
pub mod runner;
pub mod secrets;
pub mod serve;
pub mod slack;
pub mod store;
pub mod timeline;
