"""Command-line flags generated from an estimator's constructor.

One flag per constructor parameter: the name from the parameter (``n_factors`` ->
``--n-factors``), the type and the choices from its annotation (the values of its ``Literal``,
such as ``LossName``), and the help from the first sentence(s) of its docstring entry. A
parameter added to the constructor therefore gets a flag, with its documentation, without
anyone editing the command line (a hand-written list had drifted from the estimator).

The signature is read with :mod:`inspect` at run time, so it is always the installed one.
A parameter that holds a part's settings (``part_settings``: a hybrid's ``factor``) gets the
part's flags under its name (``--factor.epochs``).
"""

from __future__ import annotations

import argparse
import inspect
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from tripletrec.models.base import RecommenderBase

#: Constructor parameters that the command line sets itself, so they get no flag:
#: ``verbose`` follows ``--quiet`` (a progress bar unless asked for none).
EXCLUDED = frozenset({"verbose"})
#: Part parameters that the composite sets for its parts: one seed seeds them all.
PART_EXCLUDED = frozenset({"random_state"})
#: Where the command line's default differs from the constructor's: runs are seeded, so
#: that the same command trains the same model.
CLI_DEFAULTS: dict[str, Any] = {"random_state": 0}

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")  # :class:`~a.b.C` -> a.b.C (shortened below)
_LITERAL_TEXT = re.compile(r"``([^`]*)``")
# A sentence ends at a full stop followed by a capital (so "e.g. ``x``" does not end one).
_SENTENCE_END = re.compile(r"(?<=\.)\s+(?=[A-Z])")
_ENTRY = re.compile(r"^(?P<names>[A-Za-z_][\w, ]*?)\s*:\s*(?P<type>.*)$")


@dataclass(frozen=True)
class ModelFlag:
    """One generated flag: the parameter it sets and how argparse reads it."""

    name: str  # the constructor parameter
    help: str  # the docstring's first sentence(s), markup removed
    kwargs: dict[str, Any]  # for ``ArgumentParser.add_argument``

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def docstring_parameters(doc: str | None) -> dict[str, tuple[str, str]]:
    """``{name: (type text, description)}`` from a NumPy-style docstring's ``Parameters``.

    An entry naming several parameters (``user_dim, item_dim : int``) describes each of them.
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    try:
        start = next(i for i, line in enumerate(lines[:-1]) if line.strip() == "Parameters"
                     and set(lines[i + 1].strip()) == {"-"}) + 2  # fmt: skip
    except StopIteration:
        return {}
    entries: dict[str, tuple[str, str]] = {}
    names: list[str] = []
    kind, text = "", []

    def flush() -> None:
        for name in names:
            entries[name] = (kind, " ".join(text))

    for i in range(start, len(lines)):
        line = lines[i]
        if line and not line[0].isspace():
            if i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:
                break  # the next section (Attributes, Examples, ...)
            match = _ENTRY.match(line)
            if match is None:
                continue
            flush()
            names = [n.strip() for n in match["names"].split(",") if n.strip()]
            kind, text = match["type"].strip(), []
        elif line.strip():
            text.append(line.strip())
    flush()
    return entries


def plain_text(text: str) -> str:
    """Docstring markup removed: ``code`` and :role:`~module.Name` become plain words."""
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text)
    return _LITERAL_TEXT.sub(r"\1", text).replace("`", "")


def first_sentences(description: str) -> str:
    """The first sentence of a docstring entry, as plain text."""
    text = plain_text(" ".join(description.split()))
    return _SENTENCE_END.split(text, maxsplit=1)[0]


def _arms(annotation: Any) -> tuple[list[Any], bool]:
    """The arms of a union annotation without ``None``, and whether ``None`` was one."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        arms = list(typing.get_args(annotation))
    else:
        arms = [annotation]
    return [a for a in arms if a is not type(None)], type(None) in arms


def _scalar(kind: type, literals: Sequence[str], none_ok: bool) -> Callable[[str], Any]:
    """A parser of ``kind`` that also takes the literal words (and "none" for None)."""
    words = list(literals) + (["none"] if none_ok else [])
    expected = {int: "an integer", float: "a number", str: "a word"}[kind]
    alternatives = "".join(f" or {w!r}" for w in words)

    def parse(text: str) -> Any:
        if text in literals:
            return text
        if none_ok and text.lower() == "none":
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {expected}{alternatives}, not {text!r}"
            ) from None

    parse.__name__ = kind.__name__  # what argparse names in its own messages
    return parse


def _boolean(literals: Sequence[str]) -> Callable[[str], Any]:
    """A parser of "true" / "false" that also takes the literal words (``"auto"``)."""
    values = {"true": True, "false": False}
    alternatives = "".join(f" or {w!r}" for w in literals)

    def parse(text: str) -> Any:
        if text in literals:
            return text
        if text.lower() in values:
            return values[text.lower()]
        raise argparse.ArgumentTypeError(f"expected true, false{alternatives}, not {text!r}")

    parse.__name__ = "bool"
    return parse


