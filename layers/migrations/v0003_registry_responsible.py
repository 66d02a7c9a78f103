"""Migration 3: the person responsible for a hazard's rectification (责任人).

Same column as the GeoPackage registry adds (``layers.registry``); editable like the
department, written by the registry web pages and read back from the Excel ledger.
"""

SQL = """
ALTER TABLE registry_hazards ADD COLUMN IF NOT EXISTS responsible text;
"""
