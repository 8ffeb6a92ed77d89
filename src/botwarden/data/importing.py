"""Import 1-minute bars from a CSV file or a Databento DBN file into the bar store.

Both readers turn their file into one frame (see `validation`), so the rules are the same
whatever the source; the store's upsert makes a repeated import change nothing.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from botwarden.data.bar_store import BarStore, MergeResult
from botwarden.data.validation import VALUES, ValidationReport, validate_bars
from botwarden.domain.errors import DomainError
from botwarden.domain.instruments import get_instrument

TIME_COLUMNS = ("time", "timestamp", "ts", "datetime", "date")
CSV_DATASET = "CSV"
# ISO 8601 with "T" or a space; %#z reads "Z", "+00:00" and "+0000"; %.f is optional.
_AWARE_FORMATS = tuple(
    f"%Y-%m-%d{sep}%H:%M{secs}%#z" for sep in ("T", " ") for secs in (":%S%.f", "")
)
_NAIVE_FORMATS = tuple(f"%Y-%m-%d{sep}%H:%M{secs}" for sep in ("T", " ") for secs in (":%S%.f", ""))
# A vendor's contract code: root, month letter, one or two year digits (MESM4, MESM24).
_CONTRACT = re.compile(r"^([A-Z0-9]+?)[FGHJKMNQUVXZ]\d{1,2}$")


@dataclass(frozen=True, slots=True)
class ImportReport:
    path: Path
    symbol: str
    dataset: str
    provider: str
    validation: ValidationReport
    merge: MergeResult


def import_file(
    store: BarStore,
    path: Path,
    symbol: str,
    *,
    file_format: str | None = None,
    dataset: str | None = None,
    contract: str | None = None,
    naive_tz: str = "UTC",
) -> ImportReport:
    """Read, validate and upsert one file. `file_format` is "csv" or "dbn" (default: from
    the file name); `contract` picks one instrument of a DBN file holding several;
    `naive_tz` is the zone of CSV times written without an offset."""
    symbol = get_instrument(symbol).symbol
    path = Path(path)
    if not path.is_file():
        raise DomainError("FILE_NOT_FOUND", f"{path} does not exist", "Check the path.", status=404)
    kind = file_format or _format_of(path)
    if kind == "csv":
        frame, provider, label = read_csv(path, naive_tz=naive_tz), "csv", "line"
        dataset = dataset or CSV_DATASET
    elif kind == "dbn":
        frame, file_dataset = read_dbn(path, symbol, contract=contract)
        provider, label = "databento", "record"
        dataset = dataset or file_dataset
    else:
        raise DomainError(
            "UNSUPPORTED_FORMAT",
            f"unknown file format {kind!r}",
            "Use --format csv or --format dbn.",
            status=422,
        )
    bars, report = validate_bars(frame, symbol, location_label=label)
    merge = store.write(bars, dataset=dataset, provider=provider, synthetic=False)
    return ImportReport(path, symbol, dataset, provider, report, merge)


def _format_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".dbn", ".dbn.zst")):
        return "dbn"
    if name.endswith((".csv", ".csv.gz", ".txt")):
        return "csv"
    raise DomainError(
        "UNSUPPORTED_FORMAT",
        f"cannot tell the format of {path.name}",
        "Name the file *.csv or *.dbn[.zst], or pass --format.",
        status=422,
    )


# ---- CSV ----


def read_csv(path: Path, *, naive_tz: str = "UTC") -> pl.DataFrame:
    """The CSV as a validation frame. Line numbers count the header as line 1 and assume one
    record per line (no quoted line breaks)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = [name.strip().lower() for name in next(csv.reader(handle), [])]
    time_column = next((name for name in TIME_COLUMNS if name in header), None)
    missing = [name for name in VALUES if name not in header]
    if time_column is None or missing:
        wanted = missing + ([] if time_column else ["time (or timestamp)"])
        raise DomainError(
            "CSV_MISSING_COLUMNS",
            f"{path.name} lacks the column(s) {', '.join(wanted)}; header is {header}",
            "Give the CSV a header: time,open,high,low,close,volume.",
            status=422,
        )
    # One spare column catches lines with more fields than the header.
    names = [f"c{i}" for i in range(len(header) + 1)]
    raw = pl.read_csv(
        path,
        has_header=False,
        skip_rows=1,
        schema=dict.fromkeys(names, pl.String),
        missing_columns="insert",
        truncate_ragged_lines=True,
        encoding="utf8-lossy",
    ).with_row_index("line", offset=2)
    raw = raw.filter(~pl.all_horizontal(pl.col(names).is_null()))  # blank lines

    def column(name: str) -> pl.Series:
        return raw.get_column(names[header.index(name)])

    times = parse_times(column(time_column), naive_tz)
    values = [parse_numbers(column(name)).alias(name) for name in VALUES]
    return raw.with_columns(times, *values).select(
        pl.col("line").cast(pl.Int64),
        "ts",
        *VALUES,
        pl.when(pl.col(names[-1]).is_not_null())
        .then(pl.lit(f"more than {len(header)} fields"))
        .otherwise(pl.lit(None, dtype=pl.String))
        .alias("problem"),
    )


