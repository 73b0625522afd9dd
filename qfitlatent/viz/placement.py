"""Text placement in pixels: figures whose labels must never collide have a fixed pixel size,
so a label's box is known (estimated from its length) and a greedy placer keeps every label
clear of the others and inside the figure."""

CHAR_W = 0.62  # average glyph width / font size for the sans-serif plotly uses (a safe upper side)


def text_box(x, y, text, size, xanchor="center", yanchor="middle") -> tuple:
    """(x0, y0, x1, y1) in pixels, y down, of one line of `text` anchored at (x, y)."""
    w, h = len(text) * CHAR_W * size + 4, size * 1.3 + 2
    x0 = x - w / 2 if xanchor == "center" else (x - w if xanchor == "right" else x)
    y0 = y - h / 2 if yanchor == "middle" else (y - h if yanchor == "bottom" else y)
    return (x0, y0, x0 + w, y0 + h)


def boxes_overlap(a, b, pad=1.0) -> bool:
    return a[0] < b[2] + pad and b[0] < a[2] + pad and a[1] < b[3] + pad and b[1] < a[3] + pad


def _inside(box, bounds) -> bool:
    x0, y0, x1, y1 = bounds
    return box[0] >= x0 and box[1] >= y0 and box[2] <= x1 and box[3] <= y1


def place_labels(items, taken, bounds) -> list:
    """Greedy placement: each item {"text", "size", "candidates": [(x, y, xanchor, yanchor)]}
    gets the first candidate whose box is inside `bounds` and clear of `taken` (which grows).
    Returns the chosen (x, y, xanchor, yanchor) per item, None where no candidate was free."""
    out = []
    for item in items:
        chosen = None
        for x, y, xa, ya in item["candidates"]:
            box = text_box(x, y, item["text"], item["size"], xa, ya)
            if _inside(box, bounds) and not any(boxes_overlap(box, t) for t in taken):
                chosen = (x, y, xa, ya)
                taken.append(box)
                break
        out.append(chosen)
    return out
