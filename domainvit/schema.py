"""The base class of every config section, shared by the engine and the task packages.

It lives apart from :mod:`domainvit.config` because that module needs the task registry
(to build a run's schema from its task), while the tasks need only this base class to
declare their ``data:`` and ``model:`` sections; importing it loads no task.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel"]


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
