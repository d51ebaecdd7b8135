"""Signed, expiring click tokens: what an ad slot carries from the decision to its events.

A token is ``payload.signature``, both base64url: the payload is compact JSON naming the
decision, slot, campaign, item, the auction's price per click and what the engine predicted;
the signature is HMAC-SHA256 of the payload under the service's secret. Every process that
shares the secret can check a token without a database lookup, and nobody without the secret can
make one that charges a campaign, or change the price of one.
"""

from __future__ import annotations

import base64
import hmac
import json
from dataclasses import dataclass

_VERSION = 1
_json_string = json.JSONEncoder(ensure_ascii=True).encode


class TokenError(ValueError):
    """The token is malformed, forged or expired."""


@dataclass(frozen=True, slots=True)
class ClickToken:
    decision_id: str
    slot: int
    campaign_id: int
    item_id: int
    price: float
    pcvr: float
    value: float
    surface: str
    user_id: str | None
    expires_at: float


class TokenSigner:
    """Signs and checks click tokens with one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the token secret needs at least 16 bytes")
        self._secret = secret

    def sign(self, token: ClickToken) -> str:
        return self.sign_fields(
            token.decision_id,
            token.slot,
            token.campaign_id,
            token.item_id,
            token.price,
            token.pcvr,
            token.value,
            token.surface,
            token.user_id,
            token.expires_at,
        )

    def sign_fields(
        self,
        decision_id: str,
        slot: int,
        campaign_id: int,
        item_id: int,
        price: float,
        pcvr: float,
        value: float,
        surface: str,
        user_id: str | None,
        expires_at: float,
    ) -> str:
        """``sign`` of the ``ClickToken`` with these fields, in its field order, without making
        one: this runs for every ad served. The JSON is formatted by hand (``repr`` of a finite
        float is JSON's spelling of it), as json.dumps costs more than the signature."""
        user = "null" if user_id is None else _json_string(user_id)
        body = (
            f"[{_VERSION},{_json_string(decision_id)},{slot:d},{campaign_id:d},{item_id:d},"
            f'{price!r},{pcvr!r},{value!r},"{surface}",{user},{expires_at!r}]'
        )
        payload = _b64(body.encode())
        return f"{payload}.{_b64(self._mac(payload))}"

    def verify(self, text: str, *, now: float) -> ClickToken:
        """The token's contents, if it is genuine and not expired; else ``TokenError``."""
        payload, dot, signature = text.partition(".")
        if not dot or not payload or not signature:
            raise TokenError("malformed click token")
        try:
            given = _unb64(signature)
        except ValueError:
            raise TokenError("malformed click token") from None
        if not hmac.compare_digest(given, self._mac(payload)):
            raise TokenError("click token signature does not match")
        try:
            fields = json.loads(_unb64(payload))
            version, *values = fields
            if version != _VERSION:
                raise TokenError(f"unknown click token version {version!r}")
            token = ClickToken(*values)
        except (ValueError, TypeError) as exc:
            raise TokenError("malformed click token") from exc
        if token.expires_at < now:
            raise TokenError("click token expired")
        return token

    def _mac(self, payload: str) -> bytes:
        return hmac.digest(self._secret, payload.encode(), "sha256")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError("not base64url") from exc
