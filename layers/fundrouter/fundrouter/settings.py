"""Settings read from the environment once per container and validated, so a
missing variable stops the cold start with a clear message instead of a "" later."""

import os
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class MissingSetting(RuntimeError):
    pass


class TableSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    orders_table_name: str = Field(alias="ORDERS_TABLE_NAME", min_length=3)
    lines_table_name: str = Field(alias="LINES_TABLE_NAME", min_length=3)

    @classmethod
    def from_env(cls) -> Self:
        try:
            return cls.model_validate(dict(os.environ))
        except ValidationError as error:
            names = ", ".join(str(e["loc"][0]) for e in error.errors())
            raise MissingSetting(f"environment variable(s) missing or invalid: {names}") from error
