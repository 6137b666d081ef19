//! SRT transport, the one place that touches the `srt-tokio` crate (pinned:
//! its maintainers say it is not actively maintained, so it stays behind
//! this module to be replaceable): `caller` pushes, `listen` takes pushes,
//! `publish` is the SRT publish engine over `caller`.

pub mod caller;
pub mod listen;
pub mod publish;
