-- The state as it was before migrations were versioned: IF NOT EXISTS, so that a state file
-- made by an earlier build takes this migration as already done.
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
