//! The embedded store: one SQLite file in WAL mode, every commit synced (a charge that
//! returned survives a crash or a power cut). One connection per process: SQLite
//! serialises writers anyway. Write transactions begin IMMEDIATE: a deferred one that reads
//! first could not take the write lock after another process (`helora clients add`)
//! committed (SQLITE_BUSY_SNAPSHOT), where an immediate one waits its turn.

use super::{Charge, ChargeOutcome, ClientRecord, KeySet, KeysAdded, Store};
use anyhow::{Context, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::{Path, PathBuf};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS server (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS clients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    token_hash BLOB NOT NULL UNIQUE,
    budget INTEGER NOT NULL,
    adapter TEXT,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS key_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id INTEGER NOT NULL REFERENCES clients(id),
    fingerprint BLOB NOT NULL,
    eval_keys BLOB NOT NULL,
    public_key BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (client_id, fingerprint)
);
CREATE TABLE IF NOT EXISTS usage (
    client_id INTEGER NOT NULL REFERENCES clients(id),
    adapter TEXT NOT NULL,
    layer INTEGER NOT NULL,
    module TEXT NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (client_id, adapter, layer, module)
);
CREATE TABLE IF NOT EXISTS sessions (
    client_id INTEGER NOT NULL REFERENCES clients(id),
    session BLOB NOT NULL,
    last_seq INTEGER NOT NULL,
    digest BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, session)
);
"#;

/// How long a finished session's last request stays re-sendable.
const SESSION_RETENTION_SECS: i64 = 7 * 24 * 3600;

pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
}

