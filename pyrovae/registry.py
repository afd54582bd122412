"""A small name -> component registry.

Components (priors, likelihoods, guides, networks, objectives, schedules,
model families) register themselves with a decorator::

    @PRIORS.register("normal")
    class StandardNormalPrior(Prior): ...

and are looked up by name with :meth:`Registry.get`. Unknown names raise a
:class:`~pyrovae.errors.RegistryError` whose message lists the valid names and
the closest match. There is no if/elif on component names anywhere in pyrovae.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from .errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """Map names to component factories (usually classes).

    Parameters
    ----------
    kind : str
        What the registry holds, used in error messages ("prior", "likelihood").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (names are unique)."""

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            try:
                obj.registry_name = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            return obj

        return deco

    def get(self, name: str) -> T:
        """Return the component registered as ``name``.

        Raises
        ------
        RegistryError
            If ``name`` is unknown; the message lists the registered names.
        """
        try:
            return self._items[name]
        except (KeyError, TypeError):
            close = difflib.get_close_matches(str(name), self._items, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RegistryError(
                f"unknown {self.kind} {name!r}{hint}; choose from: {', '.join(self.names())}"
            ) from None

    def build(self, name_or_obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Instantiate a component given by name, or pass an object through."""
        if isinstance(name_or_obj, str):
            return self.get(name_or_obj)(*args, **kwargs)
        return name_or_obj

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """(name, component) pairs, sorted by name."""
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
