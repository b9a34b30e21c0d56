"""Every example in lotus_hf's docstrings runs and prints what it says (doctest), module by module."""

import doctest
import importlib
import pkgutil

import pytest

import lotus_hf


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(lotus_hf.__path__, "lotus_hf."))


@pytest.mark.parametrize("module", _modules())
def test_docstring_examples_run(module):
    results = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert results.failed == 0
