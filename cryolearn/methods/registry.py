"""The methods by name: :func:`register_method`, :func:`get_method`, :func:`available_methods`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .base import Method

__all__ = ["available_methods", "get_method", "get_method_class", "register_method"]

_REGISTRY: dict[str, type["Method"]] = {}


def register_method(name: str) -> Callable[[type["Method"]], type["Method"]]:
    """Class decorator that makes a method available to :func:`get_method` under ``name``."""

    def deco(cls: type["Method"]) -> type["Method"]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available_methods() -> list[str]:
    """Names accepted by :func:`get_method`, e.g. ``["cryogen1", "cryogen2", ...]``."""
    return sorted(_REGISTRY)


def get_method_class(name: str) -> type["Method"]:
    """The class registered under ``name`` (its ``Config`` lists the valid options).

    Raises
    ------
    ValueError
        If ``name`` is not registered.
    """
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; available: {available_methods()}") from None


def get_method(name: str, **kwargs: Any) -> "Method":
    """Build a method by name.

    Parameters
    ----------
    name : str
        One of :func:`available_methods` (``"cryogen1"``, ``"cryogen2"``, ...).
    **kwargs
        Passed to the method's constructor: ``mask``, ``sigma`` (and
        ``network``, ``spectrum`` where taken), ``config``, and the fields of
        the method's configuration dataclass (``Method.Config``, e.g.
        :class:`cryolearn.methods.CryoGEN2Config`).

    Returns
    -------
    Method

    Raises
    ------
    ValueError
        If ``name`` is not registered, or a keyword is neither a constructor
        argument nor a configuration field (the message names the valid
        keys), or a value has the wrong type.
    """
    return get_method_class(name)(**kwargs)
