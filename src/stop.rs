//! Stopping on Ctrl-C or SIGTERM: a cancel token that remembers which signal
//! came, so a command exits 130 or 143 as shells expect.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// The signal that stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl StopSignal {
    /// 128 + the signal number: 130 for SIGINT, 143 for SIGTERM.
    pub fn exit_code(self) -> u8 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }
}

/// A cancel token, and the signal that cancelled it.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    token: CancellationToken,
    signal: Arc<OnceLock<StopSignal>>,
}

impl Stop {
    /// A stop that only [`Stop::stop`] triggers.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// A stop triggered by the first SIGINT or SIGTERM. Needs a Tokio runtime.
    pub fn on_signals() -> Stop {
        let stop = Stop::new();
        let s = stop.clone();
        tokio::spawn(async move {
            let signal = next_signal().await;
            s.stop(signal);
        });
        stop
    }

    /// Records `signal` (the first one wins) and cancels.
    pub fn stop(&self, signal: StopSignal) {
        let _ = self.signal.set(signal);
        self.token.cancel();
    }

    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The signal that stopped the run, if one did.
    pub fn signal(&self) -> Option<StopSignal> {
        self.signal.get().copied()
    }

    /// The exit code of a run whose own verdict gives `code`: 128 + the
    /// signal when the user stopped it before its end (`cut_short`), else
    /// `code` (a push that had streamed its whole duration keeps its verdict).
    pub fn exit_code(&self, cut_short: bool, code: u8) -> u8 {
        match self.signal() {
            Some(s) if cut_short => s.exit_code(),
            _ => code,
        }
    }
}

/// Resolves on the next SIGINT (Ctrl-C) or SIGTERM, saying which.
pub async fn next_signal() -> StopSignal {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => StopSignal::Interrupt,
                _ = term.recv() => StopSignal::Terminate,
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    StopSignal::Interrupt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_decides_the_exit_code() {
        let stop = Stop::new();
        assert_eq!(stop.signal(), None);
        assert_eq!(stop.exit_code(true, 1), 1, "no signal: the verdict's code");
        stop.stop(StopSignal::Terminate);
        stop.stop(StopSignal::Interrupt);
        assert!(stop.token().is_cancelled());
        assert_eq!(stop.signal(), Some(StopSignal::Terminate));
        assert_eq!(stop.exit_code(true, 0), 143);
        assert_eq!(stop.exit_code(false, 0), 0, "completed before the signal");
        assert_eq!(StopSignal::Interrupt.exit_code(), 130);
    }
}
