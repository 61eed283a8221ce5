"""Photon Ranch data archive: the core of the ingest pipeline, free of AWS event shapes."""
