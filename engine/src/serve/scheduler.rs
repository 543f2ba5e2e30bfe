//! Batching across clients. Every site request goes into its adapter's queue, whatever
//! its layer; one worker thread takes the ready queue whose head has waited longest (a
//! queue is ready at `batch_tokens` tokens or once its head has waited `batch_wait`) and
//! evaluates up to `batch_tokens` tokens of it as one batch on the worker pool, one task
//! per token. A queue is also ready as soon as every open session has a request queued:
//! no one else can join, so a lone client never waits. One batch at a time: on the CPU a
//! batch already uses every core, and the requests that arrive meanwhile form the next
//! batch.
//!
//! Why not one queue per (adapter, layer): clients decode at different layers, so
//! same-layer requests rarely meet (two clients at the demo shapes: 118 batches of one
//! token, one of two); a batch's gain on the CPU is whole tokens on every core, which any
//! mix of layers gives. The queues are bounded in tokens: a request beyond
//! `capacity_tokens` is refused at once, never held.

use super::adapters::Adapters;
use super::metrics::Metrics;
use crate::secure::{Job, Reply};
use anyhow::Result;
use helora::ckks::SeededCiphertext;
use helora::pll::ClientId;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

#[derive(Clone, Copy, Debug)]
pub struct SchedulerConfig {
    /// Most tokens in one batch.
    pub batch_tokens: usize,
    /// Longest a request waits for others to join its batch.
    pub batch_wait: Duration,
    /// Most tokens queued or in evaluation at once, over all queues.
    pub capacity_tokens: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct QueueKey {
    adapter: String,
}

/// One site request of one client, queued: one job per token.
struct Pending {
    client: ClientId,
    layer: usize,
    modules: Vec<String>,
    /// Per token, its parsed input ciphertexts and its noise seed.
    tokens: Vec<(Vec<SeededCiphertext>, [u8; 32])>,
    enqueued: Instant,
    reply: oneshot::Sender<Vec<Result<Reply>>>,
    _permit: OwnedSemaphorePermit,
}

#[derive(Default)]
struct Queues {
    by_key: HashMap<QueueKey, VecDeque<Pending>>,
    stopping: bool,
}

pub struct Scheduler {
    config: SchedulerConfig,
    queues: Mutex<Queues>,
    wake: Condvar,
    capacity: Arc<Semaphore>,
    adapters: Arc<Adapters>,
    metrics: Arc<Metrics>,
}

/// Why a request was not queued.
#[derive(Debug)]
pub enum Refused {
    /// The queues hold `capacity_tokens` already.
    Full {
        capacity: usize,
    },
    TooLarge {
        tokens: usize,
        capacity: usize,
    },
    Stopping,
}

impl Scheduler {
    /// The scheduler and its worker thread.
    pub fn start(
        config: SchedulerConfig,
        adapters: Arc<Adapters>,
        metrics: Arc<Metrics>,
    ) -> Result<(Arc<Self>, std::thread::JoinHandle<()>)> {
        let scheduler = Arc::new(Self {
            config,
            queues: Mutex::new(Queues::default()),
            wake: Condvar::new(),
            capacity: Arc::new(Semaphore::new(config.capacity_tokens)),
            adapters,
            metrics,
        });
        let worker = scheduler.clone();
        let handle = std::thread::Builder::new()
            .name("helora-batches".into())
            .spawn(move || worker.run())?;
        Ok((scheduler, handle))
    }

    /// Room for `tokens` more tokens, held until their batch is evaluated: taken before a
    /// request is charged, so a refusal costs the client nothing.
    pub fn reserve(&self, tokens: usize) -> Result<OwnedSemaphorePermit, Refused> {
        if tokens == 0 || tokens > self.config.capacity_tokens {
            return Err(Refused::TooLarge {
                tokens,
                capacity: self.config.capacity_tokens,
            });
        }
        u32::try_from(tokens)
            .ok()
            .and_then(|n| self.capacity.clone().try_acquire_many_owned(n).ok())
            .ok_or(Refused::Full {
                capacity: self.config.capacity_tokens,
            })
    }

