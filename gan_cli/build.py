"""Turn config groups into objects. Every `instantiate` of the project goes through here,
so a bad option surfaces as one clear error naming the group instead of a stack trace, and
no config names code that gan_cli.trust does not allow."""
from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from gan_cli.errors import ConfigError, GanCliError
from gan_cli.trust import check_config


def build(group: str, node: DictConfig, **kwargs: Any) -> Any:
    """`instantiate(node, **kwargs)`; errors name `group` and the node's `_target_`.

    Every `_target_` of `node`, at any depth, must be allowed by gan_cli.trust: checked before anything is built."""
    check_config(node, "The config", path=group)
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, GanCliError):
            raise cause from None
        target = node.get("_target_", "?") if isinstance(node, DictConfig) else "?"
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(e)
        raise ConfigError(
            f"Could not build `{group}` from its config (_target_: {target}): {detail}. "
            f"Check the `{group}.*` keys against `gan train --cfg job`."
        ) from None
