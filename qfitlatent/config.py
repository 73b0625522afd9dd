"""Frozen configs. `ModelConfig` is saved inside every checkpoint and rebuilds the network.

Every SPEC §3 hyperparameter is a field here with the SPEC default; the command line builds its
`--set key=value` overrides from these fields, so each default is written once.
"""

from dataclasses import asdict, dataclass, fields, replace

from .settings_check import check_config, parse_value

# Concentration floor: keeps κ > 0 (VonMises sampling hangs at 0). Defined here, not in mixture,
# so config stays free of torch: every Train-page launch reads the presets, and the run
# supervisor must start in a fraction of a second (tests/test_layout.py).
KAPPA_MIN = 0.01


@dataclass(frozen=True)
class ModelConfig:
    d_s: int = 128  # single representation width (SPEC §3)
    d_z: int = 32  # pair representation width; pair features are bias and value in IPA
    n_blocks: int = 8  # IPA blocks; frames stay fixed, so depth only mixes information
    n_heads: int = 4
    c_head: int = 8  # scalar query/key/value width per head
    n_qk_points: int = 4  # query/key points per head (N_qk); sets w_C = sqrt(2 / (9 N_qk))
    n_v_points: int = 8  # value points per head (N_v)
    n_components: int = 5  # von Mises mixture components K
    n_chi: int = 4  # χ slots D; residues with fewer χ mask the rest
    kappa_min: float = KAPPA_MIN  # concentration floor: keeps κ > 0 and sampling from hanging
    dropout: float = 0.2
    # Transition MLP hidden width = this × d_s; 2 keeps a block's CPU cost mostly attention.
    transition_mult: int = 2
    # Pair features (all SE(3)-invariant).
    relpos_clip: int = 32  # relative sequence position within a chain, clipped to ±this
    n_rbf: int = 16  # radial basis functions over CA–CA distance
    rbf_max: float = 20.0  # Å; centre of the last basis function
    # Direction of j's CA and j's axes seen from i's frame: invariant, and they tell a residue
    # which side of its backbone a neighbour sits on, which distances alone cannot.
    use_frame_pair_features: bool = True
    # Optional single features beyond the SPEC's three inputs, kept only where validation says so.
    use_backbone_angles: bool = True  # φ/ψ/ω as sin/cos; rotamer preferences depend on them
    # Neighbour counts around the virtual Cβ (geometry.burial_counts): how packed a side chain
    # is, which a few IPA blocks over a crop would otherwise have to count for themselves.
    use_burial: bool = True
    # Atoms of other residues around probes along χ1 (environment.py): the room the input
    # structure leaves for this side chain, which backbone frames alone cannot show.
    use_environment: bool = True
    # The file header's resolution: whether a modeller could see alternative conformers at all
    # is a property of the data (most entries below 1.5 Å have some, few above 2.5 Å do), which
    # no geometry shows. Optional in every file: a residue is read as "resolution unknown" where
    # the header gives none, and TrainConfig.resolution_dropout teaches that case.
    use_resolution: bool = False
    # Memory: attend only to the nearest `max_neighbours` residues (by CA distance) when N is
    # larger; 0 attends to all. Keeps a 3000-residue structure inside a laptop's memory.
    max_neighbours: int = 0
    # Backbone-dependent rotamer library as M extra mixture components that the network reweights
    # and rescales per residue (model/prior.py); fitted on the training split when a run starts.
    # 0: the SPEC head alone.
    prior_components: int = 0
    prior_bin_deg: float = 20.0  # φ/ψ bin width of that library
    # SPEC §5b: a per-residue logit for "the side chain has >= 2 distinct conformers".
    flex_head: bool = True

    def __post_init__(self):
        check_config(self)  # types and ranges (settings_check.BOUNDS): bad values fail here

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        # Checkpoints written before the flexibility head and the burial and environment inputs
        # existed have none of them.
        d = {"flex_head": False, "use_burial": False, "use_environment": False, **d}
        if unknown:
            from .errors import CheckpointError

            raise CheckpointError(
                f"checkpoint has model settings this version does not know: {sorted(unknown)}; "
                "it was written by a newer or different qfitlatent"
            )
        return cls(**d)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    lr: float = 3e-4  # AdamW (SPEC §3); cosine annealing to lr/100 over the whole run
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    min_altlocs: int = 2  # 2: train on R (SPEC §5); 1: single-conformer residues teach rigidity
    # With min_altlocs 1: the share of each step's loss that comes from R (loss.training_loss);
    # 0 is the plain mean over every residue with a χ.
    r_share: float = 0.0
    flex_weight: float = 1.0  # weight of the flexibility BCE next to the χ NLL
    # Weight of a pairwise ranking loss between each crop's flexible and rigid residues: the
    # per-structure AUROC a user meets (residues ranked within one structure), which the BCE
    # only reaches through calibration across structures.
    flex_rank_weight: float = 0.0
    # Share of training crops whose resolution is hidden, so a model with use_resolution also
    # learns the files whose header gives none.
    resolution_dropout: float = 0.0
    crop_size: int = 384  # spatial crop for training only, never at inference
    # Proteins (crops) whose gradients are summed into one optimizer step: a step that sees
    # several proteins is less noisy than one that sees a single crop.
    batch_proteins: int = 1
    val_fraction: float = 0.1  # share of structures held out, split by PDB id
    seed: int = 0
    freeze_trunk: bool = False  # fine-tuning: train the head only
    save_every: int = 100  # steps between last.pt writes, so an interrupted run loses little
    log_every: int = 10  # steps between metrics.jsonl lines (and plain progress lines)

    def __post_init__(self):
        check_config(self)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The settings a checkpoint saved. A key this version does not know fails, as in
        ModelConfig: dropping it would resume a run under settings it was not started with."""
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            from .errors import CheckpointError

            raise CheckpointError(
                f"checkpoint has training settings this version does not know: {sorted(unknown)}; "
                "it was written by a newer or different qfitlatent"
            )
        return cls(**d)


# The shipped weights' settings by name, so `qfitlatent train --preset NAME` reproduces them and
# the model card names one thing instead of a list of --set overrides. Data folders and the
# epoch count are in the card's command.
_V3 = (  # v2 plus the environment counts around χ1 probes (environment.py)
    ModelConfig(n_blocks=4, d_s=128, dropout=0.1, max_neighbours=64, prior_components=16),
    TrainConfig(
        epochs=8, lr=5e-4, crop_size=256, batch_proteins=4, min_altlocs=1, r_share=0.3,
        flex_weight=1.0, save_every=25,
    ),
)  # fmt: skip
PRESETS: dict[str, tuple[ModelConfig, TrainConfig]] = {
    "qfitlatent-v2": (replace(_V3[0], use_environment=False), _V3[1]),
    "qfitlatent-v3": _V3,
    # v3 plus the header's resolution (hidden in a fifth of the training crops). Not shipped: the
    # multiconformer model's fixed split threshold does not suit its calibrated p_flexible
    # (weights/MODEL_CARD.md, ablations).
    "qfitlatent-v3-resolution": (
        replace(_V3[0], use_resolution=True),
        replace(_V3[1], resolution_dropout=0.2),
    ),
}


def with_overrides(cfg, overrides: list[str]):
    """Apply `key=value` strings to a frozen config, casting to each field's type."""
    types = {f.name: f.type for f in fields(cfg)}
    changes = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in types:
            raise ValueError(f"unknown setting {key!r}; known: {', '.join(sorted(types))}")
        changes[key] = parse_value(key, types[key], value)  # SettingsError names key and range
    return replace(cfg, **changes)


def split_overrides(items: list[str]) -> tuple[list[str], list[str]]:
    """`key=value` strings sorted into (ModelConfig ones, TrainConfig ones); unknown keys fail."""
    model_keys = {f.name for f in fields(ModelConfig)}
    train_keys = {f.name for f in fields(TrainConfig)}
    model_sets, train_sets = [], []
    for item in items:
        key = item.partition("=")[0].strip()
        if key in model_keys:
            model_sets.append(item)
        elif key in train_keys:
            train_sets.append(item)
        else:
            raise ValueError(
                f"unknown setting {key!r}; known: {', '.join(sorted(model_keys | train_keys))}"
            )
    return model_sets, train_sets
