//! "Did you mean": edit distances and the nearest names to a misspelled one.

/// Edit distance (Damerau-Levenshtein, optimal string alignment): insertions,
/// deletions, substitutions and swaps of neighbours each cost 1.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return n.max(m);
    }
    // Three rows: two back for swaps, one back, current.
    let mut prev2 = vec![0usize; m + 1];
    let mut prev: Vec<usize> = (0..=m).collect();
    let mut cur = vec![0usize; m + 1];
    for i in 1..=n {
        cur[0] = i;
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[m]
}

/// The largest distance at which a name still counts as a misspelling of `name`.
pub fn max_distance(name: &str) -> usize {
    (name.chars().count() / 3).clamp(1, 3)
}

/// Whether the characters of `short` appear in `long` in order (`fname` in `filename`).
pub fn is_subsequence(short: &str, long: &str) -> bool {
    let mut it = long.chars();
    short.chars().all(|c| it.any(|l| l == c))
}

/// Up to `limit` candidates close to `name`, nearest first: those within
/// [`max_distance`] edits (ties: candidates that contain `name`'s letters in
/// order first, as a dropped letter is the commonest slip, then the smaller
/// length difference, then alphabetical); failing any, abbreviations
/// (`fname` for `filename`). Case is ignored when measuring, so `PID` finds
/// `pid`. `name` itself is never suggested.
pub fn nearest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    limit: usize,
) -> Vec<&'a str> {
    let max = max_distance(name);
    let lower = name.to_lowercase();
    let len = name.chars().count();
    let mut close: Vec<(usize, bool, usize, &'a str)> = Vec::new();
    let mut abbreviated: Vec<(usize, &'a str)> = Vec::new();
    for c in candidates {
        if c == name {
            continue;
        }
        let clen = c.chars().count();
        let diff = clen.abs_diff(len);
        let clower = c.to_lowercase();
        let sub = is_subsequence(&lower, &clower);
        if diff <= max {
            let d = distance(&lower, &clower);
            if d <= max {
                close.push((d, !sub, diff, c));
                continue;
            }
        }
        // An abbreviation: at least 3 letters, the first one right, at most
        // twice as long.
        if len >= 3 && sub && clen <= 2 * len + 2 && lower.chars().next() == clower.chars().next() {
            abbreviated.push((diff, c));
        }
    }
    close.sort();
    close.dedup_by(|a, b| a.3 == b.3);
    if !close.is_empty() {
        return close
            .into_iter()
            .take(limit)
            .map(|(_, _, _, c)| c)
            .collect();
    }
    abbreviated.sort();
    abbreviated.dedup_by(|a, b| a.1 == b.1);
    abbreviated
        .into_iter()
        .take(limit)
        .map(|(_, c)| c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("pid", "pidd"), 1);
        assert_eq!(distance("fname", "filename"), 3);
        assert_eq!(distance("ab", "ba"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn nearest_names() {
        let names = ["pid", "tid", "uid", "comm", "cpu"];
        assert_eq!(nearest("pidd", names, 2), ["pid"]);
        assert_eq!(nearest("PID", names, 1), ["pid"]);
        assert!(nearest("zzzzzz", names, 3).is_empty());
        assert_eq!(
            nearest("sys_enter_opn", ["sys_enter_open", "sys_enter_openat"], 3),
            ["sys_enter_open", "sys_enter_openat"]
        );
        // A dropped letter beats a changed one.
        assert_eq!(nearest("prinf", ["print", "printf"], 1), ["printf"]);
        // Abbreviations, when nothing is within a few edits.
        assert_eq!(
            nearest("fname", ["dfd", "filename", "flags", "mode"], 1),
            ["filename"]
        );
        assert!(nearest("fn", ["filename"], 1).is_empty());
    }
}
