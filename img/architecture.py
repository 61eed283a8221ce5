"""Draws img/architecture.png, the README's architecture picture: `python img/architecture.py`.

Kept as code (Pillow only, no Graphviz) so the picture changes in review with the pipeline it shows.
Coordinates are in a 1400×860 canvas; each box is (left, top, width, height).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1400, 860
BACKGROUND = (250, 250, 247)
INK = (40, 44, 52)
MUTED = (110, 116, 128)
AWS = (255, 244, 229)  # managed services
CODE = (228, 240, 255)  # our code
STORE = (232, 246, 236)  # state read by other systems
LOCAL = (243, 236, 252)  # local stack stand-ins
RED = (176, 60, 60)

TITLE = ImageFont.load_default(size=17)
TEXT = ImageFont.load_default(size=14)
SMALL = ImageFont.load_default(size=12)

Box = tuple[int, int, int, int]


def box(draw: ImageDraw.ImageDraw, rect: Box, title: str, lines: tuple[str, ...] = (), fill: tuple = CODE) -> Box:
    x, y, w, h = rect
    draw.rounded_rectangle((x, y, x + w, y + h), radius=10, fill=fill, outline=INK, width=2)
    draw.text((x + 12, y + 9), title, font=TITLE, fill=INK)
    for i, line in enumerate(lines):
        draw.text((x + 12, y + 34 + 19 * i), line, font=TEXT, fill=MUTED)
    return rect


def mid(rect: Box, side: str) -> tuple[int, int]:
    x, y, w, h = rect
    return {"l": (x, y + h // 2), "r": (x + w, y + h // 2), "t": (x + w // 2, y), "b": (x + w // 2, y + h)}[side]


def arrow(
    draw: ImageDraw.ImageDraw,
    points: list[tuple[int, int]],
    label: str = "",
    at: int = 0,
    color: tuple = INK,
    offset: tuple[int, int] = (6, -20),
) -> None:
    """A polyline with an arrowhead at its end; `label` is written beside segment `at`."""
    draw.line(points, fill=color, width=2, joint="curve")
    (x0, y0), (x1, y1) = points[-2], points[-1]
    if x0 == x1:
        d = 1 if y1 > y0 else -1
        head = [(x1, y1), (x1 - 6, y1 - 12 * d), (x1 + 6, y1 - 12 * d)]
    else:
        d = 1 if x1 > x0 else -1
        head = [(x1, y1), (x1 - 12 * d, y1 - 6), (x1 - 12 * d, y1 + 6)]
    draw.polygon(head, fill=color)
    if label:
        (ax, ay), (bx, by) = points[at], points[at + 1]
        draw.text((min(ax, bx) + offset[0], min(ay, by) + offset[1]), label, font=SMALL, fill=color)


def render() -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((30, 20), "Photon Ranch data archive", font=ImageFont.load_default(size=24), fill=INK)
    draw.text(
        (30, 52),
        "one exposure = several files sharing a base filename; every object-created event runs the same code",
        font=TEXT,
        fill=MUTED,
    )

    sites = box(
        draw, (30, 110, 220, 96), "Observatory sites", ("header .txt, JPGs, FITS", "presigned POST per file"), AWS
    )
    api = box(
        draw,
        (30, 560, 220, 120),
        "photonranch-api",
        ("hands out presigned POSTs", "writes {site}#metadata", "reads images + tables"),
        AWS,
    )
    bucket = box(
        draw, (320, 110, 230, 116), "S3 bucket", ("data/  info-images/", "allsky/", "+ thumbnails …11.jpg"), AWS
    )
    queue = box(draw, (320, 300, 230, 86), "SQS ingest queue", ("batches of up to 10",), AWS)
    dlq = box(draw, (320, 430, 230, 70), "dead-letter queue", ("after 5 receives",), AWS)
    ingest = box(
        draw,
        (630, 250, 260, 190),
        "handlers/ingest.py",
        (
            "parse filename",
            "header -> row, file flags",
            "thumbnail from medium JPG",
            "upload log, info channel",
            "schedule expiry",
            "partial batch failures",
        ),
        CODE,
    )
    images = box(draw, (980, 100, 380, 76), "PostgreSQL  images", ("one row per exposure, upserts",), STORE)
    uploads = box(draw, (980, 196, 380, 62), "DynamoDB  recent-uploads-log", (), STORE)
    info = box(draw, (980, 278, 380, 62), "DynamoDB  info-images", (), STORE)
    tracker = box(
        draw, (980, 360, 380, 80), "DynamoDB  data-expiration-tracker", ("TTL; stream NEW_AND_OLD_IMAGES",), STORE
    )
    stream = box(draw, (980, 470, 380, 70), "SQS datastreamIncomingQueue", ("-> datastreamer -> websockets",), AWS)
    expire = box(
        draw,
        (630, 540, 260, 110),
        "handlers/expire.py",
        ("only TTL REMOVEs:", "delete {dir}/{base}-* objects", "and the exposure's row"),
        CODE,
    )

    arrow(draw, [mid(sites, "r"), (bucket[0], mid(sites, "r")[1])], "POST", offset=(14, -20))
    arrow(draw, [mid(bucket, "b"), mid(queue, "t")], "s3:ObjectCreated:*", offset=(10, 4))
    arrow(draw, [mid(queue, "r"), (ingest[0], mid(queue, "r")[1])], "SQS event", offset=(8, -20))
    arrow(draw, [mid(queue, "b"), mid(dlq, "t")], "failed 5 times", offset=(10, 2), color=RED)
    ix = ingest[0] + ingest[2]
    for target, y in ((images, 138), (uploads, 227), (info, 309), (tracker, 400), (stream, 505)):
        arrow(
            draw,
            [
                (ix, min(max(y, ingest[1] + 14), ingest[1] + ingest[3] - 14)),
                (940, min(max(y, ingest[1] + 14), ingest[1] + ingest[3] - 14)),
                (940, y),
                (target[0], y),
            ],
        )
    arrow(
        draw,
        [(ingest[0] + 60, ingest[1]), (ingest[0] + 60, 168), (bucket[0] + bucket[2], 168)],
        "get / put thumbnail",
        at=1,
        offset=(10, -20),
    )
    tx = tracker[0] + tracker[2] - 40
    arrow(
        draw,
        [(tx, tracker[1] + tracker[3]), (tx, 600), (expire[0] + expire[2], 600)],
        "TTL REMOVE (stream)",
        at=1,
        offset=(90, 4),
        color=RED,
    )
    arrow(
        draw,
        [(expire[0], 620), (580, 620), (580, 190), (bucket[0] + bucket[2], 190)],
        "delete",
        at=1,
        offset=(8, 330),
        color=RED,
    )
    arrow(draw, [mid(api, "t"), (mid(api, "t")[0], sites[1] + sites[3])], "presigned POST", offset=(8, 150))
    bus = 1380
    draw.line([mid(api, "r"), (280, 700), (bus, 700), (bus, 138)], fill=MUTED, width=2)
    draw.text((560, 704), "reads rows and tables", font=SMALL, fill=MUTED)
    for target in (images, uploads, info):
        y = target[1] + target[3] // 2
        arrow(draw, [(bus, y), (target[0] + target[2], y)], color=MUTED)

    legend = (30, 730, 1330, 110)
    draw.rounded_rectangle(
        (legend[0], legend[1], legend[0] + legend[2], legend[1] + legend[3]), radius=10, fill=LOCAL, outline=INK
    )
    draw.text((46, 742), "Without AWS: python -m archive serve / demo  (archive/local/)", font=TITLE, fill=INK)
    notes = (
        "moto's server on 127.0.0.1 stands in for S3, SQS and DynamoDB, and delivers the bucket notification "
        "to the ingest queue;",
        "a worker thread long-polls the queue and calls handlers/ingest.py with real SQS events (deletes only what "
        "succeeded; moto moves",
        "a message to the DLQ after its receive count); a sweeper deletes expired TTL items and feeds "
        "handlers/expire.py the REMOVE records",
        "AWS sends. Database: DATABASE_URL, else an embedded PostgreSQL cluster under .archive/pg, else SQLite.",
    )
    for i, line in enumerate(notes):
        draw.text((46, 768 + 17 * i), line, font=TEXT, fill=INK)
    for i, (fill, name) in enumerate(((AWS, "AWS / external"), (CODE, "our Lambdas"), (STORE, "state others read"))):
        x = 1000 + 125 * i
        draw.rectangle((x, 24, x + 14, 38), fill=fill, outline=INK)
        draw.text((x + 20, 23), name, font=SMALL, fill=INK)
    return image


if __name__ == "__main__":
    out = Path(__file__).with_name("architecture.png")
    render().save(out, optimize=True)
    print(f"wrote {out}")
