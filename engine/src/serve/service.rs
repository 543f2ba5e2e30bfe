//! The gRPC service (proto/helora/v1): every call authenticated by its API token, every
//! refusal a precise status, and nothing a client sends can stop the server serving the
//! others. The PLL budget is charged in the durable store before a reply leaves.

use super::adapters::{is_client_error, Adapters, HeldAdapter, Lease};
use super::ledger::{Ledger, OwnedCharge};
use super::metrics::Metrics;
use super::proto::{self, private_lora_server::PrivateLora};
use super::scheduler::{Refused, Scheduler};
use super::state::{self, ChargeOutcome, ClientRecord, KeysAdded, Store};
use super::tokens;
use super::wire;
use crate::secure::{parse_inputs, InputScaling, Manifest, Request};
use helora::ckks::{KeySeed, Params};
use helora::pll::ClientId;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request as Rpc, Response, Status, Streaming};

/// What one client may send.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest key upload (evaluation keys + public key), in bytes.
    pub max_key_upload: usize,
    /// Key sets one client may register.
    pub max_key_sets: usize,
    /// Most tokens in one site request (a prompt's).
    pub max_request_tokens: usize,
}

pub struct Service {
    pub adapters: Arc<Adapters>,
    pub store: Arc<dyn Store>,
    /// Charges budgets in group commits over `store`.
    pub ledger: Ledger,
    pub scheduler: Arc<Scheduler>,
    pub metrics: Arc<Metrics>,
    pub params: Params,
    /// Keys the noise of every answer (see [`noise_seed`]).
    pub secret: [u8; 32],
    /// Queries each projection of an adapter may answer over all clients (u64::MAX: no
    /// bound).
    pub adapter_budget: u64,
    pub limits: Limits,
    /// Turns true on SIGTERM: sessions end after their request in flight.
    pub shutdown: watch::Receiver<bool>,
    /// Calls and sessions in progress: a stop waits for them, not for idle connections.
    pub active: Arc<AtomicUsize>,
}

/// Counts one call or session as active while alive.
struct Active(Arc<AtomicUsize>);

impl Active {
    fn enter(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A failure of the server's own: the state database out of reach is worth a retry
/// (UNAVAILABLE, which clients retry with backoff); anything else is an internal error.
fn internal(e: anyhow::Error) -> Status {
    if state::is_unreachable(&e) {
        tracing::warn!("the state database is unreachable: {e:#}");
        return Status::unavailable(format!("the server's state database is unreachable: {e:#}"));
    }
    tracing::error!("internal error: {e:#}");
    Status::internal(format!("internal server error: {e:#}"))
}

fn status_name(status: &Status) -> String {
    format!("{:?}", status.code()).to_lowercase()
}

impl Service {
    async fn authenticate<T>(&self, request: &Rpc<T>) -> Result<ClientRecord, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing API token (authorization: Bearer …)"))?
            .to_str()
            .map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
        let token = tokens::from_bearer(header)
            .ok_or_else(|| Status::unauthenticated("malformed API token: expected Bearer hlr_…"))?;
        let client = self
            .store
            .client_by_token(&tokens::hash(token))
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::unauthenticated("unknown API token"))?;
        if client.revoked {
            return Err(Status::permission_denied(format!(
                "client {:?} is revoked",
                client.name
            )));
        }
        Ok(client)
    }

    /// The adapter `name` names, if this client may use it.
    fn adapter_for(&self, client: &ClientRecord, name: &str) -> Result<&HeldAdapter, Status> {
        let adapter = self.adapters.get(name).map_err(Status::not_found)?;
        match &client.adapter {
            Some(allowed) if allowed != &adapter.name => Err(Status::permission_denied(format!(
                "client {:?} may use adapter {allowed:?} only, not {:?}",
                client.name, adapter.name
            ))),
            _ => Ok(adapter),
        }
    }

    fn budget_of(client: &ClientRecord, adapter: &HeldAdapter) -> u64 {
        client.budget.min(adapter.settings.budget)
    }

