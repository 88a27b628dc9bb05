//! Sets of Job completion indexes in Kubernetes' interval notation (`1,3-5,7`), as
//! `status.completedIndexes`, `status.failedIndexes` and a success policy's
//! `succeededIndexes` write them.

use std::collections::BTreeSet;

/// Parses `1,3-5,7` into its indexes, each below `completions`, in increasing order.
pub fn parse(text: &str, completions: i32) -> Result<BTreeSet<i32>, String> {
    let mut out = BTreeSet::new();
    if text.is_empty() {
        return Ok(out);
    }
    let mut last: Option<i32> = None;
    for part in text.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let n = number(part)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(format!("range start {lo} is greater than range end {hi}"));
        }
        if hi >= completions {
            return Err(format!(
                "too large: {hi}, must be less than completions: {completions}"
            ));
        }
        if let Some(prev) = last.filter(|l| lo <= *l) {
            return Err(format!(
                "non-increasing order, previous: {prev}, current: {lo}"
            ));
        }
        out.extend(lo..=hi);
        last = Some(hi);
    }
    Ok(out)
}

fn number(s: &str) -> Result<i32, String> {
    s.parse::<i32>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| format!("cannot convert string to integer for index: {s:?}"))
}

/// Writes indexes in interval notation: runs of consecutive indexes become `a-b`.
pub fn format(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_intervals() {
        let set = parse("0,2-4,7", 8).unwrap();
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), [0, 2, 3, 4, 7]);
        assert_eq!(format(&set), "0,2-4,7");
        assert_eq!(format(&BTreeSet::new()), "");
        assert!(parse("", 3).unwrap().is_empty());
    }

    #[test]
    fn refuses_out_of_range_and_unordered() {
        assert!(parse("3", 3).is_err());
        assert!(parse("2,1", 3).is_err());
        assert!(parse("x", 3).is_err());
        assert!(parse("2-1", 3).is_err());
    }
}
