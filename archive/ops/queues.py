"""The archive's queues as an operator looks at them: messages waiting and in flight.

The ingest queue, its dead-letter queue and the datastream queue, by name from settings, in that
order; read by `python -m archive status` and the local viewer's dev-tools panel.
"""

from __future__ import annotations

from archive.aws import client
from archive.settings import get_settings


def queue_attributes(name: str, *attributes: str) -> dict[str, str]:
    """Some attributes of the queue called `name` (botocore errors as raised)."""
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return dict(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(attributes))["Attributes"])


def queue_names() -> list[str]:
    """The ingest queue, its dead-letter queue and the datastream queue, in that order."""
    settings = get_settings()
    return [settings.ingest_queue_name, f"{settings.ingest_queue_name}-dlq", settings.datastream_queue_name]


def queue_depth(name: str) -> tuple[int | None, int | None, str]:
    """(waiting, in flight, error) of one queue; a queue that cannot be read says why in `error`."""
    try:
        attrs = queue_attributes(name, "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
    except Exception as exc:  # noqa: BLE001 - one missing queue must not hide the others
        return None, None, type(exc).__name__
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"]), ""


def queue_depths() -> list[tuple[str, str, str, str]]:
    """(name, waiting, in flight, error) per queue, as text for a table ("-" where it could not be read)."""
    rows = []
    for name in queue_names():
        waiting, in_flight, error = queue_depth(name)
        rows.append((name, "-" if waiting is None else str(waiting), "-" if in_flight is None else str(in_flight),
                     error))
    return rows
