//! Retrieval figures on `eval/paraphrases.toml`: recall@1/3/5 and MRR for
//! BM25, each embedder alone and the fused hybrid; search latency; index
//! build (cold) and load (warm) times.
//!
//! ```text
//! cargo run --release -p kgent-retrieval --example retrieval_eval [-- --misses]
//! ```
//!
//! Figures, not tests: timings depend on the machine. Indexes go to a
//! temporary directory, never to the user's data directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bm25::{Document as Bm25Doc, Language, SearchEngineBuilder};
use kgent_retrieval::eval::{evaluate, EvalSet, Metrics};
use kgent_retrieval::{
    Embedder, FieldWeights, HashedNgramEmbedder, HybridConfig, Library, Recipe, Retriever,
    VectorStore,
};

/// Candidates per ranking: deep enough that MRR is not truncated in practice.
const DEPTH: usize = 50;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let show_misses = std::env::args().any(|a| a == "--misses");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let library_dir = root.join("../specs/examples");
    let eval_path = root.join("eval/paraphrases.toml");

    let t = Instant::now();
    let library = Library::load(&library_dir)?;
    let load_time = t.elapsed();
    let set = EvalSet::load(&eval_path)?;
    set.check_labels(&library, &eval_path)?;
    println!(
        "library: {} examples (loaded in {:.1} ms), version {}",
        library.len(),
        ms(load_time),
        library.version()
    );
    println!("eval set: {} queries\n", set.queries.len());
    println!(
        "{:<58} {:>6} {:>6} {:>6} {:>6}",
        "ranking", "R@1", "R@3", "R@5", "MRR"
    );

    // --- lexical ---------------------------------------------------------
    // Baseline: the bm25 crate's own search engine and default tokenizer
    // over one concatenated text per example.
    let plain = SearchEngineBuilder::<usize>::with_documents(
        Language::English,
        library.examples().iter().enumerate().map(|(i, e)| Bm25Doc {
            id: i,
            contents: format!("{} {} {}", e.request, e.description, e.tags.join(" ")),
        }),
    )
    .build();
    let (m, _) = evaluate(&set, |q| {
        plain
            .search(q, DEPTH)
            .into_iter()
            .map(|r| library.examples()[r.document.id].id.clone())
            .collect()
    });
    row("bm25 crate default (request+description+tags)", &m);

    let weightings = [
        ("fielded bm25: request only", w(1.0, 0.0, 0.0, 0.0)),
        (
            "fielded bm25: request, description, tags",
            w(1.0, 0.4, 0.6, 0.0),
        ),
        ("fielded bm25: + probe names 0.1", w(1.0, 0.4, 0.6, 0.1)),
        ("fielded bm25: + probe names 0.3", w(1.0, 0.4, 0.6, 0.3)),
        ("fielded bm25: default", FieldWeights::default()),
        ("fielded bm25: equal weights", w(1.0, 1.0, 1.0, 1.0)),
    ];
    for (name, fields) in weightings {
        let r = Retriever::lexical_with(
            library.clone(),
            HybridConfig {
                fields,
                ..HybridConfig::default()
            },
        );
        let (m, _) = evaluate(&set, |q| r.lexical_ranking(q, DEPTH));
        row(name, &m);
    }
    let lexical = Retriever::lexical(library.clone());
    println!();

    // --- embedders --------------------------------------------------------
    let scratch = tempfile::tempdir()?;
    // The bundled model goes first: the default configuration is measured
    // with the first embedder.
    #[cfg_attr(not(feature = "bundled-embedder"), allow(unused_mut))]
    let mut embedders: Vec<(String, Arc<dyn Embedder>)> = vec![(
        "hashed n-grams (weak)".into(),
        Arc::new(HashedNgramEmbedder::default()),
    )];
    #[cfg(feature = "bundled-embedder")]
    {
        let t = Instant::now();
        let e = kgent_retrieval::BundledEmbedder::new()?;
        println!(
            "bundled embedder {} loaded in {:.0} ms",
            e.id(),
            ms(t.elapsed())
        );
        embedders.insert(0, ("bundled MiniLM-L3".into(), Arc::new(e)));
    }

    let recipes = [
        Recipe::Request,
        Recipe::RequestAndDescription,
        Recipe::RequestOrDescription,
    ];
    for (name, embedder) in &embedders {
        for recipe in recipes {
            let config = HybridConfig {
                recipe,
                ..HybridConfig::default()
            };
            let r = Retriever::hybrid_with(
                library.clone(),
                embedder.clone(),
                &VectorStore::open(scratch.path())?,
                config,
            )?;
            let (m, _) = evaluate(&set, |q| r.vector_ranking(q, DEPTH).unwrap_or_default());
            row(&format!("{name}, {} alone", recipe.name()), &m);
            // Vector rankings do not depend on BM25 settings: compute once.
            let vector_rankings: Vec<Vec<String>> = set
                .queries
                .iter()
                .map(|q| r.vector_ranking(&q.text, DEPTH).unwrap_or_default())
                .collect();
            for (label, fields) in [
                ("probe names 0.3", w(1.0, 0.4, 0.6, 0.3)),
                ("probe names 0.1", w(1.0, 0.4, 0.6, 0.1)),
                ("no probe names", w(1.0, 0.4, 0.6, 0.0)),
            ] {
                let lex =
                    Retriever::lexical_with(library.clone(), HybridConfig { fields, ..config });
                let mut i = 0;
                let (m, _) = evaluate(&set, |q| {
                    let hits = kgent_retrieval::fuse(
                        &lex.lexical_ranking(q, DEPTH),
                        &vector_rankings[i],
                        &config,
                    );
                    i += 1;
                    hits.into_iter().map(|h| h.example_id).collect()
                });
                row(&format!("  hybrid rrf_k=60, bm25 with {label}"), &m);
            }
            for (rrf_k, vector_weight) in [(60.0, 1.0), (30.0, 1.0), (10.0, 1.0), (60.0, 0.5)] {
                let config = HybridConfig {
                    rrf_k,
                    vector_weight,
                    ..config
                };
                let (m, _) = evaluate(&set, |q| {
                    let hits = kgent_retrieval::fuse(
                        &r.lexical_ranking(q, config.depth),
                        &r.vector_ranking(q, config.depth).unwrap_or_default(),
                        &config,
                    );
                    hits.into_iter().map(|h| h.example_id).collect()
                });
                row(
                    &format!("  hybrid rrf_k={rrf_k} vector_weight={vector_weight}"),
                    &m,
                );
            }
        }
        println!();
    }

    // --- the default configuration: per style, latency, build/load -------
    let Some((name, embedder)) = embedders.first().cloned() else {
        return Ok(());
    };
    let cold_dir = tempfile::tempdir()?;
    let t = Instant::now();
    let retriever = Retriever::hybrid(
        library.clone(),
        embedder.clone(),
        &VectorStore::open(cold_dir.path())?,
    )?;
    let cold = t.elapsed();
    let report = retriever.build_report().cloned();
    drop(retriever);
    let t = Instant::now();
    let retriever = Retriever::hybrid(
        library.clone(),
        embedder.clone(),
        &VectorStore::open(cold_dir.path())?,
    )?;
    let warm = t.elapsed();
    // One approved program added: a new library version, one new text.
    let mut extra = library.examples()[0].clone();
    extra.id = "user-approved-example".into();
    extra.request = "Count how often each program calls getpid".into();
    let grown = library.with_examples(vec![extra])?;
    let t = Instant::now();
    let _ = Retriever::hybrid(
        grown,
        embedder.clone(),
        &VectorStore::open(cold_dir.path())?,
    )?;
    let grown_time = t.elapsed();

    let config = retriever.config();
    println!(
        "default: {name}, recipe {}, rrf_k {}, depth {}",
        config.recipe.name(),
        config.rrf_k,
        config.depth
    );
    let mut ranks_by_query = Vec::new();
    let mut latencies = Vec::new();
    for _ in 0..2 {
        // First pass warms caches; the second is timed.
        latencies.clear();
        ranks_by_query.clear();
        for q in &set.queries {
            let t = Instant::now();
            let hits = retriever.search(&q.text, DEPTH);
            latencies.push(t.elapsed());
            let ids: Vec<String> = hits.into_iter().map(|h| h.example_id).collect();
            ranks_by_query.push(kgent_retrieval::eval::first_relevant_rank(
                &ids,
                &q.relevant,
            ));
        }
    }
    row(
        "hybrid (default config)",
        &Metrics::from_ranks(&ranks_by_query),
    );
    let mut styles: Vec<&str> = set.queries.iter().map(|q| q.style.as_str()).collect();
    styles.sort();
    styles.dedup();
    for style in styles {
        let ranks: Vec<Option<usize>> = set
            .queries
            .iter()
            .zip(&ranks_by_query)
            .filter(|(q, _)| q.style == style)
            .map(|(_, r)| *r)
            .collect();
        row(
            &format!("  {style} ({} queries)", ranks.len()),
            &Metrics::from_ranks(&ranks),
        );
    }
    let (_, lex_ranks) = evaluate(&set, |q| lexical.lexical_ranking(q, DEPTH));
    // Sanity: each library request, asked verbatim, should find its example.
    let self_ranks: Vec<Option<usize>> = library
        .examples()
        .iter()
        .map(|e| {
            let ids: Vec<String> = retriever
                .search(&e.request, DEPTH)
                .into_iter()
                .map(|h| h.example_id)
                .collect();
            kgent_retrieval::eval::first_relevant_rank(&ids, std::slice::from_ref(&e.id))
        })
        .collect();
    row(
        &format!("library requests verbatim ({} queries)", self_ranks.len()),
        &Metrics::from_ranks(&self_ranks),
    );

    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "\nsearch latency (embed query + BM25 + ANN + fusion), {} queries: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO))
    );
    let mut lex_lat = Vec::new();
    for q in &set.queries {
        let t = Instant::now();
        let _ = lexical.search(&q.text, 5);
        lex_lat.push(t.elapsed());
    }
    lex_lat.sort();
    println!(
        "BM25-only search latency: p50 {:.3} ms, p99 {:.3} ms",
        ms(lex_lat[lex_lat.len() / 2]),
        ms(lex_lat[((lex_lat.len() - 1) as f64 * 0.99).round() as usize])
    );
    if let Some(r) = report {
        println!(
            "index build, cold (empty dir; embeds {} texts): {:.0} ms (report says {:.0} ms, built={})",
            r.embedded,
            ms(cold),
            ms(r.elapsed),
            r.built
        );
    }
    println!(
        "index load, warm (same dir, new Retriever incl. BM25 fit): {:.1} ms",
        ms(warm)
    );
    println!(
        "rebuild after adding one example (embedding cache hit for the rest): {:.0} ms",
        ms(grown_time)
    );

    if show_misses {
        println!("\nqueries whose answer is not in the hybrid top 3 (rank; BM25 rank):");
        for ((q, r), lr) in set.queries.iter().zip(&ranks_by_query).zip(&lex_ranks) {
            if r.is_none_or(|r| r > 3) {
                let top: Vec<String> = retriever
                    .search(&q.text, 3)
                    .into_iter()
                    .map(|h| h.example_id)
                    .collect();
                println!(
                    "  [{}] {:?} -> {} (bm25 {}); wanted {:?}; got {:?}",
                    q.style,
                    q.text,
                    fmt_rank(*r),
                    fmt_rank(*lr),
                    q.relevant,
                    top
                );
            }
        }
    }
    Ok(())
}

fn w(request: f32, description: f32, tags: f32, program: f32) -> FieldWeights {
    FieldWeights {
        request,
        description,
        tags,
        program,
    }
}

fn fmt_rank(r: Option<usize>) -> String {
    r.map_or("-".into(), |r| r.to_string())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn row(name: &str, m: &Metrics) {
    println!(
        "{:<58} {:>6.3} {:>6.3} {:>6.3} {:>6.3}",
        name, m.recall_at_1, m.recall_at_3, m.recall_at_5, m.mrr
    );
}
