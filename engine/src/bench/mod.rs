//! `helora bench`: timings of the HE core on this machine.

pub mod clock;
pub mod cuda;
pub mod device_lora;
pub mod device_ops;
pub mod device_report;
pub mod floor;
pub mod full_model;
pub mod hardware;
pub mod keys;
pub mod lora;
pub mod machine;
pub mod ops;
pub mod plaintext;
pub mod plot;
pub mod provenance;
pub mod published;
pub mod random_model;
pub mod report;
pub mod series;
pub mod serve;
pub mod serve_sweep;
pub mod stopwatch;
pub mod sweep;
pub mod timing;
pub mod token;

/// A pool of `threads` worker threads for a bench's run (`--threads`): the work inside it
/// (a single apply's parts, a batch's tokens) goes to these threads only.
pub fn thread_pool(threads: usize) -> anyhow::Result<rayon::ThreadPool> {
    use anyhow::Context;
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .with_context(|| format!("starting {threads} worker threads"))
}
