"""viz.table.payload: the flexibility table as its component is sent it (no browser here; the
component itself: tests/test_table_browser.py)."""

import json
import math

from qfitlatent.viz import table
from qfitlatent.viz.table import Column


def rows_like_the_apps(n: int) -> tuple[list[dict], list[str]]:
    """n flexibility rows, most flexible first, every 7th without a χ1 spread (NaN)."""
    rows = [
        {"rank": k + 1, "n_chi": 1 + k % 4, "flexibility": 1.0 - k / n,
         "entropy_per_chi": (k % 13) / 5, "entropy": (k % 13) / 2.5, "n_modes": 1 + k % 3,
         "chi1_spread_deg": math.nan if k % 7 == 3 else float(k % 90), "n_obs": 1 + (k % 5 == 0),
         "n_conformers": 1 + (k % 4 == 0), "rejected_clash": k % 2}
        for k in range(n)
    ]  # fmt: skip
    labels = [f"{'ABCD'[k % 4]}{k + 1} LYS" for k in range(n)]
    return rows, labels


def test_rows_keep_their_order_and_columns_their_place_with_the_maps_after_flexibility():
    rows, labels = rows_like_the_apps(20)
    extra = ([{"call from": "map" if k % 2 else "model", "network p_flexible": 0.5}
              for k in range(20)],
             [Column("call from", "text"), Column("network p_flexible")])  # fmt: skip
    body = table.payload(rows, labels, extra)
    names = [c["name"] for c in body["columns"]]
    assert names[:6] == ["rank", "residue", "n_chi", "flexibility", "call from",
                         "network p_flexible"]  # fmt: skip
    assert names[6:] == [c.name for _, c in table.REST]
    assert [r[1] for r in body["rows"]] == labels  # a click's position names this row
    assert [r[4] for r in body["rows"][:3]] == ["model", "map", "model"]
    assert body["columns"][3]["kind"] == "bar" and body["columns"][1]["kind"] == "text"


def test_values_are_json_with_nan_as_null_and_floats_rounded():
    rows, labels = rows_like_the_apps(10)
    rows[3]["flexibility"] = 0.123456789
    body = table.payload(rows, labels)
    spread = [c["name"] for c in body["columns"]].index("χ1 spread")
    assert body["rows"][3][spread] is None and math.isnan(rows[3]["chi1_spread_deg"])
    assert body["rows"][3][3] == 0.1235
    json.dumps(body, allow_nan=False)  # strict JSON: a NaN would not parse in the browser


def test_the_hash_names_the_rows():
    rows, labels = rows_like_the_apps(10)
    a = table.payload(rows, labels)
    assert table.payload(rows, labels)["hash"] == a["hash"]
    rows[9]["rejected_clash"] += 1
    assert table.payload(rows, labels)["hash"] != a["hash"]
    assert table.payload(rows[:9], labels[:9])["hash"] != a["hash"]
