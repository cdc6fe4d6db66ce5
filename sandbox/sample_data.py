"""Deterministic sample data for Losant data inputs that have no fixture file.

The same input configuration and Query Time always give the same bytes, so a run can be repeated
and a test can predict it. Time series span exactly the input's time window (first row at its
start, last row at its end). Time-series timestamps are milliseconds since the epoch, as in
Losant's data exports; record dates are ISO 8601 UTC strings, as in the Losant API.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sandbox import defaults

DEFAULT_ATTRIBUTES = ("temperature", "humidity", "battery")
SAMPLE_DEVICE_COUNT = 3
SAMPLE_TABLE_ROWS = 20
SAMPLE_EVENT_COUNT = 20
CONNECTION_CHANGES = 6  # connect/disconnect records per device
RECORD_SPAN = timedelta(
    days=7
)  # records without a time window date from this span before Query Time
LEVELS = ("info", "warning", "error", "critical")
EVENT_STATES = ("new", "acknowledged", "resolved")
TABLE_CATEGORIES = ("north", "south", "east", "west")


@dataclass(frozen=True)
class Device:
    id: str
    name: str
    tags: tuple[tuple[str, str], ...]


def rng_for(spec: dict[str, Any], relative_to: datetime) -> random.Random:
    """A random generator seeded by the input's configuration and the Query Time."""
    seed = json.dumps(spec, sort_keys=True) + relative_to.isoformat()
    return random.Random(hashlib.sha256(seed.encode()).digest())


def device_data(spec: dict[str, Any], start: datetime, end: datetime, rng: random.Random) -> bytes:
    """Columns `ID,Device Name,Timestamp,<attribute...>`: one row per device and sample time."""
    attributes = list(spec.get("attributes") or DEFAULT_ATTRIBUTES)
    devices = _devices(spec, rng)
    levels = {(d.id, a): rng.uniform(10, 90) for d in devices for a in attributes}
    rows = []
    for when in _sample_times(start, end):
        for device in devices:
            values = []
            for attribute in attributes:
                levels[device.id, attribute] += rng.uniform(-1.5, 1.5)
                values.append(f"{levels[device.id, attribute]:.2f}")
            rows.append([device.id, device.name, _ms(when), *values])
    return _csv(["ID", "Device Name", "Timestamp", *attributes], rows)


def connection_history(
    spec: dict[str, Any], start: datetime, end: datetime, rng: random.Random
) -> bytes:
    """Columns `ID,Device Name,Timestamp,Status`: alternating connected/disconnected records."""
    rows = []
    span_ms = _ms(end) - _ms(start)
    for device in _devices(spec, rng):
        offsets = sorted(rng.randint(0, span_ms) for _ in range(CONNECTION_CHANGES))
        offsets[0], offsets[-1] = 0, span_ms
        for index, offset in enumerate(offsets):
            status = "connected" if index % 2 == 0 else "disconnected"
            rows.append([device.id, device.name, _ms(start) + offset, status])
    rows.sort(key=lambda row: (row[2], row[0]))
    return _csv(["ID", "Device Name", "Timestamp", "Status"], rows)


def device_metadata(spec: dict[str, Any], relative_to: datetime, rng: random.Random) -> bytes:
    """One record per device; CSV columns `ID,Device Name,Description,Device Class,Tags,Creation
    Date,Last Updated` (tags as `key=value;...`), or a JSON array with `format: json`."""
    records: list[dict[str, Any]] = []
    for device in _devices(spec, rng):
        created = _record_date(relative_to, rng)
        records.append(
            {
                "id": device.id,
                "name": device.name,
                "description": f"Sample device {device.name}",
                "deviceClass": "standalone",
                "tags": [{"key": k, "value": v} for k, v in device.tags],
                "creationDate": _iso(created),
                "lastUpdated": _iso(created + (relative_to - created) / 2),
            }
        )
    if spec.get("format") == "json":
        return _json(records)
    header = [
        "ID",
        "Device Name",
        "Description",
        "Device Class",
        "Tags",
        "Creation Date",
        "Last Updated",
    ]
    rows = [
        [
            r["id"],
            r["name"],
            r["description"],
            r["deviceClass"],
            ";".join(f"{t['key']}={t['value']}" for t in r["tags"]),
            r["creationDate"],
            r["lastUpdated"],
        ]
        for r in records
    ]
    return _csv(header, rows)


def data_table(spec: dict[str, Any], relative_to: datetime, rng: random.Random) -> bytes:
    """Columns `id,createdAt,updatedAt,name,category,value`, as a Losant data table export."""
    rows = []
    for index in range(SAMPLE_TABLE_ROWS):
        created = _record_date(relative_to, rng)
        rows.append(
            [
                _object_id(rng),
                _iso(created),
                _iso(created + (relative_to - created) / 3),
                f"row-{index + 1}",
                rng.choice(TABLE_CATEGORIES),
                f"{rng.uniform(0, 100):.2f}",
            ]
        )
    rows.sort(key=lambda row: row[1])
    return _csv(["id", "createdAt", "updatedAt", "name", "category", "value"], rows)


def event_data(spec: dict[str, Any], relative_to: datetime, rng: random.Random) -> bytes:
    """Columns `id,subject,message,level,state,deviceId,creationDate,lastUpdated`, or a JSON array
    of event records with `format: json`."""
    devices = _devices(spec, rng)
    records = []
    for index in range(SAMPLE_EVENT_COUNT):
        created = _record_date(relative_to, rng)
        level = rng.choice(LEVELS)
        device = rng.choice(devices)
        records.append(
            {
                "id": _object_id(rng),
                "subject": f"Sample {level} event {index + 1}",
                "message": f"Reading out of range on {device.name}",
                "level": level,
                "state": rng.choice(EVENT_STATES),
                "deviceId": device.id,
                "creationDate": _iso(created),
                "lastUpdated": _iso(created + (relative_to - created) / 4),
            }
        )
    records.sort(key=lambda r: r["creationDate"])
    if spec.get("format") == "json":
        return _json(records)
    columns = list(records[0])
    return _csv(columns, [[r[c] for c in columns] for r in records])


def _devices(spec: dict[str, Any], rng: random.Random) -> list[Device]:
    tags = tuple((t["key"], t.get("value", "")) for t in spec.get("deviceTags") or ())
    ids = list(spec.get("deviceIds") or ()) or [_object_id(rng) for _ in range(SAMPLE_DEVICE_COUNT)]
    return [
        Device(id=device_id, name=f"Sample Device {index + 1}", tags=tags or (("site", "demo"),))
        for index, device_id in enumerate(ids)
    ]


def _sample_times(start: datetime, end: datetime) -> list[datetime]:
    if end <= start:
        return [start]
    points = defaults.SAMPLE_POINTS
    step = (end - start) / (points - 1)
    return [start + step * i for i in range(points - 1)] + [end]


def _record_date(relative_to: datetime, rng: random.Random) -> datetime:
    return relative_to - RECORD_SPAN * rng.random()


def _object_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(96):024x}"


def _ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _json(records: list[dict[str, Any]]) -> bytes:
    return json.dumps(records, indent=2).encode()
