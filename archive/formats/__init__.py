"""Formats: the archive's file names, header text, FITS and JPEG layouts. Read by ingest and render
alike, so nothing here imports either."""
