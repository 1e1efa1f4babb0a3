//! BM25 over an example's fields, with a tokenizer that knows bpftrace's
//! spellings (`sys_enter_openat`, `tracepoint:sched:sched_switch`, `/etc`).

use bm25::{DefaultTokenizer, Embedder, EmbedderBuilder, Language, Scorer, Tokenizer};

use crate::library::{Example, Library};

/// The weight of each field in the summed BM25 score: a hit in the request
/// matters most; probe names are a faint hint, since people rarely type them
/// (on `eval/paraphrases.toml`, 0.3 cost 3 points of recall@3 and 0.1 was
/// neutral; 0.1 keeps queries such as `sched_switch` working).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldWeights {
    /// The `request` sentence.
    pub request: f32,
    /// The `description` paragraph.
    pub description: f32,
    /// The `tags` list.
    pub tags: f32,
    /// Identifiers from the program's probes (`sched_switch`, `readline`).
    pub program: f32,
}

impl Default for FieldWeights {
    fn default() -> Self {
        FieldWeights {
            request: 1.0,
            description: 0.4,
            tags: 0.6,
            program: 0.1,
        }
    }
}

/// English stemming and NLTK stop words (bm25's default tokenizer), after
/// turning `_ : . /` into spaces: Unicode word breaking would otherwise keep
/// `sys_enter_openat` or `sched:sched_switch` as single tokens that no
/// person's query ever contains.
#[derive(Debug)]
pub struct DomainTokenizer {
    inner: DefaultTokenizer,
}

impl Default for DomainTokenizer {
    fn default() -> Self {
        DomainTokenizer {
            inner: DefaultTokenizer::new(Language::English),
        }
    }
}

impl Tokenizer for DomainTokenizer {
    fn tokenize(&self, input_text: &str) -> Vec<String> {
        let spaced: String = input_text
            .chars()
            .map(|c| match c {
                '_' | ':' | '.' | '/' | '\'' => ' ',
                c => c,
            })
            .collect();
        self.inner.tokenize(&spaced)
    }
}

/// The probe names of a program, as words: `tracepoint:syscalls:sys_enter_openat`
/// gives `syscalls sys_enter_openat`, `uprobe:/bin/bash:readline` gives
/// `bash readline`. Only probe headers are read, not the program body, so
/// helper names and format strings do not drown the signal.
pub fn probe_words(program: &str) -> String {
    const PROVIDERS: &[&str] = &[
        "tracepoint",
        "t",
        "kprobe",
        "k",
        "kretprobe",
        "kr",
        "kfunc",
        "f",
        "fentry",
        "kretfunc",
        "fr",
        "fexit",
        "uprobe",
        "u",
        "uretprobe",
        "ur",
        "usdt",
        "U",
        "software",
        "s",
        "hardware",
        "h",
        "rawtracepoint",
        "rt",
    ];
    let mut words = Vec::new();
    for token in program.split(|c: char| c.is_whitespace() || c == ',' || c == '{') {
        let mut parts = token.split(':');
        let Some(provider) = parts.next() else {
            continue;
        };
        if !PROVIDERS.contains(&provider) {
            continue;
        }
        for part in parts {
            // A binary path contributes its file name only.
            let part = part.rsplit('/').next().unwrap_or(part);
            if !part.is_empty() && part != "*" {
                words.push(part.trim_matches('*'));
            }
        }
    }
    words.join(" ")
}

/// One field's BM25 model: its own average length and document frequencies.
struct Field {
    weight: f32,
    embedder: Embedder<u32, DomainTokenizer>,
    scorer: Scorer<usize, u32>,
}

impl Field {
    fn new(weight: f32, texts: &[String]) -> Field {
        let corpus: Vec<&str> = texts.iter().map(String::as_str).collect();
        let embedder = EmbedderBuilder::<u32, DomainTokenizer>::with_tokenizer_and_fit_to_corpus(
            DomainTokenizer::default(),
            &corpus,
        )
        .build();
        let mut scorer = Scorer::new();
        for (i, text) in texts.iter().enumerate() {
            scorer.upsert(&i, embedder.embed(text));
        }
        Field {
            weight,
            embedder,
            scorer,
        }
    }
}

/// BM25 over request, description, tags and probe names, each field scored
/// separately and summed with [`FieldWeights`] (a simple BM25F).
pub struct Bm25Index {
    fields: Vec<Field>,
    len: usize,
}

impl Bm25Index {
    /// Indexes every example of `library` with the default weights.
    pub fn new(library: &Library) -> Bm25Index {
        Bm25Index::with_weights(library, FieldWeights::default())
    }

    /// Indexes every example with chosen field weights; a weight of 0 leaves
    /// the field out.
    pub fn with_weights(library: &Library, weights: FieldWeights) -> Bm25Index {
        let examples = library.examples();
        let column = |f: fn(&Example) -> String| examples.iter().map(f).collect::<Vec<_>>();
        let mut fields = Vec::new();
        type Column = fn(&Example) -> String;
        let specs: [(f32, Column); 4] = [
            (weights.request, |e| e.request.clone()),
            (weights.description, |e| e.description.clone()),
            (weights.tags, |e| e.tags.join(" ")),
            (weights.program, |e| probe_words(&e.program)),
        ];
        for (weight, text) in specs {
            if weight > 0.0 {
                fields.push(Field::new(weight, &column(text)));
            }
        }
        Bm25Index {
            fields,
            len: examples.len(),
        }
    }

    /// Positions (into [`Library::examples`]) and scores of the examples that
    /// share at least one term with `query`, best first; ties go to the
    /// lower position so results are reproducible.
    pub fn search(&self, query: &str, limit: usize) -> Vec<(usize, f32)> {
        let mut scores = vec![0f32; self.len];
        for field in &self.fields {
            let q = field.embedder.embed(query);
            for m in field.scorer.matches(&q) {
                scores[m.id] += field.weight * m.score;
            }
        }
        let mut ranked: Vec<(usize, f32)> = scores
            .into_iter()
            .enumerate()
            .filter(|&(_, s)| s > 0.0)
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(limit);
        ranked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_splits_bpftrace_spellings() {
        let t = DomainTokenizer::default();
        assert_eq!(
            t.tokenize("tracepoint:syscalls:sys_enter_openat"),
            ["tracepoint", "syscal", "sys", "enter", "openat"]
        );
        assert_eq!(
            t.tokenize("who's opening /etc files"),
            ["open", "etc", "file"]
        );
    }

    #[test]
    fn probe_words_reads_probe_headers_only() {
        let program = "tracepoint:sched:sched_switch,\nuprobe:/bin/bash:readline { printf(\"a:b\"); }\nkprobe:vfs_*\ninterval:s:1 { exit(); }";
        assert_eq!(
            probe_words(program),
            "sched sched_switch bash readline vfs_"
        );
    }
}
