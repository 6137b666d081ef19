//! SRT transport. `caller` pushes with our own sans-I/O SRT sender
//! (`packet` encodes and decodes the wire, `sender` is the connection state
//! machine); `listen` takes pushes with the `srt-tokio` crate (pinned: its
//! maintainers say it is not actively maintained, so it stays behind that
//! one module to be replaceable); `publish` is the SRT publish engine over
//! `caller`.

pub mod caller;
pub mod listen;
pub mod packet;
pub mod publish;
pub mod sender;
