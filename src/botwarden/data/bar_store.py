"""The bar store: 1-minute OHLCV bars in Parquet files under `Settings.data_dir`.

Layout: `bars/{dataset}/{SYMBOL}/1m/{year}.parquet` (year of the bar's UTC open time), one
file sorted by time, row groups of 64k rows so a reader can stream with flat memory.

- 1-minute bars are the only stored truth. Coarser timeframes are derived on load by
  session-aware resampling, so a 5-minute bar can never disagree with its minutes.
- The dataset is the provenance of the bars: "GLBX.MDP3" for Databento's CME feed, "SYNTH"
  for generated bars, a name the user picks for a CSV. Datasets never mix: a symbol's
  synthetic and real bars live apart, and `dataset.json` pins each dataset's provider and
  whether it is synthetic, so synthetic bars cannot be written into a real dataset.
- Writes are upserts by timestamp, atomic per file (write then rename, so a reader sees the
  old or the new file, never half of one) and serialised per series by a file lock. A write
  that changes nothing touches no file.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from botwarden.config import Settings
from botwarden.data.calendar import Timestamp, to_ns
from botwarden.data.resample import resample, timeframe_ns
from botwarden.domain.bars import I64, Bars
from botwarden.domain.errors import DomainError
from botwarden.domain.instruments import get_instrument

STORED_TIMEFRAME = "1m"
SYNTHETIC_DATASET = "SYNTH"
ROW_GROUP_ROWS = 65_536
_PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
_SCHEMA = pa.schema(
    [("ts", pa.timestamp("ns", tz="UTC"))] + [(name, pa.float64()) for name in _PRICE_COLUMNS]
)
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class MergeResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    files_written: int = 0

    def __add__(self, other: MergeResult) -> MergeResult:
        return MergeResult(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            self.files_written + other.files_written,
        )


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    name: str
    provider: str
    synthetic: bool


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """One stored series: a symbol's 1-minute bars in one dataset."""

    dataset: DatasetInfo
    symbol: str
    rows: int
    first_ts: int
    last_ts: int


class BarStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "bars"

    @classmethod
    def from_settings(cls, settings: Settings) -> BarStore:
        return cls(settings.data_dir)

    # ---- writing ----

    def write(self, bars: Bars, *, dataset: str, provider: str, synthetic: bool) -> MergeResult:
        """Upsert 1-minute bars into `dataset`: new times are inserted, known times with other
        values are replaced, identical rows are left alone."""
        symbol = get_instrument(bars.symbol).symbol
        if bars.timeframe != STORED_TIMEFRAME:
            raise DomainError(
                "UNSUPPORTED_TIMEFRAME",
                f"the store keeps {STORED_TIMEFRAME} bars, got {bars.timeframe}",
                "Write 1-minute bars; coarser timeframes are derived on load.",
                status=422,
            )
        if len(bars) > 1 and not bool(np.all(np.diff(bars.ts) > 0)):
            raise DomainError(
                "BARS_NOT_SORTED",
                "bar times must be strictly increasing",
                "Sort the bars by time and drop duplicate times before writing.",
                status=422,
            )
        if len(bars) == 0:
            return MergeResult()
        self._pin_dataset(DatasetInfo(_check_dataset(dataset), provider, synthetic))
        series_dir = self._series_dir(dataset, symbol)
        series_dir.mkdir(parents=True, exist_ok=True)
        years = _years(bars.ts)
        bounds = np.flatnonzero(np.diff(years)) + 1
        result = MergeResult()
        with _locked(series_dir / ".lock"):
            for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(bars)], strict=True):
                part = bars.slice(int(lo), int(hi))
                result += _merge_file(series_dir / f"{int(years[lo])}.parquet", part)
        return result

    def _pin_dataset(self, info: DatasetInfo) -> None:
        path = self.root / info.name / "dataset.json"
        if path.exists():
            pinned = self.dataset_info(info.name)
            if (pinned.provider, pinned.synthetic) != (info.provider, info.synthetic):
                raise DomainError(
                    "DATASET_MISMATCH",
                    f"dataset {info.name} holds {pinned.provider} bars "
                    f"(synthetic={pinned.synthetic}); refusing {info.provider} bars "
                    f"(synthetic={info.synthetic})",
                    "Write these bars to a dataset of their own.",
                    status=409,
                )
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"provider": info.provider, "synthetic": info.synthetic}
        _atomic_write_bytes(path, json.dumps(payload, indent=2).encode())

    # ---- reading ----

    def load(
        self,
        symbol: str,
        start: Timestamp | None = None,
        end: Timestamp | None = None,
        timeframe: str = STORED_TIMEFRAME,
        *,
        dataset: str | None = None,
    ) -> Bars:
        """Bars whose open time lies in `[start, end)`; coarser timeframes are resampled from
        complete 1-minute buckets."""
        symbol = get_instrument(symbol).symbol
        name = self.resolve_dataset(symbol, dataset)
        lo, hi = _range_ns(start, end)
        if timeframe == STORED_TIMEFRAME:
            return self._load_minutes(name, symbol, lo, hi)
        step = timeframe_ns(timeframe)
        # Widen by one bucket on each side so edge buckets are built from all their minutes,
        # then keep the buckets that open inside the requested range.
        minutes = self._load_minutes(name, symbol, lo - step, hi + step)
        coarse = resample(minutes, timeframe)
        i, j = np.searchsorted(coarse.ts, [lo, hi])
        return coarse.slice(int(i), int(j))

    def _load_minutes(self, dataset: str, symbol: str, lo: int, hi: int) -> Bars:
        files = self._files_between(dataset, symbol, lo, hi)
        tables = [pq.read_table(path, schema=_SCHEMA) for path in files]
        table = pa.concat_tables(tables) if tables else _SCHEMA.empty_table()
        bars = _to_bars(symbol, table)
        i, j = np.searchsorted(bars.ts, [lo, hi])
        return bars.slice(int(i), int(j))

    def iter_chunks(
        self,
        symbol: str,
        start: Timestamp | None = None,
        end: Timestamp | None = None,
        *,
        dataset: str | None = None,
        chunk_rows: int = 50_000,
    ) -> Iterator[Bars]:
        """Stream 1-minute bars in `[start, end)` in time order, at most `chunk_rows` per
        chunk, holding one chunk in memory at a time (what a replay feed needs)."""
        symbol = get_instrument(symbol).symbol
        name = self.resolve_dataset(symbol, dataset)
        lo, hi = _range_ns(start, end)
        for path in self._files_between(name, symbol, lo, hi):
            # An open file keeps its contents even if a writer replaces it meanwhile.
            with pq.ParquetFile(path) as parquet:
                for batch in parquet.iter_batches(batch_size=chunk_rows):
                    bars = _to_bars(symbol, batch)
                    if len(bars) == 0 or bars.ts[-1] < lo:
                        continue
                    if bars.ts[0] >= hi:
                        return
                    i, j = np.searchsorted(bars.ts, [lo, hi])
                    if j > i:
                        yield bars.slice(int(i), int(j))

    # ---- catalogue ----

    def datasets(self) -> list[DatasetInfo]:
        if not self.root.exists():
            return []
        return [self.dataset_info(p.parent.name) for p in sorted(self.root.glob("*/dataset.json"))]

    def dataset_info(self, name: str) -> DatasetInfo:
        path = self.root / _check_dataset(name) / "dataset.json"
        try:
            payload = json.loads(path.read_text())
        except FileNotFoundError:
            raise DomainError(
                "NO_DATA",
                f"no dataset named {name!r}",
                "Import or synthesise bars first.",
                status=404,
            ) from None
        return DatasetInfo(name, str(payload["provider"]), bool(payload["synthetic"]))

    def series(self, symbol: str | None = None) -> list[SeriesInfo]:
        """Every stored (dataset, symbol) series with its row count and first/last bar."""
        wanted = None if symbol is None else get_instrument(symbol).symbol
        found = []
        for info in self.datasets():
            for series_dir in sorted((self.root / info.name).iterdir()):
                if not series_dir.is_dir() or (wanted and series_dir.name != wanted):
                    continue
                files = sorted((series_dir / STORED_TIMEFRAME).glob("*.parquet"))
                if not files:
                    continue
                first = pq.read_table(files[0], columns=["ts"]).column("ts")
                last = pq.read_table(files[-1], columns=["ts"]).column("ts")
                rows = sum(pq.read_metadata(f).num_rows for f in files)
                found.append(SeriesInfo(info, series_dir.name, rows, _ns(first, 0), _ns(last, -1)))
        return found

    def holders(self, symbol: str) -> list[DatasetInfo]:
        """The datasets holding any bars of `symbol` (cheap: looks at file names only)."""
        symbol = get_instrument(symbol).symbol
        return [
            info
            for info in self.datasets()
            if any(self._series_dir(info.name, symbol).glob("*.parquet"))
        ]

    def resolve_dataset(self, symbol: str, dataset: str | None = None) -> str:
        """The dataset to read `symbol` from. Without a choice: the only dataset holding it,
        else the only real (non-synthetic) one; anything else must be chosen explicitly."""
        symbol = get_instrument(symbol).symbol
        held = self.holders(symbol)
        if dataset is not None:
            if dataset not in {d.name for d in held}:
                raise DomainError(
                    "NO_DATA",
                    f"dataset {dataset!r} holds no {symbol} bars",
                    f"Available: {', '.join(d.name for d in held) or 'none'}.",
                    status=404,
                )
            return dataset
        real = [d for d in held if not d.synthetic]
        if len(held) == 1:
            return held[0].name
        if len(real) == 1:
            return real[0].name
        if not held:
            raise DomainError(
                "NO_DATA",
                f"no {symbol} bars in the store",
                f"Run `botwarden data import FILE --symbol {symbol}` or "
                f"`botwarden data synth --symbol {symbol} --days 90`.",
                status=404,
            )
        raise DomainError(
            "AMBIGUOUS_DATASET",
            f"{symbol} bars exist in several datasets: {', '.join(d.name for d in held)}",
            "Name the dataset to read.",
            status=409,
        )

    # ---- paths ----

    def _series_dir(self, dataset: str, symbol: str) -> Path:
        return self.root / _check_dataset(dataset) / symbol / STORED_TIMEFRAME

    def _files_between(self, dataset: str, symbol: str, lo: int, hi: int) -> list[Path]:
        first_year, last_year = _years(np.array([lo, max(lo, hi - 1)], dtype=np.int64))
        return [
            path
            for path in sorted(self._series_dir(dataset, symbol).glob("*.parquet"))
            if first_year <= int(path.stem) <= last_year
        ]


