"""The flexibility table as the table component (viz/table_component) draws it: its columns
and one array of values per residue. Pure: no Streamlit here (ui.flexibility_table sends it).

The component, not st.dataframe: a click on a grid row waited ~150 ms in the grid before it
reached the server, and every rerun re-parsed and re-drew the whole grid; the component sends a
click at once, holds its rows across reruns (they are sent again only when they change) and
highlights the residue shown, however it was chosen.
"""

import hashlib
import json
import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Column:
    """One column: `kind` says how the component writes its values: "text", "int", "num"
    (`digits` decimals, then `suffix`) or "bar" (a 0-1 value as a bar and its number)."""

    name: str
    kind: str = "num"
    digits: int = 2
    suffix: str = ""
    help: str = ""


FLEXIBILITY_HELP = (
    "Does the crystal show a second conformer? The probability that the side chain has ≥ 2 "
    "conformers (p_flexible; with a map, the posterior given the map's evidence; for weights "
    "without a flexibility head, the mixture weight off the dominant rotamer). The table is "
    "ranked by it."
)

# (row key, column) in table order; the map's columns (ui_map.table_columns) follow flexibility.
FIRST = [
    ("rank", Column("rank", "int")),
    ("label", Column("residue", "text")),
    ("n_chi", Column("n_chi", "int", help="side-chain torsions (χ) of the residue")),
    ("flexibility", Column("flexibility", "bar", help=FLEXIBILITY_HELP)),
]
REST = [
    ("entropy_per_chi", Column("entropy / χ", help="How much does this side chain move? "
                               "Entropy divided by the number of χ: comparable across residue "
                               "types")),
    ("entropy", Column("entropy", help="How much does this side chain move? Differential "
                       "entropy over the residue's χ (nats); it sums over χ, so 4-χ residues "
                       "score higher whether or not they move")),
    ("n_modes", Column("modes", "int", help="mixture components with weight ≥ 10%")),
    ("chi1_spread_deg", Column("χ1 spread", digits=0, suffix="°",
                               help="How much does this side chain move? Circular SD of the χ1 "
                               "marginal")),
    ("n_obs", Column("input altlocs", "int",
                     help="distinct side-chain conformers modelled in the file")),
    ("n_conformers", Column("written conformers", "int",
                            help="side-chain conformers in multiconformer.pdb (1: not split)")),
    ("rejected_clash", Column("rejected (clash)", "int",
                              help="predicted alternatives not written: heavy-atom overlap "
                              "≥ 0.4 Å")),
]  # fmt: skip


def _value(v):
    """A cell as JSON: floats to 4 decimals (the table shows at most 2; fewer bytes to send),
    NaN as null (written "–" and sorted last)."""
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 4)
    return v


def payload(
    rows: list[dict], labels: list[str], extra: tuple[list[dict], list[Column]] | None = None
) -> dict:
    """{"columns": [column as a dict], "rows": [[value per column] per residue]} in the order
    of `rows` (a click names a row by its position here), and "hash": of the two, so the
    component is sent them only when it does not hold them. `extra`: ([per row {column name:
    value}], [its columns]) put after flexibility (the map's, ui_map.table_columns)."""
    more, more_columns = extra or ([{} for _ in rows], [])
    columns = [c for _, c in FIRST] + list(more_columns) + [c for _, c in REST]
    values = [
        [_value(lab if key == "label" else r[key]) for key, _ in FIRST]
        + [_value(m[c.name]) for c in more_columns]
        + [_value(r[key]) for key, _ in REST]
        for r, lab, m in zip(rows, labels, more, strict=True)
    ]
    body = {"columns": [asdict(c) for c in columns], "rows": values}
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return {**body, "hash": hashlib.sha1(text.encode()).hexdigest()}
