"""Import the Lambda handler modules from functions/ by path, as Lambda does from
each function's code folder, without touching sys.path."""

import importlib.util
from functools import cache
from types import ModuleType

from tests.support.template import ROOT


@cache
def handler_module(function_dir: str, module: str) -> ModuleType:
    path = ROOT / "functions" / function_dir / f"{module}.py"
    spec = importlib.util.spec_from_file_location(module, path)
    assert spec is not None
    assert spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded
