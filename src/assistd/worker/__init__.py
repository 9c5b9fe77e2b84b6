"""The run worker: claims queued runs from Postgres and executes them."""
