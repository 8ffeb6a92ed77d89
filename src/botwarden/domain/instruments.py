"""The instrument registry (domain.md, "Instruments") and tick-grid arithmetic."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from botwarden.domain.errors import DomainError


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    name: str
    tick_size: Decimal
    point_value: Decimal
    commission_per_side: Decimal
    exchange: str = "CME"
    calendar: str = "CMES"  # exchange_calendars name for CME Globex equity/commodity futures

    @property
    def tick_value(self) -> Decimal:
        return self.tick_size * self.point_value

    def to_ticks(self, price: Decimal) -> int:
        """Exact integer ticks of an on-grid price; an off-grid price is refused."""
        ticks = price / self.tick_size
        if ticks != ticks.to_integral_value():
            raise DomainError(
                "PRICE_OFF_TICK_GRID",
                f"{price} is not a multiple of {self.symbol}'s tick size {self.tick_size}",
                f"Round the price to a multiple of {self.tick_size}.",
                status=422,
            )
        return int(ticks)

    def from_ticks(self, ticks: int) -> Decimal:
        return self.tick_size * ticks

    def round_to_tick(self, price: Decimal | float) -> Decimal:
        ticks = (Decimal(str(price)) / self.tick_size).quantize(
            Decimal(1), rounding=ROUND_HALF_EVEN
        )
        return ticks * self.tick_size

    def is_on_grid(self, price: Decimal) -> bool:
        ticks = price / self.tick_size
        return ticks == ticks.to_integral_value()


def _inst(sym: str, name: str, tick: str, pv: str, fee: str) -> Instrument:
    return Instrument(sym, name, Decimal(tick), Decimal(pv), Decimal(fee))


INSTRUMENTS: dict[str, Instrument] = {
    i.symbol: i
    for i in (
        _inst("MES", "Micro E-mini S&P 500", "0.25", "5", "0.62"),
        _inst("MNQ", "Micro E-mini Nasdaq-100", "0.25", "2", "0.62"),
        _inst("ES", "E-mini S&P 500", "0.25", "50", "2.25"),
        _inst("NQ", "E-mini Nasdaq-100", "0.25", "20", "2.25"),
        _inst("MGC", "Micro Gold", "0.10", "10", "0.62"),
        _inst("GC", "Gold", "0.10", "100", "2.25"),
        _inst("MCL", "Micro WTI Crude", "0.01", "100", "0.62"),
        _inst("CL", "WTI Crude", "0.01", "1000", "2.25"),
    )
}
DEFAULT_SYMBOL = "MES"


def get_instrument(symbol: str) -> Instrument:
    try:
        return INSTRUMENTS[symbol.upper()]
    except KeyError:
        raise DomainError(
            "UNKNOWN_SYMBOL",
            f"unknown symbol {symbol!r}",
            f"Use one of {', '.join(sorted(INSTRUMENTS))}.",
            status=422,
        ) from None
