#!/usr/bin/env bash
# Snakemake runs this once, inside the new environment, from the workflow root.
set -euo pipefail
pip install --no-deps -e .
