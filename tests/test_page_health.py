"""The Health page with ``AppTest``: what it says about index kinds this collection cannot use.

The notes come from the engine (``search_core.sweeps.ann_health``), never written down here.
"""

from __future__ import annotations

from pathlib import Path

from search_core.collection import open_collection
from search_core.sweeps import ann_health
from tests.test_app import frame, fresh_caches, plain, shop, shop_home, start, texts, visit

__all__ = ["fresh_caches", "shop", "shop_home"]  # fixtures, imported to be used here


def test_every_index_note_is_written_out_in_full(shop: Path) -> None:
    notes = {row["kind"]: row["note"] for row in ann_health(open_collection("shop")).memory}
    assert notes["ivfpq"], "the shop is too small for ivfpq: its note says why"
    at = visit(start(), "pages/health.py")
    shown = plain(texts(at))
    for note in filter(None, notes.values()):
        assert f"{note}." in shown  # as text, not in a table cell that cuts it off
    table = frame(at, "index kind")
    cells = table.astype(str).to_numpy().ravel().tolist()
    assert not any(note in cells for note in filter(None, notes.values()))
    buildable = dict(zip(table["index kind"], table["can be built"], strict=True))
    assert buildable == {kind: "no, see below" if note else "yes" for kind, note in notes.items()}
