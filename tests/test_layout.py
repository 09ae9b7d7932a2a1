"""The code's layout stays what WORKSPACE.md says: small modules, no import cycle,
private TensorFlow/Keras APIs in one module.

Read from the source files (ast), nothing imported: `python -m pytest
tests/test_layout.py` is how anyone checks it.
"""
import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("bert_hub", "export")
MAX_LINES = 400
PRIVATE_MODULE = "bert_hub._tf_private"
# Imports that reach past TensorFlow's and tf_keras' public API.
PRIVATE_PREFIXES = ("tensorflow.python", "tensorflow.core.function", "tf_keras.src",
                    "keras.src")


def _modules():
  """{dotted name: path} of every module of the packages."""
  out = {}
  for package in PACKAGES:
    for path in sorted((ROOT / package).rglob("*.py")):
      parts = path.relative_to(ROOT).with_suffix("").parts
      name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
      out[name] = path
  return out


def _imports(name: str, path: pathlib.Path, modules=()):
  """Every module imported anywhere in the file (lazy imports included).

  modules: the package's module names, to tell `from pkg import submodule`
  from `from module import name`.
  """
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  found = []
  for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
    if isinstance(node, ast.Import):
      found += [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        anchor = package.split(".")
        anchor = anchor[:len(anchor) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
      # `from pkg import sub` imports the module pkg.sub (pkg's __init__ runs
      # first, as for any import of a submodule, and closes no cycle); `from
      # mod import name` imports mod.
      found += [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names]
  return found


def test_no_module_is_over_400_lines():
  long = {name: n for name, path in _modules().items()
          if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
  assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_import_cycle():
  modules = _modules()
  graph = {name: sorted({m for m in _imports(name, path, modules)
                         if m in modules and m != name})
           for name, path in modules.items()}
  state, stack, cycles = {}, [], []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in graph[node]:
      if state.get(nxt) == "open":
        cycles.append(stack[stack.index(nxt):] + [nxt])
      elif nxt not in state:
        visit(nxt)
    stack.pop()
    state[node] = "done"

  for node in graph:
    if node not in state:
      visit(node)
  assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
  """The check above can fail: two modules that import each other lazily."""
  package = tmp_path / "bert_hub"
  package.mkdir()
  (package / "__init__.py").write_text("")
  (package / "a.py").write_text("def f():\n  from bert_hub import b\n")
  (package / "b.py").write_text("from bert_hub.a import f\n")
  monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
  monkeypatch.setattr(sys.modules[__name__], "PACKAGES", ("bert_hub",))
  with pytest.raises(AssertionError, match="bert_hub.a -> bert_hub.b -> bert_hub.a"):
    test_no_import_cycle()


def test_private_tensorflow_apis_are_in_one_module():
  modules = _modules()
  users = {name: sorted({m for m in _imports(name, path, modules)
                         if m.startswith(PRIVATE_PREFIXES)})
           for name, path in modules.items() if name != PRIVATE_MODULE}
  users = {name: found for name, found in users.items() if found}
  assert not users, f"private TensorFlow/Keras imports outside {PRIVATE_MODULE}: {users}"
