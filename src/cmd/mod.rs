//! The subcommands: each takes its validated arguments and returns an exit code.

pub mod callbacks;
pub mod demo;
pub mod doctor;
pub mod dup;
pub mod load;
pub mod push;
pub mod smoke;
pub mod url;

use std::process::ExitCode;

use crate::cli::{Cli, Command, ReportCommand};

/// Runs a parsed command line. Errors are usage or runtime errors (exit 2).
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Url(a) => url::run(a),
        Command::Push(a) => push::run(a).await,
        Command::Callbacks(a) => callbacks::run(a).await,
        Command::Serve(a) => {
            crate::ingest::serve_main(a.clone()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Smoke(a) => smoke::run(a).await,
        Command::Dup(a) => dup::run(a).await,
        Command::Demo(a) => demo::run(a).await,
        Command::Load(a) => load::run(a).await,
        Command::Report(ReportCommand::Merge(a)) => crate::load::merge::merge_main(a),
        Command::Doctor(a) => doctor::run(a).await,
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
