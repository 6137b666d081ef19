//! `pushprobe report merge`: add shard reports exactly and judge coverage.

use std::io;
use std::process::ExitCode;

use crate::cli::MergeArgs;
use crate::load::merge::{MergeOutput, run_merge};

/// `pushprobe report merge`: 0 merged with every stream covered at most once,
/// 1 when some stream is covered twice (an overlap), `Err` (exit 2) on bad input.
pub fn merge(args: &MergeArgs) -> anyhow::Result<ExitCode> {
    let merged = run_merge(
        &args.files,
        MergeOutput {
            json: args.json,
            json_out: args.json_out.as_deref(),
            hgrm: args.hgrm.as_deref(),
        },
        &mut io::stdout().lock(),
    )?;
    if merged.coverage.overlaps.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "pushprobe: {} range(s) of publisher indices appear in more than one report (see \"overlaps\")",
            merged.coverage.overlaps.len()
        );
        Ok(ExitCode::from(1))
    }
}
