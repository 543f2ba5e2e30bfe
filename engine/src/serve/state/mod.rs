//! The server's durable state behind one trait: its identities (API tokens, stored only as
//! hashes), their key sets (addressed by fingerprint), the PLL budgets they have used, the
//! last request of every session (so a re-sent request is charged once), and the server's
//! own secret (from which every answer's noise is derived). SQLite is the embedded store;
//! PostgreSQL the one that server replicas share. Both run versioned migrations
//! (`engine/migrations/`) at start, and both pass the same tests (`tests.rs`).

mod postgres;
pub mod scratch;
mod sqlite;
#[cfg(test)]
mod tests;

pub use postgres::PostgresStore;
pub use scratch::ScratchSchema;
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
    /// Queries each projection of `adapter` may answer over all identities together
    /// (`serve --adapter-budget`; u64::MAX: unbounded). Counted whatever the bound.
    pub adapter_budget: u64,
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
    /// The adapter's budget over all identities is spent on this projection.
    AdapterExhausted {
        layer: usize,
        module: String,
        budget: u64,
    },
    /// The same (session, seq) came before with other inputs, or a seq below the
    /// session's last: refused (a replayed key must not buy a second answer).
    Conflict(String),
}

/// A projection of an adapter and its input width.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Projection {
    pub layer: usize,
    pub module: String,
    pub d_in: usize,
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
    /// Gives the client `name` a new token (its hash), the old one refused from now on;
    /// its identity, budget and key sets stay. False if there is no such client.
    async fn rotate_token(&self, name: &str, token_hash: &[u8; 32]) -> Result<bool>;
    /// Whether the store answers (a readiness check).
    async fn ping(&self) -> Result<()>;
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
    /// Queries used per (adapter, layer, module) over all identities.
    async fn adapter_usage(&self) -> Result<Vec<(String, usize, String, u64)>>;
    /// Records the input width of each projection of `adapter` (a server does at start),
    /// for reports in units of d_in.
    async fn record_projections(&self, adapter: &str, projections: &[Projection]) -> Result<()>;
    /// Every projection recorded.
    async fn projections(&self) -> Result<Vec<(String, Projection)>>;
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

/// How long a finished session's last request stays re-sendable: while its generation runs
/// and is retried it matters; a week later it is history, and the table would otherwise
/// grow with every generation ever served.
const SESSION_RETENTION_SECS: i64 = 7 * 24 * 3600;

/// The stores' integers are signed: budgets and counts above i64::MAX are stored as
/// i64::MAX (an unbounded budget stays unbounded).
fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Seconds since the Unix epoch.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What a charge whose session already reached `last_seq` (with inputs `digest`) gets: the
/// same request again is answered without a charge; anything else is refused.
fn replay_outcome(charge: &Charge<'_>, last_seq: u64, digest: &[u8]) -> ChargeOutcome {
    if charge.seq == last_seq {
        if *digest == charge.digest[..] {
            ChargeOutcome::AlreadyCharged
        } else {
            ChargeOutcome::Conflict(format!(
                "request {} of this session was sent before with other inputs",
                charge.seq
            ))
        }
    } else {
        ChargeOutcome::Conflict(format!(
            "request {} is older than this session's last ({last_seq})",
            charge.seq
        ))
    }
}

/// Opens the store a `--state` argument names: `postgres://…` (or `postgresql://…`),
/// `sqlite:PATH`, a bare path, or, by default, `state.sqlite` in helora's data dir.
pub async fn open(spec: Option<&str>) -> Result<Box<dyn Store>> {
    let path = match spec {
        None => default_path()?,
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            return Ok(Box::new(PostgresStore::open(url).await?));
        }
        Some(spec) => PathBuf::from(spec.strip_prefix("sqlite:").unwrap_or(spec)),
    };
    Ok(Box::new(SqliteStore::open(&path).await?))
}

/// A store that could not be reached, as an error that crosses threads as text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// Whether a store error means the store could not be reached (a request may succeed if
/// retried), rather than that it refused something.
pub fn is_unreachable(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.is::<Unreachable>()
            || matches!(
                cause.downcast_ref::<sqlx::Error>(),
                Some(
                    sqlx::Error::Io(_)
                        | sqlx::Error::Tls(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::WorkerCrashed
                )
            )
    })
}

/// `state.sqlite` under the user's data dir (`~/.local/share/helora` on Linux).
pub fn default_path() -> Result<PathBuf> {
    let dir = dirs::data_dir()
        .ok_or_else(|| anyhow::anyhow!("no data dir for this user: give --state sqlite:PATH"))?
        .join("helora");
    Ok(dir.join("state.sqlite"))
}
