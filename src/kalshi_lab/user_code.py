"""The user's own code at the repository root, named by a ``_target_`` in params.yaml.

A strategy class (``strategy._target_``) or a feature function (``features.extra``) may live in a
file at the repository root, e.g. ``user_strategies.py``, without installing it: the stages run
from the root (DVC's working directory), which this puts on ``sys.path``. One definition, so
that the backtest, the bot and the features stage find the same files.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

#: Hydra's lookup logs its own multi-line ERROR before raising; the caller reports it instead
_HYDRA_LOG = logging.getLogger("hydra.utils")


def make_repository_importable() -> None:
    """Append the working directory (the repository root) to ``sys.path``, once.

    Appended, not prepended: a user file never shadows an installed package of the same name.
    """
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)


def import_function(path: str) -> Callable[..., Any]:
    """The callable at the dotted ``path`` (Hydra's ``get_method``), the repository importable.

    Raises ImportError or ValueError with Hydra's reason on one line: the import's own error (a
    missing module or name, the user file's SyntaxError) or that the object is not callable.
    """
    # here, not with the module: the features stage imports this module for its user features
    # and, with none configured (the default), never calls this (Hydra: about 0.1 s)
    from hydra.utils import get_method

    make_repository_importable()
    disabled, _HYDRA_LOG.disabled = _HYDRA_LOG.disabled, True
    try:
        return get_method(path)
    except (ImportError, ValueError) as exc:
        raise type(exc)(" ".join(str(exc).split())) from None  # Hydra's spans three lines
    finally:
        _HYDRA_LOG.disabled = disabled
