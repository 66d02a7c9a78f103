"""Migration 2: the hazard registry (two lists) and its append-only audit log.

Same columns as the GeoPackage registry (``layers.registry``) plus ``version`` on hazards and
measures: every change bumps it, and an edit that names the version it started from fails with
a conflict when someone else changed the record in between (optimistic locking; no lost
update). Times are ISO 8601 text, as in the GeoPackage registry.
"""

SQL = """
CREATE TABLE registry_hazards (
    hazard_id text PRIMARY KEY,
    analysis text NOT NULL,
    kind text NOT NULL,
    severity text,
    layer text,
    feature_id text,
    other_layer text,
    other_id text,
    rule_id text,
    rule_source text,
    station text,
    message_zh text,
    message_en text,
    lon double precision,
    lat double precision,
    owner_role text NOT NULL,
    status text NOT NULL DEFAULT 'identified',
    detection text NOT NULL DEFAULT 'detected',
    department text,
    deadline text,
    measures text,
    notes text,
    attachments jsonb NOT NULL DEFAULT '[]',
    first_detected text,
    last_detected text,
    created_at text NOT NULL,
    updated_at text NOT NULL,
    rectified_at text,
    closed_at text,
    version integer NOT NULL DEFAULT 1
);
CREATE INDEX registry_hazards_analysis ON registry_hazards (analysis);

CREATE TABLE registry_measures (
    measure_id text PRIMARY KEY,
    title text NOT NULL,
    department text,
    kind text,
    status text NOT NULL DEFAULT 'planned',
    deadline text,
    description text,
    hazard_ids jsonb NOT NULL DEFAULT '[]',
    owner_role text NOT NULL,
    created_at text NOT NULL,
    updated_at text NOT NULL,
    version integer NOT NULL DEFAULT 1
);

CREATE TABLE registry_audit (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at text NOT NULL,
    who text NOT NULL,
    role text NOT NULL,
    action text NOT NULL,
    record_type text NOT NULL,
    record_id text NOT NULL,
    before jsonb,
    after jsonb
);
CREATE INDEX registry_audit_record ON registry_audit (record_id);

CREATE FUNCTION riskmap_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'registry_audit is append-only';
END $$;
CREATE TRIGGER registry_audit_no_update BEFORE UPDATE OR DELETE ON registry_audit
    FOR EACH ROW EXECUTE FUNCTION riskmap_audit_append_only();
CREATE TRIGGER registry_audit_no_truncate BEFORE TRUNCATE ON registry_audit
    FOR EACH STATEMENT EXECUTE FUNCTION riskmap_audit_append_only();
"""
