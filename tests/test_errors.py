"""The exception tree drawn in adapter/errors.py lists every error the adapter raises."""

from __future__ import annotations

import inspect

import adapter.errors as errors


def test_the_docstring_draws_every_error_class():
    classes = [name for name, cls in inspect.getmembers(errors, inspect.isclass)
               if issubclass(cls, errors.AdapterError)]
    doc = errors.__doc__ or ""
    assert classes and all(f"── {name} " in doc or f"    {name}\n" in doc for name in classes), classes
