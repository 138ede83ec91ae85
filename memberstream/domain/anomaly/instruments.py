"""What a member pays with, ships to and orders from: the references of its paid orders.

A platform may send, with each :class:`~memberstream.schemas.events.PurchaseEvent`, opaque
references it chose and hashed itself: ``payment_ref`` (the card or wallet token),
``shipping_ref`` (the normalized shipping address) and ``device_ref`` (the device or session
fingerprint). They are never the card, the address or the fingerprint, only stable tokens:
the same instrument always gives the same reference. A member's :class:`RefHistory` keeps
the last ``refs_kept`` references of each kind it used on paid orders (most recent last)
and how many of its paid orders carried a ``payment_ref``.

The detectors ask which of an order's references are new (:meth:`RefHistory.new`): the
order carries one the member's list of that kind does not hold. Two uses
(:mod:`memberstream.domain.anomaly.member_detectors`):

- order_value_outlier: an order on a new card that also ships to a new address or comes
  from a new device is what an account takeover looks like; once the member has
  ``new_instrument_min_orders`` orders with a ``payment_ref`` (not counting an order on a
  card new to a member that has cards, as card testers place them), such an order is held to
  ``new_instrument_min_total`` instead of ``min_total`` (:meth:`RefHistory.takeover_refs`).
  A kind counts there only when the member has references of it already, so a platform
  that starts sending device references does not make every device new, and a member
  whose orders never carried references is judged exactly as before.
- order_velocity: each distinct new ``payment_ref`` in the window counts like a tiny order
  (card testing tries several cards, whatever the amount).

An order that meets the order-value outlier condition teaches neither its total nor its
references: a thief's card does not become the member's own by being used.

Plain data, stored with orjson inside the member's anomaly state (:meth:`RefHistory.to_dict`),
bounded by :data:`MAX_REFS` per kind.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memberstream.schemas.events import PurchaseEvent

__all__ = ["MAX_REFS", "ORDERS_CAP", "REF_KINDS", "RefHistory", "carried"]

REF_KINDS: tuple[str, ...] = ("payment", "shipping", "device")
"""Kinds of reference, in the order details name them."""
MAX_REFS = 16
"""References kept per kind at most (upper bound of ``AnomalySettings.refs_kept``)."""
ORDERS_CAP = 1_000
"""The count of orders with a payment reference stops here (it is only compared with
``new_instrument_min_orders``)."""
_KEYS = {"payment": "p", "shipping": "s", "device": "d"}


def _refs_deque() -> deque[str]:
    return deque(maxlen=MAX_REFS)


def carried(event: PurchaseEvent) -> dict[str, str]:
    """Kind -> reference, for the references ``event`` carries."""
    refs = (event.payment_ref, event.shipping_ref, event.device_ref)
    return {kind: ref for kind, ref in zip(REF_KINDS, refs, strict=True) if ref is not None}


@dataclass(eq=False)
class RefHistory:
    """The member's last references per kind, most recent last (see the module doc)."""

    payment: deque[str] = field(default_factory=_refs_deque)
    shipping: deque[str] = field(default_factory=_refs_deque)
    device: deque[str] = field(default_factory=_refs_deque)
    orders: int = 0
    """Paid orders learned that carried a payment reference and counted (up to
    :data:`ORDERS_CAP`; the detectors leave out an order on a card new to a member that
    has cards)."""

    def __bool__(self) -> bool:
        return bool(self.orders or self.payment or self.shipping or self.device)

    def kind(self, name: str) -> deque[str]:
        return getattr(self, name)  # type: ignore[no-any-return]

    def new(self, event: PurchaseEvent) -> tuple[str, ...]:
        """Kinds whose reference ``event`` carries and the member has not used (with no
        history of a kind, its reference is new), in :data:`REF_KINDS` order."""
        return tuple(k for k, ref in carried(event).items() if ref not in self.kind(k))

    def takeover_refs(self, new: tuple[str, ...], min_orders: int) -> bool:
        """A new payment reference with a new shipping or device reference, each against a
        history of its kind, for a member with ``min_orders`` orders that carried one."""
        if self.orders < min_orders or "payment" not in new:
            return False
        return any(k in new and self.kind(k) for k in ("shipping", "device"))

    def learn(self, event: PurchaseEvent, kept: int, counts: bool = True) -> None:
        """Remember the paid order's references (a known one moves to the end); ``counts``:
        the order counts in :attr:`orders` if it carries a payment reference."""
        refs = carried(event)
        for name, ref in refs.items():
            history = self.kind(name)
            if ref in history:
                history.remove(ref)
            history.append(ref)
            while len(history) > kept:
                history.popleft()
        if counts and "payment" in refs:
            self.orders = min(self.orders + 1, ORDERS_CAP)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {_KEYS[k]: list(self.kind(k)) for k in REF_KINDS if self.kind(k)}
        if self.orders:
            d["n"] = self.orders
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RefHistory:
        state = cls(orders=min(int(data.get("n", 0)), ORDERS_CAP))
        for name in REF_KINDS:
            state.kind(name).extend(str(r) for r in data.get(_KEYS[name], ()))
        return state
