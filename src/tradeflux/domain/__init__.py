"""Pure trade logic: schemas, validation, calendars, positions, P&L. No I/O, no Kafka."""
