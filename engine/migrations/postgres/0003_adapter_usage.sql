-- Budgets global per adapter: queries answered to each projection over all identities
-- (a wall against pooled Sybil identities), and each projection's input width, so that
-- `helora clients usage` can say what fraction of d_in queries each identity has spent.
CREATE TABLE adapter_usage (
    adapter TEXT NOT NULL,
    layer BIGINT NOT NULL,
    module TEXT NOT NULL,
    used BIGINT NOT NULL CHECK (used >= 0),
    PRIMARY KEY (adapter, layer, module)
);
INSERT INTO adapter_usage (adapter, layer, module, used)
    SELECT adapter, layer, module, SUM(used) FROM usage GROUP BY adapter, layer, module;
CREATE TABLE projections (
    adapter TEXT NOT NULL,
    layer BIGINT NOT NULL,
    module TEXT NOT NULL,
    d_in BIGINT NOT NULL CHECK (d_in > 0),
    PRIMARY KEY (adapter, layer, module)
);
