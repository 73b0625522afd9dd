"""qfitlatent: which side chains move, and how. Structure in → flexibility, rotamers in 3D, χ plots."""

import pandas as pd
import streamlit as st

from qfitlatent import ui, viz
from qfitlatent.errors import CheckpointError, StructureError

ui.page_setup("side-chain ensembles")
st.title("qfitlatent: which side chains move, and how?")
st.caption("Predicted von Mises mixtures over χ1…χ4 for every residue, from an invariant-point-"
           "attention network trained on multiconformer crystal structures.")  # fmt: skip

source = ui.structure_input()
st.sidebar.subheader("Model")
options = ui.weights_options()
if not options:
    st.warning(f"No model weights found at `{ui.default_weights()}`. Fine-tune one on the "
               f"**Train** page, or point `{ui.WEIGHTS_ENV}` at a checkpoint.")  # fmt: skip
    st.stop()
weights_label = st.sidebar.selectbox("weights", list(options), key="weights")
st.sidebar.caption(f"Runs on **{ui.device_label(ui.device())}**")
st.sidebar.subheader("Sampling")
n_samples = st.sidebar.slider("samples S per residue", 1, 50, 10, key="samples")
temperature = st.sidebar.slider("temperature", 0.5, 2.0, 1.0, 0.1, key="temperature",
                                help=">1 flattens the mixture, <1 sharpens it")  # fmt: skip
seed = st.sidebar.number_input("seed", 0, 2**31 - 1, 0, key="seed")
st.sidebar.subheader("Display")
top_n = st.sidebar.slider("also show the N most flexible residues", 0, 10, 0, key="top_n")
flex_colour = st.sidebar.toggle("colour cartoon by predicted flexibility", True, key="flex_colour")
show_observed = st.sidebar.toggle("show the input's side chains (altlocs)", True, key="observed")

if source is None:
    st.info("Open the bundled example or upload a PDB/mmCIF file in the sidebar to start.")
    st.stop()
name, data = source
try:
    with st.spinner(f"Predicting {name} on {ui.device_label(ui.device())}…"):
        result = ui.predict_cached(data, name, options[weights_label], weights_label,
                                   n_samples=n_samples, seed=seed, temperature=temperature)  # fmt: skip
except (StructureError, CheckpointError) as err:
    ui.error_box(err)
    st.stop()
pred = result.pred
rows = pred.table
if not rows:
    st.warning(f"{name}: no residue with side-chain torsions (χ) to predict.")
    st.stop()
for warning in pred.parsed.warnings:
    st.caption(f"⚠️ {warning}")

# Widgets are keyed per (file, model), so a new upload never shows a stale residue label, while
# a change of sampling settings keeps the residue; figures are cached per settings too.
tag = ui.result_key(data, weights_label)
fig_key = ui.result_key(data, weights_label, n_samples=n_samples, seed=seed, temperature=temperature)
labels = [viz.residue_label(pred, r["index"]) for r in rows]
# A click in the table (below) selects that residue in the box (above): the table's selection
# is in session_state before this run reaches the box. Only a new click moves the box.
picked = (st.session_state.get(f"table:{tag}") or {}).get("selection", {}).get("rows", [])
if picked and picked[0] != st.session_state.get(f"picked:{tag}"):
    st.session_state[f"picked:{tag}"] = picked[0]
    st.session_state[f"residue:{tag}"] = labels[picked[0]]

n_multi = sum(r["n_obs"] >= 2 for r in rows)
st.markdown(f"**{pred.parsed.name}** · {pred.features.n_res} residues in "
            f"{len(set(pred.features.chain_id))} chain(s) · {n_multi} with side-chain altlocs in the "
            f"input · model: {weights_label} · {n_samples} samples")  # fmt: skip
view_col, info_col = st.columns([3, 2], gap="medium")
with info_col:
    label = st.selectbox("Residue (most flexible first)", labels, key=f"residue:{tag}")
    row = rows[labels.index(label)]
    i = row["index"]
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("entropy", f"{row['entropy']:.2f}", help="nats over the residue's χ; higher = broader")
    m2.metric("modes", row["n_modes"], help="mixture components with weight ≥ 10%")
    m3.metric("χ1 spread", f"{row['chi1_spread_deg']:.0f}°", help="circular SD of χ1")
    m4.metric("input altlocs", row["n_obs"])
    conformers = [{"conformer": c["altloc"] or "–", "occupancy": c["occ"],
                   **{f"χ{d + 1}": round(float(viz._deg(c["chi"][d])), 1)
                      for d in range(row["n_chi"]) if c["mask"][d]}}
                  for c in viz.observed_altlocs(pred, i)]  # fmt: skip
    st.caption("Input side-chain conformers")
    st.dataframe(pd.DataFrame(conformers), hide_index=True, width="stretch")
top = [r["index"] for r in rows[:top_n]]
view, legend = viz.structure_view(pred, result.viewer_pdb, i, also=top, height=500,
                                  colour_by_flexibility=flex_colour, show_observed=show_observed)  # fmt: skip
with view_col:
    ui.show_view(view, 500)
with info_col:
    st.caption("In the viewer")
    st.html(viz.legend_html(legend + ([("rigid → flexible cartoon", "linear-gradient(90deg,"
            + ",".join(viz.FLEX_STOPS) + ")")] if flex_colour else [])))  # fmt: skip

circle, torus = ui.residue_figures(fig_key, i, result)
st.plotly_chart(circle, key="circle")
torus_col, profile_col = st.columns(2) if torus is not None else (None, st.container())
if torus is not None:
    torus_col.plotly_chart(torus, key="torus")
with profile_col:
    st.markdown("**Predicted flexibility along the chain**")
    order = sorted(range(len(rows)), key=lambda k: rows[k]["index"])
    st.plotly_chart(viz.flexibility_profile([labels[k] for k in order],
                    pred.entropy[[rows[k]["index"] for k in order]].numpy(),
                    pred.features.n_obs[[rows[k]["index"] for k in order]].numpy(),
                    selected=order.index(labels.index(label))), key="profile")  # fmt: skip

st.subheader("Flexibility table")
st.caption("Click a row to show that residue above; click a column header to sort.")
table = pd.DataFrame([{"rank": r["rank"], "residue": lab, "n_chi": r["n_chi"], "entropy": r["entropy"],
                       "modes": r["n_modes"], "χ1 spread (°)": r["chi1_spread_deg"],
                       "input altlocs": r["n_obs"], "sampled conformers": r["n_conformers"],
                       "clashing": r["clashing_conformers"]} for r, lab in zip(rows, labels)])  # fmt: skip
st.dataframe(table, key=f"table:{tag}", on_select="rerun", selection_mode="single-row", height=320,
             hide_index=True, width="stretch",
             column_config={"entropy": st.column_config.ProgressColumn(
                 "entropy", format="%.2f", min_value=float(table.entropy.min()),
                 max_value=float(table.entropy.max()))})  # fmt: skip

st.subheader("Downloads")
st.caption("The same files `qfitlatent predict` writes: sampled multiconformer model, table, mixtures.")
for col, (key, (fname, text, mime)) in zip(st.columns(4), result.downloads.items()):
    col.download_button(fname, text, file_name=fname, mime=mime, key=f"dl-{key}", on_click="ignore",
                        icon=":material/download:", width="stretch")  # fmt: skip