    /// The id of `client`'s key set `fingerprint`.
    async fn key_set_id(
        &self,
        client: &ClientRecord,
        fingerprint: &[u8],
    ) -> Result<ClientId, Status> {
        let fingerprint = fingerprint_of(fingerprint)?;
        let id = self
            .store
            .key_set_id(client.id, &fingerprint)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "no key set {} is registered for this client: register it first",
                    tokens::hex(&fingerprint)
                ))
            })?;
        Ok(ClientId(
            u64::try_from(id).map_err(|_| Status::internal("bad key set id"))?,
        ))
    }

    /// Key set `id` held by `adapter`'s evaluator for the request in progress: loaded from
    /// the store when this replica does not hold it (after a restart, an eviction, or a
    /// registration through another replica).
    async fn resident(
        &self,
        adapter: &HeldAdapter,
        client: &ClientRecord,
        id: ClientId,
    ) -> Result<Lease, Status> {
        if let Some(lease) = adapter.lease(id) {
            return Ok(lease);
        }
        let stored = i64::try_from(id.0).map_err(|_| Status::internal("bad key set id"))?;
        let keys = self
            .store
            .key_set(stored)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::failed_precondition("the key set was removed"))?;
        self.metrics.key_loads.inc();
        self.admit(adapter, client, id, keys.eval_keys, keys.public_key)
            .await
    }

    /// The registration challenge of `client`: the seed its keys' `a` halves must come
    /// from, HMAC-SHA-256 under the server's secret of the identity. Stateless, so every
    /// replica sharing the state hands out, and accepts, the same seed.
    fn key_seed(&self, client: &ClientRecord) -> KeySeed {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("HMAC accepts 32-byte keys");
        mac.update(b"helora key seed v1");
        mac.update(&client.id.to_le_bytes());
        let tag: [u8; 32] = mac.finalize().into_bytes().into();
        let mut seed = [0u8; 16];
        seed.copy_from_slice(&tag[..16]);
        KeySeed(seed)
    }

    /// Decodes and checks `client`'s key set for `adapter` off the async threads.
    async fn admit(
        &self,
        adapter: &HeldAdapter,
        client: &ClientRecord,
        id: ClientId,
        eval_keys: Vec<u8>,
        public_key: Vec<u8>,
    ) -> Result<Lease, Status> {
        let key_seed = self.key_seed(client);
        let adapters = self.adapters.clone();
        let name = adapter.name.clone();
        let held = adapters.clone();
        let result = tokio::task::spawn_blocking(move || {
            adapters
                .get(&name)
                .map_err(anyhow::Error::msg)
                .and_then(|a| a.admit(id, &eval_keys, &public_key, &key_seed))
        })
        .await
        .map_err(|e| internal(e.into()))?;
        let resident: usize = held.iter().map(HeldAdapter::resident_key_sets).sum();
        self.metrics
            .resident_key_sets
            .set(i64::try_from(resident).unwrap_or(i64::MAX));
        result.map_err(|e| {
            if is_client_error(&e) {
                Status::failed_precondition(format!(
                    "the key set does not fit adapter {:?}: {e:#}",
                    adapter.name
                ))
            } else {
                internal(e)
            }
        })
    }

    /// One site request: checked, charged, queued, answered.
    async fn answer(
        &self,
        client: &ClientRecord,
        key_sets: &mut HashMap<(String, Vec<u8>), ClientId>,
        message: proto::SiteRequest,
    ) -> Result<proto::SiteReply, Status> {
        let arrived = Instant::now();
        let adapter = self.adapter_for(client, &message.adapter)?;
        if message.session.len() != 16 {
            return Err(Status::invalid_argument("a session id is 16 bytes"));
        }
        if message.tokens.is_empty() {
            return Err(Status::invalid_argument(
                "a request carries at least one token",
            ));
        }
        if message.tokens.len() > self.limits.max_request_tokens {
            return Err(Status::invalid_argument(format!(
                "a request carries at most {} tokens, this one {}",
                self.limits.max_request_tokens,
                message.tokens.len()
            )));
        }
        let layer = usize::try_from(message.layer)
            .map_err(|_| Status::invalid_argument("layer out of range"))?;
        let requests: Vec<Request> = message
            .tokens
            .into_iter()
            .map(|t| Request {
                layer,
                modules: message.modules.clone(),
                inputs: t.inputs,
                scaling: InputScaling::default(),
            })
            .collect();
        let refs: Vec<&Request> = requests.iter().collect();
        adapter
            .check(&refs)
            .map_err(|e| Status::invalid_argument(format!("{e:#}")))?;
        let bytes_in: usize = requests.iter().map(Request::bytes).sum();
        self.metrics.add_bytes("in", bytes_in);
        // Parsed here, once (cheap next to the evaluation), so a malformed ciphertext is
        // refused before it is charged; the batch expands what was parsed.
        let parsed = requests
            .iter()
            .map(|r| parse_inputs(&self.params, &r.inputs))
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(|e| Status::invalid_argument(format!("{e:#}")))?;
        let key = (adapter.name.clone(), message.fingerprint.clone());
        let id = match key_sets.get(&key) {
            Some(id) => *id,
            None => {
                let id = self.key_set_id(client, &message.fingerprint).await?;
                key_sets.insert(key, id);
                id
            }
        };
        // Held until the reply is made: the key set is not evicted under the evaluation.
        let _lease = self.resident(adapter, client, id).await?;
        let permit = self.scheduler.reserve(requests.len()).map_err(refused)?;
        let digest = digest(&requests);
        let projections: Vec<(usize, String)> =
            message.modules.iter().map(|m| (layer, m.clone())).collect();
        let outcome = self
            .ledger
            .charge(OwnedCharge {
                client: client.id,
                adapter: adapter.name.clone(),
                projections,
                count: requests.len() as u64,
                server_budget: adapter.settings.budget,
                adapter_budget: self.adapter_budget,
                session: message.session.clone(),
                seq: message.seq,
                digest,
            })
            .await
            .map_err(internal)?;
        match outcome {
            ChargeOutcome::Charged | ChargeOutcome::AlreadyCharged => {}
            ChargeOutcome::Revoked => {
                return Err(Status::permission_denied(format!(
                    "client {:?} is revoked",
                    client.name
                )))
            }
            ChargeOutcome::Exhausted { layer, module, budget } => {
                return Err(Status::resource_exhausted(format!(
                    "query budget exhausted: client {:?} has used all {budget} queries to layer {layer} {module} of adapter {:?}",
                    client.name, adapter.name
                )))
            }
            ChargeOutcome::AdapterExhausted { layer, module, budget } => {
                return Err(Status::resource_exhausted(format!(
                    "adapter {:?} has answered all {budget} queries its operator allows to layer {layer} {module}, over all clients",
                    adapter.name
                )))
            }
            ChargeOutcome::Conflict(why) => return Err(Status::failed_precondition(why)),
        }
        // The bytes are parsed and hashed: only the parsed inputs wait in the queue.
        drop(requests);
        let work = parsed
            .into_iter()
            .enumerate()
            .map(|(k, inputs)| {
                let seed = noise_seed(&self.secret, id, &message.session, message.seq, k, &digest);
                (inputs, seed)
            })
            .collect();
        let receiver = self
            .scheduler
            .submit(&adapter.name, id, layer, message.modules, work, permit)
            .map_err(refused)?;
        let results = receiver
            .await
            .map_err(|_| Status::unavailable("the server stopped before answering"))?;
        let mut tokens = Vec::with_capacity(results.len());
        for result in results {
            let reply = result.map_err(|e| {
                if is_client_error(&e) {
                    Status::invalid_argument(format!("{e:#}"))
                } else {
                    internal(e)
                }
            })?;
            self.metrics.add_bytes("out", reply.bytes());
            tokens.push(wire::token_output(reply));
        }
        let elapsed = arrived.elapsed();
        self.metrics.request_seconds.observe(elapsed.as_secs_f64());
        Ok(proto::SiteReply {
            seq: message.seq,
            tokens,
            server_micros: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        })
    }
}

