"""qfitlatent: which side chains move, and how? Structure in → flexibility, 3D rotamers, χ plots."""

import streamlit as st

from qfitlatent import display, ui, ui_map
from qfitlatent.ensemble.multiconf import DEFAULT_THRESHOLD, MAX_CONFORMERS
from qfitlatent.errors import CheckpointError, StructureError
from qfitlatent.viz import chi, colours, viewer

ui.page_setup("side-chain ensembles")
st.title("qfitlatent: which side chains move, and how?")
st.caption(
    "Predicted von Mises mixtures over χ1…χ4 for every residue, from an invariant-point-"
    "attention network trained on multiconformer crystal structures."
)

source = ui.structure_input()
map_source = ui_map.map_input()
options = ui.weights_options()
if not options:
    st.warning(
        f"No model weights found at `{ui.default_weights()}`. Fine-tune one on the "
        f"**Train** page, or point `{ui.WEIGHTS_ENV}` at a checkpoint."
    )
    st.stop()
# Settings that change the prediction sit in a form: none recomputes anything until "Apply",
# and the button says it recomputes. Display settings (below) apply at once and never do.
settings = st.sidebar.form("prediction_settings", border=False)
settings.subheader("Model")
weights_label = settings.selectbox("weights", list(options), key="weights")
settings.caption(f"Runs on **{ui.device_label(ui.device())}**")
settings.subheader("Sampling")
n_samples = settings.slider("samples S per residue", 1, 50, 10, key="samples")
temperature = settings.slider(
    "temperature",
    0.5,
    2.0,
    1.0,
    0.1,
    key="temperature",
    help=">1 flattens the mixture, <1 sharpens it",
)
seed = settings.number_input("seed", 0, 2**31 - 1, 0, key="seed")
settings.subheader("Multiconformer model")
threshold = settings.slider(
    "split residues with flexibility ≥",
    0.05,
    1.0,
    float(DEFAULT_THRESHOLD),
    0.05,
    key="threshold",
    help="a residue gets predicted alternatives only where its flexibility (p_flexible) is at "
    "least this; left at its start, with a map the map head's own threshold applies",
)
max_conformers = settings.slider(
    "max conformers per residue",
    2,
    4,
    MAX_CONFORMERS,
    key="max_conformers",
    help="the input's side chain included: 3 means at most 2 predicted alternatives",
)
input_altlocs = settings.radio(
    "where the input has altlocs",
    ["keep", "replace"],
    key="input_altlocs",
    horizontal=True,
    help="keep: written exactly as in the input, nothing added; replace: start from the "
    "primary conformer and add ours like anywhere else",
)
settings.form_submit_button(ui.APPLY, width="stretch")
settings.caption(ui.APPLY_NOTE)
st.sidebar.subheader("Display")
top_n = st.sidebar.slider("also show the N most flexible residues", 0, 10, 0, key="top_n")
flex_colour = st.sidebar.toggle("colour cartoon by predicted flexibility", True, key="flex_colour")
show_observed = st.sidebar.toggle("show the input's side chains (altlocs)", True, key="observed")
whole = st.sidebar.toggle(
    "whole structure (faded)",
    False,
    key="whole",
    help="Off: only the residue's ~14 Å neighbourhood is drawn, so other chains never hide it.",
)

# One slot for the start box, then the progress bar, then "Drawing the page" until the browser
# has drawn it (ui.finish): the box goes the moment work starts.
slot = st.empty()
if source is None:
    slot.info("Open a bundled example or upload a PDB/mmCIF file in the sidebar to start.")
    st.stop()
name, data = source
progress = ui.Progress(slot)
try:
    result, map_refused = ui_map.predict(
        data,
        name,
        options[weights_label],
        map_source,
        n_samples=n_samples,
        seed=seed,
        temperature=temperature,
        # The start value is off the slider's 0.05 grid, so it is there only untouched: then the
        # default for the score at hand (SplitOptions.resolved), a map head's own with a map.
        threshold=None if threshold == DEFAULT_THRESHOLD else threshold,
        max_conformers=max_conformers,
        input_altlocs=input_altlocs,
        progress=progress,
    )
except (StructureError, CheckpointError) as err:
    slot.empty()
    ui.error_box(err)
    st.stop()
except Exception as err:  # a file the reader lets through but featurizing chokes on: say so
    slot.empty()
    ui.error_box(err, log=True)
    st.stop()
