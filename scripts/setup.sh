#!/usr/bin/env bash
# Create .venv and install offerpilot with its test tools.
# Without an NVIDIA GPU, torch's CPU build is installed first, so that no CUDA packages are pulled in.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
. .venv/bin/activate
python -m pip install -qq --upgrade pip
if ! (command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1); then
  python -m pip install -qq torch==2.13.0
fi
python -m pip install -qq -e ".[dev,text]"
# The Open Bandit Dataset's sample (a real randomized log, for tests and scripts/obd_ope.py) ships in the obp wheel;
# its files are read by path and obp is never imported (it does not run on numpy 2), so its dependencies are not installed.
python -m pip install -qq --no-deps obp==0.4.1
python -c "import offerpilot, torch; print(f'offerpilot {offerpilot.__version__} installed in .venv (torch {torch.__version__})')"
