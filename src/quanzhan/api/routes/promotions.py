"""The platform's promotion calendar (operator): the hours it expects busier than an ordinary day,
announced ahead, so that campaigns keep budget for them and the traffic forecast does not take
them for ordinary (``docs/service.md``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response

from quanzhan.api.auth import Operator, RuntimeDep
from quanzhan.api.schemas import MAX_ID, PromotionIn, PromotionOut
from quanzhan.store.catalog import ConflictError
from quanzhan.store.promotions import add_promotion, delete_promotion, list_promotions

router = APIRouter(prefix="/v1/promotions", tags=["operator"])


@router.post("", status_code=201, response_model=PromotionOut)
def create_promotion(body: PromotionIn, runtime: RuntimeDep, _: Operator) -> PromotionOut:
    """A window of busier traffic; the control loop reads it from its next tick. One that
    overlaps a window already on its day answers 409."""
    now = runtime.clock()
    try:
        row = runtime.database.retrying(
            lambda c: add_promotion(
                c,
                day=body.day,
                start_hour=body.start_hour,
                end_hour=body.end_hour,
                traffic_factor=body.traffic_factor,
                now=now,
            )
        )
    except ConflictError as exc:
        raise HTTPException(409, str(exc)) from None
    return PromotionOut(**row)


@router.get("", response_model=list[PromotionOut])
def get_promotions(runtime: RuntimeDep, _: Operator) -> list[PromotionOut]:
    """Every window announced, by day and start."""
    with runtime.database.read() as connection:
        return [PromotionOut(**row) for row in list_promotions(connection)]


@router.delete("/{promotion_id}", status_code=204)
def remove_promotion(
    promotion_id: Annotated[int, Path(ge=1, le=MAX_ID)], runtime: RuntimeDep, _: Operator
) -> Response:
    """Withdraw a window (a promotion called off)."""
    if not runtime.database.retrying(lambda c: delete_promotion(c, promotion_id)):
        raise HTTPException(404, f"no promotion {promotion_id}")
    return Response(status_code=204)
