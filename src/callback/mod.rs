//! Push callback receiver: takes Tencent-style push / interruption callbacks,
//! checks `sign = MD5(key + t)` and that `t` has not passed, spots retries, counts,
//! and publishes every verified event on a channel. `router(state)` is the HTTP app;
//! `serve(listener, state, shutdown)` runs it with header and body timeouts and a
//! lingering close.
//!
//! - `event`: the callback body, its sign check and renderings; pure.
//! - `state`: [`ReceiverState`]: key, clock, counters, duplicate memory, `accept`.
//! - `http`: the router and its handler (method, path, body limit and timeout).
//! - `server`: the accept loop: header timeout, connection cap, lingering close.

mod event;
mod http;
mod server;
mod state;

#[cfg(test)]
pub(crate) use event::samples;
pub use event::{CallbackEvent, EVENT_INTERRUPT, EVENT_PUSH, human_line, redacted_json, verify};
pub use http::router;
pub use server::{LINGER_BYTES, LINGER_TIME, ServeOptions, serve, serve_router, serve_with};
pub use state::{
    Clock, Counters, MAX_BODY, Received, ReceiverConfig, ReceiverState, Reject, SEEN_CAP,
    system_clock,
};
