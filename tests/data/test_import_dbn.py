"""Databento DBN import, from real DBN bytes made by databento_dbn's own encoder."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from types import SimpleNamespace

import databento_dbn as dbn
import pytest
import zstandard

from botwarden.data.bar_store import BarStore, MergeResult
from botwarden.data.importing import import_file
from botwarden.domain.errors import DomainError

from .builders import NS_MIN, ns

PRICE_SCALE = 1_000_000_000  # DBN prices are fixed-point, 1e-9 units
T0 = ns("2024-03-05 14:30")


def encode_dbn(
    records: list[tuple[int, int, float, float, float, float, int]],
    symbols: dict[int, str],
    schema: dbn.Schema = dbn.Schema.OHLCV_1M,
) -> bytes:
    """A DBN stream: metadata (with instrument-id -> contract mappings) then OHLCV records,
    each encoded by databento_dbn itself."""
    mappings = [
        SimpleNamespace(raw_symbol=raw, intervals=[SimpleNamespace(
            start_date=date(2024, 3, 1), end_date=date(2024, 3, 31), symbol=str(iid))])
        for iid, raw in symbols.items()
    ]
    metadata = dbn.Metadata(
        dataset="GLBX.MDP3",
        start=T0,
        end=T0 + 24 * 60 * NS_MIN,
        stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID,
        schema=schema,
        symbols=sorted(symbols.values()),
        mappings=mappings,
    )
    body = b"".join(
        bytes(dbn.OHLCVMsg(
            rtype=dbn.RType.OHLCV_1M, publisher_id=1, instrument_id=iid, ts_event=ts,
            open=round(o * PRICE_SCALE), high=round(h * PRICE_SCALE),
            low=round(lo * PRICE_SCALE), close=round(c * PRICE_SCALE), volume=v))
        for iid, ts, o, h, lo, c, v in records
    )
    return metadata.encode() + body


RECORDS = [
    (42, T0, 5000.00, 5001.00, 4999.50, 5000.50, 10),
    (42, T0 + NS_MIN, 5000.50, 5001.25, 5000.00, 5001.00, 12),
    (42, T0 + 2 * NS_MIN, 5001.00, 5001.10, 5000.00, 5000.75, 8),  # high off the grid
    (42, T0 + 3 * NS_MIN, 5000.75, 5000.00, 4999.75, 5000.50, 8),  # high below open
    (42, T0 + 4 * NS_MIN, 5000.50, 5002.00, 5000.25, 5001.75, 30),
    (42, T0 + 5 * NS_MIN, 5001.75, 5002.00, 5001.00, 5001.25, 0),
]


def test_dbn_import_validates_records_and_is_idempotent(store: BarStore, tmp_path: Path) -> None:
    path = tmp_path / "mes.dbn"
    path.write_bytes(encode_dbn(RECORDS, {42: "MESH4"}))
    report = import_file(store, path, "MES")
    assert (report.dataset, report.provider) == ("GLBX.MDP3", "databento")
    check = report.validation
    assert (check.rows_read, check.rows_accepted) == (6, 4)
    assert check.rejected_by_reason == {"high off the 0.25 tick grid": 1,
                                        "high below open/close": 1}
    assert [(r.location, r.reason) for r in check.examples] == [
        (3, "high off the 0.25 tick grid"), (4, "high below open/close")]
    assert "record 3 (high off the 0.25 tick grid)" in check.summary()

    bars = store.load("MES", dataset="GLBX.MDP3")
    assert bars.ts.tolist() == [T0, T0 + NS_MIN, T0 + 4 * NS_MIN, T0 + 5 * NS_MIN]
    assert bars.close.tolist() == [5000.50, 5001.00, 5001.75, 5001.25]
    assert bars.volume.tolist() == [10, 12, 30, 0]
    assert not store.dataset_info("GLBX.MDP3").synthetic

    assert import_file(store, path, "MES").merge == MergeResult(unchanged=4)


def test_zstd_compressed_dbn_files_import_the_same(store: BarStore, tmp_path: Path) -> None:
    path = tmp_path / "mes.dbn.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(encode_dbn(RECORDS, {42: "MESH4"})))
    assert import_file(store, path, "MES").validation.rows_accepted == 4


def test_a_file_with_several_contracts_needs_a_choice(store: BarStore, tmp_path: Path) -> None:
    records = RECORDS[:2] + [(43, T0, 5050.00, 5051.00, 5049.50, 5050.50, 3)]
    path = tmp_path / "two.dbn"
    path.write_bytes(encode_dbn(records, {42: "MESH4", 43: "MESM4"}))
    with pytest.raises(DomainError) as caught:
        import_file(store, path, "MES")
    assert caught.value.code == "DBN_MULTIPLE_INSTRUMENTS"
    assert "MESH4" in caught.value.message and "MESM4" in caught.value.message
    report = import_file(store, path, "MES", contract="MESM4")
    assert report.validation.rows_accepted == 1
    assert store.load("MES").close.tolist() == [5050.50]


def test_another_products_contract_is_refused(store: BarStore, tmp_path: Path) -> None:
    path = tmp_path / "mnq.dbn"
    path.write_bytes(encode_dbn(RECORDS[:1], {42: "MNQH4"}))
    with pytest.raises(DomainError) as caught:
        import_file(store, path, "MES")
    assert caught.value.code == "DBN_SYMBOL_MISMATCH"


def test_other_schemas_are_refused(store: BarStore, tmp_path: Path) -> None:
    path = tmp_path / "trades.dbn"
    path.write_bytes(encode_dbn([], {42: "MESH4"}, schema=dbn.Schema.TRADES))
    with pytest.raises(DomainError) as caught:
        import_file(store, path, "MES")
    assert caught.value.code == "UNSUPPORTED_SCHEMA"