def _merge_file(path: Path, new: Bars) -> MergeResult:
    if not path.exists():
        _write_parquet(path, new)
        return MergeResult(inserted=len(new), files_written=1)
    old = _to_bars(new.symbol, pq.read_table(path, schema=_SCHEMA))
    pos = np.searchsorted(old.ts, new.ts)
    clipped = np.minimum(pos, max(len(old) - 1, 0))
    known = (pos < len(old)) & (old.ts[clipped] == new.ts)
    same = known.copy()
    for name in _PRICE_COLUMNS:
        same &= getattr(old, name)[clipped] == getattr(new, name)
    inserted = int((~known).sum())
    updated = int((known & ~same).sum())
    unchanged = int(same.sum())
    if inserted == 0 and updated == 0:
        return MergeResult(unchanged=unchanged)
    keep = np.ones(len(old), dtype=bool)
    keep[pos[known]] = False
    ts = np.concatenate((old.ts[keep], new.ts))
    order = np.argsort(ts, kind="stable")
    columns = [
        np.concatenate((getattr(old, name)[keep], getattr(new, name)))[order]
        for name in _PRICE_COLUMNS
    ]
    _write_parquet(path, Bars(new.symbol, STORED_TIMEFRAME, ts[order], *columns))
    return MergeResult(inserted, updated, unchanged, files_written=1)


def _write_parquet(path: Path, bars: Bars) -> None:
    table = pa.table(
        [pa.array(bars.ts, type=pa.int64()).cast(_SCHEMA.field("ts").type)]
        + [pa.array(getattr(bars, name), type=pa.float64()) for name in _PRICE_COLUMNS],
        schema=_SCHEMA,
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    os.replace(tmp, path)


def _to_bars(symbol: str, table: pa.Table | pa.RecordBatch) -> Bars:
    ts = np.asarray(table.column("ts").cast(pa.int64()).to_numpy(), dtype=np.int64)
    prices = (np.asarray(table.column(name).to_numpy(), np.float64) for name in _PRICE_COLUMNS)
    return Bars(symbol, STORED_TIMEFRAME, ts, *prices)


def _atomic_write_bytes(path: Path, payload: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_dataset(name: str) -> str:
    if not _DATASET_NAME.match(name) or ".." in name:
        raise DomainError(
            "INVALID_DATASET_NAME",
            f"invalid dataset name {name!r}",
            "Use letters, digits, '.', '_' or '-' (at most 64 characters).",
            status=422,
        )
    return name


def _years(ts: I64) -> I64:
    return ts.astype("datetime64[ns]").astype("datetime64[Y]").astype(np.int64) + 1970


def _range_ns(start: Timestamp | None, end: Timestamp | None) -> tuple[int, int]:
    lo = to_ns(start) if start is not None else 0
    hi = to_ns(end) if end is not None else np.iinfo(np.int64).max - 2 * 86_400 * 10**9
    return lo, hi


def _ns(column: pa.ChunkedArray, index: int) -> int:
    return int(column.cast(pa.int64()).to_numpy()[index])