/// SQLite integers are signed: budgets and counts above i64::MAX are stored as i64::MAX
/// (an unbounded budget stays unbounded).
fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn record(row: &sqlx::sqlite::SqliteRow) -> Result<ClientRecord> {
    Ok(ClientRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        budget: from_sql(row.try_get("budget")?),
        adapter: row.try_get("adapter")?,
        revoked: row.try_get::<i64, _>("revoked")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

const CLIENT_COLUMNS: &str = "id, name, budget, adapter, revoked, created_at";

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, its directory included.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the state directory {}", dir.display()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .with_context(|| format!("opening the state database {}", path.display()))?;
        sqlx::raw_sql(SCHEMA)
            .execute(&pool)
            .await
            .with_context(|| format!("creating the schema in {}", path.display()))?;
        // A session's idempotency key matters while its generation runs and is retried:
        // a week later it is history, and the table would otherwise grow with every
        // generation ever served.
        sqlx::query("DELETE FROM sessions WHERE updated_at < ?")
            .bind(now() - SESSION_RETENTION_SECS)
            .execute(&pool)
            .await
            .with_context(|| format!("pruning old sessions in {}", path.display()))?;
        Ok(Self {
            pool,
            path: path.to_path_buf(),
        })
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn location(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    async fn server_secret(&self) -> Result<[u8; 32]> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
        // Inserted once; every later call reads the first one back.
        sqlx::query("INSERT OR IGNORE INTO server (key, value) VALUES ('secret', ?)")
            .bind(&fresh[..])
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT value FROM server WHERE key = 'secret'")
            .fetch_one(&self.pool)
            .await?;
        let value: Vec<u8> = row.try_get("value")?;
        value
            .try_into()
            .map_err(|_| anyhow::anyhow!("the stored server secret is not 32 bytes"))
    }

    async fn add_client(
        &self,
        name: &str,
        token_hash: &[u8; 32],
        budget: u64,
        adapter: Option<&str>,
    ) -> Result<ClientRecord> {
        let taken = sqlx::query("SELECT 1 FROM clients WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        if taken.is_some() {
            anyhow::bail!(
                "a client named {name:?} exists already (revoke it or pick another name)"
            );
        }
        let row = sqlx::query(&format!(
            "INSERT INTO clients (name, token_hash, budget, adapter, created_at) \
             VALUES (?, ?, ?, ?, ?) RETURNING {CLIENT_COLUMNS}"
        ))
        .bind(name)
        .bind(&token_hash[..])
        .bind(to_sql(budget))
        .bind(adapter)
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        record(&row)
    }

    async fn clients(&self) -> Result<Vec<ClientRecord>> {
        sqlx::query(&format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(record)
            .collect()
    }

    async fn revoke(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE clients SET revoked = 1 WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn client_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<ClientRecord>> {
        sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE token_hash = ?"
        ))
        .bind(&token_hash[..])
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(record)
        .transpose()
    }

    async fn add_keys(
        &self,
        client: i64,
        fingerprint: &[u8; 32],
        eval_keys: &[u8],
        public_key: &[u8],
        max_per_client: usize,
    ) -> Result<KeysAdded> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(id) =
            sqlx::query("SELECT id FROM key_sets WHERE client_id = ? AND fingerprint = ?")
                .bind(client)
                .bind(&fingerprint[..])
                .fetch_optional(&mut *tx)
                .await?
        {
            return Ok(KeysAdded::AlreadyRegistered(id.try_get("id")?));
        }
        let held: i64 = sqlx::query("SELECT COUNT(*) AS n FROM key_sets WHERE client_id = ?")
            .bind(client)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if from_sql(held) >= max_per_client as u64 {
            return Ok(KeysAdded::TooMany {
                max: max_per_client,
            });
        }
        let id: i64 = sqlx::query(
            "INSERT INTO key_sets (client_id, fingerprint, eval_keys, public_key, created_at) \
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(client)
        .bind(&fingerprint[..])
        .bind(eval_keys)
        .bind(public_key)
        .bind(now())
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        tx.commit().await?;
        Ok(KeysAdded::Added(id))
    }

    async fn remove_keys(&self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM key_sets WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn key_set_id(&self, client: i64, fingerprint: &[u8; 32]) -> Result<Option<i64>> {
        sqlx::query("SELECT id FROM key_sets WHERE client_id = ? AND fingerprint = ?")
            .bind(client)
            .bind(&fingerprint[..])
            .fetch_optional(&self.pool)
            .await?
            .map(|row| Ok(row.try_get("id")?))
            .transpose()
    }

    async fn key_set(&self, id: i64) -> Result<Option<KeySet>> {
        sqlx::query("SELECT id, eval_keys, public_key FROM key_sets WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| {
                Ok(KeySet {
                    id: row.try_get("id")?,
                    eval_keys: row.try_get("eval_keys")?,
                    public_key: row.try_get("public_key")?,
                })
            })
            .transpose()
    }

    async fn most_used(&self, client: i64, adapter: &str) -> Result<u64> {
        let used: Option<i64> =
            sqlx::query("SELECT MAX(used) AS m FROM usage WHERE client_id = ? AND adapter = ?")
                .bind(client)
                .bind(adapter)
                .fetch_one(&self.pool)
                .await?
                .try_get("m")?;
        Ok(used.map(from_sql).unwrap_or(0))
    }

    async fn usage(&self) -> Result<Vec<(String, String, usize, String, u64)>> {
        sqlx::query(
            "SELECT c.name AS name, u.adapter AS adapter, u.layer AS layer, u.module AS module, \
             u.used AS used FROM usage u JOIN clients c ON c.id = u.client_id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get("name")?,
                row.try_get("adapter")?,
                from_sql(row.try_get("layer")?) as usize,
                row.try_get("module")?,
                from_sql(row.try_get("used")?),
            ))
        })
        .collect()
    }

    async fn charge_many(&self, charges: &[Charge<'_>]) -> Result<Vec<ChargeOutcome>> {
        // One transaction, one synced commit for the whole group (a group commit): each
        // charge is checked and applied in turn, so a refused one changes nothing.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut outcomes = Vec::with_capacity(charges.len());
        for charge in charges {
            outcomes.push(charge_one(&mut tx, charge).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

/// Checks and, if everything allows it, applies one charge inside `tx`.
async fn charge_one(tx: &mut sqlx::SqliteConnection, charge: &Charge<'_>) -> Result<ChargeOutcome> {
    let client = sqlx::query("SELECT revoked, budget FROM clients WHERE id = ?")
        .bind(charge.client)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(client) = client else {
        return Ok(ChargeOutcome::Revoked);
    };
    if client.try_get::<i64, _>("revoked")? != 0 {
        return Ok(ChargeOutcome::Revoked);
    }
    let budget = from_sql(client.try_get("budget")?).min(charge.server_budget);
    let last =
        sqlx::query("SELECT last_seq, digest FROM sessions WHERE client_id = ? AND session = ?")
            .bind(charge.client)
            .bind(charge.session)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(last) = last {
        let last_seq = from_sql(last.try_get("last_seq")?);
        let digest: Vec<u8> = last.try_get("digest")?;
        if charge.seq == last_seq {
            return Ok(if digest == charge.digest[..] {
                ChargeOutcome::AlreadyCharged
            } else {
                ChargeOutcome::Conflict(format!(
                    "request {} of this session was sent before with other inputs",
                    charge.seq
                ))
            });
        }
        if charge.seq < last_seq {
            return Ok(ChargeOutcome::Conflict(format!(
                "request {} is older than this session's last ({last_seq})",
                charge.seq
            )));
        }
    }
    for (layer, module) in charge.projections {
        let used: Option<i64> = sqlx::query(
            "SELECT used FROM usage WHERE client_id = ? AND adapter = ? AND layer = ? AND module = ?",
        )
        .bind(charge.client)
        .bind(charge.adapter)
        .bind(*layer as i64)
        .bind(module)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get("used"))
        .transpose()?;
        let used = used.map(from_sql).unwrap_or(0);
        if used.saturating_add(charge.count) > budget {
            return Ok(ChargeOutcome::Exhausted {
                layer: *layer,
                module: module.clone(),
                budget,
            });
        }
    }
    for (layer, module) in charge.projections {
        sqlx::query(
            "INSERT INTO usage (client_id, adapter, layer, module, used) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (client_id, adapter, layer, module) DO UPDATE SET used = used + excluded.used",
        )
        .bind(charge.client)
        .bind(charge.adapter)
        .bind(*layer as i64)
        .bind(module)
        .bind(to_sql(charge.count))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO sessions (client_id, session, last_seq, digest, updated_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (client_id, session) DO UPDATE SET last_seq = excluded.last_seq, \
         digest = excluded.digest, updated_at = excluded.updated_at",
    )
    .bind(charge.client)
    .bind(charge.session)
    .bind(to_sql(charge.seq))
    .bind(&charge.digest[..])
    .bind(now())
    .execute(&mut *tx)
    .await?;
    Ok(ChargeOutcome::Charged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Every outcome of a charge, and that nothing is charged unless it says `Charged`.
    #[test]
    fn charges_are_atomic_idempotent_and_bounded() {
        let dir = std::env::temp_dir().join(format!("helora-state-{}", std::process::id()));
        let path = dir.join("state.sqlite");
        runtime().block_on(async {
            let store = SqliteStore::open(&path).await.unwrap();
            let secret = store.server_secret().await.unwrap();
            assert_eq!(store.server_secret().await.unwrap(), secret, "made once");
            let client = store.add_client("a", &[1; 32], 3, None).await.unwrap();
            assert!(
                store.add_client("a", &[2; 32], 3, None).await.is_err(),
                "names are unique"
            );
            let projections = vec![(0, "q_proj".to_string()), (0, "v_proj".to_string())];
            let charge = |seq: u64, count: u64, digest: [u8; 32]| {
                let projections = projections.clone();
                let store = &store;
                async move {
                    store
                        .charge(&Charge {
                            client: client.id,
                            adapter: "x",
                            projections: &projections,
                            count,
                            server_budget: 100,
                            session: &[7; 16],
                            seq,
                            digest: &digest,
                        })
                        .await
                        .unwrap()
                }
            };
            assert_eq!(charge(0, 2, [0; 32]).await, ChargeOutcome::Charged);
            assert_eq!(charge(0, 2, [0; 32]).await, ChargeOutcome::AlreadyCharged);
            assert!(matches!(
                charge(0, 2, [9; 32]).await,
                ChargeOutcome::Conflict(_)
            ));
            // Two more would make 4 > 3: refused whole, nothing charged.
            assert!(matches!(
                charge(1, 2, [1; 32]).await,
                ChargeOutcome::Exhausted { budget: 3, .. }
            ));
            assert_eq!(store.most_used(client.id, "x").await.unwrap(), 2);
            assert_eq!(charge(1, 1, [1; 32]).await, ChargeOutcome::Charged);
            assert!(
                matches!(charge(0, 1, [3; 32]).await, ChargeOutcome::Conflict(_)),
                "stale seq"
            );
            assert_eq!(store.most_used(client.id, "x").await.unwrap(), 3);
            assert!(store.revoke("a").await.unwrap());
            assert_eq!(charge(2, 1, [2; 32]).await, ChargeOutcome::Revoked);
            let usage = store.usage().await.unwrap();
            assert_eq!(usage.len(), 2);
            assert!(usage.iter().all(|u| u.4 == 3));
        });
        // The counts are on disk: a new store on the same file sees them.
        runtime().block_on(async {
            let store = SqliteStore::open(&path).await.unwrap();
            let clients = store.clients().await.unwrap();
            assert_eq!(store.most_used(clients[0].id, "x").await.unwrap(), 3);
            assert!(clients[0].revoked);
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
