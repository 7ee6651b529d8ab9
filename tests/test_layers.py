"""The apps' layers, read from their source: pricing ← keys ← spend ← gateway (each imports only those to its left).

pricing imports nothing from keys or spend, keys and spend never import gateway, and keys does not import spend
(which charges keys' payers). No module imports an app above its own, or reaches one through the app registry
(`apps.get_model("gateway", ...)`), which hides the same dependency from its imports.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What each app may not import: every app above it in the request's walk.
FORBIDDEN = {
    "pricing": {"gateway", "keys", "spend"},
    "keys": {"gateway", "spend"},
    "spend": {"gateway"},
}


def reached_apps(path: Path) -> set[str]:
    """The top-level packages a module imports, and the app labels it passes to apps.get_model."""
    reached = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            reached |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            reached.add(node.module.partition(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get_model"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            reached.add(node.args[0].value.partition(".")[0])
    return reached


@pytest.mark.parametrize("app", sorted(FORBIDDEN))
def test_no_app_reaches_an_app_above_it(app):
    upward = {
        str(path.relative_to(ROOT)): sorted(reached_apps(path) & FORBIDDEN[app])
        for path in sorted((ROOT / app).rglob("*.py"))
    }

    assert {module: apps for module, apps in upward.items() if apps} == {}
