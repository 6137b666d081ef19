//! Load generation: many publishers from one process (open model, ramp),
//! their records, and the aggregation into a report.
//!
//! - `record`: the plain records a run produces.
//! - `targets`: shards, URL templates and the open-model schedule; pure.
//! - `runner`: one task per publisher, live counters, timeline, callback matching.
//! - `reconnect`: what `--reconnect` retries, backoff with jitter, re-signing; pure.
//! - `hist`: latency histograms (µs) and their base64 V2 form.
//! - `aggregate`: records -> `Summary`; exact merge of summaries.
//! - `merge`: `pushprobe report merge` (reads reports, merges, renders).
//! - `metrics`: live Prometheus metrics of a run and the `/metrics` endpoint.

pub mod aggregate;
pub mod hist;
pub mod merge;
pub mod metrics;
pub mod reconnect;
pub mod record;
pub mod runner;
pub mod targets;
