//! The bpftrace grammar, one file per area: top-level items, attach points,
//! statements, expressions and types. Each function parses one construct at the
//! cursor, always returns a node (possibly `Error`), and always makes progress
//! or leaves the cursor for its caller's recovery.

mod attach;
mod exprs;
mod items;
mod stmts;
mod types;

pub(crate) use items::program;

/// Words that cannot be used as plain identifiers in expressions.
const KEYWORDS: &[&str] = &[
    "if", "else", "unroll", "while", "for", "return", "break", "continue", "let", "config", "fn",
    "macro", "sizeof", "offsetof", "true", "false", "struct", "union", "enum", "import",
];

pub(crate) fn is_keyword(word: &str) -> bool {
    KEYWORDS.contains(&word)
}

/// Levenshtein distance, for "did you mean" suggestions on short words.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = if word.len() <= 3 { 1 } else { 2 };
    candidates
        .into_iter()
        .map(|c| {
            (
                edit_distance(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