/// A key set's fingerprint as a client sent it.
fn fingerprint_of(bytes: &[u8]) -> Result<[u8; 32], Status> {
    bytes
        .try_into()
        .map_err(|_| Status::invalid_argument("a key fingerprint is 32 bytes"))
}

fn refused(why: Refused) -> Status {
    match why {
        Refused::Full { capacity } => Status::resource_exhausted(format!(
            "the server's queues are full ({capacity} tokens): retry later"
        )),
        Refused::TooLarge { tokens, capacity } => Status::invalid_argument(format!(
            "a request of {tokens} tokens exceeds the server's queue capacity of {capacity}"
        )),
        Refused::Stopping => Status::unavailable("the server is shutting down"),
    }
}

/// SHA-256 over a request's projections and inputs: binds its idempotency key to what it
/// asks.
fn digest(requests: &[Request]) -> [u8; 32] {
    let mut hash = Sha256::new();
    if let Some(first) = requests.first() {
        hash.update((first.layer as u64).to_le_bytes());
        for m in &first.modules {
            hash.update((m.len() as u64).to_le_bytes());
            hash.update(m.as_bytes());
        }
    }
    for request in requests {
        hash.update((request.inputs.len() as u64).to_le_bytes());
        for input in &request.inputs {
            hash.update((input.len() as u64).to_le_bytes());
            hash.update(input);
        }
    }
    hash.finalize().into()
}

