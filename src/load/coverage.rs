//! Stream coverage: which publisher indices a run (or merged runs) measured,
//! where they overlap and where holes are left.

use super::summary::{Coverage, IndexRange};

/// The union of `ranges` and where they overlap or leave holes.
pub(super) fn coverage(
    ranges: &[IndexRange],
    prior_overlaps: &[IndexRange],
) -> (Vec<IndexRange>, Coverage) {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut union: Vec<IndexRange> = Vec::new();
    let mut overlaps = prior_overlaps.to_vec();
    let mut gaps = Vec::new();
    for r in sorted {
        let Some(last) = union.last_mut() else {
            union.push(r);
            continue;
        };
        if r.start <= last.end {
            overlaps.push(IndexRange {
                start: r.start,
                end: r.end.min(last.end),
            });
            last.end = last.end.max(r.end);
        } else if r.start == last.end + 1 {
            last.end = r.end;
        } else {
            gaps.push(IndexRange {
                start: last.end + 1,
                end: r.start - 1,
            });
            union.push(r);
        }
    }
    let covered = union.iter().fold(0u64, |n, r| n.saturating_add(r.count()));
    (
        union,
        Coverage {
            covered,
            overlaps: normalize(overlaps),
            gaps,
        },
    )
}

/// Sorted, with overlapping or touching ranges joined.
fn normalize(mut ranges: Vec<IndexRange>) -> Vec<IndexRange> {
    ranges.sort_unstable();
    let mut out: Vec<IndexRange> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end.saturating_add(1) => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}