pred = result.pred
rows = pred.table
if not rows:
    slot.empty()
    st.warning(f"{name}: no residue with side-chain torsions (χ) to predict.")
    st.stop()

# Widgets are keyed per (file, model), so a new upload never shows a stale residue label, while
# a change of sampling settings keeps the residue; figures are cached per settings too.
tag = ui.result_key(data, weights_label)
fig_key = ui.result_key(
    data, weights_label, n_samples=n_samples, seed=seed, temperature=temperature,
    threshold=threshold, max_conformers=max_conformers, input_altlocs=input_altlocs,
    map=ui_map.map_key(map_source, map_refused),
)  # fmt: skip
ui.drawing(progress, fig_key)  # the bar stays until the end of the script: the page is drawn
labels = [display.residue_label(pred, r["index"]) for r in rows]
label_of = {r["index"]: lab for r, lab in zip(rows, labels, strict=True)}
row_of = dict(zip(labels, rows, strict=True))

n_multi = sum(r["n_obs"] >= 2 for r in rows)
resolution = pred.parsed.resolution
st.markdown(
    f"**{pred.parsed.name}** · {pred.features.n_res:,} residues in "
    f"{len(set(pred.features.chain_id))} chain(s) · "
    f"{f'{resolution:.2f} Å' if resolution else 'no resolution in the header'} · "
    f"{n_multi} with side-chain altlocs in the input · model: {weights_label} · "
    f"{n_samples} samples"
)
st.markdown(ui.split_summary(pred))
ui_map.map_status(pred, map_source[0] if map_source else None, map_refused)
example = ui.example_for(name)
if example is not None:
    (st.warning if example.seen else st.success)(example.note, icon="ℹ️")
ui.warnings_box(pred.parsed.warnings)

show_map = ui_map.mesh_toggle(pred)  # a sidebar widget: never inside the fragment below


@st.fragment
def residue_panel() -> None:
    """The profile, the selected residue (box, numbers, viewer, legend, χ plots) and the table.
    A fragment: a residue chosen in any of them reruns only this, not the page above it."""
    # A click in the table or on the profile (both below) selects that residue in the box
    # (above): their selections are in session_state before this run reaches the box.
    picked = ui.table_pick(f"table:{tag}")
    if picked is not None and picked < len(labels):
        st.session_state[f"residue:{tag}"] = labels[picked]
    clicked = ui.profile_pick()
    if clicked in label_of:
        st.session_state[f"residue:{tag}"] = label_of[clicked]

    overview = st.container()  # the whole structure first, then the selected residue
    view_col, info_col = st.columns([3, 2], gap="medium")
    with info_col:
        label = st.selectbox(
            "Residue (most flexible first)",
            labels,
            key=f"residue:{tag}",
        )
        row = row_of[label]
        i = row["index"]
        ui.residue_summary(pred, row)
        ui_map.residue_map_line(pred, row)

    with overview:
        ui.profile_section(result, tag)

    top = [r["index"] for r in rows[:top_n]]
    view, legend = display.structure_view(
        pred,
        result.viewer_pdb,
        i,
        also=top,
        height=500,
        colour_by_flexibility=flex_colour,
        show_observed=show_observed,
        whole=whole,
    )
    if show_map:
        ui_map.add_meshes(view, legend, fig_key, i, pred)
    with view_col:
        ui.show_view(view, structure=tag, focus=display.residue_id(pred, i))
    with info_col:
        st.caption("In the viewer (sampled conformers: darker green = higher occupancy)")
        st.html(viewer.legend_html(legend + ([colours.FLEX_LEGEND] if flex_colour else [])))

    ui.show_figures(ui.residue_figures(fig_key, i, result), key="chi")
    st.caption(chi.COMPONENT_CAPTION)

    st.subheader("Flexibility table")
    st.caption("Click a row to show that residue above; click a column header to sort.")
    st.caption(ui_map.TWO_QUESTIONS)
    ui.flexibility_table(rows, labels, key=f"table:{tag}", shown=labels.index(label),
                         result_key=fig_key, extra=ui_map.table_columns)  # fmt: skip


residue_panel()

st.subheader("Downloads")
st.caption(
    "The same files `qfitlatent predict` writes: the multiconformer model for refinement, the "
    "sampled ensemble (one model per sample), the split report, the per-residue table, mixtures."
)
ui.downloads(result)
ui.finish(progress)  # everything is sent: the bar goes once the browser has drawn it
