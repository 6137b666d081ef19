//! Ctrl-C (SIGINT) and SIGTERM: a cancellation token for the work, and which
//! signal it was, so commands exit 130 or 143 as shells expect.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// The signal that stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    /// 128 + the signal number, as shells report a process killed by it.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

/// A token cancelled on the first SIGINT or SIGTERM, remembering which.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    pub token: CancellationToken,
    seen: Arc<OnceLock<Signal>>,
}

impl Stop {
    /// A stop that only `cancel` triggers (tests, embedded runs).
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Watches for SIGINT and SIGTERM from now on.
    pub fn on_signals() -> Stop {
        let stop = Stop::new();
        let s = stop.clone();
        tokio::spawn(async move {
            let signal = wait_for_signal().await;
            s.cancel(signal);
        });
        stop
    }

    /// Stops the work as if `signal` had arrived.
    pub fn cancel(&self, signal: Signal) {
        let _ = self.seen.set(signal);
        self.token.cancel();
    }

    /// The signal that stopped the run, if one did.
    pub fn signal(&self) -> Option<Signal> {
        self.seen.get().copied()
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, saying which.
pub async fn wait_for_signal() -> Signal {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => Signal::Interrupt,
                    _ = term.recv() => Signal::Terminate,
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                Signal::Interrupt
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        Signal::Interrupt
    }
}
