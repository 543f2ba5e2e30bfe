//! The server's durable state behind one trait: its identities (API tokens, stored only as
//! hashes), their key sets (addressed by fingerprint), the PLL budgets they have used, the
//! last request of every session (so a re-sent request is charged once), and the server's
//! own secret (from which every answer's noise is derived). SQLite is the embedded store;
//! another (PostgreSQL) implements the same trait.

mod sqlite;

pub use sqlite::SqliteStore;

use anyhow::Result;
use std::path::PathBuf;

/// A client identity as the operator issued it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ClientRecord {
    pub id: i64,
    pub name: String,
    /// Queries each projection of an adapter may answer for this client.
    pub budget: u64,
    /// The one adapter this client may use; `None`: any.
    pub adapter: Option<String>,
    pub revoked: bool,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

/// A key set a client registered.
pub struct KeySet {
    /// Also the [`helora::pll::ClientId`] the evaluator holds it under.
    pub id: i64,
    pub eval_keys: Vec<u8>,
    pub public_key: Vec<u8>,
}

/// One request's charge: `count` queries to each projection of `adapter` named in
/// `projections`, identified by (`session`, `seq`) and bound to its inputs' `digest`.
pub struct Charge<'a> {
    pub client: i64,
    pub adapter: &'a str,
    pub projections: &'a [(usize, String)],
    pub count: u64,
    /// The server's own bound (the PLL's flooding is calibrated for it): the client's
    /// budget never exceeds it.
    pub server_budget: u64,
    pub session: &'a [u8],
    pub seq: u64,
    pub digest: &'a [u8; 32],
}

/// What [`Store::charge`] decided; nothing is charged unless `Charged`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargeOutcome {
    Charged,
    /// The same (session, seq) with the same inputs was charged before: answer again,
    /// charge nothing.
    AlreadyCharged,
    Revoked,
    Exhausted {
        layer: usize,
        module: String,
        budget: u64,
    },
    /// The same (session, seq) came before with other inputs, or a seq below the
    /// session's last: refused (a replayed key must not buy a second answer).
    Conflict(String),
}

/// Where a registration attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeysAdded {
    Added(i64),
    AlreadyRegistered(i64),
    /// The client holds its limit of key sets.
    TooMany {
        max: usize,
    },
}

#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// A human-readable name of where the state lives (for logs).
    fn location(&self) -> String;
    /// The server's 32-byte secret, made on first use and kept for good.
    async fn server_secret(&self) -> Result<[u8; 32]>;
    async fn add_client(
        &self,
        name: &str,
        token_hash: &[u8; 32],
        budget: u64,
        adapter: Option<&str>,
    ) -> Result<ClientRecord>;
    async fn clients(&self) -> Result<Vec<ClientRecord>>;
    /// Revokes by name; false if there is no such client.
    async fn revoke(&self, name: &str) -> Result<bool>;
    async fn client_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<ClientRecord>>;
    async fn add_keys(
        &self,
        client: i64,
        fingerprint: &[u8; 32],
        eval_keys: &[u8],
        public_key: &[u8],
        max_per_client: usize,
    ) -> Result<KeysAdded>;
    /// Forgets a key set (one the server refused after storing it).
    async fn remove_keys(&self, id: i64) -> Result<()>;
    /// The id of `client`'s key set `fingerprint`, if registered.
    async fn key_set_id(&self, client: i64, fingerprint: &[u8; 32]) -> Result<Option<i64>>;
    async fn key_set(&self, id: i64) -> Result<Option<KeySet>>;
    /// The most queries `client` has made to any projection of `adapter`.
    async fn most_used(&self, client: i64, adapter: &str) -> Result<u64>;
    /// Queries used per (client name, adapter, layer, module): the metrics' view.
    async fn usage(&self) -> Result<Vec<(String, String, usize, String, u64)>>;
    /// Atomically per charge: checks the identity, the idempotency key and every budget,
    /// then charges all of it or nothing; the whole group durably, in one commit, before
    /// the caller sends any reply.
    async fn charge_many(&self, charges: &[Charge<'_>]) -> Result<Vec<ChargeOutcome>>;

    async fn charge(&self, charge: &Charge<'_>) -> Result<ChargeOutcome> {
        self.charge_many(std::slice::from_ref(charge))
            .await?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("the store answered no charge"))
    }
}

/// Opens the store a `--state` argument names: `sqlite:PATH`, a bare path, or, by default,
/// `state.sqlite` in helora's data dir.
pub async fn open(spec: Option<&str>) -> Result<Box<dyn Store>> {
    let path = match spec {
        None => default_path()?,
        Some(spec) if spec.starts_with("postgres://") || spec.starts_with("postgresql://") => {
            anyhow::bail!(
                "--state {spec}: this build keeps state in SQLite only (sqlite:PATH); PostgreSQL comes with server replicas"
            )
        }
        Some(spec) => PathBuf::from(spec.strip_prefix("sqlite:").unwrap_or(spec)),
    };
    Ok(Box::new(SqliteStore::open(&path).await?))
}

/// `state.sqlite` under the user's data dir (`~/.local/share/helora` on Linux).
pub fn default_path() -> Result<PathBuf> {
    let dir = dirs::data_dir()
        .ok_or_else(|| anyhow::anyhow!("no data dir for this user: give --state sqlite:PATH"))?
        .join("helora");
    Ok(dir.join("state.sqlite"))
}
