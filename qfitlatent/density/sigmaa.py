"""2mFo-DFc and mFo-DFc from observed data and a model, σA-weighted, by servalcat.

servalcat (Yamashita, Palmer, Burnley & Murshudov 2021; CCP4) computes Fc from the model with
gemmi, fits bulk solvent and anisotropic scaling, estimates D and σA per resolution bin by
maximum likelihood, and writes FWT/PHWT (2mFo-DFc, missing Fo filled with DFc) and
DELFWT/PHDELWT (mFo-DFc). We call its `sigmaa` command's function in-process, on copies, in a
temporary folder that is removed afterwards, and read its MTZ back with gemmi.
"""

import contextlib
import io
import sys
import tempfile
import warnings
from pathlib import Path

import gemmi

from ..errors import MapError


def maps_from_data(
    mtz: gemmi.Mtz, model: gemmi.Structure, labin: list[str], what: str
) -> tuple[gemmi.Mtz, float | None, float | None]:
    """(MTZ with FWT/PHWT and DELFWT/PHDELWT, R-work, R-free) for `model` against `mtz`'s data.

    Args:
        labin: [value, sigma] or [value, sigma, free flag] column labels of `mtz`.
        what: the file's name, for messages.
    R-work/R-free are servalcat's (R1 over I/σ > 2 for intensities, R for amplitudes); None
    where it gives none (no free set: R-free).
    """
    hook = sys.excepthook
    try:
        from servalcat.utils import logger
        from servalcat.xtal import sigmaa
    except ImportError:
        raise MapError(
            f"{what} holds observed data only; computing maps from it needs servalcat "
            "(pip install servalcat), or give an MTZ with map coefficients from your refinement"
        ) from None

    # servalcat's logger sets sys.excepthook on import (for its CLI); we keep the host's.
    sys.excepthook = hook

    with tempfile.TemporaryDirectory(prefix="qfitlatent-sigmaa-") as tmp:
        prefix = str(Path(tmp) / "maps")
        args = sigmaa.parse_args(
            ["--hklin", "unused", "--model", "unused", "-s", "xray", "-o", prefix]
        )
        # In memory: servalcat takes gemmi objects where its CLI takes paths. It edits the
        # model (anisotropic B, special positions), hence the clone.
        args.hklin, args.model = mtz, [[model.clone()]]
        args.labin = ",".join(labin)
        logger.stop()
        try:
            # Quiet: its log goes to stdout, and its warnings (empty resolution bins, pandas
            # deprecations) are about servalcat's internals, not the user's data.
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hkldata = sigmaa.main(args)
                _, overall = sigmaa.calc_r_and_cc(hkldata)
        except (Exception, SystemExit) as err:
            # servalcat fails in many ways (its CLI exits); whichever, the user needs to know
            # that these data and this model did not give maps, and why.
            raise MapError(f"{what}: maps could not be computed from the data: {err}") from None
        finally:
            logger.start()
        out = gemmi.read_mtz_file(prefix + ".mtz")
    r_work = next(
        (float(v) for k, v in overall.items() if k in ("Rwork", "R1work", "R", "R1")), None
    )
    r_free = next((float(v) for k, v in overall.items() if k in ("Rfree", "R1free")), None)
    return out, r_work, r_free