    /// Queues one site request of `client` (per token its parsed inputs and noise seed, to
    /// `modules` of `layer` of `adapter`) in the room `permit` holds; the receiver gets one
    /// result per token.
    pub fn submit(
        &self,
        adapter: &str,
        client: ClientId,
        layer: usize,
        modules: Vec<String>,
        tokens: Vec<(Vec<SeededCiphertext>, [u8; 32])>,
        permit: OwnedSemaphorePermit,
    ) -> Result<oneshot::Receiver<Vec<Result<Reply>>>, Refused> {
        let count = tokens.len();
        if tokens.is_empty() {
            return Err(Refused::TooLarge {
                tokens: 0,
                capacity: self.config.capacity_tokens,
            });
        }
        let key = QueueKey {
            adapter: adapter.to_string(),
        };
        let (reply, receiver) = oneshot::channel();
        let mut queues = self.queues.lock().map_err(|_| Refused::Stopping)?;
        if queues.stopping {
            return Err(Refused::Stopping);
        }
        queues.by_key.entry(key).or_default().push_back(Pending {
            client,
            layer,
            modules,
            tokens,
            enqueued: Instant::now(),
            reply,
            _permit: permit,
        });
        self.metrics.queue_tokens.inc_by(count as i64);
        drop(queues);
        self.wake.notify_one();
        Ok(receiver)
    }

    /// Lets the worker finish what is queued, then stop.
    pub fn stop(&self) {
        if let Ok(mut queues) = self.queues.lock() {
            queues.stopping = true;
        }
        self.wake.notify_all();
    }

    fn run(&self) {
        while let Some((key, batch)) = self.next_batch() {
            self.evaluate(&key, batch);
        }
    }

    /// Waits for a ready queue and takes its batch; `None` once stopping with nothing left.
    fn next_batch(&self) -> Option<(QueueKey, Vec<Pending>)> {
        let mut queues = self.queues.lock().ok()?;
        loop {
            let now = Instant::now();
            let tokens = |q: &VecDeque<Pending>| q.iter().map(|p| p.tokens.len()).sum::<usize>();
            let queued: usize = queues.by_key.values().map(VecDeque::len).sum();
            // The open sessions (the metrics' gauge): once each has its request queued,
            // nobody else can join a batch, and waiting longer would only add latency.
            let open = usize::try_from(self.metrics.sessions.get()).unwrap_or(0);
            let everyone_waits = queued >= open;
            let ready = queues
                .by_key
                .iter()
                .filter_map(|(key, q)| Some((key, q.front()?.enqueued, tokens(q))))
                .filter(|(_, head, tokens)| {
                    queues.stopping
                        || everyone_waits
                        || *tokens >= self.config.batch_tokens
                        || now.duration_since(*head) >= self.config.batch_wait
                })
                .min_by_key(|(_, head, _)| *head)
                .map(|(key, _, _)| key.clone());
            if let Some(key) = ready {
                let queue = queues.by_key.get_mut(&key)?;
                let mut batch = Vec::new();
                let mut taken = 0;
                while let Some(next) = queue.front() {
                    let n = next.tokens.len();
                    if !batch.is_empty() && taken + n > self.config.batch_tokens {
                        break;
                    }
                    taken += n;
                    batch.extend(queue.pop_front());
                }
                if queue.is_empty() {
                    queues.by_key.remove(&key);
                }
                self.metrics.queue_tokens.dec_by(taken as i64);
                return Some((key, batch));
            }
            if queues.stopping && queues.by_key.is_empty() {
                return None;
            }
            // Sleep until the oldest head is due, or a submit wakes us.
            let due = queues
                .by_key
                .values()
                .filter_map(|q| q.front())
                .map(|p| p.enqueued + self.config.batch_wait)
                .min();
            let timeout = due
                .map(|d| d.saturating_duration_since(now))
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_micros(50));
            queues = self.wake.wait_timeout(queues, timeout).ok()?.0;
        }
    }

    fn evaluate(&self, key: &QueueKey, batch: Vec<Pending>) {
        let started = Instant::now();
        for pending in &batch {
            self.metrics
                .queue_seconds
                .observe(started.duration_since(pending.enqueued).as_secs_f64());
        }
        let tokens: usize = batch.iter().map(|p| p.tokens.len()).sum();
        self.metrics.batch_tokens.observe(tokens as f64);
        if let Ok(mut sizes) = self.metrics.batch_sizes.lock() {
            *sizes.entry(tokens).or_default() += 1;
        }
        let mut results = match self.adapters.get(&key.adapter) {
            Ok(adapter) => {
                let jobs: Vec<Job<'_>> = batch
                    .iter()
                    .flat_map(|p| {
                        p.tokens.iter().map(|(inputs, seed)| Job {
                            client: p.client,
                            layer: p.layer,
                            modules: &p.modules,
                            inputs,
                            noise_seed: *seed,
                        })
                    })
                    .collect();
                adapter.evaluate(&jobs)
            }
            Err(why) => (0..tokens)
                .map(|_| Err(anyhow::anyhow!(why.clone())))
                .collect(),
        }
        .into_iter();
        self.metrics.tokens.inc_by(tokens as u64);
        for pending in batch {
            let mine: Vec<Result<Reply>> = results.by_ref().take(pending.tokens.len()).collect();
            // A receiver gone (its client disconnected) needs no answer.
            let _ = pending.reply.send(mine);
        }
    }
}
