//! Registry wire clients.
//!
//! * [`http`] — shared plumbing for every registry client: requests as data
//!   ([`http::RequestRecord`]) so rehearsals can record exactly what a live run
//!   would send, error classification, `Retry-After` parsing and redaction.
//! * [`npm`] — the npm registry client (npmjs.org, Verdaccio, …).
//! * [`oci`] — OCI distribution (container registry) client.
//! * [`crates`] — the cargo registry web API (crates.io or a private registry).
//! * [`github`] — the GitHub REST API through octocrab (Actions secrets, workflows,
//!   releases, advisories, issues and pull requests).
//! * [`pypi`] — PyPI's JSON and Simple APIs (read-only: PyPI has no yank API).
pub mod crates;
pub mod github;
pub mod http;
pub mod npm;
pub mod oci;
pub mod pypi;
