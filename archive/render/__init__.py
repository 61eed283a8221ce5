"""Render: any archived exposure as a picture of the size asked, from its JPG or FITS data, cached in S3.
Run by the image API's Lambda; never imports ingest."""