/// The PLL randomness of token `k` of a request: HMAC-SHA-256 under the server's secret of
/// (key set, session, seq, k, the inputs' digest). A request re-sent after a lost reply gets
/// the identical answer (it learns nothing new, and is charged once); different inputs
/// always get fresh noise.
fn noise_seed(
    secret: &[u8; 32],
    key_set: ClientId,
    session: &[u8],
    seq: u64,
    k: usize,
    digest: &[u8; 32],
) -> [u8; 32] {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts 32-byte keys");
    mac.update(b"helora noise v1");
    mac.update(&key_set.0.to_le_bytes());
    mac.update(session);
    mac.update(&seq.to_le_bytes());
    mac.update(&(k as u64).to_le_bytes());
    mac.update(digest);
    mac.finalize().into_bytes().into()
}

type ReplyStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<proto::SiteReply, Status>> + Send>>;

#[tonic::async_trait]
impl PrivateLora for Arc<Service> {
    async fn get_manifest(
        &self,
        request: Rpc<proto::ManifestRequest>,
    ) -> Result<Response<proto::ManifestReply>, Status> {
        let _active = Active::enter(&self.active);
        let client = self.authenticate(&request).await?;
        let adapter = self.adapter_for(&client, &request.get_ref().adapter)?;
        let budget = Service::budget_of(&client, adapter);
        let used = self
            .store
            .most_used(client.id, &adapter.name)
            .await
            .map_err(internal)?;
        self.metrics.count(&adapter.name, "manifest");
        let manifest = Manifest {
            key_seed: self.key_seed(&client),
            ..adapter.manifest.clone()
        };
        let reply = wire::manifest_reply(
            &adapter.name,
            &manifest,
            &adapter.settings,
            budget,
            budget.saturating_sub(used),
        )
        .map_err(internal)?;
        Ok(Response::new(reply))
    }

