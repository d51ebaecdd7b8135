"""Who is calling: every request carries ``Authorization: Bearer KEY``; the operator's key is the
service's setting, merchants' keys are stored as hashes."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from quanzhan.api.runtime import Runtime
from quanzhan.store import catalog

_bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]


def _key(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise HTTPException(
            401, "missing API key: send Authorization: Bearer KEY", {"WWW-Authenticate": "Bearer"}
        )
    return credentials.credentials


def _is_operator(runtime: Runtime, key: str) -> bool:
    return hmac.compare_digest(key.encode(), runtime.settings.operator_key.encode())


async def _merchant_id(runtime: Runtime, key: str) -> int | None:
    cached = runtime.merchant_keys.get(key)
    if cached is not None:
        return cached
    found = await run_in_threadpool(_lookup, runtime, key)
    if found is not None:
        runtime.merchant_keys[key] = found
    return found


def _lookup(runtime: Runtime, key: str) -> int | None:
    with runtime.database.read() as connection:
        return catalog.merchant_by_key(connection, key)


async def require_operator(request: Request) -> Runtime:
    """The operator check without FastAPI's dependency machinery, for the hottest route: one
    header read and one comparison (the same answers as ``operator``)."""
    runtime: Runtime = request.app.state.runtime
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() == "bearer" and key and _is_operator(runtime, key):
        return runtime
    credentials = (
        HTTPAuthorizationCredentials(scheme=scheme, credentials=key)
        if scheme.lower() == "bearer" and key
        else None
    )
    await operator(runtime, credentials)
    return runtime


# Declared in the OpenAPI schema for routes that check the key themselves.
BEARER: dict[str, Any] = {"security": [{"HTTPBearer": []}]}


async def operator(runtime: RuntimeDep, credentials: Credentials) -> None:
    # Dependencies are coroutines so that the hot routes do not hop to a worker thread for them;
    # only a key that is not the operator's is looked up, in the thread pool.
    key = _key(credentials)
    if _is_operator(runtime, key):
        return
    if await _merchant_id(runtime, key) is not None:
        raise HTTPException(403, "this call needs the operator key")
    raise HTTPException(401, "unknown API key", {"WWW-Authenticate": "Bearer"})


async def merchant(runtime: RuntimeDep, credentials: Credentials) -> int:
    key = _key(credentials)
    found = await _merchant_id(runtime, key)
    if found is not None:
        return found
    if _is_operator(runtime, key):
        raise HTTPException(403, "this call needs a merchant's key")
    raise HTTPException(401, "unknown API key", {"WWW-Authenticate": "Bearer"})


class Caller:
    """A merchant (``merchant_id``) or the operator (``None``)."""

    def __init__(self, merchant_id: int | None) -> None:
        self.merchant_id = merchant_id


async def merchant_or_operator(runtime: RuntimeDep, credentials: Credentials) -> Caller:
    key = _key(credentials)
    if _is_operator(runtime, key):
        return Caller(None)
    found = await _merchant_id(runtime, key)
    if found is None:
        raise HTTPException(401, "unknown API key", {"WWW-Authenticate": "Bearer"})
    return Caller(found)


Operator = Annotated[None, Depends(operator)]
MerchantId = Annotated[int, Depends(merchant)]
AnyCaller = Annotated[Caller, Depends(merchant_or_operator)]
