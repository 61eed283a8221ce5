"""The upload log's status words: what became of one attempt at an upload.

Written to `recent-uploads-log` (`status`), shown by photonranch-api's dev-tools tab and the viewer,
and carried by every archive error as the status it stands for. A module of its own, with nothing
imported, so the errors, the ingest steps and the viewer share one spelling without loading boto3.

- `ingested`: the file did what its role says (row updated, thumbnail written, channel stored).
- `ignored`: a file the archive keeps but does nothing with (an unknown reduction or extension).
- `rejected`: not something the archive takes (bad name, not an image, no channel).
- `failed`: something that should have worked did not (corrupt data, an outage; see `reason`).
"""

from __future__ import annotations

INGESTED, IGNORED, REJECTED, FAILED = "ingested", "ignored", "rejected", "failed"
STATUSES = (INGESTED, IGNORED, REJECTED, FAILED)
PROBLEMS = (REJECTED, FAILED)  # what the dev-tools table flags for a person to look at
