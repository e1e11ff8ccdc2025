"""Collect another test module's tests again in this one (e.g. under EXECNET_FORK=1).

    globals().update(collect_again(__file__, "test_popen", skip={"test_plain_only"}))

The tests run with the fixtures of the module that collects them (an autouse fixture
there sets the scene) and with the helpers of their own module.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import AbstractSet, Dict


def collect_again(here: str, name: str, skip: AbstractSet[str] = frozenset()) -> Dict[str, object]:
    """The test_* names of module `name`, a sibling of the file `here`, except `skip`."""
    path = Path(here).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"{name}__again", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = {key: value for key, value in vars(module).items() if key.startswith("test_")}
    missing = set(skip) - set(found)
    assert not missing, f"{name} has no {sorted(missing)}"
    return {key: value for key, value in found.items() if key not in skip}
