//! A sorted, de-duplicated set of names kept in one string arena.
//!
//! The kernel has ~120k text symbols and ~56k BTF functions; one `String` per name would cost
//! an allocation and 24 bytes of header each, so names live back to back in one arena and the
//! set keeps 12-byte spans (offset, length, tag) sorted by name.

use std::ops::Range;

#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    len: u32,
    /// Caller data carried with the name (the BTF type id for kernel functions).
    tag: u32,
}

/// Sorted, de-duplicated names with an optional `u32` tag each.
#[derive(Debug, Default)]
pub(crate) struct NameSet {
    arena: String,
    spans: Vec<Span>,
}

/// Collects names before they are sorted into a [`NameSet`].
#[derive(Debug, Default)]
pub(crate) struct NameSetBuilder {
    arena: String,
    spans: Vec<Span>,
}

impl NameSetBuilder {
    pub(crate) fn with_capacity(bytes: usize, names: usize) -> Self {
        NameSetBuilder {
            arena: String::with_capacity(bytes),
            spans: Vec::with_capacity(names),
        }
    }

    /// Adds a name; names longer than `u32::MAX` bytes or past a 4 GiB arena are dropped
    /// rather than wrapped, which no real symbol table reaches.
    pub(crate) fn push(&mut self, name: &str, tag: u32) {
        let (Ok(start), Ok(len)) = (u32::try_from(self.arena.len()), u32::try_from(name.len()))
        else {
            return;
        };
        if start.checked_add(len).is_none() {
            return;
        }
        self.arena.push_str(name);
        self.spans.push(Span { start, len, tag });
    }

    /// Sorts and de-duplicates; for duplicate names the smallest tag wins.
    pub(crate) fn build(self) -> NameSet {
        let NameSetBuilder { arena, spans } = self;
        let text = |s: &Span| &arena[s.start as usize..(s.start + s.len) as usize];
        // Sorting compares the names' first 8 bytes as one integer before whole names,
        // which spares most string comparisons (libc's ~13k symbols sort in about 2/3 of
        // the time) and gives the same order: a name's key is zero-padded, so a shorter
        // name never sorts after one it begins.
        let mut keyed: Vec<(u64, Span)> = spans
            .into_iter()
            .map(|s| {
                let mut key = [0u8; 8];
                let t = text(&s).as_bytes();
                let n = t.len().min(8);
                key[..n].copy_from_slice(&t[..n]);
                (u64::from_be_bytes(key), s)
            })
            .collect();
        // Ties broken by tag make the kept duplicate deterministic (the smallest tag) while
        // allowing the faster unstable sort.
        keyed.sort_unstable_by(|(ka, a), (kb, b)| {
            ka.cmp(kb)
                .then_with(|| text(a).cmp(text(b)))
                .then(a.tag.cmp(&b.tag))
        });
        let mut spans: Vec<Span> = keyed.into_iter().map(|(_, s)| s).collect();
        spans.dedup_by(|later, earlier| text(later) == text(earlier));
        spans.shrink_to_fit();
        NameSet { arena, spans }
    }
}

impl NameSet {
    pub(crate) fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> NameSet {
        let mut b = NameSetBuilder::default();
        for n in names {
            b.push(n, 0);
        }
        b.build()
    }

    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(crate) fn get(&self, i: usize) -> &str {
        match self.spans.get(i) {
            Some(s) => self
                .arena
                .get(s.start as usize..(s.start + s.len) as usize)
                .unwrap_or(""),
            None => "",
        }
    }

    pub(crate) fn tag(&self, i: usize) -> u32 {
        self.spans.get(i).map_or(0, |s| s.tag)
    }

    /// Index of `name`, if present.
    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        let i = self.spans.partition_point(|s| self.text(s) < name);
        (i < self.spans.len() && self.get(i) == name).then_some(i)
    }

    /// The index range of names that start with `prefix` (sorted order makes them contiguous).
    pub(crate) fn prefix_range(&self, prefix: &str) -> Range<usize> {
        let lo = self.spans.partition_point(|s| self.text(s) < prefix);
        let hi = lo + self.spans[lo..].partition_point(|s| self.text(s).starts_with(prefix));
        lo..hi
    }

    pub(crate) fn iter_range(&self, r: Range<usize>) -> impl Iterator<Item = &str> + '_ {
        r.map(move |i| self.get(i))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.iter_range(0..self.len())
    }

    fn text(&self, s: &Span) -> &str {
        self.arena
            .get(s.start as usize..(s.start + s.len) as usize)
            .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_dedups_and_keeps_smallest_tag() {
        let mut b = NameSetBuilder::default();
        b.push("vfs_write", 3);
        b.push("vfs_read", 9);
        b.push("tcp_connect", 7);
        b.push("vfs_read", 1);
        let s = b.build();
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            ["tcp_connect", "vfs_read", "vfs_write"]
        );
        assert_eq!(s.tag(s.find("vfs_read").unwrap()), 1);
        assert_eq!(s.find("nope"), None);
        assert_eq!(
            s.iter_range(s.prefix_range("vfs_")).collect::<Vec<_>>(),
            ["vfs_read", "vfs_write"]
        );
        assert_eq!(s.prefix_range("zzz"), 3..3);
        // Names that share their first 8 bytes, prefixes of each other, and NULs sort as
        // strings do.
        let names = [
            "abcdefgh",
            "abcdefghi",
            "abcdefg",
            "abcdefgh\0",
            "abc",
            "abcdefgha",
            "b",
            "",
            "abcdefgh",
            "a\0",
            "a",
            "\u{e9}t\u{e9}",
            "\u{e9}",
        ];
        let set = NameSet::from_names(names);
        let mut want: Vec<&str> = names.to_vec();
        want.sort();
        want.dedup();
        assert_eq!(set.iter().collect::<Vec<_>>(), want);
        assert_eq!(s.prefix_range("").len(), 3);
        assert_eq!(s.get(99), "");
    }
}
