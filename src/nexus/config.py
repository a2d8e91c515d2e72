"""Settings: environment over defaults (``NEXUS_HOME``, ``NEXUS_DURABILITY``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where Nexus keeps its state and how durably it writes."""

    model_config = SettingsConfigDict(env_prefix="NEXUS_", extra="ignore")

    home: Path = Field(default=Path(".nexus"), description="state directory")
    durability: Literal["normal", "full"] = Field(
        default="normal",
        description="'normal' survives a killed process; 'full' also survives power loss",
    )

    @property
    def db_path(self) -> Path:
        return self.home / "nexus.db"
