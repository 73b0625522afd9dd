"""Colours shared by the pictures: palettes, and the maps from a value (flexibility, occupancy)
to a colour, so the cartoon, the profile's bars and the legend always agree."""

import numpy as np

# fmt: off
# Mixture components in the χ plots: Tol's muted scheme, kept apart from the green occupancy
# scale of sampled conformers (OCC_STOPS) because a component and a conformer are different
# things.
COMPONENT_COLOURS = ("#332288", "#CC6677", "#117733", "#DDCC77", "#88CCEE", "#AA4499", "#44AA99",
                     "#999933", "#882255")
# fmt: on
OBSERVED_CARBON = "#3a3a3a"  # observed altlocs: element colours with dark carbons
ELEMENT_COLOURS = {
    "C": OBSERVED_CARBON,
    "N": "#3050F8",
    "O": "#FF0D0D",
    "S": "#C8A800",
    "SE": "#C8A800",
}
CARTOON_GREY = "#cfd4da"
# Rigid → flexible, for the cartoon: a sequential blue-to-red map, light in the middle.
FLEX_STOPS = ("#2c7bb6", "#abd9e9", "#ffffbf", "#fdae61", "#d7191c")
FLEX_LEGEND = ("rigid → flexible cartoon", f"linear-gradient(90deg,{','.join(FLEX_STOPS)})")
# Sampled conformers: a sequential green by occupancy (light = rare, dark = dominant), a hue
# the blue–red flexibility cartoon and the element-coloured altlocs do not use.
OCC_STOPS = ("#b8e3b1", "#74c476", "#2f9e55", "#006d2c", "#00391a")


def component_colour(k: int) -> str:
    return COMPONENT_COLOURS[k % len(COMPONENT_COLOURS)]


def _on_stops(stops: tuple[str, ...], value: float) -> str:
    """Hex colour of a value in [0, 1] on a scale of evenly spaced stops (linear in RGB)."""
    v = min(1.0, max(0.0, float(value))) * (len(stops) - 1)
    i = min(int(v), len(stops) - 2)
    a, b = (np.array([int(c[j : j + 2], 16) for j in (1, 3, 5)]) for c in stops[i : i + 2])
    r, g, bl = (a + (b - a) * (v - i)).round().astype(int)
    return f"#{r:02x}{g:02x}{bl:02x}"


def flexibility_colour(value: float) -> str:
    """Hex colour of a flexibility value in [0, 1] on FLEX_STOPS."""
    return _on_stops(FLEX_STOPS, value)


def occupancy_colour(occ: float) -> str:
    """Hex colour of an occupancy in [0, 1] on OCC_STOPS."""
    return _on_stops(OCC_STOPS, occ)
