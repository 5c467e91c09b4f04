"""docs/writing-plugins.md keeps up with the plugin contract, and the bundled plugins depend only
on its public part (adapter.plugin.api, adapter.errors, adapter.jsonio)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import types
from pathlib import Path

import pytest

from adapter.plugin import NAME, spec
from adapter.plugin.api import ChildSpec, Dialect, FieldSpec, RegionProfile, TransactionSpec
from adapter.plugin.manager import PluginHost

ROOT = Path(__file__).resolve().parents[1]
DOC_PATH = ROOT / "docs" / "writing-plugins.md"
DOC = DOC_PATH.read_text(encoding="utf-8")

#: what a plugin may import from ``adapter`` (``adapter.plugin``: hookimpl only)
ALLOWED_MODULES = frozenset({"adapter.plugin.api", "adapter.errors", "adapter.jsonio"})
PLUGIN_MODULES = sorted(ROOT.glob("plugins/adapter-*/adapter_*/*.py"))

HOOKS = sorted(
    name for name, obj in vars(spec).items()
    if inspect.isfunction(obj) and hasattr(obj, f"{NAME}_spec")
)
DIALECT_METHODS = sorted(
    name for name, obj in vars(Dialect).items() if inspect.isfunction(obj) and not name.startswith("_")
)


def _section(title: str) -> str:
    """The doc's text under the heading that starts with ``title`` (in backticks), up to the
    next heading of the same or a higher level."""
    match = re.search(rf"^(#+) `{re.escape(title)}`.*$", DOC, re.M)
    assert match, f"docs/writing-plugins.md has no heading for `{title}`"
    level = len(match.group(1))
    rest = DOC[match.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def _in_backticks(name: str, text: str) -> bool:
    """``name`` starts a code span: `name`, `name(...)`, `name="..."`..."""
    return re.search(rf"`{re.escape(name)}(?![A-Za-z0-9_])[^`\n]*`", text) is not None


def _params(function: object, skip_self: bool = False) -> str:
    names = list(inspect.signature(function).parameters)  # type: ignore[arg-type]
    return ", ".join(names[1:] if skip_self else names)


def test_the_contract_is_not_empty():
    """Guards the tests below against finding nothing to check."""
    assert len(HOOKS) >= 5
    assert "sign_in_input" in DIALECT_METHODS and "exp_content" in DIALECT_METHODS
    assert PLUGIN_MODULES


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_heading_and_its_exact_signature(hook: str):
    function = getattr(spec, hook)
    heading = f"### `{hook}({_params(function)})`"
    assert re.search(rf"^{re.escape(heading)}$", DOC, re.M), f"no heading {heading}"
    signature = inspect.signature(function)
    typed = ", ".join(f"{name}: {p.annotation}" for name, p in signature.parameters.items())
    exact = f"`{hook}({typed}) -> {signature.return_annotation}`"
    assert exact in _section(f"{hook}({_params(function)})"), f"the {hook} section does not show {exact}"


@pytest.mark.parametrize("method", DIALECT_METHODS)
def test_every_dialect_method_is_documented_with_its_parameters(method: str):
    call = f"{method}({_params(getattr(Dialect, method), skip_self=True)})"
    assert f"`{call}`" in _section("Dialect"), f"the Dialect section does not show `{call}`"


@pytest.mark.parametrize(
    ("cls", "field"),
    [(cls, f.name) for cls in (TransactionSpec, ChildSpec, FieldSpec, RegionProfile)
     for f in dataclasses.fields(cls)],
    ids=lambda value: value if isinstance(value, str) else value.__name__,
)
def test_every_field_is_documented_in_its_section(cls: type, field: str):
    assert _in_backticks(field, _section(cls.__name__)), (
        f"{cls.__name__}.{field} is not documented (in backticks) under its heading"
    )


def _adapter_imports(tree: ast.AST) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import from the ``adapter`` package."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names
                      if alias.name == "adapter" or alias.name.startswith("adapter.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "adapter":  # from adapter import jsonio: the module adapter.jsonio
                found += [(node.lineno, f"adapter.{alias.name}", []) for alias in node.names]
            elif node.module.startswith("adapter."):
                found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def _violations(source: str, where: str) -> list[str]:
    problems = []
    for line, module, names in _adapter_imports(ast.parse(source)):
        if module in ALLOWED_MODULES:
            continue
        if module == "adapter.plugin" and names and set(names) <= {"hookimpl"}:
            continue
        what = f"from {module} import {', '.join(names)}" if names else f"import {module}"
        problems.append(f"{where}:{line}: {what}")
    return problems


def test_bundled_plugins_import_only_the_public_contract():
    problems = []
    for path in PLUGIN_MODULES:
        problems += _violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not problems, "plugins import internal modules of adapter:\n" + "\n".join(problems)


def _python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", DOC, re.M | re.S)


def test_the_doc_examples_import_only_the_public_contract():
    blocks = _python_blocks()
    assert blocks
    problems = []
    for index, block in enumerate(blocks, start=1):
        problems += _violations(block, f"python block {index}")
        problems += [f"python block {index}: {m}" for m in re.findall(r"adapter\.plugin\.(?!api)\w+", block)]
    assert not problems, "\n".join(problems)


def test_the_minimal_plugin_in_the_doc_loads_and_registers_its_region():
    block = next(b for b in _python_blocks() if b.startswith("# adapter_hainan/hooks.py"))
    module = types.ModuleType("adapter_hainan_doc_example")
    exec(compile(block, str(DOC_PATH), "exec"), module.__dict__)
    host = PluginHost.load(load_entrypoints=False, extra=[module])
    region = host.region("hainan")
    assert region.gateway == "csb" and region.url_style == "base_infno"
    assert "opter_name" in [item.name for item in region.transactions["2302"].fields]
    assert region.transactions["2301"].batched  # the national specs are kept
    assert region.dialect.record_defaults("2301")["hosp_appr_flag"] == "0"
