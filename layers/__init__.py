"""riskmap.layers — what the data is: schemas, validation, readers, stores, rule tables, the demo."""
