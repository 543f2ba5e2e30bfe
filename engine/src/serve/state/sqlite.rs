//! The embedded store: one SQLite file in WAL mode, every commit synced (a charge that
//! returned survives a crash or a power cut). One connection per process: SQLite
//! serialises writers anyway. Write transactions begin IMMEDIATE: a deferred one that reads
//! first could not take the write lock after another process (`helora clients add`)
//! committed (SQLITE_BUSY_SNAPSHOT), where an immediate one waits its turn.

use super::{
    from_sql, now, replay_outcome, to_sql, Charge, ChargeOutcome, ClientRecord, KeySet, KeysAdded,
    Projection, Store, SESSION_RETENTION_SECS,
};
use anyhow::{Context, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::{Path, PathBuf};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
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
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("migrating the state database {}", path.display()))?;
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

    async fn rotate_token(&self, name: &str, token_hash: &[u8; 32]) -> Result<bool> {
        let done = sqlx::query("UPDATE clients SET token_hash = ? WHERE name = ?")
            .bind(&token_hash[..])
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
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

    async fn adapter_usage(&self) -> Result<Vec<(String, usize, String, u64)>> {
        sqlx::query("SELECT adapter, layer, module, used FROM adapter_usage")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("adapter")?,
                    from_sql(row.try_get("layer")?) as usize,
                    row.try_get("module")?,
                    from_sql(row.try_get("used")?),
                ))
            })
            .collect()
    }

    async fn record_projections(&self, adapter: &str, projections: &[Projection]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for p in projections {
            sqlx::query(
                "INSERT INTO projections (adapter, layer, module, d_in) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (adapter, layer, module) DO UPDATE SET d_in = excluded.d_in",
            )
            .bind(adapter)
            .bind(p.layer as i64)
            .bind(&p.module)
            .bind(p.d_in as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn projections(&self) -> Result<Vec<(String, Projection)>> {
        sqlx::query("SELECT adapter, layer, module, d_in FROM projections")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("adapter")?,
                    Projection {
                        layer: from_sql(row.try_get("layer")?) as usize,
                        module: row.try_get("module")?,
                        d_in: from_sql(row.try_get("d_in")?) as usize,
                    },
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
        if charge.seq <= last_seq {
            return Ok(replay_outcome(charge, last_seq, &digest));
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
        let used: Option<i64> = sqlx::query(
            "SELECT used FROM adapter_usage WHERE adapter = ? AND layer = ? AND module = ?",
        )
        .bind(charge.adapter)
        .bind(*layer as i64)
        .bind(module)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get("used"))
        .transpose()?;
        if used.map(from_sql).unwrap_or(0).saturating_add(charge.count) > charge.adapter_budget {
            return Ok(ChargeOutcome::AdapterExhausted {
                layer: *layer,
                module: module.clone(),
                budget: charge.adapter_budget,
            });
        }
    }
    for (layer, module) in charge.projections {
        sqlx::query(
            "INSERT INTO adapter_usage (adapter, layer, module, used) VALUES (?, ?, ?, ?) \
             ON CONFLICT (adapter, layer, module) DO UPDATE SET used = used + excluded.used",
        )
        .bind(charge.adapter)
        .bind(*layer as i64)
        .bind(module)
        .bind(to_sql(charge.count))
        .execute(&mut *tx)
        .await?;
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
