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


def queue_depths() -> list[tuple[str, str, str, str]]:
    """(name, waiting, in flight, error) per queue; a queue that cannot be read says why in `error`."""
    settings = get_settings()
    names = [settings.ingest_queue_name, f"{settings.ingest_queue_name}-dlq", settings.datastream_queue_name]
    rows = []
    for name in names:
        try:
            attrs = queue_attributes(name, "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
        except Exception as exc:  # noqa: BLE001 - one missing queue must not hide the others
            rows.append((name, "-", "-", type(exc).__name__))
            continue
        rows.append(
            (name, attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"], "")
        )
    return rows