def _comma_list(kind: type) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            return [kind(part) for part in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind.__name__} values like 128,64, not {text!r}"
            ) from None

    return parse


def _argparse_kwargs(annotation: Any) -> dict[str, Any]:
    arms, none_ok = _arms(annotation)
    literals = [v for a in arms if typing.get_origin(a) is Literal for v in typing.get_args(a)]
    others = [a for a in arms if typing.get_origin(a) is not Literal]
    if others == [bool]:
        if not literals:
            return {"action": argparse.BooleanOptionalAction}
        return {"type": _boolean(literals), "metavar": "|".join(["true", "false", *literals])}
    origin = typing.get_origin(others[0]) if len(others) == 1 else None
    if origin is not None and issubclass(origin, Sequence) and origin is not str:
        (item,) = typing.get_args(others[0]) or (str,)
        name = item.__name__.upper()
        return {"type": _comma_list(item), "metavar": f"{name},{name},..."}
    numbers = [a for a in others if a in (int, float)]
    if numbers:
        kind = float if float in numbers else int
        words = [*literals, *(["none"] if none_ok else [])]
        metavar = "|".join([kind.__name__.upper(), *words])
        return {"type": _scalar(kind, literals, none_ok), "metavar": metavar}
    if not literals:
        return {"type": _scalar(str, [], none_ok)}
    return {"choices": tuple(literals)}


def _documented(estimator: type) -> str | None:
    """The docstring that documents ``estimator``'s parameters: its own, or that of the
    nearest base class with a Parameters section (a subclass that only renames)."""
    for cls in estimator.__mro__:
        if docstring_parameters(cls.__doc__):
            return cls.__doc__
    return estimator.__doc__


def model_flags(estimator: type[RecommenderBase]) -> list[ModelFlag]:
    """The flags of every constructor parameter of ``estimator`` but :data:`EXCLUDED`,
    with those of each part (``estimator.part_settings``) under the part's name."""
    signature = inspect.signature(estimator.__init__)
    hints = typing.get_type_hints(estimator.__init__)
    docs = docstring_parameters(_documented(estimator))
    flags = []
    for name, parameter in signature.parameters.items():
        if name == "self" or name in EXCLUDED:
            continue
        part = estimator.part_settings.get(name)
        if part is not None:
            flags += [
                replace(flag, name=f"{name}.{flag.name}")
                for flag in model_flags(part)
                if flag.name not in PART_EXCLUDED
            ]
            continue
        description = docs.get(name, ("", ""))[1]
        annotation = hints.get(name, type(parameter.default))
        help_text = first_sentences(description) if description else name.replace("_", " ")
        kwargs = _argparse_kwargs(annotation)
        default = CLI_DEFAULTS.get(name, parameter.default)
        if isinstance(default, tuple):
            default = ",".join(str(v) for v in default)
        shown = "" if default is inspect.Parameter.empty else f" (default {default})"
        # argparse formats help with %: a literal percent sign must be doubled.
        kwargs["help"] = (help_text + shown).replace("%", "%%")
        # SUPPRESS: a flag not given leaves no attribute, so "given as none" (None) and
        # "not given" differ, and only given flags override --preset / --config.
        kwargs["default"] = argparse.SUPPRESS
        flags.append(ModelFlag(name, help_text, kwargs))
    return flags


def add_model_flags(parser: argparse.ArgumentParser, estimator: type[RecommenderBase]) -> None:
    """Add the flags of ``estimator`` to ``parser`` (an argument group of their own)."""
    group = parser.add_argument_group(
        f"{estimator.__name__} hyper-parameters",
        f"the parameters of {estimator.__name__} (see its docstring; another estimator's "
        "with --estimator NAME before them); each overrides --preset and --config.",
    )
    for flag in model_flags(estimator):
        group.add_argument(flag.flag, dest=flag.name, **flag.kwargs)
    if "random_state" not in estimator._param_names():
        return
    # The old name of --random-state.
    group.add_argument("--seed", dest="random_state", type=int, default=argparse.SUPPRESS,
                       help=argparse.SUPPRESS)  # fmt: skip


def given_model_params(
    args: argparse.Namespace, estimator: type[RecommenderBase]
) -> dict[str, Any]:
    """The parameters of ``estimator`` given on the command line, by name; a part's in a
    mapping under the part's name (``{"factor": {"epochs": 3}}``)."""
    given: dict[str, Any] = {}
    for flag in model_flags(estimator):
        if hasattr(args, flag.name):
            part, _, name = flag.name.rpartition(".")
            (given.setdefault(part, {}) if part else given)[name] = getattr(args, flag.name)
    return given
