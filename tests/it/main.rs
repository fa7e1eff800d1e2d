//! The single integration-test binary (one link step on 2 cores). Each module exercises
//! real components: the `recall` binary, SQLite, and a real Verdaccio for npm.

mod fakes;
mod support;

mod audit;
mod bad_input;
mod chaos;
mod cli;
mod crash;
mod crates_flow;
mod crates_pypi_clients;
mod credentials_flow;
mod faults;
mod fencing;
mod gameday;
mod gameday_schedule;
mod github_fake;
mod github_flow;
mod github_seal;
mod kube_cel;
mod kube_fake;
mod kube_flow;
mod npm_live;
mod npm_trust;
mod npm_unpublish;
mod oci_image;
mod oci_registry;
mod pages;
mod preflight_github;
mod preflight_kube;
mod preflight_oci;
mod pypi_flow;
mod sbom;
mod serve;
mod slack_fake;
mod store_suite;
mod timeline_export;
