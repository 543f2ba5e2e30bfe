-- helora's shared state (docs/deploy.md): what replicas must agree on, nothing else.
CREATE TABLE server (
    key TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
CREATE TABLE clients (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    -- SHA-256 of the API token; the token itself is never stored.
    token_hash BYTEA NOT NULL UNIQUE,
    budget BIGINT NOT NULL CHECK (budget >= 0),
    adapter TEXT,
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
CREATE TABLE key_sets (
    -- Also the PLL's client id on every replica.
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id BIGINT NOT NULL REFERENCES clients(id),
    fingerprint BYTEA NOT NULL,
    eval_keys BYTEA NOT NULL,
    public_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (client_id, fingerprint)
);
-- Keys are uniformly random bytes: compressing them only costs time.
ALTER TABLE key_sets ALTER COLUMN eval_keys SET STORAGE EXTERNAL;
ALTER TABLE key_sets ALTER COLUMN public_key SET STORAGE EXTERNAL;
CREATE TABLE usage (
    client_id BIGINT NOT NULL REFERENCES clients(id),
    adapter TEXT NOT NULL,
    layer BIGINT NOT NULL,
    module TEXT NOT NULL,
    used BIGINT NOT NULL CHECK (used >= 0),
    PRIMARY KEY (client_id, adapter, layer, module)
);
CREATE TABLE sessions (
    client_id BIGINT NOT NULL REFERENCES clients(id),
    session BYTEA NOT NULL,
    last_seq BIGINT NOT NULL,
    digest BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, session)
);
CREATE INDEX sessions_updated_at ON sessions (updated_at);