def parse_times(text: pl.Series, naive_tz: str = "UTC") -> pl.Series:
    """Int64 ns since the epoch from ISO-8601 text (with or without an offset; without one
    the time is read in `naive_tz`) or from epoch numbers in s, ms, us or ns (told apart by
    magnitude). Unparseable, ambiguous or non-existent local times give null.

    A file nearly always uses one format, so the parser that reads most of a sample runs on
    every row and the others only on the rows it could not read: one pass, not eight."""
    text = text.str.strip_chars()
    parsers = [_parse_epoch] + [_iso_parser(f, None) for f in _AWARE_FORMATS]
    parsers += [_iso_parser(f, naive_tz) for f in _NAIVE_FORMATS] + [_parse_spelled_utc]
    sample = text.drop_nulls().head(200)
    parsers.sort(key=lambda parse: -parse(sample).count())  # stable: ties keep this order
    result = parsers[0](text)
    for parse in parsers[1:]:
        unread = (result.is_null() & text.is_not_null()).arg_true()
        if unread.is_empty():
            break
        result = result.scatter(unread, parse(text.gather(unread)))
    return result.alias("ts")


def parse_numbers(text: pl.Series) -> pl.Series:
    """Float64 from text; null where it is not a number. Padded values are stripped, but
    only those: stripping every value would double the cost of a clean file."""
    numbers = text.cast(pl.Float64, strict=False)
    unread = (numbers.is_null() & text.is_not_null()).arg_true()
    if unread.is_empty():
        return numbers
    stripped = text.gather(unread).str.strip_chars().cast(pl.Float64, strict=False)
    return numbers.scatter(unread, stripped)


def _parse_epoch(text: pl.Series) -> pl.Series:
    whole = text.cast(pl.Int64, strict=False)
    decimal = text.cast(pl.Float64, strict=False)
    size = decimal.abs()
    unit = (
        pl.when(size < 1e11).then(pl.lit(10**9, pl.Int64))
        .when(size < 1e14).then(pl.lit(10**6, pl.Int64))
        .when(size < 1e17).then(pl.lit(10**3, pl.Int64))
        .otherwise(pl.lit(1, pl.Int64))
    )
    frame = pl.DataFrame({"whole": whole, "decimal": decimal, "size": size})
    return frame.select(
        pl.coalesce(
            pl.col("whole") * unit,
            (pl.col("decimal") * unit).round(0).cast(pl.Int64, strict=False),
        )
    ).to_series()


def _iso_parser(fmt: str, naive_tz: str | None) -> Callable[[pl.Series], pl.Series]:
    """Parser for one strftime format; `naive_tz` None means the format carries an offset."""

    def parse(text: pl.Series) -> pl.Series:
        if naive_tz is None:
            moment = text.str.to_datetime(fmt, time_unit="ns", time_zone="UTC", strict=False)
        else:
            local = text.str.to_datetime(fmt, time_unit="ns", strict=False)
            zoned = local.dt.replace_time_zone(naive_tz, ambiguous="null", non_existent="null")
            moment = zoned.dt.convert_time_zone("UTC")
        return moment.cast(pl.Int64)

    return parse


def _parse_spelled_utc(text: pl.Series) -> pl.Series:
    """'2024-03-05 14:30 UTC' and the like: spell the zone as an offset, then parse."""
    spelled = text.str.replace(r"(?i)\s*utc$", "+00:00")
    found = {f: _iso_parser(f, None)(spelled) for f in _AWARE_FORMATS}
    return pl.DataFrame(found).select(pl.coalesce(pl.all())).to_series()


# ---- Databento DBN ----


def read_dbn(path: Path, symbol: str, *, contract: str | None = None) -> tuple[pl.DataFrame, str]:
    """An ohlcv-1m DBN file (plain or zstd) as a validation frame, plus its dataset name.
    Record numbers count from 1 in file order."""
    import databento

    store = databento.DBNStore.from_file(path)
    if str(store.schema) != "ohlcv-1m":
        raise DomainError(
            "UNSUPPORTED_SCHEMA",
            f"{path.name} holds {store.schema} records, not ohlcv-1m",
            "Request the ohlcv-1m schema from Databento.",
            status=422,
        )
    records = store.to_df(pretty_ts=False, price_type="float", map_symbols=True)
    frame = pl.from_pandas(records.reset_index()).with_row_index("line", offset=1)
    raw_symbols = frame.get_column("symbol").cast(pl.String).fill_null("").unique().to_list()
    wanted = contract or _single_symbol(raw_symbols, path)
    if wanted not in raw_symbols:
        raise DomainError(
            "DBN_CONTRACT_NOT_FOUND",
            f"{path.name} has no records for {wanted!r}",
            f"Choose one of {', '.join(sorted(raw_symbols))}.",
            status=422,
        )
    _check_root(wanted, symbol)
    frame = frame.filter(pl.col("symbol").cast(pl.String).fill_null("") == wanted)
    return frame.select(
        pl.col("line").cast(pl.Int64),
        pl.col("ts_event").cast(pl.Int64).alias("ts"),
        *(pl.col(name).cast(pl.Float64).alias(name) for name in VALUES),
    ), store.dataset


def _single_symbol(raw_symbols: list[str], path: Path) -> str:
    if len(raw_symbols) == 1:
        return raw_symbols[0]
    raise DomainError(
        "DBN_MULTIPLE_INSTRUMENTS",
        f"{path.name} holds {len(raw_symbols)} instruments: {', '.join(sorted(raw_symbols))}",
        "Pick one with --contract (or request a continuous symbol such as MES.c.0).",
        status=422,
    )


def _check_root(raw_symbol: str, symbol: str) -> None:
    """Refuse a contract of another product (MNQ bars imported as MES)."""
    head = raw_symbol.split(".", 1)[0]
    match = _CONTRACT.match(head)
    root = match.group(1) if match else head
    if root and root.isalpha() and root != symbol:
        raise DomainError(
            "DBN_SYMBOL_MISMATCH",
            f"{raw_symbol} is a {root} contract, not {symbol}",
            f"Import it with --symbol {root}, or pick a {symbol} contract.",
            status=422,
        )
