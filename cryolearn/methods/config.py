"""Typed configurations of the methods: one dataclass per method, checked and converted from its field types.

Every method has a ``Config`` dataclass (e.g.
:class:`cryolearn.methods.CryoGEN2Config`) holding its hyperparameters;
:func:`cryolearn.methods.get_method` and the method constructors take them as
keyword arguments, :meth:`cryolearn.methods.Method.state_dict` saves the
configuration as a plain dict, and ``cryolearn train --set key=value``
validates against it. What comes from the data is not configuration: the
missing-wedge ``mask``, the noise level ``sigma``, a custom ``network`` and a
reference ``spectrum`` are separate constructor arguments.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, fields
from typing import Any, Literal

__all__ = ["MethodConfig", "coerce", "config_field", "config_from_dict", "make_config"]


@dataclass
class MethodConfig:
    """Hyperparameters every method shares.

    Attributes
    ----------
    base_channels : int
        Width of the default U-Net reconstructor.
    batch_size : int
        Observations per training step and process.
    lr : float
        Adam learning rate of the reconstructor.
    rotations : list of int, optional
        Cube-group elements (:func:`cryolearn.physics.cube_rotations`) the
        rotation proxy draws from; ``None``: all of them.
    seed : int
        Seeds the network initialisation and every random draw in training.
    masked_rotation : float
        Weight of the masked rotation term
        (:meth:`cryolearn.methods.Method.masked_rotation_loss`), the
        self-supervised loss of IsoNet and DeepDeWedge added to the method's
        own objective; 0 (default) leaves it out.
    """

    base_channels: int = 12
    batch_size: int = 16
    lr: float = 1e-3
    rotations: list[int] | None = None
    seed: int = 0
    masked_rotation: float = 0.0

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            setattr(self, f.name, coerce(getattr(self, f.name), hints[f.name], f.name))
        self.validate()

    def validate(self) -> None:
        """Check values beyond their types; raise ValueError naming the field (subclasses extend it)."""
        if not self.masked_rotation >= 0:
            raise ValueError(f"masked_rotation must be at least 0, got {self.masked_rotation}")

    @classmethod
    def field_names(cls) -> list[str]:
        """The valid keys, in declaration order."""
        return [f.name for f in fields(cls)]

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a plain dict (what a checkpoint stores)."""
        return dataclasses.asdict(self)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce_number(value: Any, tp: type, name: str) -> int | float:
    """``value`` as ``tp`` (``int`` or ``float``): a number, a 0-d tensor or array, or a numeric string; never a bool.

    An ``int`` also accepts an integer-valued float; a ``float`` accepts any
    integer. Anything else raises ValueError naming the field.
    """
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if tp is float or isinstance(value, int) or value.is_integer():
            return tp(value)
    elif isinstance(value, str):
        try:
            return tp(value)
        except ValueError:
            pass
    raise ValueError(f"{name}: expected {'an integer' if tp is int else 'a number'}, got {value!r}")


def coerce(value: Any, tp: Any, name: str = "value") -> Any:
    """Check ``value`` against the annotation ``tp`` and convert it where that loses nothing.

    Parameters
    ----------
    value : object
        E.g. a number or string parsed from YAML, or a keyword argument.
    tp : type or typing annotation
        ``int``, ``float``, ``bool``, ``str``, ``Literal[...]``, ``list[int]``
        or an optional (``X | None``) of these.
    name : str
        The field name, for messages.

    Returns
    -------
    object
        ``value`` of type ``tp``: an integer-valued float or a numeric string
        becomes an ``int`` or ``float``, ``"true"``/``"false"`` a bool, a tuple
        or a tensor of integers a list.

    Raises
    ------
    ValueError
        If ``value`` cannot be read as ``tp``; the message names the field,
        the expected type and the value.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, name)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(errors[0] if len(errors) == 1 else f"{name}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is list:
        (item,) = args or (Any,)
        if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
            value = value.tolist()
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name}: expected a list, got {value!r}")
        return [coerce(v, item, f"{name}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    if tp in (int, float):
        return _coerce_number(value, tp, name)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{name}: expected a string, got {value!r}")
    return value


def make_config(cls: type[MethodConfig], config: MethodConfig | dict[str, Any] | None = None, **kwargs: Any) -> MethodConfig:
    """Build a ``cls`` from a configuration (or a dict of one) updated by keyword arguments.

    Parameters
    ----------
    cls : type
        A :class:`MethodConfig` subclass.
    config : MethodConfig or dict, optional
        Start from these values (a dict is read as by :func:`config_from_dict`);
        default ``cls()``'s.
    **kwargs
        Field values that override ``config``'s.

    Returns
    -------
    MethodConfig
        A new ``cls``, type-checked and validated.

    Raises
    ------
    ValueError
        If a key is not a field of ``cls`` (the message names the valid
        keys), or a value has the wrong type or range.
    """
    base = {} if config is None else (config.to_dict() if isinstance(config, MethodConfig) else dict(config))
    values = {**base, **kwargs}
    valid = cls.field_names()
    unknown = [k for k in values if k not in valid]
    if unknown:
        raise ValueError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for "
                         f"{cls.__name__}; valid keys: {', '.join(valid)}")
    return cls(**values)


def config_from_dict(cls: type[MethodConfig], data: dict[str, Any]) -> MethodConfig:
    """Rebuild a configuration saved as a dict by :meth:`MethodConfig.to_dict` (unknown keys raise ValueError)."""
    return make_config(cls, data)


class config_field:
    """A method attribute that reads and writes a field of its configuration (``method.config``).

    ``lam = config_field()`` in a method class makes ``method.lam`` the
    configuration's ``lam``; ``loss_kind = config_field("loss")`` reads another
    name. Assigning converts the value to the field's type and validates the
    configuration, so what a checkpoint saves is what the method uses.
    """

    def __init__(self, field_name: str | None = None) -> None:
        self.field_name = field_name

    def __set_name__(self, owner: type, name: str) -> None:
        self.field_name = self.field_name or name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        return self if obj is None else getattr(obj.config, self.field_name)

    def __set__(self, obj: Any, value: Any) -> None:
        tp = typing.get_type_hints(type(obj.config))[self.field_name]
        setattr(obj.config, self.field_name, coerce(value, tp, self.field_name))
        obj.config.validate()
