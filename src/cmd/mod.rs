//! The subcommands: each takes its parsed arguments, calls the library and
//! renders; returns an exit code. The only layer that imports `cli`.

pub mod callbacks;
pub mod demo;
pub mod doctor;
pub mod dup;
pub mod load;
pub mod play;
pub mod push;
pub mod report;
pub mod serve;
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
        Command::Serve(a) => serve::run(a).await,
        Command::Smoke(a) => smoke::run(a).await,
        Command::Dup(a) => dup::run(a).await,
        Command::Demo(a) => demo::run(a).await,
        Command::Load(a) => load::run(a).await,
        Command::Report(ReportCommand::Merge(a)) => report::merge(a),
        Command::Doctor(a) => doctor::run(a).await,
        Command::Play(a) => play::run(a).await,
    }
}
