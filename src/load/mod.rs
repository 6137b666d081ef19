//! Load generation: many publishers from one process (open model, ramp),
//! their records, and the aggregation into a report.
//!
//! - `record`: the plain records a run produces.
//! - `targets`: shards, URL templates and the open-model schedule; pure.
//! - `runner`: one task per publisher, live counters, timeline, the collector.
//! - `matcher`: callbacks matched to our pushes by stream and sequence.
//! - `reconnect`: what `--reconnect` retries, backoff with jitter, re-signing; pure.
//! - `hist`: latency histograms (µs) and their base64 V2 form.
//! - `summary`: the report model (`Summary` and its serde types).
//! - `aggregate`: the fold, records -> `Summary`.
//! - `coverage`: which publisher indices were measured; overlaps and gaps.
//! - `by_address`: per remote address counts (publishers, failures, dial failures).
//! - `merge`: exact merge of summaries, reading reports, and `pushprobe report merge`.
//! - `metrics`: live Prometheus metrics of a run and the `/metrics` endpoint.
//! - `viewers`: play URLs, one viewer task per viewer, the shared latency sink.
//! - `viewer_run`: viewer-only runs (streams someone else pushes).
//! - `viewer_summary`: the viewers' part of the report, folded and merged.

pub mod aggregate;
pub mod by_address;
mod coverage;
pub mod hist;
mod matcher;
pub mod merge;
pub mod metrics;
pub mod reconnect;
pub mod record;
pub mod runner;
pub mod summary;
pub mod targets;
pub mod viewer_run;
pub mod viewer_summary;
pub mod viewers;
