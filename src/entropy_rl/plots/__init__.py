"""One function per figure, one style: every figure is saved as PNG and PDF (see ``style.save``)."""

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window (headless CI, SLURM nodes)
