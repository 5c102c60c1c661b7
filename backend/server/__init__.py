"""The backend service: an HTTP API over a queue of reconstruction jobs, each run in its own worker process."""
