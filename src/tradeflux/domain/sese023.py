"""ISO 20022 sese.023 SecuritiesSettlementTransactionInstruction, version sese.023.001.11.

docs/domain-rules.md, "Settlement instructions". One instruction per instrument of a FINAL
obligation whose net quantity is not zero: we receive (``RECE``) a net bought quantity
from the counterparty or deliver (``DELI``) a net sold one, against payment (``APMT``) of
that instrument's net cash in the obligation's currency, or free of payment (``FREE``)
when that cash rounds to zero. The amount is the net cash rounded half-even to the
currency's minor units (:data:`MINOR_UNITS`); its direction is ``CRDT`` when we receive
cash, ``DBIT`` when we pay.

The document holds what the message requires and what we know: the transaction id, the
movement and payment types, the settlement date, the ISIN, the quantity in units, the
transaction type ``NETT`` (a netted settlement), the counterparty as delivering or
receiving party 1 (its id under our issuer name, and its LEI), and the settlement
amount. Our safekeeping and cash accounts, the place of settlement (depository) and the
trade dates are left out: the account and depository come from a custodian's standing
instructions, which we do not hold, and a netted instruction has no single trade date.

Rendering is total: a figure the schema cannot carry (more than 18 digits, an ISIN or
LEI that does not match its pattern) gives an instruction with status ``REJECTED`` and a
reason instead of a document; nothing raises. The tests validate every document against
the official XSD (tests/data/iso20022/).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import xml.etree.ElementTree as ET  # noqa: S405 - we only build documents, never parse one
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Literal

import msgspec

MESSAGE = "sese.023.001.11"
NAMESPACE = f"urn:iso:std:iso:20022:tech:xsd:{MESSAGE}"
ISSUER = "TRADEFLUX"
"""The issuer of our proprietary party identifications (a counterparty's id)."""

MINOR_UNITS: dict[str, int] = {
    "BHD": 3, "CLF": 4, "IQD": 3, "ISK": 0, "JOD": 3, "JPY": 0, "KRW": 0, "KWD": 3,
    "LYD": 3, "OMR": 3, "TND": 3, "UGX": 0, "VND": 0, "XAF": 0, "XOF": 0,
}  # fmt: skip
"""ISO 4217 minor units of the currencies that do not have 2; every other one has 2."""

_MAX_DIGITS = 18  # ActiveCurrencyAndAmount and DecimalNumber: totalDigits 18
_MAX_QTY_FRACTION = 17  # DecimalNumber: fractionDigits 17
_ISIN = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")
_LEI = re.compile(r"[A-Z0-9]{18}[0-9]{2}")
_QUANTIZE = Context(prec=60, rounding=ROUND_HALF_EVEN)
ET.register_namespace("", NAMESPACE)

Movement = Literal["RECE", "DELI"]
Payment = Literal["APMT", "FREE"]
InstructionStatus = Literal["READY", "REJECTED"]


class SettlementInstruction(msgspec.Struct, frozen=True, kw_only=True):
    """One sese.023 instruction of a FINAL obligation, for one instrument.

    ``quantity`` and ``amount`` are positive; ``movement`` and ``credit_debit`` give the
    directions (``RECE``/``DELI`` securities; ``CRDT`` we receive cash, ``DBIT`` we pay).
    ``amount`` is None free of payment. ``document`` is the XML (UTF-8 text), empty when
    ``status`` is ``REJECTED`` (``reason`` says why).
    """

    instruction_id: str
    message: str = MESSAGE
    obligation_key: str
    counterparty: str
    counterparty_lei: str
    currency: str
    settlement_date: dt.date
    instrument: str
    isin: str
    movement: Movement
    payment: Payment
    quantity: Decimal
    amount: Decimal | None
    credit_debit: Literal["CRDT", "DBIT"] | None
    status: InstructionStatus
    reason: str = ""
    document: str = ""


def instruction_id(obligation_key: str, instrument: str, settlement_date: dt.date) -> str:
    """Return the instruction's TxId (at most 35 characters), the same for the same input.

    ``TF`` + the settlement date + 20 hex digits of a SHA-256 of the obligation key and
    instrument: unique per obligation and instrument, stable across replays.
    """
    digest = hashlib.sha256(f"{obligation_key}|{instrument}".encode()).hexdigest()[:20]
    return f"TF{settlement_date:%Y%m%d}{digest.upper()}"


def amount_in_minor_units(amount: Decimal, currency: str) -> Decimal | None:
    """Return ``amount`` rounded half-even to the minor units of ``currency``.

    None when it has too many digits to round (more than 50 before the point).
    """
    exponent = Decimal(1).scaleb(-MINOR_UNITS.get(currency, 2))
    try:
        return amount.quantize(exponent, context=_QUANTIZE)
    except InvalidOperation:
        return None


def render_instruction(
    *,
    obligation_key: str,
    counterparty: str,
    counterparty_lei: str,
    currency: str,
    settlement_date: dt.date,
    instrument: str,
    isin: str,
    quantity: Decimal,
    cash: Decimal,
) -> SettlementInstruction:
    """Return the instruction for one instrument of an obligation (``quantity`` not zero).

    ``quantity`` (units) and ``cash`` (in ``currency``) are the instrument's net figures
    in the obligation, signed from our side: positive we receive.
    """
    movement: Movement = "RECE" if quantity > 0 else "DELI"
    units = abs(quantity)
    rounded = amount_in_minor_units(cash, currency)
    amount = abs(cash) if rounded is None else abs(rounded)
    paid = amount != 0
    direction: Literal["CRDT", "DBIT"] | None = None
    if paid:
        direction = "CRDT" if cash > 0 else "DBIT"
    tx_id = instruction_id(obligation_key, instrument, settlement_date)
    reason = _unrepresentable(units, amount, isin, currency)
    if rounded is None:
        reason = f"amount {cash} {currency} has more digits than sese.023 carries (18)"
    document = ""
    if not reason:
        document = _document(
            tx_id=tx_id,
            movement=movement,
            settlement_date=settlement_date,
            isin=isin,
            instrument=instrument,
            units=units,
            counterparty=counterparty,
            counterparty_lei=counterparty_lei,
            amount=amount if paid else None,
            direction=direction,
            currency=currency,
        )
    return SettlementInstruction(
        instruction_id=tx_id,
        obligation_key=obligation_key,
        counterparty=counterparty,
        counterparty_lei=counterparty_lei,
        currency=currency,
        settlement_date=settlement_date,
        instrument=instrument,
        isin=isin,
        movement=movement,
        payment="APMT" if paid else "FREE",
        quantity=units,
        amount=amount if paid else None,
        credit_debit=direction,
        status="REJECTED" if reason else "READY",
        reason=reason,
        document=document,
    )


def _unrepresentable(units: Decimal, amount: Decimal, isin: str, currency: str) -> str:
    """Return why the schema cannot carry these figures, or ``""`` when it can."""
    if not _ISIN.fullmatch(isin):
        return f"ISIN {isin!r} is not an ISIN; fix the instrument's reference data"
    if not re.fullmatch(r"[A-Z]{3}", currency):
        return f"currency {currency!r} is not an ISO 4217 code"
    if _digits(units) > _MAX_DIGITS or _fraction_digits(units) > _MAX_QTY_FRACTION:
        return f"quantity {units} has more digits than sese.023 carries (18, 17 decimals)"
    if _digits(amount) > _MAX_DIGITS:
        return f"amount {amount} {currency} has more than the 18 digits sese.023 carries"
    return ""


def _digits(value: Decimal) -> int:
    """Return the digits ``value`` needs written in fixed point (no exponent)."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # noqa: S101 - finite by construction
    return max(len(digits), -exponent) if exponent < 0 else len(digits) + exponent


def _fraction_digits(value: Decimal) -> int:
    exponent = value.normalize(_QUANTIZE).as_tuple().exponent
    assert isinstance(exponent, int)  # noqa: S101 - finite by construction
    return max(0, -exponent)


def _fixed(value: Decimal) -> str:
    """Return ``value`` in fixed point, no exponent, no trailing zeros after the point."""
    return format(value.normalize(_QUANTIZE), "f")


def _document(
    *,
    tx_id: str,
    movement: Movement,
    settlement_date: dt.date,
    isin: str,
    instrument: str,
    units: Decimal,
    counterparty: str,
    counterparty_lei: str,
    amount: Decimal | None,
    direction: str | None,
    currency: str,
) -> str:
    ns = "{" + NAMESPACE + "}"

    def sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
        child = ET.SubElement(parent, ns + tag)
        if text is not None:
            child.text = text
        return child

    root = ET.Element(ns + "Document")
    instr = sub(root, "SctiesSttlmTxInstr")
    sub(instr, "TxId", tx_id)
    params = sub(instr, "SttlmTpAndAddtlParams")
    sub(params, "SctiesMvmntTp", movement)
    sub(params, "Pmt", "FREE" if amount is None else "APMT")
    trade = sub(instr, "TradDtls")
    sub(sub(sub(trade, "SttlmDt"), "Dt"), "Dt", settlement_date.isoformat())
    security = sub(instr, "FinInstrmId")
    sub(security, "ISIN", isin)
    sub(security, "Desc", instrument[:140])
    quantity = sub(instr, "QtyAndAcctDtls")
    sub(sub(sub(quantity, "SttlmQty"), "Qty"), "Unit", _fixed(units))
    settlement = sub(instr, "SttlmParams")
    sub(sub(settlement, "SctiesTxTp"), "Cd", "NETT")
    # The counterparty delivers what we receive, and receives what we deliver.
    parties = sub(instr, "DlvrgSttlmPties" if movement == "RECE" else "RcvgSttlmPties")
    party = sub(parties, "Pty1")
    proprietary = sub(sub(party, "Id"), "PrtryId")
    sub(proprietary, "Id", counterparty[:35] or "UNKNOWN")
    sub(proprietary, "Issr", ISSUER)
    if _LEI.fullmatch(counterparty_lei):
        sub(party, "LEI", counterparty_lei)
    if amount is not None and direction is not None:
        settlement_amount = sub(instr, "SttlmAmt")
        sub(settlement_amount, "Amt", format(amount, "f")).set("Ccy", currency)
        sub(settlement_amount, "CdtDbtInd", direction)
    body = ET.tostring(root, encoding="unicode", short_empty_elements=False)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
