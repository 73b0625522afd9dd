"""Pictures, drawn from arrays and records (never from a Prediction: `qfitlatent.display` turns
one into what these take). Pure: no streamlit here. One module per job:

- `viewer`: the structure's text for the 3D viewer, a residue's atoms as PDB records, the
  scene of a residue with conformers overlaid (3Dmol.js calls the app's viewer component
  draws, `viewer_component/`), the legend chips.
- `chi`: χ densities of a mixture, the χ circle panels and the χ1–χ2 torus.
- `rotamers`: rotamer-library names (p, t, m; "mt−80") for wells and mixture components.
- `placement`: pixel boxes of labels and a greedy placer that keeps them apart.
- `profile`: the flexibility of every residue along its chain.
- `table`: the flexibility table's columns and rows as its component (`table_component/`)
  draws them.
- `curves`: a training run's loss curves.
- `colours`: palettes and value → colour maps shared by all of the above.
"""