    async fn register_keys(
        &self,
        request: Rpc<Streaming<proto::KeyChunk>>,
    ) -> Result<Response<proto::Registration>, Status> {
        let _active = Active::enter(&self.active);
        let client = self.authenticate(&request).await?;
        let mut chunks = request.into_inner();
        let first = chunks
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("an empty key upload"))?;
        let header = first
            .header
            .ok_or_else(|| Status::invalid_argument("the first key chunk carries no header"))?;
        let adapter = self.adapter_for(&client, &header.adapter)?;
        let fingerprint = fingerprint_of(&header.fingerprint)?;
        let declared = header
            .eval_keys_len
            .checked_add(header.public_key_len)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= self.limits.max_key_upload)
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "keys of {} + {} bytes exceed this server's limit of {} bytes",
                    header.eval_keys_len, header.public_key_len, self.limits.max_key_upload
                ))
            })?;
        if let Some(id) = self
            .store
            .key_set_id(client.id, &fingerprint)
            .await
            .map_err(internal)?
        {
            return Err(Status::already_exists(format!(
                "key set {} is registered already (id {id}): use it",
                tokens::hex(&fingerprint)
            )));
        }
        let mut data = Vec::with_capacity(declared);
        let mut next = Some(first.data);
        loop {
            if let Some(bytes) = next.take() {
                if data.len() + bytes.len() > declared {
                    return Err(Status::invalid_argument(format!(
                        "the key upload runs past its declared {declared} bytes"
                    )));
                }
                data.extend_from_slice(&bytes);
            }
            match chunks.message().await? {
                Some(chunk) if chunk.header.is_some() => {
                    return Err(Status::invalid_argument(
                        "only the first key chunk carries a header",
                    ))
                }
                Some(chunk) => next = Some(chunk.data),
                None => break,
            }
        }
        if data.len() != declared {
            return Err(Status::invalid_argument(format!(
                "the key upload is truncated: {} of {declared} bytes",
                data.len()
            )));
        }
        let actual: [u8; 32] = Sha256::digest(&data).into();
        if actual != fingerprint {
            return Err(Status::invalid_argument(
                "the key upload does not match its fingerprint",
            ));
        }
        self.metrics.add_bytes("in", data.len());
        let split = usize::try_from(header.eval_keys_len)
            .map_err(|_| Status::invalid_argument("bad length"))?;
        let public_key = data.split_off(split);
        let eval_keys = data;
        let id = match self
            .store
            .add_keys(
                client.id,
                &fingerprint,
                &eval_keys,
                &public_key,
                self.limits.max_key_sets,
            )
            .await
            .map_err(internal)?
        {
            KeysAdded::Added(id) => id,
            KeysAdded::AlreadyRegistered(_) => {
                return Err(Status::already_exists("this key set is registered already"))
            }
            KeysAdded::TooMany { max } => {
                return Err(Status::resource_exhausted(format!(
                    "client {:?} holds its limit of {max} key sets",
                    client.name
                )))
            }
        };
        let pll_id = ClientId(u64::try_from(id).map_err(|_| Status::internal("bad key set id"))?);
        if let Err(status) = self
            .admit(adapter, &client, pll_id, eval_keys, public_key)
            .await
            .map(drop)
        {
            // Keys that do not fit the adapter are not kept.
            if let Err(e) = self.store.remove_keys(id).await {
                tracing::error!("removing refused key set {id}: {e:#}");
            }
            return Err(status);
        }
        self.metrics.registrations.inc();
        tracing::info!(client = %client.name, adapter = %adapter.name, key_set = id, "registered a key set");
        Ok(Response::new(proto::Registration {
            fingerprint: fingerprint.to_vec(),
        }))
    }

    async fn has_keys(
        &self,
        request: Rpc<proto::HasKeysRequest>,
    ) -> Result<Response<proto::HasKeysReply>, Status> {
        let _active = Active::enter(&self.active);
        let client = self.authenticate(&request).await?;
        let fingerprint = fingerprint_of(&request.get_ref().fingerprint)?;
        let known = self
            .store
            .key_set_id(client.id, &fingerprint)
            .await
            .map_err(internal)?
            .is_some();
        Ok(Response::new(proto::HasKeysReply { known }))
    }

    type SessionStream = ReplyStream;

    async fn session(
        &self,
        request: Rpc<Streaming<proto::SiteRequest>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let active = Active::enter(&self.active);
        let client = self.authenticate(&request).await?;
        let mut inbound = request.into_inner();
        let (sender, receiver) = mpsc::channel(2);
        let service = self.clone();
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let _active = active;
            service.metrics.sessions.inc();
            let mut key_sets = HashMap::new();
            loop {
                let message = tokio::select! {
                    // A client that closed its side ends the session normally, even
                    // while the server stops.
                    biased;
                    message = inbound.next() => Some(message),
                    _ = shutdown.wait_for(|stop| *stop) => None,
                };
                let message = match message {
                    Some(Some(Ok(message))) => message,
                    // The client closed its side, or its connection broke.
                    Some(Some(Err(_)) | None) => break,
                    None => {
                        let stopping =
                            Status::unavailable("the server is shutting down: reconnect");
                        let _ = sender.send(Err(stopping)).await;
                        break;
                    }
                };
                let adapter = message.adapter.clone();
                let reply = service.answer(&client, &mut key_sets, message).await;
                let outcome = match &reply {
                    Ok(_) => "ok".to_string(),
                    Err(status) => status_name(status),
                };
                service.metrics.count(&adapter, &outcome);
                let failed = reply.is_err();
                if let Err(status) = &reply {
                    tracing::info!(client = %client.name, "refused a request: {}", status.message());
                }
                if sender.send(reply).await.is_err() || failed {
                    break;
                }
            }
            service.metrics.sessions.dec();
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
