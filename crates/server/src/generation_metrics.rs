//! Metrics of language-model versions, after vLLM's set (`vllm:num_requests_running`,
//! `vllm:kv_cache_usage_perc`, `vllm:time_to_first_token_seconds`, …): one series per
//! version that has a generation scheduler. Described in docs/metrics.md.

use std::sync::atomic::Ordering::Relaxed;

use lathe_runtime::stats::{GenerationStats, FINISHED_REASONS};
use lathe_runtime::ModelView;
use prometheus::proto::{Metric, MetricFamily, MetricType};

use crate::metrics::{counter, family, gauge, histogram};

/// One series of a version from its labels and statistics.
type PerVersion = dyn Fn(&[(&str, &str)], &GenerationStats) -> Metric;

/// Label values and generation statistics of each language-model version.
fn versions(models: &[ModelView]) -> Vec<(String, String, &GenerationStats)> {
    models
        .iter()
        .flat_map(|m| m.versions.iter().map(move |v| (m.name.clone(), v.version.to_string(), &v.stats.generation)))
        .filter(|(_, _, g)| g.kv_blocks_total.load(Relaxed) > 0)
        .collect()
}

/// Every generation family (empty ones are dropped by the caller).
pub fn generation_families(models: &[ModelView]) -> Vec<MetricFamily> {
    let series = versions(models);
    let each = |f: &PerVersion| -> Vec<Metric> {
        series.iter().map(|(m, v, g)| f(&[("model", m), ("version", v)], g)).collect()
    };
    let count = |name: &str, help: &str, get: fn(&GenerationStats) -> u64| {
        family(name, help, MetricType::COUNTER, each(&move |l, g| counter(l, get(g) as f64)))
    };
    let level = |name: &str, help: &str, get: fn(&GenerationStats) -> f64| {
        family(name, help, MetricType::GAUGE, each(&move |l, g| gauge(l, get(g))))
    };
    let hist = |name: &str, help: &str, get: fn(&GenerationStats) -> &lathe_runtime::stats::Histogram| {
        family(name, help, MetricType::HISTOGRAM, each(&move |l, g| histogram(l, &get(g).snapshot())))
    };
    let finished = series
        .iter()
        .flat_map(|(m, v, g)| {
            FINISHED_REASONS.iter().zip(&g.finished).map(move |(reason, n)| {
                counter(&[("model", m), ("version", v), ("finished_reason", reason)], n.load(Relaxed) as f64)
            })
        })
        .collect();
    vec![
        level("lathe_generation_requests_running", "Sequences in the running batch.", |g| {
            g.running.load(Relaxed) as f64
        }),
        level(
            "lathe_generation_requests_waiting",
            "Requests waiting to be scheduled (preempted ones included).",
            |g| g.waiting.load(Relaxed) as f64,
        ),
        level("lathe_generation_kv_cache_usage_ratio", "Share of KV-cache blocks held by sequences (0 to 1).", |g| {
            g.kv_blocks_used.load(Relaxed) as f64 / g.kv_blocks_total.load(Relaxed).max(1) as f64
        }),
        level("lathe_generation_kv_cache_blocks", "KV-cache blocks in the pool (16 positions each).", |g| {
            g.kv_blocks_total.load(Relaxed) as f64
        }),
        count("lathe_generation_prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.", |g| {
            g.prefix_queries.load(Relaxed)
        }),
        count("lathe_generation_prefix_cache_hits_total", "Prompt tokens found in the prefix cache.", |g| {
            g.prefix_hits.load(Relaxed)
        }),
        count("lathe_generation_preemptions_total", "Sequences preempted (KV freed, recomputed later).", |g| {
            g.preemptions.load(Relaxed)
        }),
        count("lathe_generation_prompt_tokens_total", "Prompt tokens of finished requests.", |g| {
            g.prompt_tokens.load(Relaxed)
        }),
        count("lathe_generation_tokens_total", "Tokens generated.", |g| g.generation_tokens.load(Relaxed)),
        family(
            "lathe_generation_requests_finished_total",
            "Finished requests by finish reason (stop, length, abort: the client went away).",
            MetricType::COUNTER,
            finished,
        ),
        hist("lathe_generation_time_to_first_token_seconds", "Arrival to first generated token.", |g| {
            &g.time_to_first_token
        }),
        hist("lathe_generation_inter_token_latency_seconds", "Time between consecutive tokens.", |g| {
            &g.inter_token_latency
        }),
        hist("lathe_generation_e2e_request_latency_seconds", "Arrival to last token.", |g| &g.e2e_latency),
        hist("lathe_generation_request_queue_time_seconds", "Arrival to first scheduling.", |g| &g.queue_time),
        hist("lathe_generation_iteration_tokens", "Tokens per scheduler step.", |g| &g.iteration_tokens),
    ]
}
