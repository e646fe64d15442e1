"""The forms that open an item for a customer: log a fault, open a ticket, place an order.

Pure.  Each form is the API's body of its kind (``POST /api/faults``, tickets,
orders: the event catalogue's payload fields of ``fault.reported``,
``ticket.opened``, ``order.received``) drawn as inputs by the same
:func:`~handlers.web.next_steps.form_inputs` as a step's form, with what of
the customer's archive the kind takes offered to pick instead of typed:

* a fault's ``service`` and ``circuit_id``: one of the customer's services and
  circuits (a radio button each; a typed service for a customer with none);
* an order's ``sites``: the addresses of the customer's services (a box
  each), and another address typed.

A ticket takes neither.  :func:`form_body` turns a posted form into the API's
body; checking it is the API's (``handlers/api/item_creation.new_item_event``),
and a field it refuses is shown next to the input that holds it
(:func:`problem_input`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from multidict import MultiMapping

from handlers.api.actions import CREATIONS, Creation
from handlers.web.next_steps import FormField, form_inputs, read_inputs
from schemas.event_catalogue import EVENT_TYPES

Pick = Literal["service", "sites"]

#: kind -> what of the archive its form offers to pick, and the body's fields the pick fills
_PICKS: Mapping[str, tuple[Pick, tuple[str, ...]]] = {
    "fault": ("service", ("service", "circuit_id")),
    "order": ("sites", ("sites",)),
}
#: optional fields each form asks for all the same (a fault's priority follows from its severity)
_ASKED: Mapping[str, tuple[str, ...]] = {
    "fault": ("location",),
    "ticket": ("description",),
    "order": ("bandwidth",),
}
#: the typed service of a fault for a customer whose archive lists none
_TYPED_SERVICE = FormField(
    "service", "text", True, max_length=EVENT_TYPES["fault.reported"]["service"].max_length
)
#: sites an order's form takes at most (the catalogue's bound)
MAX_SITES = EVENT_TYPES["order.received"]["sites"].max_items or 32


@dataclass(frozen=True, slots=True)
class NewItemForm:
    """One kind's form: how the API opens one, the inputs typed or chosen, and what is picked."""

    creation: Creation
    inputs: tuple[FormField, ...]
    pick: Pick | None
    #: the body's fields the pick fills (a refusal naming one is shown next to the pick)
    picked_fields: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return self.creation.kind

    def inputs_for(self, services: Sequence[Mapping[str, Any]]) -> tuple[FormField, ...]:
        """The inputs for a customer with these services: a fault's typed service if there are none."""
        if self.pick == "service" and not services:
            return (_TYPED_SERVICE, *self.inputs)
        return self.inputs

    def focused(self, services: Sequence[Mapping[str, Any]], problem: str | None) -> str | None:
        """The input that gets the focus: the one refused, else the first text to type."""
        names = [f.name for f in self.inputs_for(services)]
        if problem in names:
            return problem
        return next((f.name for f in self.inputs_for(services) if f.kind == "text" and f.required), None)


def _form(kind: str) -> NewItemForm:
    creation = CREATIONS[kind]
    pick, taken = _PICKS.get(kind, (None, ()))
    fields = {n: f for n, f in EVENT_TYPES[creation.event_type].items() if n not in taken}
    return NewItemForm(creation, form_inputs(fields, _ASKED.get(kind, ())), pick, taken)


#: kind -> its form, in the order the customer's page offers them
NEW_ITEM_FORMS: Mapping[str, NewItemForm] = {kind: _form(kind) for kind in CREATIONS}


def site_addresses(services: Sequence[Mapping[str, Any]]) -> list[str]:
    """The distinct addresses of the customer's services, in the archive's order: an order's sites."""
    found: list[str] = []
    for service in services:
        address = str(service.get("address") or "").strip()
        if address and address not in found:
            found.append(address)
    return found


def _index(value: object, size: int) -> int | None:
    text = str(value).strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 4 and int(text) < size else None


def form_body(
    spec: NewItemForm, customer_id: str, form: MultiMapping[Any], services: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The API's body of a posted form: the inputs' values, and the picks as the fields they fill.

    A pick that names no service (a forged index) fills nothing: the API then
    refuses the missing field, which the page shows next to the pick.
    """
    body: dict[str, Any] = {"customer_id": customer_id, **read_inputs(spec.inputs_for(services), form)}
    if spec.pick == "service" and services:
        picked = _index(form.get("service_pick", ""), len(services))
        if picked is not None:
            chosen = services[picked]
            body["service"] = chosen.get("service")
            if chosen.get("circuit_id"):
                body["circuit_id"] = chosen["circuit_id"]
    elif spec.pick == "sites":
        addresses = site_addresses(services)
        sites = [
            addresses[i]
            for i in (_index(v, len(addresses)) for v in form.getall("site", []))
            if i is not None
        ]
        other = str(form.get("site_other", "")).strip()
        if other:
            sites.append(other)
        unique = list(dict.fromkeys(sites))
        if unique:
            # more than the catalogue allows is sent as it is: its refusal names the field
            body["sites"] = [{"address": a} for a in unique[: MAX_SITES + 1]]
    return body


def given_values(
    spec: NewItemForm, form: MultiMapping[Any], services: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """What the user gave, to fill the form again when it is refused."""
    given: dict[str, Any] = {f.name: str(form.get(f.name, ""))[:20000] for f in spec.inputs_for(services)}
    given["service_pick"] = str(form.get("service_pick", ""))[:8]
    given["site"] = [str(v)[:8] for v in form.getall("site", [])][: MAX_SITES + 1]
    given["site_other"] = str(form.get("site_other", ""))[:2000]
    return given


_NAME = re.compile(r"[a-z_]{1,40}")


def problem_input(field: str | None) -> str:
    """The body's field a refusal names, as the form's name for it: ``sites[0].address`` is ``sites``;
    ``body`` when it names none."""
    found = _NAME.match(field or "")
    return found.group(0) if found else "body"


def placed(spec: NewItemForm, services: Sequence[Mapping[str, Any]], problem: str | None) -> bool:
    """Whether the form has a place for the problem's message next to an input or a pick."""
    names = {f.name for f in spec.inputs_for(services)}
    return problem is not None and (
        problem in names or (spec.pick is not None and problem in spec.picked_fields)
    )
