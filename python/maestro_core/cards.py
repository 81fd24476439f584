"""Decision Cards: every decision recorded with its reasons.

A card follows the versioned JSON Schema shipped in
``maestro_core/schemas/decision-card.v1.json``. Its id is content-addressed
(BLAKE3 of the canonical JSON without the id), it is stored in the SQLite
store and appended to the transparency log in the same transaction.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

from . import _native
from .errors import InputError
from .store import open_store

__all__ = ["DecisionCard", "SCHEMA_VERSION", "schema", "record", "get", "list_cards", "canonical_json"]

SCHEMA_VERSION = 1
Metric = float | int | str | bool | None


def canonical_json(obj: Any) -> bytes:
    """RFC 8785-style canonical JSON (sorted keys, no spaces, UTF-8)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", re.IGNORECASE)
_FORMATS = jsonschema.FormatChecker()


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """RFC 3339 date-time; jsonschema checks it only when rfc3339-validator is installed."""
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.fullmatch(value):
        return False
    _dt.datetime.fromisoformat(value[:19])  # month, day, hour ... in range
    return True


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The Decision Card JSON Schema (version 1)."""
    text = resources.files("maestro_core").joinpath("schemas/decision-card.v1.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


def digest_inputs(*parts: bytes) -> str:
    """``blake3:<hex>`` over length-prefixed parts (an inputs digest)."""
    buf = b"".join(len(p).to_bytes(8, "big") + p for p in parts)
    return "blake3:" + _native.hash_bytes(buf, "blake3").hex()


@dataclass(frozen=True)
class DecisionCard:
    kind: str
    subject: str
    decision: str
    reasons: Sequence[str]
    inputs_digest: str
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    evidence: str | None = None
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    schema_version: int = SCHEMA_VERSION
    id: str = ""
    log_index: int | None = field(default=None, compare=False)

    def body(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("log_index")
        d["reasons"] = list(self.reasons)
        d["metrics"] = dict(self.metrics)
        return d

    def with_id(self) -> DecisionCard:
        d = self.body()
        d.pop("id")
        try:
            canon = canonical_json(d)
        except ValueError as e:
            raise InputError(f"decision card: metrics must be finite JSON values ({e})") from None
        cid = "dc-" + _native.hash_bytes(canon, "blake3")[:16].hex()
        return DecisionCard(**{**d, "id": cid})

    def validate(self) -> None:
        """Raise :class:`InputError` naming the field when invalid."""
        try:
            jsonschema.validate(self.body(), schema(), format_checker=_FORMATS)
        except jsonschema.ValidationError as e:
            where = "/".join(str(p) for p in e.absolute_path) or "(card)"
            raise InputError(f"decision card field {where}: {e.message}") from None

    def to_json(self) -> str:
        d = self.body()
        d["log_index"] = self.log_index
        return json.dumps(d, indent=2, sort_keys=True)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DecisionCard:
        d = json.loads(row["body"])
        return cls(**d, log_index=row["log_index"])


def record(card: DecisionCard, home: Any = None, store: Any = None) -> DecisionCard:
    """Validate, store and log a card; returns it with its id and log index."""
    card = card.with_id()
    card.validate()
    st = store if store is not None else open_store(home)
    body = canonical_json(card.body())
    log_body = canonical_json(
        {"kind": "decision.card", "id": card.id, "digest": "sha256:" + _native.hash_bytes(body, "sha256").hex()}
    )
    idx = st.put_card(card.id, card.kind, card.subject, card.created, body.decode(), log_body)
    return DecisionCard(**{**card.body(), "log_index": idx})


def get(card_id: str, home: Any = None, store: Any = None) -> DecisionCard:
    """A card by id (or unique id prefix)."""
    st = store if store is not None else open_store(home)
    return DecisionCard.from_row(st.card(card_id))


def list_cards(kind: str | None = None, limit: int = 50, home: Any = None, store: Any = None) -> list[DecisionCard]:
    """Newest first."""
    st = store if store is not None else open_store(home)
    return [DecisionCard.from_row(r) for r in st.cards(kind, limit)]
