"""batchstream: bounded, resumable, streaming batches against the Anthropic Messages API."""
