//! Load generation: many publishers from one process (open model, ramp),
//! their records, and the aggregation into a report.
//!
//! - `record`: the plain records a run produces.
//! - `hist`: latency histograms (µs) and their base64 V2 form.
//! - `aggregate`: records -> `Summary`; exact merge of summaries.
//! - `merge`: `pushprobe report merge` (reads reports, merges, renders).

pub mod aggregate;
pub mod hist;
pub mod merge;
pub mod record;
