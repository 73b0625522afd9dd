"""The selected residue's numbers and small tables as one piece of HTML (ui.residue_summary
shows it with st.html). Pure: no streamlit here; every value is escaped.

One element, not four st.metric and two st.dataframe grids, which were made anew on every
residue change: in Chrome traces of table clicks on the example (2 cores), Streamlit's React
work per change went from 175-222 ms to 125-141 ms and layerizing from 46-87 ms to 20-35 ms.
"""

import math
from html import escape

STYLE = """<style>
.qfl-metrics{display:flex;gap:12px;margin:0 0 10px 0}
.qfl-metric{flex:1;min-width:0}
.qfl-metric .l{font-size:.85rem;color:#555867;cursor:help;
  text-decoration:underline dotted #aaa;text-underline-offset:3px}
.qfl-metric .v{font-size:1.5rem;font-variant-numeric:tabular-nums;line-height:1.5}
.qfl-cap{font-size:.85rem;color:#808495;margin:6px 0 2px 0}
.qfl-table{border-collapse:collapse;width:100%;font-size:.85rem;
  font-variant-numeric:tabular-nums;margin-bottom:8px}
.qfl-table th{text-align:left;font-weight:600;color:#555867;background:#f8f9fb}
.qfl-table th,.qfl-table td{border:1px solid #e6e9ef;padding:2px 6px;white-space:nowrap}
</style>"""


def _text(v) -> str:
    """A cell: NaN and None as "–"."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return escape(str(v))


def metrics_html(items: list[tuple[str, str, str]]) -> str:
    """A row of big numbers: (label, value, help shown on hovering the label)."""
    cells = "".join(
        f'<div class="qfl-metric"><div class="l" title="{escape(hint)}">{escape(label)}</div>'
        f'<div class="v">{escape(value)}</div></div>'
        for label, value, hint in items
    )
    return f'<div class="qfl-metrics">{cells}</div>'


def table_html(rows: list[dict], caption: str = "") -> str:
    """A small table under a caption: the columns of every row, in the order they first appear;
    a row without a column has "–" there."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_text(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    cap = f'<div class="qfl-cap">{escape(caption)}</div>' if caption else ""
    return f'{cap}<table class="qfl-table"><tr>{head}</tr>{body}</table>'
