"""Draws img/modules.png, the README's picture of the modules by room: `python img/modules.py`.

The rooms are who runs the code and, inside the core, the feature: the Lambda faces (`handlers/`); the
core they ship, by feature (`archive/ingest/`, `archive/render/`, `archive/ops/`), over the file formats
both features read (`archive/formats/`) and the platform (`archive/`: settings, AWS clients, database,
errors); the table (`db.py`); the operator commands (`archive/cli/`), the local stack (`archive/local/`)
and the migrations. Ingest and render never import each other. Arrows are the imports between rooms,
read from the code itself (`ast`), so the picture is regenerated, never drawn by hand; `ALLOWED` is the
rule the picture shows, and tests/unit/test_layout.py holds the tree to it.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("handlers", "archive", "db.py", "migrations")

# Room -> the rooms it may import. Everything points down, towards the core and the table.
FEATURES = ("archive/ingest", "archive/render", "archive/ops")
CORE = {*FEATURES, "archive/formats", "archive", "db.py"}
ALLOWED = {
    "archive/cli": {"archive/local", "handlers", *CORE, "migrations"},
    "archive/local": {"handlers", *CORE, "migrations"},
    "handlers": CORE,
    "archive/ingest": {"archive/formats", "archive", "db.py"},
    "archive/render": {"archive/formats", "archive", "db.py"},
    "archive/ops": {"archive", "db.py"},
    "archive/formats": {"archive"},
    "archive": {"db.py"},
    "migrations": {"db.py"},  # engines are made by db.py, which maps the plain postgresql:// URL
    "db.py": set(),
}


def room_of(module: str) -> str | None:
    """The room of a dotted module name of ours, or None for a library."""
    parts = module.split(".")
    if module == "archive.__main__":  # `python -m archive`: the command line's entry
        return "archive/cli"
    if parts[0] == "archive" and len(parts) > 1 and parts[1] in ("cli", "local", "ingest", "render", "ops", "formats"):
        return f"archive/{parts[1]}"
    if parts[0] in ("archive", "handlers", "migrations"):
        return parts[0]
    if parts[0] == "db":
        return "db.py"
    return None


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def python_files() -> list[Path]:
    files: list[Path] = []
    for source in SOURCES:
        path = ROOT / source
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


def imports_of(path: Path) -> set[str]:
    """Modules of ours that `path` imports (`from archive import x` counts as `archive.x`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
            found.add(node.module)
    return {name for name in found if room_of(name) is not None}


def room_edges() -> Counter[tuple[str, str]]:
    """(from room, to room) -> how many module-to-module imports cross between them."""
    edges: Counter[tuple[str, str]] = Counter()
    for path in python_files():
        source = room_of(module_name(path))
        targets = {room_of(name) for name in imports_of(path)}
        for target in targets:
            if source and target and target != source:
                edges[(source, target)] += 1
    return edges


def violations() -> list[str]:
    """Imports that run against ALLOWED, as `file -> module` lines."""
    problems = []
    for path in python_files():
        source = room_of(module_name(path))
        for name in sorted(imports_of(path)):
            target = room_of(name)
            if source and target and target != source and target not in ALLOWED[source]:
                problems.append(f"{path.relative_to(ROOT)} imports {name} ({source} -> {target})")
    return problems


# --- drawing -------------------------------------------------------------------------------------------

WIDTH, HEIGHT = 1400, 900
INK, MUTED, BACKGROUND = (40, 44, 52), (110, 116, 128), (250, 250, 247)
FILL = {
    "archive/cli": (255, 244, 229),
    "archive/local": (243, 236, 252),
    "handlers": (228, 240, 255),
    "archive/ingest": (232, 246, 236),
    "archive/render": (232, 246, 236),
    "archive/ops": (232, 246, 236),
    "archive/formats": (222, 240, 230),
    "archive": (214, 236, 224),
    "db.py": (255, 236, 236),
    "migrations": (238, 238, 238),
}
# (left, top, width, height) on the canvas.
PLACES = {
    "archive/cli": (60, 30, 1280, 80),
    "archive/local": (60, 180, 620, 100),
    "handlers": (720, 180, 620, 100),
    "archive/ingest": (60, 340, 500, 110),
    "archive/render": (600, 340, 440, 110),
    "archive/ops": (1080, 340, 260, 110),
    "archive/formats": (60, 520, 1280, 80),
    "archive": (60, 650, 1280, 80),
    "db.py": (360, 790, 320, 70),
    "migrations": (720, 790, 320, 70),
}
SHIPPED = {"handlers", *CORE}


def _modules_by_room() -> dict[str, list[str]]:
    rooms: dict[str, list[str]] = {room: [] for room in PLACES}
    for path in python_files():
        name = module_name(path)
        room = room_of(name)
        if room and not name.startswith("migrations.versions") and path.name != "__init__.py":
            rooms[room].append(name.rsplit(".", 1)[-1] if "." in name else name)
    return rooms


def _anchor(rect: tuple[int, int, int, int], other: tuple[int, int, int, int]) -> tuple[int, int]:
    left, top, width, height = rect
    cx = left + width // 2
    other_cy = other[1] + other[3] // 2
    return (cx, top + height) if other_cy > top + height else (cx, top)


def draw(path: Path) -> None:
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    pen = ImageDraw.Draw(image)
    title, text, small = (ImageFont.load_default(size=s) for s in (18, 14, 12))
    for room, names in _modules_by_room().items():
        left, top, width, height = PLACES[room]
        pen.rounded_rectangle((left, top, left + width, top + height), 12, fill=FILL[room], outline=INK, width=2)
        label = room + ("  (shipped to Lambda)" if room in SHIPPED else "  (not shipped)")
        pen.text((left + 14, top + 10), label, font=title, fill=INK)
        x, y = left + 14, top + 40
        for name in sorted(set(names)):
            width_of = pen.textlength(name, font=text) + 18
            if x + width_of > left + width - 10:
                x, y = left + 14, y + 22
            pen.text((x, y), name, font=text, fill=INK)
            x += int(width_of)
    for (source, target), count in sorted(room_edges().items()):
        start = _anchor(PLACES[source], PLACES[target])
        end = _anchor(PLACES[target], PLACES[source])
        offset = (sum(map(ord, source + target)) % 5 - 2) * 40  # spread arrows that share a box
        start, end = (start[0] + offset, start[1]), (end[0] + offset, end[1])
        colour = INK if target in ALLOWED[source] else (176, 60, 60)
        pen.line((start, end), fill=colour, width=2)
        pen.polygon([(end[0], end[1]), (end[0] - 6, end[1] - 12 if end[1] > start[1] else end[1] + 12),
                     (end[0] + 6, end[1] - 12 if end[1] > start[1] else end[1] + 12)], fill=colour)
        middle = ((start[0] + end[0]) // 2 + 6, (start[1] + end[1]) // 2 - 6)
        pen.text(middle, str(count), font=small, fill=MUTED)
    legend = "arrows: imports between rooms (how many modules import across); none runs from a room to one above it"
    pen.text((60, HEIGHT - 30), legend, font=small, fill=MUTED)
    image.save(path, optimize=True)


if __name__ == "__main__":
    problems = violations()
    for line in problems:
        print("layout:", line)
    draw(Path(__file__).with_name("modules.png"))
    print(f"wrote img/modules.png ({len(problems)} layout problems)")
