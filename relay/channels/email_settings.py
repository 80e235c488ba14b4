"""The settings of an email channel (``type: email``), apart from the channel: checking a config
does not load aiosmtplib."""

from __future__ import annotations

import email.utils
from typing import ClassVar, Literal, Self

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from relay.channels.base import ChannelSettings
from relay.confmodel import Duration, Security

__all__ = ["EmailSettings"]


def _address_domain(value: str) -> str:
    _, address = email.utils.parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or "." not in domain:
        raise ValueError(f"not an email address: {value!r}")
    return domain.lower()


class EmailSettings(ChannelSettings):
    model_config = ConfigDict(populate_by_name=True)

    type: Literal["email"]
    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Security = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    cc: list[str] = Field(default_factory=list)
    subject: str | None = None
    """A Jinja template for the subject; the renderer uses it, the channel sends message.subject."""
    timeout: Duration = 30.0

    template_fields: ClassVar[tuple[str, ...]] = ("subject",)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value.strip() or any(ch.isspace() for ch in value.strip()):
            raise ValueError("must be a host name or address")
        return value.strip()

    @field_validator("from_", "to", "cc")
    @classmethod
    def _addresses(cls, value: str | list[str]) -> str | list[str]:
        for item in [value] if isinstance(value, str) else value:
            if len(item.strip().splitlines()) > 1:
                raise ValueError("an address cannot contain line breaks")
            _address_domain(item)
        return value

    @model_validator(mode="after")
    def _login(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("set both 'username' and 'password', or neither")
        return self

    @property
    def domain(self) -> str:
        return _address_domain(self.from_)
