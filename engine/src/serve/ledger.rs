//! Group commit of budget charges. Every charge must be durable before its reply leaves,
//! and a synced commit costs a disk flush: one flush per request left the cores idle while
//! the clients of a batch were charged one after another. The ledger takes every charge
//! that is waiting when it is free and commits them together, each still checked and
//! applied on its own (a refused one changes nothing).

use super::metrics::Metrics;
use super::state::{is_unreachable, Charge, ChargeOutcome, Store, Unreachable};
use anyhow::{anyhow, Result};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most charges in one commit.
const GROUP: usize = 256;

/// A [`Charge`] that owns its fields, to cross to the ledger's task.
pub struct OwnedCharge {
    pub client: i64,
    pub adapter: String,
    pub projections: Vec<(usize, String)>,
    pub count: u64,
    pub server_budget: u64,
    pub adapter_budget: u64,
    pub session: Vec<u8>,
    pub seq: u64,
    pub digest: [u8; 32],
}

impl OwnedCharge {
    fn as_charge(&self) -> Charge<'_> {
        Charge {
            client: self.client,
            adapter: &self.adapter,
            projections: &self.projections,
            count: self.count,
            server_budget: self.server_budget,
            adapter_budget: self.adapter_budget,
            session: &self.session,
            seq: self.seq,
            digest: &self.digest,
        }
    }
}

/// A failed commit, as text (every charge of the group gets it), and whether the store was
/// out of reach.
type Failure = (String, bool);

type Waiting = (OwnedCharge, oneshot::Sender<Result<ChargeOutcome, Failure>>);

pub struct Ledger {
    sender: mpsc::Sender<Waiting>,
}

impl Ledger {
    /// The ledger over `store`, its task on the current runtime.
    pub fn start(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        let (sender, mut receiver) = mpsc::channel::<Waiting>(4 * GROUP);
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut group = vec![first];
                while group.len() < GROUP {
                    match receiver.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                let charges: Vec<Charge<'_>> = group.iter().map(|(c, _)| c.as_charge()).collect();
                let started = std::time::Instant::now();
                let outcomes = store.charge_many(&charges).await;
                let seconds = started.elapsed().as_secs_f64();
                metrics.charge_seconds.observe(seconds);
                if let Ok(mut time) = metrics.charge_time.lock() {
                    time.charges += charges.len() as u64;
                    time.commits += 1;
                    time.seconds += seconds;
                }
                drop(charges);
                match outcomes {
                    Ok(outcomes) if outcomes.len() == group.len() => {
                        for ((_, reply), outcome) in group.into_iter().zip(outcomes) {
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                    Ok(_) => {
                        for (_, reply) in group {
                            let _ = reply.send(Err((
                                "the store answered the wrong number of charges".into(),
                                false,
                            )));
                        }
                    }
                    Err(e) => {
                        let failure = (format!("{e:#}"), is_unreachable(&e));
                        for (_, reply) in group {
                            let _ = reply.send(Err(failure.clone()));
                        }
                    }
                }
            }
        });
        Self { sender }
    }

    /// Charges durably (with whatever else is waiting), then answers.
    pub async fn charge(&self, charge: OwnedCharge) -> Result<ChargeOutcome> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send((charge, reply))
            .await
            .map_err(|_| anyhow!("the ledger stopped"))?;
        answer
            .await
            .map_err(|_| anyhow!("the ledger stopped"))?
            .map_err(|(why, unreachable)| {
                if unreachable {
                    anyhow!(Unreachable(format!("charging the budget: {why}")))
                } else {
                    anyhow!("charging the budget: {why}")
                }
            })
    }
}
