"""sese.023.001.11 instructions (domain/sese023.py), validated against the official XSD."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import random
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
import xmlschema

from tests.unit.test_finality import CUTOFF, Books
from tests.unit.test_netting import trade
from tradeflux.domain.sese023 import (
    MESSAGE,
    NAMESPACE,
    SettlementInstruction,
    amount_in_minor_units,
    instruction_id,
    render_instruction,
)

XSD = Path(__file__).resolve().parents[1] / "data" / "iso20022" / "sese.023.001.11.xsd"
XSD_SHA256 = "32042b1ecfd3d54ed4d3e5c54c49294c67cfd2875c57c30c7e9da33c3a83680f"
NS = {"s": NAMESPACE}
D = dt.date(2026, 11, 27)


@functools.cache
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD))


def render(quantity: str = "60", cash: str = "-596.00", **changes: str) -> SettlementInstruction:
    fields = {
        "obligation_key": "CP-001|USD|2026-11-27",
        "counterparty": "CP-001",
        "counterparty_lei": "5299007W3X0B5CI8IV57",
        "currency": "USD",
        "instrument": "HO.XNYS",
        "isin": "US0378331005",
        **changes,
    }
    return render_instruction(
        settlement_date=D, quantity=Decimal(quantity), cash=Decimal(cash), **fields
    )


def test_the_schema_is_the_official_file_named_in_its_source_note() -> None:
    assert hashlib.sha256(XSD.read_bytes()).hexdigest() == XSD_SHA256
    assert schema().target_namespace == f"urn:iso:std:iso:20022:tech:xsd:{MESSAGE}"
    assert MESSAGE == "sese.023.001.11"


def test_a_receipt_against_payment_validates_and_says_what_we_receive_and_pay() -> None:
    instruction = render()
    assert instruction.status == "READY" and instruction.reason == ""
    schema().validate(instruction.document)
    doc = schema().to_dict(instruction.document)
    body = doc["SctiesSttlmTxInstr"]
    assert body["TxId"] == instruction.instruction_id
    assert body["SttlmTpAndAddtlParams"] == {"SctiesMvmntTp": "RECE", "Pmt": "APMT"}
    assert body["TradDtls"] == {"SttlmDt": {"Dt": {"Dt": "2026-11-27"}}}
    assert body["FinInstrmId"] == {"ISIN": "US0378331005", "Desc": "HO.XNYS"}
    assert body["QtyAndAcctDtls"]["SttlmQty"]["Qty"]["Unit"] == Decimal(60)
    assert body["SttlmParams"]["SctiesTxTp"] == {"Cd": "NETT"}
    assert body["DlvrgSttlmPties"]["Pty1"] == {
        "Id": {"PrtryId": {"Id": "CP-001", "Issr": "TRADEFLUX"}},
        "LEI": "5299007W3X0B5CI8IV57",
    }
    assert body["SttlmAmt"] == {
        "Amt": {"$": Decimal("596.00"), "@Ccy": "USD"},
        "CdtDbtInd": "DBIT",
    }


def test_a_delivery_free_of_payment_names_the_counterparty_as_receiving_party() -> None:
    instruction = render(quantity="-25", cash="0.004")  # rounds to 0.00: free of payment
    assert (instruction.movement, instruction.payment, instruction.amount) == ("DELI", "FREE", None)
    schema().validate(instruction.document)
    body = schema().to_dict(instruction.document)["SctiesSttlmTxInstr"]
    assert "SttlmAmt" not in body and "DlvrgSttlmPties" not in body
    assert body["RcvgSttlmPties"]["Pty1"]["Id"]["PrtryId"]["Id"] == "CP-001"
    assert body["QtyAndAcctDtls"]["SttlmQty"]["Qty"]["Unit"] == Decimal(25)


def test_amounts_are_rounded_half_even_to_the_currencys_minor_units() -> None:
    assert amount_in_minor_units(Decimal("1000.125"), "USD") == Decimal("1000.12")
    assert amount_in_minor_units(Decimal("1000.135"), "USD") == Decimal("1000.14")
    assert amount_in_minor_units(Decimal("150000.5"), "JPY") == Decimal(150000)
    instruction = render(cash="150001.5", currency="JPY")
    assert instruction.amount == Decimal(150002)
    schema().validate(instruction.document)
    assert '<Amt Ccy="JPY">150002</Amt>' in instruction.document


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("s:SctiesSttlmTxInstr/s:TxId", "the transaction id is required"),
        ("s:SctiesSttlmTxInstr/s:TradDtls/s:SttlmDt", "the settlement date is required"),
        ("s:SctiesSttlmTxInstr/s:SttlmParams", "the settlement parameters are required"),
    ],
)
def test_a_document_without_a_required_element_fails_the_official_schema(
    path: str, why: str
) -> None:
    root = ET.fromstring(render().document)  # noqa: S314 - our own document
    parent_path, _, child = path.rpartition("/")
    parent = root.find(parent_path, NS)
    assert parent is not None, why
    element = parent.find(child, NS)
    assert element is not None, why
    parent.remove(element)
    mutated = ET.tostring(root, encoding="unicode")
    assert not schema().is_valid(mutated), why
    error = next(schema().iter_errors(mutated))
    assert child.removeprefix("s:") in str(error)


def test_a_mutated_value_outside_its_pattern_fails_the_official_schema() -> None:
    document = render().document.replace("<ISIN>US0378331005</ISIN>", "<ISIN>US03783310</ISIN>")
    assert not schema().is_valid(document)


def test_figures_the_message_cannot_carry_give_a_rejected_instruction_not_an_error() -> None:
    too_big = render(quantity="1" + "0" * 18)
    assert (too_big.status, too_big.document) == ("REJECTED", "")
    assert "more digits than sese.023 carries" in too_big.reason
    assert render(cash="1E+17").status == "REJECTED"
    assert render(cash="1E+80").status == "REJECTED"  # too big even to round
    assert "not an ISIN" in render(isin="XX").reason
    assert render(counterparty_lei="not-a-lei").status == "READY"  # the LEI is left out


def test_the_instruction_id_is_short_stable_and_unique_per_obligation_and_instrument() -> None:
    a = instruction_id("CP-001|USD|2026-11-27", "HO.XNYS", D)
    assert a == instruction_id("CP-001|USD|2026-11-27", "HO.XNYS", D)
    assert a != instruction_id("CP-001|USD|2026-11-27", "FA.XNYS", D)
    assert a.startswith("TF20261127") and len(a) <= 35


def test_every_instruction_of_a_random_settlement_day_validates() -> None:
    rng = random.Random(7)
    books = Books()
    events = []
    for n in range(300):
        event = trade(
            f"T{n}",
            side=rng.choice(["BUY", "SELL"]),
            quantity=str(rng.randint(1, 5000)),
            price=f"{rng.randint(1, 99999) / 100:.2f}",
            instrument=rng.choice(["AAPL", "MSFT"]),
            counterparty=rng.choice(["CP1", "CP2"]),
        )
        events.append(msgspec.structs.replace(event, ingest_time=CUTOFF - dt.timedelta(hours=1)))
    book = books.batch([*events, CUTOFF])
    documents = [v for kind, _, v in book.issued if kind == "instruction"]
    assert len(documents) == 4
    for instruction in documents:
        assert instruction.status == "READY"
        schema().validate(instruction.document)
