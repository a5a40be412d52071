"""Every family parses its payloads inside `pipelines.ingest.refusing`, so an exception nobody
foresaw refuses them like a ParseError (the behaviour itself: fault cases U01-U04).

Read from the source: an asset function that publishes payloads (`publish`, `publishing`) must
also open `refusing`, and no family module calls `refuse` itself (a hand-made except clause
would catch only the errors its author thought of).
"""

import ast
from pathlib import Path

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


def _called(node: ast.AST) -> set[str]:
    return {
        call.func.id
        for call in ast.walk(node)
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
    }


def _functions() -> list[tuple[str, ast.FunctionDef]]:
    found = []
    for path in sorted(PIPELINES.glob("*.py")):
        if path.name == "ingest.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [(path.name, node) for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    return found


def test_every_function_that_publishes_payloads_parses_them_inside_refusing():
    publishing = [(module, f) for module, f in _functions() if _called(f) & {"publish", "publishing"}]
    assert len(publishing) >= 18, [f"{m}:{f.name}" for m, f in publishing]  # every source asset
    missing = [f"{module}:{f.name}" for module, f in publishing if "refusing" not in _called(f)]
    assert not missing, f"publishes without parsing inside `refusing`: {missing}"


def test_no_family_refuses_by_hand():
    by_hand = [f"{module}:{f.name}" for module, f in _functions() if "refuse" in _called(f)]
    assert not by_hand, f"call `refuse` themselves instead of `refusing`: {by_hand}"
