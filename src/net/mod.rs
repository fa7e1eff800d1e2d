//! Registry wire clients.
//!
//! * [`http`] — shared plumbing for every registry client: requests as data
//!   ([`http::RequestRecord`]) so rehearsals can record exactly what a live run
//!   would send, error classification, `Retry-After` parsing and redaction.
//! * [`npm`] — the npm registry client (npmjs.org, Verdaccio, …).
pub mod http;
pub mod npm;
