"""Migration 1: the layer catalogue and the store's data version."""

SQL = """
-- Key/value facts about the store; 'data_version' is bumped by every write (cache key) and its
-- row lock serialises the swap phase of concurrent writers.
CREATE TABLE riskmap_meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO riskmap_meta (key, value) VALUES ('data_version', '0');

-- One row per stored layer. Each layer is a table of the same name in this schema with the
-- attribute columns listed in ``columns`` (JSON [[name, pg_type], ...] in order), an identity
-- ``riskmap_fid`` (insertion order) and ``geometry geometry(Geometry, 4490)`` with a GiST index.
CREATE TABLE riskmap_layers (
    ordinal bigint GENERATED ALWAYS AS IDENTITY,
    name text PRIMARY KEY,
    geometry_type text NOT NULL,
    feature_count bigint NOT NULL,
    minx double precision,
    miny double precision,
    maxx double precision,
    maxy double precision,
    columns jsonb NOT NULL,
    data_version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""
