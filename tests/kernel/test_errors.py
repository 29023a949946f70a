"""The exception tree drawn in the kernel is the tree the classes form, and it is the only one.

The drawing (``scanner_agent/kernel/_errors.py``'s docstring) is what a newcomer reads to
learn the agent's failure modes, so it must not go stale: every exception class of the
library appears in it under its real base, tagged with the package that defines it when
that is not the kernel, and nothing is drawn that does not exist.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass

import pytest

from scanner_agent.kernel import ScannerAgentError, unknown_key

LIBRARY = ("scanner_agent", "drivers")
KERNEL_ERRORS = "scanner_agent.kernel._errors"


@dataclass(frozen=True)
class Drawn:
    parent: str | None
    tag: str | None


_LINE = re.compile(r"^(?P<prefix>[│├└─ ]*)(?P<name>[A-Za-z]\w*)(?: \[(?P<tag>[\w.]+)\])?(?:\s|$)")


def parse_drawing(doc: str) -> dict[str, Drawn]:
    """``{class name: Drawn}`` from the tree drawn after the first ``::`` of ``doc``.

    Each level indents by four characters (``├── `` or ``│   ``); a name may carry a
    ``[tag]`` naming the package that defines it.
    """
    lines = doc.split("::\n", 1)[1].lstrip("\n").split("\n\n", 1)[0].splitlines()
    tree: dict[str, Drawn] = {}
    stack: list[str] = []
    for line in lines:
        text = line[4:]  # the literal block's own indent
        match = _LINE.match(text)
        assert match is not None, f"cannot read the drawn line {line!r}"
        depth, rest = divmod(len(match["prefix"]), 4)
        assert rest == 0, f"misaligned drawn line {line!r}"
        assert depth <= len(stack), f"misaligned drawn line {line!r}"
        name = match["name"]
        assert name not in tree, f"{name} drawn twice"
        del stack[depth:]
        tree[name] = Drawn(stack[-1] if stack else None, match["tag"])
        stack.append(name)
    return tree


def library_exception_classes() -> list[type[BaseException]]:
    """Every exception class defined in the library's modules (each module imported)."""
    found: dict[str, type[BaseException]] = {}
    for top in LIBRARY:
        package = importlib.import_module(top)
        names = [top] + [
            info.name
            for info in pkgutil.walk_packages(package.__path__, f"{top}.")
            if not info.name.endswith("__main__")  # runs the CLI when imported
        ]
        for name in names:
            module = importlib.import_module(name)
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, BaseException)
                    and value.__module__ == name
                ):
                    found[f"{name}.{value.__qualname__}"] = value
    return [found[k] for k in sorted(found)]


def tag_of(cls: type) -> str | None:
    """The tag a class defined outside the kernel carries: its package below scanner_agent."""
    module = cls.__module__
    if module.startswith("scanner_agent.kernel."):
        return None
    if module.startswith("drivers."):
        return "drivers"
    return module.removeprefix("scanner_agent.").split(".")[0]


def test_the_drawing_reads_as_a_tree_rooted_at_scanner_agent_error() -> None:
    doc = importlib.import_module(KERNEL_ERRORS).__doc__
    assert doc is not None
    tree = parse_drawing(doc)
    roots = [name for name, drawn in tree.items() if drawn.parent is None]
    assert roots == ["ScannerAgentError"]


def test_the_drawn_tree_is_the_tree_of_the_classes() -> None:
    doc = importlib.import_module(KERNEL_ERRORS).__doc__
    assert doc is not None
    drawn = parse_drawing(doc)
    real: dict[str, Drawn] = {}
    for cls in library_exception_classes():
        if not issubclass(cls, ScannerAgentError) or cls.__name__.startswith("_"):
            continue  # a private subclass is its module's detail; callers see its public base
        bases = [b for b in cls.__bases__ if issubclass(b, ScannerAgentError)]
        assert len(bases) <= 1, f"{cls.__qualname__} has {len(bases)} bases in the tree"
        assert cls.__name__ not in real, f"two exception classes named {cls.__name__}"
        real[cls.__name__] = Drawn(bases[0].__name__ if bases else None, tag_of(cls))
    missing = sorted(real.keys() - drawn.keys())
    stale = sorted(drawn.keys() - real.keys())
    assert not missing, f"exception classes not drawn in {KERNEL_ERRORS}: {missing}"
    assert not stale, f"drawn in {KERNEL_ERRORS} but no such class: {stale}"
    wrong = {name: (drawn[name], real[name]) for name in real if drawn[name] != real[name]}
    assert not wrong, f"drawn (parent, tag) differs from the class: {wrong}"


def test_every_public_exception_of_the_library_is_in_the_tree() -> None:
    """One tree: an error a caller can see descends from ScannerAgentError.  A private class
    (``_StaleIndex``) is a signal that never leaves its module, so it may stand alone."""
    outside = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in library_exception_classes()
        if not issubclass(cls, ScannerAgentError) and not cls.__name__.startswith("_")
    ]
    assert outside == []


@pytest.mark.parametrize(
    ("drawing", "problem"),
    [
        ("    A\n    ├── B\n    │       └── C\n", "misaligned"),
        ("    A\n    ├── B\n    └── B\n", "drawn twice"),
        ("    A\n    ├── 9lives\n", "cannot read"),
    ],
)
def test_a_malformed_drawing_is_refused(drawing: str, problem: str) -> None:
    with pytest.raises(AssertionError, match=problem):
        parse_drawing(f"Tree::\n\n{drawing}\nAfter.\n")


def test_the_parser_reads_parents_and_tags() -> None:
    drawing = "    A\n    ├── B [bills]  text\n    │   └── C  more\n    └── D\n"
    assert parse_drawing(f"Tree::\n\n{drawing}\nAfter.\n") == {
        "A": Drawn(None, None),
        "B": Drawn("A", "bills"),
        "C": Drawn("B", None),
        "D": Drawn("A", None),
    }


def test_an_unknown_key_names_the_nearest_known_one() -> None:
    error = unknown_key("source[0].listn", ["listen", "ack"], "unknown key for a tcp source")
    assert str(error) == (
        "source[0].listn: unknown key for a tcp source; did you mean 'listen'? (known: ack, listen)"
    )
