"""Keep credentials out of text: URLs with `user:password@`, and pydantic validation errors.

Pydantic's own `ValidationError` text quotes the input of every failing field (and, for a
model-level rule, the whole input dict, passwords included), so no such text may reach a
terminal or a log: `validation_summary` names fields and error types instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import BaseModel, ValidationError

MASK = "**********"
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]*)@")


@dataclass(frozen=True)
class UrlCredentials:
    """A URL split into the address (no userinfo) and the credentials it carried, if any."""

    url: str
    username: str | None
    password: str | None

    @property
    def present(self) -> bool:
        return self.username is not None or self.password is not None


def split_url_credentials(url: str) -> UrlCredentials:
    """`http://user:pa%40ss@host:8123/x` -> (`http://host:8123/x`, 'user', 'pa@ss')."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return UrlCredentials(url, None, None)
    userinfo, _, address = parts.netloc.rpartition("@")
    username, has_password, password = userinfo.partition(":")
    return UrlCredentials(urlunsplit(parts._replace(netloc=address)),
                          unquote(username) if username else None,
                          unquote(password) if has_password else None)


def mask_url(text: str) -> str:
    """Every `scheme://userinfo@` inside `text` with the userinfo masked."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)


def is_sensitive(model: type[BaseModel], field: str) -> bool:
    """A secret (SecretStr) or a URL (may carry userinfo): its input is never shown."""
    info = model.model_fields.get(field)
    secret = info is not None and "SecretStr" in str(info.annotation)
    return secret or field.endswith("_url")


def validation_summary(model: type[BaseModel], error: ValidationError, env_prefix: str) -> str:
    """One line per error: the field, its variable and the error type, never the input.

    For a non-sensitive field pydantic's short message is added (it states the rule, e.g.
    "greater than or equal to 1", not the value); a model-level rule's message is our own."""
    lines = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(part) for part in item["loc"])
        if not field:
            lines.append(f"  {item['msg'].removeprefix('Value error, ')}")
        elif is_sensitive(model, field):
            lines.append(f"  {field} ({env_prefix}{field.upper()}): {item['type']}")
        else:
            lines.append(f"  {field} ({env_prefix}{field.upper()}): {item['type']}: "
                         f"{item['msg']}")
    return "invalid configuration:\n" + "\n".join(lines)
