"""The base of every pipeline config section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """One section of the pipeline config: unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")
