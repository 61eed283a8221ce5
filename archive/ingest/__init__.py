"""Ingest: every uploaded object becomes a row, a thumbnail, an upload-log entry, an info-image channel,
an expiry schedule and a datastream message. Run by the ingest and expire Lambdas."""
